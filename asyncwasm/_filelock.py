"""An exclusive lock between processes on a file (``fcntl.flock``), for the on-disk cache.

Workers that share a ``cache_dir`` (a process pool, a Dask cluster on one machine) take the lock
of a module's entry around "look on disk, else compile and store": the first compiles, the
others wait, then find the entry on disk. The kernel drops a lock when its holder exits, even
killed, so a crashed compiler never blocks the others. A lock file exists only while held (a
killed holder leaves an empty one behind, which the next taker reuses). Where ``fcntl`` is missing (Windows) there is
no lock: each process compiles, the entries are still written atomically.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exclusive"]

if sys.platform == "win32":  # pragma: no cover - no fcntl

    @contextlib.contextmanager
    def exclusive(path: Path) -> Iterator[None]:
        """No lock on Windows."""
        yield

else:
    import fcntl

    @contextlib.contextmanager
    def exclusive(path: Path) -> Iterator[None]:
        """Hold an exclusive lock on ``path`` (created, mode 0600) for the ``with`` block;
        blocks until other holders release it. If the file can't be opened, runs unlocked.
        The holder deletes the file before releasing it; a waiter that then gets the lock of a
        deleted (or replaced) file starts over, so no two processes ever hold the lock at once."""
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                yield
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                current = os.stat(path)
            except FileNotFoundError:
                os.close(fd)
                continue
            except OSError:
                os.close(fd)
                yield
                return
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                break
            os.close(fd)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)  # releases the lock
