"""Fixtures for the spec-suite tests: one conversion pass and one worker pool per session.

Every selected (engine, script) pair is submitted to the worker pool as soon as the pool starts,
in test order, so the workers (``$ASYNCWASM_SPEC_JOBS``, default 2) run ahead of the tests that
wait for their results.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import runner

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_SELECTED = pytest.StashKey[list[tuple[str, str]]]()


@dataclass
class SpecSession:
    root: Path
    service: runner.SpecService
    converted: dict[str, runner.Converted]
    expectations: dict[str, runner.EngineExpectations] = field(default_factory=dict)
    futures: dict[tuple[str, str], Future[runner.FileResult]] = field(default_factory=dict)
    all_rels: list[str] = field(default_factory=list)

    def expectations_for(self, engine: str) -> runner.EngineExpectations:
        if engine not in self.expectations:
            self.expectations[engine] = runner.load_expectations(engine, self.all_rels)
        return self.expectations[engine]

    def submit(self, engine: str, rel: str) -> None:
        if (engine, rel) in self.futures:
            return
        conv = self.converted.get(rel)
        if conv is None:
            conv = runner.convert(self.root, rel)
            self.converted[rel] = conv
        exp = self.expectations_for(engine)
        if runner.not_applicable_verdict(conv, engine, exp) is None:
            self.futures[(engine, rel)] = self.service.submit(engine, conv, exp.not_supported_ok)

    def verdict(self, engine: str, rel: str) -> runner.Verdict:
        exp = self.expectations_for(engine)
        conv = self.converted.get(rel) or runner.convert(self.root, rel)
        self.converted[rel] = conv
        na = runner.not_applicable_verdict(conv, engine, exp)
        if na is not None:
            return na
        self.submit(engine, rel)
        return runner.evaluate(self.futures[(engine, rel)].result(), exp)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected: list[tuple[str, str]] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "wast" not in callspec.params or "engine" not in callspec.params:
            continue
        selected.append((str(callspec.params["engine"]), str(callspec.params["wast"])))
    config.stash[_SELECTED] = selected


@pytest.fixture(scope="session")
def spec_session(request: pytest.FixtureRequest) -> Iterator[SpecSession]:
    root = runner.suite_dir()
    if root is None:
        msg = f"the spec test suite was not found (set ${runner.ENV_SUITE})"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    selected = request.config.stash.get(_SELECTED, [])
    rels = sorted({rel for _, rel in selected})
    start = time.perf_counter()
    converted = runner.convert_all(root, rels)
    fresh = [c for c in converted.values() if not c.cached]
    if fresh:
        print(f"\nspec: converted {len(fresh)} scripts in {time.perf_counter() - start:.1f} s")
    service = runner.SpecService()
    session = SpecSession(root, service, converted, all_rels=runner.list_scripts(root))
    try:
        for engine, rel in selected:
            session.submit(engine, rel)
        yield session
    finally:
        for fut in session.futures.values():
            fut.cancel()
        service.close()
