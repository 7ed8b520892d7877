"""The ``workpool worker`` and ``workpool enqueue`` commands: a Redis Streams worker process.

Shutdown: the first SIGTERM or SIGINT closes the pool (no new messages are
read; the jobs already accepted finish) and gives them ``--grace`` seconds,
then cancels what is left; the process exits 0 either way, since it stopped
as asked.  A second signal cancels at once and exits with 128 + the signal
number.  Cancelled jobs' messages are handed back to the group when the
stream closes.  The owner may move this drain logic into a Pool-level
shutdown API later; it lives here until then.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import IO, Any

import anyio
import attrs
from anyio.abc import TaskGroup

from ._cli_args import non_negative_int as _non_negative_int
from ._cli_args import positive_int as _positive_int
from ._cli_args import seconds as _seconds
from ._job import Job
from ._pool import Pool
from ._redis_producer import JSON, RedisProducer
from ._redis_stream import RedisStream
from ._validate import check_async_callable

__all__ = ["configure_enqueue", "configure_worker", "run_enqueue", "run_worker"]

logger = logging.getLogger("workpool.worker")

_DEFAULT_URL = "redis://127.0.0.1:6379/0"
_URL_HELP = "Redis URL (default: $WORKPOOL_REDIS_URL, else redis://127.0.0.1:6379/0)"

Handler = Callable[[Any], Awaitable[object]]


class _UsageError(Exception):
    """A mistake on the command line that argparse could not catch: exit 2."""


def _add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis", metavar="URL", default=os.environ.get("WORKPOOL_REDIS_URL", _DEFAULT_URL), help=_URL_HELP
    )
    parser.add_argument("--stream", required=True, metavar="KEY", help="the stream's key")


# -- worker --------------------------------------------------------------------


def configure_worker(parser: argparse.ArgumentParser) -> None:
    """Add the ``worker`` command's arguments to `parser`."""
    parser.add_argument(
        "handler",
        metavar="MODULE:FUNCTION",
        help="the async function that handles one payload, e.g. myapp.jobs:send_mail",
    )
    _add_redis_options(parser)
    parser.add_argument("--group", required=True, metavar="NAME", help="the consumer group")
    parser.add_argument(
        "--consumer", metavar="NAME", help="this process's name in the group (default: HOST-PID-RANDOM)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=10, metavar="N", help="jobs run at once (default: 10)"
    )
    parser.add_argument(
        "--pending",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="messages read ahead and waiting for a worker (default: 0, read only when a worker is free)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long running jobs may take to finish (default: 30)",
    )
    parser.add_argument(
        "--max-deliveries",
        type=_positive_int,
        default=5,
        metavar="N",
        help="deliveries before a failing message goes to the dead-letter stream (default: 5)",
    )
    parser.add_argument(
        "--claim-idle",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="idle time after which a dead consumer's or a failed message is delivered again (default: 60)",
    )
    parser.add_argument(
        "--dead-letter", metavar="KEY", help="the dead-letter stream's key (default: STREAM:dead)"
    )
    parser.add_argument(
        "--job-timeout", type=_seconds, metavar="SECONDS", help="fail a job that runs longer than this"
    )
    parser.add_argument(
        "--stats-interval",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="log statistics this often; 0 for never (default: 30)",
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory put first on sys.path to import the handler from (default: .)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="(default: INFO)",
    )


def run_worker(args: argparse.Namespace) -> int:
    """Run the worker until a signal stops it; returns the exit code."""
    _setup_logging(args.log_level)
    try:
        handler = _load_handler(args.handler, args.app_dir)
    except _UsageError as error:
        print(f"workpool worker: {error}", file=sys.stderr)
        return 2
    try:
        source: RedisStream[Any] = RedisStream(
            args.redis,
            stream=args.stream,
            group=args.group,
            consumer=args.consumer,
            max_deliveries=args.max_deliveries,
            claim_idle=args.claim_idle,
            dead_letter=args.dead_letter,
        )
        # Made here, not once connected: an option the pool refuses is a
        # usage error, found before anything touches Redis.
        pool = Pool(
            max_workers=args.workers,
            max_pending=args.pending,
            on_error=_log_failure,
            job_timeout=args.job_timeout,
            name="workpool-worker",
        )
    except (ModuleNotFoundError, ValueError, TypeError) as error:
        print(f"workpool worker: {error}", file=sys.stderr)
        return 2
    try:
        return anyio.run(_serve, args, source, pool, handler, backend="asyncio")
    except KeyboardInterrupt:  # before the signal handlers were installed
        return 128 + signal.SIGINT
    except Exception as error:
        logger.critical("worker stopped by an error: %s", error, exc_info=error)
        return 1


def _log_failure(job: Job[Any], error: Exception) -> None:
    logger.error("a job failed: %s", error, exc_info=error)


@attrs.define
class _Shutdown:
    # Cancelled by a signal that arrives while the worker starts (connects
    # to Redis, which may hang): there is nothing to drain yet.
    starting: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    serving: bool = False
    draining: bool = False
    exit_code: int = 0


async def _serve(args: argparse.Namespace, source: RedisStream[Any], pool: Pool, handler: Handler) -> int:
    shutdown = _Shutdown()
    # The handlers are installed, and watched, before connecting: a signal
    # during start-up stops the worker instead of killing the process or
    # waiting for a Redis that does not answer.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, signals, pool, args.grace, shutdown, tg)
            with shutdown.starting:
                await _consume(args, source, pool, handler, shutdown, tg)
            tg.cancel_scope.cancel()
    if not shutdown.serving:
        logger.info("worker stopped while starting")
        return shutdown.exit_code
    logger.info("worker stopped: %s", _describe_stats(pool, source))
    return shutdown.exit_code


