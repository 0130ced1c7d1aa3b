"""asyncwasm's own decoder for the WebAssembly binary format: pure Python, no engine.

Why we decode modules ourselves:

- ``Module.exports``/``Module.imports`` need full types, identical on both engines, and
  ``Module.custom_sections`` needs every section of a name (wasmer keeps only the last one).
- Types that would abort wasmtime (``exnref``, GC references, typed function references) must be
  seen and refused *before* the engine looks at them, so they are decoded and named here too,
  spelled as the text format does (``"anyref"``, ``"(ref null 3)"``, ``"(ref func)"``...).
- Streaming compilation must fail at the first provably bad byte, so the decoder is incremental:
  :class:`StreamingDecoder` keeps its parse state between chunks and never re-reads more than the
  unfinished item it stopped in. :func:`decode_module` is the same decoder fed one chunk.

The decoder checks that a module is *well-formed* (the binary format), plus a few cheap validity
rules it needs anyway (type and export indices, export name uniqueness, function/code counts). It
does not validate instructions inside function bodies: the engine does that. It must never refuse
a module the engines accept (wasmtime with GC, exceptions, memory64, threads, tail calls...); it may
accept some invalid ones.

Every malformed input raises :class:`~asyncwasm._exceptions.CompileError` with ``offset`` set and a
message that starts like the core spec's ``assert_malformed`` texts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, TypeAlias

from ._exceptions import CompileError
from ._types import (
    ExternKind,
    ExternType,
    FuncType,
    GlobalType,
    Limits,
    MemoryType,
    TableType,
    TagType,
    ValType,
)

__all__ = [
    "ArrayType",
    "ContType",
    "CustomSection",
    "DefinedType",
    "ExportInfo",
    "FieldType",
    "ImportInfo",
    "ModuleInfo",
    "StreamingDecoder",
    "StructType",
    "decode_module",
]

MAGIC: Final = b"\0asm"
VERSION: Final = b"\x01\x00\x00\x00"
HEADER_SIZE: Final = 8
MAX_U32: Final = 2**32 - 1

# Section ids.
CUSTOM, TYPE, IMPORT, FUNCTION, TABLE, MEMORY, GLOBAL, EXPORT = 0, 1, 2, 3, 4, 5, 6, 7
START, ELEMENT, CODE, DATA, DATACOUNT, TAG = 8, 9, 10, 11, 12, 13

SECTION_NAMES: Final = (
    "custom", "type", "import", "function", "table", "memory", "global", "export",
    "start", "element", "code", "data", "datacount", "tag",
)  # fmt: skip

# Non-custom sections must come in this order (tag sits between memory and global), each once.
_RANK: Final = {
    TYPE: 1, IMPORT: 2, FUNCTION: 3, TABLE: 4, MEMORY: 5, TAG: 6, GLOBAL: 7, EXPORT: 8,
    START: 9, ELEMENT: 10, DATACOUNT: 11, CODE: 12, DATA: 13,
}  # fmt: skip

_KINDS: Final[tuple[ExternKind, ...]] = ("function", "table", "memory", "global", "tag")

# Value type bytes.
_NUMERIC: Final = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
_ABSTRACT_HEAP: Final = {
    0x70: "func", 0x6F: "extern", 0x6E: "any", 0x6D: "eq", 0x6C: "i31", 0x6B: "struct",
    0x6A: "array", 0x69: "exn", 0x68: "cont", 0x71: "none", 0x72: "noextern", 0x73: "nofunc",
    0x74: "noexn", 0x75: "nocont",
}  # fmt: skip
# (ref null <abstract>) is the same type as its shorthand, so it gets the shorthand's name;
# funcref is "anyfunc" as in the JS API.
_NULLABLE_NAME: Final = {
    "func": "anyfunc", "extern": "externref", "any": "anyref", "eq": "eqref", "i31": "i31ref",
    "struct": "structref", "array": "arrayref", "exn": "exnref", "cont": "contref",
    "none": "nullref", "noextern": "nullexternref", "nofunc": "nullfuncref",
    "noexn": "nullexnref", "nocont": "nullcontref",
}  # fmt: skip
_REF_NULL, _REF = 0x63, 0x64
_PACKED: Final = {0x78: "i8", 0x77: "i16"}

# The JS API's implementation limits (JS API spec, "Limits"; WPT limits.any.js). Each is
# checked where its count is read, so a module declaring ten million functions fails at that
# count instead of after decoding them. The limit on memories (1) is left to the engine:
# wasmtime implements multi-memory (Wasm 3.0), which the core spec suite exercises.
MAX_MODULE_SIZE: Final = 1 << 30
MAX_TYPES: Final = 1_000_000  # also bounds recursion groups and the types in one group
MAX_FUNCTIONS: Final = 1_000_000
MAX_IMPORTS: Final = 1_000_000
MAX_EXPORTS: Final = 1_000_000
MAX_GLOBALS: Final = 1_000_000
MAX_TAGS: Final = 1_000_000
MAX_DATA_SEGMENTS: Final = 100_000
MAX_TABLES: Final = 100_000  # imported and defined
MAX_ELEMENT_SEGMENTS: Final = 10_000_000
MAX_TABLE_INIT_ENTRIES: Final = 10_000_000  # elements of one element segment
MAX_FUNCTION_SIZE: Final = 7_654_321  # a function body, its locals declarations included
MAX_FUNCTION_LOCALS: Final = 50_000  # parameters included
MAX_PARAMS: Final = 1_000
MAX_RESULTS: Final = 1_000
MAX_STRUCT_FIELDS: Final = 10_000

# Beyond any real offset: the "end" of a read that no section bounds (section headers).
_UNBOUNDED: Final = 1 << 62
# Items shorter than this are re-parsed on every chunk (exact first-bad-byte detection); longer
# unfinished items wait until their received part doubles, which keeps the total work O(n).
_EAGER_RETRY_BYTES: Final = 64


# --- Result types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldType:
    """A struct field or array element (GC proposal); ``storage`` is a value type, "i8" or "i16"."""

    storage: str
    mutable: bool


@dataclass(frozen=True, slots=True)
class StructType:
    """A GC struct type: kept only so that type indices stay right."""

    fields: tuple[FieldType, ...]


@dataclass(frozen=True, slots=True)
class ArrayType:
    """A GC array type: kept only so that type indices stay right."""

    element: FieldType


@dataclass(frozen=True, slots=True)
class ContType:
    """A continuation type (stack switching proposal): kept only so that type indices stay right."""

    func_type_index: int


DefinedType: TypeAlias = FuncType | StructType | ArrayType | ContType


@dataclass(frozen=True, slots=True)
class ImportInfo:
    module: str
    name: str
    kind: ExternKind
    type: ExternType


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """An export; ``type`` is that of the exported entity, whether imported or defined."""

    name: str
    kind: ExternKind
    index: int
    type: ExternType


@dataclass(frozen=True, slots=True)
class CustomSection:
    """A custom section; ``offset`` is where its payload (``data``, after the name) starts."""

    name: str
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """What asyncwasm needs to know about a module, in module order.

    Index spaces (``func_types``, ``tables``, ``memories``, ``globals``, ``tags``) list imports
    first, then definitions, as the spec numbers them.
    """

    types: tuple[DefinedType, ...]
    imports: tuple[ImportInfo, ...]
    exports: tuple[ExportInfo, ...]
    custom_sections: tuple[CustomSection, ...]
    func_types: tuple[FuncType, ...]
    func_type_indices: tuple[int, ...]
    tables: tuple[TableType, ...]
    memories: tuple[MemoryType, ...]
    globals: tuple[GlobalType, ...]
    tags: tuple[TagType, ...]
    start: int | None
    code_section_offset: int | None
    """Offset of the code section's id byte, or ``None`` without a code section."""
    size: int
    """Length of the module in bytes."""

    def custom_section_data(self, name: str) -> list[bytes]:
        """The payloads of every custom section called ``name``, in module order."""
        return [s.data for s in self.custom_sections if s.name == name]


