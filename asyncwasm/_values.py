"""Values at the boundary: the JS API's ToWebAssemblyValue and ToJSValue, for Python.

User values are converted here into *engine values* (see ``_engines/_base.py``), and engine
values back into user values. The rules are the contract's table: i32/i64 wrap modulo 2**N and
refuse floats; f32 rounds to the nearest float32; externref is any object (``None`` is null);
anyfunc is ``None`` or an exported wasm function.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable
from typing import Final

from ._context import StoreContext, StoreObject, context_of, handle_of
from ._engines import EngineFeatures
from ._engines._base import FuncHandle
from ._types import NUMBER_TYPES, ValType

_F32: Final = struct.Struct("<f")
_V128_LIMIT: Final = 1 << 128


def wrap_signed(value: int, bits: int) -> int:
    """``value`` modulo 2**bits, as a signed integer (JS ToInt32 / BigInt.asIntN)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def round_f32(value: float) -> float:
    """The nearest float32 to ``value`` (JS Math.fround)."""
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except OverflowError:
        # struct refuses finite values that round past FLT_MAX; IEEE rounding gives infinity.
        return math.copysign(math.inf, value)


def _to_int(value: object, type_name: str) -> int:
    if isinstance(value, float):
        raise TypeError(f"cannot convert float {value!r} to {type_name}: pass an int")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"cannot convert {type(value).__name__} to {type_name}: expected an int"
        ) from None


def _to_float(value: object, type_name: str) -> float:
    if isinstance(value, (str, bytes, complex)) or value is None:
        raise TypeError(f"cannot convert {type(value).__name__} to {type_name}: expected a number")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            # copysign(inf, value) would convert value to float again and overflow again.
            return math.inf if value > 0 else -math.inf
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            f"cannot convert {type(value).__name__} to {type_name}: expected a number"
        ) from None


def to_engine_value(value: object, t: ValType, context: StoreContext) -> object:
    """ToWebAssemblyValue: a user value for a wasm value of type ``t``.

    Raises ``TypeError`` for a value that does not fit the type, as JS does.
    """
    if t == "i32":
        return wrap_signed(_to_int(value, t), 32)
    if t == "i64":
        return wrap_signed(_to_int(value, t), 64)
    if t == "f32":
        return round_f32(_to_float(value, t))
    if t == "f64":
        return _to_float(value, t)
    if t == "externref":
        return value
    if t == "anyfunc":
        if value is None:
            return None
        # An asyncwasm.Function (the class registers as kind "function"; see _context).
        if (
            isinstance(value, StoreObject)
            and value.kind == "function"
            and context_of(value) is context
        ):
            return handle_of(value, FuncHandle)
        raise TypeError(
            "an anyfunc (funcref) value must be None or an exported WebAssembly function "
            f"of the same runtime, not {type(value).__name__}"
        )
    if t == "v128":
        if not context.features.v128:
            raise TypeError(f"v128 values cannot cross the boundary on {context.engine_name}")
        number = _to_int(value, t)
        if not 0 <= number < _V128_LIMIT:
            raise TypeError("a v128 value must be an int in [0, 2**128)")
        return number
    raise TypeError(f"values of type {t} cannot cross the boundary between Python and wasm")


def from_engine_value(value: object, t: ValType, context: StoreContext) -> object:
    """ToJSValue: an engine value of type ``t`` as the user sees it."""
    if t in NUMBER_TYPES or t in ("externref", "v128"):
        return value
    if t == "anyfunc":
        if value is None:
            return None
        if not isinstance(value, FuncHandle):
            raise TypeError(f"expected a function handle from the engine, got {value!r}")
        return context.function_for_handle(value)
    raise TypeError(f"values of type {t} cannot cross the boundary between Python and wasm")


# -- what the per-signature call paths (``_function``) need ------------------------------------
# A value that passes its type's test below is already what ``to_engine_value`` would make of it,
# so a generated call path skips the conversion call for it (the common case: an ``int`` in
# range for i32/i64, a ``float`` for f64). Anything else goes through ``to_engine_value``, which
# wraps, rounds or raises exactly as the contract says.
CANONICAL_TESTS: Final[dict[str, str]] = {
    "i32": "{v}.__class__ is int and -0x80000000 <= {v} <= 0x7FFFFFFF",
    "i64": "{v}.__class__ is int and -0x8000000000000000 <= {v} <= 0x7FFFFFFFFFFFFFFF",
    "f64": "{v}.__class__ is float",
    "externref": "True",
}
"""Per value type, a Python expression (``{v}``: the value) true when ``to_engine_value`` would
return the value unchanged; "True" when it always does. Types not listed are always converted."""


def to_engine_converter(t: ValType, context: StoreContext) -> Callable[[object], object]:
    """``to_engine_value`` for one type and context, chosen once (per-signature call paths)."""

    def convert(value: object) -> object:
        return to_engine_value(value, t, context)

    return convert


def converts_from_engine(t: ValType) -> bool:
    """Whether ``from_engine_value`` does anything for ``t`` (else it is the identity)."""
    return not (t in NUMBER_TYPES or t in ("externref", "v128"))


def from_engine_converter(t: ValType, context: StoreContext) -> Callable[[object], object] | None:
    """``from_engine_value`` for one type and context, or ``None`` where it is the identity."""
    if not converts_from_engine(t):
        return None

    def convert(value: object) -> object:
        return from_engine_value(value, t, context)

    return convert


def default_value(t: ValType) -> object:
    """The JS DefaultValue of a type: zero for numbers, null for references."""
    if t in ("i32", "i64", "v128"):
        return 0
    if t in ("f32", "f64"):
        return 0.0
    return None


def check_boundary_types(types: tuple[ValType, ...], features: EngineFeatures, what: str) -> None:
    """Refuse a signature with types that cannot cross the boundary (``TypeError``, as JS
    does for v128 and non-JS types), before any engine sees it."""
    for t in types:
        if t in NUMBER_TYPES or t in ("externref", "anyfunc"):
            continue
        if t == "v128" and features.v128:
            continue
        raise TypeError(f"{what} has a value of type {t}, which cannot cross the boundary")
