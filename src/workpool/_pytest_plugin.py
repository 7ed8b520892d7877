"""The pytest plugin that installing workpool registers (entry point ``pytest11``).

* ``--leaks``: check every test with `workpool.testing.no_leaks`;
* ``@pytest.mark.no_leaks(**options)``: check this test, with `no_leaks`'s options;
* the ``no_leaks`` fixture: check the test that asks for it.

An async test run by anyio's plugin is checked inside its event loop, tasks
and threads; any other test, for threads.  The check spans the test and its
function-scoped fixtures (the check's fixture is set up first and torn down
last), so tasks that a fixture's teardown stops are not leaks.  A leak is
reported as an error in the test's teardown, naming the test, whether the
test passed or failed.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ._leaks import LeakCheck, _specs

_CHECK = pytest.StashKey[LeakCheck]()

# anyio's asyncio test runner drives each fixture and test call from a task of
# its own (``run_until_complete``), made after the check's snapshot: the
# harness, not the test.
_HARNESS = ("TestRunner._call_in_runner_task",)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workpool")
    group.addoption(
        "--leaks",
        action="store_true",
        default=False,
        help="fail every test that leaves a task or thread behind (workpool.testing.no_leaks)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "no_leaks(**options): fail the test if it leaves a task or thread behind; "
        "options as for workpool.testing.no_leaks",
    )


def _is_anyio_async_test(request: pytest.FixtureRequest) -> bool:
    function: Any = getattr(request, "function", None)
    if function is None or "anyio_backend" not in request.fixturenames:
        return False
    inner = getattr(getattr(function, "hypothesis", None), "inner_test", function)
    return inspect.iscoroutinefunction(inner)


@pytest.fixture(autouse=True)
def _workpool_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    __tracebackhide__ = True
    marker = request.node.get_closest_marker("no_leaks")
    wanted = marker is not None or "no_leaks" in request.fixturenames or request.config.getoption("leaks")
    if not wanted:
        yield
        return
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    # Checked as no_leaks() checks it before the harness is added: a single
    # name would otherwise be spread into its characters.
    blocked_in = _specs(options.get("ignore_blocked_in", ()), "ignore_blocked_in")
    options["ignore_blocked_in"] = (*blocked_in, *_HARNESS)
    check = LeakCheck._new(label=f"test {request.node.nodeid}", **options)
    if _is_anyio_async_test(request):
        # The async part must run in the test's event loop, so it is an
        # async fixture, which anyio's plugin runs there; requested from
        # here, it is set up before and torn down after every other
        # function-scoped fixture.
        request.node.stash[_CHECK] = check
        request.getfixturevalue("_workpool_async_leak_check")
        yield
    else:
        with check:
            yield


@pytest.fixture
async def _workpool_async_leak_check(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    __tracebackhide__ = True
    async with request.node.stash[_CHECK]:
        yield


@pytest.fixture
def no_leaks() -> None:
    """Fail this test if it leaves a task or a thread behind (see `workpool.testing.no_leaks`)."""
