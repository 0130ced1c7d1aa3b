"""Tests of asyncwasm's own binary decoder (``asyncwasm._binary``): engine-independent."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

import malformed_modules as mm
import pytest
from _leb128 import sleb128, uleb128
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from malformed_modules import (
    END,
    FUNCREF,
    HEADER,
    I32,
    I64,
    INVALID_ONLY_FOR_ENGINE,
    MALFORMED,
    VALID,
    body,
    code,
    export,
    exports,
    funcs,
    functype,
    i32_const,
    module,
    name,
    section,
    types,
    u32,
    vec,
)

from asyncwasm._binary import (
    ArrayType,
    CustomSection,
    ExportInfo,
    FieldType,
    ImportInfo,
    ModuleInfo,
    StreamingDecoder,
    StructType,
    _NeedMore,
    _Reader,
    decode_module,
)
from asyncwasm._exceptions import CompileError
from asyncwasm._types import FuncType, GlobalType, Limits, MemoryType, TableType, TagType

Outcome = ModuleInfo | tuple[str, int | None]


def outcome(run: Callable[[], ModuleInfo]) -> Outcome:
    """The decoded module, or the error's message and offset, for comparisons."""
    try:
        return run()
    except CompileError as exc:
        return str(exc), exc.offset


def decode_chunks(chunks: Iterable[bytes]) -> ModuleInfo:
    decoder = StreamingDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    return decoder.finish()


def split(wasm: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(wasm)) for c in cuts})
    bounds = [0, *points, len(wasm)]
    return [wasm[a:b] for a, b in itertools.pairwise(bounds)]


def error_of(wasm: bytes) -> CompileError:
    with pytest.raises(CompileError) as info:
        decode_module(wasm)
    return info.value


# --- LEB128 ------------------------------------------------------------------------------------

LEB_CASES = [
    # (encoding, bits, signed, value or (message, offset))
    (b"\x00", 32, False, 0),
    (b"\x7f", 32, False, 127),
    (b"\x80\x01", 32, False, 128),
    (b"\xff\xff\xff\xff\x0f", 32, False, 2**32 - 1),
    (b"\x80\x80\x80\x80\x00", 32, False, 0),
    (b"\x80\x80\x80\x80\x10", 32, False, ("integer too large", 4)),
    (b"\xff\xff\xff\xff\x1f", 32, False, ("integer too large", 4)),
    (b"\x80\x80\x80\x80\x80\x00", 32, False, ("integer representation too long", 4)),
    (b"\x7f", 32, True, -1),
    (b"\x40", 32, True, -64),
    (b"\x3f", 32, True, 63),
    (b"\xc0\x00", 32, True, 64),
    (b"\x80\x80\x80\x80\x78", 32, True, -(2**31)),
    (b"\xff\xff\xff\xff\x07", 32, True, 2**31 - 1),
    (b"\xff\xff\xff\xff\x7f", 32, True, -1),
    (b"\x80\x80\x80\x80\x70", 32, True, ("integer too large", 4)),
    (b"\xff\xff\xff\xff\x0f", 32, True, ("integer too large", 4)),
    (b"\xff\xff\xff\xff\x4f", 32, True, ("integer too large", 4)),
    (b"\xff\xff\xff\xff\xff\x7f", 32, True, ("integer representation too long", 4)),
    (b"\xff\xff\xff\xff\x0f", 33, True, 2**32 - 1),
    (b"\x80\x80\x80\x80\x70", 33, True, -(2**32)),
    (b"\x80\x80\x80\x80\x10", 33, True, ("integer too large", 4)),
    (b"\x80" * 9 + b"\x7f", 64, True, -(2**63)),
    (b"\xff" * 9 + b"\x00", 64, True, 2**63 - 1),
    (b"\x80" * 9 + b"\x01", 64, True, ("integer too large", 9)),
    (b"\x80" * 10 + b"\x00", 64, True, ("integer representation too long", 9)),
    (b"\xff" * 9 + b"\x01", 64, False, 2**64 - 1),
    (b"\x80" * 9 + b"\x02", 64, False, ("integer too large", 9)),
]


