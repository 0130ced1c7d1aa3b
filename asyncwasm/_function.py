"""Exported WebAssembly functions (callables) and host functions (Python callables made
importable)."""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias

from ._context import StoreCell, StoreContext, StoreObject, handle_of
from ._engines import UncaughtWasmException
from ._engines._base import (
    ExternHandle,
    FuncHandle,
    InlineCall,
    InlineHost,
    StoreHandle,
    close_awaitable,
)
from ._tag import exception_from_engine
from ._types import FuncType, ValType
from ._values import (
    CANONICAL_TESTS,
    check_boundary_types,
    converts_from_engine,
    from_engine_converter,
    to_engine_converter,
    to_engine_value,
)

__all__ = [
    "CallParts",
    "Function",
    "forwarder",
    "host_function_handle",
    "refuse_awaitable",
    "results_to_engine",
]


class Function(StoreObject[FuncType | None], kind="function"):
    """An exported WebAssembly function (JS "Exported Function").

    Call it like any Python function. It checks the argument count (``TypeError`` for too few
    or too many), converts each argument by the contract's value rules, and returns ``None`` for
    no result, the value for one, and a ``tuple`` for several. A trap raises
    ``asyncwasm.RuntimeError``; an exception raised by a Python host function on the way comes
    out as the very same object; a wasm exception nothing caught comes out as
    ``asyncwasm.Exception``.

    The first call prepares a call path specialised to the signature (``_invoker``), kept for
    every later call: no per-call type checks, no generic conversion.
    """

    __slots__ = ("_invoke", "_promising")

    _invoke: Callable[..., Any]
    """What a call runs: first ``_first_call`` (which prepares), then the prepared path."""
    _promising: Callable[..., Any] | None
    """The prepared path of ``promising(self)`` calls (see ``_jspi``), once one was made: kept
    here, not per ``promising()`` object, so that ``await promising(f)(x)`` written inline
    prepares once."""

    def __init__(self) -> None:
        raise TypeError("Function objects come from instance exports; they can't be constructed")

    def _init(
        self, context: StoreContext, cell: StoreCell, handle: ExternHandle, type: FuncType | None
    ) -> None:
        super()._init(context, cell, handle, type)
        # A weak reference: the object must not keep itself alive (a cycle would leave every
        # function to the cycle collector).
        self._invoke = functools.partial(_first_call, weakref.ref(self))
        self._promising = None

    # Calling the object runs ``_invoke`` directly: ``__call__`` is the slot's own descriptor
    # (set below the class), so a call costs no Python frame of its own and no getter call
    # (issue 10). What it returns is ``Any``: None, a value, or a tuple of several, depending on
    # the signature.
    if TYPE_CHECKING:

        def __call__(self, *args: object) -> Any: ...

    @property
    def type(self) -> FuncType:
        """The function's parameter and result types."""
        if self._type is None:
            # A funcref that came out of a table, global or call: only the engine knows its type,
            # and it says None where asking could be unsafe (see Engine.func_type).
            found = self._context.engine.func_type(self._cell.handle, handle_of(self, FuncHandle))
            if found is None:
                raise TypeError(
                    f"the {self._context.engine_name} engine cannot tell this function's type "
                    "safely"
                )
            self._type = found
        return self._type

    def __repr__(self) -> str:
        t = self._type
        return f"<asyncwasm.Function {t if t is not None else '(type unknown)'}>"

    def call_parts(self, nargs: int) -> CallParts:
        """What a prepared call path of this function (plain or promising) is made of, checked
        as a call checks, in the same order: the argument count, then the signature's value
        types."""
        t = self.type
        if nargs != len(t.params):
            raise count_error(len(t.params), nargs)
        context = self._context
        check_boundary_types(t.params, context.features, "this function's signature")
        check_boundary_types(t.results, context.features, "this function's signature")
        cell = self._cell

        def uncaught(error: UncaughtWasmException) -> BaseException:
            return exception_from_engine(context, cell, error)

        def given_error(given: int) -> TypeError:
            return count_error(len(t.params), given)

        return CallParts(
            t,
            context,
            cell.handle,
            handle_of(self, FuncHandle),
            tuple(to_engine_converter(p, context) for p in t.params),
            given_error,
            uncaught,
        )

    def _prepare(self, nargs: int) -> Callable[..., Any]:
        """Make this function's call path (checking what a call checks, in the same order)."""
        t, context, store, func, to_engine, given_error, uncaught = self.call_parts(nargs)
        engine = context.engine
        inline: InlineCall | None = None
        if not any(converts_from_engine(r) for r in t.results):
            try:
                inline = engine.prepare_inline_call(store, func, t)
            except Exception:
                inline = None  # prepare_call below raises it, or not
        invoke: Callable[..., Any]
        if inline is not None:
            invoke = _inline_invoker(t, inline, context.features.exceptions)(
                _to_engine=to_engine, _count_error=given_error, _uncaught=uncaught, **inline.values
            )
            self._invoke = invoke
            return invoke
        try:
            caller = engine.prepare_call(store, func, t)
        except Exception:
            # What the engine refuses (a value type it can't pass: NotSupportedError) is raised
            # by each call, after the arguments were converted, as an unprepared call did.
            def caller(*args: object) -> object:
                return engine.prepare_call(store, func, t)(*args)

        invoke = _invoker(t)(
            caller,
            to_engine,
            tuple(from_engine_converter(r, context) for r in t.results),
            given_error,
            uncaught,
        )
        self._invoke = invoke
        return invoke


