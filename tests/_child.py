"""Running Python code in a fresh interpreter: for the cases that could kill or hang the test
process (an engine abort, a bomb, Ctrl-C), which the tests then judge from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def run_python(
    code: str, *, timeout: float, engine: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter (the repository and tests/ importable; on ``engine``
    when given). A child still running after ``timeout`` seconds fails the caller."""
    env = dict(os.environ)
    if engine is not None:
        env["ASYNCWASM_ENGINE"] = engine
    paths = [str(ROOT), str(TESTS), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def run_json(code: str, *, engine: str, timeout: float) -> dict[str, object]:
    """``run_python`` for a child that must succeed and prints one JSON object last."""
    proc = run_python(code, timeout=timeout, engine=engine)
    assert proc.returncode == 0, f"child failed ({proc.returncode}): {proc.stderr[-3000:]}"
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
