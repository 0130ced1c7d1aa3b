"""``Global`` (issue #3, part 5): every number type, mutability, defaults, ``value_of``, reference
types where the engine can, on every engine under test."""

from __future__ import annotations

import math

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Global, Instance, LinkError, Module, NotSupportedError

F32_TENTH = 0.10000000149011612

EXPORTED = wat(
    """
    (module
      (global (export "i32") (mut i32) (i32.const -1))
      (global (export "i64") i64 (i64.const -5))
      (global (export "f32") (mut f32) (f32.const 1.5))
      (global (export "f64") f64 (f64.const 2.5))
      (func (export "read_i32") (result i32) global.get 0)
      (func (export "read_f32") (result f32) global.get 2))
    """
)


@pytest.mark.parametrize(
    ("value_type", "default"), [("i32", 0), ("i64", 0), ("f32", 0.0), ("f64", 0.0)]
)
def test_default_values(runtime: asyncwasm.Runtime, value_type: str, default: object) -> None:
    glob = Global(value_type)
    assert glob.value == default
    assert type(glob.value) is type(default)
    assert Global({"value": value_type}).value == default
    assert not glob.type.mutable
    assert glob.type.value == value_type


@pytest.mark.parametrize(
    ("value_type", "initial", "expected", "new", "expected_new"),
    [
        ("i32", 2**31, -(2**31), 2**32 + 1, 1),
        ("i64", 2**64 - 1, -1, -(2**63) - 1, 2**63 - 1),
        ("f32", 0.1, F32_TENTH, 3, 3.0),
        ("f64", 0.1, 0.1, 1e300, 1e300),
    ],
)
def test_mutable_globals(
    runtime: asyncwasm.Runtime,
    value_type: str,
    initial: object,
    expected: object,
    new: object,
    expected_new: object,
) -> None:
    glob = Global(value_type, initial, mutable=True)
    assert glob.type.mutable
    assert glob.value == expected
    glob.value = new
    assert glob.value == expected_new
    assert glob.value_of() == expected_new
    assert glob.valueOf() == expected_new
    desc = Global({"value": value_type, "mutable": True}, initial)
    assert desc.type.mutable
    desc.value = new
    assert desc.value == expected_new


@pytest.mark.parametrize("value_type", ["i32", "i64", "f32", "f64"])
def test_immutable_global_cannot_be_set(runtime: asyncwasm.Runtime, value_type: str) -> None:
    glob = Global(value_type, 1)
    with pytest.raises(TypeError):
        glob.value = 2
    assert glob.value == 1
    assert glob.value_of() == 1


@pytest.mark.parametrize(
    ("value_type", "bad"),
    [("i32", 1.5), ("i32", 1.0), ("i64", 2.0), ("i32", "1"), ("f32", "x"), ("f64", None)],
)
def test_value_of_wrong_type_is_type_error(
    runtime: asyncwasm.Runtime, value_type: str, bad: object
) -> None:
    with pytest.raises(TypeError):
        Global(value_type, bad)
    glob = Global(value_type, mutable=True)
    with pytest.raises(TypeError):
        glob.value = bad


