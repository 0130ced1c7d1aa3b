"""A module's instantiation work moved into an exported function, for wasmer.

Why: wasmer 2.1 frees the instance of a failed instantiation, but what that instantiation had
already done stays done. An active element segment applied before a later segment went out of
bounds, before a data segment did, or before the start function trapped has written the failed
instance's functions into an *imported* table; a start function may have stored its functions in
imported tables or handed them to host code before trapping. Calling such a function later reads
freed memory: measured on the spec suite's ``linking.wast``, usually a bogus signature-mismatch
trap, in about one run in four a segfault.

How: a module that could leave such references behind (it has a start function and imports
something, or an active element segment aimed at an imported table) is compiled with

* every active element and data segment made passive (indices unchanged),
* no start section,
* one more function, exported as :data:`INIT_EXPORT`, doing what instantiation did, in the
  spec's order: ``table.init`` + ``elem.drop`` per active element segment, ``memory.init`` +
  ``data.drop`` per active data segment, then a call of the start function.

The engine's instantiation then only links (a failure there has written nothing anywhere), and
the wasmer engine calls the init function on the new instance. When that traps, the instance
is kept alive for the rest of the process: what it wrote stays valid, and the effects persist as
the spec says they do. Out-of-bounds segments trap before writing anything, like instantiation.

The module's declared imports and exports, as Python sees them, come from the original bytes;
the extra export is hidden by the engine. Anything this rewriter does not understand (typed
references, GC types, 64-bit memories or tables, the export name already taken) leaves the
bytes unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .._caps import uleb128

__all__ = ["INIT_EXPORT", "defer_instantiation"]

INIT_EXPORT: Final = "__asyncwasm_instantiate__"
"""The name under which a rewritten module exports its init function."""

_TYPE, _IMPORT, _FUNCTION, _TABLE, _MEMORY, _GLOBAL, _EXPORT, _START = 1, 2, 3, 4, 5, 6, 7, 8
_ELEM, _CODE, _DATA, _DATACOUNT, _TAG = 9, 10, 11, 12, 13
# The order non-custom sections must appear in.
_RANK: Final = {
    _TYPE: 1,
    _IMPORT: 2,
    _FUNCTION: 3,
    _TABLE: 4,
    _MEMORY: 5,
    _TAG: 6,
    _GLOBAL: 7,
    _EXPORT: 8,
    _START: 9,
    _ELEM: 10,
    _DATACOUNT: 11,
    _CODE: 12,
    _DATA: 13,
}
_PLAIN_REFTYPES: Final = frozenset({0x70, 0x6F})  # funcref, externref
_NUMERIC_TYPES: Final = frozenset({0x7F, 0x7E, 0x7D, 0x7C, 0x7B})  # i32 i64 f32 f64 v128


class _Unsupported(Exception):
    """Something this rewriter does not handle (or malformed bytes: the engine will say)."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Unsupported
        b = self.data[self.pos]
        self.pos += 1
        return b

    def leb(self) -> int:
        """An unsigned or signed LEB128, skipped (its value only when unsigned)."""
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift > 70:
                raise _Unsupported

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _Unsupported
        self.pos += n

    def name(self) -> bytes:
        n = self.leb()
        start = self.pos
        self.skip(n)
        return self.data[start : self.pos]

    def reftype(self) -> None:
        if self.byte() not in _PLAIN_REFTYPES:
            raise _Unsupported

    def limits(self) -> None:
        flags = self.byte()
        if flags & ~0x03:  # 64-bit indices, custom page sizes
            raise _Unsupported
        self.leb()
        if flags & 0x01:
            self.leb()

    def valtype(self) -> None:
        b = self.byte()
        if b not in _NUMERIC_TYPES and b not in _PLAIN_REFTYPES:
            raise _Unsupported

    def const_expr(self) -> bytes:
        """A constant expression's instructions, without its ``end``."""
        start = self.pos
        while True:
            op = self.byte()
            if op == 0x0B:
                return self.data[start : self.pos - 1]
            if op in (0x41, 0x42, 0x23, 0xD2):  # i32/i64.const, global.get, ref.func
                self.leb()
            elif op == 0x43:
                self.skip(4)
            elif op == 0x44:
                self.skip(8)
            elif op == 0xD0:  # ref.null heaptype
                self.reftype()
            elif op not in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended constants
                raise _Unsupported


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if (value == 0 and not b & 0x40) or (value == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


class _Init:
    """One segment's share of the init function: segment index, table or memory index, the
    offset expression's instructions and the segment's length."""

    __slots__ = ("index", "length", "offset", "target")

    def __init__(self, index: int, target: int, offset: bytes, length: int) -> None:
        self.index = index
        self.target = target
        self.offset = offset
        self.length = length


def defer_instantiation(wasm: bytes) -> bytes | None:
    """``wasm`` rewritten as the module docstring says, or ``None`` when it needs no rewriting
    (or can't be rewritten)."""
    try:
        return _rewrite(wasm)
    except (_Unsupported, IndexError):
        return None


def _rewrite(wasm: bytes) -> bytes | None:
    sections: list[tuple[int, bytes]] = []
    pos = 8
    while pos < len(wasm):
        r = _Reader(wasm, pos + 1)
        size = r.leb()
        if r.pos + size > len(wasm):
            raise _Unsupported
        sections.append((wasm[pos], wasm[r.pos : r.pos + size]))
        pos = r.pos + size
    bodies = {sid: body for sid, body in sections if sid != 0}
    if _TAG in bodies:
        return None  # the engine refuses modules with tags anyway

    imported_funcs = imported_tables = 0
    imports = 0
    if _IMPORT in bodies:
        r = _Reader(bodies[_IMPORT])
        imports = r.leb()
        for _ in range(imports):
            r.name()
            r.name()
            kind = r.byte()
            if kind == 0x00:
                r.leb()
                imported_funcs += 1
            elif kind == 0x01:
                r.reftype()
                r.limits()
                imported_tables += 1
            elif kind == 0x02:
                r.limits()
            elif kind == 0x03:
                r.valtype()
                r.byte()
            else:
                raise _Unsupported

    elems, elem_body = _made_passive(bodies.get(_ELEM), _element_segment)
    start = _Reader(bodies[_START]).leb() if _START in bodies else None
    into_imported = any(e.target < imported_tables for e in elems)
    if not into_imported and not (start is not None and imports):
        return None
    datas, data_body = _made_passive(bodies.get(_DATA), _data_segment)

    type_body = bodies.get(_TYPE, b"\x00")
    r = _Reader(type_body)
    type_count = r.leb()
    for _ in range(type_count):  # plain function types only: no recursion groups (GC)
        if r.byte() != 0x60:
            raise _Unsupported
        for _params_then_results in range(2):
            for _ in range(r.leb()):
                r.valtype()
    function_body = bodies.get(_FUNCTION, b"\x00")
    code_body = bodies.get(_CODE, b"\x00")
    func_count = _Reader(function_body).leb()
    if func_count != _Reader(code_body).leb():
        raise _Unsupported
    export_body = bodies.get(_EXPORT, b"\x00")
    r = _Reader(export_body)
    for _ in range(r.leb()):
        if r.name() == _INIT_NAME:
            raise _Unsupported
        r.byte()
        r.leb()

    code = bytearray()
    for e in elems:
        code += e.offset + b"\x41\x00\x41" + _sleb(e.length)
        code += b"\xfc\x0c" + uleb128(e.index) + uleb128(e.target)  # table.init
        code += b"\xfc\x0d" + uleb128(e.index)  # elem.drop
    for d in datas:
        code += d.offset + b"\x41\x00\x41" + _sleb(d.length)
        code += b"\xfc\x08" + uleb128(d.index) + uleb128(d.target)  # memory.init
        code += b"\xfc\x09" + uleb128(d.index)  # data.drop
    if start is not None:
        code += b"\x10" + uleb128(start)  # call
    body = b"\x00" + bytes(code) + b"\x0b"  # no locals
    init_func = imported_funcs + func_count
    replaced: dict[int, bytes | None] = {
        _TYPE: _append(type_body, b"\x60\x00\x00"),
        _FUNCTION: _append(function_body, uleb128(type_count)),
        _EXPORT: _append(
            export_body, uleb128(len(_INIT_NAME)) + _INIT_NAME + b"\x00" + uleb128(init_func)
        ),
        _CODE: _append(code_body, uleb128(len(body)) + body),
        _START: None,
    }
    if elem_body is not None:
        replaced[_ELEM] = elem_body
    if data_body is not None:
        replaced[_DATA] = data_body
        if _DATACOUNT not in bodies:
            replaced[_DATACOUNT] = uleb128(_Reader(data_body).leb())
    return _assemble(wasm[:8], sections, replaced)


_INIT_NAME: Final = INIT_EXPORT.encode()


def _append(body: bytes, item: bytes) -> bytes:
    """A vector section's contents with one more item."""
    r = _Reader(body)
    count = r.leb()
    return uleb128(count + 1) + body[r.pos :] + item


def _made_passive(
    body: bytes | None, segment: Callable[[_Reader, int], tuple[bytes, _Init | None]]
) -> tuple[list[_Init], bytes | None]:
    """The active segments of an element or data section, and the section with them made
    passive (``None`` when there were none). ``segment(r, index)`` reads one segment at ``r``:
    its new encoding, and what the init function must do for it when it was active."""
    if body is None:
        return [], None
    r = _Reader(body)
    count = r.leb()
    out = bytearray(uleb128(count))
    active: list[_Init] = []
    for index in range(count):
        encoded, init = segment(r, index)
        out += encoded
        if init is not None:
            active.append(init)
    if r.pos != len(body):
        raise _Unsupported
    return active, (bytes(out) if active else None)


def _element_segment(r: _Reader, index: int) -> tuple[bytes, _Init | None]:
    start = r.pos
    flags = r.leb()
    if flags > 7:
        raise _Unsupported
    if flags & 0x01:  # passive (1, 5) or declarative (3, 7): copied as they are
        if flags & 0x04:
            r.reftype()
            for _ in range(r.leb()):
                r.const_expr()
        else:
            r.byte()
            for _ in range(r.leb()):
                r.leb()
        return r.data[start : r.pos], None
    table = r.leb() if flags & 0x02 else 0
    offset = r.const_expr()
    if flags & 0x04:  # expressions
        kind = b"\x70"
        if flags & 0x02:
            kind_at = r.pos
            r.reftype()
            kind = r.data[kind_at : r.pos]
        items_at = r.pos
        length = r.leb()
        for _ in range(length):
            r.const_expr()
        encoded = b"\x05" + kind + r.data[items_at : r.pos]
    else:  # function indices
        if flags & 0x02 and r.byte() != 0x00:  # elemkind: funcref only
            raise _Unsupported
        items_at = r.pos
        length = r.leb()
        for _ in range(length):
            r.leb()
        encoded = b"\x01\x00" + r.data[items_at : r.pos]
    return encoded, _Init(index, table, offset, length)


def _data_segment(r: _Reader, index: int) -> tuple[bytes, _Init | None]:
    start = r.pos
    flags = r.leb()
    if flags == 1:  # passive: copied as it is
        r.skip(r.leb())
        return r.data[start : r.pos], None
    if flags not in (0, 2):
        raise _Unsupported
    memory = r.leb() if flags == 2 else 0
    offset = r.const_expr()
    bytes_at = r.pos
    length = r.leb()
    r.skip(length)
    return b"\x01" + r.data[bytes_at : r.pos], _Init(index, memory, offset, length)


def _assemble(
    header: bytes, sections: list[tuple[int, bytes]], replaced: dict[int, bytes | None]
) -> bytes:
    """The module with the sections in ``replaced`` replaced, added (in their place in the
    section order) or, when ``None``, removed; custom sections stay where they were."""
    missing = sorted(
        (sid for sid, body in replaced.items() if body is not None and sid not in dict(sections)),
        key=_RANK.__getitem__,
    )
    out = bytearray(header)

    def emit(sid: int, body: bytes) -> None:
        out.append(sid)
        out.extend(uleb128(len(body)))
        out.extend(body)

    for sid, body in sections:
        if sid != 0:
            while missing and _RANK[missing[0]] < _RANK[sid]:
                new = missing.pop(0)
                emit(new, replaced[new] or b"")
        if sid in replaced:
            new_body = replaced[sid]
            if new_body is not None:
                emit(sid, new_body)
        else:
            emit(sid, body)
    for new in missing:
        emit(new, replaced[new] or b"")
    return bytes(out)
