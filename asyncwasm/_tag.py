"""``Tag`` and ``Exception``: WebAssembly exception handling (JS ``WebAssembly.Tag`` and
``WebAssembly.Exception``)."""

from __future__ import annotations

import builtins
import traceback
from collections.abc import Iterable, Mapping

from ._args import MISSING, descriptor_field, enforce_range
from ._context import (
    RuntimeBase,
    StoreCell,
    StoreContext,
    StoreObject,
    context_for,
    context_of,
    handle_of,
    type_of,
)
from ._engines import UncaughtWasmException
from ._engines._base import TagHandle, Thrown, WasmThrowable
from ._exceptions import RangeError
from ._types import TagType, canonical_value_type
from ._values import from_engine_value, to_engine_value

__all__ = ["Exception", "Tag", "exception_from_engine"]


class Tag(StoreObject[TagType | None], kind="tag"):
    """An exception tag: ``Tag(["i32", "f64"])`` or ``Tag({"parameters": ["i32"]})``.

    ``NotSupportedError`` on an engine without exception handling (wasmer).
    """

    __slots__ = ()

    def __init__(self, parameters: object, *, runtime: RuntimeBase | None = None) -> None:
        if isinstance(parameters, Mapping):
            parameters = descriptor_field(parameters, "parameters", required=True)
        if isinstance(parameters, (str, bytes)) or not isinstance(parameters, Iterable):
            raise TypeError("a tag's parameters must be a sequence of value type names")
        names = list(parameters)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"a value type must be a str, not {type(name).__name__}")
        ttype = TagType(tuple(canonical_value_type(n) for n in names))
        context = context_for(runtime)
        cell = context.store()
        self._init(context, cell, context.engine.tag_new(cell.handle, ttype), ttype)
        # Register it, so that an exception wasm throws with this tag carries this very object.
        context.remember_tag(self)

    @property
    def type(self) -> TagType | None:
        """The tag's parameter types, or ``None`` for a tag wasm never exported to us."""
        return self._type

    def _same(self, other: Tag) -> bool:
        engine = self._context.engine
        return context_of(other) is self._context and engine.tag_key(
            handle_of(other, TagHandle)
        ) == engine.tag_key(handle_of(self, TagHandle))

    def __repr__(self) -> str:
        params = "?" if self._type is None else ", ".join(self._type.params)
        return f"<asyncwasm.Tag ({params})>"


class Exception(WasmThrowable):
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
        ttype = type_of(tag)
        if ttype is None:
            raise TypeError(
                "this tag's parameter types are unknown: it can't be thrown from Python"
            )
        if len(values) != len(ttype.params):
            raise TypeError(
                f"the tag takes {len(ttype.params)} values, the payload has {len(values)}"
            )
        engine_values = tuple(
            to_engine_value(v, t, context_of(tag))
            for v, t in zip(values, ttype.params, strict=True)
        )
        trace = False
        if options is not None:
            if not isinstance(options, Mapping):
                raise TypeError("options must be a mapping such as {'traceStack': True}")
            trace_field = descriptor_field(options, "traceStack", required=False)
            trace = bool(trace_field) if trace_field is not MISSING else False
        super().__init__(f"WebAssembly exception with tag {tag!r}")
        stack = "".join(traceback.format_stack()) if trace else None
        self._setup(tag, ttype, engine_values, stack)

    def _setup(
        self, tag: Tag, ttype: TagType | None, engine_values: tuple[object, ...], stack: str | None
    ) -> None:
        self.tag = tag
        self._payload = engine_values
        self.stack = stack
        # What the engine throws into wasm when a host function raises this exception. The
        # tag's type travels along: the engine can't read an exported tag's type safely.
        self.thrown = Thrown(handle_of(tag, TagHandle), engine_values, ttype)

    def is_(self, tag: Tag) -> bool:
        """Whether this exception carries ``tag`` (JS ``exception.is(tag)``)."""
        if not isinstance(tag, Tag):
            raise TypeError(f"expected an asyncwasm.Tag, not {type(tag).__name__}")
        return tag is self.tag or tag._same(self.tag)

    def get_arg(self, tag: Tag, index: object) -> object:
        """The payload value at ``index`` (JS ``getArg``); ``TypeError`` when the exception
        does not carry ``tag``, ``RangeError`` when ``index`` is past the payload."""
        if not self.is_(tag):
            raise TypeError("this exception does not carry that tag")
        i = enforce_range(index, "index")
        if i >= len(self._payload):
            raise RangeError(f"index {i} is past the payload ({len(self._payload)} values)")
        ttype = type_of(self.tag)
        value = self._payload[i]
        if ttype is None:
            return value
        return from_engine_value(value, ttype.params[i], context_of(self.tag))

    getArg = get_arg


# ``is`` is a Python keyword: reachable as getattr(exc, "is"), as the contract asks.
setattr(Exception, "is", Exception.is_)


def exception_from_engine(
    context: StoreContext, cell: StoreCell, exc: UncaughtWasmException
) -> Exception:
    """The ``asyncwasm.Exception`` for a wasm exception that escaped a call."""
    tag = context.tag_for_handle(exc.tag, cell)
    assert isinstance(tag, Tag)
    error = Exception.__new__(Exception)
    builtins.Exception.__init__(error, f"uncaught WebAssembly exception with tag {tag!r}")
    error._setup(tag, type_of(tag), tuple(exc.payload), None)
    return error
