"""Python version of upstream's bad-imports.js: imports that instantiation must reject.

``bad_import_cases()`` gives ``(name, error, build, args)``: ``build(builder)`` adds the module's
imports and ``args()`` makes the positional arguments after the module (``()`` = omitted), at
test time so that asyncwasm objects belong to the test's runtime. JS values map to Python as in
the contract: undefined -> the key or argument is left out, null -> None, Symbol()/{} -> a plain
object/dict, ``Object.create(X.prototype)`` -> ``X.__new__(X)`` (an instance never initialised).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import asyncwasm

from .wasm_module_builder import (
    ValueType,
    WasmModuleBuilder,
    kSig_v_v,
    kWasmF32,
    kWasmF64,
    kWasmI32,
    kWasmI64,
)

MISSING = object()
"""JS ``undefined`` as a property value: the key is left out of the dict."""

VALUE_TYPES = {"i32": kWasmI32, "i64": kWasmI64, "f32": kWasmF32, "f64": kWasmF64}

BadCase = tuple[
    str, type[BaseException], Callable[[WasmModuleBuilder], Any], Callable[[], tuple[Any, ...]]
]


def _one(module: str, name: str, value: Any) -> tuple[Any, ...]:
    inner = {} if value is MISSING else {name: value}
    return ({module: inner},)


# Row factories (partial() of these rather than default-argument lambdas, which mypy cannot type).
def _tuple_of(make: Callable[[], object]) -> tuple[Any, ...]:
    return (make(),)


def _module_arg(make: Callable[[], object]) -> tuple[Any, ...]:
    value = make()
    return ({} if value is MISSING else {"module": value},)


def _one_made(name: str, make: Callable[[], object]) -> tuple[Any, ...]:
    return _one("module", name, make())


def _immutable_global(type_: str) -> tuple[Any, ...]:
    return _one("module", "global", asyncwasm.Global({"value": type_}, 0))


def _imported_global(wasm_type: ValueType, mutable: bool, b: WasmModuleBuilder) -> None:
    b.add_imported_global("module", "global", wasm_type, mutable)


def _no_imports(builder: WasmModuleBuilder) -> None:
    pass


def _fn_import(builder: WasmModuleBuilder) -> None:
    builder.add_import("module", "fn", kSig_v_v)


def _uninitialised(cls: type) -> Any:
    return cls.__new__(cls)  # type: ignore[call-overload]


# (format_value(value) as upstream names it, Python factory)
NON_OBJECT_IMPORTS = [
    ("true", lambda: True),
    ('""', lambda: ""),
    ('symbol "Symbol()"', lambda: object()),
    ("1", lambda: 1),
    ("0.1", lambda: 0.1),
    ("NaN", lambda: math.nan),
]
NON_OBJECT_MODULES = [
    ("undefined", lambda: MISSING),
    ("null", lambda: None),
    *NON_OBJECT_IMPORTS,
]
NON_FUNCTIONS = [*NON_OBJECT_MODULES, ('object "[object Object]"', lambda: {})]


def _non_globals(type_: str) -> list[tuple[str, Callable[[], Any]]]:
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("undefined", lambda: MISSING),
        ("null", lambda: None),
        ('""', lambda: ""),
        ('symbol "Symbol()"', lambda: object()),
        ("plain object", lambda: {}),
        ("WebAssembly.Global", lambda: asyncwasm.Global),
        ("Object.create(WebAssembly.Global.prototype)", lambda: _uninitialised(asyncwasm.Global)),
    ]
    if type_ in ("i32", "i64"):
        # A number of the wrong kind: JS BigInt for i32, Number for i64; in Python a float.
        rows.append(("Number" if type_ == "i64" else "BigInt", lambda: 0.0))
    wrong = "f64" if type_ == "f32" else "f32"
    rows.append(
        (
            "WebAssembly.Global object (wrong value type)",
            lambda: asyncwasm.Global({"value": wrong}),
        )
    )
    return rows


def _non_memories() -> list[tuple[str, Callable[[], Any]]]:
    return [
        *NON_OBJECT_MODULES,
        ("plain object", lambda: {}),
        ("WebAssembly.Memory", lambda: asyncwasm.Memory),
        ("Object.create(WebAssembly.Memory.prototype)", lambda: _uninitialised(asyncwasm.Memory)),
        ("WebAssembly.Memory object (too large)", lambda: asyncwasm.Memory({"initial": 256})),
    ]


def _non_tables() -> list[tuple[str, Callable[[], Any]]]:
    return [
        *NON_OBJECT_MODULES,
        ("plain object", lambda: {}),
        ("WebAssembly.Table", lambda: asyncwasm.Table),
        ("Object.create(WebAssembly.Table.prototype)", lambda: _uninitialised(asyncwasm.Table)),
        (
            "WebAssembly.Table object (too large)",
            lambda: asyncwasm.Table({"element": "anyfunc", "initial": 256}),
        ),
    ]


def bad_import_cases() -> list[BadCase]:
    rows: list[BadCase] = []
    for label, make in NON_OBJECT_IMPORTS:
        rows.append(
            (
                f"Non-object imports argument: {label}",
                TypeError,
                _no_imports,
                partial(_tuple_of, make),
            )
        )
    for label, make in NON_OBJECT_MODULES:
        rows.append(
            (
                f"Non-object module: {label}",
                TypeError,
                _fn_import,
                partial(_module_arg, make),
            )
        )
    rows.append(("Missing imports argument", TypeError, _fn_import, lambda: ()))
    rows.append(
        (
            "Imports argument with missing property: undefined",
            TypeError,
            _fn_import,
            lambda: (None,),
        )
    )
    rows.append(
        (
            "Imports argument with missing property: empty object",
            TypeError,
            _fn_import,
            lambda: ({},),
        )
    )
    rows.append(
        (
            "Imports argument with missing property: wrong property",
            TypeError,
            _fn_import,
            lambda: ({"module\0": None},),
        )
    )
    for label, make in NON_FUNCTIONS:
        rows.append(
            (
                f"Importing a function with an incorrectly-typed value: {label}",
                asyncwasm.LinkError,
                _fn_import,
                partial(_one_made, "fn", make),
            )
        )
    for type_, wasm_type in VALUE_TYPES.items():
        for label, make in _non_globals(type_):
            rows.append(
                (
                    f"Importing an {type_} global with an incorrectly-typed value: {label}",
                    asyncwasm.LinkError,
                    partial(_imported_global, wasm_type, False),
                    partial(_one_made, "global", make),
                )
            )
    for type_, wasm_type in VALUE_TYPES.items():
        rows.append(
            (
                f"Importing an {type_} mutable global with a primitive value",
                asyncwasm.LinkError,
                partial(_imported_global, wasm_type, True),
                lambda: _one("module", "global", 0),
            )
        )
        rows.append(
            (
                f"Importing an {type_} mutable global with an immutable Global object",
                asyncwasm.LinkError,
                partial(_imported_global, wasm_type, True),
                partial(_immutable_global, type_),
            )
        )
    for label, make in _non_memories():
        rows.append(
            (
                f"Importing memory with an incorrectly-typed value: {label}",
                asyncwasm.LinkError,
                lambda b: b.add_imported_memory("module", "memory", 0, 128),
                partial(_one_made, "memory", make),
            )
        )
    for label, make in _non_tables():
        rows.append(
            (
                f"Importing table with an incorrectly-typed value: {label}",
                asyncwasm.LinkError,
                lambda b: b.add_imported_table("module", "table", 0, 128),
                partial(_one_made, "table", make),
            )
        )
    return rows


NOT_APPLICABLE = {
    "Non-object imports argument: null": "None is the imports parameter's default in Python (it plays JS undefined), so it cannot be rejected",
    **{
        f"Importing an {t} global with an incorrectly-typed value: true": "bool is an int in Python (contract), a valid number for every number type"
        for t in VALUE_TYPES
    },
    **{
        f"Importing an {t} global with an incorrectly-typed value: WebAssembly.Global.prototype": "interface prototype objects have no Python equivalent"
        for t in VALUE_TYPES
    },
    "Importing memory with an incorrectly-typed value: WebAssembly.Memory.prototype": "interface prototype objects have no Python equivalent",
    "Importing table with an incorrectly-typed value: WebAssembly.Table.prototype": "interface prototype objects have no Python equivalent",
    **{
        f"Importing an {t} global with an incorrectly-typed value: BigInt": "a Python int is a valid value for f32/f64 (contract), so there is no wrong-kind integer"
        for t in ("f32", "f64")
    },
}

ADAPTED = {
    "Importing an i32 global with an incorrectly-typed value: BigInt": "the wrong-kind number is the float 0.0",
    "Importing an i64 global with an incorrectly-typed value: Number": "the wrong-kind number is the float 0.0",
    "Non-object module: undefined": "undefined -> the module key is left out",
    "Importing a function with an incorrectly-typed value: undefined": "undefined -> the key is left out",
    "Importing memory with an incorrectly-typed value: undefined": "undefined -> the key is left out",
    "Importing table with an incorrectly-typed value: undefined": "undefined -> the key is left out",
    **{
        f"Importing an {t} global with an incorrectly-typed value: undefined": "undefined -> the key is left out"
        for t in VALUE_TYPES
    },
}
ADAPTED_PATTERNS = {
    r"Object\.create\(WebAssembly\.\w+\.prototype\)": "Object.create(X.prototype) -> X.__new__(X), an instance never initialised",
    r'symbol "Symbol\(\)"': "Symbol() -> object()",
    r"with an incorrectly-typed value: WebAssembly\.(Global|Memory|Table)$": "the interface object -> the Python class",
}


def cases_with_prefix(prefix: str) -> list[tuple[str, type[BaseException], Any, Any]]:
    return [
        (f"{prefix}{name}", error, build, args)
        for name, error, build, args in bad_import_cases()
        if name not in NOT_APPLICABLE
    ]


def prefixed(prefix: str, notes: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}{name}": why for name, why in notes.items()}
