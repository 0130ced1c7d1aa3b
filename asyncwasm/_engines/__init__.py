"""Engine discovery and selection. The only place that decides which engine module to load."""

from __future__ import annotations

import importlib
import os
import threading
from typing import Final

from .. import _fork
from .._exceptions import NotSupportedError
from ._base import Engine, EngineFeatures, UncaughtWasmException

__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "EngineFeatures",
    "UncaughtWasmException",
    "available_engines",
    "default_engine_name",
    "get_engine",
]

ENGINE_NAMES: Final = ("wasmer", "wasmtime")
_MODULES: Final = {"wasmer": "._wasmer", "wasmtime": "._wasmtime"}
_ENV_VAR: Final = "ASYNCWASM_ENGINE"

# Engines whose create_engine(fuel=True) makes an engine with fuel metering.
_FUEL_ENGINES: Final = {"wasmtime": True}

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_import_errors: dict[str, str] = {}


def _renew_lock() -> None:
    global _lock
    _lock = threading.Lock()


_fork.at_fork_in_child(_renew_lock)


def _try_load(name: str, fuel: bool = False) -> Engine | None:
    key = f"{name}+fuel" if fuel else name
    with _lock:
        if key in _engines:
            return _engines[key]
        if name in _import_errors:
            return None
        try:
            module = importlib.import_module(_MODULES[name], __name__)
        except ImportError as exc:
            # On CPython 3.11+ PyPI serves wasmer as a stub whose import raises ImportError.
            _import_errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        if fuel and not _FUEL_ENGINES.get(name, False):
            raise NotSupportedError(name, "fuel limits (Limits.fuel)")
        engine: Engine = module.create_engine(fuel=True) if fuel else module.create_engine()
        _engines[key] = engine
        return engine


def available_engines() -> list[str]:
    """The engines that import on this interpreter, in order of preference."""
    return [name for name in ENGINE_NAMES if _try_load(name) is not None]


def default_engine_name() -> str:
    """``$ASYNCWASM_ENGINE`` if set, else wasmer where it imports, else wasmtime."""
    chosen = os.environ.get(_ENV_VAR, "").strip()
    if chosen:
        return chosen
    return "wasmer" if _try_load("wasmer") is not None else "wasmtime"


def get_engine(name: str | None = None, *, fuel: bool = False) -> Engine:
    """The process-wide engine called ``name`` (default: ``default_engine_name()``).

    ``fuel=True``: its second process-wide instance configured with fuel metering, for runtimes
    with ``Limits(fuel=...)`` (fuel is an engine-wide setting that slows every call, so the
    default engine goes without; the two don't share compiled code). ``NotSupportedError`` where
    the engine has no fuel.

    Raises ``ValueError`` for an unknown name and ``ImportError`` (with the reason) for an engine
    that does not import here.
    """
    if name is None:
        name = default_engine_name()
    if name not in _MODULES:
        raise ValueError(f"unknown engine {name!r}; expected one of {list(ENGINE_NAMES)}")
    engine = _try_load(name, fuel)
    if engine is None:
        raise ImportError(
            f"the {name} engine is not available on this Python: {_import_errors[name]}"
            + (" (wasmer has native wheels for CPython <= 3.10 only)" if name == "wasmer" else "")
        )
    return engine
