"""The parked-task queues under the pool: every wakeup reaches a task, and `parked` never under-counts.

A worker that finishes a job wakes a producer waiting for room only if
`Waiters.parked` says one is there, so a count that fell below the number of
tasks really parked would leave a producer asleep next to a free slot.  An
over-count only costs a useless `wake_one`.
"""

from __future__ import annotations

import anyio
import pytest

from helpers import no_leaks
from workpool._backend import current_backend
from workpool._waiters import NO_WAITERS, Waiters

pytestmark = pytest.mark.anyio


class Parked:
    """A task parked in `waiters`, in its own cancel scope; records how its wait ended."""

    def __init__(self, waiters: Waiters) -> None:
        self.waiters = waiters
        self.scope = anyio.CancelScope()
        self.outcome = "waiting"

    async def run(self) -> None:
        with self.scope:
            try:
                await self.waiters.wait()
            except anyio.get_cancelled_exc_class():
                self.outcome = "cancelled"
                raise
            self.outcome = "woken"


async def park(tg: anyio.abc.TaskGroup, waiters: Waiters, count: int) -> list[Parked]:
    """Park `count` tasks, one after the other (trio would start them in a random order)."""
    parked = [Parked(waiters) for _ in range(count)]
    for task in parked:
        tg.start_soon(task.run)
        await anyio.wait_all_tasks_blocked()
    return parked


async def test_parked_counts_waiting_tasks_and_drops_each_once() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            waiters = current_backend().waiters()
            assert waiters.parked == 0
            first, second, third = await park(tg, waiters, 3)
            assert waiters.parked == 3

            assert waiters.wake_one()
            assert waiters.parked == 2
            await anyio.wait_all_tasks_blocked()
            assert first.outcome == "woken"  # the longest-waiting one

            second.scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert second.outcome == "cancelled"
            assert waiters.parked == 1

            waiters.wake_all()
            assert waiters.parked == 0
            await anyio.wait_all_tasks_blocked()
            assert third.outcome == "woken"
            assert not waiters.wake_one()  # nobody left, and the count stays at 0
            assert waiters.parked == 0


async def test_a_wakeup_whose_task_is_cancelled_before_it_runs_is_not_lost() -> None:
    # asyncio can cancel a task whose wake-up is already scheduled: the wait
    # then hands the wake-up on.  trio resumes an unparked task first.  On
    # both, the next task is woken and the count ends at 0, not below.
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            waiters = current_backend().waiters()
            first, second = await park(tg, waiters, 2)
            waiters.wake_one()
            first.scope.cancel()  # in the same step: first has not run yet
            await anyio.wait_all_tasks_blocked()
            assert (first.outcome, second.outcome) in {("cancelled", "woken"), ("woken", "waiting")}
            if second.outcome == "waiting":
                waiters.wake_one()
                await anyio.wait_all_tasks_blocked()
                assert second.outcome == "woken"
            assert waiters.parked == 0


async def test_a_task_cancelled_while_parked_is_uncounted() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            waiters = current_backend().waiters()
            (task,) = await park(tg, waiters, 1)
            task.scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert task.outcome == "cancelled"
            assert waiters.parked == 0
            assert not waiters.wake_one()


def test_the_stand_in_of_a_pool_not_open_yet_has_nobody_parked() -> None:
    assert NO_WAITERS.parked == 0
    assert not NO_WAITERS.wake_one()
