"""``asyncwasm.WASI``: WASI preview1 for an instance, modelled on Node's ``node:wasi``."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._function import Function
from .._instance import Instance
from .._jspi import blocking_suspending, promising
from .._memory import Memory
from ._constants import Errno, Filetype, Rights, WasiError, errno_from_oserror
from ._fdtable import Entry, FdTable
from ._streams import Sink, Stdin, Syscall, run_blocking, run_suspending
from ._syscalls import (
    BLOCKING,
    DIR_RIGHTS,
    FILE_RIGHTS,
    SIGNATURES,
    ProcExit,
    Syscalls,
    unsigned_args,
)

__all__ = ["WASI", "ReadOnlyDir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_STDIO_RIGHTS = FILE_RIGHTS & ~(Rights.FD_SEEK | Rights.FD_TELL)  # streams: no seeking


class ReadOnlyDir(os.PathLike[str]):
    """A host directory to preopen read-only: ``preopens={"/data": ReadOnlyDir("data")}``.

    The program can list and read everything under it. Writing, creating, truncating,
    removing, renaming, linking, symlinking or changing timestamps there fails with ``EROFS``
    (as on a read-only mount), also through any descriptor opened beneath it.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: str = os.fspath(path)
        if not isinstance(self.path, str):
            raise TypeError(f"ReadOnlyDir needs a str path, not {type(self.path).__name__}")

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"ReadOnlyDir({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReadOnlyDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash((ReadOnlyDir, self.path))


