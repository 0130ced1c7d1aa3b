"""Test helper: LEB128, the variable-length integers of the WebAssembly binary format. The one
encoder every test-side module builder uses (the decoder under test is ``asyncwasm._binary``)."""

from __future__ import annotations


def uleb128(n: int, max_len: int | None = None) -> bytes:
    """Unsigned LEB128, shortest form; ``ValueError`` if ``n`` is negative or needs more than
    ``max_len`` bytes."""
    if n < 0:
        raise ValueError(f"unsigned LEB128 of a negative value {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n == 0:
            out.append(byte)
            break
        out.append(byte | 0x80)
    return _bounded(out, max_len)


def sleb128(n: int, max_len: int | None = None) -> bytes:
    """Signed LEB128, shortest form; ``ValueError`` if it needs more than ``max_len`` bytes."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7  # arithmetic shift: ends at 0 or -1
        if (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40):
            out.append(byte)
            break
        out.append(byte | 0x80)
    return _bounded(out, max_len)


def _bounded(out: bytearray, max_len: int | None) -> bytes:
    if max_len is not None and len(out) > max_len:
        raise ValueError(f"LEB128 value needs {len(out)} bytes, more than {max_len}")
    return bytes(out)
