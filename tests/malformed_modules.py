"""Hand-encoded modules for the binary decoder's tests (data only, no tests here).

- ``VALID``: well-formed, valid modules that wasmtime accepts (see ``WASMER_REJECTS`` for the ones
  the older wasmer engine refuses because they use post-2021 features).
- ``MALFORMED``: modules that both engines reject *and* that asyncwasm's decoder must reject.
  Most are malformed in the binary-format sense; a few (marked "invalid:") are well-formed but
  fail a validation rule the decoder checks anyway (type/export indices, duplicate export names,
  non-constant instructions in constant expressions).
- ``INVALID_ONLY_FOR_ENGINE``: well-formed modules that fail validation inside function bodies or
  other rules the decoder leaves to the engine: the decoder accepts them, both engines reject.

Checked once against wasmtime 50.0.1 and wasmer 1.1.0 (engine 2.1, Cranelift) with
``Module.validate``. Differences: every entry of ``WASMER_REJECTS`` is valid for wasmtime only;
every ``MALFORMED`` and ``INVALID_ONLY_FOR_ENGINE`` entry is rejected by both.
"""

from __future__ import annotations

from _leb128 import sleb128, uleb128

HEADER = b"\0asm\x01\x00\x00\x00"

I32, I64, F32, F64, V128 = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B
FUNCREF, EXTERNREF, ANYREF, EQREF, I31REF, EXNREF = 0x70, 0x6F, 0x6E, 0x6D, 0x6C, 0x69
END = b"\x0b"


# --- A tiny encoder --------------------------------------------------------------------------


# The binary grammar's names for the two LEB128 forms used here.
u32 = uleb128
sleb = sleb128


def vec(items: list[bytes]) -> bytes:
    return u32(len(items)) + b"".join(items)


def name(text: str) -> bytes:
    raw = text.encode()
    return u32(len(raw)) + raw


def raw_name(raw: bytes) -> bytes:
    return u32(len(raw)) + raw


def section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + u32(len(payload)) + payload


def module(*sections: bytes) -> bytes:
    return HEADER + b"".join(sections)


def valtype(t: int | bytes) -> bytes:
    return bytes([t]) if isinstance(t, int) else t


def functype(params: list[int | bytes], results: list[int | bytes]) -> bytes:
    return b"\x60" + vec([valtype(p) for p in params]) + vec([valtype(r) for r in results])


def body(code: bytes, locals_: list[tuple[int, int]] | None = None) -> bytes:
    """A function body: ``code`` must include the final ``end``."""
    decls = vec([u32(n) + bytes([t]) for n, t in locals_ or []])
    content = decls + code
    return u32(len(content)) + content


def i32_const(n: int) -> bytes:
    return b"\x41" + sleb(n) + END


def custom(title: str, payload: bytes) -> bytes:
    return section(0, name(title) + payload)


def types(*entries: bytes) -> bytes:
    return section(1, vec(list(entries)))


def imports(*entries: bytes) -> bytes:
    return section(2, vec(list(entries)))


def funcs(*type_indices: int) -> bytes:
    return section(3, vec([u32(i) for i in type_indices]))


def exports(*entries: bytes) -> bytes:
    return section(7, vec(list(entries)))


def export(title: str, kind: int, index: int) -> bytes:
    return name(title) + bytes([kind]) + u32(index)


def code(*bodies: bytes) -> bytes:
    return section(10, vec(list(bodies)))


# --- Valid modules ------------------------------------------------------------------------------

EMPTY = HEADER

# (func (export "f") (result i32) i32.const 42), a custom section and a global: small and
# sectioned, used for the truncation cases.
SMALL = module(
    types(functype([], [I32])),
    funcs(0),
    section(6, vec([bytes([I32, 0]) + i32_const(7)])),
    exports(export("f", 0, 0), export("g", 3, 0)),
    code(body(b"\x41\x2a" + END)),
    custom("note", b"hello"),
)

