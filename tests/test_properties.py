"""Property-based tests: map's ordering and completeness, and the job accounting.

Each example runs a whole event loop with ``anyio.run``, once per backend, so
hypothesis's function-scoped-fixture rules do not get in the way.
"""

from __future__ import annotations

import sys

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import Boom, assert_stats_balanced, leaves, no_leaks, no_leaks_sync
from workpool import JobCancelled, Pool

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

backends = pytest.mark.parametrize("backend", ["asyncio", "trio"])

pool_sizes = st.tuples(
    st.integers(min_value=1, max_value=8),
    st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
)


@backends
@settings(max_examples=50, deadline=None)
@given(
    xs=st.lists(st.integers(min_value=-1000, max_value=1000), max_size=60),
    sizes=pool_sizes,
    ordered=st.booleans(),
)
def test_map_yields_every_result_in_the_promised_order(
    backend: str, xs: list[int], sizes: tuple[int, int | None], ordered: bool
) -> None:
    max_workers, max_pending = sizes
    window = max_workers + (max_pending if max_pending is not None else max_workers)
    items = list(enumerate(xs))

    async def main() -> None:
        completed: list[tuple[int, int]] = []
        worst = 0

        async def work(item: tuple[int, int]) -> tuple[int, int]:
            nonlocal worst
            stats = pool.stats
            worst = max(worst, stats.busy + stats.queued)
            index, x = item
            for _ in range(x % 4):  # a varying number of suspensions
                await anyio.lowlevel.checkpoint()
            result = (index, 3 * x)
            completed.append(result)
            return result

        async with no_leaks(), Pool(max_workers=max_workers, max_pending=max_pending) as pool:
            results = [r async for r in pool.map(work, items, ordered=ordered)]
        expected = [(i, 3 * x) for i, x in items]
        if ordered:
            assert results == expected
        else:
            assert sorted(results) == expected
            assert results == completed  # completion order, exactly
        assert worst <= window
        assert_stats_balanced(pool.stats)
        assert pool.stats.completed == len(items)

    with no_leaks_sync():
        anyio.run(main, backend=backend)


outcomes = st.lists(
    st.tuples(st.sampled_from(["ok", "fail", "cancel"]), st.integers(min_value=0, max_value=3)),
    max_size=40,
)


@backends
@settings(max_examples=50, deadline=None)
@given(ops=outcomes, sizes=pool_sizes)
def test_every_accepted_job_ends_exactly_one_way(
    backend: str, ops: list[tuple[str, int]], sizes: tuple[int, int | None]
) -> None:
    max_workers, max_pending = sizes

    async def job(i: int, outcome: str, steps: int) -> int:
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()
        if outcome == "fail":
            raise Boom(str(i))
        return i

    async def main() -> None:
        jobs = []
        failures: list[BaseException] = []
        try:
            async with (
                no_leaks(),
                Pool(max_workers=max_workers, max_pending=max_pending, on_error="collect") as pool,
            ):
                for i, (outcome, steps) in enumerate(ops):
                    submitted = await pool.submit(job, i, outcome, steps)
                    if outcome == "cancel":
                        submitted.cancel()
                    jobs.append(submitted)
        except BaseExceptionGroup as group:
            failures = leaves(group)
        for i, ((outcome, _), submitted) in enumerate(zip(ops, jobs, strict=True)):
            assert submitted.done()
            if outcome == "cancel":
                # Cancelled before it could return: queued, or at its first await.
                if not submitted.cancelled():
                    assert submitted.result() == i
                else:
                    with pytest.raises(JobCancelled):
                        submitted.result()
            elif outcome == "fail":
                assert isinstance(submitted.exception(), Boom)
            else:
                assert submitted.result() == i
        expected_failures = {str(i) for i, (outcome, _) in enumerate(ops) if outcome == "fail"}
        assert all(isinstance(e, Boom) for e in failures)
        assert sorted(str(e) for e in failures) == sorted(expected_failures)
        assert_stats_balanced(pool.stats)
        assert pool.stats.submitted == len(ops)
        assert pool.stats.failed == len(expected_failures)
        assert pool.stats.cancelled == sum(j.cancelled() for j in jobs)

    with no_leaks_sync():
        anyio.run(main, backend=backend)