# --- Byte reading ------------------------------------------------------------------------------


def _error(message: str, offset: int) -> CompileError:
    return CompileError(f"{message} (at byte offset {offset})", offset=offset)


def _limit_error(what: str, count: int, limit: int, offset: int) -> CompileError:
    return _error(f"too many {what}: {count}, over the JS API's limit of {limit}", offset)


class _NeedMore(Exception):
    """Internal: the bytes received so far stop inside what is being read."""


class _Reader:
    """Reads from the shared buffer at absolute offsets, bounded by ``end`` (the declared end of
    the enclosing section or body). Going past ``end`` is malformed; going past the bytes
    received so far (but not past ``end``) raises ``_NeedMore`` so the caller can wait."""

    __slots__ = ("buf", "end", "limit", "pos", "received")

    def __init__(
        self, buf: bytearray | bytes | memoryview, pos: int, end: int, received: int | None = None
    ) -> None:
        self.buf = buf
        self.pos = pos
        # The bytes of ``buf`` that hold the module (the rest, if any: room not yet written).
        self.received = len(buf) if received is None else received
        self.set_end(end)

    def set_end(self, end: int) -> None:
        self.end = end
        self.limit = min(end, self.received)

    def _short(self, pos: int) -> NoReturn:
        if pos >= self.end:
            raise _error("unexpected end of section or function", pos)
        raise _NeedMore

    def byte(self) -> int:
        p = self.pos
        if p >= self.limit:
            self._short(p)
        self.pos = p + 1
        return self.buf[p]

    def peek(self) -> int:
        p = self.pos
        if p >= self.limit:
            self._short(p)
        return self.buf[p]

    def skip(self, n: int, *, declared: bool = False) -> None:
        """Step over ``n`` bytes without needing them received yet."""
        if self.pos + n > self.end:
            if declared:
                raise _error(f"length out of bounds: {n} bytes", self.pos)
            self._short(self.end)
        self.pos += n

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes (a declared length)."""
        p = self.pos
        if p + n > self.end:
            raise _error(f"length out of bounds: {n} bytes", p)
        if p + n > self.limit:
            raise _NeedMore
        self.pos = p + n
        return bytes(self.buf[p : p + n])

    def u32(self) -> int:
        p = self.pos
        if p < self.limit:
            b = self.buf[p]
            if b < 0x80:  # the common one-byte case, without the general loop
                self.pos = p + 1
                return b
        return self.leb(32, signed=False)

    def count(self, limit: int, what: str) -> int:
        """A vector's length (u32), refused with ``CompileError`` past ``limit``."""
        start = self.pos
        n = self.u32()
        if n > limit:
            raise _limit_error(what, n, limit, start)
        return n

    def s32(self) -> int:
        return self.leb(32, signed=True)

    def s33(self) -> int:
        return self.leb(33, signed=True)

    def s64(self) -> int:
        return self.leb(64, signed=True)

    def u64(self) -> int:
        return self.leb(64, signed=False)

    def leb(self, bits: int, *, signed: bool) -> int:
        """LEB128 of at most ``bits`` bits, with the spec's rules for the last byte: no
        continuation bit, and its unused bits zero (unsigned) or copies of the sign bit."""
        max_bytes = (bits + 6) // 7
        result = shift = 0
        for i in range(max_bytes):
            b = self.byte()
            if i == max_bytes - 1:
                if b & 0x80:
                    raise _error("integer representation too long", self.pos - 1)
                used = bits - 7 * i  # value bits held by this last byte
                if signed:
                    extra = (0x7F << (used - 1)) & 0x7F  # the sign bit and everything above
                    if b & extra not in (0, extra):
                        raise _error("integer too large", self.pos - 1)
                elif b >> used:
                    raise _error("integer too large", self.pos - 1)
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if signed and b & 0x40:
                    result -= 1 << shift
                return result
        raise AssertionError("unreachable: the last byte returns or raises")

    def name(self) -> str:
        n = self.u32()
        start = self.pos
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error("malformed UTF-8 encoding", start + exc.start) from None


