"""Port of interface.any.js: the shape of the ``WebAssembly`` namespace, restated for the
``asyncwasm`` module: the interfaces and operations exist under their (snake_case) names, and
read-only attributes refuse assignment. Property descriptors and ``Function.length`` have no
Python equivalent."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest

import asyncwasm

from ._support import NO_DESCRIPTOR, NO_LENGTH, NO_NEW, cases, subtest
from .wasm_module_builder import EMPTY_MODULE

JS_FILE = "interface.any.js"
NOT_APPLICABLE = {
    "WebAssembly: property descriptor": NO_DESCRIPTOR,
    "WebAssembly: constructing": NO_NEW,
}
NOT_APPLICABLE_PATTERNS = {
    r": prototype(\.constructor)?$": "interface prototype objects have no Python equivalent",
    r": length$": NO_LENGTH,
    r": getter$": "getter functions of accessor properties have no Python equivalent (the attribute is read in the other subtests)",
}
ADAPTED = {
    "WebAssembly: calling": "the asyncwasm module object is not callable (TypeError)",
}
ADAPTED_PATTERNS = {
    r"^WebAssembly\.\w+: property descriptor$": "the interface is a public class of the asyncwasm module",
    r"^WebAssembly(\.\w+)?\.\w+$": "the operation/attribute exists on the asyncwasm object under its snake_case name (JS spelling as an alias where the contract says so)",
    r": name$": "__name__ of the operation is its snake_case Python name",
    r": setter$": "a read-only attribute refuses assignment (AttributeError/TypeError); Global.value can be set when mutable",
}

INTERFACES = [
    ("Module", False),
    ("Instance", False),
    ("Memory", False),
    ("Table", False),
    ("Global", False),
    ("CompileError", True),
    ("LinkError", True),
    ("RuntimeError", True),
]


@subtest("WebAssembly: calling")
def test_calling(subtest: str) -> None:
    assert isinstance(asyncwasm, types.ModuleType)
    with pytest.raises(TypeError):
        asyncwasm()  # type: ignore[operator]


@cases("name, is_error", [(f"WebAssembly.{n}: property descriptor", n, e) for n, e in INTERFACES])
def test_interface(subtest: str, name: str, is_error: bool) -> None:
    cls = getattr(asyncwasm, name)
    assert isinstance(cls, type)
    assert cls.__name__ == name
    if is_error:
        assert issubclass(cls, asyncwasm.WebAssemblyError)


# (JS owner, Python owner, JS name, Python name)
OPERATIONS: list[tuple[str, Any, str, str]] = [
    ("WebAssembly", asyncwasm, "validate", "validate"),
    ("WebAssembly", asyncwasm, "compile", "compile"),
    ("WebAssembly", asyncwasm, "instantiate", "instantiate"),
    ("WebAssembly.Module", asyncwasm.Module, "exports", "exports"),
    ("WebAssembly.Module", asyncwasm.Module, "imports", "imports"),
    ("WebAssembly.Module", asyncwasm.Module, "customSections", "custom_sections"),
    ("WebAssembly.Memory", asyncwasm.Memory, "grow", "grow"),
    ("WebAssembly.Table", asyncwasm.Table, "grow", "grow"),
    ("WebAssembly.Table", asyncwasm.Table, "get", "get"),
    ("WebAssembly.Table", asyncwasm.Table, "set", "set"),
    ("WebAssembly.Global", asyncwasm.Global, "valueOf", "value_of"),
]
JS_ALIASES = {"customSections", "valueOf"}


@cases("owner, js_name, py_name", [(f"{o}.{j}", p, j, n) for o, p, j, n in OPERATIONS])
def test_operation(subtest: str, owner: Any, js_name: str, py_name: str) -> None:
    fn = getattr(owner, py_name)
    assert callable(fn)
    if js_name in JS_ALIASES:
        assert getattr(owner, js_name) == fn


@cases("owner, py_name", [(f"{o}.{j}: name", p, n) for o, p, j, n in OPERATIONS])
def test_operation_name(subtest: str, owner: Any, py_name: str) -> None:
    assert getattr(owner, py_name).__name__ == py_name


def _object(key: str) -> Any:
    makers: dict[str, Callable[[], object]] = {
        "WebAssembly.Instance.exports": lambda: asyncwasm.Instance(asyncwasm.Module(EMPTY_MODULE)),
        "WebAssembly.Memory.buffer": lambda: asyncwasm.Memory({"initial": 0}),
        "WebAssembly.Table.length": lambda: asyncwasm.Table({"element": "anyfunc", "initial": 0}),
        "WebAssembly.Global.value": lambda: asyncwasm.Global({"value": "i32", "mutable": True}),
    }
    return makers[key]()


ATTRIBUTES = [
    ("WebAssembly.Instance", "exports", False),
    ("WebAssembly.Memory", "buffer", False),
    ("WebAssembly.Table", "length", False),
    ("WebAssembly.Global", "value", True),
]


@cases("key, attr", [(f"{o}.{a}", f"{o}.{a}", a) for o, a, _ in ATTRIBUTES])
def test_attribute(subtest: str, key: str, attr: str) -> None:
    obj = _object(key)
    getattr(obj, attr)
    assert hasattr(type(obj), attr), "an attribute of the class, like a JS prototype accessor"


@cases("key, attr, mutable", [(f"{o}.{a}: setter", f"{o}.{a}", a, m) for o, a, m in ATTRIBUTES])
def test_attribute_setter(subtest: str, key: str, attr: str, mutable: bool) -> None:
    obj = _object(key)
    if mutable:
        setattr(obj, attr, 1)
        assert getattr(obj, attr) == 1
    else:
        before = getattr(obj, attr)
        with pytest.raises((AttributeError, TypeError)):
            setattr(obj, attr, before)