IMPORTS_MVP = module(
    types(functype([I32, I64], [F32]), functype([], [])),
    imports(
        name("env") + name("f") + b"\x00" + u32(0),
        name("env") + name("t") + b"\x01" + bytes([FUNCREF]) + b"\x01\x01\x0a",
        name("env") + name("m") + b"\x02\x00\x01",
        name("env") + name("g") + b"\x03" + bytes([I64, 1]),
        name("\u00e9t\u00e9") + name("\u2603") + b"\x03" + bytes([F64, 0]),
    ),
)

IMPORT_TAG = module(
    types(functype([I32], [])),
    imports(name("env") + name("e") + b"\x04\x00" + u32(0)),
)

EXPORTS_ALL = module(
    types(functype([I32], [I32]), functype([I32], [])),
    funcs(0),
    section(4, vec([bytes([FUNCREF]) + b"\x00\x02"])),
    section(5, vec([b"\x01\x01\x02"])),
    section(13, vec([b"\x00" + u32(1)])),
    section(6, vec([bytes([F32, 1]) + b"\x43\x00\x00\x80\x3f" + END])),
    exports(
        export("func", 0, 0),
        export("table", 1, 0),
        export("memory", 2, 0),
        export("global", 3, 0),
        export("tag", 4, 0),
    ),
    code(body(b"\x20\x00" + END)),
)

CUSTOM_REPEATED = module(
    custom("dup", b"first"),
    types(functype([], [])),
    custom("dup", b""),
    custom("other", b"\x00\x0b\xff"),
    funcs(0),
    custom("dup", b"third"),
    code(body(END)),
    custom("dup", b"last"),
    custom("", b"empty name"),
)

MEMORY64 = module(
    section(5, vec([b"\x05" + u32(1) + u32(2**33), b"\x04" + u32(0)])),
    exports(export("m", 2, 0), export("m2", 2, 1)),
)

SHARED_MEMORY = module(
    section(5, vec([b"\x03\x01\x04"])),
    exports(export("mem", 2, 0)),
)

TAGS_AND_EXNREF = module(
    types(functype([I32, F64], []), functype([], [EXNREF])),
    section(13, vec([b"\x00" + u32(0)])),
    exports(export("e", 4, 0)),
)

# (rec (type $s (struct (field (mut i32)) (field i8)))
#      (type $a (array (mut i16)))) (type (sub $f (func (param anyref))))
# (type (sub final 2 (func (param anyref)))) plus a global (ref null 0) and an i31 global.
GC_TYPES = module(
    types(
        b"\x4e" + vec([b"\x5f" + vec([bytes([I32, 1]), b"\x78\x00"]), b"\x5e\x77\x01"]),
        b"\x50\x00" + functype([ANYREF], []),
        b"\x4f" + vec([u32(2)]) + functype([ANYREF], []),
        functype([b"\x63\x00"], [b"\x64\x70"]),
    ),
    section(
        6,
        vec(
            [
                b"\x63\x00\x00" + b"\xd0\x00" + END,
                bytes([I31REF, 0]) + b"\x41\x05\xfb\x1c" + END,
                b"\x64\x00\x00" + b"\xfb\x01\x00" + END,
                b"\x63\x01\x00" + b"\x41\x01\x41\x02\xfb\x08\x01\x02" + END,
            ]
        ),
    ),
    exports(export("s", 3, 0)),
)

V128_GLOBALS = module(
    section(
        6,
        vec(
            [
                bytes([V128, 0]) + b"\xfd\x0c" + bytes(range(16)) + END,
                bytes([V128, 1]) + b"\xfd\x0c" + b"\x0b" * 16 + END,
            ]
        ),
    ),
    exports(export("v", 3, 0)),
)

