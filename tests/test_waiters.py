"""The parked-task queues under the pool: every wakeup reaches a task, and `parked` never under-counts.

A worker that finishes a job wakes a producer waiting for room only if
`Waiters.parked` says one is there, so a count that fell below the number of
tasks really parked would leave a producer asleep next to a free slot.  An
over-count only costs a useless `wake_one`.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

from helpers import no_leaks
from workpool._backend import current_backend
from workpool._waiters import NO_WAITERS, AsyncioWaiters, Waiters

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


async def test_cancelling_a_woken_task_in_the_same_step_does_not_undo_its_wakeup() -> None:
    # anyio does not cancel an asyncio task whose wait has already ended, and
    # trio resumes an unparked task before any cancellation: the woken task
    # returns from wait() (its scope's cancellation comes at its next
    # checkpoint), and the other one stays parked, counted.
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            waiters = current_backend().waiters()
            first, second = await park(tg, waiters, 2)
            waiters.wake_one()
            first.scope.cancel()  # in the same step: first has not run yet
            await anyio.wait_all_tasks_blocked()
            assert (first.outcome, second.outcome) == ("woken", "waiting")
            assert waiters.parked == 1
            waiters.wake_one()
            await anyio.wait_all_tasks_blocked()
            assert second.outcome == "woken"
            assert waiters.parked == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_an_asyncio_task_cancelled_after_its_wakeup_hands_the_wakeup_on() -> None:
    # asyncio only: a native Task.cancel() reaches a task whose future has its
    # result but which has not run yet (trio has no such state).  Its wait()
    # raises CancelledError and hands the wake-up to the next task; the count
    # drops once for each, to 0, not below.
    waiters = AsyncioWaiters()
    outcomes: dict[str, str] = {}

    async def wait(name: str) -> None:
        try:
            await waiters.wait()
        except asyncio.CancelledError:
            outcomes[name] = "cancelled"
            raise
        outcomes[name] = "woken"

    with anyio.fail_after(5):
        async with no_leaks():
            first = asyncio.get_running_loop().create_task(wait("first"))
            await asyncio.sleep(0)
            second = asyncio.get_running_loop().create_task(wait("second"))
            await asyncio.sleep(0)
            assert waiters.parked == 2
            assert waiters.wake_one()
            first.cancel()
            await asyncio.gather(first, second, return_exceptions=True)
    assert outcomes == {"first": "cancelled", "second": "woken"}
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
