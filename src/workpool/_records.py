"""The records a task dump is made of, and how they read as text."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import attrs

__all__ = ["StackFrame", "TaskRecord", "TaskSummary", "format_duration", "format_records", "summarize"]


@attrs.frozen
class StackFrame:
    """One line of a stack or a creation site."""

    filename: str
    """The source file, as the code object names it."""
    lineno: int
    """The line number: the line running or awaiting, or the line that made the call."""
    function: str
    """The qualified name of the function (``Class.method``; the plain name before Python 3.11)."""
    library: bool
    """Whether the code belongs to Python, the event loop (asyncio, anyio, trio) or workpool."""

    def __str__(self) -> str:
        return f"{_display_path(self.filename)}:{self.lineno} in {self.function}"


@attrs.frozen
class TaskRecord:
    """One task (or thread) in a dump, as `workpool.dump_tasks` saw it."""

    kind: Literal["task", "thread"]
    """``"task"`` for a task of the event loop, ``"thread"`` for a thread."""
    name: str
    """The task's or thread's name."""
    number: int | None
    """A number that identifies the task: the tracker's (see `workpool.track_tasks`) or the thread's ident."""
    running: bool
    """Whether it was running when the dump was taken (the task or thread taking it)."""
    blocked_on: str
    """What it waits for: the library call its own code made (``MemoryObjectReceiveStream.receive``,
    ``anyio.sleep``), ``"idle"`` for a pool worker waiting for a job; ``""`` while running."""
    blocked_for: float | None
    """Seconds it has waited so far, when known: for idle pool workers, and with the tracker for other
    tasks, pool workers running a job included (event loop clock); never for threads or the running
    task.  A worker's job has `job_running_for`."""
    stack: tuple[StackFrame, ...]
    """Its stack, innermost frame first, library frames included."""
    created_by: StackFrame | None
    """Where it was started: the program's own line that called ``create_task``, ``start_soon`` or
    (for a pool worker) ``submit``/``map``/``consume``; ``None`` when unknown."""
    pool: str | None
    """The name of the `workpool.Pool` it is a worker of, or ``None``."""
    job: str | None
    """The function of the job the worker runs (``None`` when idle or not a worker)."""
    job_submitted_by: StackFrame | None
    """Where that job was submitted (the line calling ``submit``, ``map`` or ``consume``)."""
    job_running_for: float | None
    """Seconds since that job started (event loop clock)."""

    def __str__(self) -> str:
        return format_records([self])


@attrs.frozen
class TaskSummary:
    """Tasks of a dump that were created at the same place and wait on the same thing."""

    count: int
    """How many tasks (or threads) the group holds."""
    kind: Literal["task", "thread"]
    """``"task"`` or ``"thread"``."""
    blocked_on: str
    """What they wait for (see `TaskRecord.blocked_on`)."""
    created_by: StackFrame | None
    """Where they were started, or ``None`` when unknown."""
    example: str
    """The name of one of them."""

    def __str__(self) -> str:
        where = _created_by(self.created_by) if self.created_by is not None else "created by unknown"
        if not self.blocked_on or self.blocked_on == "idle":
            state = f"[{self.blocked_on or 'running'}]"
        elif self.kind == "thread":
            state = f"[blocked in {self.blocked_on}]"
        else:
            state = f"[awaiting {self.blocked_on}]"
        kind = self.kind if self.count == 1 else f"{self.kind}s"
        return f'x{self.count} {kind} {state} {where} (e.g. "{self.example}")'


def _display_path(filename: str) -> str:
    """`filename` relative to the working directory when it lies inside it."""
    if filename.startswith("<"):
        return filename
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # pragma: no cover - another drive on Windows
        return filename
    return filename if relative.startswith(os.pardir) else relative


def format_duration(seconds: float) -> str:
    """``"12 seconds"`` under two minutes, else whole minutes as a goroutine dump has it."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f} ms"
    if seconds < 120:
        whole = round(seconds)
        return "1 second" if whole == 1 else f"{whole} seconds"
    return f"{int(seconds // 60)} minutes"


def _created_by(site: StackFrame) -> str:
    return f"created by {site.function} at {_display_path(site.filename)}:{site.lineno}"


def _state(record: TaskRecord) -> str:
    if record.running:
        return "running"
    if record.kind == "thread":
        return f"blocked in {record.blocked_on}"
    parts = [record.blocked_on if record.blocked_on == "idle" else f"awaiting {record.blocked_on}"]
    if record.blocked_for is not None:
        parts.append(format_duration(record.blocked_for))
    elif record.job_running_for is not None:
        parts.append(f"job running {format_duration(record.job_running_for)}")
    return ", ".join(parts)


def _shown_frames(stack: tuple[StackFrame, ...]) -> tuple[StackFrame, ...]:
    # The program's own frames tell the story; the library frames below them
    # are summed up by `blocked_on`.  A stack of nothing but library frames
    # (an idle worker, the event loop's own tasks) is shown whole.
    own = tuple(frame for frame in stack if not frame.library)
    return own or stack


def format_records(records: Iterable[TaskRecord]) -> str:
    """Render records the way a goroutine dump reads, blank lines between them."""
    blocks: list[str] = []
    for record in records:
        # A thread's number is its ident, too long to help a reader.
        number = f" {record.number}" if record.number is not None and record.kind == "task" else ""
        lines = [f'{record.kind}{number} "{record.name}" [{_state(record)}]:']
        if record.pool is not None:
            job = "idle" if record.job is None else f"job {record.job}"
            details: list[str] = []
            if record.job_submitted_by is not None:
                site = record.job_submitted_by
                details.append(
                    f"submitted by {site.function} at {_display_path(site.filename)}:{site.lineno}"
                )
            if record.job_running_for is not None:
                details.append(f"running {format_duration(record.job_running_for)}")
            suffix = f" ({', '.join(details)})" if details else ""
            lines.append(f'  pool "{record.pool}", {job}{suffix}')
        lines.extend(f"  {frame}" for frame in _shown_frames(record.stack))
        if record.created_by is not None:
            lines.append(_created_by(record.created_by))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summarize(records: Iterable[TaskRecord]) -> list[TaskSummary]:
    """Group records by (kind, what they wait for, where they were created), largest group first."""
    groups: dict[tuple[str, str, StackFrame | None], list[TaskRecord]] = {}
    for record in records:
        groups.setdefault((record.kind, record.blocked_on, record.created_by), []).append(record)
    summaries = [
        TaskSummary(
            count=len(members),
            kind=members[0].kind,
            blocked_on=blocked_on,
            created_by=site,
            example=members[0].name,
        )
        for (_, blocked_on, site), members in groups.items()
    ]
    summaries.sort(key=lambda s: -s.count)
    return summaries