@pytest.mark.parametrize(("encoding", "bits", "signed", "expected"), LEB_CASES)
def test_leb128(encoding: bytes, bits: int, signed: bool, expected: object) -> None:
    r = _Reader(bytearray(encoding + b"\xaa"), 0, len(encoding) + 1)
    if isinstance(expected, int):
        assert r.leb(bits, signed=signed) == expected
        assert r.pos == len(encoding)
    else:
        assert isinstance(expected, tuple)
        with pytest.raises(CompileError, match=f"^{expected[0]}") as info:
            r.leb(bits, signed=signed)
        assert info.value.offset == expected[1]


@given(st.integers(-(2**63), 2**64 - 1))
def test_leb128_encoder_of_the_tests_round_trips_through_the_decoder(n: int) -> None:
    # tests/_leb128.py builds every test module: it must agree with the decoder it tests.
    signed = n < 0 or (n < 2**63 and n % 2 == 0)
    encoding = sleb128(n) if signed else uleb128(n)
    r = _Reader(bytearray(encoding), 0, len(encoding))
    assert r.leb(64, signed=signed) == n
    assert r.pos == len(encoding)


def test_leb128_encoder_of_the_tests_refuses_what_it_cannot_encode() -> None:
    assert uleb128(2**32 - 1, max_len=5) == b"\xff\xff\xff\xff\x0f"
    with pytest.raises(ValueError, match="negative"):
        uleb128(-1)
    with pytest.raises(ValueError, match="more than 5"):
        sleb128(-(2**35), max_len=5)


def test_leb128_truncation_waits_inside_bound_and_fails_at_bound() -> None:
    with pytest.raises(_NeedMore):
        _Reader(bytearray(b"\x80\x80"), 0, 10).u32()
    with pytest.raises(CompileError, match=r"^unexpected end of section or function") as info:
        _Reader(bytearray(b"\x80\x80"), 0, 2).u32()
    assert info.value.offset == 2


def test_u32_fast_path_and_slow_path_agree() -> None:
    for n in (0, 1, 127, 128, 300, 2**21, 2**32 - 1):
        assert _Reader(bytearray(u32(n)), 0, 10).u32() == n


# --- Whole modules -------------------------------------------------------------------------------


def test_empty_module() -> None:
    info = decode_module(HEADER)
    assert info == ModuleInfo((), (), (), (), (), (), (), (), (), (), None, None, 8)


def test_small_module() -> None:
    info = decode_module(mm.SMALL)
    f = FuncType((), ("i32",))
    assert info.types == (f,)
    assert info.func_types == (f,)
    assert info.globals == (GlobalType("i32", False),)
    assert info.exports == (
        ExportInfo("f", "function", 0, f),
        ExportInfo("g", "global", 0, GlobalType("i32", False)),
    )
    assert info.custom_sections == (CustomSection("note", b"hello", len(mm.SMALL) - 5),)
    assert info.code_section_offset == mm.SMALL.index(bytes([10, 6, 1, 4, 0]))
    assert info.size == len(mm.SMALL)


def test_imports_of_every_kind_and_unicode_names() -> None:
    info = decode_module(mm.IMPORTS_MVP)
    f = FuncType(("i32", "i64"), ("f32",))
    assert info.imports == (
        ImportInfo("env", "f", "function", f),
        ImportInfo("env", "t", "table", TableType("anyfunc", Limits(1, 10))),
        ImportInfo("env", "m", "memory", MemoryType(Limits(1))),
        ImportInfo("env", "g", "global", GlobalType("i64", True)),
        ImportInfo("\u00e9t\u00e9", "\u2603", "global", GlobalType("f64", False)),
    )
    assert info.func_types == (f,)
    assert info.func_type_indices == (0,)
    assert len(info.globals) == 2
    tag = decode_module(mm.IMPORT_TAG)
    assert tag.imports == (ImportInfo("env", "e", "tag", TagType(("i32",))),)
    assert tag.tags == (TagType(("i32",)),)


