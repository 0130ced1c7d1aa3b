"""A module may import the same name twice; one callable must satisfy both (as in JS)."""

from __future__ import annotations

from _wat import wat

import asyncwasm

TWICE = wat(
    """
    (module
      (import "env" "log" (func $a (param i32)))
      (import "env" "log" (func $b (param i32)))
      (func (export "run") i32.const 1 call $a i32.const 2 call $b))
    """
)


def test_one_callable_satisfies_a_name_imported_twice(runtime: asyncwasm.Runtime) -> None:
    seen: list[int] = []
    instance = asyncwasm.Instance(asyncwasm.Module(TWICE), {"env": {"log": seen.append}})
    instance.exports.run()
    assert seen == [1, 2]
