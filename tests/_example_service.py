"""Run an example HTTP service (``examples/*.py --port 0``) as a child process for a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def example_service(script: str, engine: str, *args: str) -> Iterator[str]:
    """Start ``examples/<script>`` on port 0 with ``engine``; yields its base URL. On exit it is
    stopped with SIGINT and must end cleanly (exit code 0) within 30 s."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / script), "--port", "0", *args],
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
