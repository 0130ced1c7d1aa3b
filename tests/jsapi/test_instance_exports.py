"""Port of instance/exports.any.js: ``instance.exports`` is read-only."""

from __future__ import annotations

import pytest

import asyncwasm

from ._support import NO_STRAY, NO_THIS, subtest
from .wasm_module_builder import EMPTY_MODULE

JS_FILE = "instance/exports.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Setting (sloppy mode)": "Python has no sloppy mode: assignment raises AttributeError or TypeError (contract mapping table) and exports is unchanged",
    "Setting (strict mode)": "assignment raises AttributeError or TypeError (contract mapping table) and exports is unchanged",
}


def _instance() -> asyncwasm.Instance:
    return asyncwasm.Instance(asyncwasm.Module(EMPTY_MODULE))


@subtest("Setting (sloppy mode)")
def test_setting_sloppy(subtest: str) -> None:
    instance = _instance()
    exports = instance.exports
    with pytest.raises((AttributeError, TypeError)):
        instance.exports = {}  # type: ignore[misc, assignment]
    assert instance.exports is exports, "Should not change the exports"


@subtest("Setting (strict mode)")
def test_setting_strict(subtest: str) -> None:
    instance = _instance()
    exports = instance.exports
    with pytest.raises((AttributeError, TypeError)):
        setattr(instance, "exports", {})  # noqa: B010
    assert instance.exports is exports, "Should not change the exports"
