"""Exported functions and values at the boundary (issue #3, part 2): argument counts, the
contract's value table both ways, multi-value, and host exceptions, on every engine under test."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, NotSupportedError

IDENTITY = wat(
    """
    (module
      (func (export "i32") (param i32) (result i32) local.get 0)
      (func (export "i64") (param i64) (result i64) local.get 0)
      (func (export "f32") (param f32) (result f32) local.get 0)
      (func (export "f64") (param f64) (result f64) local.get 0)
      (func (export "none"))
      (func (export "two") (param i32 i64))
      (func (export "multi") (param i32 i64 f32 f64) (result f64 f32 i64 i32)
        local.get 3 local.get 2 local.get 1 local.get 0))
    """
)

HOST = wat(
    """
    (module
      (import "env" "i32" (func $i32 (param i32) (result i32)))
      (import "env" "i64" (func $i64 (param i64) (result i64)))
      (import "env" "f32" (func $f32 (param f32) (result f32)))
      (import "env" "f64" (func $f64 (param f64) (result f64)))
      (import "env" "multi" (func $multi (result i32 f64)))
      (import "env" "none" (func $none))
      (func (export "i32") (param i32) (result i32) local.get 0 call $i32)
      (func (export "i64") (param i64) (result i64) local.get 0 call $i64)
      (func (export "f32") (param f32) (result f32) local.get 0 call $f32)
      (func (export "f64") (param f64) (result f64) local.get 0 call $f64)
      (func (export "multi") (result i32 f64) call $multi)
      (func (export "none") call $none))
    """
)


class Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def f32(x: float) -> float:
    """Math.fround: C's (float) cast, which struct refuses to do when it gives infinity."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


@pytest.fixture
def ident(runtime: asyncwasm.Runtime) -> asyncwasm.Exports:
    return Instance(Module(IDENTITY)).exports


def _host(**overrides: object) -> dict[str, dict[str, object]]:
    env: dict[str, object] = {
        "i32": lambda x: x,
        "i64": lambda x: x,
        "f32": lambda x: x,
        "f64": lambda x: x,
        "multi": lambda: (1, 2.0),
        "none": lambda: None,
    }
    env.update(overrides)
    return {"env": env}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (-1, -1),
        (2**31 - 1, 2**31 - 1),
        (2**31, -(2**31)),
        (2**32, 0),
        (2**32 + 5, 5),
        (-(2**31) - 1, 2**31 - 1),
        (-(2**100) + 3, 3),
        (True, 1),
        (Index(2**32 - 1), -1),
    ],
)
def test_i32_wraps(ident: asyncwasm.Exports, value: object, expected: int) -> None:
    result = ident.i32(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**63 - 1, 2**63 - 1),
        (2**63, -(2**63)),
        (2**64 + 9, 9),
        (-(2**64) - 1, -1),
        (-(2**63), -(2**63)),
        (Index(-5), -5),
    ],
)
def test_i64_wraps(ident: asyncwasm.Exports, value: object, expected: int) -> None:
    result = ident.i64(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("name", ["i32", "i64"])
@pytest.mark.parametrize("value", [1.0, 1.5, math.nan, "1", None, Fraction(1, 1), [1]])
def test_integers_refuse_floats_and_others(
    ident: asyncwasm.Exports, name: str, value: object
) -> None:
    with pytest.raises(TypeError):
        getattr(ident, name)(value)


FLT_MAX = 3.4028234663852886e38


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, 0.10000000149011612),
        (1e-50, 0.0),
        (-1e-50, -0.0),
        (16777217, 16777216.0),
        (3.4028235e38, FLT_MAX),
        (3.4028235677973362e38, FLT_MAX),  # just under the rounding threshold
        (3.4028235677973366e38, math.inf),  # the midpoint rounds to even: infinity
        (1e39, math.inf),
        (-1e39, -math.inf),
        (2**200, math.inf),
        (-(2**2000), -math.inf),  # an int too large for a double
        (math.inf, math.inf),
    ],
)
def test_f32_rounds_to_nearest_float32(
    ident: asyncwasm.Exports, value: float, expected: float
) -> None:
    result = ident.f32(value)
    assert type(result) is float
    assert result == expected
    assert math.copysign(1, result) == math.copysign(1, expected)


