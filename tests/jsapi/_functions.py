"""Exported wasm functions to put in tables (upstream's ``functions`` setup)."""

from __future__ import annotations

from typing import Any

import asyncwasm

from .wasm_module_builder import WasmModuleBuilder, kSig_v_d, kSig_v_v


def exported_functions() -> Any:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_d).add_body([]).export_func()
    builder.add_function("fn2", kSig_v_v).add_body([]).export_func()
    return asyncwasm.Instance(asyncwasm.Module(builder.to_buffer()), {}).exports


def exported_fn() -> Any:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_v).add_body([]).export_func()
    return asyncwasm.Instance(asyncwasm.Module(builder.to_buffer())).exports.fn
