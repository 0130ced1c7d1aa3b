"""The ``wasi_snapshot_preview1`` functions, written once for both ways of running a program.

Each syscall reads its arguments from the guest's memory and answers with an errno. Those that
may block (``fd_read``, ``fd_write``, ``poll_oneoff``) are generators yielding a request of
``_streams`` (see there); the others are plain methods. Arguments arrive as the engine gives
them (i32 and i64 as signed ints) and are made unsigned by :data:`SIGNATURES`.
"""

from __future__ import annotations

import contextlib
import errno as host_errno
import fcntl
import os
import stat
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ._constants import (
    DIRENT,
    EVENT,
    FDSTAT,
    FILESTAT,
    IOVEC,
    PRESTAT,
    RIGHTS_ALL,
    SUBSCRIPTION,
    Clock,
    Errno,
    EventType,
    FdFlags,
    Filetype,
    Fstflags,
    OFlags,
    Rights,
    WasiError,
    Whence,
    errno_from_oserror,
)
from ._fdtable import Entry, FdTable, filetype_of
from ._sandbox import Resolved, resolve
from ._streams import Read, Sleep, Stdin, Syscall, Write

__all__ = ["BLOCKING", "DIR_RIGHTS", "FILE_RIGHTS", "SIGNATURES", "ProcExit", "Syscalls"]

# Parameters of each import: "p" a u32 (pointer, size, fd, flags), "U" a u64, "S" a signed i64.
SIGNATURES: Mapping[str, str] = {
    "args_get": "pp",
    "args_sizes_get": "pp",
    "environ_get": "pp",
    "environ_sizes_get": "pp",
    "clock_res_get": "pp",
    "clock_time_get": "pUp",
    "fd_advise": "pUUp",
    "fd_allocate": "pUU",
    "fd_close": "p",
    "fd_datasync": "p",
    "fd_fdstat_get": "pp",
    "fd_fdstat_set_flags": "pp",
    "fd_fdstat_set_rights": "pUU",
    "fd_filestat_get": "pp",
    "fd_filestat_set_size": "pU",
    "fd_filestat_set_times": "pUUp",
    "fd_pread": "pppUp",
    "fd_prestat_get": "pp",
    "fd_prestat_dir_name": "ppp",
    "fd_pwrite": "pppUp",
    "fd_read": "pppp",
    "fd_readdir": "pppUp",
    "fd_renumber": "pp",
    "fd_seek": "pSpp",
    "fd_sync": "p",
    "fd_tell": "pp",
    "fd_write": "pppp",
    "path_create_directory": "ppp",
    "path_filestat_get": "ppppp",
    "path_filestat_set_times": "ppppUUp",
    "path_link": "ppppppp",
    "path_open": "pppppUUpp",
    "path_readlink": "pppppp",
    "path_remove_directory": "ppp",
    "path_rename": "pppppp",
    "path_symlink": "ppppp",
    "path_unlink_file": "ppp",
    "poll_oneoff": "pppp",
    "proc_exit": "p",
    "proc_raise": "p",
    "sched_yield": "",
    "random_get": "pp",
    "sock_accept": "ppp",
    "sock_recv": "pppppp",
    "sock_send": "ppppp",
    "sock_shutdown": "pp",
}

BLOCKING = frozenset({"fd_read", "fd_write", "poll_oneoff"})
"""The syscalls that are generators (they may wait)."""

_MASKS = {"p": 0xFFFFFFFF, "U": 0xFFFFFFFFFFFFFFFF}
_MAX_IO = 1 << 31


