"""Port of prototypes.any.js: the classes can be subclassed."""

from __future__ import annotations

import asyncwasm

from ._support import subtest
from .wasm_module_builder import EMPTY_MODULE

JS_FILE = "prototypes.any.js"


@subtest("_Module")
def test_module(subtest: str) -> None:
    class _Module(asyncwasm.Module):
        pass

    module = _Module(EMPTY_MODULE)
    assert isinstance(module, _Module)
    assert isinstance(module, asyncwasm.Module)


@subtest("_Instance")
def test_instance(subtest: str) -> None:
    class _Instance(asyncwasm.Instance):
        pass

    instance = _Instance(asyncwasm.Module(EMPTY_MODULE))
    assert isinstance(instance, _Instance)
    assert isinstance(instance, asyncwasm.Instance)


@subtest("_Memory")
def test_memory(subtest: str) -> None:
    class _Memory(asyncwasm.Memory):
        pass

    memory = _Memory({"initial": 0, "maximum": 1})
    assert isinstance(memory, _Memory)
    assert isinstance(memory, asyncwasm.Memory)


@subtest("_Table")
def test_table(subtest: str) -> None:
    class _Table(asyncwasm.Table):
        pass

    table = _Table({"initial": 0, "element": "anyfunc"})
    assert isinstance(table, _Table)
    assert isinstance(table, asyncwasm.Table)


@subtest("_Global")
def test_global(subtest: str) -> None:
    class _Global(asyncwasm.Global):
        pass

    glob = _Global({"value": "i32", "mutable": False}, 0)
    assert isinstance(glob, _Global)
    assert isinstance(glob, asyncwasm.Global)
