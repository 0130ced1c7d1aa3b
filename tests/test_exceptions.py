"""The error classes: hierarchy, fields, pickling (errors cross the wasmer worker process)."""

from __future__ import annotations

import pickle

import pytest

import asyncwasm
from asyncwasm import CompileError, LinkError, NotSupportedError, RangeError, WebAssemblyError


def test_hierarchy_matches_the_contract() -> None:
    for cls in (CompileError, LinkError, asyncwasm.RuntimeError, NotSupportedError):
        assert issubclass(cls, WebAssemblyError)
    assert issubclass(NotSupportedError, NotImplementedError)
    assert issubclass(RangeError, ValueError)
    assert asyncwasm.RuntimeError is not RuntimeError  # type: ignore[comparison-overlap]
    assert "RuntimeError" not in asyncwasm.__all__
    assert "Exception" not in asyncwasm.__all__


def test_star_import_does_not_shadow_builtins() -> None:
    namespace: dict[str, object] = {}
    exec("from asyncwasm import *", namespace)
    assert "RuntimeError" not in namespace
    assert "Exception" not in namespace
    assert "compile" in namespace


@pytest.mark.parametrize(
    "error",
    [
        CompileError("bad bytes", offset=12),
        LinkError("import env.f: missing"),
        asyncwasm.RuntimeError("unreachable executed", trap="unreachable"),
        NotSupportedError("wasmer", "host tables"),
        RangeError("too big"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_pickle_with_their_fields(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_huge_messages_are_shortened() -> None:
    error = asyncwasm.RuntimeError("frame\n" * 3_000_000, trap="stack_overflow")
    assert len(str(error)) < 2100
    assert "more characters" in str(error)


def test_interpreter_exit_is_clean_after_using_each_engine() -> None:
    import subprocess
    import sys

    code = (
        "import asyncwasm\n"
        "for name in asyncwasm.Runtime.engines():\n"
        "    rt = asyncwasm.Runtime(name)\n"
        "    m = asyncwasm.Module(bytes.fromhex('0061736d01000000'), runtime=rt)\n"
        "    kept = (rt, m)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == ""
