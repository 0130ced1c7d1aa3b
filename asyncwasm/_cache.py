"""The compile caches of a Runtime: a size-bounded in-memory LRU and an opt-in on-disk store.

On-disk entries are native engine artifacts, which engines load blindly (a truncated wasmer
artifact crashes the process), so nothing is handed to an engine before the whole entry has
been checked:

* the file lives in a directory only its owner can enter (mode 0700, owned by this user);
* it is written to a temporary file (mode 0600) and renamed into place, so a reader never sees a
  half-written entry under the final name;
* its header names the format version, the engine's ``cache_key()`` (engine, version,
  configuration, host CPU) and the sha256 of the wasm bytes, and carries the length and sha256
  of the payload (the artifact, and a pickle of the module's decoded sections, which spares
  decoding the wasm again), all re-checked on every read. Anyone who could write a valid entry
  could as well plant native code in it: hence the private directory.

An entry that fails any check (truncated, flipped, written by another engine or version) is
deleted and counted as discarded; the caller compiles afresh.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import struct
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final, Generic, NamedTuple, TypeVar

__all__ = ["CacheInfo", "CorruptEntry", "DiskCache", "MemoryCache"]

_log = logging.getLogger("asyncwasm")

K = TypeVar("K")
V = TypeVar("V")


class CacheInfo(NamedTuple):
    """Counters of one Runtime's compile service (``Runtime.cache_info()``)."""

    compiles: int
    """Compilations actually run (in a worker thread or process)."""
    memory_hits: int
    """``compile`` calls answered from the in-memory cache."""
    disk_hits: int
    """Compilations avoided by loading a verified artifact from ``cache_dir``."""
    disk_discarded: int
    """On-disk entries found corrupt or foreign, deleted and recompiled."""
    joined: int
    """``compile`` calls that shared a compilation already in flight (single-flight)."""
    entries: int
    """Entries in the in-memory cache now."""
    size: int
    """Their total size in bytes (as the cache charges them)."""
    max_size: int
    """The in-memory cache's bound in bytes (``Runtime(cache_size=...)``)."""


class MemoryCache(Generic[K, V]):
    """A thread-safe LRU bounded by the total of the sizes its entries are charged.

    An entry larger than the whole bound is not kept. ``max_size=0`` keeps nothing.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"cache_size must be >= 0, not {max_size}")
        self.max_size = max_size
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
            if size > self.max_size:
                return
            self._entries[key] = (value, size)
            self._size += size
            while self._size > self.max_size:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size -= evicted

    def discard(self, key: K) -> None:
        """Forget ``key``'s entry, if any."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size


_MAGIC: Final = b"asyncwasm artifact\n\x00v2"
# magic, len(engine key), sha256(wasm), payload length, sha256(payload), len(extra); then the
# key and the payload: extra (the pickled ModuleInfo), then the artifact.
_HEADER: Final = struct.Struct(f"<{len(_MAGIC)}sH32sQ32sQ")
_SUFFIX: Final = ".artifact"


