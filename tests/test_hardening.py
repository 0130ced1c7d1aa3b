"""Hardening against hostile bytes and environments (issue 15): each finding's case, contained.

Whatever could kill or hang the test process (a decoder bomb without the limits, a FIFO in the
cache, a multi-gigabyte GC allocation, Ctrl-C) runs in a child process with a timeout. Memory is
asserted through the child's ``ru_maxrss`` with generous margins (the unbounded cases took
850 MiB to 2.8 GiB); time is never asserted here: ``benchmarks/bench_hardening.py`` measures it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from _bigmodule import _name, _section, many_functions
from _child import run_json
from _leb128 import uleb128

import asyncwasm
from asyncwasm._binary import decode_module
from asyncwasm._engines import get_engine

pytestmark = pytest.mark.anyio

HEADER = b"\0asm\x01\x00\x00\x00"
VOID_TYPE = _section(1, b"\x01\x60\x00\x00")
# wasmtime's validator accepts the compact import encoding its compiler refuses.
COMPACT_IMPORT = bytes.fromhex("0061736d01000000010401600000020c0103656e76007f0101660000")
# wasmer 1.1's validator accepts i8x16.popcnt, which its Cranelift cannot compile.
POPCNT = bytes.fromhex(
    "0061736d0100000001040160000003020100070501016600000a19011700fd0c0100000000000000020000"
    "0000000000fd621a0b"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_child(engine: str, code: str, timeout: float = 120.0) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter on ``engine``; it prints one JSON object last."""
    return run_json(code, engine=engine, timeout=timeout)


# --- 1. The JS API's implementation limits, enforced where each count is read -----------------


def _count_section(sid: int, count: int, tail: bytes = b"") -> bytes:
    return _section(sid, uleb128(count) + tail)


LIMIT_CASES = [
    ("types", HEADER + _count_section(1, 1_000_001)),
    ("types in a recursion group", HEADER + _section(1, b"\x01\x4e" + uleb128(1_000_001))),
    ("function parameters", HEADER + _section(1, b"\x01\x60" + uleb128(1001))),
    ("function results", HEADER + _section(1, b"\x01\x60\x00" + uleb128(1001))),
    ("struct fields", HEADER + _section(1, b"\x01\x5f" + uleb128(10_001))),
    ("imports", HEADER + _count_section(2, 1_000_001)),
    ("functions", HEADER + VOID_TYPE + _count_section(3, 1_000_001)),
    ("tables", HEADER + _count_section(4, 100_001)),
    ("globals", HEADER + _count_section(6, 1_000_001)),
    ("exports", HEADER + _count_section(7, 1_000_001)),
    ("element segments", HEADER + _count_section(9, 10_000_001)),
    ("data segments", HEADER + _count_section(12, 100_001)),
    ("data segments", HEADER + _count_section(11, 100_001)),
    ("tags", HEADER + VOID_TYPE + _count_section(13, 1_000_001)),
    (
        "bytes in a function body",
        HEADER + VOID_TYPE + _section(3, b"\x01\x00") + _section(10, b"\x01" + uleb128(7_654_322)),
    ),
    (
        "locals",
        HEADER
        + _section(1, b"\x01\x60\x01\x7f\x00")
        + _section(3, b"\x01\x00")
        + _section(10, b"\x01\x06\x01" + uleb128(50_000) + b"\x7f\x0b"),
    ),
]


@pytest.mark.parametrize(
    ("what", "wasm"), LIMIT_CASES, ids=[f"{w}-{i}" for i, (w, _) in enumerate(LIMIT_CASES)]
)
def test_counts_past_the_js_api_limits_fail_when_read(what: str, wasm: bytes) -> None:
    with pytest.raises(asyncwasm.CompileError, match=f"too many {what}"):
        decode_module(wasm)


