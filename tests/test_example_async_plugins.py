"""``examples/async_plugins.py``: 200 concurrent requests, each suspending its plugin on an async
lookup, finish in about one lookup latency, not 200."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("aiohttp")

REPO = Path(__file__).resolve().parent.parent
LATENCY = 1.0
REQUESTS = 200


@pytest.fixture
def service(engine: str) -> Iterator[str]:
    # The wasmer run borrows the wasm-tools CLI of the other environment (see the Makefile).
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "examples" / "async_plugins.py"),
            *("--port", "0", "--latency", str(LATENCY)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ASYNCWASM_ENGINE": engine, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), proc.stderr.read() if proc.stderr else line
        yield line.split()[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("the service did not stop on SIGINT")
        assert proc.returncode == 0, err


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
