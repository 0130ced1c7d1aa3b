"""Shared fixtures and the rules every test here follows.

Engines. Every engine-dependent test takes the ``engine`` fixture (or ``runtime``), which
parametrises it over the engines under test: ``$ASYNCWASM_TEST_ENGINES`` (comma-separated), else
every engine that imports here. Under ``CI=true`` an engine that was asked for but cannot be
imported fails the run instead of being skipped, and so does a run in which no engine could be
exercised.

Async tests. Two plugins, one rule each:

- anyio's plugin (``@pytest.mark.anyio``) is the default. Whatever must hold on every anyio
  backend (the public async API: ``compile``/``instantiate``/``validate`` and their streaming
  forms, ``Runtime``'s async methods, cancellation, streaming) runs on asyncio *and* trio: the
  ``anyio_backend`` fixture below is parametrised over both. A test pinned to one backend
  (``@pytest.mark.parametrize("anyio_backend", ["asyncio"])``, or a module fixture of its own)
  says why next to the pin: the client library is asyncio-only (aiohttp), or what it tests is not
  the event loop at all (the disk cache's file format).
- pytest-asyncio (``@pytest.mark.asyncio``) is what our users test with, so the JS API ports in
  ``tests/jsapi`` use it, as a user's asyncio suite would; they double as the check that asyncwasm
  works under pytest-asyncio's loop. The one exception there is the JS Promise Integration port
  (``test_js_promise_integration.py``): suspending wasm is backend-specific, so it is an anyio
  test. pytest-asyncio is used nowhere else: a new async test outside ``tests/jsapi`` is an anyio
  test.

Timeouts. pytest-timeout stops any test after ``timeout`` seconds (``pyproject.toml``); tests
marked ``slow`` or ``limits`` and the spec-suite tests (which wait for a worker running a whole
script) get the longer limits set in ``pytest_collection_modifyitems`` below, unless they carry a
``@pytest.mark.timeout`` of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


# Per-test time limits in seconds, by marker (the default is pyproject.toml's ``timeout``).
SLOW_TIMEOUT = 900
SPEC_TESTS = Path(__file__).resolve().parent / "spec"
LIMITS_TIMEOUT = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if item.get_closest_marker("limits") is not None:
            item.add_marker(pytest.mark.timeout(LIMITS_TIMEOUT))
        elif item.get_closest_marker("slow") is not None or item.path.is_relative_to(SPEC_TESTS):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on both anyio backends (see the module docstring)."""
    return str(request.param)


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
