"""Shared by the module/exports and module/imports ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncwasm


def assert_descriptors(
    descriptors: object, expected: Sequence[Mapping[str, str]], cls: type
) -> None:
    """A fresh list of descriptor objects with the expected fields, in module order."""
    assert type(descriptors) is list
    assert len(descriptors) == len(expected)
    for got, want in zip(descriptors, expected, strict=True):
        assert isinstance(got, cls)
        for key, value in want.items():
            assert getattr(got, key) == value, (key, got)


def assert_exports(exports: object, expected: Sequence[Mapping[str, str]]) -> None:
    assert_descriptors(exports, expected, asyncwasm.ModuleExportDescriptor)


def assert_imports(imports: object, expected: Sequence[Mapping[str, str]]) -> None:
    assert_descriptors(imports, expected, asyncwasm.ModuleImportDescriptor)