# ``function(*args)`` looks ``__call__`` up on the class and calls what its ``__get__`` gives:
# the member descriptor of the ``_invoke`` slot gives the slot's value, read in C.
setattr(Function, "__call__", Function.__dict__["_invoke"])  # noqa: B010  (mypy: a method)


def _first_call(ref: weakref.ref[Function], *args: object) -> Any:
    """A function's first call: prepare its call path, then run it."""
    function = ref()
    assert function is not None  # it is being called
    return function._prepare(len(args))(*args)


class CallParts(NamedTuple):
    """See ``Function.call_parts``."""

    type: FuncType
    context: StoreContext
    store: StoreHandle
    func: FuncHandle
    to_engine: tuple[Callable[[object], object], ...]
    """One converter per parameter."""
    count_error: Callable[[int], TypeError]
    """The error for a call given this many arguments."""
    uncaught: Callable[[UncaughtWasmException], BaseException]
    """The public exception for a wasm exception nothing caught."""


def count_error(expected: int, given: int) -> TypeError:
    return TypeError(
        f"this WebAssembly function takes {expected} argument"
        f"{'' if expected == 1 else 's'} ({given} given)"
    )


# -- per-signature code ---------------------------------------------------------------------------
# JS engines call wasm through wrappers made once per signature; so does this module. The source
# of a signature's call path is generated once per FuncType (cached) and closed over each
# function's engine caller: argument count and conversions are unrolled, and a value that is
# already canonical (CANONICAL_TESTS: an int in range, a float) costs one inline test.

_Factory: TypeAlias = Callable[..., Any]
_MISSING: Any = object()  # an argument not given (see ``_head``)
_INVOKERS: dict[FuncType, _Factory] = {}
_FORWARDERS: dict[tuple[ValType, ...], _Factory] = {}
_INLINE_INVOKERS: dict[tuple[FuncType, Hashable, bool], _Factory] = {}
_TRAMPOLINES: dict[FuncType, _Factory] = {}
_INLINE_TRAMPOLINES: dict[tuple[FuncType, Hashable, bool], _Factory] = {}
_FACTORY_LOCK = threading.Lock()
# Tests for i32/i64 parameters of an engine that wraps any int itself (``InlineCall.wraps_ints``).
_INT_TESTS: Final = {"i32": "{v}.__class__ is int", "i64": "{v}.__class__ is int"}


