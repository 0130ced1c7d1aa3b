"""What a failed instantiation leaves behind stays usable (core spec 2.0, ``linking.wast``).

An instantiation that fails after some of its element segments were applied, or whose start
function traps, has already written its functions into imported tables; the spec says those
entries persist. wasmer 2.1 freed such an instance, so calling those entries read freed memory
(a bogus signature-mismatch trap, sometimes a segfault). The wasmer engine now moves a module's
instantiation work into a hidden init function (``asyncwasm/_engines/_wasmer_init.py``) and
keeps an instance whose init failed alive. The dangerous calls run in a child process; the
rest check that the rewriting is invisible and keeps the spec's semantics.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _child import run_json
from _wat import wat

import asyncwasm
from asyncwasm._engines._wasmer_init import INIT_EXPORT, defer_instantiation

pytestmark = pytest.mark.anyio

TABLE_OWNER = """
(module
  (type $t (func (result i32)))
  (table (export "tab") 10 funcref)
  (memory (export "mem") 1)
  (func (export "call") (param i32) (result i32) (call_indirect (type $t) (local.get 0)))
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))
"""

# Each module fails to instantiate after writing a function returning 40 + slot into slot.
FAILING = {
    "a later element segment out of bounds": """
        (module (import "m" "tab" (table 10 funcref))
          (func $f (result i32) (i32.const 47))
          (elem (i32.const 7) $f)
          (elem (i32.const 8) $f $f $f $f $f))""",
    "a data segment out of bounds": """
        (module (import "m" "tab" (table 10 funcref)) (import "m" "mem" (memory 1))
          (func $f (result i32) (i32.const 46))
          (elem (i32.const 6) $f)
          (data (i32.const 0) "x")
          (data (i32.const 0x10000) "d"))""",
    "a trapping start function": """
        (module (import "m" "tab" (table 10 funcref))
          (func $f (result i32) (i32.const 45))
          (elem (i32.const 5) $f)
          (func $main unreachable)
          (start $main))""",
    "a start function storing its function, then trapping": """
        (module (import "m" "tab" (table 10 funcref))
          (func $f (result i32) (i32.const 44))
          (elem declare func $f)
          (func $main (table.set (i32.const 4) (ref.func $f)) unreachable)
          (start $main))""",
}

CHILD = """
import gc, json
import asyncwasm
from _wat import wat
owner = asyncwasm.Instance(asyncwasm.Module(wat({owner!r})))
imports = {{"m": {{"tab": owner.exports.tab, "mem": owner.exports.mem}}}}
slots = {{}}
for name, text in {failing!r}.items():
    module = asyncwasm.Module(wat(text))
    for _ in range(20):
        try:
            asyncwasm.Instance(module, imports)
        except asyncwasm.RuntimeError as exc:
            kind = exc.trap
        else:
            raise AssertionError(name + ": instantiation did not fail")
    slots[name] = kind
gc.collect()
junk = [bytearray(range(256)) * 64 for _ in range(20000)]  # reuse whatever was freed
results = {{str(i): owner.exports.call(i) for i in (4, 5, 6, 7)}}
print(json.dumps({{"results": results, "traps": slots, "byte0": owner.exports.load(0)}}))
"""


def test_functions_written_by_failed_instantiations_stay_callable(engine: str) -> None:
    code = CHILD.format(owner=TABLE_OWNER, failing=FAILING)
    result = run_json(textwrap.dedent(code), engine=engine, timeout=120)
    assert result["results"] == {"4": 44, "5": 45, "6": 46, "7": 47}
    assert result["traps"] == {
        "a later element segment out of bounds": "out_of_bounds_table_access",
        "a data segment out of bounds": "out_of_bounds_memory_access",
        "a trapping start function": "unreachable",
        "a start function storing its function, then trapping": "unreachable",
    }
    assert result["byte0"] == ord("x")  # the data segment before the bad one was written


START_WITH_IMPORTS = """
(module
  (import "env" "hook" (func $hook (param i32)))
  (import "env" "tab" (table 4 funcref))
  (memory (export "mem") 1)
  (global $g (export "g") (mut i32) (i32.const 0))
  (func $seven (export "seven") (result i32) (i32.const 7))
  (elem (i32.const 1) $seven)
  (elem $passive func $seven)
  (data (i32.const 16) "hello")
  (func $main (global.set $g (i32.const 5)) (call $hook (i32.load8_u (i32.const 16))))
  (start $main)
  (func (export "init_active") (table.init 0 (i32.const 0) (i32.const 0) (i32.const 1)))
  (func (export "init_passive") (table.init $passive (i32.const 2) (i32.const 0) (i32.const 1))))
