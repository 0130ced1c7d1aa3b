"""Port of memory/buffer.any.js: ``memory.buffer`` is read-only."""

from __future__ import annotations

import pytest

import asyncwasm

from ._support import NO_STRAY, NO_THIS

JS_FILE = "memory/buffer.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Setting (sloppy mode)": "Python has no sloppy mode: assignment raises AttributeError or TypeError and the buffer is unchanged",
    "Setting (strict mode)": "assignment raises AttributeError or TypeError (contract mapping table) and the buffer is unchanged",
}


@pytest.mark.parametrize(
    "subtest", [pytest.param(n, id=n) for n in ("Setting (sloppy mode)", "Setting (strict mode)")]
)
def test_setting(subtest: str) -> None:
    memory = asyncwasm.Memory({"initial": 0})
    memory2 = asyncwasm.Memory({"initial": 0})
    buffer = memory.buffer
    assert buffer is not memory2.buffer, "Need two distinct buffers"
    with pytest.raises((AttributeError, TypeError)):
        memory.buffer = memory2.buffer  # type: ignore[misc]
    assert memory.buffer is buffer, "Should not change the buffer"
