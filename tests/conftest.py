"""Shared fixtures: every async test runs on asyncio (debug mode) and on trio.

Tests where time matters ask for the virtual-clock variant with
``@pytest.mark.parametrize("anyio_backend", ["trio-mockclock"], indirect=True)``:
a trio ``MockClock`` with ``autojump_threshold=0`` jumps straight to the next
deadline whenever every task is blocked, so an hour-long timeout takes
microseconds and no test depends on the wall clock.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    kind = request.param
    if kind == "asyncio":
        return ("asyncio", {"debug": True})
    if kind == "trio":
        return ("trio", {})
    if kind == "trio-mockclock":
        # Created here, not at import time: one fresh clock per test.
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    raise AssertionError(f"unknown backend variant {kind!r}")  # pragma: no cover


@pytest.fixture
def anyio_backend_name(anyio_backend: tuple[str, dict[str, Any]]) -> str:
    return anyio_backend[0]
