"""The public surface: what ``import asyncwasm`` offers, and that a user program type-checks."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import typing
from pathlib import Path

import anyio
import pytest

import asyncwasm
from asyncwasm import _exceptions as exceptions_module
from asyncwasm._exceptions import TRAP_KINDS

USER_PROGRAM = Path(__file__).parent / "typing" / "user_program.py"


def test_no_stray_names() -> None:
    public = {name for name in dir(asyncwasm) if not name.startswith("_")}
    # The two JS names left out of __all__ so that ``import *`` does not shadow built-ins.
    assert public - set(asyncwasm.__all__) == {"Exception", "RuntimeError"}
    assert "annotations" not in public


@pytest.mark.parametrize(
    "name",
    [
        "FuncType",
        "MemoryType",
        "TableType",
        "GlobalType",
        "TagType",
        "Limits",
        "ModuleExportDescriptor",
        "ModuleImportDescriptor",
        "CacheInfo",
        "EngineFeatures",
        "TrapKind",
        "RuntimeClosedError",
    ],
)
def test_types_users_receive_are_exported(name: str) -> None:
    assert name in asyncwasm.__all__
    obj = getattr(asyncwasm, name)
    if isinstance(obj, type):
        assert obj.__module__ == "asyncwasm"


def test_trap_kind_literal_matches_the_kinds() -> None:
    assert set(typing.get_args(asyncwasm.TrapKind)) == TRAP_KINDS
    assert "unreachable" in TRAP_KINDS


def test_closed_runtime_raises_a_documented_error(engine: str) -> None:
    rt = asyncwasm.Runtime(engine)
    rt.close()
    with pytest.raises(asyncwasm.RuntimeClosedError, match="closed") as info:
        anyio.run(rt.compile, b"\0asm\1\0\0\0")
    error = info.value
    assert isinstance(error, RuntimeError)  # Python's, as for other closed resources
    assert not isinstance(error, asyncwasm.WebAssemblyError)  # not a trap
    assert "RuntimeClosedError" in (exceptions_module.__doc__ or "")


def test_user_program_runs(engine: str) -> None:
    done = subprocess.run(
        [sys.executable, str(USER_PROGRAM)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ASYNCWASM_ENGINE": engine},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 1 ")


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_user_program_type_checks_without_casts() -> None:
    source = USER_PROGRAM.read_text()
    assert "cast(" not in source
    assert "type: ignore" not in source
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(USER_PROGRAM)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
