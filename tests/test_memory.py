"""``Memory`` (issue #3, part 3): constructor forms, ``buffer``, ``grow``, released views, and no
access to memory the engine freed or moved, on every engine under test."""

from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Iterator, Mapping

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Memory, Module, NotSupportedError, RangeError

PAGE = 65536

ACCESS = wat(
    """
    (module
      (memory (export "mem") 1 10)
      (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u)
      (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store8)
      (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
      (func (export "size") (result i32) memory.size))
    """
)


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


@pytest.mark.parametrize(
    ("make", "minimum", "maximum"),
    [
        (lambda: Memory(1), 1, None),
        (lambda: Memory(2, 5), 2, 5),
        (lambda: Memory(initial=0, maximum=0), 0, 0),
        (lambda: Memory(1, None), 1, None),
        (lambda: Memory({"initial": 1}), 1, None),
        (lambda: Memory({"initial": 1, "maximum": 3}), 1, 3),
        (lambda: Memory({"minimum": 2}), 2, None),  # type-reflection spelling
        (lambda: Memory({"initial": True}), 1, None),
        (lambda: Memory(2.0), 2, None),  # WebIDL: an integral float is fine
    ],
)
def test_constructor_forms(
    runtime: asyncwasm.Runtime, make: object, minimum: int, maximum: int | None
) -> None:
    assert callable(make)
    memory = make()
    assert isinstance(memory, Memory)
    assert memory.type.limits.minimum == minimum
    assert memory.type.limits.maximum == maximum
    assert len(memory.buffer) == minimum * PAGE
    assert "Memory" in repr(memory)


