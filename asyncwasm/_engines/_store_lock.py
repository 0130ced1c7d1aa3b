"""The lock that keeps a store to one thread at a time, almost free for the thread that made it.

A wasmtime store must never be used by two threads at once (its calls release the GIL), and a
call may re-enter the store from a host function (wasm -> Python -> wasm). A ``threading.RLock``
does that, but taking and releasing it was the largest single cost of a call from Python
(~0.17 us of ~1.05 us, issue 10). Most stores are only ever used from the thread that made them
(the event loop's), so that thread, the *home* thread, gets a fast path:

* ``fast`` is the home thread's id while the fast path is open, ``None`` while it is closed;
* a call on the home thread while it is open only counts itself in ``depth`` (``+= 1`` before
  using the store, ``-= 1`` after), then checks ``fast`` again: if it was closed meanwhile, it
  undoes its count and takes the slow path.
* any other thread takes the RLock, closes the fast path, and waits until ``depth`` is 0 before
  using the store; whoever releases the RLock last opens the fast path again.

This is Dekker's protocol, and it is sound because the GIL makes the attribute reads and writes
involved sequentially consistent: either the home thread's count comes first (and the other
thread waits for it) or the closing does (and the home thread sees it and backs off). A home
thread inside a counted call enters again without the RLock (``depth`` > 0 means it already has
the store: another thread is at most waiting for it), which is what makes re-entry work while
another thread waits. JSPI stores close the fast path for good (``close_fast_path``): every
entry into them goes through the engine's async paths.

Python code must not rely on this under a free-threaded CPython; asyncwasm's engines don't run
there (wasmtime-py and wasmer ship GIL builds only).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Final

__all__ = ["StoreLock"]

_get_ident: Final = threading.get_ident
# How long a thread waits between looks at ``depth`` while the home thread's calls drain:
# doubling from the first to the last (a call can last long; the wait is rare).
_FIRST_WAIT: Final = 0.00005
_LONGEST_WAIT: Final = 0.002


class StoreLock:
    """A re-entrant lock for one store, with the fast path described in the module docstring.

    ``with lock:`` takes it (any thread); the generated call paths use ``fast`` and ``depth``
    directly."""

    __slots__ = ("_foreign", "_open", "depth", "fast", "home", "rlock")

    def __init__(self) -> None:
        self.home: int = _get_ident()
        self.fast: int | None = self.home
        self.depth = 0
        self._open = True  # False once the fast path is closed for good
        # Taken by every thread but the home one, and by the home one while the fast path is
        # closed. Once it is closed for good, code on the home thread may take it directly.
        self.rlock = threading.RLock()
        self._foreign = 0  # RLock entries held (by whichever thread holds it)

    # On the home thread, an entry counts itself or takes the RLock, and every entry nested in
    # it does the same (while counted, ``depth`` > 0 lets it in; while holding the RLock, the
    # path is closed and ``depth`` stays 0): the exit can tell which from ``depth``.
    def __enter__(self) -> None:
        if self.fast == _get_ident():
            self.depth += 1
            if self.fast is not None:  # Dekker: look again after counting
                return
            self.depth -= 1  # type: ignore[unreachable]  # another thread closed it meanwhile
        if self.depth and _get_ident() == self.home:
            self.depth += 1  # inside a counted call of this thread: it has the store already
            return
        self._take()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.depth and _get_ident() == self.home:
            self.depth -= 1
        else:
            self._give()

    def _take(self) -> None:
        """Take the RLock; close the fast path and wait for the home thread's counted calls."""
        self.rlock.acquire()
        self._foreign += 1
        self.fast = None
        try:
            wait = _FIRST_WAIT
            while self.depth and _get_ident() != self.home:
                time.sleep(wait)
                wait = min(wait * 2, _LONGEST_WAIT)
        except BaseException:  # Ctrl-C while waiting: give the lock back
            self._give()
            raise

    def _give(self) -> None:
        self._foreign -= 1
        if not self._foreign and self._open:
            self.fast = self.home
        self.rlock.release()

    def close_fast_path(self) -> None:
        """Close the fast path for good (hold the lock): from now on every entry is slow."""
        self._open = False
        self.fast = None

    def _is_owned(self) -> bool:
        """Whether this thread is inside the store (in a counted call, or holding the RLock)."""
        if _get_ident() == self.home and self.depth:
            return True
        return bool(self.rlock._is_owned())  # type: ignore[attr-defined]

    def busy(self) -> bool:
        """Whether some thread may be inside the store (for the epoch ticker)."""
        if self.depth:
            return True
        if not self.rlock.acquire(False):
            return True
        self.rlock.release()
        return False