# Every element segment form (flags 0..7) and every data segment form (0..2) with a datacount.
ELEM_AND_DATA = module(
    types(functype([], [])),
    funcs(0, 0),
    section(4, vec([bytes([FUNCREF]) + b"\x00\x04", bytes([FUNCREF]) + b"\x00\x04"])),
    section(5, vec([b"\x00\x01"])),
    section(
        9,
        vec(
            [
                b"\x00" + i32_const(0) + vec([u32(0), u32(1)]),
                b"\x01\x00" + vec([u32(1)]),
                b"\x02" + u32(1) + i32_const(1) + b"\x00" + vec([u32(0)]),
                b"\x03\x00" + vec([u32(1)]),
                b"\x04" + i32_const(2) + vec([b"\xd2\x00" + END, b"\xd0\x70" + END]),
                b"\x05" + bytes([FUNCREF]) + vec([b"\xd2\x01" + END]),
                b"\x06" + u32(1) + i32_const(3) + bytes([FUNCREF]) + vec([b"\xd2\x00" + END]),
                b"\x07" + bytes([FUNCREF]) + vec([b"\xd2\x01" + END]),
            ]
        ),
    ),
    section(12, u32(3)),
    code(body(END), body(END)),
    section(
        11,
        vec(
            [
                b"\x00" + i32_const(0) + raw_name(b"\x0b\x0b\x00"),
                b"\x01" + raw_name(b"passive"),
                b"\x02" + u32(0) + i32_const(100) + raw_name(b""),
            ]
        ),
    ),
)

# Globals with extended-constant initialisers, a table with an init expression, a start function.
CONSTS_AND_START = module(
    types(functype([], [])),
    imports(name("env") + name("base") + b"\x03" + bytes([I32, 0])),
    funcs(0),
    section(4, vec([b"\x40\x00" + bytes([FUNCREF]) + b"\x00\x01" + b"\xd2\x00" + END])),
    section(
        6,
        vec(
            [
                bytes([I32, 0]) + b"\x23\x00\x41\x0b\x6a\x41\x02\x6c" + END,
                bytes([I64, 1]) + b"\x42" + sleb(-(2**63)) + b"\x42\x01\x7d" + END,
                bytes([F64, 0]) + b"\x44" + b"\x0b" * 8 + END,
                bytes([EXTERNREF, 0]) + b"\xd0\x6f" + END,
            ]
        ),
    ),
    section(8, u32(0)),
    code(body(END)),
)

# Multi-value results, locals of several types, a padded (non-minimal) but in-range LEB128.
MULTI_VALUE_LOCALS = module(
    types(functype([I32, I64], [I64, I32])),
    funcs(0),
    exports(export("swap", 0, 0)),
    section(
        10,
        b"\x81\x80\x80\x80\x00"  # count 1, padded to five bytes: allowed
        + body(b"\x20\x01\x20\x00" + END, [(2, I32), (1, F64), (3, V128)]),
    ),
)

VALID: list[tuple[str, bytes]] = [
    ("empty module", EMPTY),
    ("small module", SMALL),
    ("imports of MVP kinds", IMPORTS_MVP),
    ("tag import", IMPORT_TAG),
    ("exports of every kind", EXPORTS_ALL),
    ("repeated custom sections", CUSTOM_REPEATED),
    ("memory64", MEMORY64),
    ("shared memory", SHARED_MEMORY),
    ("tags and exnref", TAGS_AND_EXNREF),
    ("GC types", GC_TYPES),
    ("v128 globals", V128_GLOBALS),
    ("element and data segments of every form", ELEM_AND_DATA),
    ("extended consts, table init, start", CONSTS_AND_START),
    ("multi-value and locals", MULTI_VALUE_LOCALS),
]

# Valid for wasmtime 50, rejected by wasmer 1.1.0 (its engine predates these proposals).
WASMER_REJECTS: frozenset[str] = frozenset(
    {
        "shared memory",  # threads are off in wasmer's default features
        "memory64",
        "tags and exnref",  # exnref (wasmer's validator does accept tag sections and exports)
        "GC types",
        "extended consts, table init, start",  # extended-const, table init expression
    }
)


# --- Malformed modules --------------------------------------------------------------------------