# --- Types -------------------------------------------------------------------------------------


def _heap_type(r: _Reader) -> str | int:
    """An abstract heap type's name, or a type index."""
    b = r.peek()
    abstract = _ABSTRACT_HEAP.get(b)
    if abstract is not None:
        r.pos += 1
        return abstract
    start = r.pos
    index = r.s33()
    if index < 0:
        raise _error(f"malformed heap type 0x{b:02x}", start)
    return index


def _ref_after_prefix(r: _Reader, prefix: int) -> ValType:
    ht = _heap_type(r)
    if prefix == _REF_NULL:
        return f"(ref null {ht})" if isinstance(ht, int) else _NULLABLE_NAME[ht]
    return f"(ref {ht})"


def _value_type(r: _Reader) -> ValType:
    start = r.pos
    b = r.byte()
    name = _NUMERIC.get(b)
    if name is not None:
        return name
    abstract = _ABSTRACT_HEAP.get(b)
    if abstract is not None:
        return _NULLABLE_NAME[abstract]
    if b in (_REF_NULL, _REF):
        return _ref_after_prefix(r, b)
    raise _error(f"malformed value type 0x{b:02x}", start)


def _ref_type(r: _Reader) -> ValType:
    start = r.pos
    b = r.byte()
    abstract = _ABSTRACT_HEAP.get(b)
    if abstract is not None:
        return _NULLABLE_NAME[abstract]
    if b in (_REF_NULL, _REF):
        return _ref_after_prefix(r, b)
    raise _error(f"malformed reference type 0x{b:02x}", start)


def _mutability(r: _Reader) -> bool:
    start = r.pos
    b = r.byte()
    if b > 1:
        raise _error(f"malformed mutability 0x{b:02x}", start)
    return b == 1


def _field_type(r: _Reader) -> FieldType:
    packed = _PACKED.get(r.peek())
    if packed is not None:
        r.pos += 1
        storage = packed
    else:
        storage = _value_type(r)
    return FieldType(storage, _mutability(r))


def _result_types(r: _Reader, limit: int, what: str) -> tuple[ValType, ...]:
    return tuple(_value_type(r) for _ in range(r.count(limit, what)))


def _composite_type(r: _Reader) -> DefinedType:
    start = r.pos
    form = r.byte()
    if form == 0x60:
        params = _result_types(r, MAX_PARAMS, "function parameters")
        return FuncType(params, _result_types(r, MAX_RESULTS, "function results"))
    if form == 0x5F:
        fields = r.count(MAX_STRUCT_FIELDS, "struct fields")
        return StructType(tuple(_field_type(r) for _ in range(fields)))
    if form == 0x5E:
        return ArrayType(_field_type(r))
    if form == 0x5D:
        return ContType(r.u32())
    raise _error(f"malformed type form 0x{form:02x}", start)


def _sub_type(r: _Reader) -> DefinedType:
    if r.peek() in (0x50, 0x4F):  # sub / sub final: supertypes are the engine's business
        r.pos += 1
        for _ in range(r.u32()):
            r.u32()
    return _composite_type(r)


def _rec_group(r: _Reader) -> list[DefinedType]:
    if r.peek() == 0x4E:
        r.pos += 1
        return [_sub_type(r) for _ in range(r.count(MAX_TYPES, "types in a recursion group"))]
    return [_sub_type(r)]


def _limits(r: _Reader, flags: int, is64: bool) -> Limits:
    read = r.u64 if is64 else r.u32
    minimum = read()
    return Limits(minimum, read() if flags & 1 else None)


