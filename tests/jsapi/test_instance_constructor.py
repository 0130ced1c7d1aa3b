"""Port of instance/constructor.any.js: ``asyncwasm.Instance(module, imports=None)``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import asyncwasm

from ._instance_cases import CASE_NOTES, CASES, STRAY_ARGUMENT, Case
from ._support import NO_LENGTH, NO_NEW, NO_STRAY, assert_instance, cases, class_name_check, subtest

JS_FILE = "instance/constructor.any.js"
NOT_APPLICABLE = {"length": NO_LENGTH, "Calling": NO_NEW, STRAY_ARGUMENT: NO_STRAY}
ADAPTED = {
    "name": "the class is asyncwasm.Instance with __name__ 'Instance'",
    "Non-Module arguments": "JS non-Module values mapped to Python ones (None, bool, str, object, int, dict, the Module class)",
    **CASE_NOTES,
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Instance, "Instance")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Instance()  # type: ignore[call-arg]


@subtest("Non-Module arguments")
@pytest.mark.parametrize("argument", [None, True, "", object(), 1, {}, asyncwasm.Module], ids=repr)
def test_non_module_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Instance(argument)  # type: ignore[arg-type]


@cases("make", CASES)
def test_instance(subtest: str, make: Callable[[], Case]) -> None:
    case = make()
    module = asyncwasm.Module(case.buffer)
    instance = asyncwasm.Instance(module, *case.args)
    assert_instance(instance, case.exports)
    case.verify(instance)
