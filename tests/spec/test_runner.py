"""The spec runner's own logic, without an engine: value matching, the NaN wrapper modules, and
the verdict rules (a known failure that passes, or an unknown one, must fail the test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _wat import wasm_tools

from . import runner


@pytest.mark.parametrize(
    ("expected", "bits", "width", "ok"),
    [
        ("nan:canonical", 0x7FC00000, 32, True),
        ("nan:canonical", 0xFFC00000, 32, True),
        ("nan:canonical", 0x7FC00001, 32, False),
        ("nan:arithmetic", 0x7FC00001, 32, True),
        ("nan:arithmetic", 0x7FA00000, 32, False),  # signalling
        ("nan:arithmetic", 0x7F800000, 32, False),  # infinity
        ("nan:canonical", 0x7FF8000000000000, 64, True),
        ("nan:arithmetic", 0xFFF8000000000001, 64, True),
        ("nan:arithmetic", 0x7FF0000000000001, 64, False),
        ("2147483648", 0x80000000, 32, True),  # -0.0
        ("0", 0x80000000, 32, False),
        ("-1", 0xFFFFFFFF, 32, True),  # wasm-tools may write signed literals
    ],
)
def test_float_bits(expected: str, bits: int, width: int, ok: bool) -> None:
    assert runner._match_float_bits(expected, bits, width) is ok


def test_v128_lanes_roundtrip() -> None:
    v = runner.v128_from_lanes("i16", ["-1", "2", "3", "4", "5", "6", "7", "32768"])
    assert runner._lanes_of(v, "i16") == [0xFFFF, 2, 3, 4, 5, 6, 7, 0x8000]
    assert runner.v128_from_lanes("i64", ["1", "0"]) == 1


@pytest.mark.parametrize(
    ("params", "results", "args"),
    [
        (["f32"], ["f32"], [{"type": "f32", "value": "2141192192"}]),
        (
            ["f64", "f64"],
            ["f64", "i32"],
            [{"type": "f64", "value": "9221120237041090561"}, {"type": "f64", "value": "0"}],
        ),
        (
            ["v128", "i64", "externref"],
            [],
            [
                {"type": "v128", "lane_type": "i8", "value": ["1"] * 16},
                {"type": "i64", "value": "18446744073709551615"},
                {"type": "externref", "value": "null"},
            ],
        ),
    ],
)
def test_wrapper_module_validates(
    tmp_path: Path, params: list[str], results: list[str], args: list[dict[str, object]]
) -> None:
    blob = runner.wrapper_module(params, results, args)
    assert blob is not None
    path = tmp_path / "w.wasm"
    path.write_bytes(blob)
    proc = subprocess.run(
        [wasm_tools(), "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_wrapper_refuses_host_refs() -> None:
    assert runner.wrapper_module(["externref"], [], [{"type": "externref", "value": "1"}]) is None


def _exp(fails: dict[int, str]) -> runner.EngineExpectations:
    return runner.EngineExpectations("x", {}, {"a.wast": fails}, [], {})


def _result(*statuses: tuple[int, str]) -> runner.FileResult:
    return runner.FileResult(
        "a.wast", "x", [runner.CommandResult(line, "assert_return", st) for line, st in statuses]
    )


def test_verdict_ok_and_expected_failure() -> None:
    v = runner.evaluate(
        _result((1, runner.PASS), (2, runner.FAIL), (3, runner.NA)), _exp({2: "known"})
    )
    assert (v.status, v.passed, v.expected_failing, v.not_applicable, v.failed) == (
        "ok",
        1,
        1,
        1,
        0,
    )


def test_verdict_unexpected_failure() -> None:
    v = runner.evaluate(_result((1, runner.FAIL)), _exp({}))
    assert v.status == "mismatch"
    assert "line 1" in v.report()


def test_verdict_known_failure_now_passing() -> None:
    v = runner.evaluate(_result((1, runner.PASS)), _exp({1: "known"}))
    assert v.status == "mismatch"
    assert v.unexpected_passes == [1]


def test_verdict_stale_line() -> None:
    v = runner.evaluate(_result((1, runner.PASS)), _exp({7: "known"}))
    assert v.status == "mismatch"


def test_expectations_file_loads() -> None:
    for engine in ("wasmer", "wasmtime"):
        exp = runner.load_expectations(engine, ["memory64.wast", "i32.wast", "legacy/throw.wast"])
        assert "i32.wast" not in exp.not_applicable_files
        assert exp.convert_failure("legacy/throw.wast")
    assert (
        "memory64.wast"
        in runner.load_expectations("wasmer", ["memory64.wast"]).not_applicable_files
    )
