"""`watch_tasks`: a warning, with the grouped summary, when the live task count keeps growing."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from virtual_clock import virtual_time
from workpool import TaskSummary, track_tasks, untrack_tasks, watch_tasks
from workpool._watch import Growth

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("counts", "warnings"),
    [
        ([10, 11, 12, 13], [(10, 11, 12, 13)]),  # three rises in a row
        ([10, 11, 12], []),  # not yet
        ([10, 11, 11, 12, 13], []),  # a flat step starts afresh
        ([10, 11, 9, 10, 11, 12], [(9, 10, 11, 12)]),
        ([1, 2, 3, 4, 5, 6, 7], [(1, 2, 3, 4), (4, 5, 6, 7)]),  # then needs three more
        ([5, 5, 5, 5, 5, 5], []),
    ],
)
def test_growth_fires_after_a_full_run_of_rises(counts: list[int], warnings: list[tuple[int, ...]]) -> None:
    growth = Growth(3)
    assert [run for run in map(growth.add, counts) if run is not None] == warnings


class Records(logging.Handler):
    """Collects the ``workpool`` logger's records and sets an event on the first."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.arrived = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.arrived.set()


@pytest.fixture
def workpool_log() -> Any:
    handler = Records()
    logger = logging.getLogger("workpool")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def leaky_poller() -> None:
    await anyio.sleep_forever()


async def start_a_poller_every_second(tg: Any) -> None:
    while True:
        tg.start_soon(leaky_poller)
        await anyio.sleep(1)


@virtual_time()
async def test_a_growing_task_count_is_reported_with_its_largest_group(workpool_log: Records) -> None:
    with anyio.fail_after(3600):
        async with anyio.create_task_group() as tg:
            track_tasks()
            tg.start_soon(start_a_poller_every_second, tg)
            tg.start_soon(lambda: watch_tasks(interval=10, samples=3))
            await workpool_log.arrived.wait()
            now = anyio.current_time()
            tg.cancel_scope.cancel()
        untrack_tasks()
    (record,) = workpool_log.records
    assert record.levelno == logging.WARNING
    assert record.name == "workpool"
    groups: tuple[TaskSummary, ...] = record.task_groups  # type: ignore[attr-defined]
    top = groups[0]
    assert top.blocked_on == "anyio.sleep_forever"
    assert top.created_by is not None
    assert top.created_by.function == "start_a_poller_every_second"
    # Samples at 10, 20, 30 and 40 s; growth at each of the last three.
    assert now == pytest.approx(40)
    assert top.count in (39, 40, 41)
    message = record.getMessage()
    assert message.startswith("the number of live tasks rose at each of the last 3 samples, every 10 s (")
    assert f"\n  {top}" in message


@virtual_time()
async def test_a_steady_task_count_is_never_reported(workpool_log: Records) -> None:
    with anyio.fail_after(3600):
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(leaky_poller)
            tg.start_soon(lambda: watch_tasks(interval=1, samples=2))
            await anyio.sleep(1000)
            tg.cancel_scope.cancel()
    assert workpool_log.records == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"interval": 0}, ValueError),
        ({"interval": "1"}, TypeError),
        ({"samples": 0}, ValueError),
        ({"samples": 1.5}, TypeError),
    ],
)
async def test_bad_arguments_are_rejected_before_the_first_sample(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with anyio.fail_after(5), pytest.raises(error):
        await watch_tasks(**options)