def test_limits_leave_the_limit_itself_alone() -> None:
    # 1,000 parameters and results, 49,999 locals plus one parameter: all allowed.
    decode_module(HEADER + _section(1, b"\x01\x60" + uleb128(1000) + b"\x7f" * 1000 + b"\x00"))
    decode_module(
        HEADER
        + _section(1, b"\x01\x60\x01\x7f\x00")
        + _section(3, b"\x01\x00")
        + _section(10, b"\x01\x06\x01" + uleb128(49_999) + b"\x7f\x0b")
    )


# The child's peak resident memory. Not ru_maxrss: Linux carries the parent's high-water mark
# into a forked child's ru_maxrss (across exec too), and the parent here is a test session with
# engines loaded. VmHWM belongs to the process's own address space, fresh at exec.
PEAK_RSS = """
def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

FUNCTION_BOMB = """
import asyncio, json
import asyncwasm
from _bigmodule import _section
from _leb128 import uleb128
count = 10_000_000
wasm = (b"\\0asm\\x01\\x00\\x00\\x00" + _section(1, b"\\x01\\x60\\x00\\x00")
        + _section(3, uleb128(count) + bytes(count)))
async def chunks():
    for i in range(0, len(wasm), 1 << 16):
        yield wasm[i : i + 65536]
errors = {}
errors["validate"] = asyncwasm.validate(wasm)
for name, call in [
    ("Module", lambda: asyncwasm.Module(wasm)),
    ("compile", lambda: asyncio.run(asyncwasm.compile(wasm))),
    ("compile_streaming", lambda: asyncio.run(asyncwasm.compile_streaming(chunks()))),
]:
    try:
        call()
        errors[name] = "compiled"
    except asyncwasm.CompileError as error:
        errors[name] = str(error)
errors["maxrss_mib"] = peak_rss_mib()
errors["size_mib"] = len(wasm) / 2**20
print(json.dumps(errors))
"""


def test_ten_million_functions_are_refused_at_their_count(engine: str) -> None:
    result = run_child(engine, PEAK_RSS + FUNCTION_BOMB)
    assert result["validate"] is False
    for name in ("Module", "compile", "compile_streaming"):
        assert "too many functions: 10000000" in str(result[name]), result
    # Unbounded, decoding the 10M entries took 850-900 MiB. What remains is the interpreter,
    # the engine, the 10 MiB module and its copies.
    assert float(str(result["maxrss_mib"])) < 100 + 4 * float(str(result["size_mib"])), result


async def test_compile_refuses_a_count_bomb_before_any_worker(engine: str) -> None:
    bomb = HEADER + VOID_TYPE + _count_section(3, 10_000_000, bytes(64))
    async with asyncwasm.Runtime(engine) as rt:
        with pytest.raises(asyncwasm.CompileError, match="too many functions"):
            await rt.compile(bomb)
        assert rt.cache_info().compiles == 0  # refused on the calling thread


# --- 2. Streaming: a section that can never fit the module size limit fails at its header -------


class _Endless:
    """An async source: ``head``, then zero bytes forever; counts what was taken from it."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.taken = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        try:
            yield self.head
            self.taken += len(self.head)
            while self.taken < 256 << 20:  # a safety net: the test fails, not the machine
                yield bytes(1 << 16)
                self.taken += 1 << 16
        finally:
            self.closed = True


@pytest.mark.parametrize(
    "section",
    [
        b"\x00" + uleb128(2**32 - 1) + _name("x"),  # a custom section of 4 GiB - 1
        b"\x0a" + uleb128(2**32 - 1),  # a code section of 4 GiB - 1
        b"\x00" + uleb128(2**30),  # just past 1 GiB with its header
    ],
    ids=["custom", "code", "one-past"],
)
async def test_a_section_past_one_gib_fails_at_its_header(
    runtime: asyncwasm.Runtime, section: bytes
) -> None:
    source = _Endless(HEADER + section)
    with anyio.fail_after(60), pytest.raises(asyncwasm.CompileError, match="module size limit"):
        await runtime.compile_streaming(source)
    assert source.taken <= 4 << 20  # at most a few MiB read (in fact: nothing past the header)
    assert source.closed