@pytest.mark.parametrize(
    "args",
    [
        (),
        (-1,),
        (1.5,),
        ("1",),
        (None,),
        (2**32,),
        (1, -1),
        (1, "2"),
        ({},),
        ({"maximum": 2},),
        ({"initial": "1"},),
    ],
)
def test_constructor_type_errors(runtime: asyncwasm.Runtime, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        Memory(*args)


@pytest.mark.parametrize("args", [(65537,), (2, 1), (0, 65537), ({"initial": 3, "maximum": 2},)])
def test_constructor_range_errors(runtime: asyncwasm.Runtime, args: tuple[object, ...]) -> None:
    with pytest.raises(RangeError):
        Memory(*args)


def test_shared_memory(runtime: asyncwasm.Runtime) -> None:
    with pytest.raises(TypeError):
        Memory(1, shared=True)  # a shared memory needs a maximum
    if not runtime.features.shared_memory:
        with pytest.raises(NotSupportedError, match=runtime.engine):
            Memory(1, 2, shared=True)
        return
    memory = Memory({"initial": 1, "maximum": 2, "shared": True})
    assert memory.type.shared
    memory.buffer[0] = 1
    assert memory.buffer[0] == 1
    assert memory.grow(1) == 1
    assert len(memory.buffer) == 2 * PAGE


def test_buffer_is_a_writable_view_shared_with_wasm(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(ACCESS)).exports
    buffer = exports.mem.buffer
    assert isinstance(buffer, memoryview)
    assert not buffer.readonly
    assert buffer.format == "B"
    assert len(buffer) == buffer.nbytes == PAGE
    buffer[100] = 200
    buffer[PAGE - 4 : PAGE] = b"\x01\x02\x03\x04"
    assert exports.load(100) == 200
    assert exports.load(PAGE - 1) == 4
    exports.store(5, 77)
    assert buffer[5] == 77
    assert bytes(buffer[0:2]) == b"\x00\x00"
    assert exports.mem.buffer is buffer  # the same object until the memory grows


def test_grow_returns_old_size_and_releases_the_buffer(runtime: asyncwasm.Runtime) -> None:
    memory = Memory(1, 4)
    old = memory.buffer
    old[0] = 9
    assert memory.grow(2) == 1
    with pytest.raises(ValueError, match="released"):
        old[0]
    with pytest.raises(ValueError, match="released"):
        len(old)
    new = memory.buffer
    assert new is not old
    assert len(new) == 3 * PAGE
    assert new[0] == 9
    assert memory.grow(0) == 3  # grow(0) releases too, as JS detaches on every grow
    with pytest.raises(ValueError, match="released"):
        new[0]
    assert memory.grow(1) == 3
    assert len(memory.buffer) == 4 * PAGE


def test_grow_past_maximum_is_range_error(runtime: asyncwasm.Runtime) -> None:
    memory = Memory(1, 2)
    buffer = memory.buffer
    with pytest.raises(RangeError):
        memory.grow(2)
    buffer[0] = 1  # a failed grow does not release the buffer
    assert len(memory.buffer) == PAGE
    assert memory.grow(1) == 1
    with pytest.raises(RangeError):
        memory.grow(1)


def test_grow_past_65536_pages_is_range_error(runtime: asyncwasm.Runtime) -> None:
    with pytest.raises(RangeError):
        Memory(0).grow(65537)
    with pytest.raises(RangeError):
        Memory(1).grow(65536)
    with pytest.raises(RangeError):
        Memory(0, 65536).grow(2**32 - 1)


@pytest.mark.parametrize("delta", [-1, 1.5, "1", None, 2**32])
def test_grow_argument_type_errors(runtime: asyncwasm.Runtime, delta: object) -> None:
    with pytest.raises(TypeError):
        Memory(1).grow(delta)


def test_growth_from_wasm_gives_a_new_buffer(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(ACCESS)).exports
    memory = exports.mem
    old = memory.buffer
    assert exports.grow(2) == 1
    new = memory.buffer
    assert len(new) == 3 * PAGE
    assert new is not old
    with pytest.raises(ValueError, match="released"):
        old[0]
    new[2 * PAGE + 1] = 5
    assert exports.load(2 * PAGE + 1) == 5
    assert memory.grow(1) == 3
    assert exports.size() == 4


def test_memory_never_moves_under_a_view(runtime: asyncwasm.Runtime) -> None:
    """A slice of a buffer is a separate view: it outlives the release, so the memory under
    it must neither move nor be freed."""
    memory = Memory(1)  # no maximum: the engine may reserve lazily
    memory.buffer[0:4] = b"abcd"
    part = memory.buffer[0:4]
    base = _address(memory.buffer)
    for _ in range(40):
        memory.grow(25)
    assert _address(memory.buffer) == base
    assert bytes(part) == b"abcd"
    part[0:1] = b"z"
    assert bytes(memory.buffer[0:4]) == b"zbcd"


def test_view_keeps_memory_alive(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(Module(ACCESS)).exports
    part = exports.mem.buffer[10:20]
    part[0] = 42
    del exports
    gc.collect()
    for _ in range(5):
        filler = Memory(1)
        filler.buffer[:] = b"\xff" * PAGE
    gc.collect()
    assert part[0] == 42
    assert bytes(part[1:]) == bytes(9)


def test_imported_memory_is_shared(runtime: asyncwasm.Runtime) -> None:
    module = Module(
        wat(
            """
            (module (import "env" "mem" (memory 1))
              (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u)
              (func (export "grow") (result i32) i32.const 1 memory.grow))
            """
        )
    )
    memory = Memory(1)
    exports = Instance(module, {"env": {"mem": memory}}).exports
    memory.buffer[3] = 33
    assert exports.load(3) == 33
    assert exports.grow() == 1
    assert len(memory.buffer) == 2 * PAGE
    memory.buffer[PAGE] = 1
    assert exports.load(PAGE) == 1


def test_memory_from_another_thread(runtime: asyncwasm.Runtime) -> None:
    memory = Memory(1, 3)
    buffer = memory.buffer
    outcome: list[object] = []

    def worker() -> None:
        try:
            buffer[0] = 1  # plain memory access: fine on every engine
            outcome.append(memory.grow(1))
        except BaseException as exc:  # a PanicException is a BaseException
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if runtime.engine == "wasmer":
        assert isinstance(outcome[0], NotSupportedError)
        assert "wasmer" in str(outcome[0])
        assert memory.grow(1) == 1
    else:
        assert outcome == [1]
    assert memory.buffer[0] == 1


class _Logged(Mapping[str, object]):
    """A descriptor that logs reads and conversions, and forbids membership tests (JS reads a
    descriptor with [[Get]] only)."""

    def __init__(self, values: dict[str, object], log: list[str]) -> None:
        self._values = values
        self._log = log

    def __getitem__(self, key: str) -> object:
        self._log.append(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        raise AssertionError(f"membership test for {key!r}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _LoggedIndex:
    def __init__(self, value: int, log: list[str], label: str) -> None:
        self._value, self._log, self._label = value, log, label

    def __index__(self) -> int:
        self._log.append(f"{self._label} converted")
        return self._value


def test_descriptor_read_in_js_order(runtime: asyncwasm.Runtime) -> None:
    log: list[str] = []
    values: dict[str, object] = {
        "shared": False,
        "maximum": _LoggedIndex(2, log, "maximum"),
        "initial": _LoggedIndex(1, log, "initial"),
    }
    memory = Memory(_Logged(values, log))
    assert log == ["initial", "initial converted", "maximum", "maximum converted", "shared"]
    assert memory.type.limits == asyncwasm._types.Limits(1, 2)