def _section_spans(wasm: bytes) -> list[tuple[int, int]]:
    """(start, end) of every section of a well-formed module, by walking the headers."""
    spans = []
    pos = len(HEADER)
    while pos < len(wasm):
        start = pos
        pos += 1
        size = shift = 0
        while True:
            b = wasm[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        pos += size
        spans.append((start, pos))
    return spans


def _truncations(title: str, wasm: bytes) -> list[tuple[str, bytes]]:
    """``wasm`` cut one byte before each section's end and just after each section id."""
    out = []
    for start, end in _section_spans(wasm):
        out.append(
            (f"{title} cut inside section at {start} (before byte {end - 1})", wasm[: end - 1])
        )
        out.append((f"{title} cut after section id at {start}", wasm[: start + 1]))
    return out


MALFORMED: list[tuple[str, bytes]] = [
    ("empty input", b""),
    ("truncated magic", b"\0as"),
    ("bad magic", b"\0asn\x01\x00\x00\x00"),
    ("text format", b"(module)"),
    ("truncated version", b"\0asm\x01\x00"),
    ("version 2", b"\0asm\x02\x00\x00\x00"),
    ("component version", b"\0asm\x0d\x00\x01\x00"),
    *_truncations("small module", SMALL),
    # LEB128
    ("section size u32 in 6 bytes", HEADER + b"\x01\x81\x80\x80\x80\x80\x00" + b"\x00"),
    ("type count with bits past 32", module(section(1, b"\x80\x80\x80\x80\x10"))),
    ("i32.const with bad sign bits", module(section(6, vec([bytes([I32, 0]) + b"\x41\x80\x80\x80\x80\x70" + END])))),
    ("i64.const 11 bytes", module(section(6, vec([bytes([I64, 0]) + b"\x42" + b"\x80" * 10 + b"\x00" + END])))),
    # Section layout
    ("function section before type section", module(funcs(), types())),
    ("duplicate type section", module(types(), types())),
    ("duplicate memory section", module(section(5, vec([])), section(5, vec([])))),
    ("data count after code", module(code(), section(12, u32(0)))),
    ("tag after global", module(section(6, vec([])), section(13, vec([])))),
    ("section id 14", module(section(14, b""))),
    ("section id 0x7f", HEADER + b"\x7f\x00"),
    ("trailing junk byte", module(types()) + b"\x99"),
    ("section size overruns input", HEADER + b"\x01\x64\x00"),
    ("section size too small", HEADER + b"\x01\x03\x01\x60\x00\x00"),
    ("section size too large", HEADER + b"\x01\x05\x01\x60\x00\x00\x00"),
    ("custom section name longer than section", HEADER + b"\x00\x02\x05ab"),
    ("custom section without name", HEADER + b"\x00\x00"),
    # Types
    ("bad value type 0x40", module(types(functype([0x40], [])))),
    ("bad value type 0x01 in result", module(types(functype([], [0x01])))),
    ("bad type form 0x61", module(types(b"\x61\x00\x00"))),
    ("bad heap type", module(types(functype([0x63, 0x7F], [])))),
    ("table element i32", module(section(4, vec([bytes([I32]) + b"\x00\x01"])))),
    ("memory limits flags 0x10", module(section(5, vec([b"\x10\x00"])))),
    ("table limits flags 0x02", module(section(4, vec([bytes([FUNCREF]) + b"\x02\x00"])))),
    # Imports and exports
    ("import kind 5", module(imports(name("m") + name("x") + b"\x05\x00"))),
    ("import global mutability 2", module(imports(name("m") + name("g") + b"\x03" + bytes([I32, 2])))),
    ("import of unknown type", module(imports(name("m") + name("f") + b"\x00\x00"))),
    ("export kind 5", module(exports(export("x", 5, 0)))),
    ("invalid: export of unknown function", module(exports(export("f", 0, 0)))),
    ("invalid: duplicate export name", module(section(5, vec([b"\x00\x01"])), exports(export("m", 2, 0), export("m", 2, 0)))),
    ("global mutability 2", module(section(6, vec([bytes([I32, 2]) + i32_const(0)])))),
    ("tag attribute 1", module(types(functype([], [])), section(13, vec([b"\x01\x00"])))),
    # UTF-8
    ("overlong UTF-8 in import module name", module(imports(raw_name(b"\xc0\x80") + name("f") + b"\x03" + bytes([I32, 0])))),
    ("surrogate in export name", module(section(5, vec([b"\x00\x01"])), exports(raw_name(b"\xed\xa0\x80") + b"\x02\x00"))),
    ("lone continuation byte in custom name", module(section(0, raw_name(b"\x80") + b"x"))),
    ("truncated UTF-8 in import field name", module(imports(name("m") + raw_name(b"\xe2\x98") + b"\x03" + bytes([I32, 0])))),
    # Functions and code
    ("function without code section", module(types(functype([], [])), funcs(0))),
    ("code without function section", module(types(functype([], [])), code(body(END)))),
    ("function and code counts differ", module(types(functype([], [])), funcs(0, 0), code(body(END)))),
    ("data before missing code", module(types(functype([], [])), funcs(0), section(11, vec([])))),
    ("too many locals", module(types(functype([], [])), funcs(0), code(body(END, [(2**32 - 1, I32), (1, I64)])))),
    ("body without end", module(types(functype([], [])), funcs(0), code(body(b"\x01")))),
    ("empty body", module(types(functype([], [])), funcs(0), code(b"\x00"))),
    ("body size overruns section", module(types(functype([], [])), funcs(0), section(10, b"\x01\x09\x00\x0b"))),
    ("bad local type", module(types(functype([], [])), funcs(0), code(body(END, [(1, 0x40)])))),
    ("function of unknown type", module(types(functype([], [])), funcs(1), code(body(END)))),
    # Constant expressions and segments
    ("global init without end", module(section(6, vec([bytes([I32, 0]) + b"\x41\x00"])))),
    ("invalid: nop in constant expression", module(section(6, vec([bytes([I32, 0]) + b"\x01" + i32_const(0)])))),
    ("elem segment flags 8", module(section(9, vec([b"\x08"])))),
    ("elem kind 1", module(types(functype([], [])), funcs(0), section(4, vec([bytes([FUNCREF]) + b"\x00\x01"])), section(9, vec([b"\x01\x01" + vec([u32(0)])])), code(body(END)))),
    ("data segment flags 3", module(section(5, vec([b"\x00\x01"])), section(11, vec([b"\x03"])))),
    ("data segment longer than section", module(section(5, vec([b"\x00\x01"])), section(11, b"\x01\x01\x05ab"))),
    ("data count differs from data section", module(section(5, vec([b"\x00\x01"])), section(12, u32(2)), section(11, vec([b"\x01\x00"])))),
    ("data count without data section", module(section(12, u32(1)))),
    ("invalid: start of unknown function", module(section(8, u32(0)))),
]  # fmt: skip

# Well-formed but invalid: only the engine's validator notices, so the decoder must accept these.
INVALID_ONLY_FOR_ENGINE: list[tuple[str, bytes]] = [
    ("i32.add on an empty stack", module(types(functype([], [])), funcs(0), code(body(b"\x6a" + END)))),
    ("wrong result type", module(types(functype([], [I32])), funcs(0), code(body(b"\x42\x00" + END)))),
    ("local.get out of range", module(types(functype([], [])), funcs(0), code(body(b"\x20\x05\x1a" + END)))),
    ("br depth out of range", module(types(functype([], [])), funcs(0), code(body(b"\x0c\x03" + END)))),
    ("illegal opcode in body", module(types(functype([], [])), funcs(0), code(body(b"\xff" + END)))),
    ("global init of the wrong type", module(section(6, vec([bytes([I32, 0]) + b"\x42\x00" + END])))),
    ("memory minimum above maximum", module(section(5, vec([b"\x01\x02\x01"])))),
    ("shared memory without maximum", module(section(5, vec([b"\x02\x01"])))),
    ("memory.size without memory", module(types(functype([], [I32])), funcs(0), code(body(b"\x3f\x00" + END)))),
]  # fmt: skip
