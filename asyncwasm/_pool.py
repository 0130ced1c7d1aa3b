"""A warm pool of worker processes that compile for an engine that holds the GIL (wasmer).

Why processes: wasmer-python holds the GIL for a whole compile (a 1.5 MB module froze an asyncio
loop for 0.62 s in a worker thread) and its objects can't leave the thread that made them. A
worker compiles, serializes the module and decodes its sections, and sends back
``(artifact, ModuleInfo)``; the runtime deserializes the artifact on the event loop's thread.

Why not ``multiprocessing`` or ``anyio.to_process``: both are tied to something other than the
Runtime (a pool per event loop for anyio, which a Runtime can't stop, and both re-run the
parent's ``__main__`` in every worker). Here each Runtime owns its pool: ``Runtime.aclose()``
stops it, a forgotten Runtime's pool is stopped at garbage collection or interpreter exit, and
workers are started with ``subprocess`` (fork + immediate exec, never a bare ``fork`` of a
process that has used wasmer, which deadlocks) running a bootstrap that imports only asyncwasm.

The pool's methods block: the runtime calls them from anyio worker threads, bounded by its
``CapacityLimiter``. A worker reads requests from its stdin until EOF, so it also exits if the
parent dies. Killing a busy worker (cancellation) makes the thread waiting on it see EOF and
return at once; the worker is reaped there.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Final

from . import _fork
from ._exceptions import CompileError, PythonRuntimeError

if TYPE_CHECKING:
    from ._binary import ModuleInfo

__all__ = ["CompileTimeout", "PoolClosedError", "ProcessPool", "WorkerDied"]

_LEN: Final = struct.Struct("<Q")

# Runs in the child under ``python -c``: take the parent's sys.path, then serve requests.
_BOOT: Final = (
    "import sys, struct, pickle\n"
    "b = sys.stdin.buffer\n"
    "(n,) = struct.unpack('<Q', b.read(8))\n"
    "sys.path[:] = pickle.loads(b.read(n))\n"
    "from asyncwasm._pool import _worker_main\n"
    "_worker_main(sys.argv[1])\n"
)


class WorkerDied(Exception):
    """The worker process exited (killed, crashed) before answering."""


class PoolClosedError(PythonRuntimeError):
    """The runtime was closed while this compile waited on its pool."""


def _write_frame(f: IO[bytes], payload: bytes) -> None:
    f.write(_LEN.pack(len(payload)))
    f.write(payload)
    f.flush()


def _read_frame(f: IO[bytes]) -> bytes | None:
    head = f.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    data = f.read(n)
    if len(data) < n:
        return None
    return data


class _Worker:
    """One worker process, used by one thread at a time."""

    def __init__(self, engine_name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, engine_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.ready = False
        assert self.proc.stdin is not None
        _write_frame(self.proc.stdin, pickle.dumps(list(sys.path)))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _receive(self) -> tuple[str, Any]:
        """The worker's next reply, ``(kind, value)``; ``WorkerDied`` if it exited instead."""
        assert self.proc.stdout is not None
        try:
            frame = _read_frame(self.proc.stdout)
        except (OSError, ValueError):  # the pipe was closed under us by ``close()``
            frame = None
        if frame is None:
            raise WorkerDied(f"worker process {self.pid} exited ({self.proc.wait()})")
        kind, value = pickle.loads(frame)
        return kind, value

    def call(self, wasm: bytes, deadline: _Deadline | None = None) -> tuple[str, Any]:
        """Send ``wasm``, return the reply: ``("ok", (artifact, info))`` or ``("error", exc)``.
        The worker stays usable after either; ``WorkerDied`` means it is gone. ``deadline``
        starts once the worker is ready (a cold start is not the module's fault)."""
        assert self.proc.stdin is not None
        try:
            if not self.ready:
                kind, value = self._receive()  # the worker says it has imported its engine
                if kind == "error":
                    return kind, value
                self.ready = True
            if deadline is not None:
                deadline.start()
            _write_frame(self.proc.stdin, pickle.dumps(wasm, pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, ConnectionResetError, ValueError) as error:
            # ValueError: the pipe was closed under us by ``close()``.
            raise WorkerDied(f"worker process {self.pid} is gone") from error
        return self._receive()

    def kill(self) -> None:
        """Stop the worker now (SIGKILL); whoever waits on it sees EOF."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask an idle worker to exit (EOF on its stdin), kill it if it doesn't, and reap it."""
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()

    def reap(self) -> None:
        self.kill()
        self.stop(timeout=5.0)


class CompileTimeout(CompileError):
    """A compilation ran past the runtime's ``compile_timeout``."""


class _Deadline:
    """Kills ``worker`` if the call has not returned within ``timeout`` seconds."""

    def __init__(self, worker: _Worker, timeout: float) -> None:
        self.fired = False
        self._cancelled = False
        self._lock = threading.Lock()
        self._worker = worker
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self.fired = True
        self._worker.kill()

    def cancel(self) -> None:
        """Stop the timer; after this, ``fired`` no longer changes."""
        with self._lock:
            self._cancelled = True
        self._timer.cancel()


class ProcessPool:
    """Worker processes for one engine, started on demand and kept warm (up to ``max_idle``).

    Concurrency is bounded by the caller (the runtime's ``CapacityLimiter``): one process per
    concurrent ``run``.
    """

    def __init__(self, engine_name: str, max_idle: int) -> None:
        self.engine_name = engine_name
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        # The workers are the parent's children: forget them without signalling, waiting on or
        # writing to them (that would break the parent's compiles); only our copies of their
        # pipes are closed. The next ``run`` starts workers of the child's own.
        self._lock = threading.Lock()
        inherited = [*self._idle, *self._busy]
        self._idle, self._busy = [], set()
        for worker in inherited:
            worker.proc.returncode = 0  # never waited on, nor reported, by this process
            for f in (worker.proc.stdin, worker.proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def pids(self) -> list[int]:
        """Process ids of the live workers (idle and busy)."""
        with self._lock:
            return [w.pid for w in (*self._idle, *self._busy)]

    def prestart(self) -> None:
        """Start one worker ahead of the first compile (it imports the engine meanwhile)."""
        with self._lock:
            if self._closed or self._idle or self._busy:
                return
            self._idle.append(_Worker(self.engine_name))

    def run(
        self,
        wasm: bytes,
        on_start: Callable[[_Worker], bool],
        timeout: float | None = None,
    ) -> tuple[bytes, ModuleInfo]:
        """Compile ``wasm`` in a worker: ``(artifact, info)``. Raises the worker's
        ``CompileError`` (the worker stays in the pool), ``CompileError`` when the worker crashed
        or ran past ``timeout`` seconds (it is killed then), ``PoolClosedError`` when the pool was
        closed meanwhile and ``WorkerDied`` when it was killed through ``on_start``'s worker
        (cancellation).

        ``on_start(worker)`` is called once a worker is assigned; returning ``False`` gives the
        worker back unused and raises ``WorkerDied``.
        """
        worker = self._checkout()
        if not on_start(worker):
            self._checkin(worker)
            raise WorkerDied("dropped before it started")
        timer = _Deadline(worker, timeout) if timeout is not None else None
        try:
            kind, value = worker.call(wasm, timer)
        except WorkerDied:
            self._discard(worker)
            if self._closed:
                raise PoolClosedError("the asyncwasm.Runtime was closed") from None
            if timer is not None and timer.fired:
                raise CompileTimeout(
                    f"compiling this module took longer than compile_timeout={timeout} s: the "
                    "compiler process was stopped"
                ) from None
            if worker.proc.returncode is not None and worker.proc.returncode < 0:
                sig = -worker.proc.returncode
                if sig == signal.SIGKILL:
                    raise  # killed on purpose (cancellation): the caller discards this
                raise CompileError(
                    f"the compiler process died ({signal.Signals(sig).name}) compiling this module"
                ) from None
            raise CompileError("the compiler process exited while compiling this module") from None
        except BaseException:
            self._discard(worker)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        # A compile error leaves the worker as good as new: keep it (starting a new interpreter
        # costs 100-300 ms, which a stream of bad modules would otherwise pay every time).
        if timer is not None and timer.fired:  # killed just as it answered
            self._discard(worker)
        else:
            self._checkin(worker)
        if kind == "error":
            raise value
        result: tuple[bytes, ModuleInfo] = value
        return result

    def _checkout(self) -> _Worker:
        dead: list[_Worker] = []
        try:
            with self._lock:
                if self._closed:
                    raise PoolClosedError("the asyncwasm.Runtime is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy.add(worker)
                        return worker
                    dead.append(worker)
                worker = _Worker(self.engine_name)
                self._busy.add(worker)
                return worker
        finally:
            for w in dead:
                w.reap()

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            keep = not self._closed and len(self._idle) < self.max_idle and worker.alive()
            if keep:
                self._idle.append(worker)
        if not keep:
            worker.stop()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.reap()

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones are killed (their waiting
        threads see ``PoolClosedError``). Blocks until all are reaped; idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for w in busy:
            w.kill()
        for w in idle:
            w.stop()


def _worker_main(engine_name: str) -> None:
    """The worker process: serve compile requests from stdin until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything native code prints goes to stderr, not into the protocol
    sys.stdout = sys.stderr

    def reply(kind: str, value: object) -> None:
        try:
            data = pickle.dumps((kind, value), pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # an unpicklable exception: keep its text
            data = pickle.dumps(("error", CompileError(f"{value!r} ({error})")))
        _write_frame(out, data)

    with out:
        try:
            from ._decode import decode_for_engine
            from ._engines import get_engine

            engine = get_engine(engine_name)
        except Exception as error:
            reply("error", error)
            return
        reply("ready", os.getpid())
        _serve(inp, reply, engine, decode_for_engine)


def _serve(inp: IO[bytes], reply: Callable[[str, object], None], engine: Any, decode: Any) -> None:
    while True:
        frame = _read_frame(inp)
        if frame is None:
            return
        wasm: bytes = pickle.loads(frame)
        try:
            info = decode(wasm, engine)
            artifact = engine.compile_artifact(wasm)
        except Exception as error:
            reply("error", error)
        else:
            reply("ok", (artifact, info))