def _table_type(r: _Reader) -> TableType:
    element = _ref_type(r)
    start = r.pos
    flags = r.byte()
    if flags not in (0x00, 0x01, 0x04, 0x05):
        raise _error(f"malformed limits flags 0x{flags:02x}", start)
    is64 = bool(flags & 4)
    return TableType(element, _limits(r, flags, is64), table64=is64)


def _memory_type(r: _Reader) -> MemoryType:
    start = r.pos
    flags = r.byte()
    if flags > 0x0F:  # bits: maximum, shared, memory64, custom page size
        raise _error(f"malformed limits flags 0x{flags:02x}", start)
    is64 = bool(flags & 4)
    limits = _limits(r, flags, is64)
    page_size_log2 = r.u32() if flags & 8 else 16
    return MemoryType(limits, shared=bool(flags & 2), memory64=is64, page_size_log2=page_size_log2)


def _global_type(r: _Reader) -> GlobalType:
    value = _value_type(r)
    return GlobalType(value, _mutability(r))


# Extended-const and GC instructions allowed in constant expressions (0xFB prefix).
_GC_CONST_ONE_INDEX: Final = frozenset({0, 1, 6, 7})  # struct.new(_default), array.new(_default)
_GC_CONST_NO_IMMEDIATE: Final = frozenset({0x1A, 0x1B, 0x1C})  # any/extern.convert, ref.i31
_ARITH_CONST: Final = frozenset({0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E})  # i32/i64 add, sub, mul


def _const_expr(r: _Reader) -> None:
    """Step over a constant expression up to its ``end``, reading immediates properly (they may
    contain 0x0B bytes). There are no blocks in constant expressions, so this never nests."""
    while True:
        start = r.pos
        op = r.byte()
        if op == 0x0B:
            return
        if op == 0x41:
            r.s32()
        elif op == 0x42:
            r.s64()
        elif op == 0x43:
            r.skip(4)
        elif op == 0x44:
            r.skip(8)
        elif op in (0x23, 0xD2):  # global.get, ref.func
            r.u32()
        elif op == 0xD0:  # ref.null
            _heap_type(r)
        elif op in _ARITH_CONST:
            pass
        elif op == 0xFD and r.u32() == 12:  # v128.const
            r.skip(16)
        elif op == 0xFB:
            sub = r.u32()
            if sub in _GC_CONST_ONE_INDEX:
                r.u32()
            elif sub == 8:  # array.new_fixed
                r.u32()
                r.u32()
            elif sub not in _GC_CONST_NO_IMMEDIATE:
                raise _error(f"constant expression required: opcode 0xfb {sub}", start)
        else:
            # Either an illegal opcode or one that is not constant: both engines refuse it, and
            # without its immediates' layout we could not step over it anyway.
            raise _error(f"constant expression required: opcode 0x{op:02x}", start)


# --- The decoder -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Section:
    """Parse state of the section being received: resumable at item boundaries."""

    id: int
    start: int  # offset of the id byte
    body: int  # offset of the first content byte
    end: int  # declared end of the contents
    pos: int  # where parsing resumes: just after the last complete item
    count: int | None = None  # number of items; None until the section's head is parsed
    items: list[Any] = field(default_factory=list)
    head: Any = None  # what the head parsed (custom section name, start function, ...)
    retry_at: int = 0  # don't re-parse an unfinished item before this many bytes are received
    units: int = 0  # entities its complete items declare (types of rec groups, grouped imports)


