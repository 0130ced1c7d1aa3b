"""``examples/async_plugins.py``: 200 concurrent requests, each suspending its plugin on an async
lookup, finish in about one lookup latency, not 200."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from _example_service import example_service

httpx = pytest.importorskip("httpx")
pytest.importorskip("aiohttp")

LATENCY = 1.0
REQUESTS = 200


@pytest.fixture
def service(engine: str) -> Iterator[str]:
    # The wasmer run borrows the wasm-tools CLI of the other environment (see the Makefile).
    with example_service("async_plugins.py", engine, "--latency", str(LATENCY)) as url:
        yield url


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_concurrent_requests_take_about_one_latency(service: str) -> None:
    import anyio

    prices = {1: 10, 2: 25, 3: 30, 4: 99}
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=service, timeout=60, limits=limits) as client:
        # One request first: the service is up and the answer is right (10% off from 10 on).
        response = await client.get("/quote", params={"item": 3, "quantity": 12})
        assert response.json() == {"item": 3, "quantity": 12, "total": 324}
        results: dict[int, dict[str, int]] = {}

        async def one(i: int) -> None:
            item, quantity = i % 5, i % 13 + 1
            r = await client.get("/quote", params={"item": item, "quantity": quantity})
            r.raise_for_status()
            results[i] = r.json()

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(REQUESTS):
                tg.start_soon(one, i)
        elapsed = time.perf_counter() - started
    for i, body in results.items():
        item, quantity = i % 5, i % 13 + 1
        total = quantity * prices.get(item, 0)
        if quantity >= 10:
            total -= total // 10
        assert body == {"item": item, "quantity": quantity, "total": total}
    assert len(results) == REQUESTS
    # Sequential would take REQUESTS * LATENCY (200 s); a generous bound, not a timing test.
    print(f"\n{REQUESTS} requests, lookup latency {LATENCY} s: {elapsed:.2f} s")
    assert elapsed < 20 * LATENCY, f"{REQUESTS} requests took {elapsed:.2f} s"
