"""JSPI: values of every number type cross a promising call and a Suspending import exactly
(edge values, conversions of non-canonical arguments, NaN bits, wrong result counts), on the
paths specialised per signature and on the generic ones."""

from __future__ import annotations

import math
import struct

import anyio
import anyio.lowlevel
import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, Suspending, promising

pytestmark = pytest.mark.anyio

# "pass" calls the import with its arguments and returns what it returns; "bits" returns the
# raw bits of an f32 / f64 (NaN payloads must survive the trip through the import).
MODULE = """
(module
  (import "env" "f" (func $f (param i32 i64 f64) (result i32 i64 f64)))
  (import "env" "g" (func $g (param f32) (result f32)))
  (func (export "pass") (param i32 i64 f64) (result i32 i64 f64)
    (call $f (local.get 0) (local.get 1) (local.get 2)))
  (func (export "f32bits") (param i32) (result i32)
    (i32.reinterpret_f32 (call $g (f32.reinterpret_i32 (local.get 0)))))
  (func (export "f64bits") (param i64) (result i64)
    (local $r i32) (local $s i64) (local $d f64)
    (call $f (i32.const 0) (i64.const 0) (f64.reinterpret_i64 (local.get 0)))
    (local.set $d) (local.set $s) (local.set $r)
    (i64.reinterpret_f64 (local.get $d)))
)
"""

EDGES = [
    (0, 0, 0.0),
    (-(2**31), -(2**63), -0.0),
    (2**31 - 1, 2**63 - 1, math.inf),
    (-1, -1, -math.inf),
    (123, 2**40, 1.5e300),
]


@pytest.fixture
def module(runtime: asyncwasm.Runtime) -> Module:
    return Module(wat(MODULE))


def _instance(module: Module, f: object, g: object = None) -> Instance:
    return Instance(module, {"env": {"f": f, "g": g if g is not None else (lambda x: x)}})


@pytest.mark.parametrize("suspend", [False, True], ids=["value", "awaitable"])
async def test_edge_values_cross_exactly(module: Module, suspend: bool) -> None:
    seen: list[tuple[object, ...]] = []

    def plain(a: int, b: int, c: float) -> list[object]:
        seen.append((a, b, c))
        return [a, b, c]

    async def awaiting(a: int, b: int, c: float) -> list[object]:
        await anyio.lowlevel.checkpoint()
        return plain(a, b, c)

    inst = _instance(module, Suspending(awaiting if suspend else plain))
    run = promising(inst.exports["pass"])
    for a, b, c in EDGES:
        result = await run(a, b, c)
        assert result == (a, b, c)
        assert math.copysign(1.0, result[2]) == math.copysign(1.0, c)  # -0.0 stays negative
        assert seen[-1] == (a, b, c)
        assert math.copysign(1.0, seen[-1][2]) == math.copysign(1.0, c)


async def test_non_canonical_arguments_and_results_are_converted(module: Module) -> None:
    # As for a plain call: out-of-range ints wrap (ToInt32 / ToBigInt64), an int for an f64
    # converts, a float for an i32 is refused.
    inst = _instance(module, Suspending(lambda a, b, c: [a + 2**32, b + 2**64, 7]))
    run = promising(inst.exports["pass"])
    assert await run(2**32 + 5, 2**64 + 6, 1) == (5, 6, 7.0)
    with pytest.raises(TypeError):
        await run(3.9, 0, 2)


async def test_wrong_result_count_is_a_type_error(module: Module) -> None:
    async def two(a: int, b: int, c: float) -> list[object]:
        return [a, b]

    inst = _instance(module, Suspending(two))
    with pytest.raises(TypeError):
        await promising(inst.exports["pass"])(1, 2, 3.0)


@pytest.mark.parametrize("suspend", [False, True], ids=["value", "awaitable"])
async def test_nan_bits_survive(module: Module, suspend: bool) -> None:
    async def awaiting(x: object) -> object:
        await anyio.lowlevel.checkpoint()
        return x

    def same(x: object) -> object:
        return x

    f = awaiting if suspend else same

    async def f3(a: int, b: int, c: float) -> list[object]:
        await anyio.lowlevel.checkpoint()
        return [a, b, c]

    def p3(a: int, b: int, c: float) -> list[object]:
        return [a, b, c]

    inst = _instance(module, Suspending(f3 if suspend else p3), Suspending(f))
    nan64 = struct.unpack("<q", struct.pack("<Q", 0x7FF8_0000_0000_0001))[0]
    assert await promising(inst.exports.f64bits)(nan64) == nan64
    quiet32 = 0x7FC0_0001
    assert await promising(inst.exports.f32bits)(quiet32) == quiet32


async def test_no_bookkeeping_left_behind(module: Module, engine: str) -> None:
    """Completed, failed and cancelled suspended calls leave no entry in the wasmtime engine's
    table of pending imports (it has no finalizer: entries go when the host call returns or
    its future is deleted)."""
    if engine != "wasmtime":
        pytest.skip("wasmtime engine internals")
    from asyncwasm._engines import _wasmtime_async

    before = len(_wasmtime_async._PENDING)

    async def later(a: int, b: int, c: float) -> list[object]:
        await anyio.lowlevel.checkpoint()
        if a < 0:
            raise ValueError("negative")
        return [a, b, c]

    async def forever(a: int, b: int, c: float) -> list[object]:
        await anyio.sleep_forever()
        raise AssertionError("not reached")

    run = promising(_instance(module, Suspending(later)).exports["pass"])
    stuck = promising(_instance(module, Suspending(forever)).exports["pass"])
    for i in range(20):
        assert await run(i, i, 1.0) == (i, i, 1.0)
        with pytest.raises(ValueError, match="negative"):
            await run(-1, 0, 0.0)
        with anyio.move_on_after(0.001):
            await stuck(1, 2, 3.0)
    assert len(_wasmtime_async._PENDING) == before
    assert await run(5, 6, 7.0) == (5, 6, 7.0)  # still usable