def test_f32_nan(ident: asyncwasm.Exports) -> None:
    assert math.isnan(ident.f32(math.nan))
    assert math.isnan(ident.f64(math.nan))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, 0.1),
        (-2.5, -2.5),
        (2**53 + 1, 2.0**53),
        (5, 5.0),
        (True, 1.0),
        (Fraction(1, 4), 0.25),
        (10**400, math.inf),  # ints too large for a double round to infinity, as JS Number()
        (-(10**400), -math.inf),
    ],
)
def test_f64(ident: asyncwasm.Exports, value: object, expected: float) -> None:
    result = ident.f64(value)
    assert type(result) is float
    assert result == expected


@pytest.mark.parametrize("name", ["f32", "f64"])
@pytest.mark.parametrize("value", ["1.0", None, b"1", 1j, [1.0]])
def test_floats_refuse_non_numbers(ident: asyncwasm.Exports, name: str, value: object) -> None:
    with pytest.raises(TypeError):
        getattr(ident, name)(value)


def test_results(ident: asyncwasm.Exports) -> None:
    assert ident.none() is None
    assert ident.two(1, 2) is None
    result = ident.multi(2**32 + 1, 2**64 - 1, 0.1, 0.25)
    assert type(result) is tuple
    assert result == (0.25, f32(0.1), -1, 1)


@pytest.mark.parametrize(
    ("name", "args"),
    [("none", (1,)), ("i32", ()), ("i32", (1, 2)), ("two", (1,)), ("two", (1, 2, 3))],
)
def test_argument_count_is_checked(ident: asyncwasm.Exports, name: str, args: tuple[int]) -> None:
    with pytest.raises(TypeError, match="argument"):
        getattr(ident, name)(*args)


def test_keyword_arguments_are_refused(ident: asyncwasm.Exports) -> None:
    with pytest.raises(TypeError):
        ident.i32(x=1)


def test_function_type(ident: asyncwasm.Exports) -> None:
    t = ident.multi.type
    assert t.params == ("i32", "i64", "f32", "f64")
    assert t.results == ("f64", "f32", "i64", "i32")


def test_function_cannot_be_constructed() -> None:
    with pytest.raises(TypeError):
        asyncwasm.Function()


def test_host_function_values_both_ways(runtime: asyncwasm.Runtime) -> None:
    seen: list[object] = []

    def record(x: object) -> object:
        seen.append(x)
        return x

    exports = Instance(Module(HOST), _host(i32=record, i64=record, f32=record, f64=record)).exports
    assert exports.i32(2**32 - 1) == -1
    assert exports.i64(2**64 - 1) == -1
    assert exports.f32(0.1) == f32(0.1)
    assert exports.f64(0.1) == 0.1
    assert seen == [-1, -1, f32(0.1), 0.1]
    assert [type(x) for x in seen] == [int, int, float, float]


