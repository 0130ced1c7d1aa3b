"""``examples/plugin_service.py``: started on 127.0.0.1, it answers plugin requests, and keeps
answering them while a large module compiles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _bigmodule import many_functions
from _example_service import example_service

httpx = pytest.importorskip("httpx")
pytest.importorskip("aiohttp")


@pytest.fixture
def service(engine: str, tmp_path: Path) -> Iterator[str]:
    large = tmp_path / "large.wasm"
    large.write_bytes(many_functions(10000))
    with example_service("plugin_service.py", engine, "--large", str(large)) as url:
        yield url


def test_plugin_answers_while_a_large_module_compiles(service: str, engine: str) -> None:
    with httpx.Client(base_url=service, timeout=30) as client:
        assert client.get("/score", params={"x": 7}).json() == {"x": 7, "score": 50}
        assert client.get("/status").json()["engine"] == engine
        assert client.get("/large/add", params={"a": 1, "b": 2}).status_code == 409
        assert client.post("/large").status_code == 202
        answered_while_compiling = 0
        deadline = time.monotonic() + 120
        while client.get("/status").json()["large"] == "compiling":
            x = answered_while_compiling
            assert client.get("/score", params={"x": x}).json()["score"] == x * x + 1
            answered_while_compiling += 1
            assert time.monotonic() < deadline, "the large module never finished compiling"
        status = client.get("/status").json()
        assert status["large"] == "ready", status
        # A ~1 s compile: a loop blocked by it could not have answered many requests meanwhile.
        assert answered_while_compiling >= 5, (answered_while_compiling, status)
        assert client.get("/large/add", params={"a": 40, "b": 2}).json() == {"sum": 42}
