"""Fork bookkeeping: what a process forked after asyncwasm was used must renew.

``os.fork()`` (and multiprocessing's ``fork`` start method) copies the parent's memory but only
the thread that forked. Engine state that relies on other threads is broken in the child
(measured: wasmtime's parallel-compilation thread pool, and wasmer's Cranelift compiling a big
module, both hang the child's next compile forever), locks held by other threads at the fork
stay held, and the parent's worker processes and stores must not be touched by the child. So
each object holding such state *tracks* itself here, and after a fork, in the child, its
``_after_fork_in_child()`` method renews that state: a new engine, new locks, empty caches,
worker pools that forget the parent's workers without touching them.

``generation()`` counts the forks between the process that first imported asyncwasm and this
one (0 there). An engine object (store, module, instance...) made in an earlier generation
belongs to the parent: using it in the child raises ``ForkedObjectError``.

This module is at the bottom of the layering: engines, pools, caches and contexts import it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["ForkAware", "at_fork_in_child", "forked", "generation", "track"]

_log = logging.getLogger("asyncwasm")


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None:
        """Renew what the forking parent's state left unusable (runs in the child, once)."""


_generation = 0
_functions: list[Callable[[], None]] = []
_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()
# Not renewed by a hook: registration is guarded by it, and a fork during a registration
# (another thread) is what could leave it held; ``_after_fork`` replaces it first.
_lock = threading.Lock()


def generation() -> int:
    """How many forks separate this process from the first one that imported asyncwasm."""
    return _generation


def forked() -> bool:
    """Whether this process was forked from one that had imported asyncwasm."""
    return _generation > 0


def at_fork_in_child(fn: Callable[[], None]) -> None:
    """Call ``fn()`` in every child forked from now on (module-level state)."""
    with _lock:
        _functions.append(fn)


def track(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    with _lock:
        _objects.add(obj)


def _after_fork() -> None:
    global _generation, _lock
    _lock = threading.Lock()
    _generation += 1
    # Module-level state first (registries, default-runtime locks), then the objects.
    for fn in list(_functions):
        _run(fn)
    for obj in list(_objects):
        _run(obj._after_fork_in_child)


def _run(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # one broken hook must not leave the rest of the child half-renewed
        _log.exception("asyncwasm: an after-fork hook failed")


os.register_at_fork(after_in_child=_after_fork)
