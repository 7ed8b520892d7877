"""Running a job's coroutine inside the context its submitter had.

A worker task runs many jobs, but each job must see the contextvars of the
task that submitted it (request ids, tracing spans), as a task created with
``asyncio.create_task`` would.  Creating a task per job would cost several
microseconds, so instead the worker steps the job's coroutine itself, each
step inside ``Context.run``.  The values the coroutine yields (asyncio futures,
trio traps) pass through untouched, so this works on every anyio backend.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from contextvars import Context, ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["current_job", "resume_in_context"]

#: The job whose code is running, set in each job's own context by the pool.
current_job: ContextVar[Job[Any] | None] = ContextVar("workpool.current_job", default=None)


@types.coroutine
def resume_in_context(ctx: Context, coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Finish running `coro` in `ctx`, after its first step yielded `yielded`.

    The worker takes the first step itself (most jobs in a hot loop finish
    there without suspending), and only a job that suspends pays for this
    generator.
    """
    send = coro.send
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation included: the job decides
            try:
                yielded = ctx.run(coro.throw, exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = ctx.run(send, sent)
            except StopIteration as stop:
                return stop.value