class StreamingDecoder:
    """Decode a module from chunks as they arrive.

    ``feed`` raises ``CompileError`` as soon as the bytes received so far are provably malformed:
    a bad header as its bytes arrive, a bad section id or order as soon as its id byte arrives, a
    bad byte inside a section as soon as the item holding it is received (for items under 64
    bytes; larger unfinished items are re-tried whenever their received part has doubled, and at
    the latest when their section is complete). ``finish`` reports truncation and returns the
    :class:`ModuleInfo`. Any split into chunks gives exactly the result and error of
    :func:`decode_module`. After an error, every later call raises the same error.
    """

    def __init__(self, buffer: bytearray | bytes | memoryview | None = None) -> None:
        # Shared mode (``buffer`` given): the module's bytes are written into ``buffer`` by its
        # owner, which calls ``advance`` for each piece; the decoder keeps no copy of its own.
        # ``buffer`` may be longer than what was received (preallocated room).
        self._shared = buffer is not None
        self._buf: bytearray | bytes | memoryview = bytearray() if buffer is None else buffer
        self._received = 0
        self._pos = 0  # start of the next section header once the header is checked
        self._section: _Section | None = None
        self._error: CompileError | None = None
        self._info: ModuleInfo | None = None
        self._last_rank = 0
        self._last_id: int | None = None
        # What is known so far, in index-space order (imports first).
        self._types: list[DefinedType] = []
        self._imports: list[ImportInfo] = []
        self._exports: list[ExportInfo] = []
        self._export_names: set[str] = set()
        self._customs: list[CustomSection] = []
        self._func_types: list[FuncType] = []
        self._func_type_indices: list[int] = []
        self._tables: list[TableType] = []
        self._memories: list[MemoryType] = []
        self._globals: list[GlobalType] = []
        self._tags: list[TagType] = []
        self._defined_funcs: int | None = None  # function section's count
        self._code_count: int | None = None
        self._data_count: int | None = None
        self._data_seen = False
        self._start: int | None = None
        self._code_offset: int | None = None
        self._item_index = 0  # index in its section of the item being parsed

    # Public interface

    @property
    def bytes_received(self) -> int:
        return self._received

    @property
    def size_hint(self) -> int:
        """The least size the module can have, from what was decoded so far: the end of the
        section being received (if the bytes are well-formed), else the bytes received."""
        section = self._section
        return self._received if section is None else max(self._received, section.end)

    def rebind(self, buffer: bytearray | bytes | memoryview) -> None:
        """Shared mode: the owner moved the module's bytes to ``buffer`` (the same bytes
        received so far, maybe more room after them). Only between calls."""
        if not self._shared:
            raise ValueError("rebind() is for a StreamingDecoder made with a buffer")
        if len(buffer) < self._received:
            raise ValueError("rebind() to a buffer shorter than the bytes received")
        self._buf = buffer

    @property
    def data(self) -> bytes:
        """Every byte fed so far, as one ``bytes`` (copied once per call)."""
        return bytes(self._buf[: self._received])

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk and parse as far as it allows."""
        if self._shared:
            raise ValueError("this StreamingDecoder reads a shared buffer: call advance()")
        self._check_more(len(chunk))
        if not chunk:
            return
        assert isinstance(self._buf, bytearray)
        self._buf += chunk
        self._received += len(chunk)
        self._guarded(final=False)

    def advance(self, size: int) -> None:
        """Shared mode: ``size`` more bytes were written into the buffer, right after those
        received before; parse as far as they allow."""
        if not self._shared:
            raise ValueError("advance() is for a StreamingDecoder made with a buffer")
        self._check_more(size)
        if not size:
            return
        if self._received + size > len(self._buf):
            raise ValueError("advance() past the end of the shared buffer")
        self._received += size
        self._guarded(final=False)

    def _check_more(self, size: int) -> None:
        if self._error is not None:
            raise self._error
        if self._info is not None:
            raise ValueError("StreamingDecoder.feed() called after finish()")
        if self._received + size > MAX_MODULE_SIZE:
            raise self._fail(
                _limit_error("bytes", self._received + size, MAX_MODULE_SIZE, MAX_MODULE_SIZE)
            )

    def finish(self) -> ModuleInfo:
        """Declare the input complete; return the module's description."""
        if self._error is not None:
            raise self._error
        if self._info is None:
            self._guarded(final=True)
            self._info = self._result()
        return self._info

    # Driving

    def _fail(self, error: CompileError) -> CompileError:
        self._error = error
        return error

    def _guarded(self, *, final: bool) -> None:
        try:
            self._advance(final=final)
            if final:
                self._check_complete()
        except CompileError as exc:
            self._error = exc
            raise

    def _advance(self, *, final: bool) -> None:
        if self._pos < HEADER_SIZE and not self._check_header():
            return
        while True:
            section = self._section
            if section is None:
                if self._pos == self._received:
                    return
                section = self._section_header()
                if section is None:
                    return
                self._section = section
            if not self._parse_section(section, final=final):
                return
            self._commit(section)
            self._section = None
            self._pos = section.end

    def _check_header(self) -> bool:
        """Check as much of the 8-byte header as has arrived; True once it is all there."""
        head = bytes(self._buf[: min(HEADER_SIZE, self._received)])
        if not MAGIC.startswith(head[:4]):
            raise _error("magic header not detected", 0)
        for i, b in enumerate(head[4:]):
            if b != VERSION[i]:
                # Name only the first wrong byte, so the message does not depend on chunking.
                raise _error(f"unknown binary version: byte {i} is 0x{b:02x}", 4)
        if len(head) < HEADER_SIZE:
            return False
        self._pos = HEADER_SIZE
        return True

    def _section_header(self) -> _Section | None:
        """Read the id and size of the next section, or None if they have not all arrived."""
        start = self._pos
        sid = self._buf[start]
        if sid > TAG:
            raise _error(f"malformed section id {sid}", start)
        if sid != CUSTOM:
            rank = _RANK[sid]
            if rank <= self._last_rank:
                after = SECTION_NAMES[self._last_id] if self._last_id is not None else "?"
                raise _error(
                    f"unexpected content after last section: {SECTION_NAMES[sid]} section "
                    f"after {after} section",
                    start,
                )
            if sid == DATA and self._code_offset is None and self._defined_funcs:
                raise _error("function and code section have inconsistent lengths", start)
        r = _Reader(self._buf, start + 1, _UNBOUNDED, self._received)
        try:
            size = r.u32()
        except _NeedMore:
            return None
        if r.pos + size > MAX_MODULE_SIZE:
            # Refused at its header: never buffer what can never fit (streaming reads no more).
            raise _error(
                f"{SECTION_NAMES[sid]} section of {size} bytes would end at byte {r.pos + size}, "
                f"past the JS API's module size limit of {MAX_MODULE_SIZE}",
                start,
            )
        if sid != CUSTOM:
            self._last_rank = _RANK[sid]
            self._last_id = sid
        return _Section(sid, start, r.pos, r.pos + size, r.pos)

    def _parse_section(self, s: _Section, *, final: bool) -> bool:
        """Parse the section's items from where it stopped; True once it is complete."""
        received = self._received
        if received < s.end and received < s.retry_at and not final:
            return False
        r = _Reader(self._buf, s.pos, s.end, self._received)
        try:
            if s.count is None:
                s.count = self._HEADS[s.id](self, r, s)
                s.pos = r.pos
            parse_item = self._ITEMS.get(s.id)
            items = s.items
            unit_limit = _UNIT_LIMITS.get(s.id)
            while len(items) < s.count:
                assert parse_item is not None
                self._item_index = len(items)
                item = parse_item(self, r)
                if unit_limit is not None:
                    s.units += len(item)
                    if s.units > unit_limit[0]:
                        raise _limit_error(unit_limit[1], s.units, unit_limit[0], s.pos)
                items.append(item)
                s.pos = r.pos
        except _NeedMore:
            unfinished = received - s.pos
            s.retry_at = received + (1 if unfinished < _EAGER_RETRY_BYTES else unfinished)
            return False
        if r.pos != s.end:
            raise _error(
                f"section size mismatch: {SECTION_NAMES[s.id]} section declares "
                f"{s.end - s.body} bytes, its contents end after {r.pos - s.body}",
                r.pos,
            )
        return received >= s.end  # skipped payloads (custom data, code bodies) must be here too

    def _check_complete(self) -> None:
        received = self._received
        if received < HEADER_SIZE:
            raise _error(f"unexpected end: {received} bytes, no complete header", received)
        s = self._section
        if s is not None:
            raise _error(
                f"unexpected end: {SECTION_NAMES[s.id]} section at offset {s.start} declares "
                f"{s.end - s.body} bytes, the module ends after {received - s.body}",
                received,
            )
        if self._pos != received:
            raise _error("unexpected end: incomplete section header", received)
        if self._defined_funcs and self._code_count is None:
            raise _error("function and code section have inconsistent lengths", received)
        if self._data_count and not self._data_seen:
            raise _error("data count and data section have inconsistent lengths", received)

    def _result(self) -> ModuleInfo:
        return ModuleInfo(
            types=tuple(self._types),
            imports=tuple(self._imports),
            exports=tuple(self._exports),
            custom_sections=tuple(self._customs),
            func_types=tuple(self._func_types),
            func_type_indices=tuple(self._func_type_indices),
            tables=tuple(self._tables),
            memories=tuple(self._memories),
            globals=tuple(self._globals),
            tags=tuple(self._tags),
            start=self._start,
            code_section_offset=self._code_offset,
            size=self._received,
        )

    # Helpers for the section parsers

    def _func_type(self, index: int, offset: int) -> FuncType:
        if index >= len(self._types):
            raise _error(f"unknown type {index}", offset)
        t = self._types[index]
        if not isinstance(t, FuncType):
            raise _error(f"type {index} is not a function type", offset)
        return t

    def _type_index(self, r: _Reader) -> tuple[int, FuncType]:
        start = r.pos
        index = r.u32()
        return index, self._func_type(index, start)

    def _tag_type(self, r: _Reader) -> TagType:
        start = r.pos
        attribute = r.byte()
        if attribute != 0:
            raise _error(f"malformed tag attribute 0x{attribute:02x}", start)
        return TagType(self._type_index(r)[1].params)

    def _index_spaces(self) -> tuple[list[FuncType], list[TableType], list[MemoryType],
                                     list[GlobalType], list[TagType]]:  # fmt: skip
        return self._func_types, self._tables, self._memories, self._globals, self._tags

    # Section heads: parse what precedes the items and return the number of items.

    def _head_vec(self, r: _Reader, s: _Section) -> int:
        limit, what = _COUNT_LIMITS[s.id]
        if s.id == TABLE:  # imported tables count too
            limit -= len(self._tables)
        return r.count(limit, what)

    def _head_custom(self, r: _Reader, s: _Section) -> int:
        name = r.name()
        s.head = (name, r.pos)
        r.skip(s.end - r.pos)
        return 0

    def _head_start(self, r: _Reader, s: _Section) -> int:
        start = r.pos
        index = r.u32()
        if index >= len(self._func_types):
            raise _error(f"unknown function {index}", start)
        s.head = index
        return 0

    def _head_datacount(self, r: _Reader, s: _Section) -> int:
        s.head = r.count(MAX_DATA_SEGMENTS, "data segments")
        return 0

    def _head_code(self, r: _Reader, s: _Section) -> int:
        start = r.pos
        count = r.count(MAX_FUNCTIONS, "function bodies")
        if count != (self._defined_funcs or 0):
            raise _error("function and code section have inconsistent lengths", start)
        return count

    def _head_data(self, r: _Reader, s: _Section) -> int:
        start = r.pos
        count = r.count(MAX_DATA_SEGMENTS, "data segments")
        if self._data_count is not None and count != self._data_count:
            raise _error("data count and data section have inconsistent lengths", start)
        return count

    # Section items: one entry each; must not change the decoder's state (they may be re-run).

    def _item_type(self, r: _Reader) -> list[DefinedType]:
        return _rec_group(r)

    def _extern_type(self, r: _Reader) -> tuple[ExternKind, ExternType, int]:
        """An import's kind, type and, for a function, its type index (else -1)."""
        start = r.pos
        kind = r.byte()
        t: ExternType
        type_index = -1
        if kind == 0:
            type_index, t = self._type_index(r)
        elif kind == 1:
            t = _table_type(r)
        elif kind == 2:
            t = _memory_type(r)
        elif kind == 3:
            t = _global_type(r)
        elif kind == 4:
            t = self._tag_type(r)
        else:
            raise _error(f"malformed import kind 0x{kind:02x}", start)
        return _KINDS[kind], t, type_index

    def _item_import(self, r: _Reader) -> list[tuple[ImportInfo, int]]:
        """One entry of the import section: an import, or a group of them sharing a module
        name (compact import encoding, on by default in wasmtime): ``"" 0x7F vec(name type)``
        or ``"" 0x7E type vec(name)``. Each import comes with its function type index or -1."""
        module = r.name()
        name = r.name()
        if name == "":
            form = r.peek()
            if form == 0x7F:
                r.pos += 1
                group = []
                for _ in range(r.u32()):
                    item = r.name()
                    kind, t, type_index = self._extern_type(r)
                    group.append((ImportInfo(module, item, kind, t), type_index))
                return group
            if form == 0x7E:
                r.pos += 1
                kind, t, type_index = self._extern_type(r)
                count = r.count(MAX_IMPORTS, "imports")
                return [(ImportInfo(module, r.name(), kind, t), type_index) for _ in range(count)]
        kind, t, type_index = self._extern_type(r)
        return [(ImportInfo(module, name, kind, t), type_index)]

    def _item_function(self, r: _Reader) -> tuple[int, FuncType]:
        return self._type_index(r)

    def _item_table(self, r: _Reader) -> TableType:
        if r.peek() != 0x40:
            return _table_type(r)
        r.pos += 1
        start = r.pos
        if r.byte() != 0x00:
            raise _error("malformed table type", start)
        t = _table_type(r)
        _const_expr(r)
        return t

    def _item_memory(self, r: _Reader) -> MemoryType:
        return _memory_type(r)

    def _item_global(self, r: _Reader) -> GlobalType:
        t = _global_type(r)
        _const_expr(r)
        return t

    def _item_tag(self, r: _Reader) -> TagType:
        return self._tag_type(r)

    def _item_export(self, r: _Reader) -> ExportInfo:
        name_offset = r.pos
        name = r.name()
        kind_offset = r.pos
        kind = r.byte()
        if kind > 4:
            raise _error(f"malformed export kind 0x{kind:02x}", kind_offset)
        index_offset = r.pos
        index = r.u32()
        space = self._index_spaces()[kind]
        if index >= len(space):
            raise _error(f"unknown {_KINDS[kind]} {index}", index_offset)
        if name in self._export_names:
            raise _error(f"duplicate export name {name!r}", name_offset)
        # Nothing after this can raise _NeedMore, so recording the name is safe.
        self._export_names.add(name)
        return ExportInfo(name, _KINDS[kind], index, space[index])

    def _item_element(self, r: _Reader) -> None:
        start = r.pos
        flags = r.u32()
        if flags > 7:
            raise _error(f"malformed elements segment kind {flags}", start)
        if not flags & 1:  # active
            if flags & 2:
                r.u32()  # table index
            _const_expr(r)
        if flags & 4:  # items are expressions
            if flags & 3:
                _ref_type(r)
            for _ in range(r.count(MAX_TABLE_INIT_ENTRIES, "elements in a segment")):
                _const_expr(r)
        else:  # items are function indices
            if flags & 3:
                kind_offset = r.pos
                if r.byte() != 0x00:
                    raise _error("malformed elements segment kind", kind_offset)
            for _ in range(r.count(MAX_TABLE_INIT_ENTRIES, "elements in a segment")):
                r.u32()

    def _item_code(self, r: _Reader) -> None:
        size = r.count(MAX_FUNCTION_SIZE, "bytes in a function body")
        body = r.pos
        body_end = body + size
        if body_end > r.end:
            raise _error(f"length out of bounds: function body of {size} bytes", body)
        section_end = r.end
        r.set_end(body_end)
        total = 0
        func_types = self._func_types
        params = len(
            func_types[len(func_types) - (self._defined_funcs or 0) + self._item_index].params
        )
        for _ in range(r.u32()):
            count_offset = r.pos
            total += r.u32()
            if total > MAX_U32:
                raise _error("too many locals", count_offset)
            if total + params > MAX_FUNCTION_LOCALS:
                raise _limit_error(
                    "locals (parameters included)",
                    total + params,
                    MAX_FUNCTION_LOCALS,
                    count_offset,
                )
            _value_type(r)
        if r.pos >= body_end:
            raise _error("END opcode expected", body_end)
        r.pos = body_end - 1
        if r.byte() != 0x0B:
            raise _error("END opcode expected", body_end - 1)
        r.set_end(section_end)

    def _item_data(self, r: _Reader) -> None:
        start = r.pos
        flags = r.u32()
        if flags > 2:
            raise _error(f"malformed data segment kind {flags}", start)
        if flags == 2:
            r.u32()  # memory index
        if flags != 1:
            _const_expr(r)
        r.skip(r.u32(), declared=True)

    _HEADS: Final[dict[int, Callable[[StreamingDecoder, _Reader, _Section], int]]] = {
        CUSTOM: _head_custom, TYPE: _head_vec, IMPORT: _head_vec, FUNCTION: _head_vec,
        TABLE: _head_vec, MEMORY: _head_vec, GLOBAL: _head_vec, EXPORT: _head_vec,
        START: _head_start, ELEMENT: _head_vec, CODE: _head_code, DATA: _head_data,
        DATACOUNT: _head_datacount, TAG: _head_vec,
    }  # fmt: skip
    _ITEMS: Final[dict[int, Callable[[StreamingDecoder, _Reader], Any]]] = {
        TYPE: _item_type, IMPORT: _item_import, FUNCTION: _item_function, TABLE: _item_table,
        MEMORY: _item_memory, GLOBAL: _item_global, EXPORT: _item_export,
        ELEMENT: _item_element, CODE: _item_code, DATA: _item_data, TAG: _item_tag,
    }  # fmt: skip

    def _commit(self, s: _Section) -> None:
        """Record a complete section's contents."""
        sid, items = s.id, s.items
        if sid == CUSTOM:
            name, payload = s.head
            self._customs.append(CustomSection(name, bytes(self._buf[payload : s.end]), payload))
        elif sid == TYPE:
            for group in items:
                self._types.extend(group)
        elif sid == IMPORT:
            for imp, type_index in (pair for group in items for pair in group):
                self._imports.append(imp)
                space: list[Any] = self._index_spaces()[_KINDS.index(imp.kind)]
                space.append(imp.type)
                if type_index >= 0:
                    self._func_type_indices.append(type_index)
            if len(self._tables) > MAX_TABLES:
                raise _limit_error("tables", len(self._tables), MAX_TABLES, s.start)
        elif sid == FUNCTION:
            self._defined_funcs = len(items)
            for index, t in items:
                self._func_type_indices.append(index)
                self._func_types.append(t)
        elif sid == TABLE:
            self._tables.extend(items)
        elif sid == MEMORY:
            self._memories.extend(items)
        elif sid == GLOBAL:
            self._globals.extend(items)
        elif sid == TAG:
            self._tags.extend(items)
        elif sid == EXPORT:
            self._exports.extend(items)
        elif sid == START:
            self._start = s.head
        elif sid == DATACOUNT:
            self._data_count = s.head
        elif sid == CODE:
            self._code_count = len(items)
            self._code_offset = s.start
        elif sid == DATA:
            self._data_seen = True