def test_compact_imports() -> None:
    f = functype([], [])
    grouped = module(
        types(f),
        section(
            2,
            vec(
                [
                    name("a")
                    + name("")
                    + b"\x7f"
                    + vec([name("x") + b"\x00\x00", name("y") + b"\x03\x7f\x00"]),
                    name("b") + name("") + b"\x7e" + b"\x03\x7e\x01" + vec([name("p"), name("q")]),
                    name("c") + name("") + b"\x00\x00",  # a plain import whose field name is ""
                ]
            ),
        ),
    )
    info = decode_module(grouped)
    assert [(i.module, i.name, i.kind) for i in info.imports] == [
        ("a", "x", "function"),
        ("a", "y", "global"),
        ("b", "p", "global"),
        ("b", "q", "global"),
        ("c", "", "function"),
    ]
    assert info.globals == (
        GlobalType("i32", False),
        GlobalType("i64", True),
        GlobalType("i64", True),
    )
    assert info.func_type_indices == (0, 0)


def test_exports_of_every_kind() -> None:
    info = decode_module(mm.EXPORTS_ALL)
    assert [(e.name, e.kind, e.index) for e in info.exports] == [
        ("func", "function", 0),
        ("table", "table", 0),
        ("memory", "memory", 0),
        ("global", "global", 0),
        ("tag", "tag", 0),
    ]
    assert [e.type for e in info.exports] == [
        FuncType(("i32",), ("i32",)),
        TableType("anyfunc", Limits(2)),
        MemoryType(Limits(1, 2)),
        GlobalType("f32", True),
        TagType(("i32",)),
    ]


def test_exports_resolve_imported_entities() -> None:
    wasm = module(
        types(functype([I64], [])),
        section(
            2, vec([name("m") + name("f") + b"\x00\x00", name("m") + name("g") + b"\x03\x7d\x00"])
        ),
        funcs(0),
        section(6, vec([bytes([I32, 0]) + i32_const(1)])),
        exports(export("f0", 0, 0), export("f1", 0, 1), export("g0", 3, 0), export("g1", 3, 1)),
        code(body(END)),
    )
    info = decode_module(wasm)
    assert [e.type for e in info.exports] == [
        FuncType(("i64",), ()),
        FuncType(("i64",), ()),
        GlobalType("f32", False),
        GlobalType("i32", False),
    ]


def test_every_custom_section_in_order() -> None:
    info = decode_module(mm.CUSTOM_REPEATED)
    assert info.custom_section_data("dup") == [b"first", b"", b"third", b"last"]
    assert info.custom_section_data("other") == [b"\x00\x0b\xff"]
    assert info.custom_section_data("") == [b"empty name"]
    assert info.custom_section_data("missing") == []
    for s in info.custom_sections:
        assert mm.CUSTOM_REPEATED[s.offset : s.offset + len(s.data)] == s.data


def test_memory64_and_shared_memory() -> None:
    info = decode_module(mm.MEMORY64)
    assert info.memories == (
        MemoryType(Limits(1, 2**33), memory64=True),
        MemoryType(Limits(0), memory64=True),
    )
    assert decode_module(mm.SHARED_MEMORY).memories == (MemoryType(Limits(1, 4), shared=True),)


def test_custom_page_size_and_table64() -> None:
    wasm = module(
        section(4, vec([bytes([FUNCREF]) + b"\x05" + u32(1) + u32(2**40)])),
        section(5, vec([b"\x08\x01\x00"])),
    )
    info = decode_module(wasm)
    assert info.tables == (TableType("anyfunc", Limits(1, 2**40), table64=True),)
    assert info.memories == (MemoryType(Limits(1), page_size_log2=0),)


def test_tags_and_exnref() -> None:
    info = decode_module(mm.TAGS_AND_EXNREF)
    assert info.tags == (TagType(("i32", "f64")),)
    assert info.types[1] == FuncType((), ("exnref",))
    assert info.exports[0].type == TagType(("i32", "f64"))


def test_gc_types_keep_indices_and_names() -> None:
    info = decode_module(mm.GC_TYPES)
    assert info.types == (
        StructType((FieldType("i32", True), FieldType("i8", False))),
        ArrayType(FieldType("i16", True)),
        FuncType(("anyref",), ()),
        FuncType(("anyref",), ()),
        FuncType(("(ref null 0)",), ("(ref func)",)),
    )
    assert [g.value for g in info.globals] == ["(ref null 0)", "i31ref", "(ref 0)", "(ref null 1)"]


