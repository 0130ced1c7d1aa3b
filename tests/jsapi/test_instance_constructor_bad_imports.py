"""Port of instance/constructor-bad-imports.any.js: ``Instance(module, imports)`` rejects bad
imports."""

from __future__ import annotations

from typing import Any

import pytest

import asyncwasm

from . import _bad_imports
from ._support import cases
from .wasm_module_builder import WasmModuleBuilder

JS_FILE = "instance/constructor-bad-imports.any.js"
PREFIX = "new WebAssembly.Instance(module): "
NOT_APPLICABLE = _bad_imports.prefixed(PREFIX, _bad_imports.NOT_APPLICABLE)
ADAPTED = _bad_imports.prefixed(PREFIX, _bad_imports.ADAPTED)
ADAPTED_PATTERNS = _bad_imports.ADAPTED_PATTERNS


@cases("error, build, args", _bad_imports.cases_with_prefix(PREFIX))
def test_bad_imports(subtest: str, error: type[BaseException], build: Any, args: Any) -> None:
    builder = WasmModuleBuilder()
    build(builder)
    module = asyncwasm.Module(builder.to_buffer())
    arguments = args()
    with pytest.raises(error):
        asyncwasm.Instance(module, *arguments)
