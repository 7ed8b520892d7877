# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""`Pool.consume`: workers that drain a channel and stop when it is closed."""

from __future__ import annotations

import sys

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from workpool import Pool


# --8<-- [start:consume]
async def produce(send: MemoryObjectSendStream[int]) -> None:
    async with send:  # closing the send side is how the consumers learn to stop
        for order_id in range(100):
            await send.send(order_id)


async def main() -> None:
    processed: list[int] = []

    async def process(order_id: int) -> None:
        await anyio.sleep(0.001)  # stands in for real work
        processed.append(order_id)

    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=10)
    async with anyio.create_task_group() as tg, Pool(max_workers=8) as pool:
        tg.start_soon(produce, send)
        # Returns when the channel is closed and empty and every job it
        # started has finished.
        async with receive:
            await pool.consume(receive, process)
        assert sorted(processed) == list(range(100))
    print(f"processed {len(processed)} orders")


# --8<-- [end:consume]


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
