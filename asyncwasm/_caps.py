"""Caps on the memories and tables a module defines, written into its bytes before it is
compiled: how ``Limits.memory``/``table_elements`` are enforced on an engine without store
limits (wasmer), and how wasmer's ``table.grow(2**31)`` process abort is fenced.

A memory or table the module defines gets ``maximum = min(declared maximum, cap)``; wasm's
``memory.grow``/``table.grow`` past it then returns -1, and growing from Python raises
``RangeError``, exactly as for a module that declared that maximum. An entry whose *minimum* is
over the cap is left alone (the instantiation refuses it with ``RangeError``, see
``_instance``). Imported memories and tables are the host's: their declared types are not
touched (a host memory gets whatever maximum the host gave it).

Only the table (4) and memory (5) sections are rewritten, and only the encodings the engines
without store limits compile (plain funcref/externref tables; memories without memory64, shared
or custom page sizes); anything else is returned as is. The bytes are already checked by
asyncwasm's decoder (``_decode``) when this runs; malformed input is returned unchanged and left
to the engine to refuse.
"""

from __future__ import annotations

from typing import Final

__all__ = ["cap_module", "read_u32", "uleb128"]

_TABLE_SECTION: Final = 4
_MEMORY_SECTION: Final = 5
_PLAIN_REFTYPES: Final = frozenset({0x70, 0x6F})  # funcref, externref


class _Malformed(ValueError):
    pass


def read_u32(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned 32-bit LEB128 at ``pos``: (value, next position). ``ValueError`` past the
    end or when longer than 5 bytes."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise _Malformed
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def uleb128(value: int) -> bytes:
    """``value`` (>= 0) as an unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _capped_limits(data: bytes, pos: int, cap: int) -> tuple[bytes | None, int]:
    """The limits at ``pos`` rewritten with ``cap`` (``None``: leave them), and the end."""
    flags = data[pos]
    if flags not in (0, 1):
        raise _Unsupported
    minimum, pos = read_u32(data, pos + 1)
    maximum = None
    if flags == 1:
        maximum, pos = read_u32(data, pos)
    if minimum > cap or (maximum is not None and maximum <= cap):
        return None, pos
    return b"\x01" + uleb128(minimum) + uleb128(cap), pos


class _Unsupported(Exception):
    pass


def _rewrite(data: bytes, section: int, cap: int) -> bytes | None:
    """A table or memory section's contents with every entry capped, or ``None`` when nothing
    changed."""
    count, pos = read_u32(data, 0)
    out = bytearray(data[:pos])
    changed = False
    for _ in range(count):
        if section == _TABLE_SECTION:
            if pos >= len(data) or data[pos] not in _PLAIN_REFTYPES:
                raise _Unsupported  # typed references or an initialiser expression
            out.append(data[pos])
            pos += 1
        start = pos
        limits, pos = _capped_limits(data, pos, cap)
        if limits is None:
            out += data[start:pos]
        else:
            out += limits
            changed = True
    if pos != len(data):
        raise _Malformed
    return bytes(out) if changed else None


def cap_module(wasm: bytes, memory_pages: int | None, table_elements: int | None) -> bytes:
    """``wasm`` with the maxima of the memories (in 64 KiB pages) and tables it defines capped;
    the same object when nothing needed changing."""
    if memory_pages is None and table_elements is None:
        return wasm
    caps = {_MEMORY_SECTION: memory_pages, _TABLE_SECTION: table_elements}
    pos = 8  # magic and version (checked before)
    pieces: list[bytes] = []
    copied = 0
    try:
        while pos < len(wasm):
            section = wasm[pos]
            size, body = read_u32(wasm, pos + 1)
            end = body + size
            if end > len(wasm):
                raise _Malformed
            cap = caps.get(section)
            if cap is not None:
                contents = _rewrite(wasm[body:end], section, cap)
                if contents is not None:
                    pieces += (wasm[copied:pos], bytes([section]), uleb128(len(contents)), contents)
                    copied = end
            pos = end
    except (_Malformed, _Unsupported, IndexError):
        return wasm
    if not pieces:
        return wasm
    pieces.append(wasm[copied:])
    return b"".join(pieces)
