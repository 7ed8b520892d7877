"""``workpool worker`` and ``workpool enqueue`` as processes, against a real Redis server.

Worker processes are real subprocesses, killed and signalled for real.  Each
test uses its own stream and group names and deletes its streams afterwards.
Nothing waits on a sleep: the tests poll Redis, the handlers' output files
and the workers' logs until a condition holds, within a deadline, and every
subprocess call has a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_support import URL, Names, unique_names
from workpool.__main__ import main

# Handlers for the worker processes.  Each process appends to its own file
# with unbuffered writes before its job returns, so a job that was
# acknowledged is always on record, even if its process is then killed.
HANDLERS = textwrap.dedent(
    """
    import os

    import anyio

    _out = None


    def _write(line):
        global _out
        if _out is None:
            path = os.path.join(os.environ["WORKPOOL_TEST_OUT"], f"{os.getpid()}.log")
            _out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(_out, line.encode() + b"\\n")


    async def record(payload):
        await anyio.sleep(0.001)
        _write(str(payload["n"]))


    async def slow(payload):
        _write(f"start {payload['n']}")
        await anyio.sleep(payload.get("seconds", 0.3))
        _write(f"done {payload['n']}")


    def not_async(payload):
        pass
    """
)


@pytest.fixture
def names() -> Iterator[Names]:
    yield from unique_names()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    (tmp_path / "out").mkdir()
    yield tmp_path
    # In-process tests import it: another test's handlers.py must not find it cached.
    sys.modules.pop("handlers", None)


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    with redis.Redis.from_url(URL, decode_responses=True) as client:
        yield client


class Worker:
    """A ``workpool worker`` process whose log goes to a file."""

    def __init__(self, app: Path, names: Names, handler: str, *options: str, url: str = URL) -> None:
        self.log = app / f"worker-{time.monotonic_ns()}.log"
        env = {**os.environ, "WORKPOOL_TEST_OUT": str(app / "out")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workpool",
                    "worker",
                    f"handlers:{handler}",
                    "--app-dir",
                    str(app),
                    "--redis",
                    url,
                    "--stream",
                    names.stream,
                    "--group",
                    names.group,
                    "--dead-letter",
                    names.dead,
                    *options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_log(self, text: str, timeout: float = 15) -> None:
        poll(lambda: text in self.output() or self.process.poll() is not None, timeout)
        assert text in self.output(), self.output()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"the worker did not exit within {timeout} s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def poll(condition: Callable[[], bool], timeout: float) -> None:
    """Check `condition` every 20 ms until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {condition}")
        time.sleep(0.02)


def output_lines(app: Path) -> list[str]:
    return [line for path in (app / "out").iterdir() for line in path.read_text().splitlines()]


