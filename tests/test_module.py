"""validate, Module, Module.exports/imports/custom_sections and the BufferSource rules, on every
engine under test."""

from __future__ import annotations

import array
import mmap

import pytest
from _wat import wat
from malformed_modules import INVALID_ONLY_FOR_ENGINE, MALFORMED, VALID

import asyncwasm
from asyncwasm import CompileError, Module
from asyncwasm._binary import decode_module
from asyncwasm._decode import lacking_feature as _lacking_feature
from asyncwasm._types import FuncType, GlobalType, Limits, MemoryType, TableType, TagType

ADD = wat(
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
)

KINDS = wat(
    """
    (module
      (import "env" "f" (func (param i64 f32) (result f64)))
      (import "env" "t" (table 2 10 funcref))
      (import "env" "m" (memory 1 2))
      (import "env" "g" (global (mut i32)))
      (import "other" "h" (func))
      (func $own (export "own") (param externref) (result i32 i64) i32.const 1 i64.const 2)
      (table (export "tab") 3 externref)
      (global (export "glob") f64 (f64.const 1.5))
      (export "imported_f" (func 0))
      (export "imported_m" (memory 0))
    )
    """
)


def test_module_exports_give_names_kinds_and_full_types_in_order(
    runtime: asyncwasm.Runtime,
) -> None:
    module = Module(KINDS)
    exports = Module.exports(module)
    assert [(e.name, e.kind) for e in exports] == [
        ("own", "function"),
        ("tab", "table"),
        ("glob", "global"),
        ("imported_f", "function"),
        ("imported_m", "memory"),
    ]
    assert exports[0].type == FuncType(("externref",), ("i32", "i64"))
    assert exports[1].type == TableType("externref", Limits(3, None))
    assert exports[2].type == GlobalType("f64", False)
    assert exports[3].type == FuncType(("i64", "f32"), ("f64",))
    assert exports[4].type == MemoryType(Limits(1, 2))


def test_module_imports_give_names_kinds_and_full_types_in_order(
    runtime: asyncwasm.Runtime,
) -> None:
    imports = Module.imports(Module(KINDS))
    assert [(i.module, i.name, i.kind) for i in imports] == [
        ("env", "f", "function"),
        ("env", "t", "table"),
        ("env", "m", "memory"),
        ("env", "g", "global"),
        ("other", "h", "function"),
    ]
    assert [i.type for i in imports] == [
        FuncType(("i64", "f32"), ("f64",)),
        TableType("anyfunc", Limits(2, 10)),
        MemoryType(Limits(1, 2)),
        GlobalType("i32", True),
        FuncType((), ()),
    ]


def test_tag_imports_and_exports_are_described(runtime: asyncwasm.Runtime) -> None:
    source = wat('(module (import "m" "t" (tag (param i32 f64))) (tag (export "e") (param i64)))')
    if not runtime.features.exceptions:
        with pytest.raises(CompileError):
            Module(source)
        return
    module = Module(source)
    assert [(i.kind, i.type) for i in Module.imports(module)] == [("tag", TagType(("i32", "f64")))]
    assert [(e.kind, e.type) for e in Module.exports(module)] == [("tag", TagType(("i64",)))]


def test_custom_sections_returns_every_section_of_that_name_in_order(
    runtime: asyncwasm.Runtime,
) -> None:
    def custom(name: bytes, payload: bytes) -> bytes:
        body = bytes([len(name)]) + name + payload
        return b"\x00" + bytes([len(body)]) + body

    source = ADD + custom(b"meta", b"first") + custom(b"other", b"x") + custom(b"meta", b"second")
    module = Module(source)
    assert Module.custom_sections(module, "meta") == [b"first", b"second"]
    assert Module.customSections(module, "other") == [b"x"]
    assert Module.custom_sections(module, "missing") == []
    with pytest.raises(TypeError):
        Module.custom_sections(module, b"meta")  # type: ignore[arg-type]


def test_descriptor_functions_refuse_non_modules(runtime: asyncwasm.Runtime) -> None:
    for fn in (Module.exports, Module.imports):
        with pytest.raises(TypeError):
            fn(ADD)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Module.custom_sections(None, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: array.array("B", b),
        lambda b: memoryview(b"\xff" + b + b"\xff")[1:-1],
    ],
    ids=["bytes", "bytearray", "memoryview", "array", "memoryview-slice"],
)
def test_any_buffer_is_a_source(runtime: asyncwasm.Runtime, make: object) -> None:
    source = make(ADD)  # type: ignore[operator]
    assert asyncwasm.validate(source) is True
    assert asyncwasm.Instance(Module(source)).exports.add(20, 22) == 42


