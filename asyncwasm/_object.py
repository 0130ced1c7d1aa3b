"""The base of the public objects that live in an engine store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ._runtime import Runtime, StoreCell

__all__ = ["StoreObject"]

T = TypeVar("T")
_S = TypeVar("_S", bound="StoreObject[Any]")


class StoreObject(Generic[T]):
    """An engine object seen from Python: the runtime that made it, the store cell it keeps
    alive (its store is freed only when no such object is left), the engine's handle, and its
    type as declared or decoded (never asked of the engine: see ``_engines/_base.py``)."""

    __slots__ = ("__weakref__", "_cell", "_handle", "_runtime", "_type")

    _runtime: Runtime
    _cell: StoreCell
    _handle: Any
    _type: T

    def _init(self, runtime: Runtime, cell: StoreCell, handle: Any, type: T) -> None:
        self._runtime = runtime
        self._cell = cell
        self._handle = handle
        self._type = type

    @classmethod
    def _from_handle(
        cls: type[_S], runtime: Runtime, cell: StoreCell, handle: Any, type: Any
    ) -> _S:
        """The object for an engine handle made elsewhere (an export, a table entry, ...)."""
        obj = cls.__new__(cls)
        obj._init(runtime, cell, handle, type)
        return obj
