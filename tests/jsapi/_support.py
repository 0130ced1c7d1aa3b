"""Shared helpers for the JS API ports.

Every ported subtest is a pytest test with a ``subtest`` parameter holding the exact upstream
subtest name (also used as the test id), so the manifest can refer to it::

    @subtest("Missing argument")
    def test_missing_argument(subtest: str) -> None: ...

    @cases("value", [("Out-of-range argument: NaN", math.nan), ...])
    def test_out_of_range(subtest: str, value: object) -> None: ...

Each test module also sets ``JS_FILE`` (the upstream file, relative to ``test/js-api``) and may
set ``NOT_APPLICABLE`` / ``ADAPTED`` (name -> reason) and ``NOT_APPLICABLE_PATTERNS`` (regex ->
reason); ``tools/jsapi_report.py sync`` builds ``manifest.json`` from those and the upstream
names, and ``test_manifest.py`` checks the two agree.
"""

from __future__ import annotations

import array
import json
import math
import mmap
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest

import asyncwasm

from .wasm_module_builder import EMPTY_MODULE, INVALID_MODULE

F = TypeVar("F", bound=Callable[..., Any])

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
PAGE = 65536


def subtest(name: str) -> Callable[[F], F]:
    """Mark a test as the port of one upstream subtest."""
    return pytest.mark.parametrize("subtest", [pytest.param(name, id=name)])


def cases(argnames: str, rows: Sequence[Sequence[Any]]) -> Callable[[F], F]:
    """Parametrise over upstream subtests generated in a loop: each row is ``(name, *values)``."""
    names = ["subtest", *(a.strip() for a in argnames.split(",") if a.strip())]
    return pytest.mark.parametrize(
        names, [pytest.param(row[0], *row[1:], id=row[0]) for row in rows]
    )


# --- manifest -----------------------------------------------------------------------------------
@cache
def load_manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    return data


def manifest_entries() -> dict[tuple[str, str], dict[str, Any]]:
    return {(entry["file"], entry["name"]): entry for entry in load_manifest()["subtests"]}


