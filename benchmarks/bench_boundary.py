"""Issue 10: the cost of crossing the boundary, side by side with the raw engine in one run.

Each row is measured for asyncwasm and for the fastest path the engine itself offers, in the
same process, interleaved (``REPEATS`` rounds, the best round of each counts), and the ratio is
printed next to its target:

* ``call``: an exported ``add(i32, i32) -> i32`` called from Python as ``add(1, 2)``. Raw
  wasmtime: a Python function ``add(a, b)`` that writes its arguments into a prebuilt argument
  array and calls ``wasmtime_func_call_unchecked`` (addresses precomputed); raw wasmer: the
  ``wasmer.Function`` export. Both sides are called the same way, ``add(1, 2)`` from a
  ``lambda``. Target <= 1.5x.
* ``host call``: one wasm -> Python import call ``(i32) -> i32``, measured as a wasm loop that
  calls the import ``HOST_LOOP`` times. Raw wasmtime: a ``wasmtime_func_new_unchecked`` callback
  that reads the argument, calls the Python function and writes its result; raw wasmer: a
  ``wasmer.Function``. Target <= 2x.
* ``Instance()``: a small module (one function, one memory) with no imports (its exports'
  public objects are made on first use of ``exports``: a last row, without target, adds that
  cost). Raw wasmtime: a
  fresh store (fuel and epoch deadline set, as the engine config requires) and an instance in
  it, which is what ``Instance()`` does when nothing holds the previous store; raw wasmer:
  ``wasmer.Instance`` with an empty import object. Target <= 2x.

The raw wasmtime floor uses asyncwasm's own ``wasmtime.Engine`` object, so both sides run with the
same engine configuration (whatever ``_wasmtime._CONFIG`` says: printed in the note column).
This script reaches into asyncwasm's private modules for that engine: a benchmark may.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

from _common import Figure, driver_main
from _leb128 import uleb128  # tests/ (on the path through _common)

import asyncwasm

REPEATS = 30
HOST_LOOP = 20_000
_KEEP: list[object] = []


# -- the modules, assembled by hand (no wasm-tools needed) ------------------------------------


def _section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + uleb128(len(body)) + body


def _vec(items: list[bytes]) -> bytes:
    return uleb128(len(items)) + b"".join(items)


def _name(s: str) -> bytes:
    return uleb128(len(s)) + s.encode()


def _code(locals_: bytes, body: bytes) -> bytes:
    f = locals_ + body
    return uleb128(len(f)) + f


HEADER = b"\0asm\x01\0\0\0"
T_ADD = b"\x60\x02\x7f\x7f\x01\x7f"  # (i32, i32) -> i32
T_UNARY = b"\x60\x01\x7f\x01\x7f"  # (i32) -> i32


def add_module() -> bytes:
    """``add(i32, i32) -> i32`` and a one-page memory, both exported."""
    return (
        HEADER
        + _section(1, _vec([T_ADD]))
        + _section(3, _vec([b"\x00"]))
        + _section(5, _vec([b"\x00\x01"]))
        + _section(7, _vec([_name("add") + b"\x00\x00", _name("memory") + b"\x02\x00"]))
        + _section(10, _vec([_code(b"\x00", b"\x20\x00\x20\x01\x6a\x0b")]))
    )


def host_module() -> bytes:
    """Imports ``env.f: (i32) -> i32``; exports ``loop(n) -> i32`` calling ``f`` n times."""
    body = (
        b"\x02\x40\x03\x40"  # block loop
        b"\x20\x00\x45\x0d\x01"  # local.get 0, i32.eqz, br_if 1
        b"\x20\x00\x10\x00\x20\x01\x6a\x21\x01"  # acc += f(n)
        b"\x20\x00\x41\x01\x6b\x21\x00"  # n -= 1
        b"\x0c\x00\x0b\x0b"  # br 0, end, end
        b"\x20\x01\x0b"  # local.get 1, end
    )
    return (
        HEADER
        + _section(1, _vec([T_UNARY]))
        + _section(2, _vec([_name("env") + _name("f") + b"\x00\x00"]))
        + _section(3, _vec([b"\x00"]))
        + _section(7, _vec([_name("loop") + b"\x00\x01"]))
        + _section(10, _vec([_code(b"\x01\x01\x7f", body)]))
    )


def _host(x: int) -> int:
    return x + 1


# -- timing ---------------------------------------------------------------------------------


def _per_op(fn: Callable[[], object], n: int) -> float:
    """Seconds per op of ``fn`` run ``n`` times (``fn`` does one op)."""
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def _side_by_side(
    ours: Callable[[], object], raw: Callable[[], object], n: int, ops: int = 1
) -> tuple[float, float]:
    """Best-of-``REPEATS`` microseconds per op for ``ours`` and ``raw``, interleaved (many short
    rounds: on a loaded machine the best round is the one least disturbed)."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(REPEATS):
        a.append(_per_op(ours, n) / ops)
        b.append(_per_op(raw, n) / ops)
    return min(a) * 1e6, min(b) * 1e6


