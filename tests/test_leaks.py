"""Memory growth (issue #3, "done when"): a Python function imported into wasm and called
1,000,000 times, and 10,000 instantiate/drop cycles, must not grow the process.

Each scenario runs in a child interpreter, so that the RSS it measures (``/proc/self/statm``) is
not disturbed by the rest of the test run. Run with ``-s`` to see the numbers. The bounds are
generous on purpose: they catch a leak per call or per instance (1,000,000 calls leaking even 32
bytes each would be 32 MB), not allocator noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import asyncwasm

TESTS = Path(__file__).parent
ROOT = TESTS.parent
LIMIT_MB = 20.0

CHILD_PRELUDE = textwrap.dedent(
    """
    import gc, json, os, sys, time
    import asyncwasm as aw
    from asyncwasm._runtime import _set_default_runtime
    from _wat import wat

    _set_default_runtime(aw.Runtime(sys.argv[1]))
    PAGE = os.sysconf("SC_PAGE_SIZE")

    def rss_mb():
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    """
)

HOST_CALLS = CHILD_PRELUDE + textwrap.dedent(
    """
    module = aw.Module(wat('''
        (module (import "env" "f" (func $f (param i32) (result i32)))
          (func (export "run") (param $n i32) (result i32) (local $acc i32)
            (block $done (loop $again
              local.get $n i32.eqz br_if $done
              local.get $acc call $f local.set $acc
              local.get $n i32.const 1 i32.sub local.set $n
              br $again))
            local.get $acc))'''))
    counter = [0]
    def f(x):
        counter[0] += 1
        return x + 1
    run = aw.Instance(module, {"env": {"f": f}}).exports.run
    BATCH = 1000
    for _ in range(100):  # warm-up: 100,000 calls
        run(BATCH)
    before = rss_mb()
    start = time.perf_counter()
    acc = 0
    for _ in range(1000):  # 1,000,000 calls, in 1,000 calls of an export
        acc = run(BATCH)
    seconds = time.perf_counter() - start
    after = rss_mb()
    assert acc == BATCH and counter[0] == 1_100_000, (acc, counter)
    print(json.dumps({"before": before, "after": after, "seconds": seconds}))
    """
)

INSTANTIATE = CHILD_PRELUDE + textwrap.dedent(
    """
    module = aw.Module(wat('''
        (module (import "env" "f" (func $f (param i32) (result i32)))
          (import "env" "mem" (memory 1))
          (export "own" (memory 0))
          (global (export "g") (mut i32) (i32.const 0))
          (table (export "t") 1 funcref)
          (func (export "run") (param i32) (result i32) local.get 0 call $f i32.load8_u))'''))

    def cycle():
        memory = aw.Memory(1)
        memory.buffer[5] = 9
        exports = aw.Instance(module, {"env": {"f": lambda x: x + 1, "mem": memory}}).exports
        assert exports.run(4) == 9
        exports.g.value = 3
        exports.own.buffer[0] = 1

    for _ in range(1000):  # warm-up
        cycle()
    before = rss_mb()
    start = time.perf_counter()
    for _ in range(10_000):
        cycle()
    seconds = time.perf_counter() - start
    after = rss_mb()
    print(json.dumps({"before": before, "after": after, "seconds": seconds}))
    """
)


def _measure(engine: str, code: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    proc = subprocess.run(
        [sys.executable, "-c", code, engine],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        ("1,000,000 host-function calls", HOST_CALLS),
        ("10,000 instantiate/drop cycles", INSTANTIATE),
    ],
)
def test_no_memory_growth(runtime: asyncwasm.Runtime, scenario: str, code: str) -> None:
    result = _measure(runtime.engine, code)
    growth = result["after"] - result["before"]
    print(
        f"\n[{runtime.engine}] {scenario}: RSS {result['before']:.1f} MB -> "
        f"{result['after']:.1f} MB (growth {growth:+.2f} MB) in {result['seconds']:.1f} s"
    )
    assert growth < LIMIT_MB