def _test(test: str) -> str:
    """A canonical test as fast code: CPython 3.10 calls ``type`` faster than it reads
    ``__class__`` (3.11 specialises the attribute, and the other way round)."""
    return test.replace("{v}.__class__", "type({v})") if _OLD_PYTHON else test


_OLD_PYTHON: Final = sys.version_info[:2] == (3, 10)


def _compile_factory(source: str, name: str, namespace: dict[str, Any] | None = None) -> _Factory:
    """The ``factory`` that ``source`` defines, run in ``namespace`` (its globals)."""
    if namespace is None:
        namespace = {}
    with _FACTORY_LOCK:  # ``namespace`` may be shared: read ``factory`` before another exec
        namespace.update(_Uncaught=UncaughtWasmException, _MISSING=_MISSING)
        exec(compile(source, f"<asyncwasm {name}>", "exec"), namespace)
        factory: _Factory = namespace.pop("factory")
    return factory


def _head(t: FuncType, wraps_ints: bool = False) -> list[str]:
    """The generated ``invoke``'s first lines (at factory level): its parameters ``a0``, ...,
    the count check and the conversion of each argument with ``_to_engine[i]``, skipped for a
    value that passes its canonical test (``CANONICAL_TESTS``; any int for i32/i64 where the
    engine wraps ints itself)."""
    n = len(t.params)
    names = [f"a{i}" for i in range(n)]
    # Positional-only parameters that default to a marker, and ``*_rest``: no tuple to build and
    # unpack per call. Arguments fill them in order, so the last one tells if any is missing.
    lines = [
        f"    def invoke({''.join(f'{a}=_MISSING, ' for a in names)}{'/, ' if n else ''}*_rest):",
        f"        if {f'{names[-1]} is _MISSING or ' if n else ''}_rest:",
        "            raise _count_error("
        + "".join(f"({a} is not _MISSING) + " for a in names)
        + "len(_rest))",
    ]
    tests = {**CANONICAL_TESTS, **_INT_TESTS} if wraps_ints else CANONICAL_TESTS
    for i, (vt, name) in enumerate(zip(t.params, names, strict=True)):
        test = tests.get(vt)
        test = test if test is None else _test(test)
        convert = f"{name} = _to_engine[{i}]({name})"
        if test is None:
            lines.append(f"        {convert}")
        elif test != "True":
            lines.append(f"        if not ({test.format(v=name)}): {convert}")
    return lines


def _invoker(t: FuncType) -> _Factory:
    """``factory(caller, to_engine, from_engine, count_error, uncaught) -> invoke(*args)`` for
    ``t``: ``to_engine``/``from_engine`` hold one converter per parameter/result (``None`` for
    the identity)."""
    factory = _INVOKERS.get(t)
    if factory is not None:
        return factory
    names = [f"a{i}" for i in range(len(t.params))]
    lines = [
        "def factory(_caller, _to_engine, _from_engine, _count_error, _uncaught):",
        *_head(t),
        "        try:",
        f"            r = _caller({', '.join(names)})",
        "        except _Uncaught as error:",
        "            raise _uncaught(error) from None",
    ]
    converters = [converts_from_engine(r) for r in t.results]
    if len(t.results) == 0:
        lines.append("        return None")
    elif len(t.results) == 1:
        lines.append("        return _from_engine[0](r)" if converters[0] else "        return r")
    elif not any(converters):
        lines.append("        return r")
    else:
        items = [
            f"_from_engine[{i}](r[{i}])" if conv else f"r[{i}]" for i, conv in enumerate(converters)
        ]
        lines.append(f"        return ({', '.join(items)},)")
    lines.append("    return invoke")
    factory = _compile_factory("\n".join(lines), f"call {t}")
    with _FACTORY_LOCK:
        return _INVOKERS.setdefault(t, factory)