class _Response:
    """An httpx-like response announcing more than the JS API's module size limit."""

    def __init__(self, length: int) -> None:
        self.status_code = 200
        self.headers = {"content-type": "application/wasm", "content-length": str(length)}
        self.read = 0
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        self.read += 1
        yield HEADER

    async def aclose(self) -> None:
        self.closed = True


async def test_a_content_length_past_one_gib_fails_before_reading(
    runtime: asyncwasm.Runtime,
) -> None:
    response = _Response((1 << 30) + 1)
    with pytest.raises(asyncwasm.CompileError, match="module size limit"):
        await runtime.compile_streaming(response)
    assert response.read == 0
    assert response.closed


# --- 3. validate() says exactly whether compiling succeeds -------------------------------------


def test_validate_agrees_with_module_where_the_engine_validator_is_lenient(engine: str) -> None:
    wasm = COMPACT_IMPORT if engine == "wasmtime" else POPCNT
    assert get_engine(engine).validate(wasm) is None  # the engine's validator says yes...
    rt = asyncwasm.Runtime(engine)
    try:
        with pytest.raises(asyncwasm.CompileError):
            asyncwasm.Module(wasm, runtime=rt)  # ...its compiler says no
        assert rt.validate(wasm) is False
    finally:
        rt.close()


async def test_validate_compiles_once_for_a_later_compile(engine: str) -> None:
    wasm = many_functions(50)
    async with asyncwasm.Runtime(engine) as rt:
        assert rt.validate(wasm) is True
        assert rt.validate(wasm) is True  # answered from the cache
        module = await rt.compile(wasm)
        info = rt.cache_info()
        assert (info.compiles, info.memory_hits) == (0, 1)
        assert asyncwasm.Instance(module).exports.add(2, 3) == 5


def test_module_after_validate_does_not_compile_again(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = get_engine(engine)
    calls: list[int] = []
    original = type(eng).compile

    def counted(self: object, store: object, wasm: bytes) -> object:
        calls.append(len(wasm))
        return original(self, store, wasm)  # type: ignore[arg-type]

    monkeypatch.setattr(type(eng), "compile", counted)
    wasm = many_functions(40)
    rt = asyncwasm.Runtime(engine)
    try:
        assert rt.validate(wasm) is True
        compiled_by_validate = len(calls)  # wasmtime: here; wasmer: in a worker process
        module = asyncwasm.Module(wasm, runtime=rt)
        assert len(calls) == compiled_by_validate
        assert asyncwasm.Instance(module).exports.add(20, 22) == 42
        asyncwasm.Module(many_functions(41), runtime=rt)  # not validated: compiled here
        assert len(calls) == compiled_by_validate + 1
    finally:
        rt.close()


# --- 4. A cancelled wasmtime compile keeps its max_workers slot until its thread ends ----------


@pytest.fixture
def held_compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[int]]]:
    """wasmtime compiles wait for the event; ``[running now, peak]`` is tracked."""
    eng = get_engine("wasmtime")
    release = threading.Event()
    active = [0, 0]
    lock = threading.Lock()
    original = type(eng).compile

    def held(self: object, store: object, wasm: bytes) -> object:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        try:
            release.wait(60)
            return original(self, store, wasm)  # type: ignore[arg-type]
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(type(eng), "compile", held)
    yield release, active
    release.set()


async def test_cancelled_compiles_count_until_their_thread_ends(
    held_compiles: tuple[threading.Event, list[int]],
) -> None:
    if "wasmtime" not in asyncwasm.Runtime.engines():
        pytest.skip("wasmtime does not import here")
    release, active = held_compiles
    async with asyncwasm.Runtime("wasmtime", max_workers=1) as rt:
        for i in range(6):  # six compiles, each cancelled after a moment
            with anyio.move_on_after(0.05):
                await rt.compile(many_functions(10, nonce=bytes([i])))
        assert active == [1, 1]  # the first one's thread still runs; no other started
        release.set()
        module = await rt.compile(many_functions(10, nonce=b"after"))
        assert asyncwasm.Instance(module).exports.add(1, 2) == 3
        assert active[1] == 1


