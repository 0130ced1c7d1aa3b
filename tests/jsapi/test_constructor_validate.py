"""Port of constructor/validate.any.js: ``asyncwasm.validate``."""

from __future__ import annotations

import array

import pytest

import asyncwasm

from ._support import (
    BUFFER_KINDS_ADAPTED,
    NO_STRAY,
    NO_THIS,
    cases,
    growable_shared_buffer,
    resizable_buffer,
    shared_buffer,
    subtest,
)
from .wasm_module_builder import EMPTY_MODULE, INVALID_MODULE

JS_FILE = "constructor/validate.any.js"
NOT_APPLICABLE = {
    "Branding": NO_THIS,
    "Stray argument": NO_STRAY,
}
ADAPTED = {
    "Invalid arguments": "JS non-BufferSource values mapped to Python ones without the buffer protocol (None, bool, str, object, int, dict, the bytes type, a list of ints)",
    **BUFFER_KINDS_ADAPTED,
}
ADAPTED_PATTERNS = {
    r"^Validating module \[.*\] in (Int|Uint)(8|16|32)Array$": "typed array = array.array of the same item size and signedness over the same bytes",
}


@subtest("Missing argument")
def test_missing_argument(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.validate()  # type: ignore[call-arg]


INVALID_ARGUMENTS = [None, True, "", object(), 1, {}, bytes, list(EMPTY_MODULE)]


@subtest("Invalid arguments")
@pytest.mark.parametrize("argument", INVALID_ARGUMENTS, ids=repr)
def test_invalid_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.validate(argument)


MODULES: list[tuple[list[int], bool]] = [
    # Incomplete header.
    ([], False),
    ([0x00], False),
    ([0x00, 0x61], False),
    ([0x00, 0x61, 0x73], False),
    ([0x00, 0x61, 0x73, 0x6D], False),
    ([0x00, 0x61, 0x73, 0x6D, 0x01], False),
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00], False),
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00], False),
    # Complete header.
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00], True),
    # Invalid version.
    ([0x00, 0x61, 0x73, 0x6D, 0x00, 0x00, 0x00, 0x00], False),
    ([0x00, 0x61, 0x73, 0x6D, 0x02, 0x00, 0x00, 0x00], False),
    # Nameless custom section.
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00], False),
    # Custom section with empty name.
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00], True),
    # Custom section with name "a".
    ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x61], True),
]

# JS typed-array name -> array.array typecode with the same item size and signedness.
BUFFER_TYPES = [
    ("Uint8Array", "B"),
    ("Int8Array", "b"),
    ("Uint16Array", "H"),
    ("Int16Array", "h"),
    ("Uint32Array", "I"),
    ("Int32Array", "i"),
]


def _validate_cases() -> list[tuple[str, bytes, str, bool]]:
    rows = []
    for module, expected in MODULES:
        hex_name = " ".join(f"{n:x}" for n in module)
        for js_type, code in BUFFER_TYPES:
            if len(module) % array.array(code).itemsize == 0:
                rows.append(
                    (f"Validating module [{hex_name}] in {js_type}", bytes(module), code, expected)
                )
    return rows


@cases("module, typecode, expected", _validate_cases())
def test_validating_module(subtest: str, module: bytes, typecode: str, expected: bool) -> None:
    buffer = array.array(typecode)
    buffer.frombytes(module)
    assert asyncwasm.validate(buffer) is expected


@subtest("SharedArrayBuffer-backed view")
def test_shared_buffer(subtest: str) -> None:
    assert asyncwasm.validate(shared_buffer(EMPTY_MODULE)) is True


@subtest("Invalid module in SharedArrayBuffer")
def test_invalid_shared_buffer(subtest: str) -> None:
    assert asyncwasm.validate(shared_buffer(INVALID_MODULE)) is False


@subtest("Resizable ArrayBuffer-backed view")
def test_resizable_buffer(subtest: str) -> None:
    assert asyncwasm.validate(resizable_buffer(EMPTY_MODULE)) is True


@subtest("Invalid module in resizable ArrayBuffer")
def test_invalid_resizable_buffer(subtest: str) -> None:
    assert asyncwasm.validate(resizable_buffer(INVALID_MODULE)) is False


@subtest("Growable SharedArrayBuffer-backed view")
def test_growable_buffer(subtest: str) -> None:
    assert asyncwasm.validate(growable_shared_buffer(EMPTY_MODULE)) is True


@subtest("Invalid module in growable SharedArrayBuffer")
def test_invalid_growable_buffer(subtest: str) -> None:
    assert asyncwasm.validate(growable_shared_buffer(INVALID_MODULE)) is False
