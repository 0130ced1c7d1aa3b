"""Port of memory/grow.any.js: ``memory.grow(delta)``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._support import (
    NO_STRAY,
    NO_THIS,
    Index,
    assert_buffer,
    assert_buffer_size,
    assert_released,
    cases,
    subtest,
)

JS_FILE = "memory/grow.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Zero initial with valueOf": "valueOf -> __index__",
    "Out-of-range argument: undefined": "undefined -> None",
    'Out-of-range argument: object "[object Object]"': "an object whose valueOf gives 2**32 -> __index__ giving 2**32",
    "Growing shared memory does not detach old buffer": "the contract releases every buffer obtained before grow(), shared memory included (JS keeps a SharedArrayBuffer usable); checks the shared memory grows and the old and new buffers see the same bytes before the grow",
}
ADAPTED_PATTERNS = {
    r"^(Zero|Non-zero) initial|grown twice|growing too much": "a detached ArrayBuffer -> a released memoryview (ValueError on use, contract)",
}


def _grow_and_check(memory: asyncwasm.Memory, delta: object, old_size: int, new_size: int) -> None:
    old = memory.buffer
    assert_buffer(old, old_size)
    assert memory.grow(delta) == old_size
    new = memory.buffer
    assert new is not old
    assert_released(old)
    assert_buffer(new, new_size)


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    memory = asyncwasm.Memory({"initial": 0})
    with pytest.raises(TypeError):
        memory.grow()  # type: ignore[call-arg]


@subtest("Zero initial")
def test_zero_initial(subtest: str) -> None:
    _grow_and_check(asyncwasm.Memory({"initial": 0}), 2, 0, 2)


@subtest("Zero initial with valueOf")
def test_zero_initial_valueof(subtest: str) -> None:
    _grow_and_check(asyncwasm.Memory({"initial": Index(0)}), Index(2), 0, 2)


@subtest("Non-zero initial")
def test_non_zero_initial(subtest: str) -> None:
    _grow_and_check(asyncwasm.Memory({"initial": 3}), 2, 3, 5)


@subtest("Zero initial with respected maximum")
def test_respected_maximum(subtest: str) -> None:
    _grow_and_check(asyncwasm.Memory({"initial": 0, "maximum": 2}), 2, 0, 2)


@subtest("Zero initial with respected maximum grown twice")
def test_respected_maximum_twice(subtest: str) -> None:
    memory = asyncwasm.Memory({"initial": 0, "maximum": 2})
    old = memory.buffer
    assert_buffer(old, 0)
    assert memory.grow(1) == 0
    new = memory.buffer
    assert new is not old
    assert_released(old)
    assert_buffer(new, 1)
    assert memory.grow(1) == 1
    newest = memory.buffer
    assert newest is not new
    assert_released(old)
    assert_released(new)
    assert_buffer(newest, 2)


@subtest("Zero initial growing too much")
def test_growing_too_much(subtest: str) -> None:
    memory = asyncwasm.Memory({"initial": 1, "maximum": 2})
    old = memory.buffer
    assert_buffer(old, 1)
    with pytest.raises(asyncwasm.RangeError):
        memory.grow(2)
    assert memory.buffer is old
    assert_buffer(memory.buffer, 1)


OUT_OF_RANGE = [
    ("Out-of-range argument: undefined", None),
    ("Out-of-range argument: NaN", math.nan),
    ("Out-of-range argument: Infinity", math.inf),
    ("Out-of-range argument: -Infinity", -math.inf),
    ("Out-of-range argument: -1", -1),
    ("Out-of-range argument: 4294967296", 0x100000000),
    ("Out-of-range argument: 68719476736", 0x1000000000),
    ('Out-of-range argument: "0x100000000"', "0x100000000"),
    ('Out-of-range argument: object "[object Object]"', Index(0x100000000)),
]


@cases("value", OUT_OF_RANGE)
def test_out_of_range(subtest: str, value: object) -> None:
    memory = asyncwasm.Memory({"initial": 0})
    with pytest.raises(TypeError):
        memory.grow(value)


@subtest("Growing shared memory does not detach old buffer")
def test_shared_grow(subtest: str) -> None:
    memory = asyncwasm.Memory({"initial": 1, "maximum": 2, "shared": True})
    old = memory.buffer
    assert_buffer(old, 1)
    old[0] = 1
    assert memory.grow(1) == 1
    new = memory.buffer
    assert new is not old
    assert_released(old)  # contract: released, shared or not
    assert_buffer_size(new, 2)
    assert new[0] == 1, "the same data after growing"