async def _consume(
    args: argparse.Namespace,
    source: RedisStream[Any],
    pool: Pool,
    handler: Handler,
    shutdown: _Shutdown,
    tg: TaskGroup,
) -> None:
    async with source, pool:
        shutdown.serving = True
        if args.stats_interval > 0:
            tg.start_soon(_log_stats_every, args.stats_interval, pool, source)
        logger.info(
            "worker ready: consumer %r of group %r on stream %r, %d workers; handler %s",
            source.consumer,
            source.group,
            source.stream,
            args.workers,
            args.handler,
        )
        await pool.consume(source, handler)


async def _watch_signals(signals: Any, pool: Pool, grace: float, shutdown: _Shutdown, tg: TaskGroup) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if not shutdown.draining:
            shutdown.draining = True
            if not shutdown.serving:
                logger.info("%s while starting: stopping", name)
                shutdown.starting.cancel()
                continue
            logger.info(
                "%s: draining; running jobs have %g s to finish (send it again to cancel them)", name, grace
            )
            tg.start_soon(_drain, pool, grace)
        else:
            logger.warning("%s again: cancelling the running jobs", name)
            shutdown.exit_code = 128 + signum
            pool.cancel()
            # Not once serving: the stream must still hand the cancelled
            # jobs' messages back to the group as it closes.
            if not shutdown.serving:
                shutdown.starting.cancel()
            return


async def _drain(pool: Pool, grace: float) -> None:
    with anyio.move_on_after(grace) as scope:
        await pool.close()
    if scope.cancelled_caught:
        stats = pool.stats
        logger.warning(
            "grace period of %g s is over with %d jobs unfinished: cancelling them "
            "(their messages go back to the group)",
            grace,
            stats.busy + stats.queued,
        )
        pool.cancel()


async def _log_stats_every(interval: float, pool: Pool, source: RedisStream[Any]) -> None:
    while True:
        await anyio.sleep(interval)
        logger.info("stats: %s", _describe_stats(pool, source))


def _describe_stats(pool: Pool, source: RedisStream[Any]) -> str:
    p = pool.stats
    s = source.stats
    return (
        f"busy={p.busy} queued={p.queued} completed={p.completed} failed={p.failed} "
        f"cancelled={p.cancelled} | read={s.read} claimed={s.claimed} acked={s.acked} "
        f"retried={s.retried} dead_lettered={s.dead_lettered} outstanding={s.outstanding}"
    )


def _load_handler(spec: str, app_dir: str) -> Handler:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise _UsageError(
            f"expected the handler as MODULE:FUNCTION (e.g. myapp.jobs:send_mail), got {spec!r}"
        )
    sys.path.insert(0, os.path.abspath(app_dir))
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise _UsageError(f"cannot import {module_name!r}: {error}") from None
    except Exception:
        raise _UsageError(f"importing {module_name!r} failed:\n{traceback.format_exc()}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    try:
        check_async_callable(target, "workpool worker")
    except TypeError as error:
        raise _UsageError(str(error)) from None
    # Checked above to be an async callable; its signature cannot be checked.
    handler: Handler = target
    return handler


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# -- enqueue -------------------------------------------------------------------


def configure_enqueue(parser: argparse.ArgumentParser) -> None:
    """Add the ``enqueue`` command's arguments to `parser`."""
    _add_redis_options(parser)
    parser.add_argument(
        "--maxlen",
        type=_positive_int,
        metavar="N",
        help="trim the stream to about N entries as jobs are added (default: no trimming)",
    )
    parser.add_argument(
        "--batch",
        type=_positive_int,
        default=500,
        metavar="N",
        help="jobs sent per round trip (default: 500)",
    )


def run_enqueue(args: argparse.Namespace) -> int:
    """Add a job for each JSON line of standard input; returns the exit code."""
    try:
        producer: RedisProducer[Any] = RedisProducer(args.redis, stream=args.stream, maxlen=args.maxlen)
    except (ModuleNotFoundError, ValueError, TypeError) as error:
        print(f"workpool enqueue: {error}", file=sys.stderr)
        return 2
    try:
        return anyio.run(_enqueue_lines, producer, sys.stdin.buffer, args.batch, backend="asyncio")
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Exception as error:
        print(f"workpool enqueue: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


async def _enqueue_lines(producer: RedisProducer[Any], stdin: IO[bytes], batch: int) -> int:
    sent = 0
    line_number = 0
    async with producer:
        while True:
            lines = await anyio.to_thread.run_sync(_read_lines, stdin, batch)
            if not lines:
                break
            payloads: list[object] = []
            bad: str | None = None
            for line in lines:
                line_number += 1
                if not line.strip():
                    continue
                try:
                    payload = json.loads(line)
                except (ValueError, RecursionError) as error:  # nested too deep: RecursionError
                    bad = f"line {line_number} is not JSON ({error})"
                    break
                try:
                    # What enqueue_many will do: a line it cannot encode (a
                    # lone surrogate, say) would fail the whole batch with it.
                    JSON.encode(payload)
                except (ValueError, RecursionError) as error:
                    bad = f"line {line_number} is JSON that cannot be sent ({error})"
                    break
                payloads.append(payload)
            sent += len(await producer.enqueue_many(payloads))
            if bad is not None:
                print(
                    f"workpool enqueue: {bad}; stopped there, after adding {sent} jobs to "
                    f"stream {producer.stream!r}",
                    file=sys.stderr,
                )
                return 1
    print(f"workpool enqueue: added {sent} jobs to stream {producer.stream!r}", file=sys.stderr)
    return 0


def _read_lines(stdin: IO[bytes], count: int) -> list[bytes]:
    lines: list[bytes] = []
    for line in stdin:
        lines.append(line)
        if len(lines) >= count:
            break
    return lines