# -- the raw engines ------------------------------------------------------------------------


class RawWasmtime:
    def __init__(self) -> None:
        import wasmtime
        from wasmtime import _bindings as b

        from asyncwasm._context import default_context
        from asyncwasm._engines import _wasmtime

        self.wasmtime = wasmtime
        self.b = b
        self.config = _wasmtime._CONFIG
        self.engine = default_context().engine._engine  # type: ignore[attr-defined]
        # The C functions with plain pointer arguments: the fastest ctypes call.
        self.call_unchecked = ctypes.CFUNCTYPE(
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        )(("wasmtime_func_call_unchecked", b.dll))
        self.add = wasmtime.Module(self.engine, add_module())
        self.host = wasmtime.Module(self.engine, host_module())

    def store(self) -> object:
        store = self.wasmtime.Store(self.engine)
        if self.config.get("consume_fuel"):
            store.set_fuel(2**63)
        if self.config.get("epoch_interruption"):
            store.set_epoch_deadline(2**62)
        return store

    def instance(self) -> object:
        return self.wasmtime.Instance(self.store(), self.add, [])

    def _prepared(
        self, store: object, func: object, nargs: int
    ) -> tuple[Callable[[], object], object]:
        b = self.b
        ctx = ctypes.cast(store._context(), ctypes.c_void_p).value  # type: ignore[attr-defined]
        raw_func = b.wasmtime_func_t.from_buffer_copy(func._func)  # type: ignore[attr-defined]
        array = (b.wasmtime_val_raw_t * max(nargs, 1))()
        trap = ctypes.c_void_p()
        fa, aa, ta = ctypes.addressof(raw_func), ctypes.addressof(array), ctypes.addressof(trap)
        call = self.call_unchecked
        keep = (raw_func, array, trap, store)

        def run() -> object:
            err = call(ctx, fa, aa, nargs, ta)
            if err or trap.value:
                raise RuntimeError("trap")
            return keep

        return run, array

    def call(self) -> Callable[[int, int], object]:
        b = self.b
        store = self.store()
        inst = self.wasmtime.Instance(store, self.add, [])
        func = inst.exports(store)["add"]
        ctx = ctypes.cast(store._context(), ctypes.c_void_p).value  # type: ignore[attr-defined]
        raw_func = b.wasmtime_func_t.from_buffer_copy(func._func)  # type: ignore[attr-defined]
        array = (b.wasmtime_val_raw_t * 2)()
        slot0, slot1 = array[0], array[1]
        trap = ctypes.c_void_p()
        fa, aa, ta = ctypes.addressof(raw_func), ctypes.addressof(array), ctypes.addressof(trap)
        call = self.call_unchecked

        def add(a: int, b: int) -> object:
            slot0.i32 = a
            slot1.i32 = b
            if call(ctx, fa, aa, 2, ta) or trap.value:
                raise RuntimeError("trap")
            return slot0.i32

        add.keep = (store, inst, raw_func, array)  # type: ignore[attr-defined]
        assert add(1, 2) == 3
        return add

    def host_call(self) -> Callable[[], object]:
        b = self.b
        store = self.store()
        ctx = store._context()
        fn = _host

        def callback(env: object, caller: object, args: object, n: int) -> int:
            slot = args[0]  # type: ignore[index]
            slot.i32 = fn(slot.i32)
            return 0

        cb = b.wasmtime_func_unchecked_callback_t(callback)
        ft = self.wasmtime.FuncType([self.wasmtime.ValType.i32()], [self.wasmtime.ValType.i32()])
        raw = b.wasmtime_func_t()
        fin = b._wasmtime_func_new_unchecked.argtypes[4](lambda env: None)
        b.wasmtime_func_new_unchecked(ctx, ft.ptr(), cb, None, fin, ctypes.byref(raw))
        inst = self._instance_with_raw_import(store, raw)
        func = inst.exports(store)["loop"]
        run, array = self._prepared(store, func, 1)
        slot0 = array[0]

        def one() -> object:
            slot0.i32 = HOST_LOOP
            return run()

        # Kept for the life of the process: the store calls ``fin`` when it is deleted.
        _KEEP.append((store, cb, fin, ft, raw, inst, one))
        one()
        assert slot0.i32 == sum(range(2, HOST_LOOP + 2)) % 2**32 - (
            2**32 if sum(range(2, HOST_LOOP + 2)) % 2**32 >= 2**31 else 0
        )
        return one

    def _instance_with_raw_import(self, store: object, raw: object) -> object:
        b = self.b
        externs = (b.wasmtime_extern_t * 1)()
        externs[0] = b.wasmtime_extern_t(0, b.wasmtime_extern_union(func=raw))
        inst = b.wasmtime_instance_t()
        trap = ctypes.POINTER(b.wasm_trap_t)()
        err = b.wasmtime_instance_new(
            store._context(),
            self.host.ptr(),
            externs,
            1,
            ctypes.byref(inst),
            ctypes.byref(trap),  # type: ignore[attr-defined]
        )
        if err or trap:
            raise RuntimeError("raw instantiation failed")
        return self.wasmtime.Instance._from_raw(inst)