def test_reference_type_names() -> None:
    short = [0x70, 0x6F, 0x6E, 0x6D, 0x6C, 0x6B, 0x6A, 0x69, 0x71, 0x72, 0x73, 0x74]
    long = [
        b"\x63\x70",
        b"\x63\x6f",
        b"\x63\x69",
        b"\x64\x70",
        b"\x64\x6f",
        b"\x64\x6e",
        b"\x63\x05",
        b"\x64\x80\x01",
    ]
    info = decode_module(module(types(functype([*short, *long], []))))
    assert info.types[0] == FuncType(
        (
            "anyfunc",
            "externref",
            "anyref",
            "eqref",
            "i31ref",
            "structref",
            "arrayref",
            "exnref",
            "nullref",
            "nullexternref",
            "nullfuncref",
            "nullexnref",
            "anyfunc",
            "externref",
            "exnref",
            "(ref func)",
            "(ref extern)",
            "(ref any)",
            "(ref null 5)",
            "(ref 128)",
        ),
        (),
    )


def test_v128_globals() -> None:
    info = decode_module(mm.V128_GLOBALS)
    assert info.globals == (GlobalType("v128", False), GlobalType("v128", True))


def test_segments_start_and_consts() -> None:
    info = decode_module(mm.ELEM_AND_DATA)
    assert len(info.func_types) == 2
    assert len(info.tables) == 2
    info = decode_module(mm.CONSTS_AND_START)
    assert info.start == 0
    assert info.tables == (TableType("anyfunc", Limits(1)),)
    assert [g.value for g in info.globals] == ["i32", "i32", "i64", "f64", "externref"]


def test_multi_value_and_locals() -> None:
    info = decode_module(mm.MULTI_VALUE_LOCALS)
    assert info.func_types == (FuncType(("i32", "i64"), ("i64", "i32")),)


