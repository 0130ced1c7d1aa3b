"""``instance.exports`` (issue #3, part 2): a read-only mapping with attribute access, export
order, and stable identity, on every engine under test."""

from __future__ import annotations

import gc
import threading
from collections.abc import Mapping

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Function, Global, Instance, Memory, Module, Table

MANY = wat(
    """
    (module
      (func $f (result i32) i32.const 1)
      (memory $m 1)
      (global $g i32 (i32.const 2))
      (table $t 1 funcref)
      (export "zeta" (func $f))
      (export "alpha" (memory $m))
      (export "mid" (global $g))
      (export "beta" (table $t))
      (export "get" (func $f))
      (export "not an identifier" (func $f))
      (export "_private" (func $f)))
    """
)


def test_exports_is_a_read_only_mapping_in_export_order(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(MANY)).exports
    assert isinstance(exports, Mapping)
    assert list(exports) == ["zeta", "alpha", "mid", "beta", "get", "not an identifier", "_private"]
    assert len(exports) == 7
    assert "zeta" in exports
    assert "nope" not in exports
    assert list(exports.keys()) == list(exports)
    assert [k for k, _ in exports.items()] == list(exports)


def test_exports_kinds(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(MANY)).exports
    assert isinstance(exports["zeta"], Function)
    assert isinstance(exports["alpha"], Memory)
    assert isinstance(exports["mid"], Global)
    assert isinstance(exports["beta"], Table)
    assert exports["zeta"]() == 1


def test_attribute_access(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(MANY)).exports
    assert exports.zeta is exports["zeta"]
    assert exports._private is exports["_private"]
    assert exports["not an identifier"] is exports.zeta
    # A name that collides with a mapping method stays reachable by subscription.
    assert callable(exports.get)
    assert exports["get"] is exports.zeta
    with pytest.raises(AttributeError, match="nope"):
        _ = exports.nope
    with pytest.raises(KeyError):
        exports["nope"]
    assert "zeta" in dir(exports)


def test_exports_cannot_be_changed(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(MANY)).exports
    with pytest.raises(TypeError):
        exports["zeta"] = 1
    with pytest.raises(TypeError):
        del exports["zeta"]
    with pytest.raises(TypeError):
        exports.zeta = 1
    with pytest.raises(TypeError):
        del exports.zeta
    with pytest.raises(TypeError):
        exports.new_name = 1
    assert next(iter(exports)) == "zeta"


def test_exports_identity_is_stable(runtime: asyncwasm.Runtime) -> None:
    instance = Instance(Module(MANY))
    for name in instance.exports:
        assert instance.exports[name] is instance.exports[name]
    assert instance.exports is instance.exports
    first = instance.exports.zeta
    del first
    gc.collect()
    assert instance.exports.zeta is instance.exports["zeta"]


def test_same_entity_under_two_names_is_one_object(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(MANY)).exports
    assert exports.zeta is exports["get"] is exports["not an identifier"] is exports._private


def test_reexported_imports_are_the_same_objects(runtime: asyncwasm.Runtime) -> None:
    provider = Instance(
        Module(
            wat(
                """
                (module
                  (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add)
                  (memory (export "mem") 1)
                  (global (export "g") (mut i32) (i32.const 3))
                  (table (export "t") 1 funcref))
                """
            )
        )
    )
    relay = Module(
        wat(
            """
            (module
              (import "p" "f" (func $f (param i32) (result i32)))
              (import "p" "mem" (memory 1))
              (import "p" "g" (global (mut i32)))
              (import "p" "t" (table 1 funcref))
              (export "f" (func $f)) (export "f_again" (func $f))
              (export "mem" (memory 0)) (export "g" (global 0)) (export "t" (table 0)))
            """
        )
    )
    p = provider.exports
    imports = {"p": {"f": p.f, "mem": p.mem, "g": p.g, "t": p.t}}
    first = Instance(relay, imports).exports
    assert first.f is p.f
    assert first.f_again is p.f
    assert first.mem is p.mem
    assert first.g is p.g
    assert first.t is p.t
    # And through a second relay.
    second = Instance(relay, {"p": dict(first)}).exports
    assert second.f is p.f
    assert second.mem is p.mem
    assert second.f(1) == 2


def test_reexported_host_function_is_a_stable_function(runtime: asyncwasm.Runtime) -> None:
    relay = Module(
        wat(
            """
            (module (import "env" "f" (func $f (param i32) (result i32)))
              (export "f" (func $f)) (export "g" (func $f)))
            """
        )
    )

    def double(x: int) -> int:
        return 2 * x

    exports = Instance(relay, {"env": {"f": double}}).exports
    assert isinstance(exports.f, Function)
    assert exports.f is exports.g is exports["f"]
    assert exports.f(21) == 42
    # JS: another instance importing the same callable gets its own host function.
    again = Instance(relay, {"env": {"f": double}}).exports
    assert again.f is not exports.f
    # The exported host function imported elsewhere is the same object again.
    third = Instance(relay, {"env": {"f": exports.f}}).exports
    assert third.f is exports.f


def test_exports_repr_lists_names(runtime: asyncwasm.Runtime) -> None:
    instance = Instance(Module(MANY))
    assert "zeta" in repr(instance.exports)
    assert "zeta" in repr(instance)


def test_exported_function_from_another_thread(runtime: asyncwasm.Runtime) -> None:
    """wasmtime: works from any thread; wasmer: a clear NotSupportedError, never a panic."""
    exports = Instance(Module(MANY)).exports
    outcome: list[object] = []

    def worker() -> None:
        try:
            outcome.append(exports.zeta())
        except BaseException as exc:  # a PanicException is a BaseException: catch to inspect
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if runtime.engine == "wasmer":
        assert isinstance(outcome[0], asyncwasm.NotSupportedError)
        assert "wasmer" in str(outcome[0])
        assert "thread" in str(outcome[0])
    else:
        assert outcome == [1]
    assert exports.zeta() == 1  # still fine on the owning thread