# Limits on a section's item count (section heads), and on what its items declare in total.
_COUNT_LIMITS: Final = {
    TYPE: (MAX_TYPES, "types (recursion groups)"), IMPORT: (MAX_IMPORTS, "imports"),
    FUNCTION: (MAX_FUNCTIONS, "functions"), TABLE: (MAX_TABLES, "tables"),
    MEMORY: (MAX_U32, "memories"), GLOBAL: (MAX_GLOBALS, "globals"),
    EXPORT: (MAX_EXPORTS, "exports"), ELEMENT: (MAX_ELEMENT_SEGMENTS, "element segments"),
    TAG: (MAX_TAGS, "tags"),
}  # fmt: skip
_UNIT_LIMITS: Final = {TYPE: (MAX_TYPES, "types"), IMPORT: (MAX_IMPORTS, "imports")}


def check_counts(wasm: bytes) -> None:
    """Refuse at once a module whose section sizes or item counts are past the JS API's limits.

    A walk over the section headers and each vector section's count (microseconds, whatever the
    size): ``compile()`` runs it on the calling thread, so that a count bomb fails before any
    worker thread or process is involved. Anything else malformed is left to the decoder."""
    n = len(wasm)
    pos = HEADER_SIZE
    while pos < n:
        sid = wasm[pos]
        size, body = _peek_u32(wasm, pos + 1)
        if size is None or sid > TAG:
            return
        if body + size > MAX_MODULE_SIZE:
            raise _error(f"{SECTION_NAMES[sid]} section past the JS API's module size limit", pos)
        limit = _COUNT_LIMITS.get(sid) or _HEAD_LIMITS.get(sid)
        if limit is not None and size:
            count, _ = _peek_u32(wasm, body)
            if count is not None and count > limit[0]:
                raise _limit_error(limit[1], count, limit[0], body)
        pos = body + size


def _peek_u32(wasm: bytes, pos: int) -> tuple[int | None, int]:
    """A u32 LEB128 at ``pos`` and the position after it; ``None`` if it is not a valid one."""
    result = shift = 0
    for i in range(5):
        if pos + i >= len(wasm):
            return None, pos
        b = wasm[pos + i]
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result if result <= MAX_U32 else None), pos + i + 1
    return None, pos


_HEAD_LIMITS: Final = {
    CODE: (MAX_FUNCTIONS, "function bodies"),
    DATA: (MAX_DATA_SEGMENTS, "data segments"),
    DATACOUNT: (MAX_DATA_SEGMENTS, "data segments"),
}


def decode_module(wasm: bytes | bytearray | memoryview) -> ModuleInfo:
    """Decode a whole module; raises ``CompileError`` if it is malformed."""
    if isinstance(wasm, (bytes, bytearray)):
        decoder = StreamingDecoder(wasm)  # read in place: no copy of the module
        decoder.advance(len(wasm))
    else:
        decoder = StreamingDecoder()
        decoder.feed(wasm)
    return decoder.finish()
