"""Bad arguments fail at the call site, with a message that says what is wrong."""

from __future__ import annotations

import functools
import gc
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from helpers import identity, no_leaks, noop
from workpool import Pool

# -- the constructor (no event loop needed) ---------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"max_workers": 0}, ValueError, "max_workers"),
        ({"max_workers": -1}, ValueError, "max_workers"),
        ({"max_workers": 1.5}, TypeError, "max_workers"),
        ({"max_workers": True}, TypeError, "max_workers"),
        ({"max_workers": "3"}, TypeError, "max_workers"),
        ({"max_workers": None}, TypeError, "max_workers"),
        ({"max_pending": -1}, ValueError, "max_pending"),
        ({"max_pending": 1.5}, TypeError, "max_pending"),
        ({"max_pending": False}, TypeError, "max_pending"),
        ({"max_pending": "10"}, TypeError, "max_pending"),
        ({"job_timeout": 0}, ValueError, "job_timeout"),
        ({"job_timeout": -1}, ValueError, "job_timeout"),
        ({"job_timeout": math.nan}, ValueError, "job_timeout"),
        ({"job_timeout": math.inf}, ValueError, "job_timeout"),
        ({"job_timeout": "x"}, TypeError, "job_timeout"),
        ({"job_timeout": True}, TypeError, "job_timeout"),
        ({"on_error": "bogus"}, ValueError, "on_error"),
        ({"on_error": 42}, TypeError, "on_error"),
        ({"name": 3}, TypeError, "name"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, dict) else ",".join(f"{k}={v!r}" for k, v in v.items()),
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        Pool(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_workers": 1},
        {"max_workers": 10_000},
        {"max_pending": 0},
        {"max_pending": None},
        {"job_timeout": None},
        {"job_timeout": 0.001},
        {"job_timeout": 5},
        {"on_error": "cancel"},
        {"on_error": "collect"},
        {"on_error": lambda job, exc: None},
        {"name": "fetch"},
    ],
)
def test_good_constructor_arguments(kwargs: dict[str, Any]) -> None:
    pool = Pool(**kwargs)
    assert "new" in repr(pool)


def test_properties_reflect_the_arguments() -> None:
    pool = Pool(max_workers=7, max_pending=None, name="fetch")
    assert (pool.max_workers, pool.max_pending, pool.name) == (7, None, "fetch")
    assert Pool(max_pending=0).max_pending == 0


# -- what submit, submit_nowait, map and consume accept ---------------------


def sync_function(x: int = 0) -> int:
    return x


class SyncCallable:
    def __call__(self, x: int = 0) -> int:
        return x


class AsyncCallable:
    async def __call__(self, x: int = 0) -> int:
        return x


class Service:
    async def handle(self, x: int = 0) -> int:
        return x

    def sync_handle(self, x: int = 0) -> int:
        return x


NOT_ASYNC: list[Any] = [
    pytest.param(sync_function, id="sync function"),
    pytest.param(time.sleep, id="builtin time.sleep"),
    pytest.param(print, id="builtin print"),
    pytest.param(SyncCallable(), id="sync callable object"),
    pytest.param(Service().sync_handle, id="sync bound method"),
    pytest.param(functools.partial(sync_function, 1), id="partial of a sync function"),
    pytest.param(AsyncCallable, id="a class"),
    pytest.param(lambda x=0: x, id="lambda"),
]

NOT_CALLABLE: list[Any] = [
    pytest.param(42, id="int"),
    pytest.param("noop", id="str"),
    pytest.param(None, id="None"),
]


def _entry_points(pool: Pool) -> dict[str, Callable[[Any], Any]]:
    """Each way of handing the pool a function, as a call that may be awaited."""
    return {
        "submit": lambda fn: pool.submit(fn),
        "submit_nowait": lambda fn: pool.submit_nowait(fn),
        "map": lambda fn: pool.map(fn, [1]),
        "consume": lambda fn: pool.consume(_one_item(), fn),
    }


async def _one_item():
    yield 1


async def _call(call: Callable[[Any], Any], fn: Any) -> None:
    result = call(fn)
    if hasattr(result, "__await__"):
        await result


@pytest.mark.anyio
@pytest.mark.parametrize("entry", ["submit", "submit_nowait", "map", "consume"])
@pytest.mark.parametrize("fn", NOT_ASYNC)
async def test_sync_callables_are_a_type_error_at_submit_time(entry: str, fn: Any) -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(TypeError, match=r"async") as caught:
            await _call(_entry_points(pool)[entry], fn)
        assert "anyio.to_thread.run_sync" in str(caught.value) or "async def" in str(caught.value)
        assert pool.stats.submitted == 0


@pytest.mark.anyio
@pytest.mark.parametrize("entry", ["submit", "submit_nowait", "map", "consume"])
@pytest.mark.parametrize("fn", NOT_CALLABLE)
async def test_non_callables_are_a_type_error(entry: str, fn: Any) -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(TypeError):
            await _call(_entry_points(pool)[entry], fn)
        assert pool.stats.submitted == 0


@pytest.mark.anyio
@pytest.mark.parametrize("entry", ["submit", "submit_nowait", "map", "consume"])
async def test_a_coroutine_object_is_a_type_error_without_never_awaited_warning(entry: str) -> None:
    async with no_leaks(), Pool() as pool:
        with warnings.catch_warnings(record=True) as caught_warnings:
            warnings.simplefilter("always")
            coroutine = identity(1)
            with pytest.raises(TypeError, match=r"not .*\(.*\(") as caught:
                await _call(_entry_points(pool)[entry], coroutine)
            del coroutine, caught
            gc.collect()
        never_awaited = [w for w in caught_warnings if "never awaited" in str(w.message)]
        assert never_awaited == []
        assert pool.stats.submitted == 0


@pytest.mark.anyio
async def test_the_same_sync_function_is_rejected_every_time() -> None:
    # Checks may be cached for speed; a rejected function is never let through.
    async with no_leaks(), Pool() as pool:
        for _ in range(3):
            with pytest.raises(TypeError):
                await pool.submit(sync_function)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                pool.submit_nowait(sync_function)  # type: ignore[arg-type]
        assert await (await pool.submit(noop)) is None
        with pytest.raises(TypeError):
            await pool.submit(sync_function)  # type: ignore[arg-type]


ASYNC_CALLABLES: list[Any] = [
    pytest.param(identity, id="async function"),
    pytest.param(AsyncCallable(), id="async callable object"),
    pytest.param(Service().handle, id="async bound method"),
    pytest.param(functools.partial(identity), id="partial of an async function"),
    pytest.param(functools.partial(functools.partial(identity)), id="nested partial"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("fn", ASYNC_CALLABLES)
async def test_async_callables_are_accepted(fn: Any) -> None:
    async with no_leaks(), Pool() as pool:
        assert await (await pool.submit(fn, 5)) == 5
        assert await pool.submit_nowait(fn, 6) == 6
        assert [v async for v in pool.map(fn, [7, 8])] == [7, 8]


@pytest.mark.anyio
async def test_a_job_may_await_any_awaitable_object() -> None:
    class Ready:
        def __await__(self):
            yield from anyio.lowlevel.checkpoint().__await__()
            return "from __await__"

    async def indirect() -> str:
        return await Ready()

    async with no_leaks(), Pool() as pool:
        assert await (await pool.submit(indirect)) == "from __await__"


@pytest.mark.anyio
async def test_map_rejects_a_non_iterable_and_a_non_bool_ordered() -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(TypeError, match="iterable"):
            pool.map(identity, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ordered"):
            pool.map(identity, [1], ordered="yes")  # type: ignore[arg-type]
