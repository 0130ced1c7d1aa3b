"""Test helper: generated WebAssembly binaries of any size, built byte by byte (no engine, no
text assembler), so tests can make modules that take a while to compile."""

from __future__ import annotations

import os

from _leb128 import sleb128, uleb128


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + uleb128(len(payload)) + payload


def _name(s: str) -> bytes:
    b = s.encode()
    return uleb128(len(b)) + b


def many_functions(count: int, ops: int = 30, nonce: bytes | None = None) -> bytes:
    """A module of ``count`` functions ``(i32, i32) -> i32``, each ``ops`` rounds of arithmetic;
    exports ``f0`` (``(a + b) * 3 ^ b`` repeated ``ops`` times) and ``add`` (= ``a + b``).
    ``nonce`` (random by default) goes into a custom section so that every call gives bytes no
    cache has seen."""
    nonce = os.urandom(16) if nonce is None else nonce
    types = _section(1, b"\x01" + b"\x60\x02\x7f\x7f\x01\x7f")
    funcs = _section(3, uleb128(count + 1) + b"\x00" * (count + 1))
    exports = _section(
        7, b"\x02" + _name("f0") + b"\x00" + uleb128(0) + _name("add") + b"\x00" + uleb128(count)
    )
    bodies = []
    for i in range(count):
        code = bytearray(b"\x00\x20\x00\x20\x01\x6a")  # no locals; a + b
        for k in range(ops):
            code += b"\x41" + sleb128(3 + (i + k) % 5) + b"\x6c"  # i32.const; i32.mul
            code += b"\x20\x01\x73"  # local.get 1; i32.xor
        code += b"\x0b"
        bodies.append(uleb128(len(code)) + bytes(code))
    add = b"\x00\x20\x00\x20\x01\x6a\x0b"
    bodies.append(uleb128(len(add)) + add)
    code_section = _section(10, uleb128(count + 1) + b"".join(bodies))
    custom = _section(0, _name("nonce") + nonce)
    return b"\0asm\x01\x00\x00\x00" + types + funcs + exports + code_section + custom