class DiskCache:
    """Verified native artifacts in ``directory``, keyed by the wasm bytes and the engine key.

    All methods do blocking file I/O: call them from a worker thread.
    """

    def __init__(self, directory: str | os.PathLike[str], engine_key: str) -> None:
        self.directory = Path(directory).expanduser()
        self.engine_key = engine_key
        self._key_bytes = engine_key.encode()
        _make_private_dir(self.directory)

    def path_for(self, digest: bytes) -> Path:
        """Where the entry for wasm bytes of sha256 ``digest`` lives."""
        name = hashlib.sha256(self._key_bytes + b"\0" + digest).hexdigest()
        return self.directory / f"{name}{_SUFFIX}"

    def load(self, digest: bytes) -> tuple[bytes, bytes] | None:
        """The verified ``(artifact, extra)`` for ``digest``; ``None`` when there is no entry.
        A corrupt or foreign entry is deleted, then ``CorruptEntry`` is raised."""
        path = self.path_for(digest)
        try:
            data = self._read(path)
        except FileNotFoundError:
            return None
        except (OSError, CorruptEntry) as error:
            _log.warning("asyncwasm: discarding unreadable cache entry %s: %s", path, error)
            self._discard(path)
            raise CorruptEntry(str(error)) from None
        try:
            return self._verify(data, digest)
        except CorruptEntry as error:
            _log.warning("asyncwasm: discarding cache entry %s: %s", path, error)
            self._discard(path)
            raise

    def _read(self, path: Path) -> bytes:
        """The entry's bytes, read so that nothing planted under its name can hang or flood us.

        ``O_NOFOLLOW`` refuses a symlink (to ``/dev/zero``, say); ``O_NONBLOCK`` makes opening a
        FIFO return at once instead of waiting for a writer; the open file must then be a regular
        file of ours, and no more is read than a valid entry's header says it holds (a huge
        sparse file is refused after reading its header)."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise CorruptEntry("a symbolic link, not a file") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CorruptEntry("not a regular file")
            if st.st_uid != os.getuid():
                raise CorruptEntry("owned by another user")
            head = _read_exactly(fd, _HEADER.size)
            if len(head) < _HEADER.size:
                raise CorruptEntry("truncated header")
            _, key_len, _, art_len, _, _ = _HEADER.unpack(head)
            expected = _HEADER.size + key_len + art_len
            if key_len != len(self._key_bytes) or st.st_size != expected:
                raise CorruptEntry(f"{st.st_size} bytes where its header announces {expected}")
            data = head + _read_exactly(fd, expected - _HEADER.size)
            if len(data) != expected:
                raise CorruptEntry("truncated")
            return data
        finally:
            os.close(fd)

    def _verify(self, data: bytes, digest: bytes) -> tuple[bytes, bytes]:
        if len(data) < _HEADER.size:
            raise CorruptEntry("truncated header")
        magic, key_len, wasm_digest, art_len, art_digest, extra_len = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise CorruptEntry("not an asyncwasm artifact of this format version")
        key_end = _HEADER.size + key_len
        if data[_HEADER.size : key_end] != self._key_bytes:
            raise CorruptEntry("made by another engine, version or configuration")
        if wasm_digest != digest:
            raise CorruptEntry("made from other wasm bytes")
        if len(data) - key_end != art_len:
            raise CorruptEntry(f"artifact is {len(data) - key_end} bytes, header says {art_len}")
        payload = memoryview(data)[key_end:]
        if hashlib.sha256(payload).digest() != art_digest:
            raise CorruptEntry("checksum mismatch")
        if extra_len > art_len:
            raise CorruptEntry("bad extra length")
        return bytes(payload[extra_len:]), bytes(payload[:extra_len])

    def store(self, digest: bytes, artifact: bytes, extra: bytes = b"") -> None:
        """Write the entry atomically (temporary file, then rename). Failures are logged, never
        raised: the cache is an optimisation."""
        path = self.path_for(digest)
        checksum = hashlib.sha256(extra)
        checksum.update(artifact)
        header = _HEADER.pack(
            _MAGIC,
            len(self._key_bytes),
            digest,
            len(extra) + len(artifact),
            checksum.digest(),
            len(extra),
        )
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(self._key_bytes)
                f.write(extra)
                f.write(artifact)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as error:
            _log.warning("asyncwasm: could not write cache entry %s: %s", path, error)
        finally:
            if tmp is not None:
                with _suppress_os_error():
                    os.unlink(tmp)

    def discard(self, digest: bytes) -> None:
        """Delete the entry for ``digest``, if any."""
        self._discard(self.path_for(digest))

    @staticmethod
    def _discard(path: Path) -> None:
        with _suppress_os_error():
            path.unlink()


def _read_exactly(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes from ``fd`` (fewer only at end of file)."""
    parts: list[bytes] = []
    while n > 0:
        part = os.read(fd, min(n, 1 << 24))
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


class CorruptEntry(Exception):
    """An on-disk entry that must not be loaded."""


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, value: object, tb: object) -> bool:
        return isinstance(value, OSError)


def _make_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or check an existing one: it must be a directory owned by
    this user; group and other permissions are removed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"cache_dir {str(path)!r} is not a directory")
    if st.st_uid != os.getuid():
        raise PermissionError(
            f"cache_dir {str(path)!r} belongs to another user; asyncwasm loads native code "
            "from it, so it must be a directory of your own"
        )
    if st.st_mode & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
