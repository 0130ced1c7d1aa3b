"""``Tag`` and ``Exception`` (issue #3, part 6) on every engine under test: exception handling on
wasmtime, ``NotSupportedError`` naming the engine on wasmer."""

from __future__ import annotations

import builtins

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, NotSupportedError, RangeError, Tag

THROWER = wat(
    """
    (module
      (import "env" "t" (tag $imp (param i32)))
      (import "env" "host" (func $host))
      (tag $own (export "own") (param i32 f64))
      (export "imp" (tag $imp))
      (func (export "throw_imp") (param i32) local.get 0 throw $imp)
      (func (export "throw_own") i32.const 7 f64.const 2.5 throw $own)
      (func (export "catch_host") (result i32)
        (block $h (result i32)
          (try_table (catch $imp $h) call $host)
          i32.const -1)))
    """
)


@pytest.fixture
def exceptions(runtime: asyncwasm.Runtime) -> bool:
    """Whether the engine has exception handling; where it hasn't, checks that using it raises
    ``NotSupportedError`` naming the engine (the test then has nothing more to check)."""
    if runtime.features.exceptions:
        return True
    with pytest.raises(NotSupportedError) as info:
        Tag(["i32"])
    assert runtime.engine in str(info.value)
    with pytest.raises(asyncwasm.CompileError, match=runtime.engine):
        Module(THROWER)
    return False


def test_tag_unsupported_names_the_engine(runtime: asyncwasm.Runtime) -> None:
    if runtime.features.exceptions:
        assert Tag([]).type is not None
        return
    for args in [["i32"], [], {"parameters": ["f64"]}]:
        with pytest.raises(NotSupportedError) as info:
            Tag(args)
        assert runtime.engine in str(info.value)
        assert isinstance(info.value, NotImplementedError)


def test_tag_constructor(exceptions: bool) -> None:
    if not exceptions:
        return
    tag = Tag(["i32", "f64"])
    assert tag.type is not None
    assert tag.type.params == ("i32", "f64")
    assert Tag({"parameters": ["funcref"]}).type.params == ("anyfunc",)  # type: ignore[union-attr]
    assert Tag(()).type.params == ()  # type: ignore[union-attr]
    assert "i32" in repr(tag)
    bad: object
    for bad in ["i32", None, 1, ["i8"], [1], {}, {"params": []}]:
        with pytest.raises(TypeError):
            Tag(bad)


def test_exception_constructor(exceptions: bool) -> None:
    if not exceptions:
        return
    tag = Tag(["i32", "f32"])
    exc = asyncwasm.Exception(tag, [2**32 + 1, 0.1])
    assert isinstance(exc, builtins.Exception)
    assert exc.is_(tag)
    assert getattr(exc, "is")(tag)
    assert not exc.is_(Tag(["i32", "f32"]))  # another tag with the same type
    assert exc.get_arg(tag, 0) == 1
    assert exc.getArg(tag, 1) == 0.10000000149011612
    assert exc.tag is tag
    assert exc.stack is None
    with pytest.raises(RangeError):
        exc.get_arg(tag, 2)
    with pytest.raises(TypeError):
        exc.get_arg(Tag(["i32", "f32"]), 0)
    with pytest.raises(TypeError):
        exc.get_arg(tag, -1)
    with pytest.raises(TypeError):
        exc.is_("tag")  # type: ignore[arg-type]
    traced = asyncwasm.Exception(tag, (1, 2), {"traceStack": True})
    assert traced.stack
    assert "test_exception_constructor" in traced.stack


@pytest.mark.parametrize(
    ("tag_args", "payload"),
    [(["i32"], [1, 2]), (["i32"], []), (["i32"], [1.5]), (["i32"], "1"), (["i32"], 1)],
)
def test_exception_constructor_errors(
    exceptions: bool, tag_args: list[str], payload: object
) -> None:
    if not exceptions:
        return
    with pytest.raises(TypeError):
        asyncwasm.Exception(Tag(tag_args), payload)  # type: ignore[arg-type]


def test_exception_needs_a_tag(exceptions: bool) -> None:
    if not exceptions:
        return
    with pytest.raises(TypeError):
        asyncwasm.Exception("tag", [])  # type: ignore[arg-type]


