"""Issue 10: the per-signature call paths (exported functions and host trampolines) agree with the
contract's reference conversion (``to_engine_value`` / ``from_engine_value`` and the engine's
generic ``call``) on random signatures and values, edge values of ``test_values.py`` included:
same results, same exception type and message, same object identity for references."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncwasm
from asyncwasm import Instance, Module
from asyncwasm._context import context_of, handle_of
from asyncwasm._engines._base import FuncHandle
from asyncwasm._values import from_engine_value, to_engine_value


class Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Index({self.value})"


_CODES = {
    "i32": b"\x7f",
    "i64": b"\x7e",
    "f32": b"\x7d",
    "f64": b"\x7c",
    "v128": b"\x7b",
    "anyfunc": b"\x70",
    "externref": b"\x6f",
}


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def _section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + _leb(len(body)) + body


def _name(s: str) -> bytes:
    return _leb(len(s)) + s.encode()


def echo_module(params: tuple[str, ...], results: tuple[str, ...]) -> bytes:
    """``echo`` (params) -> (params): returns its arguments; ``via_host`` (params) -> (results):
    calls the import ``env.h`` of that type with its arguments; ``seven`` () -> i32, a function
    to pass as a funcref."""
    echo_t = b"\x60" + _vec([_CODES[t] for t in params]) + _vec([_CODES[t] for t in params])
    host_t = b"\x60" + _vec([_CODES[t] for t in params]) + _vec([_CODES[t] for t in results])
    seven_t = b"\x60\x00\x01\x7f"
    gets = b"".join(b"\x20" + _leb(i) for i in range(len(params)))

    def code(body: bytes) -> bytes:
        return _leb(len(body) + 1) + b"\x00" + body

    return (
        b"\0asm\x01\0\0\0"
        + _section(1, _vec([echo_t, host_t, seven_t]))
        + _section(2, _vec([_name("env") + _name("h") + b"\x00\x01"]))
        + _section(3, _vec([b"\x00", b"\x01", b"\x02"]))
        + _section(
            7,
            _vec(
                [
                    _name("echo") + b"\x00\x01",
                    _name("via_host") + b"\x00\x02",
                    _name("seven") + b"\x00\x03",
                ]
            ),
        )
        + _section(
            10,
            _vec([code(gets + b"\x0b"), code(gets + b"\x10\x00\x0b"), code(b"\x41\x07\x0b")]),
        )
    )


# -- values: edge values of test_values.py, random ones, and wrong ones --------------------------

_INT_EDGES = [0, -1, 2**31 - 1, 2**31, 2**32, 2**32 + 5, -(2**31) - 1, -(2**100) + 3, True]
_INT_EDGES += [2**63 - 1, 2**63, 2**64 + 9, -(2**64) - 1, -(2**63)]
_FLOAT_EDGES: list[object] = [0.1, 1e-50, -1e-50, -0.0, 16777217, 3.4028235e38, 1e39, -1e39]
_FLOAT_EDGES += [3.4028235677973362e38, 3.4028235677973366e38, 2**200, -(2**2000), math.inf]
_FLOAT_EDGES += [-math.inf, math.nan, 2**53 + 1, 5, True, Fraction(1, 4), 10**400, -(10**400)]
_WRONG: list[object] = [1.5, 1.0, "1", None, b"1", 1j, [1], Fraction(1, 1)]

_OBJECTS = [object(), "text", 7, None, 2.5]


def _values(t: str, seven: object) -> st.SearchStrategy[object]:
    if t in ("i32", "i64"):
        return st.one_of(
            st.sampled_from(_INT_EDGES),
            st.integers(-(2**70), 2**70),
            st.integers(-(2**70), 2**70).map(Index),
            st.sampled_from(_WRONG),
        )
    if t in ("f32", "f64"):
        return st.one_of(
            st.sampled_from(_FLOAT_EDGES),
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-(2**70), 2**70),
            st.sampled_from(_WRONG),
        )
    if t == "v128":
        return st.one_of(st.integers(0, 2**128 - 1), st.sampled_from([-1, 2**128, 1.5]))
    if t == "externref":
        return st.sampled_from(_OBJECTS)
    return st.sampled_from([None, seven, None, lambda: 7])  # anyfunc


def _types(runtime: asyncwasm.Runtime) -> list[str]:
    types = ["i32", "i64", "f32", "f64"]
    if runtime.features.reference_values:
        types += ["externref", "anyfunc"]
    if runtime.features.v128:
        types.append("v128")
    return types


# -- comparing -------------------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int) and isinstance(b, int):
        return a == b and type(a) is type(b)
    return a is b


def _outcome(fn: Any, *args: object) -> tuple[str, object]:
    try:
        return "ok", fn(*args)
    except Exception as error:  # the same class and message is what must agree
        return "error", (type(error), str(error))


def _agree(fast: tuple[str, object], reference: tuple[str, object]) -> None:
    assert fast[0] == reference[0], (fast, reference)
    if fast[0] == "error":
        assert fast[1] == reference[1]
    else:
        assert _same(fast[1], reference[1]), (fast, reference)


def _reference_call(fn: asyncwasm.Function, args: tuple[object, ...]) -> object:
    """The generic path: the contract's conversions and the engine's checked ``call``."""
    t = fn.type
    context = context_of(fn)
    values = [to_engine_value(a, p, context) for a, p in zip(args, t.params, strict=True)]
    store = fn._cell.handle
    results = context.engine.call(store, handle_of(fn, FuncHandle), t, values)
    out = tuple(from_engine_value(v, r, context) for v, r in zip(results, t.results, strict=True))
    if not out:
        return None
    return out[0] if len(out) == 1 else out


@st.composite
def _case(draw: st.DrawFn, types: list[str], multi: bool) -> Any:
    params = tuple(draw(st.lists(st.sampled_from(types), max_size=5)))
    results = tuple(draw(st.lists(st.sampled_from(types), max_size=4 if multi else 1)))
    return params, results, draw(st.randoms(use_true_random=False))


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_fast_paths_agree_with_the_reference(runtime: asyncwasm.Runtime) -> None:
    types = _types(runtime)
    # Multi-value echo needs as many results as parameters.
    multi = runtime.features.multi_value

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=_case(types, multi), data=st.data())
    def check(case: Any, data: st.DataObject) -> None:
        params, results, _random = case
        if not multi and len(params) > 1:
            params = params[:1]
        received: list[tuple[object, ...]] = []
        returned: list[object] = []

        def h(*args: object) -> object:
            received.append(args)
            return returned[0]

        exports = Instance(Module(echo_module(params, results)), {"env": {"h": h}}).exports
        seven = exports.seven
        args = tuple(data.draw(_values(t, seven)) for t in params)

        # Exported function: the prepared path against the generic one, twice (the first call
        # prepares, the second uses what was prepared).
        echo = exports.echo
        for _ in range(2):
            _agree(_outcome(echo, *args), _outcome(_reference_call, echo, args))

        # Host function: what it receives is what the reference conversion gives; what it
        # returns is converted as the reference converts it.
        host_values = tuple(data.draw(_values(t, seven)) for t in results)
        returned.append(host_values[0] if len(results) == 1 else host_values)
        if not results:
            returned[0] = None
        context = context_of(echo)
        try:
            expected_args: object = tuple(
                from_engine_value(to_engine_value(a, t, context), t, context)
                for a, t in zip(args, params, strict=True)
            )
        except TypeError:
            expected_args = None  # the call is refused before the host function runs
        try:
            expected: tuple[str, object] = (
                "ok",
                tuple(
                    from_engine_value(to_engine_value(v, t, context), t, context)
                    for v, t in zip(host_values, results, strict=True)
                ),
            )
            expected_value = expected[1]
            assert isinstance(expected_value, tuple)
            if not expected_value:
                expected = ("ok", None)
            elif len(expected_value) == 1:
                expected = ("ok", expected_value[0])
        except TypeError as error:
            expected = ("error", (TypeError, str(error)))
        outcome = _outcome(exports.via_host, *args)
        if expected_args is None:
            assert outcome[0] == "error"
            assert not received
            return
        assert len(received) == 1
        assert _same(received[0], expected_args), (received, expected_args)
        _agree(outcome, expected)

    check()
