"""Runs the official WASI test suite (WebAssembly/wasi-testsuite, its ``wasm32-wasip1`` tests)
through ``asyncwasm.WASI``: a library for ``tests/test_wasi_testsuite.py`` and a script.

The suite is not part of this repository: point ``ASYNCWASM_WASI_TESTSUITE`` at a checkout of
its ``prod/testsuite-base`` branch (the directory holding ``tests/``).

    python tests/wasi/testsuite.py [--async] [SUITE_DIR]
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio

import asyncwasm

ENV_VAR = "ASYNCWASM_WASI_TESTSUITE"


@dataclass(frozen=True)
class Case:
    """One test: a module and what its ``.json`` says (args, env, root dir, expectations)."""

    wasm: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    exit_code: int = 0
    stdout: str | None = None
    stderr: str | None = None

    @property
    def name(self) -> str:
        return f"{self.wasm.parent.parent.parent.name}/{self.wasm.stem}"


def suite_dir() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else None


def cases(root: Path) -> list[Case]:
    """Every ``wasm32-wasip1`` test under ``root/tests``, sorted by name."""
    found = []
    for wasm in sorted(root.glob("tests/*/testsuite/wasm32-wasip1/*.wasm")):
        spec_path = wasm.with_suffix(".json")
        spec = json.loads(spec_path.read_text()) if spec_path.exists() else {}
        found.append(
            Case(
                wasm,
                args=list(spec.get("args", [])),
                env=dict(spec.get("env", {})),
                root=wasm.parent / spec["root"] if "root" in spec else None,
                exit_code=int(spec.get("exit_code", 0)),
                stdout=spec.get("stdout"),
                stderr=spec.get("stderr"),
            )
        )
    return found


async def run(case: Case, *, use_async: bool) -> list[str]:
    """Run ``case``; the list of mismatches (empty when it passes)."""
    with tempfile.TemporaryDirectory() as tmp:
        preopens = {}
        if case.root is not None:
            work = Path(tmp) / case.root.name
            shutil.copytree(case.root, work, symlinks=True)
            preopens["/"] = str(work)
        out, err = io.BytesIO(), io.BytesIO()
        wasi = asyncwasm.WASI(
            args=[case.wasm.name, *case.args],
            env=case.env,
            preopens=preopens,
            stdin=b"",
            stdout=out,
            stderr=err,
        )
        module = await asyncwasm.compile(case.wasm.read_bytes())
        instance = await asyncwasm.instantiate(module, wasi.get_import_object())
        try:
            if use_async:
                code = await wasi.start_async(instance)
            else:
                code = wasi.start(instance)
        except Exception as exc:
            detail = err.getvalue().decode(errors="replace").strip().splitlines()[:3]
            return [f"{type(exc).__name__}: {str(exc).splitlines()[0]}", *detail]
    problems = []
    if code != case.exit_code:
        problems.append(f"exit code {code}, expected {case.exit_code}")
    if case.stdout is not None and out.getvalue().decode() != case.stdout:
        problems.append(f"stdout {out.getvalue()!r}, expected {case.stdout!r}")
    if case.stderr is not None and err.getvalue().decode() != case.stderr:
        problems.append(f"stderr {err.getvalue()!r}, expected {case.stderr!r}")
    if problems and err.getvalue():
        problems.append(f"stderr: {err.getvalue().decode(errors='replace')[-500:]}")
    return problems


async def main(argv: list[str]) -> int:
    use_async = "--async" in argv
    paths = [a for a in argv if not a.startswith("--")]
    root = Path(paths[0]) if paths else suite_dir()
    if root is None:
        print(f"set {ENV_VAR} or pass the suite's directory", file=sys.stderr)
        return 2
    passed = failed = 0
    for case in cases(root):
        try:
            problems = await run(case, use_async=use_async)
        except Exception as exc:  # report every test, not only the first failure
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            failed += 1
            print(f"FAIL {case.name}: {'; '.join(problems)}")
        else:
            passed += 1
    engine = os.environ.get("ASYNCWASM_ENGINE", "the default engine")
    print(f"{passed} passed, {failed} failed ({'start_async' if use_async else 'start'}, {engine})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1:]))
