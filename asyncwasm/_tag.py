"""``Tag`` and ``Exception``: WebAssembly exception handling (JS ``WebAssembly.Tag`` and
``WebAssembly.Exception``)."""

from __future__ import annotations

import builtins
import traceback
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ._args import MISSING, descriptor_field, enforce_range
from ._engines import UncaughtWasmException
from ._engines._base import EXCEPTION_MARKER
from ._exceptions import RangeError
from ._object import StoreObject
from ._runtime import Runtime, StoreCell, get_default_runtime
from ._types import TagType, canonical_value_type
from ._values import from_engine_value, to_engine_value

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Exception", "Tag", "exception_from_engine"]


class Tag(StoreObject[TagType | None]):
    """An exception tag: ``Tag(["i32", "f64"])`` or ``Tag({"parameters": ["i32"]})``.

    ``NotSupportedError`` on an engine without exception handling (wasmer).
    """

    __slots__ = ()

    def __init__(self, parameters: object, *, runtime: Runtime | None = None) -> None:
        if isinstance(parameters, Mapping):
            parameters = descriptor_field(parameters, "parameters", required=True)
        if isinstance(parameters, (str, bytes)) or not isinstance(parameters, Iterable):
            raise TypeError("a tag's parameters must be a sequence of value type names")
        names = list(parameters)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"a value type must be a str, not {type(name).__name__}")
        ttype = TagType(tuple(canonical_value_type(n) for n in names))
        rt = runtime if runtime is not None else get_default_runtime()
        cell = rt._store()
        handle = rt._engine.tag_new(cell.handle, ttype)
        self._init(rt, cell, handle, ttype)
        # Register it, so that an exception wasm throws with this tag carries this very object.
        rt._tags.setdefault(rt._engine.tag_key(handle), self)


    @property
    def type(self) -> TagType | None:
        """The tag's parameter types, or ``None`` for a tag wasm never exported to us."""
        return self._type

    def _key(self) -> object:
        return self._runtime._engine.tag_key(self._handle)

    def __repr__(self) -> str:
        params = "?" if self._type is None else ", ".join(self._type.params)
        return f"<asyncwasm.Tag ({params})>"


class Exception(builtins.Exception):
    """A WebAssembly exception: ``Exception(tag, payload, options=None)``.

    Raise it from a host function to throw it into wasm; an exception wasm throws and nothing
    catches comes out of the call as one of these. ``is_(tag)`` says whether it carries
    ``tag``; ``get_arg(tag, index)`` reads its payload (``is``/``getArg`` are the JS spellings).
    ``options={"traceStack": True}`` records the Python stack in ``stack``.
    """

    tag: Tag
    stack: str | None

    def __init__(self, tag: Tag, payload: Iterable[object], options: object = None) -> None:
        if not isinstance(tag, Tag):
            raise TypeError(f"expected an asyncwasm.Tag, not {type(tag).__name__}")
        if isinstance(payload, (str, bytes)) or not isinstance(payload, Iterable):
            raise TypeError("an exception's payload must be a sequence of values")
        values = list(payload)
        ttype = tag._type
        if ttype is None:
            raise TypeError(
                "this tag's parameter types are unknown: it can't be thrown from Python"
            )
        if len(values) != len(ttype.params):
            raise TypeError(
                f"the tag takes {len(ttype.params)} values, the payload has {len(values)}"
            )
        engine_values = tuple(
            to_engine_value(v, t, tag._runtime) for v, t in zip(values, ttype.params, strict=True)
        )
        trace = False
        if options is not None:
            if not isinstance(options, Mapping):
                raise TypeError("options must be a mapping such as {'traceStack': True}")
            trace_field = descriptor_field(options, "traceStack", required=False)
            trace = bool(trace_field) if trace_field is not MISSING else False
        super().__init__(f"WebAssembly exception with tag {tag!r}")
        self._setup(tag, engine_values, "".join(traceback.format_stack()) if trace else None)

    def _setup(self, tag: Tag, engine_values: tuple[object, ...], stack: str | None) -> None:
        self.tag = tag
        self._payload = engine_values
        self.stack = stack
        # The engine throws any Python exception carrying this marker into wasm as a wasm one.
        # The tag's type travels along: the engine can't read an exported tag's type safely.
        setattr(self, EXCEPTION_MARKER, (tag._handle, engine_values, tag._type))

    def is_(self, tag: Tag) -> bool:
        """Whether this exception carries ``tag`` (JS ``exception.is(tag)``)."""
        if not isinstance(tag, Tag):
            raise TypeError(f"expected an asyncwasm.Tag, not {type(tag).__name__}")
        return tag is self.tag or (
            tag._runtime is self.tag._runtime and tag._key() == self.tag._key()
        )

    def get_arg(self, tag: Tag, index: object) -> object:
        """The payload value at ``index`` (JS ``getArg``); ``TypeError`` when the exception
        does not carry ``tag``, ``RangeError`` when ``index`` is past the payload."""
        if not self.is_(tag):
            raise TypeError("this exception does not carry that tag")
        i = enforce_range(index, "index")
        if i >= len(self._payload):
            raise RangeError(f"index {i} is past the payload ({len(self._payload)} values)")
        ttype = self.tag._type
        value = self._payload[i]
        if ttype is None:
            return value
        return from_engine_value(value, ttype.params[i], self.tag._runtime)

    getArg = get_arg


# ``is`` is a Python keyword: reachable as getattr(exc, "is"), as the contract asks.
setattr(Exception, "is", Exception.is_)


def exception_from_engine(
    runtime: Runtime, cell: StoreCell, exc: UncaughtWasmException
) -> Exception:
    """The ``asyncwasm.Exception`` for a wasm exception that escaped a call."""
    tag = runtime._tag_for_handle(exc.tag, cell)
    error = Exception.__new__(Exception)
    builtins.Exception.__init__(error, f"uncaught WebAssembly exception with tag {tag!r}")
    payload: Sequence[object] = exc.payload
    error._setup(tag, tuple(payload), None)
    return error