class RawWasmer:
    def __init__(self) -> None:
        import wasmer

        from asyncwasm._context import default_context

        self.wasmer = wasmer
        # Modules belong to a store on wasmer: the raw side compiles its own, with the same
        # compiler (Cranelift) and engine (Universal) asyncwasm uses.
        from asyncwasm._engines._wasmer import _new_wasmer_store

        del default_context
        self.store = _new_wasmer_store()
        self.add = wasmer.Module(self.store, add_module())
        self.host = wasmer.Module(self.store, host_module())

    def instance(self) -> object:
        return self.wasmer.Instance(self.add, self.wasmer.ImportObject())

    def call(self) -> Callable[[int, int], object]:
        add: Callable[[int, int], object] = self.instance().exports.add  # type: ignore[attr-defined]
        assert add(1, 2) == 3
        return add

    def host_call(self) -> Callable[[], object]:
        w = self.wasmer
        f = w.Function(self.store, _host, w.FunctionType([w.Type.I32], [w.Type.I32]))
        imports = w.ImportObject()
        imports.register("env", {"f": f})
        loop = w.Instance(self.host, imports).exports.loop
        return lambda: loop(HOST_LOOP)


# -- the measurement ------------------------------------------------------------------------


async def measure(engine: str, quick: bool) -> list[Figure]:
    global REPEATS
    if quick:
        REPEATS = 10
    raw: RawWasmtime | RawWasmer = RawWasmtime() if engine == "wasmtime" else RawWasmer()
    add_wasm, host_wasm = add_module(), host_module()
    module = asyncwasm.Module(add_wasm)
    add = asyncwasm.Instance(module).exports.add
    assert add(1, 2) == 3
    loop = asyncwasm.Instance(asyncwasm.Module(host_wasm), {"env": {"f": _host}}).exports.loop
    raw_call, raw_host = raw.call(), raw.host_call()
    n_call = 5_000 if quick else 20_000
    n_inst = 100 if quick else 400
    n_host = 2 if quick else 5
    rows: list[tuple[str, tuple[float, float], float | None]] = [
        (
            "call add(i32, i32)",
            _side_by_side(lambda: add(1, 2), lambda: raw_call(1, 2), n_call),
            1.5,
        ),
        (
            "host call (i32) -> i32",
            _side_by_side(lambda: loop(HOST_LOOP), raw_host, n_host, HOST_LOOP),
            2.0,
        ),
        (
            "Instance() of a small module",
            _side_by_side(lambda: asyncwasm.Instance(module), raw.instance, n_inst),
            2.0,
        ),
        # Instance() wraps its exports in public objects on first use of ``exports``: this row
        # (no target) shows the cost with them, against the same floor.
        (
            "Instance().exports of a small module",
            _side_by_side(lambda: asyncwasm.Instance(module).exports, raw.instance, n_inst),
            None,
        ),
    ]
    note = ""
    if isinstance(raw, RawWasmtime):
        on = [k for k in ("consume_fuel", "epoch_interruption") if raw.config.get(k)]
        note = "engine config: " + (", ".join(on) or "no fuel, no epochs")
    figures: list[Figure] = []
    for name, (ours, floor), target in rows:
        figures.append(Figure(f"{name}: asyncwasm", ours, "us"))
        figures.append(Figure(f"{name}: raw engine", floor, "us", note=note))
        ratio = ours / floor
        if target is None:
            figures.append(Figure(f"{name}: ratio", ratio, "x"))
        else:
            figures.append(Figure(f"{name}: ratio", ratio, "x", f"<= {target}x", ratio <= target))
    return figures


if __name__ == "__main__":
    driver_main(__doc__ or "", "the boundary: asyncwasm vs the raw engine (issue 10)", measure)