class ProcExit(Exception):
    """Raised by ``proc_exit`` to unwind the wasm program; ``WASI.start`` catches it."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def unsigned_args(name: str, args: Sequence[int]) -> list[int]:
    """The arguments of ``name`` as the witx types mean them (u32/u64 unsigned, s64 signed)."""
    kinds = SIGNATURES[name]
    if len(args) != len(kinds):
        raise TypeError(f"wasi_snapshot_preview1.{name} takes {len(kinds)} arguments")
    return [a if k == "S" else a & _MASKS[k] for a, k in zip(args, kinds, strict=True)]


def _filestat(st: os.stat_result) -> tuple[int, ...]:
    return (
        st.st_dev,
        st.st_ino,
        filetype_of(st.st_mode),
        st.st_nlink,
        st.st_size,
        st.st_atime_ns,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


DIR_RIGHTS = RIGHTS_ALL & ~(
    Rights.FD_READ
    | Rights.FD_SEEK
    | Rights.FD_TELL
    | Rights.FD_WRITE
    | Rights.FD_ALLOCATE
    | Rights.FD_FILESTAT_SET_SIZE
    | Rights.POLL_FD_READWRITE
    | Rights.SOCK_SHUTDOWN
    | Rights.SOCK_ACCEPT
)
"""What a directory descriptor can have: no reading, writing or seeking of data."""
_OPEN_BASE = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_WRITE_RIGHTS = Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE
FILE_RIGHTS = RIGHTS_ALL & ~(
    Rights.PATH_CREATE_DIRECTORY
    | Rights.PATH_CREATE_FILE
    | Rights.PATH_LINK_SOURCE
    | Rights.PATH_LINK_TARGET
    | Rights.PATH_OPEN
    | Rights.FD_READDIR
    | Rights.PATH_READLINK
    | Rights.PATH_RENAME_SOURCE
    | Rights.PATH_RENAME_TARGET
    | Rights.PATH_FILESTAT_GET
    | Rights.PATH_FILESTAT_SET_SIZE
    | Rights.PATH_FILESTAT_SET_TIMES
    | Rights.PATH_SYMLINK
    | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE
)
"""What a file descriptor can have: no path operations or listing."""


@contextlib.contextmanager
def _oserrors() -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise WasiError(errno_from_oserror(error)) from None


class Syscalls:
    """The preview1 functions over one guest memory, fd table, stdin and environment.

    ``memory`` is a callable giving the guest memory's current buffer (taken afresh for every
    call: the program may have grown its memory since).
    """

    def __init__(
        self,
        memory: Callable[[], memoryview],
        fds: FdTable,
        stdin: Stdin,
        args: Sequence[bytes],
        env: Sequence[bytes],
    ) -> None:
        self._memory = memory
        self._view: memoryview | None = None
        self._fds = fds
        self._stdin = stdin
        self._args = args
        self._env = env

    # -- guest memory -----------------------------------------------------------------------
    def begin(self) -> None:
        """Called before each syscall, and after each wait inside one: the memory may have
        grown since, so its buffer is taken afresh (once, not at every access: each take asks
        the engine for the memory's size)."""
        self._view = None

    def _mem(self) -> memoryview:
        view = self._view
        if view is None:
            view = self._view = self._memory()
        return view

    def _bytes(self, ptr: int, size: int) -> memoryview:
        mem = self._mem()
        if ptr + size > len(mem):
            raise WasiError(Errno.FAULT)
        return mem[ptr : ptr + size]

    def _string(self, ptr: int, size: int) -> str:
        try:
            return bytes(self._bytes(ptr, size)).decode("utf-8")
        except UnicodeDecodeError:
            raise WasiError(Errno.ILSEQ) from None

    def _pack(self, fmt: struct.Struct | str, ptr: int, *values: int) -> None:
        try:
            if isinstance(fmt, str):
                struct.pack_into(fmt, self._mem(), ptr, *values)
            else:
                fmt.pack_into(self._mem(), ptr, *values)
        except struct.error:
            raise WasiError(Errno.FAULT) from None

    def _unpack(self, fmt: struct.Struct, ptr: int) -> tuple[Any, ...]:
        try:
            return fmt.unpack_from(self._mem(), ptr)
        except struct.error:
            raise WasiError(Errno.FAULT) from None

    def _iovecs(self, ptr: int, count: int) -> list[memoryview]:
        mem = self._mem()
        views = []
        total = 0
        for i in range(count):
            buf, size = self._unpack(IOVEC, ptr + 8 * i)
            if buf + size > len(mem):
                raise WasiError(Errno.FAULT)
            total += size
            if total > _MAX_IO:
                raise WasiError(Errno.INVAL)
            views.append(mem[buf : buf + size])
        return views

    # -- args, environment, clocks, random ------------------------------------------------------
    def _strings_get(self, items: Sequence[bytes], ptrs: int, buf: int) -> int:
        for i, item in enumerate(items):
            self._pack("<I", ptrs + 4 * i, buf)
            self._bytes(buf, len(item) + 1)[:] = item + b"\0"
            buf += len(item) + 1
        return 0

    def _strings_sizes(self, items: Sequence[bytes], count_ptr: int, size_ptr: int) -> int:
        self._pack("<I", count_ptr, len(items))
        self._pack("<I", size_ptr, sum(len(i) + 1 for i in items))
        return 0

    def args_get(self, argv: int, buf: int) -> int:
        return self._strings_get(self._args, argv, buf)

    def args_sizes_get(self, count: int, size: int) -> int:
        return self._strings_sizes(self._args, count, size)

    def environ_get(self, environ: int, buf: int) -> int:
        return self._strings_get(self._env, environ, buf)

    def environ_sizes_get(self, count: int, size: int) -> int:
        return self._strings_sizes(self._env, count, size)

    @staticmethod
    def _clock(clock_id: int) -> int:
        if clock_id == Clock.REALTIME:
            return time.CLOCK_REALTIME
        if clock_id == Clock.MONOTONIC:
            return time.CLOCK_MONOTONIC
        if clock_id == Clock.PROCESS_CPUTIME_ID:
            return time.CLOCK_PROCESS_CPUTIME_ID
        if clock_id == Clock.THREAD_CPUTIME_ID:
            return time.CLOCK_THREAD_CPUTIME_ID
        raise WasiError(Errno.INVAL)

    def clock_res_get(self, clock_id: int, ptr: int) -> int:
        res = time.clock_getres(self._clock(clock_id))
        self._pack("<Q", ptr, max(1, round(res * 1e9)))
        return 0

    def clock_time_get(self, clock_id: int, precision: int, ptr: int) -> int:
        self._pack("<Q", ptr, time.clock_gettime_ns(self._clock(clock_id)))
        return 0

    def random_get(self, buf: int, size: int) -> int:
        self._bytes(buf, size)[:] = os.urandom(size)
        return 0

    def sched_yield(self) -> int:
        return 0

    def proc_exit(self, code: int) -> int:
        raise ProcExit(code)

    def proc_raise(self, sig: int) -> int:
        return Errno.NOTSUP

    # -- descriptors ------------------------------------------------------------------------
    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> int:
        entry = self._fds.get(fd)
        if advice > 5:
            return Errno.INVAL
        if entry.is_dir:
            return Errno.BADF
        return 0

    def fd_allocate(self, fd: int, offset: int, length: int) -> int:
        host = self._file_fd(fd, rights=Rights.FD_ALLOCATE, change=True)
        with _oserrors():
            size = os.fstat(host).st_size
            if offset + length > size:
                os.ftruncate(host, offset + length)
        return 0

    def fd_close(self, fd: int) -> int:
        with _oserrors():
            self._fds.close(fd)
        return 0

    def fd_datasync(self, fd: int) -> int:
        with _oserrors():
            os.fdatasync(self._file_fd(fd))
        return 0

    def fd_sync(self, fd: int) -> int:
        entry = self._fds.get(fd)
        if entry.host_fd is None:
            return Errno.INVAL
        with _oserrors():
            os.fsync(entry.host_fd)
        return 0

    def fd_fdstat_get(self, fd: int, ptr: int) -> int:
        entry = self._fds.get(fd)
        flags = entry.fdflags
        if entry.host_fd is not None and not entry.is_dir:
            # APPEND and NONBLOCK as the host descriptor has them now.
            with _oserrors():
                host = _fl(entry.host_fd)
            flags &= ~(FdFlags.APPEND | FdFlags.NONBLOCK)
            flags |= FdFlags.APPEND if host & os.O_APPEND else 0
            flags |= FdFlags.NONBLOCK if host & os.O_NONBLOCK else 0
        self._pack(FDSTAT, ptr, entry.filetype, flags, entry.rights_base, entry.rights_inheriting)
        return 0

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        entry = self._fds.get(fd)
        if entry.host_fd is None:
            entry.fdflags = flags
            return 0
        if flags & ~(FdFlags.APPEND | FdFlags.NONBLOCK):
            return Errno.NOTSUP
        with _oserrors():
            current = fcntl.fcntl(entry.host_fd, fcntl.F_GETFL)
            current &= ~(os.O_APPEND | os.O_NONBLOCK)
            if flags & FdFlags.APPEND:
                current |= os.O_APPEND
            if flags & FdFlags.NONBLOCK:
                current |= os.O_NONBLOCK
            fcntl.fcntl(entry.host_fd, fcntl.F_SETFL, current)
        entry.fdflags = flags
        return 0

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> int:
        entry = self._fds.get(fd)
        if base & ~entry.rights_base or inheriting & ~entry.rights_inheriting:
            return Errno.NOTCAPABLE
        entry.rights_base, entry.rights_inheriting = base, inheriting
        return 0

    def fd_filestat_get(self, fd: int, ptr: int) -> int:
        entry = self._fds.get(fd)
        if entry.host_fd is None:
            self._pack(FILESTAT, ptr, 0, 0, Filetype.CHARACTER_DEVICE, 1, 0, 0, 0, 0)
            return 0
        with _oserrors():
            st = os.fstat(entry.host_fd)
        self._pack(FILESTAT, ptr, *_filestat(st))
        return 0

    def fd_filestat_set_size(self, fd: int, size: int) -> int:
        with _oserrors():
            os.ftruncate(self._file_fd(fd, rights=Rights.FD_FILESTAT_SET_SIZE, change=True), size)
        return 0

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> int:
        host = self._fds.host_fd(fd)
        if self._fds.get(fd).read_only:
            return Errno.ROFS
        with _oserrors():
            os.utime(host, ns=_times(os.fstat(host), atim, mtim, flags))
        return 0

    def fd_prestat_get(self, fd: int, ptr: int) -> int:
        entry = self._fds.get(fd)
        if entry.preopen is None:
            return Errno.BADF
        self._pack(PRESTAT, ptr, 0, len(entry.preopen.encode()))
        return 0

    def fd_prestat_dir_name(self, fd: int, ptr: int, size: int) -> int:
        entry = self._fds.get(fd)
        if entry.preopen is None:
            return Errno.BADF
        name = entry.preopen.encode()
        if size < len(name):
            return Errno.NAMETOOLONG
        self._bytes(ptr, len(name))[:] = name
        return 0

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> int:
        host = self._file_fd(fd, seekable=True, rights=Rights.FD_READ | Rights.FD_SEEK)
        views = self._iovecs(iovs, count)
        with _oserrors():
            n = os.preadv(host, views, offset) if views else 0
        self._pack("<I", nread, n)
        return 0

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> int:
        host = self._file_fd(fd, seekable=True, rights=Rights.FD_WRITE | Rights.FD_SEEK)
        views = self._iovecs(iovs, count)
        with _oserrors():
            if _fl(host) & os.O_APPEND:
                # POSIX pwrite on an O_APPEND file appends on Linux; WASI means the offset.
                n = _pwrite_at(host, views, offset)
            else:
                n = os.pwritev(host, views, offset) if views else 0
        self._pack("<I", nwritten, n)
        return 0

    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> Syscall:
        entry = self._entry(fd, Rights.FD_READ)
        views = self._iovecs(iovs, count)
        if entry.host_fd is None:
            if entry.stream != 0:
                return Errno.BADF
            total = 0
            for view in views:
                if not view:
                    continue
                data: bytes = yield Read(len(view))
                self.begin()
                view[: len(data)] = data
                total += len(data)
                if len(data) < len(view) or self._stdin.buffered == 0:
                    break
            self._pack("<I", nread, total)
            return 0
        if entry.is_dir:
            return Errno.ISDIR
        with _oserrors():
            n = os.readv(entry.host_fd, views) if views else 0
        self._pack("<I", nread, n)
        return 0

    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> Syscall:
        entry = self._entry(fd, Rights.FD_WRITE)
        views = self._iovecs(iovs, count)
        if entry.host_fd is None:
            if entry.stream not in (1, 2):
                return Errno.BADF
            data = b"".join(views)
            if data:
                yield Write(entry.stream, data)
                self.begin()
            self._pack("<I", nwritten, len(data))
            return 0
        if entry.is_dir:
            return Errno.BADF
        with _oserrors():
            n = os.writev(entry.host_fd, views) if views else 0
        self._pack("<I", nwritten, n)
        return 0

    def fd_readdir(self, fd: int, buf: int, size: int, cookie: int, used_ptr: int) -> int:
        entry = self._fds.get(fd)
        if not entry.is_dir or entry.host_fd is None:
            return Errno.NOTDIR
        if entry.listing is None or cookie == 0:
            entry.listing = self._list(entry.host_fd)
        out = self._bytes(buf, size)
        used = 0
        for index in range(cookie, len(entry.listing)):
            name, ino, ftype = entry.listing[index]
            raw = name.encode("utf-8", "surrogateescape")
            record = DIRENT.pack(index + 1, ino, len(raw), ftype) + raw
            take = min(len(record), size - used)
            out[used : used + take] = record[:take]
            used += take
            if used >= size:
                break
        self._pack("<I", used_ptr, used)
        return 0

    @staticmethod
    def _list(host_fd: int) -> list[tuple[str, int, Filetype]]:
        with _oserrors():
            own = os.stat(host_fd)
            listing = [(".", own.st_ino, Filetype.DIRECTORY), ("..", 0, Filetype.DIRECTORY)]
            with os.scandir(host_fd) as it:
                for item in it:
                    try:
                        ftype = filetype_of(item.stat(follow_symlinks=False).st_mode)
                    except OSError:
                        ftype = Filetype.UNKNOWN
                    listing.append((item.name, item.inode(), ftype))
        return listing

    def fd_renumber(self, fd: int, to: int) -> int:
        with _oserrors():
            self._fds.renumber(fd, to)
        return 0

    def fd_seek(self, fd: int, delta: int, whence: int, ptr: int) -> int:
        if whence not in (Whence.SET, Whence.CUR, Whence.END):
            return Errno.INVAL
        if self._fds.get(fd).is_dir:
            return Errno.BADF
        needed = Rights.FD_TELL if delta == 0 and whence == Whence.CUR else Rights.FD_SEEK
        host = self._file_fd(fd, seekable=True, rights=needed)
        with _oserrors():
            pos = os.lseek(host, delta, (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)[whence])
        self._pack("<Q", ptr, pos)
        return 0

    def fd_tell(self, fd: int, ptr: int) -> int:
        host = self._file_fd(fd, seekable=True, rights=Rights.FD_TELL)
        with _oserrors():
            pos = os.lseek(host, 0, os.SEEK_CUR)
        self._pack("<Q", ptr, pos)
        return 0

    def _entry(self, fd: int, rights: int) -> Entry:
        """The entry for ``fd`` if it has all ``rights`` (else ``ENOTCAPABLE``)."""
        entry = self._fds.get(fd)
        if entry.rights_base & rights != rights:
            raise WasiError(Errno.NOTCAPABLE)
        return entry

    def _file_fd(
        self, fd: int, *, seekable: bool = False, rights: int = 0, change: bool = False
    ) -> int:
        """The host descriptor of the file ``fd``, which has ``rights``; ``change``: the call
        changes the file (``EROFS`` under a read-only preopen)."""
        entry = self._entry(fd, rights)
        if entry.host_fd is None:
            raise WasiError(Errno.SPIPE if seekable else Errno.BADF)
        if entry.is_dir:
            raise WasiError(Errno.ISDIR if not seekable else Errno.BADF)
        if change and entry.read_only:
            raise WasiError(Errno.ROFS)
        return entry.host_fd

    # -- paths ------------------------------------------------------------------------------
    def _resolve(
        self, fd: int, ptr: int, size: int, *, follow: bool, change: bool = False
    ) -> contextlib.AbstractContextManager[Resolved]:
        """Resolve a path under the directory ``fd``; ``change``: the operation changes the tree
        there (refused with ``EROFS`` under a read-only preopen)."""
        root = self._fds.directory(fd, change=change)
        return resolve(root, self._string(ptr, size), follow=follow)

    def path_create_directory(self, fd: int, ptr: int, size: int) -> int:
        with self._resolve(fd, ptr, size, follow=False, change=True) as r, _oserrors():
            if r.name == ".":
                return Errno.EXIST
            os.mkdir(r.name, dir_fd=r.dir_fd)
        return 0

    def path_filestat_get(self, fd: int, flags: int, ptr: int, size: int, buf: int) -> int:
        with self._resolve(fd, ptr, size, follow=bool(flags & 1)) as r, _oserrors():
            st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
            if r.must_be_dir and not stat.S_ISDIR(st.st_mode):
                return Errno.NOTDIR
        self._pack(FILESTAT, buf, *_filestat(st))
        return 0

    def path_filestat_set_times(
        self, fd: int, flags: int, ptr: int, size: int, atim: int, mtim: int, fst: int
    ) -> int:
        with self._resolve(fd, ptr, size, follow=bool(flags & 1), change=True) as r, _oserrors():
            st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
            times = _times(st, atim, mtim, fst)
            os.utime(r.name, ns=times, dir_fd=r.dir_fd, follow_symlinks=False)
        return 0

    def path_link(
        self,
        old_fd: int,
        old_flags: int,
        old_ptr: int,
        old_size: int,
        new_fd: int,
        new_ptr: int,
        new_size: int,
    ) -> int:
        with (
            # Both sides: a link made elsewhere to a read-only file would let it be written.
            self._resolve(
                old_fd, old_ptr, old_size, follow=bool(old_flags & 1), change=True
            ) as old,
            self._resolve(new_fd, new_ptr, new_size, follow=False, change=True) as new,
            _oserrors(),
        ):
            # A trailing slash goes to the host as it is: Linux's answers are the WASI ones.
            os.link(
                old.name + "/" if old.must_be_dir else old.name,
                new.name + "/" if new.must_be_dir else new.name,
                src_dir_fd=old.dir_fd,
                dst_dir_fd=new.dir_fd,
                follow_symlinks=False,
            )
        return 0

    def path_open(
        self,
        fd: int,
        lookup: int,
        ptr: int,
        size: int,
        oflags: int,
        base: int,
        inheriting: int,
        fdflags: int,
        out: int,
    ) -> int:
        needed = Rights.PATH_OPEN
        if oflags & OFlags.CREAT:
            needed |= Rights.PATH_CREATE_FILE
        if oflags & OFlags.TRUNC:
            needed |= Rights.PATH_FILESTAT_SET_SIZE
        parent = self._entry(fd, needed)
        write = bool(base & _WRITE_RIGHTS) or bool(oflags & OFlags.TRUNC)
        change = write or bool(oflags & OFlags.CREAT)
        with self._resolve(fd, ptr, size, follow=bool(lookup & 1), change=change) as r, _oserrors():
            flags = _OPEN_BASE
            want_dir = bool(oflags & OFlags.DIRECTORY) or r.must_be_dir
            read = bool(base & (Rights.FD_READ | Rights.FD_READDIR))
            if want_dir:
                if base & Rights.FD_WRITE:
                    return Errno.ISDIR
                flags |= os.O_DIRECTORY
            if oflags & OFlags.CREAT:
                flags |= os.O_CREAT
            if oflags & OFlags.EXCL:
                flags |= os.O_EXCL
            if oflags & OFlags.TRUNC:
                flags |= os.O_TRUNC
            if fdflags & FdFlags.APPEND:
                flags |= os.O_APPEND
            if fdflags & FdFlags.NONBLOCK:
                flags |= os.O_NONBLOCK
            if fdflags & (FdFlags.SYNC | FdFlags.RSYNC):
                flags |= os.O_SYNC
            if fdflags & FdFlags.DSYNC:
                flags |= os.O_DSYNC
            if write and not want_dir:
                flags |= os.O_RDWR if read else os.O_WRONLY
            if r.name == "." and flags & os.O_CREAT and flags & os.O_EXCL:
                return Errno.EXIST
            try:
                host = os.open(r.name, flags, 0o666, dir_fd=r.dir_fd)
            except IsADirectoryError:
                if not write or oflags & OFlags.CREAT:
                    raise
                return Errno.ISDIR
            except OSError as error:
                # A symlink met with O_NOFOLLOW: Linux says ELOOP, or ENOTDIR with O_DIRECTORY.
                if error.errno == host_errno.ENOTDIR and want_dir:
                    st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        return Errno.LOOP
                raise
            try:
                ftype = filetype_of(os.fstat(host).st_mode)
            except OSError:
                os.close(host)
                raise
        rights = base & parent.rights_inheriting
        rights &= DIR_RIGHTS if ftype == Filetype.DIRECTORY else FILE_RIGHTS
        new = Entry(
            ftype,
            host_fd=host,
            fdflags=fdflags,
            rights_base=rights,
            rights_inheriting=inheriting & parent.rights_inheriting,
            read_only=parent.read_only,
        )
        self._pack("<I", out, self._fds.add(new))
        return 0

    def path_readlink(self, fd: int, ptr: int, size: int, buf: int, buf_len: int, used: int) -> int:
        with self._resolve(fd, ptr, size, follow=False) as r, _oserrors():
            target = os.readlink(r.name, dir_fd=r.dir_fd).encode("utf-8", "surrogateescape")
        n = min(len(target), buf_len)
        self._bytes(buf, n)[:] = target[:n]
        self._pack("<I", used, n)
        return 0

    def path_remove_directory(self, fd: int, ptr: int, size: int) -> int:
        with self._resolve(fd, ptr, size, follow=False, change=True) as r, _oserrors():
            if r.name == ".":
                return Errno.INVAL
            os.rmdir(r.name, dir_fd=r.dir_fd)
        return 0

    def path_rename(
        self, fd: int, old_ptr: int, old_size: int, new_fd: int, new_ptr: int, new_size: int
    ) -> int:
        with (
            self._resolve(fd, old_ptr, old_size, follow=False, change=True) as old,
            self._resolve(new_fd, new_ptr, new_size, follow=False, change=True) as new,
            _oserrors(),
        ):
            if old.must_be_dir or new.must_be_dir:
                st = os.stat(old.name, dir_fd=old.dir_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    return Errno.NOTDIR
            os.rename(old.name, new.name, src_dir_fd=old.dir_fd, dst_dir_fd=new.dir_fd)
        return 0

    def path_symlink(
        self, old_ptr: int, old_size: int, fd: int, new_ptr: int, new_size: int
    ) -> int:
        target = self._string(old_ptr, old_size)
        if target.startswith("/"):
            return Errno.NOTCAPABLE
        with self._resolve(fd, new_ptr, new_size, follow=False, change=True) as r, _oserrors():
            if r.must_be_dir:
                # "link/": POSIX refuses a trailing slash on a symlink's own name.
                os.lstat(r.name, dir_fd=r.dir_fd)
                return Errno.EXIST
            os.symlink(target, r.name, dir_fd=r.dir_fd)
        return 0

    def path_unlink_file(self, fd: int, ptr: int, size: int) -> int:
        with self._resolve(fd, ptr, size, follow=False, change=True) as r, _oserrors():
            if r.must_be_dir:
                st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
                return Errno.ISDIR if stat.S_ISDIR(st.st_mode) else Errno.NOTDIR
            os.unlink(r.name, dir_fd=r.dir_fd)
        return 0

    # -- poll -------------------------------------------------------------------------------
    def poll_oneoff(self, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> Syscall:
        if count == 0:
            return Errno.INVAL
        subs = [self._unpack(SUBSCRIPTION, in_ptr + 48 * i) for i in range(count)]
        events: list[tuple[int, int, int, int, int]] = []
        clocks: list[tuple[float, int]] = []  # (seconds to wait, userdata)
        for userdata, tag, ident, timeout, _precision, flags in subs:
            if tag == EventType.CLOCK:
                try:
                    clock = self._clock(ident)
                except WasiError as error:
                    events.append((userdata, error.errno, tag, 0, 0))
                    continue
                wait = timeout
                if flags & 1:  # absolute time
                    wait = timeout - time.clock_gettime_ns(clock)
                clocks.append((max(0, wait) / 1e9, userdata))
            elif tag in (EventType.FD_READ, EventType.FD_WRITE):
                events.append(self._fd_event(userdata, tag, ident))
            else:
                return Errno.INVAL
        if not events and clocks:
            wait = min(w for w, _ in clocks)
            if wait > 0:
                yield Sleep(wait)
                self.begin()
            events = [(u, 0, EventType.CLOCK, 0, 0) for w, u in clocks if w <= wait]
        for i, event in enumerate(events):
            self._pack(EVENT, out_ptr + 32 * i, *event)
        self._pack("<I", nevents_ptr, len(events))
        return 0

    def _fd_event(self, userdata: int, tag: int, fd: int) -> tuple[int, int, int, int, int]:
        if fd not in self._fds:
            return (userdata, Errno.BADF, tag, 0, 0)
        entry = self._fds.get(fd)
        nbytes = 0
        if entry.host_fd is None:
            if tag == EventType.FD_READ and entry.stream == 0:
                nbytes = self._stdin.buffered
        elif tag == EventType.FD_READ and entry.filetype == Filetype.REGULAR_FILE:
            with contextlib.suppress(OSError):
                nbytes = max(
                    0, os.fstat(entry.host_fd).st_size - os.lseek(entry.host_fd, 0, os.SEEK_CUR)
                )
        return (userdata, 0, tag, nbytes, 0)

    # -- sockets: this implementation opens none ----------------------------------------------
    def _not_socket(self, fd: int) -> int:
        self._fds.get(fd)
        return Errno.NOTSOCK

    def sock_accept(self, fd: int, flags: int, out: int) -> int:
        return self._not_socket(fd)

    def sock_recv(self, fd: int, iovs: int, count: int, flags: int, nread: int, oflags: int) -> int:
        return self._not_socket(fd)

    def sock_send(self, fd: int, iovs: int, count: int, flags: int, nwritten: int) -> int:
        return self._not_socket(fd)

    def sock_shutdown(self, fd: int, how: int) -> int:
        return self._not_socket(fd)


def _fl(host_fd: int) -> int:
    return fcntl.fcntl(host_fd, fcntl.F_GETFL)


def _pwrite_at(host_fd: int, views: Sequence[memoryview], offset: int) -> int:
    """pwrite at ``offset`` on a descriptor opened with O_APPEND (which Linux would append to):
    clear O_APPEND for the write and set it back."""
    flags = fcntl.fcntl(host_fd, fcntl.F_GETFL)
    fcntl.fcntl(host_fd, fcntl.F_SETFL, flags & ~os.O_APPEND)
    try:
        return os.pwritev(host_fd, views, offset) if views else 0
    finally:
        fcntl.fcntl(host_fd, fcntl.F_SETFL, flags)


def _times(st: os.stat_result, atim: int, mtim: int, flags: int) -> tuple[int, int]:
    if (flags & Fstflags.ATIM and flags & Fstflags.ATIM_NOW) or (
        flags & Fstflags.MTIM and flags & Fstflags.MTIM_NOW
    ):
        raise WasiError(Errno.INVAL)
    now = time.time_ns()
    a = atim if flags & Fstflags.ATIM else now if flags & Fstflags.ATIM_NOW else st.st_atime_ns
    m = mtim if flags & Fstflags.MTIM else now if flags & Fstflags.MTIM_NOW else st.st_mtime_ns
    return a, m
