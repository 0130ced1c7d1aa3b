"""Run every benchmark, both engines side by side (``make bench``):

    python benchmarks/run_all.py --python310 PY310_WITH_WASMER --python3 PY3_WITH_WASMTIME

Each ``bench_*.py`` script runs its measurements under both interpreters in turn and prints one
table; ``--quick`` repeats less; ``--only NAME`` runs the scripts whose name contains NAME.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "bench_loop_lateness.py",
    "bench_compile_overhead.py",
    "bench_cache.py",
    "bench_instantiate.py",
    "bench_boundary.py",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--python310", required=True)
    parser.add_argument("--python3", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    scripts = ORDER + sorted(p.name for p in HERE.glob("bench_*.py") if p.name not in ORDER)
    failed = []
    started = time.perf_counter()
    for name in scripts:
        if args.only not in name:
            continue
        cmd = [
            sys.executable,
            str(HERE / name),
            "--python310",
            args.python310,
            "--python3",
            args.python3,
        ]
        if args.quick:
            cmd.append("--quick")
        print(f"\n# {name}", flush=True)
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(name)
    print(f"\nall benchmarks: {time.perf_counter() - started:.0f} s")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
