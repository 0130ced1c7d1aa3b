"""``Table`` (issue #3, part 4): constructor, ``length``, ``get``, ``set``, ``grow``, funcref and
externref elements, on every engine under test (``NotSupportedError`` where the engine can't)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Function, Instance, Module, NotSupportedError, RangeError, Table

TABLES = wat(
    """
    (module
      (type $ret (func (result i32)))
      (table $funcs (export "funcs") 3 10 funcref)
      (table $refs (export "refs") 2 externref)
      (func $seven (result i32) i32.const 7)
      (func $hidden (result i32) i32.const 8)
      (export "seven" (func $seven))
      (elem (table $funcs) (i32.const 0) func $seven $hidden)
      (func (export "call") (param i32) (result i32) local.get 0 call_indirect $funcs (type $ret))
      (func (export "get_ref") (param i32) (result externref) local.get 0 table.get $refs)
      (func (export "set_ref") (param i32 externref) local.get 0 local.get 1 table.set $refs))
    """
)

IMPORTS_TABLE = wat(
    """
    (module
      (type $ret (func (result i32)))
      (import "env" "t" (table 2 funcref))
      (func (export "call") (param i32) (result i32) local.get 0 call_indirect (type $ret))
      (func (export "size") (result i32) table.size 0))
    """
)


def _unsupported(runtime: asyncwasm.Runtime, action: Callable[[], object]) -> None:
    with pytest.raises(NotSupportedError) as info:
        action()
    assert runtime.engine in str(info.value)


@pytest.fixture
def exports(runtime: asyncwasm.Runtime) -> asyncwasm.Exports:
    return Instance(Module(TABLES)).exports


def test_exported_table_length_works_everywhere(exports: asyncwasm.Exports) -> None:
    assert isinstance(exports.funcs, Table)
    assert exports.funcs.length == 3
    assert exports.refs.length == 2
    assert exports.funcs.type.element == "anyfunc"
    assert exports.funcs.type.limits.maximum == 10
    assert "anyfunc" in repr(exports.funcs)


def test_exported_funcref_table(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    table = exports.funcs
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: table.get(0))
        _unsupported(runtime, lambda: table.set(2, exports.seven))
        _unsupported(runtime, lambda: table.grow(1))
        assert table.length == 3
        return
    assert table.get(0) is exports.seven
    assert table.get(0) is table.get(0)
    hidden = table.get(1)
    assert isinstance(hidden, Function)
    assert hidden is table.get(1)
    assert hidden() == 8  # a function that was never exported by name is callable too
    assert hidden.type.results == ("i32",)
    assert table.get(2) is None
    table.set(2, exports.seven)
    assert table.get(2) is exports.seven
    assert exports.call(2) == 7
    table.set(2)  # no value: null
    assert table.get(2) is None
    with pytest.raises(asyncwasm.RuntimeError) as trap:
        exports.call(2)
    assert trap.value.trap == "indirect_call_to_null"
    table.set(1, None)
    assert table.get(1) is None


def test_funcref_table_refuses_other_values(
    runtime: asyncwasm.Runtime, exports: asyncwasm.Exports
) -> None:
    for bad in [lambda: 7, 7, "f", object()]:
        with pytest.raises((TypeError, NotSupportedError)):
            exports.funcs.set(0, bad)
    if runtime.features.host_tables:
        with pytest.raises(TypeError):
            exports.funcs.set(0, lambda: 7)
        assert exports.funcs.get(0) is exports.seven


def test_table_grow(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    table = exports.funcs
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: table.grow(1, exports.seven))
        return
    assert table.grow(2, exports.seven) == 3
    assert table.length == 5
    assert table.get(3) is exports.seven
    assert table.get(4) is exports.seven
    assert table.grow(1) == 5
    assert table.get(5) is None
    assert table.grow(0) == 6
    with pytest.raises(RangeError):
        table.grow(5)  # past the maximum of 10
    assert table.length == 6
    with pytest.raises(TypeError):
        table.grow(-1)


def test_table_index_errors(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    table = exports.funcs
    with pytest.raises(RangeError):
        table.get(3)
    with pytest.raises(RangeError):
        table.set(3, None)
    for bad in [-1, 1.5, "0", None, 2**32]:
        with pytest.raises(TypeError):
            table.get(bad)


def test_exported_externref_table(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    table = exports.refs
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: table.get(0))
        _unsupported(runtime, lambda: table.set(0, "x"))
        return
    assert table.get(0) is None
    for value in [object(), 0, "", False, [], None, table]:
        table.set(1, value)
        assert table.get(1) is value
        assert exports.get_ref(1) is value
    marker = object()
    exports.set_ref(0, marker)
    assert table.get(0) is marker
    assert table.grow(1, marker) == 2
    assert table.get(2) is marker


@pytest.mark.parametrize(
    ("args", "element", "length", "maximum"),
    [
        (("anyfunc", 2), "anyfunc", 2, None),
        (("funcref", 1, 4), "anyfunc", 1, 4),
        (("externref", 0), "externref", 0, None),
        (({"element": "anyfunc", "initial": 3},), "anyfunc", 3, None),
        (({"element": "externref", "initial": 1, "maximum": 2},), "externref", 1, 2),
        (({"element": "funcref", "minimum": 2},), "anyfunc", 2, None),
    ],
)
def test_constructor_forms(
    runtime: asyncwasm.Runtime,
    args: tuple[object, ...],
    element: str,
    length: int,
    maximum: int | None,
) -> None:
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: Table(*args))
        return
    table = Table(*args)
    assert table.length == length
    assert table.type.element == element
    assert table.type.limits.maximum == maximum
    for i in range(length):
        assert table.get(i) is None


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("i32", 1),
        ("anything", 1),
        (1, 1),
        ("anyfunc",),
        ("anyfunc", -1),
        ("anyfunc", 1.5),
        ("anyfunc", 1, "2"),
        ({"initial": 1},),
        ({"element": "anyfunc"},),
        ({"element": "i64", "initial": 1},),
    ],
)
def test_constructor_type_errors(runtime: asyncwasm.Runtime, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        Table(*args)


@pytest.mark.parametrize("args", [("anyfunc", 2, 1), ("externref", 10_000_001)])
def test_constructor_range_errors(runtime: asyncwasm.Runtime, args: tuple[object, ...]) -> None:
    with pytest.raises(RangeError):
        Table(*args)


def test_constructor_initial_value(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    marker = object()
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: Table("externref", 2, None, marker))
        return
    table = Table("externref", 2, None, marker)
    assert table.get(0) is marker
    assert table.get(1) is marker
    table2 = Table({"element": "externref", "initial": 1}, marker)
    assert table2.get(0) is marker
    funcs = Table("anyfunc", 2, 5, exports.seven)
    assert funcs.get(1) is exports.seven
    with pytest.raises(TypeError):
        Table("anyfunc", 1, None, lambda: 1)


def test_host_table_as_import(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: Table("anyfunc", 2))
        return
    table = Table("anyfunc", 2)
    table.set(1, exports.seven)
    imported = Instance(Module(IMPORTS_TABLE), {"env": {"t": table}}).exports
    assert imported.call(1) == 7
    with pytest.raises(asyncwasm.RuntimeError) as trap:
        imported.call(0)
    assert trap.value.trap == "indirect_call_to_null"
    table.grow(3)
    assert imported.size() == 5
    with pytest.raises(asyncwasm.LinkError):
        Instance(Module(IMPORTS_TABLE), {"env": {"t": Table("anyfunc", 1)}})
    with pytest.raises(asyncwasm.LinkError):
        Instance(Module(IMPORTS_TABLE), {"env": {"t": Table("externref", 2)}})


def test_exported_table_as_import(runtime: asyncwasm.Runtime, exports: asyncwasm.Exports) -> None:
    imported = Instance(Module(IMPORTS_TABLE), {"env": {"t": exports.funcs}}).exports
    assert imported.call(0) == 7
    assert imported.call(1) == 8
    assert imported.size() == 3


def test_null_into_exported_tables_of_each_element_type(runtime: asyncwasm.Runtime) -> None:
    """None fits both element types: the engine must write the right kind of null, also into an
    empty table whose element type it has not seen yet."""
    module = Module(
        wat(
            """
            (module
              (table (export "full_ext") 2 externref) (table (export "empty_ext") 0 externref)
              (table (export "full_fn") 2 funcref) (table (export "empty_fn") 0 funcref)
              (func (export "ext_is_null") (param i32) (result i32)
                local.get 0 table.get 1 ref.is_null))
            """
        )
    )
    exports = Instance(module).exports
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: exports.full_ext.set(0, None))
        _unsupported(runtime, lambda: exports.empty_ext.grow(1))
        return
    for name in ["full_ext", "full_fn"]:
        table = exports[name]
        assert isinstance(table, asyncwasm.Table)
        table.set(0, None)
        assert table.get(0) is None
        assert table.grow(1) == 2
        assert table.get(2) is None
    for name in ["empty_ext", "empty_fn"]:
        table = exports[name]
        assert isinstance(table, asyncwasm.Table)
        assert table.grow(2) == 0
        assert table.get(1) is None
        table.set(1)
        assert table.length == 2
    assert exports.ext_is_null(1) == 1
    exports.empty_ext.set(0, "x")
    assert exports.empty_ext.get(0) == "x"
    assert exports.ext_is_null(0) == 0


def test_descriptor_read_in_js_order(runtime: asyncwasm.Runtime) -> None:
    from test_memory import _Logged, _LoggedIndex

    log: list[str] = []
    values: dict[str, object] = {
        "maximum": _LoggedIndex(3, log, "maximum"),
        "initial": _LoggedIndex(1, log, "initial"),
        "element": "anyfunc",
    }
    expected = ["element", "initial", "initial converted", "maximum", "maximum converted"]
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: Table(_Logged(values, log)))
        assert log == expected  # arguments are checked before the engine refuses
        return
    table = Table(_Logged(values, log))
    assert log == expected
    assert table.length == 1


LIMIT = 10_000_000  # the JS API's embedder limit on a table's length


def test_table_length_limit(runtime: asyncwasm.Runtime) -> None:
    with pytest.raises(RangeError):
        Table("anyfunc", LIMIT + 1)
    if not runtime.features.host_tables:
        _unsupported(runtime, lambda: Table("anyfunc", 1, LIMIT + 1))
        return
    table = Table({"element": "anyfunc", "initial": 1, "maximum": LIMIT + 1})  # a maximum is fine
    with pytest.raises(RangeError):
        table.grow(LIMIT)
    assert table.length == 1


def test_instantiating_a_table_over_the_limit_is_range_error(runtime: asyncwasm.Runtime) -> None:
    try:
        module = Module(wat(f"(module (table {LIMIT + 1} funcref))"))
    except asyncwasm.CompileError:
        assert runtime.engine == "wasmer"  # wasmer 1.1 refuses such a table at compile time
        return
    with pytest.raises(RangeError):
        Instance(module)


def test_wasm_table_grow_past_the_limit_fails(runtime: asyncwasm.Runtime) -> None:
    exports = Instance(
        Module(
            wat(
                """
                (module (table 1 funcref)
                  (func (export "grow") (param i32) (result i32)
                    ref.null func local.get 0 table.grow 0))
                """
            )
        )
    ).exports
    # wasmer has no hook to limit table growth from wasm: the limit is written into the module.
    assert exports.grow(LIMIT) == -1
    assert exports.grow(10) == 1
