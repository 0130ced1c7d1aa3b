"""Port of module/imports.any.js: ``Module.imports(module)``."""

from __future__ import annotations

import pytest

import asyncwasm

from ._descriptors import assert_imports
from ._support import NO_STRAY, NO_THIS, cases, subtest
from .wasm_module_builder import EMPTY_MODULE, WasmModuleBuilder, kSig_v_v, kWasmI32

JS_FILE = "module/imports.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Non-Module arguments": "JS non-Module values mapped to Python ones",
    "Return type": "Array -> list",
}
ADAPTED_PATTERNS = {
    r"^imports": "descriptor objects (ModuleImportDescriptor) instead of plain objects; fields module, name and kind checked",
}


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module.imports()  # type: ignore[call-arg]


@subtest("Non-Module arguments")
@pytest.mark.parametrize("argument", [None, True, "", object(), 1, {}, asyncwasm.Module], ids=repr)
def test_non_module_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module.imports(argument)  # type: ignore[arg-type]


@subtest("Return type")
def test_return_type(subtest: str) -> None:
    assert type(asyncwasm.Module.imports(asyncwasm.Module(EMPTY_MODULE))) is list


@subtest("Empty module")
def test_empty_module(subtest: str) -> None:
    assert_imports(asyncwasm.Module.imports(asyncwasm.Module(EMPTY_MODULE)), [])


@subtest("Empty module: array caching")
def test_array_caching(subtest: str) -> None:
    module = asyncwasm.Module(EMPTY_MODULE)
    assert asyncwasm.Module.imports(module) is not asyncwasm.Module.imports(module)


@cases(
    "modules, names",
    [
        ("imports", ("module",) * 4, ("fn", "global", "memory", "table")),
        ("imports with empty module name", ("",) * 4, ("fn", "global", "memory", "table")),
        ("imports with empty names", ("a", "b", "c", "d"), ("",) * 4),
        ("imports with empty module names and names", ("",) * 4, ("",) * 4),
    ],
)
def test_imports(subtest: str, modules: tuple[str, ...], names: tuple[str, ...]) -> None:
    builder = WasmModuleBuilder()
    builder.add_import(modules[0], names[0], kSig_v_v)
    builder.add_imported_global(modules[1], names[1], kWasmI32)
    builder.add_imported_memory(modules[2], names[2], 0, 128)
    builder.add_imported_table(modules[3], names[3], 0, 128)
    module = asyncwasm.Module(builder.to_buffer())
    kinds = ("function", "global", "memory", "table")
    assert_imports(
        asyncwasm.Module.imports(module),
        [
            {"module": m, "name": n, "kind": k}
            for m, n, k in zip(modules, names, kinds, strict=True)
        ],
    )
