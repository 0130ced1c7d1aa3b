"""Compile C to ``wasm32-wasi`` with the ``ziglang`` package (no system toolchain needed).

Builds are cached under ``.cache/wasi/``, keyed by the source, the flags and the zig version,
and never committed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CACHE = ROOT / ".cache" / "wasi"
FLAGS = ("--target=wasm32-wasi", "-O2", "-s")


def zig_available() -> bool:
    try:
        metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        return False
    return True


def build(source: Path, *extra: str) -> Path:
    """The wasm module compiled from ``source`` (built once, then taken from the cache)."""
    flags = (*FLAGS, *extra)
    key = hashlib.sha256(
        source.read_bytes() + repr((flags, metadata.version("ziglang"))).encode()
    ).hexdigest()[:16]
    out = CACHE / f"{source.stem}-{key}.wasm"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *flags, str(source), "-o", str(tmp)],
        check=True,
        capture_output=True,
    )
    tmp.replace(out)  # atomic: concurrent builders never see half a file
    return out
