"""Running each job inside the context its submitter had, without a task per job.

A worker task runs many jobs, but each job must see the contextvars of the
task that submitted it (request ids, tracing spans), as a task created with
``asyncio.create_task`` would.  A task per job would cost several
microseconds, so instead every worker owns a `JobRunner`: a generator that
runs the jobs it is sent with ``yield from``, each step driven inside the
job's `contextvars.Context` with ``Context.run``.  The values a job yields
(asyncio futures, trio traps) pass through it untouched, so this works on
every anyio backend.

Why a long-lived generator rather than stepping each job's coroutine by
hand: a coroutine that finishes raises StopIteration at whoever steps it,
and raising and catching that exception per job was a large part of why
the runner made a no-op job 40% cheaper (benchmarks/README.md); ``yield
from`` takes the return value without one.
"""

from __future__ import annotations

import types
from collections.abc import Generator
from contextvars import Context, ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["JobRunner", "Outcome", "current_job", "resume_in_context"]

#: The job whose code is running, set in each job's own context by the pool.
current_job: ContextVar[Job[Any] | None] = ContextVar("workpool.current_job", default=None)


class Outcome:
    """How the last job a `JobRunner` ran ended: its value, or the exception it raised."""

    __slots__ = ("closing", "error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        # Set when the worker closes its runner: only that GeneratorExit ends
        # the runner; one that a job raises is the job's failure.
        self.closing = False


_CoroutineType = types.CoroutineType


@types.coroutine
def _run_jobs(outcome: Outcome) -> Generator[Any, Any, None]:
    # Each job arrives through send(); the generator yields `outcome` when
    # the job has ended, and passes everything else the job yields up to the
    # event loop.  Nothing escapes it but GeneratorExit, so one runner serves
    # a worker for its whole life.
    job: Any = None
    awaitable: Any = None
    while True:
        job = awaitable = None  # an idle worker keeps no job alive
        job = yield outcome
        current_job.set(job)
        try:
            awaitable = job._fn(*job._args)
            if awaitable.__class__ is not _CoroutineType:
                awaitable = _iterate(awaitable, job._fn)
            outcome.value = yield from awaitable
        except GeneratorExit as exc:
            if outcome.closing:
                raise
            outcome.error = exc
        except StopIteration as exc:  # from fn(*args): must not pass for "returned"
            # No local variable: an idle worker's runner must hold nothing.
            outcome.error = RuntimeError(f"{job._fn!r} raised StopIteration")
            outcome.error.__cause__ = exc
        except BaseException as exc:  # cancellation included: the worker decides
            outcome.error = exc


def _iterate(awaitable: object, fn: object) -> Any:
    kind: type[object] = type(awaitable)
    await_ = getattr(kind, "__await__", None)
    if await_ is None:
        raise TypeError(
            f"{fn!r} returned {kind.__name__}, not an awaitable; workpool jobs must be async functions"
        )
    return await_(awaitable)


class JobRunner:
    """One worker's way of running jobs in their own contexts (see the module docstring).

    ``yielded = job._ctx.run(runner.send, job)`` starts a job; if `yielded`
    is `outcome`, the job has ended already (most jobs in a hot loop do),
    otherwise ``await resume_in_context(...)`` runs it to its end.  Either
    way `outcome` then says how it ended.
    """

    __slots__ = ("outcome", "send", "steps", "throw")

    def __init__(self) -> None:
        self.outcome = Outcome()
        # Typed as what it is at run time: types.coroutine returns the generator.
        self.steps: types.GeneratorType[Any, Any, None] = _run_jobs(self.outcome)  # type: ignore[assignment]
        self.send = self.steps.send
        self.throw = self.steps.throw
        self.send(None)

    def close(self) -> None:
        self.outcome.closing = True
        self.steps.close()

    @property
    def job_coroutine(self) -> Any:
        """What the running job's coroutine is, while it is suspended (for dumps); else None."""
        return self.steps.gi_yieldfrom


@types.coroutine
def resume_in_context(ctx: Context, runner: JobRunner, yielded: Any) -> Generator[Any, Any, None]:
    """Run the job that `runner` started in `ctx` to its end, after it first yielded `yielded`.

    Only a job that suspends pays for this generator.  A cancellation (or any
    exception) delivered to the worker goes into the job, which decides what
    to do with it; how the job ended is in ``runner.outcome`` afterwards.
    """
    send, throw, done = runner.send, runner.throw, runner.outcome
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            runner.close()
            raise
        except BaseException as exc:
            yielded = ctx.run(throw, exc)
        else:
            yielded = ctx.run(send, sent)
        if yielded is done:
            return
