"""The guest's file descriptor table: small integers to open host descriptors.

0, 1 and 2 are the standard streams (served by ``_streams``, never host descriptors); 3 and up
are the preopened directories in order, then whatever the guest opens. Every host descriptor in
the table is owned by it and closed by :meth:`FdTable.close_all`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field

from ._constants import RIGHTS_ALL, Errno, Filetype, WasiError

__all__ = ["Entry", "FdTable", "filetype_of"]


def filetype_of(mode: int) -> Filetype:
    """The WASI filetype for a host ``st_mode``."""
    if stat.S_ISREG(mode):
        return Filetype.REGULAR_FILE
    if stat.S_ISDIR(mode):
        return Filetype.DIRECTORY
    if stat.S_ISLNK(mode):
        return Filetype.SYMBOLIC_LINK
    if stat.S_ISCHR(mode):
        return Filetype.CHARACTER_DEVICE
    if stat.S_ISBLK(mode):
        return Filetype.BLOCK_DEVICE
    if stat.S_ISSOCK(mode):
        return Filetype.SOCKET_STREAM
    return Filetype.UNKNOWN


@dataclass
class Entry:
    """One open descriptor.

    ``host_fd`` is ``None`` for a standard stream, whose number (0-2) is ``stream``.
    ``preopen`` is the guest path of a preopened directory. ``read_only``: nothing may be
    changed through this descriptor or any opened beneath it (a read-only preopen's tree).
    ``listing`` caches a directory's entries between ``fd_readdir`` calls (rebuilt when a read
    starts at cookie 0).
    """

    filetype: Filetype
    host_fd: int | None = None
    stream: int = -1
    fdflags: int = 0
    rights_base: int = RIGHTS_ALL
    rights_inheriting: int = RIGHTS_ALL
    preopen: str | None = None
    read_only: bool = False
    listing: list[tuple[str, int, Filetype]] | None = field(default=None, repr=False)

    @property
    def is_dir(self) -> bool:
        return self.filetype == Filetype.DIRECTORY


class FdTable:
    """Descriptor numbers to :class:`Entry`; new numbers are the lowest free ones."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}

    def __contains__(self, fd: int) -> bool:
        return fd in self._entries

    def get(self, fd: int) -> Entry:
        """The entry for ``fd``; ``EBADF`` if there is none."""
        try:
            return self._entries[fd]
        except KeyError:
            raise WasiError(Errno.BADF) from None

    def host_fd(self, fd: int) -> int:
        """The host descriptor behind ``fd``; ``EBADF`` for none, ``ESPIPE``-free callers check
        standard streams themselves."""
        entry = self.get(fd)
        if entry.host_fd is None:
            raise WasiError(Errno.BADF)
        return entry.host_fd

    def directory(self, fd: int, *, change: bool = False) -> int:
        """The host descriptor of the directory ``fd`` (``ENOTDIR`` for another kind); with
        ``change``, for a path operation that changes the tree (``EROFS`` if read-only)."""
        entry = self.get(fd)
        if not entry.is_dir or entry.host_fd is None:
            raise WasiError(Errno.NOTDIR)
        if change and entry.read_only:
            raise WasiError(Errno.ROFS)
        return entry.host_fd

    def add(self, entry: Entry) -> int:
        fd = 0
        while fd in self._entries:
            fd += 1
        self._entries[fd] = entry
        return fd

    def put(self, fd: int, entry: Entry) -> None:
        self._entries[fd] = entry

    def close(self, fd: int) -> None:
        entry = self._entries.pop(fd, None)
        if entry is None:
            raise WasiError(Errno.BADF)
        if entry.host_fd is not None:
            os.close(entry.host_fd)

    def renumber(self, fd: int, to: int) -> None:
        entry = self.get(fd)
        self.get(to)
        if fd == to:
            return
        self.close(to)
        del self._entries[fd]
        self._entries[to] = entry

    def close_all(self) -> None:
        for fd in list(self._entries):
            entry = self._entries.pop(fd)
            if entry.host_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(entry.host_fd)
