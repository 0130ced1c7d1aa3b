"""``examples/plugin_service.py``: started on 127.0.0.1, it answers plugin requests, and keeps
answering them while a large module compiles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _bigmodule import many_functions

httpx = pytest.importorskip("httpx")
pytest.importorskip("aiohttp")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def service(engine: str, tmp_path: Path) -> Iterator[str]:
    large = tmp_path / "large.wasm"
    large.write_bytes(many_functions(10000))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "examples" / "plugin_service.py"),
            *("--port", "0", "--large", str(large)),
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
