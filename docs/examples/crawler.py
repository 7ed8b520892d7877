# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""Jobs that submit more jobs: a crawler that discovers links as it goes."""

from __future__ import annotations

import sys

import anyio

from workpool import Pool

# A made-up site: each page links to the pages listed.
SITE: dict[str, list[str]] = {
    "/": ["/docs", "/blog", "/about"],
    "/docs": ["/docs/guide", "/docs/api", "/"],
    "/docs/guide": ["/docs/api"],
    "/docs/api": [],
    "/blog": [f"/blog/{n}" for n in range(20)],
    "/about": ["/"],
    **{f"/blog/{n}": ["/", f"/blog/{(n + 1) % 20}"] for n in range(20)},
}


# --8<-- [start:crawler]
async def crawl(start: str) -> set[str]:
    seen = {start}

    async def visit(pool: Pool, path: str) -> None:
        await anyio.sleep(0.001)  # stands in for fetching the page
        for link in SITE[path]:
            if link not in seen:
                seen.add(link)
                # A job may submit to its own pool.  Such submits never wait for
                # room, so a pool whose every worker is submitting cannot deadlock.
                await pool.submit(visit, pool, link)

    # Tiny bounds on purpose: the queue is full most of the time.
    async with Pool(max_workers=2, max_pending=1) as pool:
        await pool.submit(visit, pool, start)
    # Leaving the block waited for the jobs the jobs submitted, too.
    return seen


# --8<-- [end:crawler]


async def main() -> None:
    pages = await crawl("/")
    assert pages == set(SITE)
    print(f"crawled {len(pages)} pages")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