def forwarder(t: FuncType) -> _Factory:
    """``factory(_caller, _to_engine, _count_error) -> invoke(*args)`` for ``t``: ``_invoker``'s
    count check and argument conversions, then ``_caller(a0, ...)`` returned as it is (a
    promising call's awaitable: its results are converted where it is awaited)."""
    factory = _FORWARDERS.get(t.params)
    if factory is not None:
        return factory
    names = [f"a{i}" for i in range(len(t.params))]
    lines = [
        "def factory(_caller, _to_engine, _count_error):",
        *_head(t),
        f"        return _caller({', '.join(names)})",
        "    return invoke",
    ]
    factory = _compile_factory("\n".join(lines), f"forward {t}")
    with _FACTORY_LOCK:
        return _FORWARDERS.setdefault(t.params, factory)


def _inline_invoker(t: FuncType, inline: InlineCall, throws: bool) -> _Factory:
    """``factory(_to_engine=, _count_error=, _uncaught=, **inline.values) -> invoke(*args)``
    for ``t``, whose results need no conversion: ``_invoker``'s checks and conversions with the
    engine's call path inlined (``Engine.prepare_inline_call``): one frame per call.
    ``throws``: whether wasm can throw (exception handling), else no ``_uncaught`` mapping."""
    key = (t, inline.key, throws)
    factory = _INLINE_INVOKERS.get(key)
    if factory is not None:
        return factory
    names = ", ".join(sorted(inline.values))
    if throws:
        body = [
            "        try:",
            *(f"            {line}" for line in inline.body),
            "        except _Uncaught as error:",
            "            raise _uncaught(error) from None",
        ]
    else:
        body = [f"        {line}" for line in inline.body]
    lines = [
        f"def factory(*, _to_engine, _count_error, _uncaught, {names}):",
        *(f"    {line}" for line in inline.setup),
        *_head(t, inline.wraps_ints),
        *body,
        "    return invoke",
    ]
    factory = _compile_factory("\n".join(lines), f"call {t} (inline)", inline.namespace)
    with _FACTORY_LOCK:
        return _INLINE_INVOKERS.setdefault(key, factory)


def _trampoline(t: FuncType) -> _Factory:
    """``factory(fn, from_engine, slow_results, isawaitable, refuse) -> trampoline(*args)`` for a
    host function of type ``t`` (see ``host_function_handle``)."""
    factory = _TRAMPOLINES.get(t)
    if factory is not None:
        return factory
    n = len(t.params)
    names = [f"a{i}" for i in range(n)]
    converters = [converts_from_engine(p) for p in t.params]
    args = [
        f"from_engine[{i}]({a})" if c else a
        for i, (a, c) in enumerate(zip(names, converters, strict=True))
    ]
    lines = [
        "def factory(fn, from_engine, slow_results, isawaitable, refuse):",
        f"    def trampoline({', '.join(names)}):",
        f"        result = fn({', '.join(args)})",
    ]
    if not t.results:
        lines.append("        if result is None: return ()")
    elif len(t.results) == 1:
        test = CANONICAL_TESTS.get(t.results[0])
        if test is not None:
            lines.append(f"        if {test.format(v='result')}: return (result,)")
    lines += [
        "        if isawaitable(result): refuse(result)",
        "        return slow_results(result)",
        "    return trampoline",
    ]
    factory = _compile_factory("\n".join(lines), f"host {t}")
    with _FACTORY_LOCK:
        return _TRAMPOLINES.setdefault(t, factory)