def enqueue(names: Names, lines: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workpool", "enqueue", "--redis", URL, "--stream", names.stream, *options],
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def group_info(admin: redis.Redis, names: Names) -> dict[str, Any]:
    groups: list[dict[str, Any]] = admin.xinfo_groups(names.stream)
    (info,) = [g for g in groups if g["name"] == names.group]
    return info


def test_three_workers_one_killed_lose_no_job(
    names: Names, app: Path, admin: redis.Redis, workers: list[Worker], record_property: Any
) -> None:
    jobs = 10_000
    result = enqueue(names, "".join(json.dumps({"n": n}) + "\n" for n in range(jobs)))
    assert result.returncode == 0, result.stderr
    assert f"added {jobs} jobs" in result.stderr
    options = ("--workers", "20", "--claim-idle", "1", "--stats-interval", "0.5")
    workers.extend(Worker(app, names, "record", *options) for _ in range(3))
    for worker in workers:
        worker.wait_for_log("worker ready")

    # Kill one while the run is well under way.
    poll(lambda: len(output_lines(app)) >= jobs // 4, timeout=30)
    victim = workers[0]
    victim.process.kill()
    assert victim.wait() == -signal.SIGKILL

    # The survivors claim what it held once it has been idle for claim_idle.
    def all_done() -> bool:
        info = group_info(admin, names)
        return info["lag"] == 0 and info["pending"] == 0

    poll(all_done, timeout=40)
    for worker in workers[1:]:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()

    processed = Counter(int(line) for line in output_lines(app))
    assert set(processed) == set(range(jobs)), "jobs were lost"
    duplicates = sum(processed.values()) - jobs
    record_property("duplicates", duplicates)
    print(f"\n{jobs} jobs, {duplicates} processed twice (run but not acknowledged by the killed worker)")
    # Only what the killed worker held can run twice: at most its 20 workers' worth.
    assert duplicates <= 20
    assert "claimed=" in workers[1].output()
    claimed = sum(
        int(line.rsplit("claimed=", 1)[1].split()[0])
        for worker in workers[1:]
        for line in worker.output().splitlines()
        if "worker stopped" in line
    )
    assert claimed >= 1, "nobody claimed the killed worker's messages"


def test_sigterm_drains_jobs_in_flight_and_exits_0(
    names: Names, app: Path, admin: redis.Redis, workers: list[Worker]
) -> None:
    result = enqueue(names, "".join(json.dumps({"n": n}) + "\n" for n in range(20)))
    assert result.returncode == 0, result.stderr
    worker = Worker(app, names, "slow", "--workers", "4", "--pending", "2", "--grace", "10")
    workers.append(worker)
    worker.wait_for_log("worker ready")
    poll(lambda: sum(line.startswith("start") for line in output_lines(app)) >= 4, timeout=15)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    assert "SIGTERM: draining" in worker.output()

    lines = output_lines(app)
    started = {line.split()[1] for line in lines if line.startswith("start")}
    done = {line.split()[1] for line in lines if line.startswith("done")}
    assert started == done, "a job that started did not finish"
    info = group_info(admin, names)
    # Every message it read was processed and acknowledged; the rest are still unread.
    assert info["pending"] == 0
    assert info["entries-read"] == len(done)
    assert info["lag"] == 20 - len(done)
    assert len(done) < 20


def test_after_the_grace_period_jobs_are_cancelled_and_handed_back(
    names: Names, app: Path, admin: redis.Redis, workers: list[Worker]
) -> None:
    enqueue(names, json.dumps({"n": 1, "seconds": 3600}) + "\n")
    worker = Worker(app, names, "slow", "--grace", "0.5")
    workers.append(worker)
    worker.wait_for_log("worker ready")
    poll(lambda: output_lines(app) == ["start 1"], timeout=15)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    assert "grace period of 0.5 s is over with 1 jobs unfinished" in worker.output()
    (entry,) = admin.xpending_range(names.stream, names.group, "-", "+", 10)
    # Handed back: it looks idle for a year, so any live consumer claims it now.
    assert entry["time_since_delivered"] > 300 * 24 * 3600 * 1000


def test_a_second_signal_cancels_at_once(
    names: Names, app: Path, admin: redis.Redis, workers: list[Worker]
) -> None:
    enqueue(names, json.dumps({"n": 1, "seconds": 3600}) + "\n")
    worker = Worker(app, names, "slow", "--grace", "3600")
    workers.append(worker)
    worker.wait_for_log("worker ready")
    poll(lambda: output_lines(app) == ["start 1"], timeout=15)
    worker.signal(signal.SIGINT)
    worker.wait_for_log("SIGINT: draining")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 128 + signal.SIGTERM, worker.output()
    assert "SIGTERM again: cancelling the running jobs" in worker.output()
    assert "Traceback" not in worker.output()
    assert admin.xpending(names.stream, names.group)["pending"] == 1


def test_a_signal_while_connecting_stops_the_worker(names: Names, app: Path, workers: list[Worker]) -> None:
    # A Redis that accepts the connection and never answers (overloaded, or
    # cut off by a partition) holds the worker in its start-up.  A SIGTERM
    # must stop it there (exit 0), not wait for Redis or need a SIGKILL.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(20)
        port = server.getsockname()[1]
        worker = Worker(app, names, "record", url=f"redis://127.0.0.1:{port}/0")
        workers.append(worker)
        connection, _ = server.accept()  # connecting now, its signal handlers installed
        with connection:
            worker.signal(signal.SIGTERM)
            assert worker.wait(15) == 0, worker.output()
    assert "SIGTERM while starting: stopping" in worker.output()
    assert "Traceback" not in worker.output()


def test_an_option_the_pool_refuses_is_a_usage_error_found_before_connecting(
    app: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # argparse takes --job-timeout 0 (it is a number of seconds), Pool does
    # not: exit 2, and without connecting (nothing answers on port 1).
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = ["worker", "handlers:record", "--app-dir", str(app), "--redis", "redis://127.0.0.1:1/0"]
    code = main([*argv, "--stream", "s", "--group", "g", "--job-timeout", "0"])
    assert code == 2
    assert "job_timeout" in capsys.readouterr().err


def test_enqueue_stops_at_the_first_line_that_is_not_json(names: Names, admin: redis.Redis) -> None:
    result = enqueue(names, '{"a": 1}\n\n  \n[2]\nnot json\n{"b": 3}\n', "--batch", "2")
    assert result.returncode == 1
    assert "line 5 is not JSON" in result.stderr
    assert "after adding 2 jobs" in result.stderr
    assert [fields for _, fields in admin.xrange(names.stream)] == [
        {"payload": '{"a":1}'},
        {"payload": "[2]"},
    ]


def test_enqueue_stops_at_a_json_line_it_cannot_send(names: Names, admin: redis.Redis) -> None:
    # JSON with a lone surrogate parses, but cannot be encoded as UTF-8: it
    # stops the run like a line that is not JSON, and the lines before it
    # (in the same batch too) are added.
    result = enqueue(names, '{"a": 1}\n"\\ud800"\n{"b": 3}\n')
    assert result.returncode == 1, result.stderr
    assert "line 2 is JSON that cannot be sent" in result.stderr
    assert "after adding 1 jobs" in result.stderr
    assert [fields for _, fields in admin.xrange(names.stream)] == [{"payload": '{"a":1}'}]


def test_enqueue_stops_at_a_line_nested_too_deep(names: Names, admin: redis.Redis) -> None:
    # json.loads raises RecursionError, not ValueError, for it.
    result = enqueue(names, '{"a": 1}\n' + "[" * 100_000 + "]" * 100_000 + '\n{"b": 3}\n')
    assert result.returncode == 1, result.stderr
    assert "line 2 is not JSON" in result.stderr
    assert "after adding 1 jobs" in result.stderr
    assert [fields for _, fields in admin.xrange(names.stream)] == [{"payload": '{"a":1}'}]


def test_enqueue_trims_to_maxlen(names: Names, admin: redis.Redis) -> None:
    result = enqueue(names, "1\n" * 2000, "--maxlen", "100")
    assert result.returncode == 0, result.stderr
    assert 100 <= admin.xlen(names.stream) < 400


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("handlers", "expected the handler as MODULE:FUNCTION"),
        ("no_such_module:run", "cannot import 'no_such_module'"),
        ("handlers:missing", "'handlers' has no attribute 'missing'"),
        ("handlers:not_async", "expected an async function"),
    ],
)
def test_a_bad_handler_is_a_usage_error(
    app: Path, handler: str, message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    code = main(["worker", handler, "--app-dir", str(app), "--stream", "s", "--group", "g"])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "m:f", "--group", "g"],
        ["worker", "m:f", "--stream", "s"],
        ["worker", "m:f", "--stream", "s", "--group", "g", "--workers", "0"],
        ["worker", "m:f", "--stream", "s", "--group", "g", "--grace", "-1"],
        ["enqueue"],
        ["enqueue", "--stream", "s", "--maxlen", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: workpool" in capsys.readouterr().err
