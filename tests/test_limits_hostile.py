"""Limits for untrusted modules (issue 12): hostile modules against ``Runtime(limits=...)``.

Each attack runs in a child process (a bomb without its limit would take the machine's memory,
a loop without its deadline would hang, a stack overflow or wasmer's ``table.grow`` abort could
kill the process): the child reports what happened as JSON, with its peak resident memory
(``VmHWM``), and the test asserts the contract's error, that the runtime keeps serving new
instances afterwards, and that the peak stays under the cap plus 100 MB. Time is never asserted
(``benchmarks/bench_limits.py`` measures it).
"""

from __future__ import annotations

import gc
import textwrap
import threading
import time

import pytest
from _child import run_json
from _wat import wat

import asyncwasm

MB = 1 << 20
MEMORY_CAP = 64 * MB

# The child's prologue: helpers to measure memory and to check that the runtime still serves.
PROLOGUE = """
import json, sys
import asyncwasm as aw
from _wat import wat

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

ADD = wat('(module (func (export "add") (param i32 i32) (result i32) '
          'local.get 0 local.get 1 i32.add))')

def still_serving(rt):
    return aw.Instance(aw.Module(ADD, runtime=rt)).exports.add(2, 3) == 5

def trap(call):
    try:
        call()
    except aw.RuntimeError as error:
        return error.trap
    return None

out = {}
"""

EPILOGUE = """
out["peak"] = peak()
print(json.dumps(out))
"""


def run_child(engine: str, *parts: str, timeout: float = 300.0) -> dict[str, object]:
    """Run the code ``parts`` in a fresh interpreter on ``engine``; they fill the dict ``out``."""
    code = PROLOGUE + "".join(textwrap.dedent(part) for part in parts) + EPILOGUE
    return run_json(code, engine=engine, timeout=timeout)


def under_cap(result: dict[str, object], cap: int = MEMORY_CAP) -> None:
    peak = result["peak"]
    assert isinstance(peak, int)
    assert 0 < peak < cap + 100 * MB, f"peak {peak / MB:.0f} MiB"


# -- the attacks -------------------------------------------------------------------------------


def test_memory_bomb(engine: str) -> None:
    # Grows its memory 1 MiB at a time, writing every new page (so it is resident), until
    # memory.grow says no.
    result = run_child(
        engine,
        f"""
        BOMB = wat('''(module (memory (export "m") 0)
          (func (export "bomb") (result i32) (local $pages i32)
            (loop $l
              (local.set $pages (memory.grow (i32.const 16)))
              (if (i32.ne (local.get $pages) (i32.const -1)) (then
                (memory.fill (i32.mul (local.get $pages) (i32.const 65536)) (i32.const 1)
                             (i32.const 1048576))
                (br $l))))
            (memory.size)))''')
        rt = aw.Runtime(limits=aw.Limits(memory={MEMORY_CAP}))
        inst = aw.Instance(aw.Module(BOMB, runtime=rt))
        out["pages"] = inst.exports.bomb()
        try:
            inst.exports.m.grow(1)
            out["python_grow"] = "grew"
        except aw.RangeError:
            out["python_grow"] = "RangeError"
        out["serving"] = still_serving(rt)
        """,
    )
    assert result["pages"] == MEMORY_CAP // 65536
    assert result["python_grow"] == "RangeError"
    assert result["serving"] is True
    under_cap(result)


def test_memory_larger_than_the_cap_at_instantiation(engine: str) -> None:
    result = run_child(
        engine,
        f"""
        rt = aw.Runtime(limits=aw.Limits(memory={MEMORY_CAP}))
        big = aw.Module(wat('(module (memory 2048))'), runtime=rt)  # 128 MiB
        try:
            aw.Instance(big)
            out["outcome"] = "instantiated"
        except aw.RangeError:
            out["outcome"] = "RangeError"
        try:
            aw.Memory({{"initial": 2048}}, runtime=rt).grow(0)
            out["host_memory"] = "made"
        except aw.RangeError:
            out["host_memory"] = "RangeError"
        out["serving"] = still_serving(rt)
        """,
    )
    assert result["outcome"] == "RangeError"
    assert result["host_memory"] == "RangeError"
    assert result["serving"] is True
    under_cap(result)


TABLE_BOMB = """
TABLE = wat('''(module (table (export "t") 1 funcref)
  (func (export "grow") (param i32) (result i32) ref.null func local.get 0 table.grow 0)
  (func (export "bomb") (result i32)
    (loop $l (br_if $l (i32.ne (table.grow 0 (ref.null func) (i32.const 100000))
                               (i32.const -1))))
    (table.size 0)))''')
"""


