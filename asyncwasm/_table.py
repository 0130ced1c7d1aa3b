"""``Table``: a WebAssembly table of references (JS ``WebAssembly.Table``)."""

from __future__ import annotations

from collections.abc import Mapping

from ._args import (
    MISSING,
    check_limits,
    descriptor_field,
    descriptor_limits,
    enforce_range,
    optional_size,
)
from ._context import RuntimeBase, StoreObject, context_for, handle_of
from ._engines._base import TableHandle
from ._exceptions import RangeError
from ._types import MAX_TABLE_LENGTH, REFERENCE_TYPES, Limits, TableType, canonical_value_type
from ._values import default_value, from_engine_value, to_engine_value

__all__ = ["Table"]


def _element_type(element: object) -> str:
    if not isinstance(element, str):
        raise TypeError(f"an element type must be a str, not {type(element).__name__}")
    elem = canonical_value_type(element)
    if elem not in REFERENCE_TYPES:
        raise TypeError(f"a table's element type must be a reference type, not {element!r}")
    return elem


class Table(StoreObject[TableType], kind="table"):
    """A table: ``Table("anyfunc", initial, maximum=None, value=None)`` or
    ``Table({"element": "externref", "initial": 1}, value)``.

    anyfunc (funcref) tables hold exported wasm functions or ``None``; externref tables hold any
    Python object (``None`` is null) and give back the same object. On an engine without host
    tables (wasmer) constructing one, and ``get``/``set``/``grow``, raise ``NotSupportedError``;
    ``length`` still works on exported tables.
    """

    __slots__ = ()

    def __init__(
        self,
        element: object,
        initial: object = MISSING,
        maximum: object = None,
        value: object = MISSING,
        *,
        runtime: RuntimeBase | None = None,
    ) -> None:
        if isinstance(element, Mapping):
            # JS order: "element", "initial", "maximum", ("minimum"), each converted when read.
            descriptor = element
            # Table(descriptor, value): the second positional argument is the fill value.
            value = initial
            elem = _element_type(descriptor_field(descriptor, "element", required=True))
            first, last = descriptor_limits(descriptor)
        elif initial is MISSING:
            raise TypeError("Table() needs an element type and an initial length")
        else:
            elem = _element_type(element)
            first = enforce_range(initial, "initial")
            last = optional_size(maximum, "maximum")
        # JS: only the initial length is held to the embedder limit; a larger maximum is fine
        # (growing past the limit is refused instead).
        check_limits(first, None, MAX_TABLE_LENGTH, "Table")
        if last is not None and last < first:
            raise RangeError(f"Table: maximum size {last} is below the initial size {first}")
        context = context_for(runtime)
        fill = to_engine_value(default_value(elem) if value is MISSING else value, elem, context)
        ttype = TableType(elem, Limits(first, last))
        cell = context.store()
        self._init(context, cell, context.engine.table_new(cell.handle, ttype, fill), ttype)

    @property
    def type(self) -> TableType:
        """The table's element type and limits as declared."""
        return self._type

    @property
    def length(self) -> int:
        """The number of entries."""
        return self._context.engine.table_size(self._cell.handle, handle_of(self, TableHandle))

    def _index(self, index: object) -> int:
        i = enforce_range(index, "index")
        if i >= self.length:
            raise RangeError(f"table index {i} is out of bounds (length {self.length})")
        return i

    def get(self, index: object) -> object:
        """The entry at ``index``; ``RangeError`` when out of bounds."""
        i = self._index(index)
        raw = self._context.engine.table_get(self._cell.handle, handle_of(self, TableHandle), i)
        return from_engine_value(raw, self._type.element, self._context)

    def set(self, index: object, value: object = MISSING) -> None:
        """Set the entry at ``index`` (to null when ``value`` is omitted)."""
        i = self._index(index)
        engine_value = self._fill(value)
        self._context.engine.table_set(
            self._cell.handle, handle_of(self, TableHandle), i, engine_value
        )

    def grow(self, delta: object, value: object = MISSING) -> int:
        """Add ``delta`` entries set to ``value`` (null when omitted); returns the old length.
        ``RangeError`` past the maximum."""
        n = enforce_range(delta, "delta")
        if self.length + n > MAX_TABLE_LENGTH:
            raise RangeError(
                f"cannot grow the table past {MAX_TABLE_LENGTH} entries (the embedder limit)"
            )
        engine_value = self._fill(value)
        return self._context.engine.table_grow(
            self._cell.handle, handle_of(self, TableHandle), n, engine_value
        )

    def _fill(self, value: object) -> object:
        """``value`` (null when omitted) as an engine value for this table."""
        elem = self._type.element
        return to_engine_value(
            default_value(elem) if value is MISSING else value, elem, self._context
        )

    def __repr__(self) -> str:
        return f"<asyncwasm.Table {self._type.element} length={self.length}>"
