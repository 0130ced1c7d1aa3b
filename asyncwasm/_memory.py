"""``Memory``: a WebAssembly linear memory (JS ``WebAssembly.Memory``)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from ._args import (
    MISSING,
    check_limits,
    descriptor_field,
    descriptor_limits,
    enforce_range,
    optional_size,
)
from ._context import RuntimeBase, StoreCell, StoreContext, StoreObject, context_for, handle_of
from ._engines._base import ExternHandle, MemoryHandle
from ._types import MAX_PAGES, Limits, MemoryType

__all__ = ["Memory"]


class Memory(StoreObject[MemoryType], kind="memory"):
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
        runtime: RuntimeBase | None = None,
    ) -> None:
        if isinstance(initial, Mapping):
            # JS order: "initial", "maximum", ("minimum",) "shared", each converted when read.
            descriptor = initial
            first, last = descriptor_limits(descriptor)
            shared_value = descriptor_field(descriptor, "shared", required=False)
            shared = bool(shared_value) if shared_value is not MISSING else False
        elif initial is MISSING:
            raise TypeError("Memory() needs an initial size (in pages) or a descriptor")
        else:
            first = enforce_range(initial, "initial")
            last = optional_size(maximum, "maximum")
        check_limits(first, last, MAX_PAGES, "Memory")
        if shared and last is None:
            raise TypeError("a shared memory needs a maximum size")
        context = context_for(runtime)
        mtype = MemoryType(Limits(first, last), shared=bool(shared))
        cell = context.store()
        engine_type = context.host_memory_type(mtype)  # Limits.memory on wasmer
        self._init(context, cell, context.engine.memory_new(cell.handle, engine_type), mtype)

    def _init(
        self, context: StoreContext, cell: StoreCell, handle: ExternHandle, mtype: MemoryType
    ) -> None:
        super()._init(context, cell, handle, mtype)
        self._view = None

    @property
    def type(self) -> MemoryType:
        """The memory's type as declared (limits in pages)."""
        return self._type

    @property
    def buffer(self) -> memoryview:
        """A writable view of the whole memory as it is now (JS ``memory.buffer``)."""
        engine = self._context.engine
        store = self._cell.handle
        handle = handle_of(self, MemoryHandle)
        view = self._view
        if view is not None:
            # wasm code may have grown the memory since: a stale view is detached, as in JS.
            if len(view) == engine.memory_pages(store, handle) * 65536:
                return view
            self._release_view()
        self._view = engine.memory_view(store, handle)
        return self._view

    def grow(self, delta: object) -> int:
        """Grow by ``delta`` pages; returns the old size in pages. ``RangeError`` past the
        maximum (or 65,536 pages). Buffers taken before are released."""
        pages = enforce_range(delta, "delta")
        old = self._context.engine.memory_grow(
            self._cell.handle, handle_of(self, MemoryHandle), pages
        )
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
