"""WASI preview1 numbers and struct layouts (``wasi_snapshot_preview1``, witx of 2020-12).

Only data: the errno values, flag bits, rights and the byte layouts of the structs that the
syscalls read from and write to the guest's memory (little-endian, wasm32 pointers).
"""

from __future__ import annotations

import errno as _host_errno
import struct
from enum import IntEnum

__all__ = [
    "DIRENT",
    "EVENT",
    "FDSTAT",
    "FILESTAT",
    "IOVEC",
    "PRESTAT",
    "RIGHTS_ALL",
    "SUBSCRIPTION",
    "Clock",
    "Errno",
    "EventType",
    "FdFlags",
    "Filetype",
    "Fstflags",
    "OFlags",
    "Rights",
    "WasiError",
    "Whence",
    "errno_from_oserror",
]


class Errno(IntEnum):
    """``errno``: the result of every syscall (0 is success)."""

    SUCCESS = 0
    TOOBIG = 1
    ACCES = 2
    ADDRINUSE = 3
    ADDRNOTAVAIL = 4
    AFNOSUPPORT = 5
    AGAIN = 6
    ALREADY = 7
    BADF = 8
    BADMSG = 9
    BUSY = 10
    CANCELED = 11
    CHILD = 12
    CONNABORTED = 13
    CONNREFUSED = 14
    CONNRESET = 15
    DEADLK = 16
    DESTADDRREQ = 17
    DOM = 18
    DQUOT = 19
    EXIST = 20
    FAULT = 21
    FBIG = 22
    HOSTUNREACH = 23
    IDRM = 24
    ILSEQ = 25
    INPROGRESS = 26
    INTR = 27
    INVAL = 28
    IO = 29
    ISCONN = 30
    ISDIR = 31
    LOOP = 32
    MFILE = 33
    MLINK = 34
    MSGSIZE = 35
    MULTIHOP = 36
    NAMETOOLONG = 37
    NETDOWN = 38
    NETRESET = 39
    NETUNREACH = 40
    NFILE = 41
    NOBUFS = 42
    NODEV = 43
    NOENT = 44
    NOEXEC = 45
    NOLCK = 46
    NOLINK = 47
    NOMEM = 48
    NOMSG = 49
    NOPROTOOPT = 50
    NOSPC = 51
    NOSYS = 52
    NOTCONN = 53
    NOTDIR = 54
    NOTEMPTY = 55
    NOTRECOVERABLE = 56
    NOTSOCK = 57
    NOTSUP = 58
    NOTTY = 59
    NXIO = 60
    OVERFLOW = 61
    OWNERDEAD = 62
    PERM = 63
    PIPE = 64
    PROTO = 65
    PROTONOSUPPORT = 66
    PROTOTYPE = 67
    RANGE = 68
    ROFS = 69
    SPIPE = 70
    SRCH = 71
    STALE = 72
    TIMEDOUT = 73
    TXTBSY = 74
    XDEV = 75
    NOTCAPABLE = 76


class WasiError(Exception):
    """Raised inside the implementation to answer a syscall with ``errno``."""

    def __init__(self, errno: Errno) -> None:
        super().__init__(errno.name)
        self.errno = errno


# Host errno -> WASI errno, by name (the numbers differ between the two; the names don't).
_FROM_HOST: dict[int, Errno] = {
    getattr(_host_errno, "E" + e.name): e
    for e in Errno
    if e.name not in ("SUCCESS", "TOOBIG", "NOTCAPABLE") and hasattr(_host_errno, "E" + e.name)
}
_FROM_HOST[_host_errno.E2BIG] = Errno.TOOBIG
if hasattr(_host_errno, "EOPNOTSUPP"):
    _FROM_HOST.setdefault(_host_errno.EOPNOTSUPP, Errno.NOTSUP)


def errno_from_oserror(error: OSError) -> Errno:
    """The WASI errno for a host ``OSError`` (``EIO`` when it has none we know)."""
    return _FROM_HOST.get(error.errno or 0, Errno.IO)