def test_table_bomb(engine: str) -> None:
    result = run_child(
        engine,
        TABLE_BOMB,
        """
        rt = aw.Runtime(limits=aw.Limits(table_elements=1_000_001))
        inst = aw.Instance(aw.Module(TABLE, runtime=rt))
        out["huge"] = inst.exports.grow(2**31)
        out["size"] = inst.exports.bomb()
        if rt.features.host_tables:
            try:
                inst.exports.t.grow(1)
                out["python_grow"] = "grew"
            except aw.RangeError:
                out["python_grow"] = "RangeError"
        out["serving"] = still_serving(rt)
        """,
    )
    assert result["huge"] == -1
    assert result["size"] == 1_000_001
    assert result.get("python_grow", "RangeError") == "RangeError"
    assert result["serving"] is True
    under_cap(result)


def test_table_grow_by_2_31_without_limits_is_minus_one(engine: str) -> None:
    # wasmer aborted the process here (SIGABRT, "memory allocation failed") without the default
    # table maximum written into the module.
    result = run_child(
        engine,
        TABLE_BOMB,
        """
        inst = aw.Instance(aw.Module(TABLE))
        out["huge"] = inst.exports.grow(2**31)
        out["small"] = inst.exports.grow(10)
        """,
    )
    assert result["huge"] == -1
    assert result["small"] == 1


LOOP = """
LOOP = wat('''(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))''')
"""


def test_infinite_loop_under_timeout(engine: str) -> None:
    result = run_child(
        engine,
        LOOP,
        """
        import asyncio
        try:
            rt = aw.Runtime(limits=aw.Limits(timeout=0.2))
        except aw.NotSupportedError:
            out["supported"] = False
        else:
            out["supported"] = True
            inst = aw.Instance(aw.Module(LOOP, runtime=rt))
            out["sync"] = trap(inst.exports.spin)
            out["again"] = trap(inst.exports.spin)
            out["usable"] = inst.exports.count(1000)

            async def main():
                ticks = 0
                async def ticker():
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1
                task = asyncio.ensure_future(ticker())
                try:
                    await aw.promising(inst.exports.spin)()
                except aw.RuntimeError as error:
                    out["promising"] = error.trap
                task.cancel()
                out["loop_ran"] = ticks > 0
            asyncio.run(main())
            out["serving"] = still_serving(rt)
        """,
    )
    if engine == "wasmer":
        assert result["supported"] is False
        return
    assert result["sync"] == "timeout"
    assert result["again"] == "timeout"
    assert result["usable"] == 1000
    assert result["promising"] == "timeout"
    assert result["loop_ran"] is True  # the promising call yielded while it spun
    assert result["serving"] is True
    under_cap(result)


def test_infinite_loop_under_fuel(engine: str) -> None:
    result = run_child(
        engine,
        LOOP,
        """
        import asyncio
        try:
            rt = aw.Runtime(limits=aw.Limits(fuel=1_000_000))
        except aw.NotSupportedError:
            out["supported"] = False
        else:
            out["supported"] = True
            inst = aw.Instance(aw.Module(LOOP, runtime=rt))
            out["sync"] = trap(inst.exports.spin)
            # Counted afresh per call: each of these fits in 1e6 units, all together don't.
            out["fresh"] = [inst.exports.count(100_000) for _ in range(20)]
            out["too_long"] = trap(lambda: inst.exports.count(10_000_000))

            async def main():
                try:
                    await aw.promising(inst.exports.spin)()
                except aw.RuntimeError as error:
                    out["promising"] = error.trap
            asyncio.run(main())
            out["serving"] = still_serving(rt)
        """,
    )
    if engine == "wasmer":
        assert result["supported"] is False
        return
    assert result["sync"] == "out_of_fuel"
    assert result["fresh"] == [100_000] * 20
    assert result["too_long"] == "out_of_fuel"
    assert result["promising"] == "out_of_fuel"
    assert result["serving"] is True


def test_infinite_recursion(engine: str) -> None:
    result = run_child(
        engine,
        f"""
        REC = wat('''(module (func $f (export "f") (param i32) (result i32)
          (call $f (i32.add (local.get 0) (i32.const 1)))))''')
        for name, limits in (("none", None), ("limits", aw.Limits(memory={MEMORY_CAP}))):
            rt = aw.Runtime(limits=limits)
            inst = aw.Instance(aw.Module(REC, runtime=rt))
            out[name] = [trap(lambda: inst.exports.f(0)) for _ in range(3)]
            out[name + "_serving"] = still_serving(rt)
        """,
    )
    assert result["none"] == ["stack_overflow"] * 3
    assert result["limits"] == ["stack_overflow"] * 3
    assert result["none_serving"] is True
    assert result["limits_serving"] is True
    # wasmer builds a trap message listing every frame (~523k frames, 15 MB of text) and a
    # backtrace behind it: its peak was ~220 MiB here, which no Limits setting bounds.
    under_cap(result, MEMORY_CAP if engine == "wasmtime" else 256 * MB)