def _inline_trampoline(t: FuncType, inline: InlineHost) -> _Factory:
    """``factory(_fn=, _from_engine=, _slow_results=, _isawaitable=, _refuse=, **inline.values)
    -> trampoline(*args)``: ``_trampoline``'s with the engine's wrapper inlined (see
    ``Engine.func_new_inline``)."""
    key = (t, inline.key, inline.single)
    factory = _INLINE_TRAMPOLINES.get(key)
    if factory is not None:
        return factory
    names = [f"a{i}" for i in range(len(t.params))]
    args = [
        f"_from_engine[{i}]({a})" if converts_from_engine(p) else a
        for i, (a, p) in enumerate(zip(names, t.params, strict=True))
    ]
    lines = [
        f"def factory(*, _fn, _from_engine, _slow_results, _isawaitable, _refuse, "
        f"{', '.join(sorted(inline.values))}):",
        f"    def trampoline({', '.join(names)}):",
        "        try:",
        *(f"            {line}" for line in inline.before),
        f"            _result = _fn({', '.join(args)})",
    ]
    single = inline.single and len(t.results) == 1
    if not t.results:
        lines.append("            if _result is None: return ()")
    elif len(t.results) == 1:
        test = CANONICAL_TESTS.get(t.results[0])
        if test is not None:
            test = _test(test)
            value = "_result" if single else "(_result,)"
            lines.append(f"            if {test.format(v='_result')}: return {value}")
    lines += [
        "            if _isawaitable(_result): _refuse(_result)",
        f"            return _slow_results(_result){'[0]' if single else ''}",
        "        except BaseException as exc:",
        *(f"            {line}" for line in inline.failed),
        "            raise",
        "    return trampoline",
    ]
    factory = _compile_factory("\n".join(lines), f"host {t} (inline)", inline.namespace)
    with _FACTORY_LOCK:
        return _INLINE_TRAMPOLINES.setdefault(key, factory)


def results_to_engine(result: object, t: FuncType, context: StoreContext) -> tuple[object, ...]:
    """A host function's ``result`` as engine values of ``t``'s result types."""
    if not t.results:
        return ()
    if len(t.results) == 1:
        return (to_engine_value(result, t.results[0], context),)
    # JS: several results come from an iterable whose length must match.
    if not isinstance(result, Iterable) or isinstance(result, (str, bytes)):
        raise TypeError(
            f"a host function returning {len(t.results)} results must return an iterable"
        )
    values = list(result)
    if len(values) != len(t.results):
        raise TypeError(f"a host function must return {len(t.results)} results, not {len(values)}")
    return tuple(to_engine_value(v, r, context) for v, r in zip(values, t.results, strict=True))


def host_function_handle(
    context: StoreContext, cell: StoreCell, fn: Callable[..., object], t: FuncType
) -> FuncHandle:
    """An engine function of type ``t`` that calls the Python callable ``fn``.

    The trampoline (generated per signature, see ``_trampoline``) holds the context and ``fn``
    only, never the store, so that a store can be freed while the engine still holds it.
    """

    def slow_results(result: object) -> tuple[object, ...]:
        return results_to_engine(result, t, context)

    from_engine = tuple(from_engine_converter(p, context) for p in t.params)
    trampoline = _trampoline(t)(
        fn, from_engine, slow_results, inspect.isawaitable, refuse_awaitable
    )

    def make(inline: InlineHost) -> Callable[..., object]:
        made: Callable[..., object] = _inline_trampoline(t, inline)(
            _fn=fn,
            _from_engine=from_engine,
            _slow_results=slow_results,
            _isawaitable=inspect.isawaitable,
            _refuse=refuse_awaitable,
            **inline.values,
        )
        return made

    engine = context.engine
    handle = engine.func_new_inline(cell.handle, t, trampoline, make)
    return handle if handle is not None else engine.func_new(cell.handle, t, trampoline)


def refuse_awaitable(result: object) -> None:
    """A plain import returned the awaitable ``result``: close it and raise the contract's
    ``TypeError`` (an ``async def`` used as a plain import would otherwise be silently dropped,
    or fail converting a coroutine to a number)."""
    close_awaitable(result)
    raise TypeError(
        "a plain function import returned an awaitable; wrap the function in "
        "asyncwasm.Suspending(...) and call the export through asyncwasm.promising(...)"
    )
