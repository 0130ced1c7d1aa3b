"""The manifest lists every upstream subtest, and agrees with the test modules.

The upstream sources are not available at test time, so ``manifest.json`` carries the full list
of upstream subtest names (``tools/jsapi_report.py sync`` regenerates it from a spec checkout).
These tests check that every entry marked ported/adapted has a test with that exact subtest name,
that every test names a subtest the manifest knows, and that the other entries say why.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from typing import Any

import pytest

from ._support import collected_subtests, declared_status, load_manifest, module_name_for

STATUSES = {"ported", "adapted", "not_applicable"}
ENGINES = {"wasmer", "wasmtime"}


def _by_file() -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in load_manifest()["subtests"]:
        files[entry["file"]].append(entry)
    return dict(files)


def _module(js_file: str) -> Any:
    return importlib.import_module(f"{__package__}.{module_name_for(js_file)}")


@pytest.mark.parametrize("js_file", sorted(_by_file()))
def test_manifest_matches_module(js_file: str) -> None:
    entries = _by_file()[js_file]
    module = _module(js_file)
    assert js_file == module.JS_FILE
    collected = collected_subtests(module)
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), "duplicate subtest names in the manifest"
    unknown = sorted(set(collected) - set(names))
    assert not unknown, f"tests for subtests the manifest does not list: {unknown}"
    for entry in entries:
        status, _ = declared_status(module, entry["name"], set(collected))
        assert entry["status"] in STATUSES, f"{entry['name']!r}: status {entry['status']!r}"
        assert status == entry["status"], (
            f"{entry['name']!r}: module says {status}, manifest {entry['status']}"
        )
        if status == "adapted":
            assert entry.get("how"), f"{entry['name']!r}: adapted without saying how"
        if status == "not_applicable":
            assert entry.get("why"), f"{entry['name']!r}: not applicable without a reason"
            assert "xfail" not in entry
        for engine, reason in entry.get("xfail", {}).items():
            assert engine in ENGINES, entry
            assert reason, entry


def test_every_upstream_file_is_listed() -> None:
    files = _by_file()
    assert len(files) >= 52, "an upstream file went missing from the manifest"
    assert sum(len(v) for v in files.values()) == load_manifest()["counts"]["total"]
