"""Build a C program to WebAssembly and run it with asyncwasm.WASI: ``wc`` over stdin and files.

The project compiles ``examples/wordcount.c`` itself with the ``ziglang`` package (``python -m
ziglang cc --target=wasm32-wasi``; no system toolchain), caching the module under
``.cache/wasi/``. The program gets some text on stdin, and a directory of this repository
preopened read-write as ``/src`` from which it reads files; it cannot see anything else.

Run: ``python examples/wasi_c_program.py [--engine wasmer|wasmtime]``.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import anyio

import asyncwasm

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "wordcount.c"
CACHE = HERE.parent / ".cache" / "wasi"


def build() -> bytes:
    """``wordcount.c`` compiled to wasm32-wasi (built once, then read from the cache)."""
    key = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = CACHE / f"wordcount-{key}.wasm"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"compiling {SOURCE.name} with ziglang (the first build takes a while) ...")
        cmd = [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-O2", "-s"]
        tmp = out.with_suffix(".tmp")
        subprocess.run([*cmd, str(SOURCE), "-o", str(tmp)], check=True)
        tmp.replace(out)
    return out.read_bytes()


async def main(engine: str | None) -> int:
    wasm = build()
    output, errors = bytearray(), bytearray()
    wasi = asyncwasm.WASI(
        args=["wc", "-", "/src/wordcount.c", "/src/missing.txt", "/src/../README.md"],
        preopens={"/src": str(HERE)},
        stdin=b"the quick brown fox\njumps over the lazy dog\n",
        stdout=output.extend,  # a callable taking bytes
        stderr=errors.extend,
    )
    async with asyncwasm.Runtime(engine=engine) as runtime:
        instance = await runtime.instantiate(wasm, wasi.get_import_object())
        code = wasi.start(instance.instance)
    print(output.decode(), end="")
    print(errors.decode(), end="")
    print(f"exit code {code} (on {runtime.engine}; '..' out of /src is refused by the sandbox)")
    return code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["wasmer", "wasmtime"], default=None)
    anyio.run(main, parser.parse_args().engine)
