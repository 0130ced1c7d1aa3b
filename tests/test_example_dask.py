"""``examples/dask_cluster.py``: a module compiled once, calls mapped over a ``LocalCluster`` of
two worker processes on 127.0.0.1, one instance per worker, a shared ``cache_dir`` compiling
once between the workers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "dask_cluster.py"


def _example() -> object:
    spec = importlib.util.spec_from_file_location("dask_cluster_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dask_cluster_example(engine: str, tmp_path: Path) -> None:
    calls, rounds = 200, 20_000
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            *("--workers", "2", "--calls", str(calls), "--batch", "25"),
            *("--rounds", str(rounds), "--cache-dir", str(tmp_path / "cache"), "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ASYNCWASM_ENGINE": engine, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    spin = _example().spin_in_python  # type: ignore[attr-defined]
    assert out["results"] == [spin(rounds, seed) for seed in range(calls)]
    # One instance per worker process, kept for all the batches it ran; never the client's.
    workers = [w for w, _, _ in out["instances"]]
    pids = {pid for _, pid, _ in out["instances"]}
    assert len(workers) == len(set(workers)) >= 1
    assert os.getpid() not in pids
    # The shared cache_dir: one compilation between the workers, the others loaded it.
    cache = out["cache"]
    assert sum(c["compiles"] for c in cache) == 1
    assert sum(c["disk_hits"] for c in cache) == len(cache) - 1