def test_instance_flood(engine: str) -> None:
    result = run_child(
        engine,
        """
        import gc
        rt = aw.Runtime(limits=aw.Limits(instances=100, memory=1 << 20))
        module = aw.Module(wat('(module (memory 16))'), runtime=rt)
        kept = []
        try:
            while len(kept) < 10_000:
                kept.append(aw.Instance(module))
            out["outcome"] = "no limit"
        except aw.RangeError:
            out["outcome"] = "RangeError"
        out["made"] = len(kept)
        kept.clear()
        gc.collect()
        out["serving"] = still_serving(rt)
        out["again"] = len([aw.Instance(module) for _ in range(50)])
        """,
    )
    assert result["outcome"] == "RangeError"
    assert result["made"] == 100
    assert result["serving"] is True
    assert result["again"] == 50
    under_cap(result)


# -- the API -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory": -1},
        {"table_elements": 1.5},
        {"instances": True},
        {"fuel": "1"},
        {"timeout": 0},
        {"timeout": float("inf")},
        {"timeout": -1.0},
    ],
)
def test_bad_limits_are_value_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Limits"):
        asyncwasm.Limits(**kwargs)  # type: ignore[arg-type]


def test_limits_are_keyword_only_and_a_runtime_says_what_it_has(engine: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Limits(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Limits"):
        asyncwasm.Runtime(engine, limits={"memory": 1})  # type: ignore[arg-type]
    limits = asyncwasm.Limits(memory=1 << 20, instances=3)
    rt = asyncwasm.Runtime(engine, limits=limits)
    try:
        assert rt.limits == limits
        assert asyncwasm.Runtime(engine).limits is None
        assert rt.features.timeouts is (engine == "wasmtime")
        assert rt.features.fuel is (engine == "wasmtime")
    finally:
        rt.close()


def test_what_an_engine_cannot_enforce_fails_at_runtime_creation(engine: str) -> None:
    for limits in (asyncwasm.Limits(fuel=10), asyncwasm.Limits(timeout=1.0)):
        if engine == "wasmer":
            with pytest.raises(asyncwasm.NotSupportedError):
                asyncwasm.Runtime(engine, limits=limits)
        else:
            asyncwasm.Runtime(engine, limits=limits).close()


def test_tenants_share_compiled_code(engine: str) -> None:
    code = wat('(module (memory (export "m") 1) (func (export "f")))')
    base = asyncwasm.Runtime(engine)
    small = base.with_limits(asyncwasm.Limits(memory=2 * 65536, instances=5))
    same = base.with_limits(asyncwasm.Limits(memory=2 * 65536, instances=50))
    try:
        import anyio

        anyio.run(small.compile, code)
        assert small.cache_info().compiles == 1
        module = anyio.run(same.compile, code)
        assert same.cache_info().compiles == 0  # compiled for the other tenant already
        memory = asyncwasm.Instance(module).exports.m
        assert memory.grow(1) == 1
        with pytest.raises(asyncwasm.RangeError):
            memory.grow(1)  # the tenant's own cap
    finally:
        for rt in (base, small, same):
            rt.close()


def test_different_fuel_tenants_share_compiled_code() -> None:
    if "wasmtime" not in asyncwasm.Runtime.engines():
        pytest.skip("fuel is a wasmtime limit")
    code = wat('(module (func (export "f")))')
    low = asyncwasm.Runtime("wasmtime", limits=asyncwasm.Limits(fuel=100))
    high = low.with_limits(asyncwasm.Limits(fuel=10**6))
    plain = low.with_limits(None)
    try:
        import anyio

        anyio.run(low.compile, code)
        anyio.run(high.compile, code)
        anyio.run(plain.compile, code)
        assert (low.cache_info().compiles, high.cache_info().compiles) == (1, 0)
        assert plain.cache_info().compiles == 1  # without fuel: another engine, other code
    finally:
        for rt in (low, high, plain):
            rt.close()


def test_the_epoch_ticker_stops_when_nothing_runs() -> None:
    if "wasmtime" not in asyncwasm.Runtime.engines():
        pytest.skip("the epoch ticker is wasmtime's")
    rt = asyncwasm.Runtime("wasmtime", limits=asyncwasm.Limits(timeout=5.0))
    try:
        inst = asyncwasm.Instance(asyncwasm.Module(wat('(module (func (export "f")))'), runtime=rt))
        inst.exports.f()
        gc.collect()
        deadline = time.monotonic() + 30  # the ticker lingers 0.5 s; the machine is slow
        while time.monotonic() < deadline:
            if not any(t.name == "asyncwasm-epoch" for t in threading.enumerate()):
                break
            time.sleep(0.05)
        assert not any(t.name == "asyncwasm-epoch" for t in threading.enumerate())
        inst.exports.f()  # and it starts again
        assert any(t.name == "asyncwasm-epoch" for t in threading.enumerate())
    finally:
        rt.close()
