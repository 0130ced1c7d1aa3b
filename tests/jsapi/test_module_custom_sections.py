"""Port of module/customSections.any.js: ``Module.custom_sections(module, name)``."""

from __future__ import annotations

import pytest

import asyncwasm

from ._support import NO_STRAY, NO_THIS, subtest
from .wasm_module_builder import EMPTY_MODULE, WasmModuleBuilder

JS_FILE = "module/customSections.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Non-Module arguments": "JS non-Module values mapped to Python ones (None, bool, str, object, int, dict, the Module class)",
    "Custom sections with surrogate pairs": "a UTF-16 surrogate pair is one Python code point (U+10437)",
    "Custom sections with U+FFFD": "a lone surrogate in a Python str stands for JS's unpaired U+DC01",
}

BYTES1 = bytes([87, 101, 98, 65, 115, 115, 101, 109, 98, 108, 121])
BYTES2 = bytes([74, 83, 65, 80, 73])


def assert_sections(sections: object, expected: list[bytes]) -> None:
    """A fresh list of ``bytes``, one per matching section, in order."""
    assert type(sections) is list
    assert len(sections) == len(expected)
    for got, want in zip(sections, expected, strict=True):
        assert type(got) is bytes
        assert got == want


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module.custom_sections()  # type: ignore[call-arg]
    module = asyncwasm.Module(EMPTY_MODULE)
    with pytest.raises(TypeError):
        asyncwasm.Module.custom_sections(module)  # type: ignore[call-arg]


@subtest("Non-Module arguments")
@pytest.mark.parametrize("argument", [None, True, "", object(), 1, {}, asyncwasm.Module], ids=repr)
def test_non_module_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module.custom_sections(argument, "")  # type: ignore[arg-type]


@subtest("Empty module")
def test_empty_module(subtest: str) -> None:
    module = asyncwasm.Module(EMPTY_MODULE)
    assert_sections(asyncwasm.Module.custom_sections(module, ""), [])


@subtest("Empty module: array caching")
def test_array_caching(subtest: str) -> None:
    module = asyncwasm.Module(EMPTY_MODULE)
    assert asyncwasm.Module.custom_sections(module, "") is not asyncwasm.Module.custom_sections(
        module, ""
    )


@subtest("Custom sections")
def test_custom_sections(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.add_custom_section("name", BYTES1)
    builder.add_custom_section("name", BYTES2)
    builder.add_custom_section("foo", BYTES1)
    module = asyncwasm.Module(builder.to_buffer())
    sections = asyncwasm.Module.custom_sections
    assert_sections(sections(module, "name"), [BYTES1, BYTES2])
    assert_sections(sections(module, "foo"), [BYTES1])
    assert_sections(sections(module, ""), [])
    assert_sections(sections(module, "\0"), [])
    assert_sections(sections(module, "name\0"), [])
    assert_sections(sections(module, "foo\0"), [])
    # The JS spelling is the same function.
    assert_sections(asyncwasm.Module.customSections(module, "name"), [BYTES1, BYTES2])


@subtest("Custom sections with surrogate pairs")
def test_surrogate_pairs(subtest: str) -> None:
    name = "yee\U00010437eey"
    builder = WasmModuleBuilder()
    builder.add_custom_section(name, BYTES1)
    module = asyncwasm.Module(builder.to_buffer())
    assert_sections(asyncwasm.Module.custom_sections(module, name), [BYTES1])
    assert_sections(asyncwasm.Module.custom_sections(module, "yee\ufffdeey"), [])
    assert_sections(asyncwasm.Module.custom_sections(module, "yee\ufffd\ufffdeey"), [])


@subtest("Custom sections with U+FFFD")
def test_replacement_character(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.add_custom_section("na\ufffdme", BYTES1)
    module = asyncwasm.Module(builder.to_buffer())
    assert_sections(asyncwasm.Module.custom_sections(module, "name"), [])
    assert_sections(asyncwasm.Module.custom_sections(module, "na\ufffdme"), [BYTES1])
    assert_sections(asyncwasm.Module.custom_sections(module, "na\udc01me"), [])