def js_name_repr(value: str) -> str:
    """WPT's ``format_value`` for a string, used in generated subtest names."""
    replacements = {0: "0", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r"}
    out = value.replace("\\", "\\\\")
    for code in range(32):
        rep = replacements.get(code, f"x{code:02x}")
        out = out.replace(chr(code), "\\" + rep)
    return '"' + out.replace('"', '\\"') + '"'


def engine_features() -> Any:
    """``runtime.features`` of the engine under test (the ``wasm_engine`` fixture sets
    ``$ASYNCWASM_ENGINE``)."""
    return asyncwasm.Runtime(engine=os.environ.get("ASYNCWASM_ENGINE") or None).features


# --- sources ------------------------------------------------------------------------------------
def empty_module() -> bytes:
    return EMPTY_MODULE


def invalid_module() -> bytes:
    return INVALID_MODULE


def shared_buffer(data: bytes) -> mmap.mmap:
    """Python's closest thing to a SharedArrayBuffer: an anonymous shared mapping."""
    m = mmap.mmap(-1, max(len(data), 1))
    m.write(data)
    if len(data) == 0:  # pragma: no cover - mmap can't be empty
        raise ValueError("empty")
    return m


def resizable_buffer(data: bytes) -> bytearray:
    """Python's closest thing to a resizable ArrayBuffer: a bytearray (it can grow)."""
    return bytearray(data)


def growable_shared_buffer(data: bytes) -> array.array[int]:
    """A growable buffer-protocol object other than bytearray: ``array.array('B')``."""
    return array.array("B", data)


# --- JS-like objects for "ToNumber side effects" tests ------------------------------------------
class Index:
    """An object with ``__index__`` (Python's analogue of JS ``{ valueOf() { return n } }``)."""

    def __init__(self, value: int, log: list[str] | None = None, label: str = "") -> None:
        self.value = value
        self.log = log
        self.label = label

    def __index__(self) -> int:
        if self.log is not None:
            self.log.append(f"{self.label} __index__")
        return self.value


class Untouchable:
    """An argument whose conversion fails the test (upstream's ``t.unreached_func``)."""

    def __index__(self) -> int:
        pytest.fail("should not convert the argument (__index__)")

    def __float__(self) -> float:
        pytest.fail("should not convert the argument (__float__)")

    def __int__(self) -> int:
        pytest.fail("should not convert the argument (__int__)")


class RecordingMapping(Mapping[str, Any]):
    """A read-only mapping that logs each key looked up (JS getters that record their order).

    ``contains_fails``: ``in`` raises, for upstream's "Proxy descriptor" tests that forbid
    [[HasProperty]].
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        log: list[str] | None = None,
        prefix: str = "",
        contains_fails: bool = False,
    ) -> None:
        self._values = dict(values)
        self.log = log if log is not None else []
        self._prefix = prefix
        self._contains_fails = contains_fails

    def __getitem__(self, key: str) -> Any:
        self.log.append(f"{self._prefix}{key}")
        value = self._values[key]
        return value() if callable(value) and not isinstance(value, type) else value

    def __contains__(self, key: object) -> bool:
        if self._contains_fails:
            pytest.fail(f"should not test for membership of {key!r}")
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# --- assertions ---------------------------------------------------------------------------------
def assert_module(module: object) -> None:
    assert isinstance(module, asyncwasm.Module)


def assert_released(view: memoryview) -> None:
    """A buffer from before ``grow()`` no longer gives access to memory (JS: detached)."""
    with pytest.raises(ValueError, match="released"):
        view[0]
    with pytest.raises(ValueError, match="released"):
        len(view)


def assert_buffer(view: object, size: int) -> None:
    """``view`` is a writable memoryview of ``size`` pages, zero at both ends."""
    assert isinstance(view, memoryview)
    assert not view.readonly
    assert view.nbytes == size * PAGE
    assert len(view.cast("B")) == size * PAGE
    if size:
        assert view[0] == 0
        assert view[view.nbytes - 1] == 0


def assert_buffer_size(view: object, size: int) -> None:
    assert isinstance(view, memoryview)
    assert not view.readonly
    assert view.nbytes == size * PAGE


def assert_memory(memory: object, size: int) -> None:
    assert isinstance(memory, asyncwasm.Memory)
    assert memory.buffer is memory.buffer, "buffer should be idempotent"
    assert_buffer(memory.buffer, size)


def assert_table(table: object, length: int) -> None:
    assert isinstance(table, asyncwasm.Table)
    assert table.length == length
    for i in range(length):
        assert table.get(i) is None


def assert_equal_to_array(table: Any, expected: Sequence[object]) -> None:
    """Upstream's ``assert_equal_to_array``: length, contents and the bounds of ``get``."""
    assert table.length == len(expected)
    with pytest.raises(TypeError):
        table.get(-1)
    for i, value in enumerate(expected):
        assert table.get(i) is value, f"table.get({i})"
    with pytest.raises(asyncwasm.RangeError):
        table.get(len(expected))
    with pytest.raises(asyncwasm.RangeError):
        table.get(len(expected) + 1)


def assert_global(glob: object, expected: object, *, identity: bool = False) -> None:
    """Upstream's ``assert_Global``: ``value`` and ``value_of()`` give ``expected`` (same type;
    with ``identity``, the very same object, as for externref)."""
    assert isinstance(glob, asyncwasm.Global)
    for got in (glob.value, glob.value_of()):
        if identity:
            assert got is expected
        else:
            assert type(got) is type(expected), (got, expected)
            assert got == expected


def assert_exported_function(fn: object) -> None:
    assert callable(fn)
    assert isinstance(fn, asyncwasm.Function)


def assert_instance(instance: object, expected_exports: Mapping[str, Mapping[str, Any]]) -> None:
    """Upstream's ``assert_Instance``: the exports mapping, its keys in order, and each value."""
    assert isinstance(instance, asyncwasm.Instance)
    assert instance.exports is instance.exports, "exports should be idempotent"
    exports = instance.exports
    assert list(exports) == list(expected_exports), "matching export keys"
    assert len(exports) == len(expected_exports)
    for key, expected in expected_exports.items():
        assert key in exports
        actual = exports[key]
        assert exports[key] is actual, f"{key}: identity"
        kind = expected["kind"]
        if kind == "function":
            assert_exported_function(actual)
        elif kind == "global":
            assert isinstance(actual, asyncwasm.Global)
            assert actual.value == expected["value"]
            assert actual.value_of() == expected["value"]
        elif kind == "memory":
            assert isinstance(actual, asyncwasm.Memory)
            assert_buffer(actual.buffer, expected["size"])
        elif kind == "table":
            assert isinstance(actual, asyncwasm.Table)
            assert actual.length == expected["length"]
        else:  # pragma: no cover
            raise AssertionError(kind)
    with pytest.raises(TypeError):
        exports["__new__"] = 1


def assert_instantiated_source(
    result: object, expected_exports: Mapping[str, Any] | None = None
) -> None:
    """Upstream's ``assert_WebAssemblyInstantiatedSource``: a (module, instance) pair."""
    assert isinstance(result, asyncwasm.InstantiatedSource)
    assert isinstance(result, tuple)
    module, instance = result
    assert module is result.module
    assert instance is result.instance
    assert_module(module)
    assert_instance(instance, expected_exports or {})


def class_name_check(cls: type, name: str) -> None:
    """Adapted ``name`` tests: the class is public under its JS name."""
    assert cls.__name__ == name
    assert getattr(asyncwasm, name) is cls


NO_THIS = "JS `this`-binding (calling the function with another receiver) has no Python equivalent: methods are bound and module functions take no receiver"
NO_LENGTH = "Function.length (arity reflected as a property) has no Python equivalent"
NO_NEW = (
    "calling a constructor without `new` has no Python equivalent (a class call is construction)"
)
NO_STRAY = (
    "Python rejects extra positional arguments with TypeError where JS ignores them; no equivalent"
)
NO_EXTENSIBLE = "JS object extensibility/prototype checks have no Python equivalent; the type is checked in the other subtests"
NO_TOSTRINGTAG = (
    "@@toStringTag / Object.prototype.toString have no Python equivalent (contract mapping table)"
)
NO_DESCRIPTOR = "property descriptors have no Python equivalent (contract mapping table)"
NO_SAB = "SharedArrayBuffer has no Python equivalent (contract mapping table)"
NO_JS_COERCION = "JS ToNumber/ToString coercion of strings or of objects via toString/valueOf returning another type has no Python equivalent; Python values are not coerced"
MEMORY64 = 'memory64 (`address: "i64"` descriptors) is not part of the asyncwasm contract'


# --- manifest <-> test modules ------------------------------------------------------------------
def module_name_for(js_file: str) -> str:
    """``module/customSections.any.js`` -> ``test_module_custom_sections`` (snake_case,
    ``.tentative`` dropped)."""
    stem = js_file.removesuffix(".any.js").removesuffix(".tentative")
    folder, _, name = stem.rpartition("/")
    if folder == name:  # js-promise-integration/js-promise-integration -> one part
        stem = name
    stem = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", stem).lower()
    return "test_" + re.sub(r"[^0-9a-z]+", "_", stem)


def collected_subtests(module: Any) -> list[str]:
    """The upstream subtest names a test module ports (from its ``subtest`` parametrisations)."""
    names: list[str] = []
    for attr, fn in vars(module).items():
        if not attr.startswith("test_") or not callable(fn):
            continue
        for mark in getattr(fn, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            argnames = mark.args[0]
            argnames = (
                [a.strip() for a in argnames.split(",")]
                if isinstance(argnames, str)
                else list(argnames)
            )
            if "subtest" not in argnames:
                continue
            position = argnames.index("subtest")
            for value in mark.args[1]:
                values = (
                    value.values
                    if hasattr(value, "values")
                    else (value if len(argnames) > 1 else (value,))
                )
                names.append(values[position])
    return names


def declared_status(module: Any, name: str, collected: set[str]) -> tuple[str, str | None]:
    """``(status, note)`` a test module declares for an upstream subtest name."""
    if name in collected:
        note = getattr(module, "ADAPTED", {}).get(name)
        if note is None:
            for pattern, why in getattr(module, "ADAPTED_PATTERNS", {}).items():
                if re.search(pattern, name):
                    note = why
                    break
        return ("adapted", note) if note else ("ported", None)
    why = getattr(module, "NOT_APPLICABLE", {}).get(name)
    if why is None:
        for pattern, reason in getattr(module, "NOT_APPLICABLE_PATTERNS", {}).items():
            if re.search(pattern, name):
                why = reason
                break
    return ("not_applicable", why) if why else ("missing", None)


# Values outside [0, 2**32) as the upstream descriptor tests list them (their labels are the JS
# spellings, which the subtest names use), and the wider set the index-taking methods reject.
OUT_OF_RANGE_U32: list[tuple[str, object]] = [
    ("NaN", math.nan),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
    ("-1", -1),
    ("4294967296", 0x100000000),
    ("68719476736", 0x1000000000),
]
OUT_OF_RANGE_INDEX: list[tuple[str, object]] = [
    ("undefined", None),
    *OUT_OF_RANGE_U32,
    ('"0x100000000"', "0x100000000"),
    ('object "[object Object]"', Index(0x100000000)),
]

# The ADAPTED entries of the BufferSource-taking constructors (compile, instantiate, validate,
# Module): how each JS buffer kind is stood in for in Python.
BUFFER_KINDS_ADAPTED = {
    "SharedArrayBuffer-backed view": "shared buffer = anonymous shared mmap",
    "Invalid module in SharedArrayBuffer": "shared buffer = anonymous shared mmap",
    "Resizable ArrayBuffer-backed view": "resizable buffer = bytearray",
    "Invalid module in resizable ArrayBuffer": "resizable buffer = bytearray",
    "Growable SharedArrayBuffer-backed view": "growable buffer = array.array('B')",
    "Invalid module in growable SharedArrayBuffer": "growable buffer = array.array('B')",
}