def test_mmap_is_a_source(runtime: asyncwasm.Runtime) -> None:
    with mmap.mmap(-1, len(ADD)) as mapped:
        mapped.write(ADD)
        assert asyncwasm.validate(mapped)
        assert Module.exports(Module(mapped))[0].name == "add"


@pytest.mark.parametrize("bad", ["\0asm", [0, 97, 115, 109], 5, None, object()], ids=repr)
def test_non_buffers_are_type_errors(runtime: asyncwasm.Runtime, bad: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.validate(bad)
    with pytest.raises(TypeError):
        Module(bad)


def test_source_is_copied_before_compiling(runtime: asyncwasm.Runtime) -> None:
    buf = bytearray(ADD)
    module = Module(buf)
    buf[:] = b"\0" * len(buf)
    assert asyncwasm.Instance(module).exports.add(1, 2) == 3


@pytest.mark.anyio
async def test_compile_and_instantiate_copy_the_source_when_called(
    runtime: asyncwasm.Runtime,
) -> None:
    # As in JS: the bytes are taken at the call, not at the first await.
    buf = bytearray(ADD)
    compiling = asyncwasm.compile(buf)
    instantiating = asyncwasm.instantiate(buf)
    buf[:] = b"\0" * len(buf)
    module = await compiling
    assert asyncwasm.Instance(module).exports.add(2, 3) == 5
    assert (await instantiating).instance.exports.add(3, 4) == 7


@pytest.mark.parametrize("text", ["(module)", '(module (func (export "f")))'])
def test_text_format_is_refused(runtime: asyncwasm.Runtime, text: str) -> None:
    # Both engines would parse this as WAT; the JS API takes only the binary format.
    assert asyncwasm.validate(text.encode()) is False
    with pytest.raises(CompileError, match="magic"):
        Module(text.encode())


@pytest.mark.parametrize(("name", "source"), VALID, ids=[n for n, _ in VALID])
def test_validate_accepts_valid_modules_the_engine_accepts(
    runtime: asyncwasm.Runtime, name: str, source: bytes
) -> None:
    if _lacking_feature(decode_module(source), runtime.features) is not None:
        # A feature the engine lacks entirely (wasmer: tags) is refused before the engine,
        # which would panic, sees the bytes.
        assert asyncwasm.validate(source) is False
        with pytest.raises(CompileError, match=runtime.engine):
            Module(source)
        return
    engine_says = runtime._engine.validate(source) is None
    assert asyncwasm.validate(source) is engine_says
    if engine_says:
        Module(source)  # and compiles
    else:
        with pytest.raises(CompileError):
            Module(source)


@pytest.mark.parametrize(("name", "source"), MALFORMED, ids=[n for n, _ in MALFORMED])
def test_validate_refuses_malformed_modules(
    runtime: asyncwasm.Runtime, name: str, source: bytes
) -> None:
    assert asyncwasm.validate(source) is False
    # The engine agrees (the magic check stands in for it on non-wasm input).
    if source[:4] == b"\0asm":
        assert runtime._engine.validate(source) is not None
    with pytest.raises(CompileError) as info:
        Module(source)
    assert info.value.offset is None or 0 <= info.value.offset <= len(source)


@pytest.mark.parametrize(
    ("name", "source"), INVALID_ONLY_FOR_ENGINE, ids=[n for n, _ in INVALID_ONLY_FOR_ENGINE]
)
def test_validate_refuses_invalid_modules(
    runtime: asyncwasm.Runtime, name: str, source: bytes
) -> None:
    assert asyncwasm.validate(source) is False
    with pytest.raises(CompileError):
        Module(source)


def test_validate_agrees_with_the_engine_at_every_truncation(runtime: asyncwasm.Runtime) -> None:
    # A cut at a section boundary can leave a valid (shorter) module; anywhere else it is
    # malformed. Either way asyncwasm and the engine must agree, and Module must match validate.
    refused = 0
    for cut in range(len(KINDS)):
        truncated = KINDS[:cut]
        ours = asyncwasm.validate(truncated)
        if cut >= 4:
            assert ours is (runtime._engine.validate(truncated) is None), cut
        if not ours:
            refused += 1
            with pytest.raises(CompileError):
                Module(truncated)
    assert refused > len(KINDS) // 2


def test_engine_compile_error_keeps_its_message_and_chains_the_original(
    runtime: asyncwasm.Runtime,
) -> None:
    # Well formed, but invalid: a function declared to return i32 returns an i64.
    source = wat("(module (func (result i64) i64.const 1))").replace(
        b"\x60\x00\x01\x7e", b"\x60\x00\x01\x7f"
    )
    with pytest.raises(CompileError) as info:
        Module(source)
    assert str(info.value)
    assert not isinstance(info.value.__cause__, asyncwasm.WebAssemblyError)