# --- 5. wasmer: a CompileError leaves the worker process alive ---------------------------------


async def test_failed_compiles_keep_the_wasmer_worker(engine: str) -> None:
    if engine != "wasmer":
        pytest.skip("wasmer compiles in worker processes")
    invalid = bytes.fromhex("0061736d010000000105016000017f030201000a050103006a0b")
    async with asyncwasm.Runtime(engine, max_workers=1) as rt:
        await rt.compile(many_functions(5))
        pids = rt._compiler.process_pool().pids()
        for i in range(20):
            with pytest.raises(asyncwasm.CompileError):
                await rt.compile(invalid + _section(0, _name("n") + bytes([i])))
        assert rt._compiler.process_pool().pids() == pids


# --- 6. The disk cache reads only what a valid entry can be ------------------------------------

CACHE_ABUSE = """
import asyncio, json, os, sys
import asyncwasm
from _bigmodule import many_functions
cache, mode = sys.argv[1], sys.argv[2]
wasm = many_functions(20, nonce=b"cache")
async def once():
    async with asyncwasm.Runtime(cache_dir=cache) as rt:
        module = await rt.compile(wasm)
        assert asyncwasm.Instance(module).exports.add(2, 2) == 4
        return rt.cache_info()
first = asyncio.run(once())
[entry] = [os.path.join(cache, n) for n in os.listdir(cache) if n.endswith(".artifact")]
good = open(entry, "rb").read()
os.unlink(entry)
if mode == "fifo":
    os.mkfifo(entry, 0o600)
elif mode == "dev-zero":
    os.symlink("/dev/zero", entry)
elif mode == "sparse":
    with open(entry, "wb") as f:
        f.truncate(8 << 30)
elif mode == "forged":
    import hashlib, struct
    from asyncwasm import _cache
    key_len = struct.unpack_from(_cache._HEADER.format, good)[1]
    extra_len = struct.unpack_from(_cache._HEADER.format, good)[5]
    key_end = _cache._HEADER.size + key_len
    payload = good[key_end : key_end + extra_len] + b"not an artifact" * 100
    fields = list(struct.unpack_from(_cache._HEADER.format, good))
    fields[3], fields[4] = len(payload), hashlib.sha256(payload).digest()
    with open(entry, "wb") as f:
        f.write(_cache._HEADER.pack(*fields) + good[_cache._HEADER.size : key_end] + payload)
second = asyncio.run(once())
restored = open(entry, "rb").read() == good if os.path.isfile(entry) else False
print(json.dumps({"first": first._asdict(), "second": second._asdict(), "restored": restored}))
"""


@pytest.mark.parametrize("mode", ["fifo", "dev-zero", "sparse", "forged"])
def test_hostile_cache_entries_are_discarded(engine: str, mode: str, tmp_path: Path) -> None:
    code = f"import sys; sys.argv[1:] = [{str(tmp_path / 'c')!r}, {mode!r}]\n" + CACHE_ABUSE
    result = run_child(engine, code, timeout=120)
    first, second = result["first"], result["second"]
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert first["compiles"] == 1
    # Discarded and compiled afresh (a forged wasmer entry counts its load as a disk hit first:
    # only deserializing it shows it is bad).
    assert (second["disk_discarded"], second["compiles"]) == (1, 1)
    assert result["restored"] is True  # recompiled and written back as a regular file


# --- 7. compile_timeout ----------------------------------------------------------------------


def _nested_blocks(depth: int) -> bytes:
    body = b"\x00" + b"\x02\x40" * depth + b"\x0b" * depth + b"\x0b"
    return (
        HEADER
        + VOID_TYPE
        + _section(3, b"\x01\x00")
        + _section(10, b"\x01" + uleb128(len(body)) + body)
    )


