"""``Instance(module, imports)``: the import object's semantics (issue #3, part 1), on every engine
under test."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Global, Instance, LinkError, Memory, Module, NotSupportedError, Tag

IMPORTS_ALL_KINDS = wat(
    """
    (module
      (import "env" "f" (func $f (param i32) (result i32)))
      (import "env" "mem" (memory 1 3))
      (import "env" "g" (global $g i32))
      (import "other" "h" (func $h (param i64) (result i64)))
      (func (export "call_f") (param i32) (result i32) local.get 0 call $f)
      (func (export "call_h") (param i64) (result i64) local.get 0 call $h)
      (func (export "get_g") (result i32) global.get $g)
      (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u))
    """
)

ADD = wat(
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
)


def _imports(**overrides: object) -> dict[str, dict[str, object]]:
    env: dict[str, object] = {"f": lambda x: x + 1, "mem": Memory(1, 3), "g": 5}
    other: dict[str, object] = {"h": lambda x: x * 2}
    for key, value in overrides.items():
        (other if key == "h" else env)[key] = value
    return {"env": env, "other": other}


class RecordingMapping(Mapping[str, object]):
    """A mapping that logs every lookup, to check look-up order and count."""

    def __init__(self, name: str, items: dict[str, object], log: list[str]) -> None:
        self._name = name
        self._items = items
        self._log = log

    def __getitem__(self, key: str) -> object:
        self._log.append(f"{self._name}[{key}]")
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_instance_without_imports(runtime: asyncwasm.Runtime) -> None:
    instance = Instance(Module(ADD))
    assert instance.exports.add(2, 3) == 5
    assert Instance(Module(ADD), {}).exports.add(1, 1) == 2


def test_several_namespaces_and_every_kind(runtime: asyncwasm.Runtime) -> None:
    imports = _imports()
    memory = imports["env"]["mem"]
    assert isinstance(memory, Memory)
    memory.buffer[7] = 200
    instance = Instance(Module(IMPORTS_ALL_KINDS), imports)
    assert instance.exports.call_f(41) == 42
    assert instance.exports.call_h(2**40) == 2**41
    assert instance.exports.get_g() == 5
    assert instance.exports.load(7) == 200


def test_imports_looked_up_once_in_module_order(runtime: asyncwasm.Runtime) -> None:
    log: list[str] = []
    plain = _imports()
    imports = RecordingMapping(
        "imports",
        {
            "env": RecordingMapping("env", plain["env"], log),
            "other": RecordingMapping("other", plain["other"], log),
        },
        log,
    )
    Instance(Module(IMPORTS_ALL_KINDS), imports)
    # JS: Get(importObject, moduleName) then Get(module, name), once per import, in module order.
    assert log == [
        "imports[env]",
        "env[f]",
        "imports[env]",
        "env[mem]",
        "imports[env]",
        "env[g]",
        "imports[other]",
        "other[h]",
    ]


def test_lookup_stops_at_first_bad_import(runtime: asyncwasm.Runtime) -> None:
    log: list[str] = []
    plain = _imports()
    env = dict(plain["env"])
    del env["mem"]
    imports = RecordingMapping(
        "imports",
        {"env": RecordingMapping("env", env, log), "other": plain["other"]},
        log,
    )
    with pytest.raises(LinkError):
        Instance(Module(IMPORTS_ALL_KINDS), imports)
    assert log == ["imports[env]", "env[f]", "imports[env]", "env[mem]"]


def test_missing_import_object_is_type_error(runtime: asyncwasm.Runtime) -> None:
    with pytest.raises(TypeError):
        Instance(Module(IMPORTS_ALL_KINDS))


@pytest.mark.parametrize("imports", [1, "env", [("env", {})], object()])
def test_non_mapping_import_object_is_type_error(
    runtime: asyncwasm.Runtime, imports: object
) -> None:
    with pytest.raises(TypeError):
        Instance(Module(IMPORTS_ALL_KINDS), imports)
    with pytest.raises(TypeError):
        Instance(Module(ADD), imports)


def test_missing_namespace_is_type_error(runtime: asyncwasm.Runtime) -> None:
    imports = _imports()
    del imports["other"]
    with pytest.raises(TypeError, match="other"):
        Instance(Module(IMPORTS_ALL_KINDS), imports)


@pytest.mark.parametrize("namespace", [None, 1, "abc", [1, 2]])
def test_non_mapping_namespace_is_type_error(runtime: asyncwasm.Runtime, namespace: object) -> None:
    imports: dict[str, object] = dict(_imports())
    imports["env"] = namespace
    with pytest.raises(TypeError):
        Instance(Module(IMPORTS_ALL_KINDS), imports)


@pytest.mark.parametrize("field", ["f", "mem", "g"])
def test_missing_field_is_link_error_naming_it(runtime: asyncwasm.Runtime, field: str) -> None:
    imports = _imports()
    del imports["env"][field]
    with pytest.raises(LinkError, match=rf"env\.{field}"):
        Instance(Module(IMPORTS_ALL_KINDS), imports)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("f", 42, "callable"),
        ("f", None, "callable"),
        ("mem", 1, "Memory"),
        ("mem", b"\0" * 65536, "Memory"),
        ("g", "5", "Global"),
        ("g", None, "Global"),
        ("g", 1.5, "Global"),  # i32 takes an int, never a float
    ],
)
def test_wrong_kind_is_link_error_naming_import_and_expectation(
    runtime: asyncwasm.Runtime, field: str, value: object, expected: str
) -> None:
    with pytest.raises(LinkError, match=rf"env\.{field}.*{expected}"):
        Instance(Module(IMPORTS_ALL_KINDS), _imports(**{field: value}))


def test_wrong_kind_of_asyncwasm_object_is_link_error(runtime: asyncwasm.Runtime) -> None:
    with pytest.raises(LinkError, match=r"env\.mem"):
        Instance(Module(IMPORTS_ALL_KINDS), _imports(mem=Global("i32", 1)))
    with pytest.raises(LinkError, match=r"env\.g"):
        Instance(Module(IMPORTS_ALL_KINDS), _imports(g=Memory(1)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mem", lambda: Memory(0, 3)),  # too small
        ("mem", lambda: Memory(1)),  # no maximum where one is required
        ("mem", lambda: Memory(1, 4)),  # maximum too large
        ("g", lambda: Global("i64", 5)),  # wrong value type
        ("g", lambda: Global("i32", 5, mutable=True)),  # wrong mutability
    ],
)
def test_wrong_type_is_link_error(runtime: asyncwasm.Runtime, field: str, value: object) -> None:
    assert callable(value)
    with pytest.raises(LinkError):
        Instance(Module(IMPORTS_ALL_KINDS), _imports(**{field: value()}))


def test_exported_function_of_wrong_type_is_link_error(runtime: asyncwasm.Runtime) -> None:
    add = Instance(Module(ADD)).exports.add
    with pytest.raises(LinkError):
        Instance(Module(IMPORTS_ALL_KINDS), _imports(f=add))


def test_function_import_type_comes_from_module_not_annotations(
    runtime: asyncwasm.Runtime,
) -> None:
    seen: list[object] = []

    def annotated(x: float) -> float:  # annotations that say f32: ignored
        seen.append(x)
        return x * 3

    instance = Instance(Module(IMPORTS_ALL_KINDS), _imports(f=annotated))
    assert instance.exports.call_f(7) == 21
    assert seen == [7]
    assert type(seen[0]) is int


@pytest.mark.parametrize("kind", ["lambda", "builtin", "bound", "class", "callable_object"])
def test_any_callable_is_a_function_import(runtime: asyncwasm.Runtime, kind: str) -> None:
    class Doubler:
        def __call__(self, x: int) -> int:
            return 2 * x

        def method(self, x: int) -> int:
            return 2 * x

    class Wrap(int):
        pass

    fn: object = {
        "lambda": lambda x: 2 * x,
        "builtin": abs,
        "bound": Doubler().method,
        "class": Wrap,
        "callable_object": Doubler(),
    }[kind]
    instance = Instance(Module(IMPORTS_ALL_KINDS), _imports(f=fn))
    expected = {"builtin": 5, "class": -5}.get(kind, -10)
    assert instance.exports.call_f(-5) == expected


def test_exported_function_as_import(runtime: asyncwasm.Runtime) -> None:
    module = Module(
        wat(
            """
            (module
              (import "env" "add" (func $add (param i32 i32) (result i32)))
              (func (export "twice") (param i32) (result i32)
                local.get 0 local.get 0 call $add))
            """
        )
    )
    add = Instance(Module(ADD)).exports.add
    assert Instance(module, {"env": {"add": add}}).exports.twice(21) == 42


def test_plain_number_for_global_import(runtime: asyncwasm.Runtime) -> None:
    module = Module(
        wat(
            """
            (module
              (import "g" "i32" (global $a i32)) (import "g" "i64" (global $b i64))
              (import "g" "f32" (global $c f32)) (import "g" "f64" (global $d f64))
              (func (export "read") (result i32 i64 f32 f64)
                global.get $a global.get $b global.get $c global.get $d))
            """
        )
    )
    values = {"i32": 2**32 + 7, "i64": -1, "f32": 0.1, "f64": 3}
    instance = Instance(module, {"g": values})
    a, b, c, d = instance.exports.read()
    assert (a, b, d) == (7, -1, 3.0)
    assert c == pytest.approx(0.1, rel=1e-7)
    assert c != 0.1  # rounded to float32
    assert type(d) is float


def test_plain_number_for_mutable_global_is_link_error(runtime: asyncwasm.Runtime) -> None:
    module = Module(wat('(module (import "g" "x" (global (mut i32))))'))
    with pytest.raises(LinkError, match=r"g\.x"):
        Instance(module, {"g": {"x": 1}})
    Instance(module, {"g": {"x": Global("i32", 1, mutable=True)}})


def test_memory_table_global_from_another_instance(runtime: asyncwasm.Runtime) -> None:
    provider = Instance(
        Module(
            wat(
                """
                (module
                  (memory (export "mem") 1 3)
                  (global (export "g") i32 (i32.const 99))
                  (table (export "tab") 1 funcref)
                  (data (i32.const 3) "\\2a"))
                """
            )
        )
    )
    consumer = Module(
        wat(
            """
            (module
              (import "p" "mem" (memory 1))
              (import "p" "g" (global $g i32))
              (import "p" "tab" (table 1 funcref))
              (func (export "read") (result i32) i32.const 3 i32.load8_u)
              (func (export "get_g") (result i32) global.get $g)
              (func (export "size") (result i32) table.size 0))
            """
        )
    )
    p = provider.exports
    instance = Instance(consumer, {"p": {"mem": p.mem, "g": p.g, "tab": p.tab}})
    assert instance.exports.read() == 42
    assert instance.exports.get_g() == 99
    assert instance.exports.size() == 1


def test_start_function_runs(runtime: asyncwasm.Runtime) -> None:
    calls: list[int] = []
    module = Module(
        wat(
            """
            (module (import "env" "log" (func $log (param i32)))
              (func $start i32.const 7 call $log) (start $start))
            """
        )
    )
    Instance(module, {"env": {"log": calls.append}})
    assert calls == [7]


def test_trap_in_start_function_is_runtime_error(runtime: asyncwasm.Runtime) -> None:
    module = Module(wat("(module (func $s unreachable) (start $s))"))
    with pytest.raises(asyncwasm.RuntimeError) as info:
        Instance(module)
    assert info.value.trap == "unreachable"


def test_host_exception_in_start_function_is_same_object(runtime: asyncwasm.Runtime) -> None:
    error = ValueError("from the start function")

    def fail() -> None:
        raise error

    module = Module(wat('(module (import "env" "f" (func $f)) (start $f))'))
    with pytest.raises(ValueError, match="start function") as info:
        Instance(module, {"env": {"f": fail}})
    assert info.value is error


def test_not_a_module_is_type_error(runtime: asyncwasm.Runtime) -> None:
    with pytest.raises(TypeError):
        Instance(ADD)  # type: ignore[arg-type]


def test_objects_of_another_runtime_are_link_errors(runtime: asyncwasm.Runtime) -> None:
    other = asyncwasm.Runtime(runtime.engine)
    module = Module(wat('(module (import "env" "mem" (memory 1)))'))
    with pytest.raises(LinkError, match="another"):
        Instance(module, {"env": {"mem": Memory(1, runtime=other)}})


def test_tag_imports(runtime: asyncwasm.Runtime) -> None:
    module_bytes = wat('(module (import "env" "t" (tag (param i32))))')
    if not runtime.features.exceptions:
        with pytest.raises(NotSupportedError, match=runtime.engine):
            Tag(["i32"])
        with pytest.raises(asyncwasm.CompileError, match=runtime.engine):
            Module(module_bytes)
        return
    module = Module(module_bytes)
    Instance(module, {"env": {"t": Tag(["i32"])}})
    with pytest.raises(LinkError):
        Instance(module, {"env": {"t": Tag(["i64"])}})
    with pytest.raises(LinkError, match=r"env\.t"):
        Instance(module, {"env": {"t": 1}})


def test_imports_stay_alive_with_the_instance(runtime: asyncwasm.Runtime) -> None:
    module = Module(
        wat(
            """
            (module (import "env" "mem" (memory 1)) (import "env" "g" (global $g (mut i32)))
              (func (export "read") (result i32) i32.const 0 i32.load global.get $g i32.add))
            """
        )
    )
    memory = Memory(1)
    memory.buffer[0] = 40
    glob = Global("i32", 2, mutable=True)
    read = Instance(module, {"env": {"mem": memory, "g": glob}}).exports.read
    del memory, glob
    # Only the exported function is left: it must keep the instance, and so its imports, alive.
    gc.collect()
    junk = [Memory(1) for _ in range(8)]  # reuse freed memory if anything was freed
    for m in junk:
        m.buffer[0:4] = b"\xff\xff\xff\xff"
    gc.collect()
    assert read() == 42


@pytest.mark.parametrize("cls", [Memory, Global, asyncwasm.Table, asyncwasm.Function])
def test_uninitialised_object_is_link_error(runtime: asyncwasm.Runtime, cls: type) -> None:
    """JS: ``Object.create(WebAssembly.Memory.prototype)`` is no Memory: LinkError, not a crash."""
    module = Module(
        wat(
            """
            (module (import "e" "mem" (memory 1)) (import "e" "g" (global i32))
              (import "e" "f" (func)) (import "e" "t" (table 1 funcref)))
            """
        )
    )
    imports: dict[str, object] = {"mem": Memory(1), "g": 1, "f": print}
    if runtime.features.host_tables:
        imports["t"] = asyncwasm.Table("anyfunc", 1)
    field = {Memory: "mem", Global: "g", asyncwasm.Table: "t", asyncwasm.Function: "f"}[cls]
    imports[field] = cls.__new__(cls)  # type: ignore[call-overload]
    with pytest.raises(LinkError, match=rf"e\.{field}"):
        Instance(module, {"e": imports})
