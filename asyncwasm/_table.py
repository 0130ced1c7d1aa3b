"""``Table``: a WebAssembly table of references (JS ``WebAssembly.Table``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._args import MISSING, check_limits, descriptor_field, enforce_range
from ._exceptions import RangeError
from ._runtime import Runtime, StoreCell, get_default_runtime
from ._types import MAX_TABLE_LENGTH, REFERENCE_TYPES, Limits, TableType, canonical_value_type
from ._values import default_value, from_engine_value, to_engine_value

__all__ = ["Table"]


class Table:
    """A table: ``Table("anyfunc", initial, maximum=None, value=None)`` or
    ``Table({"element": "externref", "initial": 1}, value)``.

    anyfunc (funcref) tables hold exported wasm functions or ``None``; externref tables hold any
    Python object (``None`` is null) and give back the same object. On an engine without host
    tables (wasmer) constructing one, and ``get``/``set``/``grow``, raise ``NotSupportedError``;
    ``length`` still works on exported tables.
    """

    __slots__ = ("__weakref__", "_cell", "_handle", "_runtime", "_type")

    _runtime: Runtime
    _cell: StoreCell
    _handle: Any
    _type: TableType

    def __init__(
        self,
        element: object,
        initial: object = MISSING,
        maximum: object = None,
        value: object = MISSING,
        *,
        runtime: Runtime | None = None,
    ) -> None:
        if isinstance(element, Mapping):
            descriptor = element
            # Table(descriptor, value): the second positional argument is the fill value.
            value = initial
            element = descriptor_field(descriptor, "element", required=True)
            initial = descriptor_field(descriptor, "initial", required=False)
            if initial is MISSING:
                initial = descriptor_field(descriptor, "minimum", required=True)
            maximum = descriptor_field(descriptor, "maximum", required=False)
        elif initial is MISSING:
            raise TypeError("Table() needs an element type and an initial length")
        if not isinstance(element, str):
            raise TypeError(f"an element type must be a str, not {type(element).__name__}")
        elem = canonical_value_type(element)
        if elem not in REFERENCE_TYPES:
            raise TypeError(f"a table's element type must be a reference type, not {element!r}")
        first = enforce_range(initial, "initial")
        last = None if maximum is None or maximum is MISSING else enforce_range(maximum, "maximum")
        check_limits(first, last, MAX_TABLE_LENGTH, "Table")
        rt = runtime if runtime is not None else get_default_runtime()
        fill = to_engine_value(default_value(elem) if value is MISSING else value, elem, rt)
        ttype = TableType(elem, Limits(first, last))
        cell = rt._store()
        self._init(rt, cell, rt._engine.table_new(cell.handle, ttype, fill), ttype)

    def _init(self, runtime: Runtime, cell: StoreCell, handle: Any, ttype: TableType) -> None:
        self._runtime = runtime
        self._cell = cell
        self._handle = handle
        self._type = ttype

    @classmethod
    def _from_handle(
        cls, runtime: Runtime, cell: StoreCell, handle: Any, ttype: TableType
    ) -> Table:
        table = cls.__new__(cls)
        table._init(runtime, cell, handle, ttype)
        return table

    @property
    def type(self) -> TableType:
        """The table's element type and limits as declared."""
        return self._type

    @property
    def length(self) -> int:
        """The number of entries."""
        return self._runtime._engine.table_size(self._cell.handle, self._handle)

    def _index(self, index: object) -> int:
        i = enforce_range(index, "index")
        if i >= self.length:
            raise RangeError(f"table index {i} is out of bounds (length {self.length})")
        return i

    def get(self, index: object) -> object:
        """The entry at ``index``; ``RangeError`` when out of bounds."""
        i = self._index(index)
        raw = self._runtime._engine.table_get(self._cell.handle, self._handle, i)
        return from_engine_value(raw, self._type.element, self._runtime)

    def set(self, index: object, value: object = MISSING) -> None:
        """Set the entry at ``index`` (to null when ``value`` is omitted)."""
        i = self._index(index)
        elem = self._type.element
        engine_value = to_engine_value(
            default_value(elem) if value is MISSING else value, elem, self._runtime
        )
        self._runtime._engine.table_set(self._cell.handle, self._handle, i, engine_value)

    def grow(self, delta: object, value: object = MISSING) -> int:
        """Add ``delta`` entries set to ``value`` (null when omitted); returns the old length.
        ``RangeError`` past the maximum."""
        n = enforce_range(delta, "delta")
        elem = self._type.element
        engine_value = to_engine_value(
            default_value(elem) if value is MISSING else value, elem, self._runtime
        )
        return self._runtime._engine.table_grow(self._cell.handle, self._handle, n, engine_value)

    def __repr__(self) -> str:
        return f"<asyncwasm.Table {self._type.element} length={self.length}>"
