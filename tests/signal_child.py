"""A worker process for tests/test_signals.py: ``python signal_child.py MODE BACKEND``.

It talks to the test through stdout lines, each flushed at once:

* ``ready`` once it is safe to send a signal (jobs accepted, handlers installed);
* ``draining`` once the first signal has ended the serving block;
* ``exit {json}`` last, from the ``finally`` of ``main``: what happened to the
  jobs (the job's own counts: ``accepted``, ``done``, ``cancelled`` for jobs
  cancelled while running; and the pool's ``stats``), and the names of the
  tasks alive at the start and at the end of ``main``;
* ``threads N`` after the event loop has finished.

Modes:

* ``drain``: `shutdown_on_signals`; the first signal drains the accepted jobs.
  The jobs wait until the draining starts, so none can finish before the
  signal: finishing them all proves the drain.
* ``cancel``: `shutdown_on_signals` with an hour of grace and jobs that never
  finish; the test sends a second signal, which must cancel them at once.
* ``interrupt``: no signal handling; SIGINT is a plain KeyboardInterrupt.
* ``early``: `shutdown_on_signals`, and the process signals itself right after
  entering the block, before anything has awaited (a signal that arrives at
  that moment, from outside, is the same).
* ``consume``: like ``drain``, but the block feeds the pool with
  `Pool.consume` from a source that stays open, as a queue worker does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs

import workpool

N_JOBS = 8


def task_names() -> list[str]:
    """The names of every task alive in the running event loop."""
    if anyio.get_cancelled_exc_class().__module__.startswith("asyncio"):
        import asyncio

        return sorted(t.get_name() for t in asyncio.all_tasks())
    import trio

    names: list[str] = []
    stack: list[Any] = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        names.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return sorted(names)


def say(*words: object) -> None:
    print(*words, flush=True)


async def main(mode: str) -> None:
    tasks_before = task_names()
    counts = {"accepted": 0, "done": 0, "cancelled": 0}
    draining = anyio.Event()
    signal_seen = anyio.Event()

    class SignalSeen(logging.Handler):
        # shutdown_on_signals logs each signal it receives: the jobs of the
        # consume mode use that to start their work only after the signal.
        def emit(self, record: logging.LogRecord) -> None:
            if "received" in record.getMessage():
                signal_seen.set()

    logging.getLogger("workpool").addHandler(SignalSeen(logging.WARNING))

    async def job() -> None:
        try:
            if mode == "cancel":
                await anyio.sleep_forever()
            await draining.wait()
            await anyio.sleep(0.01)  # some work after the signal
        except anyio.get_cancelled_exc_class():
            counts["cancelled"] += 1
            raise
        counts["done"] += 1

    pool: workpool.Pool | None = None
    try:
        async with workpool.Pool(max_workers=3, name="child") as pool:
            if mode == "interrupt":
                for _ in range(N_JOBS):
                    await pool.submit(job)
                    counts["accepted"] += 1
                await anyio.wait_all_tasks_blocked()
                say("ready")
                await anyio.sleep_forever()
            grace = 3600 if mode == "cancel" else 60
            with workpool.shutdown_on_signals(pool, grace=grace):
                if mode == "early":
                    os.kill(os.getpid(), signal.SIGTERM)
                if mode == "consume":

                    async def source() -> AsyncIterator[int]:
                        for n in range(N_JOBS):
                            counts["accepted"] += 1
                            yield n
                        await anyio.wait_all_tasks_blocked()  # see below
                        say("ready")
                        await anyio.sleep_forever()  # an open queue with nothing in it

                    async def consumed(item: int) -> None:
                        # Not `job`: that waits for the block to end, and
                        # consume() returns only after its jobs have ended.
                        try:
                            await signal_seen.wait()
                            await anyio.sleep(0.01)  # some work after the signal
                        except anyio.get_cancelled_exc_class():
                            counts["cancelled"] += 1
                            raise
                        counts["done"] += 1

                    await pool.consume(source(), consumed)
                for _ in range(N_JOBS):
                    await pool.submit(job)
                    counts["accepted"] += 1
                # The listener is a task of the pool, so its signal handlers
                # are installed only once it has run; waiting until every task
                # is blocked makes sure of that.  (shutdown_on_signals gives no
                # other way to know: see test_signals.py, the "early" mode.)
                await anyio.wait_all_tasks_blocked()
                say("ready")
                await anyio.sleep_forever()
            say("draining")
            draining.set()
    finally:
        tasks_after = task_names()
        stats = attrs.asdict(pool.stats) if pool is not None else None
        report = {**counts, "stats": stats, "tasks_before": tasks_before, "tasks_after": tasks_after}
        say("exit", json.dumps(report))


if __name__ == "__main__":
    mode, backend = sys.argv[1], sys.argv[2]
    try:
        anyio.run(main, mode, backend=backend)
    except KeyboardInterrupt:
        say("KeyboardInterrupt")
    except BaseException as exc:
        # What a SIGINT ends an asyncio run with on Python 3.10, and only
        # there (see test_keyboard_interrupt_without_handlers_...).
        if type(exc).__name__ != "CancelledError" or sys.version_info >= (3, 11):
            raise
        say("CancelledError")
    say("threads", threading.active_count())
