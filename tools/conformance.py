"""Spec-suite conformance report: run the official WebAssembly ``.wast`` suite through asyncwasm's
public API on each engine and print, per engine and suite, how many commands pass.

    python tools/conformance.py                    # every engine that imports here, full suite
    python tools/conformance.py --engine wasmtime --files 'simd_*' --failures

The full run also rewrites ``docs/conformance.md`` (``--docs PATH`` elsewhere, ``--no-docs`` not at
all). The exit status is 1 when any script disagrees with ``tests/spec/expectations.toml`` (an
unexpected failure, or a known failure that now passes), else 0.

Every command of a script counts as one assertion: ``module`` asserts the module compiles and
instantiates, ``action`` that it runs without trapping, ``register`` that its module exists.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import fnmatch
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.spec import runner  # noqa: E402 - needs the repo root on sys.path first


@dataclass
class Totals:
    files: int = 0
    files_na: int = 0
    files_mismatch: int = 0
    assertions: int = 0
    passed: int = 0
    failed: int = 0
    not_applicable: int = 0
    expected_failing: int = 0
    trap_mismatches: int = 0
    seconds: float = 0.0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, v: runner.Verdict, strict_traps: bool) -> None:
        self.files += 1
        self.files_na += v.status == "na"
        self.files_mismatch += v.status == "mismatch"
        mism = len(v.trap_mismatches) if strict_traps else 0
        self.passed += v.passed - mism
        self.failed += v.failed + mism
        self.not_applicable += v.not_applicable
        self.expected_failing += v.expected_failing
        self.trap_mismatches += len(v.trap_mismatches)
        self.assertions += v.passed + v.failed + v.not_applicable + v.expected_failing
        self.seconds += v.seconds

    @property
    def applicable(self) -> int:
        return self.passed + self.failed + self.expected_failing

    @property
    def rate(self) -> float:
        return 100.0 * self.passed / self.applicable if self.applicable else 100.0


def suite_of(rel: str) -> str:
    return rel.split("/", 1)[0] if "/" in rel else "core"


def default_engines() -> list[str]:
    env = [e.strip() for e in os.environ.get("ASYNCWASM_TEST_ENGINES", "").split(",") if e.strip()]
    if env:
        return env
    import asyncwasm

    return list(asyncwasm.Runtime.engines())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--engine",
        action="append",
        help="engine to run (repeatable; default: every one that imports)",
    )
    p.add_argument(
        "--files", action="append", help="glob of scripts relative to the suite (repeatable)"
    )
    p.add_argument(
        "--suite",
        type=Path,
        help=f"the suite directory (default: ${runner.ENV_SUITE} or tests/spec/testsuite)",
    )
    p.add_argument("--jobs", type=int, help="worker processes (default: $ASYNCWASM_SPEC_JOBS or 2)")
    p.add_argument("--failures", action="store_true", help="print every unexpected failure")
    p.add_argument(
        "--strict-traps", action="store_true", help="count a trap of the wrong kind as a failure"
    )
    p.add_argument(
        "--docs",
        type=Path,
        help="write the markdown report here (default for a full run: docs/conformance.md)",
    )
    p.add_argument("--no-docs", action="store_true")
    p.add_argument("--json", type=Path, help="write every command's result here")
    p.add_argument(
        "--emit-expectations",
        action="store_true",
        help="print [[engines.X.fail]] entries for the current unexpected failures (to review and paste)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.suite is not None:
        os.environ[runner.ENV_SUITE] = str(args.suite)
    root = runner.suite_dir()
    if root is None:
        print(
            f"spec test suite not found: set ${runner.ENV_SUITE} or pass --suite", file=sys.stderr
        )
        return 2
    rels = runner.list_scripts(root)
    all_rels = list(rels)
    if args.files:
        rels = [r for r in rels if any(fnmatch.fnmatchcase(r, pat) for pat in args.files)]
    engines = args.engine or default_engines()

    t0 = time.perf_counter()
    converted = runner.convert_all(root, rels, args.jobs)
    t_convert = time.perf_counter() - t0
    fresh = sum(not c.cached for c in converted.values())
    print(
        f"converted {fresh} of {len(rels)} scripts in {t_convert:.1f} s "
        f"(wasm-tools {runner.wasm_tools_version()}; the rest from .cache/spec)"
    )

    service = runner.SpecService(args.jobs)
    expectations = {e: runner.load_expectations(e, all_rels) for e in engines}
    features: dict[str, dict[str, bool]] = {}
    pending: list[tuple[str, str, object]] = []
    t_run = time.perf_counter()
    try:
        for engine in engines:
            feats, problem = service.features(engine)
            features[engine] = feats
            if problem:
                print(f"{engine}: {problem}", file=sys.stderr)
            for rel in rels:
                na = runner.not_applicable_verdict(converted[rel], engine, expectations[engine])
                if na is not None:
                    pending.append((engine, rel, na))
                else:
                    pending.append(
                        (
                            engine,
                            rel,
                            service.submit(
                                engine, converted[rel], expectations[engine].not_supported_ok
                            ),
                        )
                    )
        verdicts: list[runner.Verdict] = []
        raw: list[dict[str, object]] = []
        for engine, _rel, item in pending:
            if isinstance(item, runner.Verdict):
                verdicts.append(item)
                continue
            result: runner.FileResult = item.result()  # type: ignore[attr-defined]
            raw.append(result.to_json())
            verdicts.append(runner.evaluate(result, expectations[engine]))
    finally:
        service.close()
    wall = time.perf_counter() - t_run

    totals: dict[tuple[str, str], Totals] = collections.defaultdict(Totals)
    per_engine: dict[str, Totals] = collections.defaultdict(Totals)
    for v in verdicts:
        totals[(v.engine, suite_of(v.rel))].add(v, args.strict_traps)
        per_engine[v.engine].add(v, args.strict_traps)

    for v in verdicts:
        if v.status == "mismatch" and args.failures:
            print(v.report(limit=10_000))
        elif v.status == "mismatch":
            print(v.report(limit=5))
    if args.emit_expectations:
        print(emit_expectations(verdicts))

    table = render_table(engines, totals)
    print()
    print(table)
    for (engine, suite), t in sorted(totals.items()):
        print(summary_line(engine, suite, t))
    print(
        f"total: {wall:.1f} s wall for the runs (+ {t_convert:.1f} s conversion), {args.jobs or runner.default_jobs()} workers"
    )

    docs = args.docs
    if docs is None and not args.no_docs and not args.files and args.engine is None:
        docs = REPO_ROOT / "docs" / "conformance.md"
    if docs is not None and not args.no_docs:
        docs.write_text(
            render_docs(
                engines, totals, per_engine, verdicts, features, expectations, wall, t_convert
            )
        )
        print(f"wrote {docs}")
    if args.json is not None:
        args.json.write_text(json.dumps(raw))
    return 1 if any(v.status == "mismatch" for v in verdicts) else 0


def summary_line(engine: str, suite: str, t: Totals) -> str:
    return (
        f"{engine} {suite}: {t.files} files ({t.files_na} not applicable), {t.assertions} assertions: "
        f"{t.passed} passed, {t.failed} failed, {t.not_applicable} not applicable, "
        f"{t.expected_failing} expected-failing; {t.rate:.2f}% of applicable pass"
        + (f"; {t.files_mismatch} files disagree with expectations" if t.files_mismatch else "")
    )


def render_table(engines: Sequence[str], totals: dict[tuple[str, str], Totals]) -> str:
    head = "| engine | suite | files | files N/A | assertions | passed | failed | N/A | expected-failing | pass rate (applicable) | trap-kind mismatches |"
    rows = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for engine in engines:
        for (e, suite), t in sorted(totals.items()):
            if e != engine:
                continue
            rows.append(
                f"| {engine} | {suite} | {t.files} | {t.files_na} | {t.assertions} | {t.passed} | {t.failed} | "
                f"{t.not_applicable} | {t.expected_failing} | {t.rate:.2f}% | {t.trap_mismatches} |"
            )
    return "\n".join(rows)


# Engine messages -> the reason written into expectations.toml by --emit-expectations. A failure
# that matches nothing here is emitted with "TODO" and the message: classify it by hand (an engine
# limitation gets a reason here; anything else is a bug to report, not an expectation).
REASONS: list[tuple[str, str]] = [
    (r"multiple memories", "multi-memory: wasmer 2.1 validates at most one memory per module"),
    (
        r"proposed simd operator",
        "wasmer 2.1 (Cranelift, 2021) lacks SIMD operators finalised later in the proposal",
    ),
    (
        r"only one init_expr operator",
        "extended-const: wasmer 2.1 allows one instruction per constant expression",
    ),
    (
        r"exception handling \(tags\)",
        "exception handling: the module declares tags, which wasmer 2.1 cannot compile",
    ),
    (
        r"element is not reference type|Invalid type|invalid leading byte in type definition|Unknown opcode: 0x14",
        "typed function references / GC types (wasm 3.0) in a core script: wasmer 2.1's validator predates them",
    ),
    (
        r"minimum table size is out of bounds|invalid table resizable limits flags",
        "table limits encoded with the memory64 (table64) flags: wasmer 2.1 rejects them",
    ),
    (
        r"br_table target labels have different types",
        "wasmer 2.1 validates br_table in unreachable code with the pre-2021 (stricter) rule",
    ),
    (
        r"invalid passive segment|unsupported table element type: ExternRef",
        "element segments of externref / expression form: unsupported by wasmer 2.1 (Cranelift)",
    ),
    (
        r"incompatible import type. Expected Table",
        "wasmer 2.1 checks an imported table against its declared minimum, not its grown size",
    ),
    (
        r"appears more than once in the module and was given different objects",
        "wasmer binds one object per (module, name) import pair; the script imports one name as two different objects",
    ),
    (
        r"v128 .*got v128",
        "wasmer 2.1 (Cranelift) miscompiles select of v128 values: only lane 0 is selected",
    ),
]


def classify(detail: str) -> str:
    import re

    for pattern, reason in REASONS:
        if re.search(pattern, detail):
            return reason
    return "TODO: " + detail[:150]


def emit_expectations(verdicts: Sequence[runner.Verdict]) -> str:
    """``[[engines.X.fail]]`` entries for the unexpected failures, one per (file, reason).

    A failure that only follows from an earlier one (no current module because the module
    command failed; a result that depends on an action that could not run) gets the earlier
    failure's reason.
    """
    import re

    out: list[str] = []
    for v in verdicts:
        if not v.unexpected_failures:
            continue
        reason_of: dict[int, str] = {}
        groups: dict[str, list[int]] = collections.defaultdict(list)
        last_reason = ""
        for c in v.unexpected_failures:
            m = re.search(r"the module at line (\d+) failed", c.detail)
            root = reason_of.get(int(m.group(1))) if m else None
            if root is not None:
                reason = root
            elif (
                m
                or c.detail.startswith("no instance named")
                or c.detail.startswith("no module definition")
            ):
                reason = last_reason or classify(c.detail)
            else:
                reason = classify(c.detail)
            if c.type in ("module", "module_definition"):
                last_reason = reason
            reason_of[c.line] = reason
            groups[reason].append(c.line)
        for reason, lines in groups.items():
            out.append(f"[[engines.{v.engine}.fail]]")
            out.append(f'file = "{v.rel}"')
            out.append(f"lines = {compress(lines)}")
            out.append(f"reason = {json.dumps(reason)}")
            out.append("")
    return "\n".join(out)


def compress(lines: Sequence[int]) -> str:
    return "[" + ", ".join(str(n) for n in lines) + "]"


def render_docs(
    engines: Sequence[str],
    totals: dict[tuple[str, str], Totals],
    per_engine: dict[str, Totals],
    verdicts: Sequence[runner.Verdict],
    features: dict[str, dict[str, bool]],
    expectations: dict[str, runner.EngineExpectations],
    wall: float,
    t_convert: float,
) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Spec test suite conformance",
        "",
        "The official WebAssembly core test suite (`.wast` scripts), run through asyncwasm's public",
        "API (`Module`, `Instance`, `Memory`, `Table`, `Global`, exported functions) by",
        "`tools/conformance.py` (`make conformance`); `tests/spec/` runs the same as pytest tests.",
        "Generated; do not edit by hand.",
        "",
        f"Last run: {now}, Python {platform.python_version()}, wasm-tools {runner.wasm_tools_version()}, "
        f"{wall:.0f} s for the runs + {t_convert:.0f} s conversion.",
        "",
        "Every command of a script counts as an assertion. *Not applicable*: the command cannot be",
        "expressed through the JS API (text-format modules, values such as GC references that do not",
        "cross the boundary) or the script needs a proposal the engine lacks. *Expected-failing*: a",
        "known engine limitation listed with its reason in `tests/spec/expectations.toml`.",
        "Pass rate = passed / (passed + failed + expected-failing).",
        "",
        render_table(engines, totals),
        "",
    ]
    for (engine, suite), t in sorted(totals.items()):
        lines.append(f"- {summary_line(engine, suite, t)}")
    lines.append("")
    for engine in engines:
        lines.append(f"## {engine}")
        lines.append("")
        if features.get(engine):
            on = ", ".join(k for k, v in features[engine].items() if v) or "none"
            off = ", ".join(k for k, v in features[engine].items() if not v) or "none"
            lines.append(f"Runtime features: {on}; without: {off}.")
            lines.append("")
        na_files = [v for v in verdicts if v.engine == engine and v.status == "na"]
        if na_files:
            lines.append("Scripts not run:")
            lines.append("")
            by_reason: dict[str, list[str]] = collections.defaultdict(list)
            for v in na_files:
                by_reason[v.reason].append(v.rel)
            for reason, files in sorted(by_reason.items()):
                lines.append(f"- {reason}: {', '.join(f'`{f}`' for f in files)}")
            lines.append("")
        fails = expectations[engine].expected_failures
        if fails:
            lines.append("Known engine failures (expected-failing):")
            lines.append("")
            counter: collections.Counter[str] = collections.Counter()
            for per in fails.values():
                for reason in per.values():
                    counter[reason] += 1
            for reason, n in counter.most_common():
                lines.append(f"- {n} commands: {reason}")
            lines.append("")
        bad = [v for v in verdicts if v.engine == engine and v.status == "mismatch"]
        if bad:
            lines.append("Scripts that disagree with the expectations (unexpected failures):")
            lines.append("")
            for v in bad:
                first = v.unexpected_failures[0] if v.unexpected_failures else None
                detail = f"line {first.line} {first.type}: {first.detail}" if first else v.reason
                lines.append(
                    f"- `{v.rel}`: {len(v.unexpected_failures)} failing; first: {detail[:300]}"
                )
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