def test_host_function_results_are_converted(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(
        Module(HOST),
        _host(i32=lambda x: 2**32 + 3, i64=lambda x: Index(-2), f32=lambda x: 0.1, f64=lambda x: 7),
    ).exports
    assert exports.i32(0) == 3
    assert exports.i64(0) == -2
    assert exports.f32(0) == f32(0.1)
    assert exports.f64(0) == 7.0


@pytest.mark.parametrize(
    ("name", "bad"),
    [("i32", 1.5), ("i32", None), ("i64", "1"), ("f32", None), ("f64", "x")],
)
def test_host_function_result_of_wrong_type_is_type_error(
    runtime: asyncwasm.Runtime, name: str, bad: object
) -> None:
    exports = Instance(Module(HOST), _host(**{name: lambda x: bad})).exports
    with pytest.raises(TypeError):
        getattr(exports, name)(0)


def test_host_function_multi_value_results(runtime: asyncwasm.Runtime) -> None:
    assert Instance(Module(HOST), _host(multi=lambda: [5, 6])).exports.multi() == (5, 6.0)
    assert Instance(Module(HOST), _host(multi=lambda: iter((5, 6)))).exports.multi() == (5, 6.0)
    for bad in [lambda: (1,), lambda: (1, 2, 3), lambda: 1, lambda: None, lambda: "ab"]:
        with pytest.raises(TypeError):
            Instance(Module(HOST), _host(multi=bad)).exports.multi()


def test_host_function_without_results_ignores_return_value(runtime: asyncwasm.Runtime) -> None:
    assert Instance(Module(HOST), _host(none=lambda: 42)).exports.none() is None


@pytest.mark.parametrize(
    "error",
    [ValueError("v"), KeyError("k"), RuntimeError("python's own"), asyncwasm.LinkError("x")],
)
def test_host_exception_is_the_same_object(runtime: asyncwasm.Runtime, error: Exception) -> None:
    def fail(x: int) -> int:
        raise error

    exports = Instance(Module(HOST), _host(i32=fail)).exports
    with pytest.raises(type(error)) as info:
        exports.i32(1)
    assert info.value is error
    # and the instance keeps working
    exports2 = Instance(Module(HOST), _host()).exports
    assert exports2.i32(3) == 3


def test_host_exception_through_nested_calls(runtime: asyncwasm.Runtime) -> None:
    error = ValueError("deep")
    inner = Instance(Module(HOST), _host(i32=lambda x: (_ for _ in ()).throw(error))).exports

    outer = Instance(Module(HOST), _host(i32=lambda x: inner.i32(x) + 1)).exports
    with pytest.raises(ValueError, match="deep") as info:
        outer.i32(1)
    assert info.value is error
    ok = Instance(Module(HOST), _host(i32=lambda x: x * 10)).exports
    nested = Instance(Module(HOST), _host(i32=lambda x: ok.i32(x) + 1)).exports
    assert nested.i32(4) == 41


REFS = wat(
    """
    (module
      (func (export "ext") (param externref) (result externref) local.get 0)
      (func (export "fn") (param funcref) (result funcref) local.get 0)
      (func (export "is_null") (param externref) (result i32) local.get 0 ref.is_null)
      (func (export "seven") (result i32) i32.const 7))
    """
)


def test_externref_keeps_identity(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(REFS)).exports
    if not runtime.features.reference_values:
        with pytest.raises(NotSupportedError, match=runtime.engine):
            exports.ext(object())
        with pytest.raises(NotSupportedError, match=runtime.engine):
            exports.ext(None)
        return
    for value in [object(), 0, "", [], 1.5, False, exports]:
        assert exports.ext(value) is value
    assert exports.ext(None) is None
    assert exports.is_null(None) == 1
    assert exports.is_null(0) == 0


def test_funcref_values(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(REFS)).exports
    if not runtime.features.reference_values:
        with pytest.raises(NotSupportedError, match=runtime.engine):
            exports.fn(exports.seven)
        return
    assert exports.fn(exports.seven) is exports.seven
    assert exports.fn(None) is None
    for bad in [lambda: 7, 7, "seven", object()]:
        with pytest.raises(TypeError):
            exports.fn(bad)


def test_funcref_of_another_runtime_is_type_error(runtime: asyncwasm.Runtime) -> None:
    # Refused before any engine sees it, so on every engine.
    other = asyncwasm.Runtime(runtime.engine)
    foreign = Instance(Module(REFS, runtime=other)).exports.seven
    with pytest.raises(TypeError):
        Instance(Module(REFS)).exports.fn(foreign)


V128 = wat(
    """
    (module
      (func (export "id") (param v128) (result v128) local.get 0)
      (func (export "lanes") (param v128) (result i64 i64)
        local.get 0 i64x2.extract_lane 0 local.get 0 i64x2.extract_lane 1))
    """
)


def test_v128(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(V128)).exports
    if not runtime.features.v128:
        with pytest.raises(TypeError):
            exports.id(0)
        return
    value = (2**64 + 5) << 1
    assert exports.id(value) == value
    assert exports.id(2**128 - 1) == 2**128 - 1
    assert exports.lanes(3 + (4 << 64)) == (3, 4)
    for bad in [-1, 2**128, 1.0, None]:
        with pytest.raises(TypeError):
            exports.id(bad)
