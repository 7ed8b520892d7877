# Executed by tests/test_threads_docs.py: keep it runnable and self-checking.
"""A Flask-style app whose background threads are replaced by a ThreadPool.

No web framework is needed to run it: `handle_signup` has the shape of a
Flask view (it takes the request's form, returns a body and a status), and
`main` plays the server: it starts the app, sends it requests, and shuts it
down.  Each `App` holds its own pool, so `main` can run again in the same
process (a pool is opened once).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from workpool import PoolClosed, PoolFull, ThreadPool, check_cancelled

log = logging.getLogger("app")
sent: list[str] = []
sent_lock = threading.Lock()
cache: dict[str, int] = {}


def send_welcome_email(address: str) -> None:
    time.sleep(0.001)  # stands in for a blocking SMTP call
    with sent_lock:
        sent.append(address)


def refresh_prices() -> None:
    for n, product in enumerate(["apple", "pear", "plum"]):
        check_cancelled()  # a long refresh stops when the app shuts down
        cache[product] = 100 + n


# --8<-- [start:before]
# Before: a thread per request and a forever-thread started at import.
def handle_signup_by_hand(form: dict[str, str]) -> tuple[str, int]:
    address = form["email"]
    # Unbounded: a burst of signups is a burst of threads.  Nobody joins
    # them, a failure is printed to stderr and forgotten, and at exit the
    # daemon thread dies in the middle of its SMTP conversation.
    threading.Thread(target=send_welcome_email, args=(address,), daemon=True).start()
    return "welcome!", 202


def refresh_forever() -> None:
    while True:  # no way to stop it, short of the process ending
        refresh_prices()
        time.sleep(60)


# --8<-- [end:before]


# --8<-- [start:after]
def report_failure(future: Future[Any], exc: Exception) -> None:
    # In a service, one failed email must not stop the others: log it, go on.
    log.error("background job failed", exc_info=exc)


class App:
    """Stands in for a Flask app: the pool lives exactly as long as the app serves."""

    def __init__(self) -> None:
        self.background = ThreadPool(max_workers=4, max_pending=100, on_error=report_failure, name="bg")

    def handle_signup(self, form: dict[str, str]) -> tuple[str, int]:
        """A view (``@app.post("/signup")``): hand the slow part to the pool, answer at once."""
        try:
            self.background.submit_nowait(send_welcome_email, form["email"])
        except PoolFull:
            return "busy, try again", 503  # the pool is behind: shed load
        except PoolClosed:
            return "shutting down", 503
        return "welcome!", 202

    def serve(self, requests: list[dict[str, str]]) -> list[int]:
        """The app's whole life: the pool opens with it and closes with it."""
        with self.background:
            self.background.every(60, refresh_prices, first_run_now=True)  # was refresh_forever()
            statuses = [self.handle_signup(form)[1] for form in requests]
            # Shutdown (SIGTERM, say): give queued emails 10 seconds to go
            # out, then cancel the rest and stop waiting.
            self.background.shutdown(grace=10)
        # Here no thread of the pool is left, and every failure was logged.
        return statuses


# --8<-- [end:after]


def main() -> None:
    sent.clear()
    cache.clear()
    before = set(threading.enumerate())
    requests = [{"email": f"user{n}@example.com"} for n in range(50)]
    statuses = App().serve(requests)
    assert set(statuses) <= {202, 503}
    accepted = [form["email"] for form, status in zip(requests, statuses, strict=True) if status == 202]
    assert sorted(sent) == sorted(accepted)
    assert cache == {"apple": 100, "pear": 101, "plum": 102}
    assert set(threading.enumerate()) == before  # no thread left behind
    print(f"{statuses.count(202)} emails sent, {statuses.count(503)} requests shed, cache {cache}")


if __name__ == "__main__":
    main()
