"""Fixtures and collection hooks for the JS API ports.

- Every test here runs once per engine under test (the autouse ``wasm_engine`` fixture depends on
  the project's ``engine`` fixture) with the module-level API bound to that engine.
- Expected failures come from ``manifest.json``: a subtest with ``xfail = {engine: reason}`` gets
  a strict xfail for that engine (an xfail that starts passing fails the run).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ._support import manifest_entries


@pytest.fixture(autouse=True)
def wasm_engine(runtime: Any, engine: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine under test. The project's ``runtime`` fixture (tests/conftest.py) installs a
    fresh runtime of that engine as the default one, so ``asyncwasm.Module(...)``,
    ``asyncwasm.compile(...)`` etc. use it; ``$ASYNCWASM_ENGINE`` is set to match."""
    monkeypatch.setenv("ASYNCWASM_ENGINE", engine)
    return engine


def subtest_of(item: pytest.Item) -> tuple[str, str] | None:
    """``(JS file, subtest name)`` for a collected port, else None."""
    module = getattr(item, "module", None)
    js_file = getattr(module, "JS_FILE", None)
    callspec = getattr(item, "callspec", None)
    if js_file is None or callspec is None or "subtest" not in callspec.params:
        return None
    return js_file, callspec.params["subtest"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    entries = manifest_entries()
    for item in items:
        key = subtest_of(item)
        if key is None:
            continue
        entry = entries.get(key)
        if entry is None:
            continue  # test_manifest.py reports tests the manifest does not know
        engine = item.callspec.params.get("engine", os.environ.get("ASYNCWASM_ENGINE"))  # type: ignore[attr-defined]
        reason = (entry.get("xfail") or {}).get(engine)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=f"{engine}: {reason}", strict=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With ``$JSAPI_RECORD`` set to a file, append one JSON line per failed port (file,
    subtest, engine, exception type and message); ``tools/jsapi_report.py xfail`` reads it."""
    report = yield
    path = os.environ.get("JSAPI_RECORD")
    key = subtest_of(item)
    if path and key and report.when == "call" and report.failed and call.excinfo is not None:
        import json

        engine = item.callspec.params.get("engine")  # type: ignore[attr-defined]
        exc = call.excinfo.value
        with open(path, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "file": key[0],
                        "name": key[1],
                        "engine": engine,
                        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                        "message": str(exc)[:300],
                        "test": item.nodeid,
                    }
                )
                + "\n"
            )
    return report
