"""``WASI.start_async``: the program's waiting (stdin, ``poll_oneoff`` sleeps, async output)
suspends the wasm program through JSPI while the event loop keeps running; and one import object
serves ``start`` and ``start_async``. On every engine under test, asyncio and trio."""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from _wat import wat

import asyncwasm
from asyncwasm import WASI, Instance, Module
from asyncwasm._jspi import blocking_suspending

sys.path.insert(0, str(Path(__file__).parent / "wasi"))
import build

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def wasitest_wasm() -> bytes:
    if not build.zig_available():
        pytest.skip("the ziglang package is not installed")
    return build.build(Path(__file__).parent / "wasi" / "wasitest.c").read_bytes()


Start = Callable[..., Awaitable[tuple[int, bytes]]]


@pytest.fixture
def start(runtime: asyncwasm.Runtime, wasitest_wasm: bytes) -> Start:
    """``await start(*args, **options)``: wasitest through start_async; (exit code, stdout)."""
    module = Module(wasitest_wasm)

    async def start(*args: str, **options: object) -> tuple[int, bytes]:
        out = io.BytesIO()
        options.setdefault("stdout", out)
        wasi = WASI(args=["wasitest", *args], **options)  # type: ignore[arg-type]
        code = await wasi.start_async(Instance(module, wasi.get_import_object()))
        return code, out.getvalue()

    return start


async def test_the_same_programs_run(start: Start, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"file\n")
    assert await start("args", "x") == (0, b"wasitest\nargs\nx\n")
    assert await start("cat", "/d/f", stdin=b"in\n", preopens={"/d": str(tmp_path)}) == (
        0,
        b"in\nfile\n",
    )
    assert await start("exit", "5") == (5, b"exiting\n")
    with pytest.raises(SystemExit) as info:
        await start("exit", "6", return_on_exit=False)
    assert info.value.code == 6


async def test_stdin_from_an_async_iterable_waits_without_blocking_the_loop(
    start: Start,
) -> None:
    """The program blocks in fd_read until another task releases the input: with a blocked
    loop this would deadlock (bounded by fail_after)."""
    release = anyio.Event()
    reads_started = anyio.Event()

    async def source() -> AsyncIterator[bytes | bytearray]:
        yield b"first "
        reads_started.set()
        await release.wait()  # only another task on the loop can set this
        yield b"second"
        yield b""  # empty chunks are skipped, not taken for the end
        yield bytearray(b" third\n")

    async def releaser() -> None:
        await reads_started.wait()
        await anyio.sleep(0.01)
        release.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(releaser)
            code, out = await start("cat", stdin=source())
    assert (code, out) == (0, b"first second third\n")


async def test_sleep_lets_other_tasks_run(start: Start) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.005)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        code, out = await start("sleep", "300")
        tg.cancel_scope.cancel()
    assert (code, out) == (0, b"slept enough\n")
    assert ticks > 0  # a sleep that blocked the thread would leave the ticker at 0


async def test_async_stdout_sink(start: Start) -> None:
    received: list[bytes] = []

    async def sink(data: bytes) -> None:
        await anyio.sleep(0.001)  # a slow consumer: the program waits for it
        received.append(data)

    code, out = await start("cat", stdin=b"x" * 10_000, stdout=sink)
    assert (code, out) == (0, b"")
    assert b"".join(received) == b"x" * 10_000


async def test_one_import_object_serves_start_and_start_async(
    runtime: asyncwasm.Runtime, wasitest_wasm: bytes
) -> None:
    module = Module(wasitest_wasm)
    outputs = []
    for use_async in (False, True, False):
        out = io.BytesIO()
        wasi = WASI(args=["wasitest", "sleep", "1"], stdout=out)
        instance = Instance(module, wasi.get_import_object())
        code = await wasi.start_async(instance) if use_async else wasi.start(instance)
        outputs.append((code, out.getvalue()))
    assert outputs == [(0, b"slept enough\n")] * 3


async def test_async_sources_need_start_async(
    runtime: asyncwasm.Runtime, wasitest_wasm: bytes
) -> None:
    async def source() -> AsyncGenerator[bytes, None]:
        yield b"never read"

    async def sink(data: bytes) -> None:
        pass

    module = Module(wasitest_wasm)
    stdin = source()
    wasi = WASI(args=["wasitest", "cat"], stdin=stdin)
    with pytest.raises(TypeError, match="start_async"):
        wasi.start(Instance(module, wasi.get_import_object()))
    await stdin.aclose()
    wasi = WASI(args=["wasitest", "args"], stdout=sink)
    with pytest.raises(TypeError, match="start_async"):
        wasi.start(Instance(module, wasi.get_import_object()))


async def test_start_async_errors_as_start(
    runtime: asyncwasm.Runtime, wasitest_wasm: bytes
) -> None:
    wasi = WASI(args=["wasitest", "args"], stdout=io.BytesIO())
    instance = Instance(Module(wasitest_wasm), wasi.get_import_object())
    assert await wasi.start_async(instance) == 0
    with pytest.raises(RuntimeError, match="already started"):
        await wasi.start_async(instance)
    with pytest.raises(TypeError, match="Instance"):
        await WASI().start_async(object())  # type: ignore[arg-type]


CALLS_IMPORT = wat(
    '(module (import "m" "f" (func $f (param i32) (result i32)))'
    ' (func (export "run") (param i32) (result i32) local.get 0 call $f))'
)


async def test_a_blocking_suspending_import(runtime: asyncwasm.Runtime) -> None:
    """What WASI builds on: outside a promising call it is a plain import (where a user's
    Suspending raises SuspendError); inside one it may suspend."""

    def fn(x: int) -> object:
        if x < 0:
            return anyio.sleep(0.001)  # an awaitable
        return x + 1

    instance = Instance(Module(CALLS_IMPORT), {"m": {"f": blocking_suspending(fn)}})
    assert instance.exports.run(41) == 42
    with pytest.raises(TypeError, match="awaitable"):
        instance.exports.run(-1)
    assert await asyncwasm.promising(instance.exports.run)(1) == 2
    plain = Instance(Module(CALLS_IMPORT), {"m": {"f": asyncwasm.Suspending(fn)}})
    with pytest.raises(asyncwasm.SuspendError):
        plain.exports.run(41)


async def test_cancelling_a_waiting_program(start: Start) -> None:
    """A program waiting for stdin that never comes is cancelled like any task: the cancel
    scope ends it at its pending read."""

    async def never() -> AsyncGenerator[bytes, None]:
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    source = never()
    with anyio.move_on_after(0.2) as scope:
        await start("cat", stdin=source)
    assert scope.cancelled_caught
    await source.aclose()