def test_result_is_immutable() -> None:
    info = decode_module(mm.SMALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.start = 3  # type: ignore[misc]


@pytest.mark.parametrize(("title", "wasm"), VALID, ids=[t for t, _ in VALID])
def test_valid_modules_decode(title: str, wasm: bytes) -> None:
    assert decode_module(wasm).size == len(wasm)


@pytest.mark.parametrize(
    ("title", "wasm"), INVALID_ONLY_FOR_ENGINE, ids=[t for t, _ in INVALID_ONLY_FOR_ENGINE]
)
def test_invalid_but_well_formed_modules_are_left_to_the_engine(title: str, wasm: bytes) -> None:
    decode_module(wasm)


def test_buffer_types_accepted() -> None:
    expected = decode_module(mm.SMALL)
    assert decode_module(bytearray(mm.SMALL)) == expected
    assert decode_module(memoryview(mm.SMALL)) == expected


# --- Errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("title", "wasm"), MALFORMED, ids=[t for t, _ in MALFORMED])
def test_malformed_modules_raise_compile_error_with_offset(title: str, wasm: bytes) -> None:
    error = error_of(wasm)
    assert error.offset is not None
    assert 0 <= error.offset <= len(wasm)
    assert f"(at byte offset {error.offset})" in str(error)


def _case(title: str) -> bytes:
    return dict(MALFORMED)[title]


ERROR_CASES = [
    # (MALFORMED title, message start, offset)
    ("empty input", "unexpected end", 0),
    ("truncated magic", "unexpected end", 3),
    ("bad magic", "magic header not detected", 0),
    ("text format", "magic header not detected", 0),
    ("truncated version", "unexpected end", 6),
    ("version 2", "unknown binary version", 4),
    ("component version", "unknown binary version", 4),
    ("section size u32 in 6 bytes", "integer representation too long", 13),
    ("type count with bits past 32", "integer too large", 14),
    ("i32.const with bad sign bits", "integer too large", 18),
    ("i64.const 11 bytes", "integer representation too long", 23),
    ("function section before type section", "unexpected content after last section", 11),
    ("duplicate type section", "unexpected content after last section", 11),
    ("data count after code", "unexpected content after last section", 11),
    ("tag after global", "unexpected content after last section", 11),
    ("section id 14", "malformed section id", 8),
    ("section id 0x7f", "malformed section id", 8),
    ("trailing junk byte", "malformed section id", 11),
    ("section size overruns input", "section size mismatch", 11),
    ("section size too small", "unexpected end of section or function", 13),
    ("section size too large", "section size mismatch", 14),
    ("custom section name longer than section", "length out of bounds", 11),
    ("custom section without name", "unexpected end of section or function", 10),
    ("bad value type 0x40", "malformed value type", 13),
    ("bad value type 0x01 in result", "malformed value type", 14),
    ("bad type form 0x61", "malformed type form", 11),
    ("bad heap type", "malformed heap type", 14),
    ("table element i32", "malformed reference type", 11),
    ("memory limits flags 0x10", "malformed limits flags", 11),
    ("table limits flags 0x02", "malformed limits flags", 12),
    ("import kind 5", "malformed import kind", 15),
    ("import global mutability 2", "malformed mutability", 17),
    ("import of unknown type", "unknown type 0", 16),
    ("export kind 5", "malformed export kind", 13),
    ("invalid: export of unknown function", "unknown function 0", 14),
    ("invalid: duplicate export name", "duplicate export name", 20),
    ("global mutability 2", "malformed mutability", 12),
    ("tag attribute 1", "malformed tag attribute", 17),
    ("overlong UTF-8 in import module name", "malformed UTF-8 encoding", 12),
    ("surrogate in export name", "malformed UTF-8 encoding", 17),
    ("lone continuation byte in custom name", "malformed UTF-8 encoding", 11),
    ("truncated UTF-8 in import field name", "malformed UTF-8 encoding", 14),
    ("function without code section", "function and code section have inconsistent lengths", 18),
    ("code without function section", "function and code section have inconsistent lengths", 16),
    ("function and code counts differ", "function and code section have inconsistent lengths", 21),
    ("data before missing code", "function and code section have inconsistent lengths", 18),
    ("too many locals", "too many locals", 23),  # the first count is over the JS API's limit
    ("body without end", "END opcode expected", 23),
    ("empty body", "unexpected end of section or function", 22),
    ("body size overruns section", "length out of bounds", 22),
    ("bad local type", "malformed value type", 24),
    ("function of unknown type", "unknown type 1", 17),
    ("global init without end", "unexpected end of section or function", 15),
    ("invalid: nop in constant expression", "constant expression required", 13),
    ("elem segment flags 8", "malformed elements segment kind", 11),
    ("data segment flags 3", "malformed data segment kind", 16),
    ("data segment longer than section", "length out of bounds", 18),
    (
        "data count differs from data section",
        "data count and data section have inconsistent lengths",
        18,
    ),
    (
        "data count without data section",
        "data count and data section have inconsistent lengths",
        11,
    ),
    ("invalid: start of unknown function", "unknown function 0", 10),
]


@pytest.mark.parametrize(
    ("title", "message", "offset"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_error_messages_and_offsets(title: str, message: str, offset: int) -> None:
    error = error_of(_case(title))
    assert str(error).startswith(message), str(error)
    assert error.offset == offset, str(error)


def test_error_for_elem_kind() -> None:
    error = error_of(_case("elem kind 1"))
    assert str(error).startswith("malformed elements segment kind")


def test_truncations_cover_every_section() -> None:
    cuts = [t for t, _ in MALFORMED if t.startswith("small module cut")]
    assert len(cuts) == 2 * 6
    for title in cuts:
        assert str(error_of(_case(title))).startswith("unexpected end")


def test_huge_counts_fail_fast() -> None:
    started = time.perf_counter()
    for wasm in (
        module(section(1, b"\xff\xff\xff\xff\x0f" + functype([], []))),
        module(section(9, vec([b"\x00" + i32_const(0) + b"\xff\xff\xff\xff\x0f\x00"]))),
        module(types(b"\x60\xff\xff\xff\xff\x0f\x7f")),
        module(section(5, vec([b"\x00\x01"])), section(11, b"\xff\xff\xff\xff\x0f\x01\x00")),
    ):
        error_of(wasm)
    assert time.perf_counter() - started < 1


def test_local_count_at_the_js_api_limit_is_well_formed() -> None:
    # 50,000 locals, parameters included (JS API "Limits"); the core format allows 2**32 - 1.
    decode_module(
        module(
            types(functype([I32], [])), funcs(0), code(body(END, [(30_000, I32), (19_999, I64)]))
        )
    )
    with pytest.raises(CompileError, match="too many locals"):
        decode_module(
            module(
                types(functype([I32], [])),
                funcs(0),
                code(body(END, [(30_000, I32), (20_000, I64)])),
            )
        )


# --- Streaming ----------------------------------------------------------------------------------

ALL_CASES = VALID + MALFORMED + INVALID_ONLY_FOR_ENGINE


@pytest.mark.parametrize(("title", "wasm"), ALL_CASES, ids=[t for t, _ in ALL_CASES])
def test_every_two_way_split_equals_whole_decode(title: str, wasm: bytes) -> None:
    whole = outcome(lambda: decode_module(wasm))
    for cut in range(len(wasm) + 1):
        assert outcome(lambda cut=cut: decode_chunks(split(wasm, [cut]))) == whole, cut  # type: ignore[misc]
    assert outcome(lambda: decode_chunks(wasm[i : i + 1] for i in range(len(wasm)))) == whole


def test_streaming_api() -> None:
    decoder = StreamingDecoder()
    assert decoder.bytes_received == 0
    decoder.feed(mm.SMALL[:10])
    decoder.feed(b"")
    decoder.feed(memoryview(mm.SMALL)[10:])
    assert decoder.bytes_received == len(mm.SMALL)
    info = decoder.finish()
    assert decoder.finish() is info
    assert decoder.data == mm.SMALL
    assert type(decoder.data) is bytes
    with pytest.raises(ValueError, match="after finish"):
        decoder.feed(b"\x00")


def test_errors_are_sticky() -> None:
    decoder = StreamingDecoder()
    with pytest.raises(CompileError) as first:
        decoder.feed(b"\0asx")
    with pytest.raises(CompileError) as again:
        decoder.feed(b"more")
    assert again.value is first.value
    with pytest.raises(CompileError) as at_finish:
        decoder.finish()
    assert at_finish.value is first.value


def _feed_until_error(chunks: Iterable[bytes]) -> tuple[int, CompileError]:
    """Feed chunks; the index of the chunk whose feed raised, and the error."""
    decoder = StreamingDecoder()
    for i, chunk in enumerate(chunks):
        try:
            decoder.feed(chunk)
        except CompileError as exc:
            return i, exc
    raise AssertionError("no error while feeding")


def test_bad_header_fails_on_first_chunk_of_a_big_stream() -> None:
    def stream() -> Iterable[bytes]:
        yield b"\0asm\x02\x00\x00\x00" + bytes(65536 - 8)
        raise AssertionError("read past the bad header")

    index, error = _feed_until_error(stream())
    assert index == 0
    assert error.offset == 4


@pytest.mark.parametrize(
    ("prefix", "bad_at"),
    [
        (b"\0asm\x01\x00\x00\x00", None),
        (b"\x01", 0),
        (b"\0asx", 3),
        (b"\0asm\x0d", 4),
        (b"\0asm\x01\x00\x00\x00\x0e", 8),
        (b"\0asm\x01\x00\x00\x00\x03\x01\x00\x01", 11),  # type after function: at its id byte
        (b"\0asm\x01\x00\x00\x00\x01\x81\x80\x80\x80\x80", 13),
        (b"\0asm\x01\x00\x00\x00\x01\x05\x01\x60\x01\x40", 13),
    ],
)
def test_byte_at_a_time_fails_at_the_bad_byte(prefix: bytes, bad_at: int | None) -> None:
    decoder = StreamingDecoder()
    for i, b in enumerate(prefix):
        if i == bad_at:
            with pytest.raises(CompileError):
                decoder.feed(bytes([b]))
            return
        decoder.feed(bytes([b]))
    assert bad_at is None


def test_bad_third_section_fails_before_the_rest_is_read() -> None:
    big_code = code(*[body(b"\x41" + i32_const(5)[1:-1] + b"\x1a" + END)] * 20000)
    wasm = module(
        types(functype([], [])),
        funcs(*[0] * 20000),
        section(4, vec([bytes([I32]) + b"\x00\x01"])),  # table of i32: malformed reference type
        big_code,
    )
    bad = wasm.index(bytes([4, 4, 1, I32])) + 3
    chunk = 1024
    index, error = _feed_until_error(wasm[i : i + chunk] for i in range(0, len(wasm), chunk))
    assert error.offset == bad
    assert index == bad // chunk
    assert len(wasm) > 10 * chunk


def test_big_item_fed_byte_by_byte_stays_linear() -> None:
    # One export-free element segment of 200k function indices, fed in 1-byte chunks.
    wasm = module(
        types(functype([], [])),
        funcs(0),
        section(4, vec([bytes([FUNCREF]) + b"\x00\x01"])),
        section(9, vec([b"\x00" + i32_const(0) + vec([u32(0)] * 200_000)])),
        code(body(END)),
    )
    started = time.perf_counter()
    decoder = StreamingDecoder()
    for i in range(len(wasm)):
        decoder.feed(wasm[i : i + 1])
    decoder.finish()
    assert time.perf_counter() - started < 5


def test_truncated_stream_fails_at_finish() -> None:
    decoder = StreamingDecoder()
    decoder.feed(mm.SMALL[:-1])
    with pytest.raises(CompileError, match=r"^unexpected end") as info:
        decoder.finish()
    assert info.value.offset == len(mm.SMALL) - 1


# --- Real module ---------------------------------------------------------------------------------


def _quickjs() -> bytes:
    try:
        files = metadata.files("qjs-wasi-reactor.wasm") or []
    except metadata.PackageNotFoundError:
        pytest.skip("qjs-wasi-reactor.wasm is not installed")
    for f in files:
        if f.name == "qjs-wasi-reactor.wasm":
            return Path(str(f.locate())).read_bytes()
    pytest.skip("qjs-wasi-reactor.wasm file not found in its package")


def test_quickjs_decodes_quickly_and_streams_identically() -> None:
    wasm = _quickjs()
    started = time.perf_counter()
    info = decode_module(wasm)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # typically ~5 ms; generous for slow CI machines
    assert {"memory", "_initialize", "malloc"} <= {e.name for e in info.exports}
    assert info.imports[0].module == "wasi_snapshot_preview1"
    assert info.code_section_offset is not None
    assert len(info.custom_section_data("name")) == 1
    assert decode_chunks(split(wasm, range(0, len(wasm), 16384))) == info
    assert decode_chunks(split(wasm, range(0, len(wasm), 997))) == info


# --- Properties ----------------------------------------------------------------------------------

PROPERTY = settings(
    derandomize=True,
    database=None,
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
small_modules = st.sampled_from([w for _, w in VALID if len(w) < 400])


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A valid module with a few bytes replaced, inserted or deleted, or cut short."""
    wasm = bytearray(draw(small_modules))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(wasm)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        byte = draw(
            st.sampled_from(
                [0x00, 0x01, 0x0B, 0x40, 0x60, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]
            )
        )
        if action == "replace" and pos < len(wasm):
            wasm[pos] = byte
        elif action == "insert":
            wasm.insert(pos, byte)
        elif action == "delete" and pos < len(wasm):
            del wasm[pos]
        elif action == "truncate":
            del wasm[pos:]
    return bytes(wasm)


def _only_compile_error(wasm: bytes) -> Outcome:
    result = outcome(lambda: decode_module(wasm))
    if not isinstance(result, ModuleInfo):
        assert result[1] is not None
    return result


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_compile_error(data: bytes) -> None:
    _only_compile_error(data)


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes_after_header_raise_only_compile_error(data: bytes) -> None:
    _only_compile_error(HEADER + data)


@PROPERTY
@given(mutants())
def test_mutated_modules_raise_only_compile_error(wasm: bytes) -> None:
    _only_compile_error(wasm)


@PROPERTY
@given(st.one_of(mutants(), small_modules, st.sampled_from([w for _, w in MALFORMED])), st.data())
def test_any_chunking_equals_whole_decode(wasm: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(wasm)), max_size=12))
    assert outcome(lambda: decode_chunks(split(wasm, cuts))) == outcome(lambda: decode_module(wasm))
