"""Path resolution inside a sandbox: a guest path, relative to a directory descriptor, becomes a
host directory descriptor and one last component, or is refused.

The resolution is done component by component with ``os.open(..., dir_fd=..., O_NOFOLLOW)``:
no host path string is ever built and handed to the OS, so nothing a concurrent process does
to the tree between two checks (``realpath`` races) can take a lookup outside the sandbox.
Symlinks are followed here, by reading them and resolving their target the same way, with a
depth limit; an absolute target, or ``..`` above the directory the lookup started from, is
``ENOTCAPABLE``, whichever component it is in.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ._constants import Errno, WasiError, errno_from_oserror

__all__ = ["MAX_SYMLINKS", "Resolved", "resolve"]

MAX_SYMLINKS = 40
"""Symlinks followed in one lookup before ``ELOOP`` (Linux's limit)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Resolved:
    """Where a path leads: the last component ``name`` inside the directory ``dir_fd``.

    ``name`` is ``"."`` when the path names the directory itself; ``must_be_dir`` when the path
    ended with ``/``.
    """

    dir_fd: int
    name: str
    must_be_dir: bool


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


@contextlib.contextmanager
def resolve(root_fd: int, path: str, *, follow: bool) -> Iterator[Resolved]:
    """Resolve ``path`` relative to the directory ``root_fd`` (which stays open, owned by the
    caller). The directories opened on the way are closed when the block ends.

    ``follow``: whether a symlink in the last component is followed too. Raises ``WasiError``:
    ``NOTCAPABLE`` for a path that leaves the sandbox, ``NOENT`` for an empty path, ``LOOP``
    past :data:`MAX_SYMLINKS`, ``NOTDIR``/``NOENT`` from the host for missing components.
    """
    if "\0" in path:
        raise WasiError(Errno.INVAL)
    if not path:
        raise WasiError(Errno.NOENT)
    if path.startswith("/"):
        raise WasiError(Errno.NOTCAPABLE)
    stack: list[int] = []  # directories opened below root_fd, innermost last
    try:
        yield _walk(root_fd, stack, path, follow)
    finally:
        for fd in stack:
            os.close(fd)


def _walk(root_fd: int, stack: list[int], path: str, follow: bool) -> Resolved:
    pending = _split(path)
    must_be_dir = path.endswith("/")
    links = 0
    if not pending:
        return Resolved(root_fd, ".", True)
    while True:
        name = pending.pop(0)
        last = not pending
        top = stack[-1] if stack else root_fd
        if name == "..":
            if not stack:
                raise WasiError(Errno.NOTCAPABLE)
            os.close(stack.pop())
            if last:
                return Resolved(stack[-1] if stack else root_fd, ".", True)
            continue
        if last and not (follow or must_be_dir):
            return Resolved(top, name, must_be_dir)
        target = _readlink(top, name)
        if target is not None:
            links += 1
            if links > MAX_SYMLINKS:
                raise WasiError(Errno.LOOP)
            if target.startswith("/"):
                raise WasiError(Errno.NOTCAPABLE)
            if target.endswith("/") and last:
                must_be_dir = True
            pending[:0] = _split(target)
            if not pending:  # a link to "." (or "./")
                return Resolved(stack[-1] if stack else root_fd, ".", True)
            continue
        if last:
            return Resolved(top, name, must_be_dir)
        try:
            stack.append(os.open(name, _DIR_FLAGS, dir_fd=top))
        except OSError as error:
            raise WasiError(errno_from_oserror(error)) from None


def _readlink(dir_fd: int, name: str) -> str | None:
    """The target of ``name`` in ``dir_fd`` if it is a symlink, else ``None`` (also when it does
    not exist: the caller's next step reports that)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
            return None
        raise WasiError(errno_from_oserror(error)) from None
