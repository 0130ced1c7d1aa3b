"""The official WASI test suite (WebAssembly/wasi-testsuite, ``wasm32-wasip1``: C, Rust and
AssemblyScript tests) through ``WASI.start`` and ``WASI.start_async``, on every engine under test.

The suite is not part of this repository yet: set ``ASYNCWASM_WASI_TESTSUITE`` to a checkout of
its ``prod/testsuite-base`` branch. Without it these tests are skipped, under ``CI=true`` too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import asyncwasm

sys.path.insert(0, str(Path(__file__).parent / "wasi"))
import testsuite

SUITE = testsuite.suite_dir()
CASES = testsuite.cases(SUITE) if SUITE is not None else []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # trio is covered by tests/test_wasi_async.py; this halves the run


# Tests this implementation does not pass, with the reason. (None at present.)
EXCLUDED: dict[str, str] = {}


@pytest.mark.skipif(SUITE is not None, reason="the suite is present")
def test_suite_absent() -> None:
    pytest.skip(f"set {testsuite.ENV_VAR} to a wasi-testsuite checkout (prod/testsuite-base)")


@pytest.mark.parametrize("mode", ["start", "start_async"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.anyio
async def test_wasi_testsuite(runtime: asyncwasm.Runtime, case: testsuite.Case, mode: str) -> None:
    if case.name in EXCLUDED:
        pytest.skip(EXCLUDED[case.name])
    assert await testsuite.run(case, use_async=mode == "start_async") == []