class Filetype(IntEnum):
    UNKNOWN = 0
    BLOCK_DEVICE = 1
    CHARACTER_DEVICE = 2
    DIRECTORY = 3
    REGULAR_FILE = 4
    SOCKET_DGRAM = 5
    SOCKET_STREAM = 6
    SYMBOLIC_LINK = 7


class FdFlags:
    APPEND = 1
    DSYNC = 2
    NONBLOCK = 4
    RSYNC = 8
    SYNC = 16


class OFlags:
    CREAT = 1
    DIRECTORY = 2
    EXCL = 4
    TRUNC = 8


class Fstflags:
    ATIM = 1
    ATIM_NOW = 2
    MTIM = 4
    MTIM_NOW = 8


class Whence(IntEnum):
    SET = 0
    CUR = 1
    END = 2


class Clock(IntEnum):
    REALTIME = 0
    MONOTONIC = 1
    PROCESS_CPUTIME_ID = 2
    THREAD_CPUTIME_ID = 3


class EventType(IntEnum):
    CLOCK = 0
    FD_READ = 1
    FD_WRITE = 2


class Rights:
    FD_DATASYNC = 1 << 0
    FD_READ = 1 << 1
    FD_SEEK = 1 << 2
    FD_FDSTAT_SET_FLAGS = 1 << 3
    FD_SYNC = 1 << 4
    FD_TELL = 1 << 5
    FD_WRITE = 1 << 6
    FD_ADVISE = 1 << 7
    FD_ALLOCATE = 1 << 8
    PATH_CREATE_DIRECTORY = 1 << 9
    PATH_CREATE_FILE = 1 << 10
    PATH_LINK_SOURCE = 1 << 11
    PATH_LINK_TARGET = 1 << 12
    PATH_OPEN = 1 << 13
    FD_READDIR = 1 << 14
    PATH_READLINK = 1 << 15
    PATH_RENAME_SOURCE = 1 << 16
    PATH_RENAME_TARGET = 1 << 17
    PATH_FILESTAT_GET = 1 << 18
    PATH_FILESTAT_SET_SIZE = 1 << 19
    PATH_FILESTAT_SET_TIMES = 1 << 20
    FD_FILESTAT_GET = 1 << 21
    FD_FILESTAT_SET_SIZE = 1 << 22
    FD_FILESTAT_SET_TIMES = 1 << 23
    PATH_SYMLINK = 1 << 24
    PATH_REMOVE_DIRECTORY = 1 << 25
    PATH_UNLINK_FILE = 1 << 26
    POLL_FD_READWRITE = 1 << 27
    SOCK_SHUTDOWN = 1 << 28
    SOCK_ACCEPT = 1 << 29


RIGHTS_ALL = (1 << 30) - 1

# Struct layouts (little-endian; ``x`` bytes are padding).
IOVEC = struct.Struct("<II")  # buf, buf_len
FDSTAT = struct.Struct("<BxHxxxxQQ")  # filetype, flags, rights_base, rights_inheriting
FILESTAT = struct.Struct("<QQBxxxxxxxQQQQQ")  # dev, ino, filetype, nlink, size, atim, mtim, ctim
PRESTAT = struct.Struct("<BxxxI")  # tag (0: dir), name length
DIRENT = struct.Struct("<QQIBxxx")  # d_next, d_ino, d_namlen, d_type
SUBSCRIPTION = struct.Struct("<QBxxxxxxxIxxxxQQHxxxxxx")
"""userdata, tag, then the union: clock (id, timeout, precision, flags) or fd_readwrite (the fd
in the ``id`` slot)."""
EVENT = struct.Struct("<QHBxxxxxQHxxxxxx")  # userdata, error, type, nbytes, flags

assert FDSTAT.size == 24
assert FILESTAT.size == 64
assert DIRENT.size == 24
assert SUBSCRIPTION.size == 48
assert EVENT.size == 32
