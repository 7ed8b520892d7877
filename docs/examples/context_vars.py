# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""contextvars set by the submitter are visible inside the job."""

from __future__ import annotations

import sys
from contextvars import ContextVar

import anyio

from workpool import Pool

# --8<-- [start:contextvars]
request_id: ContextVar[str] = ContextVar("request_id", default="-")


async def log_line(message: str) -> str:
    await anyio.sleep(0.001)
    # The worker runs this job in a copy of the context submit() was called in.
    return f"[{request_id.get()}] {message}"


async def handle_request(pool: Pool, rid: str) -> str:
    request_id.set(rid)
    job = await pool.submit(log_line, "charging card")
    request_id.set("changed later")  # the job keeps the value it was submitted with
    return await job


async def main() -> None:
    async with Pool(max_workers=2) as pool:
        lines = [await handle_request(pool, f"req-{n}") for n in range(3)]
    assert lines == [f"[req-{n}] charging card" for n in range(3)]
    print("\n".join(lines))


# --8<-- [end:contextvars]


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
