"""Shared fixtures. Every engine-dependent test takes the ``engine`` fixture (or ``runtime``), which
parametrises it over the engines under test.

Engines under test: ``$ASYNCWASM_TEST_ENGINES`` (comma-separated), else every engine that imports
here. Under ``CI=true`` an engine that was asked for but cannot be imported fails the run instead
of being skipped, and so does a run in which no engine could be exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import asyncwasm
from asyncwasm._engines import ENGINE_NAMES, available_engines


def _engines_under_test() -> list[str]:
    requested = [
        e.strip() for e in os.environ.get("ASYNCWASM_TEST_ENGINES", "").split(",") if e.strip()
    ]
    return requested or available_engines()


ENGINES = _engines_under_test()
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_sessionstart(session: pytest.Session) -> None:
    unknown = [e for e in ENGINES if e not in ENGINE_NAMES]
    if unknown:
        raise pytest.UsageError(f"unknown engine(s) in ASYNCWASM_TEST_ENGINES: {unknown}")
    missing = [e for e in ENGINES if e not in available_engines()]
    if missing and IN_CI:
        raise pytest.UsageError(
            f"CI=true and engine(s) {missing} cannot be imported on this Python: refusing to skip them"
        )
    if not ENGINES and IN_CI:
        raise pytest.UsageError("CI=true and no engine imports here: nothing would be exercised")


def pytest_report_header(config: pytest.Config) -> str:
    return f"asyncwasm engines under test: {', '.join(ENGINES) or 'none'}"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The name of the engine under test; skips an engine that does not import (outside CI)."""
    name: str = request.param
    if name not in available_engines():
        pytest.skip(f"engine {name} does not import on this Python")
    return name


@pytest.fixture
def runtime(engine: str) -> Iterator[asyncwasm.Runtime]:
    """A fresh ``Runtime`` of the engine under test, installed as the default runtime for the
    test's duration, so module-level functions and constructors use it too."""
    from asyncwasm._runtime import _set_default_runtime

    rt = asyncwasm.Runtime(engine=engine)
    previous = _set_default_runtime(rt)
    try:
        yield rt
    finally:
        _set_default_runtime(previous)
        rt.close()
