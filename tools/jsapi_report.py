"""Maintain and summarise tests/jsapi/manifest.json, the list of every upstream JS API subtest.

python tools/jsapi_report.py names --spec SPEC_CHECKOUT [-o names.json]
    Run each test/js-api/**/*.any.js under Node with a tiny stand-in for testharness.js and
    print {file: [subtest names, in order]} (plus Node's own pass/fail) as JSON. Files whose
    top level throws under this Node (GC, js-string builtins) fall back to a static scan.
python tools/jsapi_report.py sync --spec SPEC_CHECKOUT [--commit SHA]
    Rebuild manifest.json from the upstream names and what each tests/jsapi/test_*.py
    declares (ported subtests, ADAPTED, NOT_APPLICABLE); xfail entries already in the
    manifest are kept. Fails if an upstream subtest is neither ported nor explained.
python tools/jsapi_report.py xfail RECORD
    Add strict xfails to the manifest for failures recorded with JSAPI_RECORD=RECORD during a
    test run that raised asyncwasm.NotSupportedError (an engine limitation).
python tools/jsapi_report.py report [JUNIT_XML ...]
    Counts by status and engine; with JUnit files (pytest --junitxml), pass/fail per engine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tests" / "jsapi" / "manifest.json"
NODE_FLAGS = ["--experimental-wasm-gc", "--experimental-wasm-stringref"]

HARNESS_JS = r"""// Minimal testharness.js stand-in for Node: records subtest names and results.
"use strict";
const fs = require("fs"), path = require("path"), vm = require("vm");
const root = process.argv[2], file = process.argv[3];
globalThis.self = globalThis;
const results = [];
const queue = [];
class AssertionError extends Error {}
function fail(msg) { throw new AssertionError(msg); }
const replacements = {0:"0",8:"b",9:"t",10:"n",11:"v",12:"f",13:"r"};
for (let i = 1; i < 32; i++) if (!(i in replacements)) replacements[i] = "x" + i.toString(16).padStart(2, "0");
replacements[0xfffd] = "ufffd"; replacements[0xfffe] = "ufffe"; replacements[0xffff] = "uffff";
function format_value(val, seen) {
  if (!seen) seen = [];
  if (typeof val === "object" && val !== null) { if (seen.indexOf(val) >= 0) return "[...]"; seen.push(val); }
  if (Array.isArray(val)) return "[" + val.map(x => format_value(x, seen)).join(", ") + "]";
  switch (typeof val) {
    case "string":
      val = val.replace(/\\/g, "\\\\");
      for (const p in replacements) val = val.replace(RegExp(String.fromCharCode(p), "g"), "\\" + replacements[p]);
      return '"' + val.replace(/"/g, '\\"') + '"';
    case "boolean": case "undefined": return String(val);
    case "number": if (val === 0 && 1 / val === -Infinity) return "-0"; return String(val);
    case "bigint": return String(val) + "n";
    case "object": if (val === null) return "null";
    default:
      try { const s = String(val); return typeof val + ' "' + (s.length > 1000 ? s.substring(0, 998) + "…" : s) + '"'; }
      catch (e) { return "[stringifying object threw " + String(e) + " with type " + String(typeof e) + "]"; }
  }
}
globalThis.format_value = format_value;
function same(a, b) { return Object.is(a, b); }
Object.assign(globalThis, {
  assert_equals(a, e, d) { if (!same(a, e)) fail(`assert_equals: ${d} expected ${format_value(e)} but got ${format_value(a)}`); },
  assert_not_equals(a, e, d) { if (same(a, e)) fail(`assert_not_equals: ${d} got disallowed ${format_value(a)}`); },
  assert_true(a, d) { if (a !== true) fail(`assert_true: ${d} got ${format_value(a)}`); },
  assert_false(a, d) { if (a !== false) fail(`assert_false: ${d} got ${format_value(a)}`); },
  assert_unreached(d) { fail(`assert_unreached: ${d}`); },
  assert_not_reached(d) { fail(`assert_not_reached: ${d}`); },
  assert_array_equals(a, e, d) {
    if (a.length !== e.length) fail(`assert_array_equals: ${d} lengths differ ${a.length} vs ${e.length}`);
    for (let i = 0; i < e.length; i++) if (!same(a[i], e[i])) fail(`assert_array_equals: ${d} index ${i} ${format_value(a[i])} vs ${format_value(e[i])}`);
  },
  assert_own_property(o, p, d) { if (!Object.prototype.hasOwnProperty.call(o, p)) fail(`assert_own_property: ${d} ${String(p)}`); },
  assert_not_own_property(o, p, d) { if (Object.prototype.hasOwnProperty.call(o, p)) fail(`assert_not_own_property: ${d} ${String(p)}`); },
  assert_class_string(o, c, d) { const s = Object.prototype.toString.call(o); if (s !== `[object ${c}]`) fail(`assert_class_string: ${d} ${s}`); },
  assert_throws_js(ctor, fn, d) {
    try { fn(); } catch (e) {
      if (!(e instanceof Object) || e.constructor !== ctor) fail(`assert_throws_js: ${d} threw ${format_value(e)} expected ${ctor.name}`);
      return;
    }
    fail(`assert_throws_js: ${d} did not throw`);
  },
  assert_throws_exactly(v, fn, d) {
    try { fn(); } catch (e) { if (!same(e, v)) fail(`assert_throws_exactly: ${d} wrong exception`); return; }
    fail(`assert_throws_exactly: ${d} did not throw`);
  },
  assert_throws(code, fn, d) {
    try { fn(); } catch (e) { if (code && code.constructor && e.constructor !== code.constructor) fail("assert_throws wrong"); return; }
    fail(`assert_throws: ${d} did not throw`);
  },
  promise_rejects_js(t, ctor, p, d) {
    return Promise.resolve(p).then(() => fail(`promise_rejects_js: ${d} fulfilled`),
      e => { if (!(e instanceof Object) || e.constructor !== ctor) fail(`promise_rejects_js: ${d} rejected with ${format_value(e)} expected ${ctor.name}`); });
  },
  promise_rejects(t, code, p, d) {
    return Promise.resolve(p).then(() => fail(`promise_rejects: ${d} fulfilled`), e => {});
  },
  done() {},
  setup(f) { if (typeof f === "function") f(); },
});
let current = null;
function makeT(name) {
  const cleanups = [];
  return {
    name, cleanups,
    step_func(f) { return f; },
    unreached_func(d) { return () => fail(`unreached_func: ${d}`); },
    add_cleanup(f) { cleanups.push(f); },
  };
}
function record(name, status, message) { results.push({ name, status, message }); }
let nameCounter = 0;
function defaultName() {
  const base = path.basename(file); const title = base.substring(0, base.indexOf("."));
  const suffix = nameCounter > 0 ? " " + nameCounter : ""; nameCounter++; return title + suffix;
}
globalThis.test = function (f, name) {
  if (name === undefined) name = defaultName();
  const t = makeT(name);
  try { f(t); record(name, "PASS"); }
  catch (e) { record(name, "FAIL", String(e && e.message || e)); }
  for (const c of t.cleanups) try { c(); } catch (e) {}
};
globalThis.promise_test = function (f, name) { if (name === undefined) name = defaultName(); queue.push([f, name]); };
function load(p) {
  const code = fs.readFileSync(p, "utf8");
  vm.runInThisContext(code, { filename: p });
}
const src = fs.readFileSync(path.join(root, file), "utf8");
const metas = [...src.matchAll(/^\/\/ META: script=(\S+)/gm)].map(m => m[1]);
for (const m of metas) {
  let p = m.startsWith("/wasm/jsapi/") ? path.join(root, m.slice("/wasm/jsapi/".length)) : path.join(root, path.dirname(file), m);
  if (!fs.existsSync(p)) { console.error("missing meta", m); continue; }
  load(p);
}
let harnessError = null;
try { load(path.join(root, file)); } catch (e) { harnessError = String(e && e.stack || e); }
(async () => {
  for (const [f, name] of queue) {
    const t = makeT(name);
    try { await f(t); record(name, "PASS"); }
    catch (e) { record(name, "FAIL", String(e && e.message || e)); }
    for (const c of t.cleanups) try { c(); } catch (e) {}
  }
  process.stdout.write(JSON.stringify({ file, harnessError, results }) + "\n");
})();
"""


def upstream_names(spec: Path) -> dict[str, Any]:
    js_api = spec / "test" / "js-api"
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        harness = Path(tmp) / "harness.js"
        harness.write_text(HARNESS_JS, encoding="utf-8")
        for path in sorted(js_api.rglob("*.any.js")):
            rel = path.relative_to(js_api).as_posix()
            proc = subprocess.run(
                ["node", *NODE_FLAGS, str(harness), str(js_api), rel],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            result = (
                json.loads(lines[-1]) if lines else {"results": [], "harnessError": proc.stderr}
            )
            names = [r["name"] for r in result["results"]]
            node = {r["name"]: r["status"] for r in result["results"]}
            if result.get("harnessError") and not names:
                names = static_names(path.read_text(encoding="utf-8"), rel)
                node = {}
            out[rel] = {"names": names, "node": node}
    return out


def static_names(source: str, js_file: str) -> list[str]:
    """Top-level subtests found by reading the source: ``test(() => {`` ... ``}, "name");``,
    or ``});`` for an unnamed one (named after the file, as testharness.js does)."""
    title = Path(js_file).name.split(".")[0]
    names: list[str] = []
    unnamed = 0
    pending = False
    named = re.compile(r"""^}, (["'`])(.*?)\1\);""")
    for line in source.splitlines():
        if re.match(r"^(promise_)?test\(", line):
            pending = True
        elif pending and (m := named.match(line)):
            names.append(m.group(2))
            pending = False
        elif pending and line.startswith("});"):
            names.append(title + (f" {unnamed}" if unnamed else ""))
            unnamed += 1
            pending = False
    return names


def _tests_importable() -> None:
    """Puts the repo root (for ``tests.jsapi``) and ``tests/`` (for the tests' shared top-level
    helpers such as ``_leb128``, as pytest does) on ``sys.path``."""
    for path in (str(ROOT / "tests"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def _load_module(js_file: str) -> Any:
    _tests_importable()
    from tests.jsapi._support import module_name_for

    return importlib.import_module(f"tests.jsapi.{module_name_for(js_file)}")


def sync(spec: Path, commit: str | None) -> int:
    _tests_importable()
    from tests.jsapi._support import collected_subtests, declared_status, module_name_for

    upstream = upstream_names(spec)
    old = (
        json.loads(MANIFEST.read_text(encoding="utf-8")) if MANIFEST.exists() else {"subtests": []}
    )
    old_entries = {(e["file"], e["name"]): e for e in old["subtests"]}
    entries = []
    problems = []
    for js_file, info in upstream.items():
        try:
            module = _load_module(js_file)
        except ModuleNotFoundError:
            problems.append(f"{js_file}: no tests/jsapi/{module_name_for(js_file)}.py")
            module = None
        collected = collected_subtests(module) if module is not None else []
        known = set(info["names"])
        for extra in sorted(set(collected) - known):
            problems.append(f"{js_file}: test for unknown subtest {extra!r}")
        for name in info["names"]:
            status, note = (
                declared_status(module, name, set(collected))
                if module is not None
                else ("missing", None)
            )
            if status == "missing":
                problems.append(f"{js_file}: {name!r} neither ported nor explained")
            entry: dict[str, Any] = {"file": js_file, "name": name, "status": status}
            if note:
                entry["how" if status == "adapted" else "why"] = note
            xfail = old_entries.get((js_file, name), {}).get("xfail")
            if xfail and status in ("ported", "adapted"):
                entry["xfail"] = xfail
            node = info["node"].get(name)
            if node:
                entry["node20"] = node
            entries.append(entry)
    source = dict(old.get("source", {}))
    source.update({"repository": "https://github.com/WebAssembly/spec", "path": "test/js-api"})
    if commit:
        source["commit"] = commit
    write_manifest(source, entries)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    print(summary(entries))
    return 1 if problems else 0


def write_manifest(source: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    counts = Counter(e["status"] for e in entries)
    head = {
        "about": "Every subtest of WebAssembly/spec test/js-api and what tests/jsapi does with it. "
        "status: ported | adapted (how) | not_applicable (why); xfail: {engine: reason} = strict "
        "expected failure on that engine; node20: what Node 20 did upstream. Regenerate with "
        "tools/jsapi_report.py sync.",
        "source": source,
        "counts": {"total": len(entries), **dict(sorted(counts.items()))},
    }
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "subtests": [')
    lines.append(",\n".join("    " + json.dumps(e) for e in entries))
    lines.append("  ]")
    lines.append("}")
    MANIFEST.write_text("\n".join(lines) + "\n", encoding="utf-8")


def summary(entries: list[dict[str, Any]]) -> str:
    counts = Counter(e["status"] for e in entries)
    xfails: Counter[str] = Counter()
    for e in entries:
        for engine in e.get("xfail", {}):
            xfails[engine] += 1
    parts = [f"{len(entries)} upstream subtests"] + [f"{k}: {v}" for k, v in sorted(counts.items())]
    parts += [f"xfail[{k}]: {v}" for k, v in sorted(xfails.items())]
    return ", ".join(parts)


def report(junit_files: list[str]) -> int:
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    print(summary(manifest["subtests"]))
    per_file: dict[str, Counter[str]] = {}
    for e in manifest["subtests"]:
        per_file.setdefault(e["file"], Counter())[e["status"]] += 1
    for f, c in per_file.items():
        print(f"  {f:50} " + " ".join(f"{k}={v}" for k, v in sorted(c.items())))
    for junit in junit_files:
        outcome: Counter[str] = Counter()
        for case in ET.parse(junit).getroot().iter("testcase"):
            kinds = {child.tag for child in case}
            if "failure" in kinds or "error" in kinds:
                outcome["failed"] += 1
            elif "skipped" in kinds:
                skipped = case.find("skipped")
                msg = skipped.get("type", "") if skipped is not None else ""
                outcome["xfailed" if "xfail" in msg else "skipped"] += 1
            else:
                outcome["passed"] += 1
        print(f"{junit}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())))
    return 0


def _jsapi_outcomes(junit: str) -> Counter[str]:
    """Outcomes of the tests/jsapi cases in one JUnit file."""
    outcome: Counter[str] = Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        if "jsapi" not in case.get("classname", ""):
            continue
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            outcome["failed"] += 1
        elif "skipped" in kinds:
            skipped = case.find("skipped")
            msg = skipped.get("type", "") if skipped is not None else ""
            outcome["expected-failing" if "xfail" in msg else "skipped"] += 1
        else:
            outcome["passed"] += 1
    return outcome


def table(runs: list[str], docs: Path | None) -> int:
    """The JS API suite's table, one row per ``ENGINE=JUNIT`` run; appended to ``docs``."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    entries = manifest["subtests"]
    not_applicable = sum(1 for e in entries if e["status"] == "not_applicable")
    counts = Counter(e["status"] for e in entries)
    lines = [
        "",
        "## WebAssembly JS API tests (`tests/jsapi`, ported from `test/js-api`)",
        "",
        f"{len(entries)} upstream subtests: {counts['ported']} ported, {counts['adapted']} "
        f"adapted, {not_applicable} not applicable to Python (reasons in "
        "`tests/jsapi/manifest.json`). Counts below are pytest test cases (a subtest can expand "
        "into several). Expected-failing: an engine limitation named in the manifest. On wasmer "
        "the JS limit tests (marker `limits`) are not run: its compiler kills the process on "
        "some of those modules.",
        "",
        "| engine | test cases | passed | failed | expected-failing | pass rate (applicable) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    finals = []
    status = 0
    for run in runs:
        engine, _, junit = run.partition("=")
        c = _jsapi_outcomes(junit)
        ran = c["passed"] + c["failed"] + c["expected-failing"]
        rate = 100.0 * c["passed"] / ran if ran else 0.0
        lines.append(
            f"| {engine} | {ran} | {c['passed']} | {c['failed']} | {c['expected-failing']} "
            f"| {rate:.2f}% |"
        )
        finals.append(
            f"- {engine} jsapi: {c['passed']} passed, {c['failed']} failed, "
            f"{c['expected-failing']} expected-failing; {rate:.2f}% of applicable pass"
        )
        status |= 1 if c["failed"] or not ran else 0
    text = "\n".join([*lines, "", *finals, ""])
    print(text)
    if docs is not None:
        with docs.open("a", encoding="utf-8") as f:
            f.write(text)
    return status


def mark_xfail(record: Path, only_not_supported: bool) -> int:
    """Add ``xfail = {engine: reason}`` to the manifest for failures recorded by the test run
    (``JSAPI_RECORD=file pytest tests/jsapi``) that are engine limitations, i.e. raised
    ``asyncwasm.NotSupportedError`` (the message names the engine and capability)."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    entries = {(e["file"], e["name"]): e for e in manifest["subtests"]}
    added = 0
    for line in record.read_text(encoding="utf-8").splitlines():
        failure = json.loads(line)
        if only_not_supported and not failure["type"].endswith("NotSupportedError"):
            continue
        entry = entries.get((failure["file"], failure["name"]))
        if entry is None or not failure.get("engine"):
            continue
        xfail = entry.setdefault("xfail", {})
        if failure["engine"] not in xfail:
            xfail[failure["engine"]] = failure["message"]
            added += 1
    write_manifest(manifest["source"], manifest["subtests"])
    print(f"{added} xfail entries added")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_names = sub.add_parser("names")
    p_names.add_argument("--spec", type=Path, required=True)
    p_names.add_argument("-o", "--output", type=Path)
    p_sync = sub.add_parser("sync")
    p_sync.add_argument("--spec", type=Path, required=True)
    p_sync.add_argument("--commit")
    p_xfail = sub.add_parser("xfail")
    p_xfail.add_argument("record", type=Path)
    p_report = sub.add_parser("report")
    p_report.add_argument("junit", nargs="*")
    p_table = sub.add_parser("table")
    p_table.add_argument("runs", nargs="+", metavar="ENGINE=JUNIT")
    p_table.add_argument("--docs", type=Path)
    args = parser.parse_args(argv)
    if args.command == "names":
        text = json.dumps(upstream_names(args.spec), indent=1)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
        else:
            print(text)
        return 0
    if args.command == "sync":
        return sync(args.spec, args.commit)
    if args.command == "xfail":
        return mark_xfail(args.record, only_not_supported=True)
    if args.command == "table":
        return table(args.runs, args.docs)
    return report(args.junit)


if __name__ == "__main__":
    raise SystemExit(main())
