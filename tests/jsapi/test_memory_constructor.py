"""Port of memory/constructor.any.js: ``asyncwasm.Memory(initial, maximum=None, *, shared=False)``
or ``Memory({"initial": ..., "maximum": ...})``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._support import (
    MEMORY64,
    NO_JS_COERCION,
    NO_LENGTH,
    NO_NEW,
    NO_STRAY,
    OUT_OF_RANGE_U32,
    Index,
    RecordingMapping,
    assert_memory,
    cases,
    class_name_check,
    subtest,
)

JS_FILE = "memory/constructor.any.js"
NOT_APPLICABLE = {
    "length": NO_LENGTH,
    "Calling": NO_NEW,
    "Stray argument": NO_STRAY,
    "Memory with string value for initial": NO_JS_COERCION,
    "Memory with i32 address constructor": MEMORY64,
    "Unknown memory address": MEMORY64,
}
ADAPTED = {
    "name": "the class is asyncwasm.Memory with __name__ 'Memory'",
    "Invalid descriptor argument": "JS values mapped to Python ones that are neither a descriptor mapping nor an int (None, str, object, NaN, an empty dict); JS false/true/1 are valid initial sizes in Python's positional form",
    "Undefined initial value in descriptor": "undefined -> None",
    "Proxy descriptor": "a Mapping whose `in` fails the test (JS [[HasProperty]] must not be used)",
    "Order of evaluation for descriptor": "JS getters -> a Mapping recording lookups, valueOf -> __index__; the memory64 `address` member is not part of the contract and is not looked for",
    "Memory with boolean value for initial": "bool is an int in Python",
}
ADAPTED_PATTERNS = {
    r"^Out-of-range (initial|maximum) value in descriptor: ": "checked in the descriptor form and in the positional form",
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Memory, "Memory")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Memory()


@subtest("Invalid descriptor argument")
@pytest.mark.parametrize("argument", [None, "", "test", object(), math.nan, {}], ids=repr)
def test_invalid_descriptor(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Memory(argument)


@subtest("Undefined initial value in descriptor")
def test_undefined_initial(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Memory({"initial": None})


OUT_OF_RANGE = OUT_OF_RANGE_U32


@cases("value", [(f"Out-of-range initial value in descriptor: {n}", v) for n, v in OUT_OF_RANGE])
def test_out_of_range_initial(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Memory({"initial": value})
    with pytest.raises(TypeError):
        asyncwasm.Memory(value)


@cases("value", [(f"Out-of-range maximum value in descriptor: {n}", v) for n, v in OUT_OF_RANGE])
def test_out_of_range_maximum(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Memory({"initial": 0, "maximum": value})
    with pytest.raises(TypeError):
        asyncwasm.Memory(0, value)


@subtest("Initial value exceeds maximum")
def test_initial_exceeds_maximum(subtest: str) -> None:
    with pytest.raises(asyncwasm.RangeError):
        asyncwasm.Memory({"initial": 10, "maximum": 9})


@subtest("Proxy descriptor")
def test_proxy_descriptor(subtest: str) -> None:
    descriptor = RecordingMapping(
        {"shared": False, "initial": 0, "maximum": 0}, contains_fails=True
    )
    asyncwasm.Memory(descriptor)


@subtest("Order of evaluation for descriptor")
def test_order_of_evaluation(subtest: str) -> None:
    log: list[str] = []
    descriptor = RecordingMapping(
        {
            "maximum": lambda: Index(1, log, "maximum"),
            "initial": lambda: Index(1, log, "initial"),
        },
        log,
    )
    asyncwasm.Memory(descriptor)
    assert [e for e in log if e.split()[0] in ("initial", "maximum")] == [
        "initial",
        "initial __index__",
        "maximum",
        "maximum __index__",
    ]


@cases(
    "argument, size", [("Zero initial", {"initial": 0}, 0), ("Non-zero initial", {"initial": 4}, 4)]
)
def test_initial(subtest: str, argument: dict[str, int], size: int) -> None:
    assert_memory(asyncwasm.Memory(argument), size)
    assert_memory(asyncwasm.Memory(argument["initial"]), size)


@subtest("Memory with address parameter omitted")
def test_address_omitted(subtest: str) -> None:
    assert_memory(asyncwasm.Memory({"initial": 1}), 1)


@subtest("Memory with boolean value for initial")
def test_boolean_initial(subtest: str) -> None:
    assert_memory(asyncwasm.Memory({"initial": True}), 1)