def test_tags_as_imports_and_exports(exceptions: bool) -> None:
    if not exceptions:
        return
    tag = Tag(["i32"])
    exports = Instance(Module(THROWER), {"env": {"t": tag, "host": lambda: None}}).exports
    assert exports.imp is tag
    assert isinstance(exports.own, Tag)
    assert exports.own is exports.own
    assert exports.own.type is not None
    assert exports.own.type.params == ("i32", "f64")
    # An exported tag can be imported elsewhere.
    again = Instance(Module(THROWER), {"env": {"t": tag, "host": print}})
    assert again.exports.imp is tag
    with pytest.raises(asyncwasm.LinkError):
        Instance(Module(THROWER), {"env": {"t": exports.own, "host": print}})  # wrong type
    with pytest.raises(asyncwasm.LinkError, match=r"env\.t"):
        Instance(Module(THROWER), {"env": {"t": 5, "host": print}})


def test_uncaught_wasm_exception_carries_tag_and_payload(exceptions: bool) -> None:
    if not exceptions:
        return
    tag = Tag(["i32"])
    exports = Instance(Module(THROWER), {"env": {"t": tag, "host": lambda: None}}).exports
    with pytest.raises(asyncwasm.Exception) as info:
        exports.throw_imp(2**32 + 5)
    assert info.value.tag is tag
    assert info.value.is_(tag)
    assert info.value.get_arg(tag, 0) == 5
    with pytest.raises(asyncwasm.Exception) as own:
        exports.throw_own()
    assert own.value.tag is exports.own
    assert own.value.get_arg(exports.own, 0) == 7
    assert own.value.get_arg(exports.own, 1) == 2.5
    assert not own.value.is_(tag)
    assert not isinstance(own.value, asyncwasm.RuntimeError)


def test_host_thrown_exception_is_caught_by_wasm(exceptions: bool) -> None:
    if not exceptions:
        return
    tag = Tag(["i32"])

    def host() -> None:
        raise asyncwasm.Exception(tag, [42])

    exports = Instance(Module(THROWER), {"env": {"t": tag, "host": host}}).exports
    assert exports.catch_host() == 42


def test_host_thrown_exception_not_caught_is_the_same_object(
    exceptions: bool,
) -> None:
    if not exceptions:
        return
    tag = Tag(["i32"])
    other = Tag(["i32"])
    error = asyncwasm.Exception(other, [1])

    def host() -> None:
        raise error

    exports = Instance(Module(THROWER), {"env": {"t": tag, "host": host}}).exports
    with pytest.raises(asyncwasm.Exception) as info:
        exports.catch_host()
    assert info.value is error


def test_plain_python_exception_is_not_caught_by_wasm(exceptions: bool) -> None:
    if not exceptions:
        return
    tag = Tag(["i32"])
    error = ValueError("not a wasm exception")

    def host() -> None:
        raise error

    exports = Instance(Module(THROWER), {"env": {"t": tag, "host": host}}).exports
    with pytest.raises(ValueError, match="not a wasm exception") as info:
        exports.catch_host()
    assert info.value is error


def test_exception_caught_and_thrown_anew_is_a_new_object(exceptions: bool) -> None:
    """wasm catches a host's exception and throws a new one with the same tag and payload:
    Python must see the new exception, not the host's object (JS identity)."""
    if not exceptions:
        return
    tag = Tag(["i32"])
    error = asyncwasm.Exception(tag, [42])

    def host() -> None:
        raise error

    module = Module(
        wat(
            """
            (module
              (import "env" "t" (tag $t (param i32)))
              (import "env" "host" (func $host))
              (func (export "rethrow_new")
                (block $h (result i32) (try_table (catch $t $h) call $host) return)
                throw $t)
              (func (export "rethrow_ref")
                (block $h (result i32 exnref)
                  (try_table (catch_ref $t $h) call $host) return)
                throw_ref drop))
            """
        )
    )
    exports = Instance(module, {"env": {"t": tag, "host": host}}).exports
    with pytest.raises(asyncwasm.Exception) as info:
        exports.rethrow_new()
    assert info.value is not error
    assert info.value.tag is tag
    assert info.value.get_arg(tag, 0) == 42
    with pytest.raises(asyncwasm.Exception) as same:
        exports.rethrow_ref()  # throw_ref rethrows the very exception
    assert same.value is error
