"""``asyncwasm._caps``: memory and table maxima written into module bytes (wasmer's limits)."""

from __future__ import annotations

import pytest
from _wat import wat

from asyncwasm._binary import decode_module
from asyncwasm._caps import cap_module


def _limits(wasm: bytes) -> tuple[list[tuple[int, int | None]], list[tuple[int, int | None]]]:
    info = decode_module(wasm)
    memories = [(m.limits.minimum, m.limits.maximum) for m in info.memories]
    tables = [(t.limits.minimum, t.limits.maximum) for t in info.tables]
    return memories, tables


@pytest.mark.parametrize(
    ("text", "memories", "tables"),
    [
        ("(memory 1)", [(1, 8)], []),
        ("(memory 1 100)", [(1, 8)], []),
        ("(memory 1 4)", [(1, 4)], []),  # already below the cap: unchanged
        ("(memory 9)", [(9, None)], []),  # starts over the cap: left to instantiation
        ("(table 1 funcref)", [], [(1, 50)]),
        ("(table 1 99 externref) (table 2 funcref)", [], [(1, 50), (2, 50)]),
        ('(memory 2) (table 3 funcref) (func (export "f"))', [(2, 8)], [(3, 50)]),
    ],
)
def test_maxima_are_capped(
    text: str, memories: list[tuple[int, int | None]], tables: list[tuple[int, int | None]]
) -> None:
    assert _limits(cap_module(wat(f"(module {text})"), 8, 50)) == (memories, tables)


def test_nothing_to_change_gives_the_same_bytes() -> None:
    wasm = wat('(module (memory 1 2) (func (export "f")))')
    assert cap_module(wasm, 8, 50) is wasm
    assert cap_module(wasm, None, None) is wasm


def test_imported_memories_and_tables_are_the_hosts() -> None:
    wasm = wat('(module (import "env" "m" (memory 1)) (import "env" "t" (table 1 funcref)))')
    assert cap_module(wasm, 8, 50) is wasm


def test_bytes_it_cannot_read_are_returned_as_they_are() -> None:
    wasm = wat("(module (memory 1))")
    truncated = wasm[:-1]
    assert cap_module(truncated, 8, 50) is truncated
    memory64 = wat("(module (memory i64 1))")
    assert cap_module(memory64, 8, 50) is memory64
