"""Port of constructor/instantiate-bad-imports.any.js: ``await instantiate(module|buffer,
imports)`` rejects bad imports."""

from __future__ import annotations

from typing import Any

import pytest

import asyncwasm

from . import _bad_imports
from ._support import cases
from .wasm_module_builder import WasmModuleBuilder

JS_FILE = "constructor/instantiate-bad-imports.any.js"
MODULE_PREFIX = "WebAssembly.instantiate(module): "
BUFFER_PREFIX = "WebAssembly.instantiate(buffer): "
NOT_APPLICABLE = {
    **_bad_imports.prefixed(MODULE_PREFIX, _bad_imports.NOT_APPLICABLE),
    **_bad_imports.prefixed(BUFFER_PREFIX, _bad_imports.NOT_APPLICABLE),
}
ADAPTED = {
    **_bad_imports.prefixed(MODULE_PREFIX, _bad_imports.ADAPTED),
    **_bad_imports.prefixed(BUFFER_PREFIX, _bad_imports.ADAPTED),
}
ADAPTED_PATTERNS = _bad_imports.ADAPTED_PATTERNS

pytestmark = pytest.mark.asyncio


@cases("error, build, args", _bad_imports.cases_with_prefix(MODULE_PREFIX))
async def test_module_bad_imports(
    subtest: str, error: type[BaseException], build: Any, args: Any
) -> None:
    builder = WasmModuleBuilder()
    build(builder)
    module = asyncwasm.Module(builder.to_buffer())
    arguments = args()
    with pytest.raises(error):
        await asyncwasm.instantiate(module, *arguments)


@cases("error, build, args", _bad_imports.cases_with_prefix(BUFFER_PREFIX))
async def test_buffer_bad_imports(
    subtest: str, error: type[BaseException], build: Any, args: Any
) -> None:
    builder = WasmModuleBuilder()
    build(builder)
    arguments = args()
    with pytest.raises(error):
        await asyncwasm.instantiate(builder.to_buffer(), *arguments)
