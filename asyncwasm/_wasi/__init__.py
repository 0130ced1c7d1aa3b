"""WASI preview1 (``wasi_snapshot_preview1``) in Python over asyncwasm's public objects.

One job per module: ``_constants`` (numbers, struct layouts), ``_sandbox`` (path resolution
that nothing escapes), ``_fdtable`` (descriptors), ``_streams`` (stdio and the blocking
interface), ``_syscalls`` (the functions), ``_wasi`` (the public class).
"""

from ._wasi import WASI, ReadOnlyDir

__all__ = ["WASI", "ReadOnlyDir"]