class WASI:
    """A WASI preview1 environment for one program (Node's ``new WASI(options)``).

    ``args`` are the program's arguments (``argv[0]`` included, as Node's ``args``); ``env`` its
    environment; ``preopens`` maps guest paths to host directories, which the program can reach
    and nothing outside them (wrap one in :class:`ReadOnlyDir` to let it read but not change). ``stdin`` is bytes, a binary file, or (for :meth:`start_async`)
    an async iterable of bytes; ``stdout``/``stderr`` a binary file, a callable taking bytes, or
    ``None`` for the interpreter's own streams. With ``return_on_exit=False``, ``proc_exit``
    raises ``SystemExit(code)`` instead of returning the code from :meth:`start`.
    """

    def __init__(
        self,
        *,
        version: str = "preview1",
        args: Iterable[str | bytes] = (),
        env: Mapping[str, str] | None = None,
        preopens: Mapping[str, str | os.PathLike[str]] | None = None,
        stdin: object = None,
        stdout: object = None,
        stderr: object = None,
        return_on_exit: bool = True,
    ) -> None:
        if version != "preview1":
            raise TypeError(f"unsupported WASI version {version!r}: only 'preview1'")
        if isinstance(args, (str, bytes)):
            raise TypeError("args must be a sequence of strings, not a string")
        self._args = [_encode(a, "args") for a in args]
        self._env = [
            _encode(k, "env") + b"=" + _encode(v, "env") for k, v in dict(env or {}).items()
        ]
        self._stdin = Stdin(stdin)
        self._sinks = (Sink(stdout, 1), Sink(stderr, 2))
        self._return_on_exit = bool(return_on_exit)
        self._fds = FdTable()
        self._finalizer = weakref.finalize(self, self._fds.close_all)
        for stream in range(3):
            self._fds.add(
                Entry(
                    Filetype.CHARACTER_DEVICE,
                    stream=stream,
                    rights_base=_STDIO_RIGHTS,
                    rights_inheriting=0,
                )
            )
        for guest, host in dict(preopens or {}).items():
            fd = os.open(os.fspath(host), _DIR_FLAGS)
            self._fds.add(
                Entry(
                    Filetype.DIRECTORY,
                    host_fd=fd,
                    rights_base=DIR_RIGHTS,
                    preopen=str(guest),
                    read_only=isinstance(host, ReadOnlyDir),
                )
            )
        self._memory: Memory | None = None
        self._started = False
        self._syscalls = Syscalls(
            self._buffer, self._fds, self._stdin, tuple(self._args), tuple(self._env)
        )
        self._driver: Callable[[Syscall], Any] = self._run_blocking
        self._import: dict[str, object] = {name: self._import_for(name) for name in SIGNATURES}

    # -- the import object ----------------------------------------------------------------------
    @property
    def wasi_import(self) -> dict[str, object]:
        """The ``wasi_snapshot_preview1`` functions (Node's ``wasi.wasiImport``)."""
        return self._import

    wasiImport = wasi_import

    def get_import_object(self) -> dict[str, dict[str, object]]:
        """``{"wasi_snapshot_preview1": wasi.wasi_import}`` (Node's ``getImportObject()``)."""
        return {"wasi_snapshot_preview1": self._import}

    getImportObject = get_import_object

    def _import_for(self, name: str) -> Any:
        """The import ``name``: a plain function, or for the calls that may wait, a Suspending
        one that blocks under ``start`` and suspends the program under ``start_async``."""
        method = getattr(self._syscalls, name)
        if name == "proc_exit":

            def proc_exit(code: int) -> None:
                raise ProcExit(code & 0xFFFFFFFF)

            return proc_exit
        blocking = name in BLOCKING
        begin = self._syscalls.begin

        def syscall(*args: int) -> Any:
            values = unsigned_args(name, args)
            begin()
            try:
                if blocking:
                    return self._driver(method(*values))
                return int(method(*values))
            except WasiError as error:
                return int(error.errno)
            except OSError as error:
                return int(errno_from_oserror(error))

        syscall.__name__ = syscall.__qualname__ = name
        return blocking_suspending(syscall) if blocking else syscall

    def _run_blocking(self, call: Syscall) -> int:
        return run_blocking(call, self._stdin, self._sinks)

    def _run_suspending(self, call: Syscall) -> Any:
        return run_suspending(call, self._stdin, self._sinks)

    def _buffer(self) -> memoryview:
        if self._memory is None:
            raise WasiError(Errno.FAULT)
        return self._memory.buffer

    # -- running --------------------------------------------------------------------------------
    def _bind(self, instance: object, entry: str) -> Function | None:
        if not isinstance(instance, Instance):
            raise TypeError(
                f"the instance must be an asyncwasm.Instance, not {type(instance).__name__}"
            )
        if self._started:
            raise RuntimeError("WASI instance has already started")
        exports = instance.exports
        memory = exports.get("memory")
        if not isinstance(memory, Memory):
            raise TypeError('The "instance.exports.memory" property must be an asyncwasm.Memory')
        other = "_initialize" if entry == "_start" else "_start"
        if other in exports:
            raise TypeError(
                f'The "instance.exports.{other}" property must be undefined for {entry}'
            )
        func = exports.get(entry)
        if func is not None and not isinstance(func, Function):
            raise TypeError(f'The "instance.exports.{entry}" property must be a function')
        if func is None and entry == "_start":
            raise TypeError('The "instance.exports._start" property must be a function')
        self._started = True
        self._memory = memory
        return func

    def start(self, instance: Instance) -> int:
        """Run the command's ``_start``; its exit code (``proc_exit``'s, or 0). Blocking calls
        (stdin, sleeps, output) block the thread, as in ``node:wasi``."""
        func = self._bind(instance, "_start")
        assert func is not None
        try:
            func()
        except ProcExit as exit:
            return self._exit(exit.code)
        return 0  # main returned 0: wasi-libc calls proc_exit only for other codes

    async def start_async(self, instance: Instance) -> int:
        """Run the command's ``_start`` as a promising call (JSPI): reading stdin, ``poll_oneoff``
        sleeps and writes to an async sink suspend the program, never the event loop. Its exit
        code, as :meth:`start`."""
        func = self._bind(instance, "_start")
        assert func is not None
        self._driver = self._run_suspending
        try:
            await promising(func)()
        except ProcExit as exit:
            return self._exit(exit.code)
        finally:
            self._driver = self._run_blocking
        return 0

    def initialize(self, instance: Instance) -> None:
        """Set the reactor up: run its ``_initialize`` when it exports one."""
        func = self._bind(instance, "_initialize")
        if func is not None:
            try:
                func()
            except ProcExit as exit:
                self._exit(exit.code)

    def _exit(self, code: int) -> int:
        if not self._return_on_exit:
            raise SystemExit(code)
        return code


def _encode(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
    else:
        raise TypeError(f"{what} entries must be str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} entries must not contain NUL")
    return data
