"""Port of global/constructor.any.js: ``asyncwasm.Global(value_type, value=<default>, *,
mutable=False)`` or ``Global({"value": ..., "mutable": ...}, value)``."""

from __future__ import annotations

import math
from typing import Any

import pytest

import asyncwasm

from ._support import (
    NO_JS_COERCION,
    NO_LENGTH,
    NO_NEW,
    NO_STRAY,
    Index,
    RecordingMapping,
    assert_global,
    cases,
    class_name_check,
    engine_features,
    subtest,
)

JS_FILE = "global/constructor.any.js"
FLOAT_TYPES = ("f32", "f64")
NOT_APPLICABLE: dict[str, str] = {
    "length": NO_LENGTH,
    "Calling": NO_NEW,
    "Stray argument": NO_STRAY,
    **{
        f"BigInt value for type {t}": "a Python int is a valid f32/f64 value (contract): no wrong-kind integer"
        for t in FLOAT_TYPES
    },
    **{
        f"Explicit value null for type {t}": "JS ToNumber(null) = 0 has no Python equivalent: None is not a number"
        for t in ("i32", "f32", "f64")
    },
    **{f'Explicit value "3" for type {t}': NO_JS_COERCION for t in ("i32", "f32", "f64", "i64")},
    'Pass non-bigint as i64 Global value: object "5"': NO_JS_COERCION,
}
NOT_APPLICABLE_PATTERNS = {
    r"^Explicit value object with (toString|valueOf) returning string": NO_JS_COERCION,
    r"^Explicit value object with toString returning (number|bigint)": NO_JS_COERCION,
    r"^Explicit value object with valueOf returning number for type f(32|64)$": "the contract takes float or int for f32/f64, no conversion protocol on other objects",
}
ADAPTED = {
    "name": "the class is asyncwasm.Global with __name__ 'Global'",
    "Order of evaluation": "JS getters -> a Mapping recording lookups; the i32 value's valueOf -> __index__",
    "Invalid descriptor argument": 'JS values mapped to Python ones that are neither a value type name nor a descriptor (None, bools, "", "test", object(), 1, NaN, an empty dict)',
    "externref global": "undefined is not a Python value (omitted -> default); Symbol -> object(); identity kept",
    "externref global with default value": "JS undefined default -> None",
    "Construct v128 global": "the contract lets v128 values cross as int where the engine supports it (runtime.features.v128): then the Global is made with value 0; elsewhere TypeError as in JS",
    "BigInt value for type i32": "the wrong-kind number for i32 is a float in Python",
    "Explicit value object with valueOf returning number for type i32": "valueOf -> __index__",
    "Explicit value object with valueOf returning bigint for type i64": "valueOf -> __index__",
    "Pass non-bigint as i64 Global value: 666": "the Number 666 -> the float 666.0",
    'Pass non-bigint as i64 Global value: object "[object Object]"': "objects whose toString/valueOf give a Number -> an object with __float__ only",
    'Pass non-bigint as i64 Global value: symbol "Symbol()"': "Symbol() -> object()",
}
ADAPTED_PATTERNS = {
    r"^Explicit value undefined": "undefined -> value argument omitted",
    r"^Explicit value (true|false)": "bool is an int in Python",
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Global, "Global")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Global()  # type: ignore[call-arg]


@subtest("Order of evaluation")
def test_order_of_evaluation(subtest: str) -> None:
    log: list[str] = []
    descriptor = RecordingMapping({"value": "i32", "mutable": False}, log)
    asyncwasm.Global(descriptor, Index(0, log, "value"))
    assert log == ["mutable", "value", "value __index__"]


@subtest("Invalid descriptor argument")
@pytest.mark.parametrize(
    "argument", [None, False, True, "", "test", object(), 1, math.nan, {}], ids=repr
)
def test_invalid_descriptor(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Global(argument)


@subtest("Invalid type argument")
@pytest.mark.parametrize("value", ["i16", "i128", "f16", "f128", "u32", "u64", "i32\0"])
def test_invalid_type(subtest: str, value: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Global({"value": value})
    with pytest.raises(TypeError):
        asyncwasm.Global(value)


@subtest("i64 with default")
def test_i64_default(subtest: str) -> None:
    assert_global(asyncwasm.Global({"value": "i64"}), 0)


def _zero(type_: str) -> Any:
    return 0.0 if type_ in FLOAT_TYPES else 0


@cases("type_", [(f"Default value for type {t}", t) for t in ("i32", "f32", "f64")])
def test_default_value(subtest: str, type_: str) -> None:
    assert_global(asyncwasm.Global({"value": type_}), _zero(type_))
    assert_global(asyncwasm.Global(type_), _zero(type_))


OMITTED = object()


def _explicit_values(type_: str) -> list[tuple[str, Any, Any]]:
    conv: Any = float if type_ in FLOAT_TYPES else int
    rows: list[tuple[str, Any, Any]] = [
        (f"Explicit value undefined for type {type_}", OMITTED, conv(0)),
        (f"Explicit value true for type {type_}", True, conv(1)),
        (f"Explicit value false for type {type_}", False, conv(0)),
    ]
    if type_ == "i64":
        rows.append((f"Explicit value 123n for type {type_}", 123, 123))
        rows.append(
            (f"Explicit value object with valueOf returning bigint for type {type_}", Index(9), 9)
        )
    else:
        rows.append((f"Explicit value 2 for type {type_}", 2, conv(2)))
        if type_ == "i32":
            rows.append(
                (
                    f"Explicit value object with valueOf returning number for type {type_}",
                    Index(9),
                    9,
                )
            )
    return rows


@cases(
    "type_, value, expected",
    [(n, t, v, e) for t in ("i32", "f32", "f64", "i64") for n, v, e in _explicit_values(t)],
)
def test_explicit_value(subtest: str, type_: str, value: Any, expected: Any) -> None:
    args = () if value is OMITTED else (value,)
    glob = asyncwasm.Global({"value": type_}, *args)
    assert_global(glob, expected)
    # bool is an int, but what comes out is a plain int/float
    assert type(glob.value) is type(expected)


@subtest("BigInt value for type i32")
def test_wrong_kind_i32(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Global({"value": "i32"}, 0.0)


class _FloatOnly:
    def __float__(self) -> float:
        return 8.0


@cases(
    "value",
    [
        ("Pass non-bigint as i64 Global value: null", None),
        ("Pass non-bigint as i64 Global value: 666", 666.0),
        ('Pass non-bigint as i64 Global value: object "[object Object]"', _FloatOnly()),
        ('Pass non-bigint as i64 Global value: symbol "Symbol()"', object()),
    ],
)
def test_non_bigint_i64(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Global({"value": "i64"}, value)


@subtest("Construct v128 global")
def test_v128(subtest: str) -> None:
    if engine_features().v128:
        # The contract lets v128 cross as an int where the engine supports it.
        assert_global(asyncwasm.Global({"value": "v128"}), 0)
    else:
        with pytest.raises(TypeError):
            asyncwasm.Global({"value": "v128"})


EXTERNREF_VALUES = [
    None,
    True,
    1,
    -0.0,
    1.5,
    -2,
    object(),
    "string",
    {"an": "object"},
    lambda: None,
]


@subtest("externref global")
def test_externref(subtest: str) -> None:
    for value in EXTERNREF_VALUES:
        glob = asyncwasm.Global({"value": "externref"}, value)
        assert_global(glob, value, identity=True)


@subtest("externref global with default value")
def test_externref_default(subtest: str) -> None:
    assert_global(asyncwasm.Global({"value": "externref"}), None, identity=True)