"""


def _table_owner() -> asyncwasm.Instance:
    """An instance exporting a table (``tab``) and ``call(i)`` calling its entry ``i`` (wasmer
    makes no tables from Python, nor reads function references out of them)."""
    return asyncwasm.Instance(asyncwasm.Module(wat(TABLE_OWNER)))


def test_a_deferred_instantiation_keeps_the_spec_semantics(runtime: asyncwasm.Runtime) -> None:
    seen: list[int] = []
    owner = _table_owner()
    module = asyncwasm.Module(wat(START_WITH_IMPORTS))
    imports = {"env": {"hook": seen.append, "tab": owner.exports.tab}}
    instance = asyncwasm.Instance(module, imports)
    assert seen == [ord("h")]  # start ran after the data segment
    assert instance.exports.g.value == 5
    assert bytes(instance.exports.mem.buffer[16:21]) == b"hello"
    assert owner.exports.call(1) == 7
    # Active segments are dropped once instantiated; passive ones are not.
    with pytest.raises(asyncwasm.RuntimeError):
        instance.exports.init_active()
    instance.exports.init_passive()
    assert owner.exports.call(2) == 7
    # The hidden init function is nowhere to be seen.
    names = sorted(instance.exports)
    assert INIT_EXPORT not in names
    assert names == ["g", "init_active", "init_passive", "mem", "seven"]
    assert [e.name for e in asyncwasm.Module.exports(module)] == [
        "mem",
        "g",
        "seven",
        "init_active",
        "init_passive",
    ]


def test_a_start_functions_host_exception_comes_out_unchanged(runtime: asyncwasm.Runtime) -> None:
    error = ValueError("from the host")

    def hook(value: int) -> None:
        raise error

    owner = _table_owner()
    module = asyncwasm.Module(wat(START_WITH_IMPORTS))
    with pytest.raises(ValueError, match="from the host") as caught:
        asyncwasm.Instance(module, {"env": {"hook": hook, "tab": owner.exports.tab}})
    assert caught.value is error
    assert owner.exports.call(1) == 7  # written before the start function failed


def test_a_link_error_writes_nothing(runtime: asyncwasm.Runtime) -> None:
    owner = _table_owner()
    module = asyncwasm.Module(wat(START_WITH_IMPORTS))
    with pytest.raises(asyncwasm.LinkError):
        asyncwasm.Instance(module, {"env": {"hook": owner.exports.load, "tab": owner.exports.tab}})
    with pytest.raises(asyncwasm.RuntimeError) as caught:
        owner.exports.call(1)
    assert caught.value.trap == "indirect_call_to_null"


async def test_deferred_modules_survive_the_disk_cache(engine: str, tmp_path: Path) -> None:
    wasm = wat(START_WITH_IMPORTS)
    for attempt in range(2):  # compiled, then loaded from the cache
        async with asyncwasm.Runtime(engine, cache_dir=tmp_path) as rt:
            module = await rt.compile(wasm)
            if attempt:
                assert rt.cache_info().disk_hits == 1
            seen: list[int] = []
            owner = await rt.instantiate(await rt.compile(wat(TABLE_OWNER)))
            imports = {"env": {"hook": seen.append, "tab": owner.exports.tab}}
            instance = await rt.instantiate(module, imports)
            assert seen == [ord("h")]
            assert owner.exports.call(1) == 7
            assert INIT_EXPORT not in instance.exports


# --- the rewriter itself ----------------------------------------------------------------------

SHAPES = {
    "every element and data segment encoding": """
        (module (import "m" "tab" (table 10 funcref)) (import "m" "base" (global $base i32))
          (table $own 4 funcref) (memory 1)
          (func $f) (func $g)
          (elem (i32.const 0) $f)
          (elem (table $own) (offset (i32.const 1)) func $g)
          (elem (offset (global.get $base)) funcref (ref.func $f) (ref.null func))
          (elem (table $own) (offset (i32.const 0)) funcref (ref.func $g))
          (elem func $f) (elem declare func $g)
          (data (i32.const 0) "a") (data "passive") (data (memory 0) (offset (i32.const 8)) "b"))""",
    "no type, function or code section": """
        (module (import "m" "tab" (table 10 funcref))
          (elem (i32.const 0) funcref (ref.null func)))""",
    "a start function only": """
        (module (import "m" "f" (func $f)) (start $f))""",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rewritten_modules_validate(engine: str, shape: str) -> None:
    rewritten = defer_instantiation(wat(SHAPES[shape]))
    assert rewritten is not None
    runtime = asyncwasm.Runtime(engine)
    try:
        assert runtime.validate(rewritten)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    "text",
    [
        "(module (table 1 funcref) (func $f) (elem (i32.const 0) $f))",  # own table only
        "(module (func $f) (start $f))",  # a start function but nothing imported
        '(module (import "m" "tab" (table 1 funcref)))',  # nothing to defer
        f"""(module (import "m" "f" (func $f)) (start $f)
              (export "{INIT_EXPORT}" (func $f)))""",  # the name is taken
    ],
)
def test_modules_that_need_no_rewriting_are_left_alone(text: str) -> None:
    assert defer_instantiation(wat(text)) is None