@pytest.mark.parametrize("args", [("i8",), (None,), ({},), ({"value": "x"},), (1, 1)])
def test_constructor_type_errors(runtime: asyncwasm.Runtime, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        Global(*args)


def test_nan_and_infinity(runtime: asyncwasm.Runtime) -> None:
    assert math.isnan(Global("f64", math.nan).value)  # type: ignore[arg-type]
    assert Global("f32", 1e39).value == math.inf


def test_exported_globals(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(EXPORTED)).exports
    assert exports.i32.value == -1
    assert exports.i64.value == -5
    assert exports.f32.value == 1.5
    assert exports.f64.value == 2.5
    assert exports.i32.type.mutable
    assert not exports.i64.type.mutable
    exports.i32.value = 2**32 + 9
    assert exports.read_i32() == 9
    exports.f32.value = 0.1
    assert exports.read_f32() == F32_TENTH
    with pytest.raises(TypeError):
        exports.i64.value = 1
    with pytest.raises(TypeError):
        exports.f64.value = 1.0
    assert exports.i64.value == -5
    assert exports.i32 is exports.i32


def test_imported_global_is_shared_both_ways(runtime: asyncwasm.Runtime) -> None:
    module = Module(
        wat(
            """
            (module (import "env" "g" (global $g (mut i64)))
              (func (export "bump") global.get $g i64.const 1 i64.add global.set $g)
              (export "g" (global $g)))
            """
        )
    )
    glob = Global("i64", 2**63 - 1, mutable=True)
    exports = Instance(module, {"env": {"g": glob}}).exports
    assert exports.g is glob
    exports.bump()
    assert glob.value == -(2**63)
    glob.value = 41
    exports.bump()
    assert glob.value == 42


def test_global_import_type_mismatch(runtime: asyncwasm.Runtime) -> None:
    module = Module(wat('(module (import "env" "g" (global f32)))'))
    with pytest.raises(LinkError):
        Instance(module, {"env": {"g": Global("f64", 1.0)}})
    with pytest.raises(LinkError):
        Instance(module, {"env": {"g": Global("f32", 1.0, mutable=True)}})
    Instance(module, {"env": {"g": Global("f32", 1.0)}})
    Instance(module, {"env": {"g": 1}})  # an int is a number for a float global


def test_reference_globals(runtime: asyncwasm.Runtime) -> None:
    func = Instance(Module(EXPORTED)).exports.read_i32
    if not runtime.features.reference_values:
        for args in [("externref", object()), ("externref",), ("anyfunc", func), ("funcref",)]:
            with pytest.raises(NotSupportedError, match=runtime.engine):
                Global(*args)
        return
    marker = object()
    ext = Global("externref", marker, mutable=True)
    assert ext.value is marker
    ext.value = None
    assert ext.value is None
    ext.value = 0
    assert ext.value == 0
    assert type(ext.value) is int
    assert Global("externref").value is None
    fn = Global("anyfunc", func)
    assert fn.value is func
    assert Global("funcref").value is None
    with pytest.raises(TypeError):
        Global("anyfunc", lambda: 1)
    with pytest.raises(TypeError):
        fn.value = None  # immutable


def test_exported_reference_globals(runtime: asyncwasm.Runtime) -> None:
    module = Module(
        wat(
            """
            (module
              (global (export "ext") (mut externref) (ref.null extern))
              (global (export "fn") (mut funcref) (ref.func $f))
              (func $f (export "f") (result i32) i32.const 3)
              (func (export "get_ext") (result externref) global.get 0))
            """
        )
    )
    exports = Instance(module).exports
    if not runtime.features.reference_values:
        with pytest.raises(NotSupportedError, match=runtime.engine):
            _ = exports.ext.value
        with pytest.raises(NotSupportedError, match=runtime.engine):
            _ = exports.fn.value
        return
    assert exports.ext.value is None
    marker = object()
    exports.ext.value = marker
    assert exports.get_ext() is marker
    assert exports.fn.value is exports.f
    exports.fn.value = None
    assert exports.fn.value is None


def test_v128_global(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(
        Module(wat('(module (global (export "v") (mut v128) (v128.const i64x2 1 2)))'))
    ).exports
    if not runtime.features.v128:
        with pytest.raises((TypeError, NotSupportedError)):
            _ = exports.v.value
        return
    assert exports.v.value == 1 + (2 << 64)
    exports.v.value = 2**128 - 1
    assert exports.v.value == 2**128 - 1
    with pytest.raises(TypeError):
        exports.v.value = -1


def test_descriptor_read_in_js_order(runtime: asyncwasm.Runtime) -> None:
    from test_memory import _Logged, _LoggedIndex

    log: list[str] = []
    glob = Global(_Logged({"value": "i32", "mutable": True}, log), _LoggedIndex(4, log, "value"))
    assert log == ["mutable", "value", "value converted"]
    assert glob.value == 4
    assert glob.type.mutable
