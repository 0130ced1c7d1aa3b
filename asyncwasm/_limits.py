"""``Limits``: the resource bounds a ``Runtime`` puts on the modules it runs (an extension beyond
the JS API, for running modules you did not write)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["PAGE_SIZE", "Limits"]

PAGE_SIZE: Final = 65536
"""Bytes of a wasm page (memories with a custom page size count in bytes all the same)."""


def _count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"Limits.{name} must be a non-negative int or None, not {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on what the modules of one ``Runtime`` may use; ``None`` means unbounded.

    - ``memory``: bytes per linear memory. wasm's ``memory.grow`` past it returns -1,
      ``Memory.grow`` from Python raises ``RangeError``, and instantiating a module whose memory
      starts larger raises ``RangeError``. On wasmtime it bounds the GC heap too (the store
      limiter bounds both); on wasmer, memories created from Python get it as their maximum.
    - ``table_elements``: the same for the elements of each table.
    - ``instances``: live ``Instance`` objects of the runtime; the next ``Instance()`` raises
      ``RangeError``.
    - ``fuel``: engine units (about one per wasm instruction) per exported call, counted afresh
      for each call from Python; running out traps with ``RuntimeError(trap="out_of_fuel")``.
    - ``timeout``: seconds of wall clock per exported call; running out traps with
      ``RuntimeError(trap="timeout")``. It is checked while wasm runs (every 10 ms on wasmtime),
      so a synchronous call cannot hold the event loop much past it; for a promising call the
      time suspended at imports counts too, and the call stops when it next runs wasm.

    After a trap the instance stays usable. A limit the runtime's engine cannot enforce raises
    ``NotSupportedError`` when the ``Runtime`` is created (``Runtime.features`` says which).
    """

    memory: int | None = None
    table_elements: int | None = None
    instances: int | None = None
    fuel: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("memory", "table_elements", "instances", "fuel"):
            _count(name, getattr(self, name))
        timeout = self.timeout
        if timeout is not None and not (
            isinstance(timeout, (int, float))
            and not isinstance(timeout, bool)
            and timeout > 0
            and math.isfinite(timeout)
        ):
            raise ValueError(
                f"Limits.timeout must be a positive number of seconds, not {timeout!r}"
            )

    @property
    def memory_pages(self) -> int | None:
        """``memory`` in whole 64 KiB pages (rounded down), or ``None``."""
        return None if self.memory is None else self.memory // PAGE_SIZE
