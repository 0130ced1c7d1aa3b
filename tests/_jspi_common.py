"""What the JSPI test modules share: instances of a module importing ``env.f`` and ``env.g``,
and the check that no coroutine is left never awaited."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest

from asyncwasm import Instance, Module


def make(module: Module, f: object, g: object = None) -> Instance:
    """An instance of ``module`` with ``f`` as ``env.f`` and ``g`` (else the identity) as
    ``env.g``."""
    return Instance(module, {"env": {"f": f, "g": g if g is not None else (lambda x: x)}})


@pytest.fixture(autouse=True)
def no_unawaited_warnings() -> Iterator[None]:
    """A coroutine dropped without being awaited warns at collection: make it fail the test
    (autouse in the modules that import it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
        gc.collect()
