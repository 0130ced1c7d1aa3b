"""``Global``: a WebAssembly global variable (JS ``WebAssembly.Global``)."""

from __future__ import annotations

from collections.abc import Mapping

from ._args import MISSING, descriptor_field
from ._context import RuntimeBase, StoreObject, context_for, handle_of
from ._engines._base import GlobalHandle
from ._types import GlobalType, canonical_value_type
from ._values import default_value, from_engine_value, to_engine_value

__all__ = ["Global"]


class Global(StoreObject[GlobalType], kind="global"):
    """A global: ``Global("i32", 42, mutable=True)`` or
    ``Global({"value": "i32", "mutable": True}, 42)``.

    ``value`` reads it and, for a mutable global, sets it (setting an immutable one raises
    ``TypeError``). Without a value, a global holds its type's default (0, 0.0 or ``None``).
    """

    __slots__ = ()

    def __init__(
        self,
        value_type: object,
        value: object = MISSING,
        *,
        mutable: bool = False,
        runtime: RuntimeBase | None = None,
    ) -> None:
        if isinstance(value_type, Mapping):
            # JS order: "mutable", then "value" (WebIDL reads dictionary members sorted).
            descriptor = value_type
            mutable_field = descriptor_field(descriptor, "mutable", required=False)
            mutable = bool(mutable_field) if mutable_field is not MISSING else False
            value_type = descriptor_field(descriptor, "value", required=True)
        if not isinstance(value_type, str):
            raise TypeError(f"a value type must be a str, not {type(value_type).__name__}")
        vt = canonical_value_type(value_type)
        context = context_for(runtime)
        initial = default_value(vt) if value is MISSING else value
        engine_value = to_engine_value(initial, vt, context)
        gtype = GlobalType(vt, bool(mutable))
        cell = context.store()
        self._init(
            context, cell, context.engine.global_new(cell.handle, gtype, engine_value), gtype
        )

    @property
    def type(self) -> GlobalType:
        """The global's value type and mutability."""
        return self._type

    @property
    def value(self) -> object:
        """The global's current value."""
        vt = self._type.value
        raw = self._context.engine.global_get(self._cell.handle, handle_of(self, GlobalHandle))
        return from_engine_value(raw, vt, self._context)

    @value.setter
    def value(self, new: object) -> None:
        if not self._type.mutable:
            raise TypeError("cannot set the value of an immutable global")
        engine_value = to_engine_value(new, self._type.value, self._context)
        self._context.engine.global_set(
            self._cell.handle, handle_of(self, GlobalHandle), engine_value
        )

    def value_of(self) -> object:
        """The global's current value (JS ``valueOf()``)."""
        return self.value

    valueOf = value_of

    def __repr__(self) -> str:
        kind = "mutable" if self._type.mutable else "immutable"
        return f"<asyncwasm.Global {kind} {self._type.value}>"
