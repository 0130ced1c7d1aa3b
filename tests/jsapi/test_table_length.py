"""Port of table/length.any.js: ``table.length`` is read-only."""

from __future__ import annotations

import pytest

import asyncwasm

from ._support import NO_STRAY, NO_THIS

JS_FILE = "table/length.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Setting (sloppy mode)": "Python has no sloppy mode: assignment raises AttributeError or TypeError and the length is unchanged",
    "Setting (strict mode)": "assignment raises AttributeError or TypeError (contract mapping table) and the length is unchanged",
}


@pytest.mark.parametrize(
    "subtest", [pytest.param(n, id=n) for n in ("Setting (sloppy mode)", "Setting (strict mode)")]
)
def test_setting(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 2})
    assert table.length == 2, "Initial length"
    with pytest.raises((AttributeError, TypeError)):
        table.length = 4  # type: ignore[misc]
    assert table.length == 2, "Should not change the length"
