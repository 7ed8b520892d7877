"""The ``workpool`` command line (also ``python -m workpool``).

Each subcommand is one `_Command` in `_COMMANDS`: a name, help text, a
function that adds its options, and a function that runs it.  Adding one
(``worker``, ``enqueue``, ...) touches nothing else.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence

import attrs

from . import __version__
from ._cli_args import positive_int as _positive_int

__all__ = ["main"]


@attrs.frozen
class _Command:
    name: str
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    #: Returns the process exit code.
    run: Callable[[argparse.Namespace], int]


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", type=_positive_int, default=2000, metavar="N", help="thumbnail jobs to run (default: 2000)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=50, metavar="N", help="workers of each version (default: 50)"
    )
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop of the workpool version; the ad hoc one is always asyncio (default: asyncio)",
    )


def _run_demo(args: argparse.Namespace) -> int:
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        print("workpool demo: --backend trio needs trio: pip install 'workpool[trio]'", file=sys.stderr)
        return 2
    # Imported here so that other subcommands (and --help) do not pay for it.
    from ._demo import run_demo

    return run_demo(jobs=args.jobs, workers=args.workers, backend=args.backend)


def _configure_worker(parser: argparse.ArgumentParser) -> None:
    from ._cli_worker import configure_worker

    configure_worker(parser)


def _run_worker(args: argparse.Namespace) -> int:
    from ._cli_worker import run_worker

    return run_worker(args)


def _configure_enqueue(parser: argparse.ArgumentParser) -> None:
    from ._cli_worker import configure_enqueue

    configure_enqueue(parser)


def _run_enqueue(args: argparse.Namespace) -> int:
    from ._cli_worker import run_enqueue

    return run_enqueue(args)


_COMMANDS = (
    _Command(
        name="demo",
        help="run a job-queue service the ad hoc asyncio way and the workpool way, side by side",
        description=(
            "Run the same thumbnail service twice: with asyncio.create_task() workers on an "
            "asyncio.Queue, then on workpool Pools. Prints the live task count of each while it "
            "runs and the tasks each leaves behind once its work is done."
        ),
        configure=_configure_demo,
        run=_run_demo,
    ),
    _Command(
        name="worker",
        help="run a worker process that consumes jobs from a Redis stream (needs workpool[redis])",
        description=(
            "Run MODULE:FUNCTION for each job of a Redis stream, as one consumer of a consumer group, "
            "with at-least-once delivery. Logs statistics periodically. The first SIGTERM or SIGINT "
            "stops reading and lets running jobs finish within --grace seconds (exit 0); a second one "
            "cancels them (exit 128 + the signal number). Unfinished jobs go back to the group."
        ),
        configure=_configure_worker,
        run=_run_worker,
    ),
    _Command(
        name="enqueue",
        help="add a job to a Redis stream for each JSON line of standard input (needs workpool[redis])",
        description=(
            "Read JSON documents from standard input, one per line (blank lines are skipped), and add "
            "each to the stream as a job for 'workpool worker'. Stops at the first line that is not "
            "JSON, after adding the lines before it, and exits 1."
        ),
        configure=_configure_enqueue,
        run=_run_enqueue,
    ),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workpool", description="Structured-concurrency worker pools for anyio."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.description)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``workpool`` command line with `argv` (default: ``sys.argv[1:]``).

    Returns the exit code.  Usage errors and ``--help`` exit through
    `SystemExit`, as argparse does (code 2 and 0).
    """
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
