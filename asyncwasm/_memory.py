"""``Memory``: a WebAssembly linear memory (JS ``WebAssembly.Memory``)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ._args import MISSING, check_limits, descriptor_field, enforce_range
from ._object import StoreObject
from ._runtime import Runtime, StoreCell, get_default_runtime
from ._types import MAX_PAGES, Limits, MemoryType

__all__ = ["Memory"]


class Memory(StoreObject[MemoryType]):
    """A linear memory: ``Memory(initial, maximum=None, *, shared=False)`` or
    ``Memory({"initial": 1, "maximum": 2})``. Sizes are in 64 KiB pages.

    ``buffer`` is a writable ``memoryview`` of the whole memory. After the memory grows (through
    ``grow()`` or from wasm), a buffer taken before no longer gives access (it is released;
    using it raises ``ValueError``): take ``memory.buffer`` again. Memory never moves while it
    is alive, so no view, nor any slice of one, can reach memory the engine freed or moved.
    """

    __slots__ = ("_view",)
    _view: memoryview | None

    def __init__(
        self,
        initial: object = MISSING,
        maximum: object = None,
        *,
        shared: bool = False,
        runtime: Runtime | None = None,
    ) -> None:
        if isinstance(initial, Mapping):
            # JS order: "initial", "maximum", ("minimum",) "shared", each converted when read.
            descriptor = initial
            initial = descriptor_field(descriptor, "initial", required=False)
            first_or_none = None if initial is MISSING else enforce_range(initial, "initial")
            maximum = descriptor_field(descriptor, "maximum", required=False)
            last = (
                None if maximum is None or maximum is MISSING else enforce_range(maximum, "maximum")
            )
            if first_or_none is None:  # the type-reflection proposal's spelling
                minimum = descriptor_field(descriptor, "minimum", required=False)
                if minimum is MISSING:
                    raise TypeError("the descriptor has no 'initial' field")
                first_or_none = enforce_range(minimum, "minimum")
            first = first_or_none
            shared_value = descriptor_field(descriptor, "shared", required=False)
            shared = bool(shared_value) if shared_value is not MISSING else False
        elif initial is MISSING:
            raise TypeError("Memory() needs an initial size (in pages) or a descriptor")
        else:
            first = enforce_range(initial, "initial")
            last = (
                None if maximum is None or maximum is MISSING else enforce_range(maximum, "maximum")
            )
        check_limits(first, last, MAX_PAGES, "Memory")
        if shared and last is None:
            raise TypeError("a shared memory needs a maximum size")
        rt = runtime if runtime is not None else get_default_runtime()
        mtype = MemoryType(Limits(first, last), shared=bool(shared))
        cell = rt._store()
        self._init(rt, cell, rt._engine.memory_new(cell.handle, mtype), mtype)

    def _init(self, runtime: Runtime, cell: StoreCell, handle: Any, mtype: MemoryType) -> None:
        super()._init(runtime, cell, handle, mtype)
        self._view = None

    @property
    def type(self) -> MemoryType:
        """The memory's type as declared (limits in pages)."""
        return self._type

    @property
    def buffer(self) -> memoryview:
        """A writable view of the whole memory as it is now (JS ``memory.buffer``)."""
        engine = self._runtime._engine
        store = self._cell.handle
        view = self._view
        if view is not None:
            # wasm code may have grown the memory since: a stale view is detached, as in JS.
            if len(view) == engine.memory_pages(store, self._handle) * 65536:
                return view
            self._release_view()
        self._view = engine.memory_view(store, self._handle)
        return self._view

    def grow(self, delta: object) -> int:
        """Grow by ``delta`` pages; returns the old size in pages. ``RangeError`` past the
        maximum (or 65,536 pages). Buffers taken before are released."""
        pages = enforce_range(delta, "delta")
        old = self._runtime._engine.memory_grow(self._cell.handle, self._handle, pages)
        self._release_view()  # JS detaches the buffer on every grow, grow(0) included
        return old

    def _release_view(self) -> None:
        view, self._view = self._view, None
        if view is not None:
            # Something (NumPy, a memoryview of it) may hold an export of this view: then it can't
            # be released, but it stays safe, as the memory neither moves nor is freed while the
            # view keeps its store alive.
            with contextlib.suppress(BufferError):
                view.release()

    def __repr__(self) -> str:
        limits = self._type.limits
        return f"<asyncwasm.Memory initial={limits.minimum} maximum={limits.maximum}>"