async def test_compile_timeout_kills_the_wasmer_worker(engine: str) -> None:
    if engine != "wasmer":
        pytest.skip("the wasmer case; wasmtime's is below")
    slow = _nested_blocks(100_000)  # 20 s on wasmer 1.1 with Cranelift
    async with asyncwasm.Runtime(engine, max_workers=1, compile_timeout=1.0) as rt:
        await rt.compile(many_functions(5))
        [pid] = rt._compiler.process_pool().pids()
        with anyio.fail_after(60), pytest.raises(asyncwasm.CompileError, match="compile_timeout"):
            await rt.compile(slow)
        assert pid not in rt._compiler.process_pool().pids()  # killed, replaced on demand
        assert rt.validate(slow) is False  # would compile() succeed here? No.
        module = await rt.compile(many_functions(6))
        assert asyncwasm.Instance(module).exports.add(1, 1) == 2


async def test_compile_timeout_on_wasmtime_returns_and_keeps_the_slot(
    held_compiles: tuple[threading.Event, list[int]],
) -> None:
    if "wasmtime" not in asyncwasm.Runtime.engines():
        pytest.skip("wasmtime does not import here")
    release, active = held_compiles
    async with asyncwasm.Runtime("wasmtime", max_workers=1, compile_timeout=0.2) as rt:
        with anyio.fail_after(60), pytest.raises(asyncwasm.CompileError, match="compile_timeout"):
            await rt.compile(many_functions(10, nonce=b"slow"))
        assert active[0] == 1  # its thread still runs, holding the only slot
        waiting = rt.compile(many_functions(10, nonce=b"next"))
        with anyio.move_on_after(0.3) as scope:
            await waiting
        assert scope.cancelled_caught
        assert active == [1, 1]  # never started beside it
        release.set()
        module = await rt.compile(many_functions(10, nonce=b"after"))
        assert asyncwasm.Instance(module).exports.add(2, 5) == 7
        assert rt.cache_info().entries == 1  # the timed-out result was dropped


def test_compile_timeout_is_checked() -> None:
    for bad in (0, -1, "1", True):
        with pytest.raises(ValueError, match="compile_timeout"):
            asyncwasm.Runtime(compile_timeout=bad)  # type: ignore[arg-type]


# --- 8. Ctrl-C stops running wasm (wasmtime) ---------------------------------------------------

CTRL_C = """
import json, os, signal, threading, time
import asyncwasm
from _wat import wat
instance = asyncwasm.Instance(asyncwasm.Module(wat(
    '(module (func (export "spin") (loop (br 0))) (func (export "two") (result i32) i32.const 2))'
)))
sent = []
def interrupt():
    time.sleep(0.3)
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)
result = {}
for attempt in range(2):
    threading.Thread(target=interrupt).start()
    try:
        instance.exports.spin()
        result[attempt] = "returned"
    except KeyboardInterrupt:
        result[attempt] = time.monotonic() - sent.pop()
result["usable"] = instance.exports.two()
print(json.dumps(result))
"""


def test_ctrl_c_interrupts_running_wasm_on_wasmtime(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmer 1.1 has no way to interrupt running wasm")
    result = run_child(engine, CTRL_C, timeout=60)
    # Twice (the second needs the callback re-armed), each a KeyboardInterrupt out of the call.
    assert isinstance(result["0"], float)
    assert isinstance(result["1"], float)
    assert result["usable"] == 2


# --- 9. wasmtime's GC heap is bounded ----------------------------------------------------------

GC_BOMB = """
import json
import asyncwasm
from _wat import wat
wasm = wat('(module (type $a (array (mut i8)))'
           ' (global $g (ref $a) (array.new_default $a (i32.const 3000000000))))')
try:
    asyncwasm.Instance(asyncwasm.Module(wasm))
    outcome = "instantiated"
except asyncwasm.RangeError as error:
    outcome = "RangeError: " + str(error)
print(json.dumps({"outcome": outcome, "maxrss_mib": peak_rss_mib()}))
"""


def test_a_gc_allocation_past_the_store_limit_fails(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmer 1.1 has no GC proposal")
    result = run_child(engine, PEAK_RSS + GC_BOMB)
    assert str(result["outcome"]).startswith("RangeError: GC heap out of memory"), result
    assert float(str(result["maxrss_mib"])) < 500, result  # unbounded: 2.8 GiB
