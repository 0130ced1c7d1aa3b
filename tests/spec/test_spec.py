"""The official WebAssembly spec test suite, one test per ``.wast`` script and engine.

A test passes when every command of the script behaves as ``expectations.toml`` says for that
engine: commands not listed there must pass (or be not applicable through the JS API), and the
commands listed as known engine failures must still fail. Scripts needing a proposal the engine
lacks are skipped with the reason from ``expectations.toml``.
"""

from __future__ import annotations

import pytest

from . import runner
from .conftest import SpecSession

_ROOT = runner.suite_dir()
SCRIPTS = runner.list_scripts(_ROOT) if _ROOT is not None else ["(spec test suite not found)"]


@pytest.mark.parametrize("wast", SCRIPTS)
def test_spec_script(wast: str, engine: str, spec_session: SpecSession) -> None:
    verdict = spec_session.verdict(engine, wast)
    if verdict.status == "na":
        pytest.skip(verdict.reason)
    if verdict.status != "ok":
        pytest.fail(verdict.report(), pytrace=False)
