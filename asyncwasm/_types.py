"""WebAssembly types as plain, immutable Python values.

These are shared by the binary decoder, the engine layer and the public descriptors
(``Module.exports(m)[i].type``). Value type names are the JS API's: ``"i32"``, ``"i64"``,
``"f32"``, ``"f64"``, ``"v128"``, ``"externref"``, ``"anyfunc"``. Types the JS API has no name for
(GC references, ``exnref``, typed function references) are spelled as the text format does, e.g.
``"exnref"`` or ``"(ref null 3)"``; asyncwasm refuses to pass those across the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

ValType: TypeAlias = str
"""A value type name: one of ``NUMBER_TYPES``, ``"v128"``, ``REFERENCE_TYPES`` or another
reference type spelled as in the text format."""

NUMBER_TYPES: Final = frozenset({"i32", "i64", "f32", "f64"})
REFERENCE_TYPES: Final = frozenset({"externref", "anyfunc"})
# Types the JS API can convert at the boundary; anything else is refused before the engine sees it.
JS_VALUE_TYPES: Final = NUMBER_TYPES | {"v128"} | REFERENCE_TYPES

ExternKind: TypeAlias = Literal["function", "table", "memory", "global", "tag"]
EXTERN_KINDS: Final[tuple[ExternKind, ...]] = ("function", "table", "memory", "global", "tag")


def canonical_value_type(name: str) -> ValType:
    """Map a user-given value type name to ours (``"funcref"`` is an alias of ``"anyfunc"``).

    Raises ``TypeError`` for names the JS API does not know.
    """
    if name == "funcref":
        return "anyfunc"
    if name in JS_VALUE_TYPES:
        return name
    raise TypeError(f"unknown value type {name!r}; expected one of {sorted(JS_VALUE_TYPES)}")


@dataclass(frozen=True, slots=True)
class Limits:
    minimum: int
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class FuncType:
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


@dataclass(frozen=True, slots=True)
class TableType:
    element: ValType
    limits: Limits
    table64: bool = False


@dataclass(frozen=True, slots=True)
class MemoryType:
    limits: Limits
    shared: bool = False
    memory64: bool = False
    page_size_log2: int = 16


@dataclass(frozen=True, slots=True)
class GlobalType:
    value: ValType
    mutable: bool


@dataclass(frozen=True, slots=True)
class TagType:
    params: tuple[ValType, ...]


ExternType: TypeAlias = FuncType | TableType | MemoryType | GlobalType | TagType


def kind_of(t: ExternType) -> ExternKind:
    """The JS ``kind`` string for an extern type."""
    if isinstance(t, FuncType):
        return "function"
    if isinstance(t, TableType):
        return "table"
    if isinstance(t, MemoryType):
        return "memory"
    if isinstance(t, GlobalType):
        return "global"
    return "tag"


def crosses_boundary(t: ValType) -> bool:
    """Whether a value of this type can be passed between Python and wasm at all."""
    return t in JS_VALUE_TYPES


PAGE_SIZE: Final = 65536
MAX_PAGES: Final = 65536  # 4 GiB of 32-bit memory
MAX_TABLE_LENGTH: Final = 10_000_000  # the JS API's implementation limit on table size


def _valtype_text(t: ValType) -> str:
    return "funcref" if t == "anyfunc" else t


def _limits_text(limits: Limits) -> str:
    return f"{limits.minimum}" if limits.maximum is None else f"{limits.minimum} {limits.maximum}"


def wasm_text(t: ExternType) -> str:
    """``t`` in the text format's syntax, e.g. ``(memory 1 2)`` or
    ``(func (param i32) (result i32))``: how error messages name types."""
    if isinstance(t, FuncType):
        parts = ["func"]
        if t.params:
            parts.append(f"(param {' '.join(map(_valtype_text, t.params))})")
        if t.results:
            parts.append(f"(result {' '.join(map(_valtype_text, t.results))})")
        return f"({' '.join(parts)})"
    if isinstance(t, MemoryType):
        index = "i64 " if t.memory64 else ""
        shared = " shared" if t.shared else ""
        return f"(memory {index}{_limits_text(t.limits)}{shared})"
    if isinstance(t, TableType):
        index = "i64 " if t.table64 else ""
        return f"(table {index}{_limits_text(t.limits)} {_valtype_text(t.element)})"
    if isinstance(t, GlobalType):
        vt = _valtype_text(t.value)
        return f"(global (mut {vt}))" if t.mutable else f"(global {vt})"
    params = f" (param {' '.join(map(_valtype_text, t.params))})" if t.params else ""
    return f"(tag{params})"
