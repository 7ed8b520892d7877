"""`watch_tasks`: warn when the number of live tasks keeps growing, the way a leak shows in production."""

from __future__ import annotations

import logging
from collections import deque
from typing import NoReturn

import anyio

from ._dump import LoopView
from ._records import summarize
from ._validate import check_interval, check_positive_int

__all__ = ["Growth", "watch_tasks"]

logger = logging.getLogger("workpool")

# The groups a warning lists: enough to find a leak, short enough to read.
_GROUPS_SHOWN = 10


class Growth:
    """Says when a series of samples has risen at every one of the last `samples` steps."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.counts: deque[int] = deque(maxlen=samples + 1)

    def add(self, count: int) -> tuple[int, ...] | None:
        """Record a sample; return the rising run when it is long enough (then start afresh)."""
        counts = self.counts
        if counts and count <= counts[-1]:
            counts.clear()
        counts.append(count)
        if len(counts) <= self.samples:
            return None
        run = tuple(counts)
        # Another warning needs another full run of growth from here.
        counts.clear()
        counts.append(count)
        return run


async def watch_tasks(*, interval: float = 60.0, samples: int = 5) -> NoReturn:
    """Sample the number of live tasks every `interval` seconds; warn when it keeps growing.

    When the count has risen at each of `samples` samples in a row, logs a
    warning on the ``workpool`` logger with the counts and the largest groups
    of tasks by creation site and state (see `summarize_tasks`): a leak reads
    as ``x1200 tasks [awaiting anyio.sleep] created by poll at app.py:40``.
    It then needs another `samples` rises to warn again.  A count that holds
    or falls starts the run afresh, so a busy but bounded program never warns.

    Run it beside the program, in a task group: ``tg.start_soon(watch_tasks)``.
    Counting costs about a microsecond a task; the summary, built only for a
    warning, costs tens of microseconds a task.  `track_tasks` makes the
    summary show where tasks were created.

    Cancellation: runs until cancelled, which is the only way it ends.

    Raises:
        ValueError: `interval` is not a positive, finite number or `samples`
            is not a positive int.
        TypeError: an argument has the wrong type.
        RuntimeError: no asyncio event loop or trio run is running in this thread.
    """
    interval = check_interval(interval)
    growth = Growth(check_positive_int(samples, "samples"))
    view = LoopView()
    while True:
        await anyio.sleep(interval)
        tasks = view.tasks()
        run = growth.add(len(tasks))
        if run is not None:
            groups = summarize(view.records(tasks))
            lines = "\n".join(f"  {group}" for group in groups[:_GROUPS_SHOWN])
            more = (
                f"\n  ... and {len(groups) - _GROUPS_SHOWN} more groups"
                if len(groups) > _GROUPS_SHOWN
                else ""
            )
            logger.warning(
                "the number of live tasks rose at each of the last %d samples, every %g s (%s); "
                "the largest groups:\n%s%s",
                samples,
                interval,
                " -> ".join(map(str, run)),
                lines,
                more,
                extra={"task_groups": tuple(groups)},
            )
