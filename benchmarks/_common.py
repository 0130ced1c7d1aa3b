"""Shared parts of the compile-service benchmarks (issue #4).

Every ``bench_*.py`` here works the same way:

* driver mode, ``python bench_x.py --python310 PY310 --python3 PY3``: runs the measurements in a
  worker per engine (wasmer under CPython 3.10, wasmtime under the newer Python), one after the
  other in this one run, and prints one table with both engines side by side, every figure next
  to its target;
* worker mode, ``--worker --engine NAME --json``: measures in this interpreter and prints the
  figures as one JSON list (what the driver, and ``run_all.py``, collect).

``--quick`` repeats less (for development; the README quotes full runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from _bigmodule import many_functions  # noqa: E402  (tests/_bigmodule.py: no engine needed)

__all__ = [
    "Figure",
    "LatenessMonitor",
    "driver_main",
    "generated_module",
    "many_functions",
    "median",
    "qjs_module",
]

GENERATED_FUNCTIONS = 10_000


@dataclass
class Figure:
    """One measured figure of one engine."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


def qjs_module() -> bytes:
    """The real QuickJS module (1.5 MB) of the ``qjs-wasi-reactor.wasm`` package."""
    path = Path(sysconfig.get_paths()["purelib"]) / "qjs-wasi-reactor" / "qjs-wasi-reactor.wasm"
    return path.read_bytes()


def generated_module(nonce: bytes | None = None) -> bytes:
    """A generated module of ~10,000 small functions (1.9 MB)."""
    return many_functions(GENERATED_FUNCTIONS, nonce=nonce)


def median(values: list[float]) -> float:
    return statistics.median(values)


class LatenessMonitor:
    """Ticks every 1 ms on the event loop and records the worst lateness of a tick: how long
    the loop could not run anything. Use as ``async with LatenessMonitor() as m: ...``, then
    ``m.max_ms``."""

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.max_late = 0.0
        self.ticks = 0

    async def _tick(self, started: anyio.Event) -> None:
        started.set()
        while True:
            before = time.perf_counter()
            await anyio.sleep(self.period)
            late = time.perf_counter() - before - self.period
            self.max_late = max(self.max_late, late)
            self.ticks += 1

    async def __aenter__(self) -> LatenessMonitor:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        started = anyio.Event()
        self._tg.start_soon(self._tick, started)
        await started.wait()
        await anyio.sleep(0.01)  # let the ticker settle
        self.max_late = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    @property
    def max_ms(self) -> float:
        return self.max_late * 1000


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def _run_worker(python: str, script: str, engine: str, quick: bool) -> list[dict[str, object]]:
    cmd = [python, script, "--worker", "--engine", engine, "--json"]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "ASYNCWASM_ENGINE": engine, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{engine} worker failed ({proc.returncode})")
    rows: list[dict[str, object]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


def _fmt(value: object, unit: str) -> str:
    if value is None:
        return "n/a"
    assert isinstance(value, (int, float))
    if unit == "x":
        return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:.4g} {unit}"


def print_table(title: str, results: dict[str, list[dict[str, object]]]) -> None:
    engines = list(results)
    names: list[str] = []
    for rows in results.values():
        for row in rows:
            if row["name"] not in names:
                names.append(str(row["name"]))
    width = max(len(n) for n in names) + 2
    print(f"\n## {title}\n")
    header = f"{'figure':<{width}}" + "".join(f"{e:>18}" for e in engines) + "   target"
    print(header)
    print("-" * len(header))
    for name in names:
        cells = []
        targets: list[str] = []
        for e in engines:
            row = next((r for r in results[e] if r["name"] == name), None)
            if row is None:
                cells.append(f"{'-':>18}")
                continue
            mark = {True: " ok", False: " MISS", None: ""}[row["ok"]]  # type: ignore[index]
            cells.append(f"{_fmt(row['value'], str(row['unit'])) + mark:>18}")
            if row["target"]:
                targets.append(f"{e} {row['target']}")
        unique = {t.split(" ", 1)[1] for t in targets}
        target = next(iter(unique)) if len(unique) == 1 else ", ".join(targets)
        print(f"{name:<{width}}" + "".join(cells) + f"   {target}")


def driver_main(
    doc: str, title: str, measure: Callable[[str, bool], Awaitable[list[Figure]]]
) -> None:
    """The command line of a benchmark script (see the module docstring)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--python310", help="interpreter with wasmer (CPython 3.10)")
    parser.add_argument("--python3", help="interpreter with wasmtime")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    if args.worker:
        engine = args.engine or os.environ.get("ASYNCWASM_ENGINE", "wasmtime")
        figures = anyio.run(measure, engine, args.quick)
        rows = [asdict(f) for f in figures]
        if args.json:
            print(json.dumps(rows))
        else:
            print_table(title, {engine: rows})
        return
    script = str(Path(sys.argv[0]).resolve())
    results: dict[str, list[dict[str, object]]] = {}
    for engine, python in (("wasmer", args.python310), ("wasmtime", args.python3)):
        if python:
            results[engine] = _run_worker(python, script, engine, args.quick)
    if not results:
        parser.error("give --python310 and/or --python3")
    print_table(title, results)
    print(f"\n({_machine()}; {time.strftime('%Y-%m-%d %H:%M')})")
