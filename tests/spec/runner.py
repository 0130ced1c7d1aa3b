"""Run the official WebAssembly spec test suite (``.wast`` scripts) through asyncwasm's public API.

Pipeline
    1. ``wasm-tools json-from-wast`` turns each script into JSON commands plus ``.wasm`` binaries,
       cached under ``.cache/spec/<wasm-tools version>/<script hash>/`` (converted only when the
       entry is missing; entries are written to a temporary directory and renamed into place, so
       concurrent runs never see half an entry).
    2. A worker process per engine (``ASYNCWASM_ENGINE=<engine>``, so the default runtime is that
       engine's) executes a script's commands with the *public* API only (``asyncwasm.Module``,
       ``Instance``, ``Memory``, ``Table``, ``Global``, exported functions, ...) and returns one
       result per command. Running in a worker keeps a crashing engine (an abort is not a Python
       exception) or a runaway loop (wasmer cannot be interrupted) from taking the test session
       down: the worker is killed and restarted, and the script is reported as crashed.
    3. ``evaluate()`` compares results with ``expectations.toml`` (per engine: proposals the
       engine lacks, commands known to fail, and why).

This file is standalone (no package-relative imports) so that it runs as a worker script and can
be imported by path from ``tools/conformance.py``.

NaN payloads cannot cross the JS API boundary (a Python ``float`` is a double, and the contract
allows NaN canonicalisation), so invocations whose arguments or expected results involve a scalar
NaN are run the way the reference interpreter's JS harness runs them: through a small generated
wasm module that imports the function, calls it with constant arguments and returns float results
reinterpreted as integers. The wrapper module is itself compiled and instantiated with the public
API, importing the exported function.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# The tests' shared helpers are top-level modules of tests/ (pytest puts tests/ on sys.path); this
# file also runs as a worker script and is imported from tools/, so it puts tests/ there itself.
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))
from _leb128 import sleb128, uleb128
from _wat import wasm_tools

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = Path(__file__).resolve().parent / "testsuite"
ENV_SUITE = "ASYNCWASM_SPEC_TESTSUITE"
ENV_TIMEOUT = "ASYNCWASM_SPEC_TIMEOUT"
ENV_JOBS = "ASYNCWASM_SPEC_JOBS"
DEFAULT_TIMEOUT = 300.0
CACHE_FORMAT = "1"

# ----------------------------------------------------------------------------------------------
# Locating the suite and wasm-tools
# ----------------------------------------------------------------------------------------------


def suite_dir() -> Path | None:
    """The directory holding the ``.wast`` scripts, or ``None`` when there is none.

    ``$ASYNCWASM_SPEC_TESTSUITE`` wins (to run another checkout of the suite); otherwise the copy
    kept in the repository, ``tests/spec/testsuite/`` (see its README for its upstream commit).
    """
    env = os.environ.get(ENV_SUITE, "").strip()
    p = Path(env).expanduser().resolve() if env else DEFAULT_SUITE
    return p if p.is_dir() else None


def list_scripts(root: Path) -> list[str]:
    """Every ``.wast`` under ``root`` as a POSIX relative path, top-level files first."""
    found = [p.relative_to(root).as_posix() for p in root.rglob("*.wast")]
    return sorted(found, key=lambda r: (r.count("/"), r))


_version_lock = threading.Lock()
_version_cache: dict[str, str] = {}


def wasm_tools_version(tool: str | None = None) -> str:
    tool = tool or wasm_tools()
    with _version_lock:
        if tool not in _version_cache:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
            # "wasm-tools 1.262.0 (e22db44da 2026-10-13)"
            parts = out.stdout.split()
            _version_cache[tool] = parts[1] if len(parts) > 1 else out.stdout.strip()
        return _version_cache[tool]


def cache_root() -> Path:
    """``$ASYNCWASM_SPEC_CACHE``, else ``<repo>/.cache/spec`` (gitignored)."""
    env = os.environ.get("ASYNCWASM_SPEC_CACHE", "").strip()
    return Path(env) if env else REPO_ROOT / ".cache" / "spec"


# ----------------------------------------------------------------------------------------------
# Conversion (wast -> json + wasm), cached
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Converted:
    rel: str
    directory: Path | None
    """The cache entry holding ``script.json`` and the binaries; ``None`` when conversion failed."""
    error: str | None = None
    seconds: float = 0.0
    cached: bool = True

    @property
    def json_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "script.json"


def convert(root: Path, rel: str, tool: str | None = None) -> Converted:
    """Convert ``root/rel`` unless its cache entry exists. Safe to call concurrently."""
    tool = tool or wasm_tools()
    src = root / rel
    data = src.read_bytes()
    digest = hashlib.sha256(data + b"\0" + rel.encode()).hexdigest()[:24]
    entry = cache_root() / f"{wasm_tools_version(tool)}-f{CACHE_FORMAT}" / digest
    ok, failed = entry / "script.json", entry / "error.txt"
    if ok.exists():
        return Converted(rel, entry)
    if failed.exists():
        return Converted(rel, None, failed.read_text(errors="replace"))
    start = time.perf_counter()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=entry.parent))
    try:
        proc = subprocess.run(
            [
                tool,
                "json-from-wast",
                str(src),
                "-o",
                str(tmp / "script.json"),
                "--wasm-dir",
                str(tmp),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            for child in tmp.iterdir():
                child.unlink()
            (tmp / "error.txt").write_text(proc.stderr.strip() or f"exit status {proc.returncode}")
        with contextlib.suppress(OSError):  # another process won the race: use its entry
            tmp.rename(entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    if ok.exists():
        return Converted(rel, entry, None, seconds, cached=False)
    return Converted(rel, None, failed.read_text(errors="replace"), seconds, cached=False)


def convert_all(root: Path, rels: Sequence[str], jobs: int | None = None) -> dict[str, Converted]:
    """Convert many scripts, ``jobs`` at a time (each conversion is its own process)."""
    tool = wasm_tools()
    wasm_tools_version(tool)
    jobs = jobs or default_jobs()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip(rels, pool.map(lambda r: convert(root, r, tool), rels), strict=True))


def default_jobs() -> int:
    env = os.environ.get(ENV_JOBS, "").strip()
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------

PASS, FAIL, NA = "pass", "fail", "na"


@dataclasses.dataclass
class CommandResult:
    line: int
    type: str
    status: str  # PASS / FAIL / NA
    detail: str = ""
    trap_mismatch: str = ""  # assert_trap passed, but the trap kind differs from the message

    def to_json(self) -> list[Any]:
        return [self.line, self.type, self.status, self.detail, self.trap_mismatch]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> CommandResult:
        return cls(int(data[0]), str(data[1]), str(data[2]), str(data[3]), str(data[4]))


@dataclasses.dataclass
class FileResult:
    rel: str
    engine: str
    commands: list[CommandResult]
    error: str = ""  # the script could not be run at all (conversion failure, crash, timeout)
    error_kind: str = ""  # "convert", "crash", "timeout", "internal"
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rel": self.rel,
            "engine": self.engine,
            "commands": [c.to_json() for c in self.commands],
            "error": self.error,
            "error_kind": self.error_kind,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileResult:
        return cls(
            data["rel"],
            data["engine"],
            [CommandResult.from_json(c) for c in data["commands"]],
            data["error"],
            data["error_kind"],
            data["seconds"],
        )


# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------

JS_TYPES = {"i32", "i64", "f32", "f64", "v128", "externref", "anyfunc", "funcref"}
LANES = {
    "i8": (16, 8),
    "i16": (8, 16),
    "i32": (4, 32),
    "i64": (2, 64),
    "f32": (4, 32),
    "f64": (2, 64),
}
F32_CANON, F32_QUIET, F32_ABS = 0x7FC00000, 0x00400000, 0x7FFFFFFF
F64_CANON, F64_QUIET, F64_ABS = 0x7FF8000000000000, 0x0008000000000000, 0x7FFFFFFFFFFFFFFF


NULL_TYPES = {"nullref", "nullfuncref", "nullexternref", "nullexnref"}  # bottom types: only null


class HostRef:
    """The host value ``ref.extern N`` stands for (one object per N, so identity can be checked)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"HostRef({self.n})"


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _is_nan_bits(bits: int, width: int) -> bool:
    if width == 32:
        return (bits & 0x7F800000) == 0x7F800000 and bool(bits & 0x007FFFFF)
    return (bits & 0x7FF0000000000000) == 0x7FF0000000000000 and bool(bits & 0x000FFFFFFFFFFFFF)


def _float_from_bits(bits: int, width: int) -> float:
    if width == 32:
        return float(struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0])
    return float(struct.unpack("<d", struct.pack("<Q", bits & 0xFFFFFFFFFFFFFFFF))[0])


def _bits_from_float(value: object, width: int) -> int:
    if not isinstance(value, float | int):
        raise TypeError(f"expected a float, got {type(value).__name__}")
    if width == 32:
        return int(struct.unpack("<I", struct.pack("<f", float(value)))[0])
    return int(struct.unpack("<Q", struct.pack("<d", float(value)))[0])


def _match_float_bits(expected: str, bits: int, width: int) -> bool:
    canon, quiet, mask = (
        (F32_CANON, F32_QUIET, F32_ABS) if width == 32 else (F64_CANON, F64_QUIET, F64_ABS)
    )
    if expected == "nan:canonical":
        return (bits & mask) == canon
    if expected == "nan:arithmetic":
        return _is_nan_bits(bits, width) and bool(bits & quiet)
    return bits == (int(expected) & ((1 << width) - 1))


def _lanes_of(value: int, lane_type: str) -> list[int]:
    count, width = LANES[lane_type]
    return [(value >> (i * width)) & ((1 << width) - 1) for i in range(count)]


def v128_from_lanes(lane_type: str, lanes: Sequence[str]) -> int:
    width = LANES[lane_type][1]
    out = 0
    for i, lane in enumerate(lanes):
        out |= (int(lane) & ((1 << width) - 1)) << (i * width)
    return out


class Mismatch(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# Wrapper modules for NaN-carrying invocations (binary written by hand)
# ----------------------------------------------------------------------------------------------

_VALTYPE_BYTE = {
    "i32": 0x7F,
    "i64": 0x7E,
    "f32": 0x7D,
    "f64": 0x7C,
    "v128": 0x7B,
    "anyfunc": 0x70,
    "funcref": 0x70,
    "externref": 0x6F,
}


def _vec(items: Sequence[bytes]) -> bytes:
    return uleb128(len(items)) + b"".join(items)


def _section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + uleb128(len(body)) + body


def _name(s: str) -> bytes:
    b = s.encode()
    return uleb128(len(b)) + b


def _const_instr(arg: Mapping[str, Any]) -> bytes | None:
    t: str = arg["type"]
    v: Any = arg.get("value")
    if t == "i32":
        return b"\x41" + sleb128(_signed(int(v), 32))
    if t == "i64":
        return b"\x42" + sleb128(_signed(int(v), 64))
    if t == "f32":
        return b"\x43" + struct.pack("<I", int(v))
    if t == "f64":
        return b"\x44" + struct.pack("<Q", int(v))
    if t == "v128":
        return b"\xfd\x0c" + v128_from_lanes(arg["lane_type"], v).to_bytes(16, "little")
    if t in ("externref", "funcref") and v == "null":
        return b"\xd0" + bytes([_VALTYPE_BYTE[t]])
    return None


def wrapper_module(
    params: Sequence[str], results: Sequence[str], args: Sequence[Mapping[str, Any]]
) -> bytes | None:
    """A module importing ``m.f`` of type ``params -> results`` and exporting ``run``, which calls it
    with ``args`` as constants and returns its results with f32/f64 reinterpreted as i32/i64."""
    if any(p not in _VALTYPE_BYTE for p in params) or any(r not in _VALTYPE_BYTE for r in results):
        return None
    consts = [_const_instr(a) for a in args]
    if any(c is None for c in consts):
        return None
    wrapped = [{"f32": "i32", "f64": "i64"}.get(r, r) for r in results]

    def functype(ps: Sequence[str], rs: Sequence[str]) -> bytes:
        return (
            b"\x60"
            + _vec([bytes([_VALTYPE_BYTE[p]]) for p in ps])
            + _vec([bytes([_VALTYPE_BYTE[r]]) for r in rs])
        )

    types = _section(1, _vec([functype(params, results), functype([], wrapped)]))
    imports = _section(2, _vec([_name("m") + _name("f") + b"\x00" + uleb128(0)]))
    funcs = _section(3, _vec([uleb128(1)]))
    exports = _section(7, _vec([_name("run") + b"\x00" + uleb128(1)]))
    locals_ = _vec([uleb128(1) + bytes([_VALTYPE_BYTE[r]]) for r in results])
    body = bytearray(b"".join(c for c in consts if c is not None))
    body += b"\x10" + uleb128(0)
    for i in reversed(range(len(results))):
        body += b"\x21" + uleb128(i)
    for i, r in enumerate(results):
        body += b"\x20" + uleb128(i)
        if r == "f32":
            body += b"\xbc"
        elif r == "f64":
            body += b"\xbd"
    body += b"\x0b"
    func = locals_ + bytes(body)
    code = _section(10, _vec([uleb128(len(func)) + func]))
    return b"\x00asm\x01\x00\x00\x00" + types + imports + funcs + exports + code


# ----------------------------------------------------------------------------------------------
# Executing a script (inside the worker; imports asyncwasm)
# ----------------------------------------------------------------------------------------------

TRAP_KIND_OF_MESSAGE = {
    "unreachable": "unreachable",
    "integer divide by zero": "integer_divide_by_zero",
    "integer overflow": "integer_overflow",
    "invalid conversion to integer": "invalid_conversion_to_integer",
    "out of bounds memory access": "out_of_bounds_memory_access",
    "out of bounds table access": "out_of_bounds_table_access",
    "undefined element": "out_of_bounds_table_access",
    "uninitialized element": "indirect_call_to_null",
    "indirect call type mismatch": "indirect_call_type_mismatch",
    "call stack exhausted": "stack_overflow",
    "null reference": "null_reference",
    "null function reference": "null_reference",
    "null structure reference": "null_reference",
    "null array reference": "null_reference",
    "null i31 reference": "null_reference",
}


def expected_trap_kind(text: str) -> str | None:
    for prefix in sorted(TRAP_KIND_OF_MESSAGE, key=len, reverse=True):
        if text.startswith(prefix):
            return TRAP_KIND_OF_MESSAGE[prefix]
    return None


class NotApplicable(Exception):
    pass


class Failed(Exception):
    pass


def _type_name(t: object) -> str:
    return str(t)


class ScriptRunner:
    """Runs one converted script's commands with the public API of the imported ``asyncwasm``."""

    def __init__(
        self, aw: Any, directory: Path, engine: str, not_supported_ok: Sequence[str]
    ) -> None:
        self.aw = aw
        self.dir = directory
        self.engine = engine
        self.not_supported_ok = [s.lower() for s in not_supported_ok]
        self.externs: dict[int, HostRef] = {}
        self.registry: dict[str, Mapping[str, object]] = {"spectest": self._spectest()}
        self.instances: dict[str | None, Any] = {}
        self.instance_modules: dict[int, Any] = {}  # id(instance) -> Module
        self.definitions: dict[str | None, Any] = {}
        self.current_failed_line: int | None = None
        self.failed_lines: dict[
            str, int
        ] = {}  # module name or registered name -> failed module line
        self.compiled: dict[bytes, Any] = {}
        self.wrappers: dict[tuple[str, bytes], tuple[Any, Any]] = {}

    # -- spectest ---------------------------------------------------------------------------
    def _spectest(self) -> dict[str, object]:
        aw = self.aw
        out: dict[str, object] = {}

        def host(*_args: object) -> None:
            return None

        for name in (
            "print",
            "print_i32",
            "print_i64",
            "print_f32",
            "print_f64",
            "print_i32_f32",
            "print_f64_f64",
        ):
            out[name] = host
        makers: dict[str, Callable[[], object]] = {
            "global_i32": lambda: aw.Global("i32", 666),
            "global_i64": lambda: aw.Global("i64", 666),
            "global_f32": lambda: aw.Global("f32", _float_from_bits(0x4426A666, 32)),
            "global_f64": lambda: aw.Global("f64", _float_from_bits(0x4084D4CCCCCCCCCD, 64)),
            "memory": lambda: aw.Memory(1, 2),
            "table": lambda: aw.Table("anyfunc", 10, 20),
        }
        # The memory64 JS API's ``address: "i64"`` descriptor member is not in the API contract
        # (and unknown members are ignored, as in JS): a 64-bit host table cannot be made.
        out["table64"] = _Unavailable(
            "spectest.table64: the API contract has no 64-bit (memory64) host table", None
        )
        for name, make in makers.items():
            try:
                out[name] = make()
            except Exception as exc:
                out[name] = _Unavailable(f"spectest.{name}: {type(exc).__name__}: {exc}", exc)
        return out

    # -- helpers ------------------------------------------------------------------------------
    def _not_supported(self, exc: BaseException) -> bool:
        ns = getattr(self.aw, "NotSupportedError", None)
        return ns is not None and isinstance(exc, ns)

    def _classify_unexpected(self, exc: BaseException, what: str) -> Exception:
        if self._not_supported(exc):
            msg = str(exc).lower()
            if any(s in msg for s in self.not_supported_ok):
                return NotApplicable(f"{what}: {exc}")
        return Failed(f"{what}: unexpected {type(exc).__name__}: {_short(str(exc))}")

    def _bytes(self, cmd: Mapping[str, Any]) -> bytes:
        name: str = cmd.get("binary_filename") or cmd["filename"]
        if cmd.get("module_type") == "text" and not cmd.get("binary_filename"):
            raise NotApplicable("text-format module: the JS API compiles binaries only")
        return (self.dir / name).read_bytes()

    def _compile(self, data: bytes) -> Any:
        mod = self.compiled.get(data)
        if mod is None:
            mod = self.aw.Module(data)
            self.compiled[data] = mod
        return mod

    def _imports_for(self, module: Any) -> dict[str, dict[str, object]]:
        imports: dict[str, dict[str, object]] = {}
        for desc in self.aw.Module.imports(module):
            ns = self.registry.get(desc.module)
            if ns is None and desc.module in self.failed_lines:
                raise Failed(
                    f"import {desc.module}.{desc.name}: nothing is registered as {desc.module!r} "
                    f"(the module at line {self.failed_lines[desc.module]} failed)"
                )
            value: object = None
            if ns is not None and desc.name in ns:
                value = ns[desc.name]
                if isinstance(value, _Unavailable):
                    if value.exc is None:
                        raise NotApplicable(value.reason)
                    if self._not_supported(value.exc):
                        raise self._classify_unexpected(value.exc, "spectest import")
                    raise Failed(value.reason)
            target = imports.setdefault(desc.module, {})
            if ns is not None and desc.name in ns:
                target[desc.name] = value
        return imports

    def _instantiate(self, module: Any) -> Any:
        imports = self._imports_for(module)
        inst = self.aw.Instance(module, imports)
        self.instance_modules[id(inst)] = module
        return inst

    def _instance(self, name: str | None) -> Any:
        inst = self.instances.get(name)
        if inst is None:
            if name is None and self.current_failed_line is not None:
                raise Failed(
                    f"no current module (the module at line {self.current_failed_line} failed)"
                )
            if name is not None and name in self.failed_lines:
                raise Failed(
                    f"no instance named {name!r} (the module at line {self.failed_lines[name]} failed)"
                )
            raise Failed(f"no instance named {name!r}")
        return inst

    def _export_type(self, inst: Any, field: str) -> object:
        module = self.instance_modules.get(id(inst))
        if module is None:
            return None
        for desc in self.aw.Module.exports(module):
            if desc.name == field:
                return desc.type
        return None

    def _arg(self, v: Mapping[str, Any]) -> object:
        t: str = v["type"]
        x: Any = v.get("value")
        if t == "i32":
            return _signed(int(x), 32)
        if t == "i64":
            return _signed(int(x), 64)
        if t == "f32":
            return _float_from_bits(int(x), 32)
        if t == "f64":
            return _float_from_bits(int(x), 64)
        if t == "v128":
            return v128_from_lanes(v["lane_type"], x)
        if t in ("externref", "funcref", "anyref") or t.endswith("ref"):
            if x == "null":
                return None
            if t == "externref" and x is not None:
                n = int(x)
                return self.externs.setdefault(n, HostRef(n))
        raise NotApplicable(f"argument {v} has no Python value under the JS API")

    def _check_sig_crosses(self, ftype: object, what: str) -> tuple[list[str], list[str]] | None:
        params = getattr(ftype, "params", None)
        results = getattr(ftype, "results", None)
        if params is None or results is None:
            return None
        bad = [str(t) for t in (*params, *results) if str(t) not in JS_TYPES]
        if bad:
            raise NotApplicable(
                f"{what} has type {ftype}: {', '.join(sorted(set(bad)))} cannot cross the JS API boundary"
            )
        return [str(p) for p in params], [str(r) for r in results]

    # -- actions ------------------------------------------------------------------------------
    def _needs_wrapper(
        self, action: Mapping[str, Any], expected: Sequence[Mapping[str, Any]]
    ) -> bool:
        for v in action.get("args", []):
            if v["type"] in ("f32", "f64") and _is_nan_bits(
                int(v["value"]), 32 if v["type"] == "f32" else 64
            ):
                return True
        for e in expected:
            for alt in e.get("values", [e]) if e["type"] == "either" else [e]:
                if alt["type"] in ("f32", "f64"):
                    x = str(alt.get("value"))
                    if x.startswith("nan:") or _is_nan_bits(
                        int(x), 32 if alt["type"] == "f32" else 64
                    ):
                        return True
        return False

    def _do_action(
        self, action: Mapping[str, Any], expected: Sequence[Mapping[str, Any]] = ()
    ) -> tuple[tuple[object, ...], bool]:
        """Performs the action; returns (results, results_are_float_bits)."""
        inst = self._instance(action.get("module"))
        field = action["field"]
        try:
            export = inst.exports[field]
        except KeyError:
            raise Failed(f"no export {field!r}") from None
        etype = self._export_type(inst, field)
        if action["type"] == "get":
            vt = getattr(etype, "value", None)
            if vt is not None and str(vt) not in JS_TYPES:
                raise NotApplicable(
                    f"global {field!r} of type {vt} cannot cross the JS API boundary"
                )
            return (export.value,), False
        sig = self._check_sig_crosses(etype, f"function {field!r}")
        args = action.get("args", [])
        if sig is not None and self._needs_wrapper(action, expected):
            blob = wrapper_module(sig[0], sig[1], args)
            if blob is not None:
                # Keyed by the export itself, kept alive by the cache: an id() could be reused
                # by a later instance once this one is collected (and run the stale wrapper).
                key = (field, blob)
                cached = self.wrappers.get(key)
                if cached is not None and cached[0] is export:
                    runner = cached[1]
                else:
                    wmod = self.aw.Module(blob)
                    winst = self.aw.Instance(wmod, {"m": {"f": export}})
                    runner = winst.exports["run"]
                    self.wrappers[key] = (export, runner)
                out = runner()
                return ((out,) if len(sig[1]) == 1 else _as_tuple(out)), True
        pyargs = [self._arg(a) for a in args]
        out = export(*pyargs)
        if sig is not None and len(sig[1]) == 1:
            return (out,), False
        return _as_tuple(out), False

    def _match(self, exp: Mapping[str, Any], got: object, bits: bool) -> bool:
        t: str = exp["type"]
        if t == "either":
            return any(self._match(alt, got, bits) for alt in exp["values"])
        x: Any = exp.get("value")
        if t in ("i32", "i64"):
            width = 32 if t == "i32" else 64
            return isinstance(got, int) and (got & ((1 << width) - 1)) == (
                int(x) & ((1 << width) - 1)
            )
        if t in ("f32", "f64"):
            width = 32 if t == "f32" else 64
            b = (
                (got & ((1 << width) - 1))
                if (bits and isinstance(got, int))
                else _bits_from_float(got, width)
            )
            return _match_float_bits(str(x), b, width)
        if t == "v128":
            if not isinstance(got, int):
                return False
            lane_type = exp["lane_type"]
            width = LANES[lane_type][1]
            for lane_bits, want in zip(_lanes_of(got, lane_type), x, strict=True):
                if lane_type in ("f32", "f64"):
                    if not _match_float_bits(str(want), lane_bits, width):
                        return False
                elif lane_bits != int(want) & ((1 << width) - 1):
                    return False
            return True
        if t == "refnull" or (t in NULL_TYPES and x is None):
            return got is None
        if x == "null":
            return got is None
        if x is None:  # (ref.func) / (ref.extern) / ...: any non-null reference
            return got is not None
        if t == "externref":
            return got is self.externs.get(int(x))
        raise NotApplicable(f"expected value {exp} has no Python counterpart")

    def _check_results(
        self, expected: Sequence[Mapping[str, Any]], got: tuple[object, ...], bits: bool
    ) -> None:
        if len(got) != len(expected):
            raise Failed(f"expected {len(expected)} results, got {len(got)}: {_fmt(got)}")
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            if not self._match(e, g, bits):
                raise Failed(
                    f"result {i}: expected {_fmt_expected(e)}, got {_fmt_value(g, e, bits)}"
                )

    # -- commands ---------------------------------------------------------------------------------
    def run(self, commands: Iterable[Mapping[str, Any]]) -> Iterator[CommandResult]:
        for cmd in commands:
            start_type = cmd["type"]
            try:
                info = self.run_one(cmd)
                yield CommandResult(cmd["line"], start_type, PASS, "", info or "")
            except NotApplicable as exc:
                yield CommandResult(cmd["line"], start_type, NA, str(exc))
            except Failed as exc:
                yield CommandResult(cmd["line"], start_type, FAIL, str(exc))
            except Exception as exc:
                err = self._classify_unexpected(exc, "error")
                status = NA if isinstance(err, NotApplicable) else FAIL
                yield CommandResult(cmd["line"], start_type, status, str(err))

    def run_one(self, cmd: Mapping[str, Any]) -> str | None:
        aw = self.aw
        t = cmd["type"]
        if t in ("module", "module_definition"):
            name = cmd.get("name")
            try:
                data = self._bytes(cmd)
            except NotApplicable:
                if t == "module":
                    self.current_failed_line = cmd["line"]
                    self.instances.pop(None, None)
                raise
            if t == "module":
                self.instances.pop(None, None)
                self.current_failed_line = cmd["line"]
                if name is not None:
                    self.instances.pop(name, None)
                    self.failed_lines[name] = cmd["line"]
            try:
                mod = self._compile(data)
            except aw.CompileError as exc:
                raise Failed(f"CompileError: {_short(str(exc))}") from None
            if t == "module_definition":
                self.definitions[name] = mod
                return None
            try:
                inst = self._instantiate(mod)
            except (aw.LinkError, aw.RuntimeError) as exc:
                raise Failed(f"{type(exc).__name__}: {_short(str(exc))}") from None
            self.instances[None] = inst
            self.current_failed_line = None
            if name is not None:
                self.instances[name] = inst
                self.failed_lines.pop(name, None)
            return None
        if t == "module_instance":
            mod = self.definitions.get(cmd["module"])
            if mod is None:
                raise Failed(f"no module definition {cmd['module']!r}")
            inst = self._instantiate(mod)
            self.instances[cmd["instance"]] = inst
            self.instances[None] = inst
            return None
        if t == "register":
            name = cmd.get("name")
            failed_line = (
                self.failed_lines.get(name) if name is not None else self.current_failed_line
            )
            self.registry.pop(cmd["as"], None)
            if failed_line is not None:
                self.failed_lines[cmd["as"]] = failed_line
            inst = self._instance(name)
            self.registry[cmd["as"]] = inst.exports
            self.failed_lines.pop(cmd["as"], None)
            return None
        if t == "action":
            self._do_action(cmd["action"])
            return None
        if t == "assert_return":
            got, bits = self._do_action(cmd["action"], cmd["expected"])
            self._check_results(cmd["expected"], got, bits)
            return None
        if t in ("assert_trap", "assert_exhaustion"):
            want = "stack_overflow" if t == "assert_exhaustion" else expected_trap_kind(cmd["text"])
            try:
                got, _bits = self._do_action(cmd["action"])
            except aw.RuntimeError as exc:
                kind = getattr(exc, "trap", None)
                if want is not None and kind != want:
                    return f"trap kind {kind!r}, expected {want!r} for {cmd['text']!r}"
                return None
            raise Failed(f"expected trap {cmd['text']!r}, returned {_fmt(got)}")
        if t == "assert_exception":
            exc_cls = getattr(aw, "Exception", None)
            if exc_cls is None:
                raise Failed("asyncwasm.Exception does not exist")
            try:
                got, _bits = self._do_action(cmd["action"])
            except exc_cls:
                return None
            raise Failed(f"expected a wasm exception, returned {_fmt(got)}")
        if t in ("assert_invalid", "assert_malformed"):
            data = self._bytes(cmd)
            try:
                aw.Module(data)
            except aw.CompileError:
                return None
            raise Failed(f"compiled, but the module should be {t[7:]}: {cmd['text']!r}")
        if t in ("assert_malformed_custom", "assert_invalid_custom"):
            raise NotApplicable(f"{t}: custom-section annotations in the text format")
        if t == "assert_unlinkable":
            mod = self._compile(self._bytes(cmd))
            try:
                self._instantiate(mod)
            except aw.LinkError:
                return None
            raise Failed(f"instantiated, but should be unlinkable: {cmd['text']!r}")
        if t == "assert_uninstantiable":
            mod = self._compile(self._bytes(cmd))
            try:
                self._instantiate(mod)
            except aw.RuntimeError as exc:
                want = expected_trap_kind(cmd["text"])
                kind = getattr(exc, "trap", None)
                if want is not None and kind != want:
                    return f"trap kind {kind!r}, expected {want!r} for {cmd['text']!r}"
                return None
            raise Failed(f"instantiated, but should trap: {cmd['text']!r}")
        raise NotApplicable(f"unknown command type {t!r}")


@dataclasses.dataclass
class _Unavailable:
    reason: str
    exc: BaseException | None  # None: not applicable by design


def _as_tuple(out: object) -> tuple[object, ...]:
    if out is None:
        return ()
    if isinstance(out, tuple):
        return out
    return (out,)


def _short(s: str, limit: int = 300) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[:limit] + "..."


def _fmt(values: Sequence[object]) -> str:
    return _short(repr(tuple(values)), 200)


def _fmt_expected(e: Mapping[str, Any]) -> str:
    if e["type"] == "either":
        return " | ".join(_fmt_expected(a) for a in e["values"])
    if e["type"] == "v128":
        return f"v128 {e['lane_type']} {' '.join(e['value'])}"
    return f"{e['type']} {e.get('value', '(any)')}"


def _fmt_value(g: object, e: Mapping[str, Any], bits: bool) -> str:
    t = e["type"]
    if t in ("f32", "f64") and isinstance(g, int | float):
        w = 32 if t == "f32" else 64
        b = (int(g) & ((1 << w) - 1)) if bits else _bits_from_float(g, w)
        return f"{t} bits {b} ({_float_from_bits(b, w)!r})"
    if t == "v128" and isinstance(g, int):
        lane_type = e["lane_type"]
        return f"v128 {lane_type} {' '.join(str(x) for x in _lanes_of(g, lane_type))}"
    return _short(repr(g), 120)


def run_script(
    directory: Path, rel: str, engine: str, not_supported_ok: Sequence[str]
) -> FileResult:
    """Run one converted script in this process (asyncwasm's default engine must be ``engine``)."""
    import asyncwasm

    start = time.perf_counter()
    commands = json.loads((directory / "script.json").read_text())["commands"]
    runner = ScriptRunner(asyncwasm, directory, engine, not_supported_ok)
    results = list(runner.run(commands))
    return FileResult(rel, engine, results, seconds=time.perf_counter() - start)


def _check_engine(engine: str) -> str:
    """Makes sure asyncwasm's default runtime runs ``engine``; returns '' or a problem."""
    import asyncwasm

    runtime_cls = getattr(asyncwasm, "Runtime", None)
    if runtime_cls is None:
        return ""
    with contextlib.suppress(Exception):
        rt = runtime_cls()
        name = getattr(rt, "engine", None)
        name = getattr(name, "name", name)
        if isinstance(name, str) and name != engine:
            return (
                f"asyncwasm's default runtime runs {name}, not {engine} (ASYNCWASM_ENGINE ignored?)"
            )
    return ""


def runtime_features(engine: str) -> dict[str, bool]:
    """``asyncwasm.Runtime(engine=...).features`` as a dict (empty when unavailable)."""
    import asyncwasm

    runtime_cls = getattr(asyncwasm, "Runtime", None)
    if runtime_cls is None:
        return {}
    try:
        feats = runtime_cls(engine=engine).features
    except Exception:
        return {}
    if isinstance(feats, Mapping):
        return {str(k): bool(v) for k, v in feats.items()}
    if hasattr(feats, "as_dict"):
        return {str(k): bool(v) for k, v in feats.as_dict().items()}
    if dataclasses.is_dataclass(feats) and not isinstance(feats, type):
        return {f.name: bool(getattr(feats, f.name)) for f in dataclasses.fields(feats)}
    return {}


def worker_main(engine: str) -> int:
    """Serve requests on stdin: one JSON object per line, one JSON result per line on fd 1.

    Anything else written to stdout (by a host function, the engine) goes to stderr instead.
    """
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    problem = _check_engine(engine)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "features":
            out.write(json.dumps({"features": runtime_features(engine), "problem": problem}) + "\n")
            continue
        if problem:
            res = FileResult(req["rel"], engine, [], problem, "internal")
        else:
            try:
                res = run_script(
                    Path(req["dir"]), req["rel"], engine, req.get("not_supported_ok", [])
                )
            except Exception as exc:
                res = FileResult(req["rel"], engine, [], f"{type(exc).__name__}: {exc}", "internal")
        data = res.to_json()
        # After an engine panic (wasmer), its global state can be poisoned: every later call in
        # this process fails. Ask the parent for a fresh worker before the next script.
        data["restart"] = any("panicked" in c.detail for c in res.commands)
        out.write(json.dumps(data) + "\n")
    return 0


# ----------------------------------------------------------------------------------------------
# Worker processes (parent side)
# ----------------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, engine: str) -> None:
        self.engine = engine
        env = dict(os.environ)
        env["ASYNCWASM_ENGINE"] = engine
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONFAULTHANDLER", "1")
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def request(self, req: Mapping[str, Any], timeout: float) -> tuple[dict[str, Any] | None, str]:
        """The worker's answer, or ``None`` and why not (the worker is then unusable)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            return None, f"crash: worker died ({exc}); {self.stderr_tail()}"
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            return None, f"timeout: no result after {timeout:.0f} s (worker killed)"
        if line is None:
            code = self.proc.wait()
            return None, f"crash: worker exited with status {code}; {self.stderr_tail()}"
        return json.loads(line), ""

    def stderr_tail(self, limit: int = 1500) -> str:
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - limit))
            return "stderr: " + self.stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.stderr.close()


@dataclasses.dataclass
class _Job:
    engine: str
    rel: str
    converted: Converted
    not_supported_ok: Sequence[str]
    future: concurrent.futures.Future[FileResult]


class SpecService:
    """Runs scripts in worker processes, ``jobs`` at a time, in submission order."""

    def __init__(self, jobs: int | None = None, timeout: float | None = None) -> None:
        self.jobs = jobs or default_jobs()
        self.timeout = timeout or float(os.environ.get(ENV_TIMEOUT, "") or DEFAULT_TIMEOUT)
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.jobs)]
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        for th in self.threads:
            th.start()

    def submit(
        self, engine: str, converted: Converted, not_supported_ok: Sequence[str] = ()
    ) -> concurrent.futures.Future[FileResult]:
        fut: concurrent.futures.Future[FileResult] = concurrent.futures.Future()
        self.queue.put(_Job(engine, converted.rel, converted, list(not_supported_ok), fut))
        return fut

    def features(self, engine: str) -> tuple[dict[str, bool], str]:
        w = _Worker(engine)
        try:
            ans, err = w.request({"op": "features"}, 120)
        finally:
            w.close()
        if ans is None:
            return {}, err
        return dict(ans["features"]), str(ans["problem"])

    def _loop(self) -> None:
        worker: _Worker | None = None
        try:
            while True:
                job = self.queue.get()
                if job is None:
                    return
                # Marks the future running, so a cancel() from the session's teardown can no
                # longer land between this check and set_result().
                if not job.future.set_running_or_notify_cancel():
                    continue
                if job.converted.directory is None:
                    job.future.set_result(
                        FileResult(job.rel, job.engine, [], job.converted.error or "", "convert")
                    )
                    continue
                if worker is not None and (worker.engine != job.engine or not worker.alive()):
                    worker.close()
                    worker = None
                if worker is None:
                    worker = _Worker(job.engine)
                start = time.perf_counter()
                ans, err = worker.request(
                    {
                        "dir": str(job.converted.directory),
                        "rel": job.rel,
                        "not_supported_ok": list(job.not_supported_ok),
                    },
                    self.timeout,
                )
                if ans is None:
                    kind, _, msg = err.partition(": ")
                    worker.close()
                    worker = None
                    job.future.set_result(
                        FileResult(job.rel, job.engine, [], msg, kind, time.perf_counter() - start)
                    )
                else:
                    if ans.get("restart"):
                        worker.close()
                        worker = None
                    job.future.set_result(FileResult.from_json(ans))
        finally:
            if worker is not None:
                worker.close()

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for th in self.threads:
            th.join(timeout=self.timeout + 10)


# ----------------------------------------------------------------------------------------------
# Expectations
# ----------------------------------------------------------------------------------------------


def _load_toml(path: Path) -> dict[str, Any]:
    import importlib

    toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    with path.open("rb") as f:
        return dict(toml.load(f))


EXPECTATIONS_PATH = Path(__file__).with_name("expectations.toml")


@dataclasses.dataclass
class EngineExpectations:
    engine: str
    not_applicable_files: dict[str, str]  # rel -> reason
    expected_failures: dict[str, dict[int, str]]  # rel -> line -> reason
    not_supported_ok: list[str]
    convert_failures: dict[str, str]  # glob -> reason

    def convert_failure(self, rel: str) -> str | None:
        for pattern, reason in self.convert_failures.items():
            if _matches(rel, pattern):
                return reason
        return None


def _matches(rel: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(rel, pattern)


def load_expectations(
    engine: str, rels: Iterable[str], path: Path = EXPECTATIONS_PATH
) -> EngineExpectations:
    data = _load_toml(path)
    proposals: Mapping[str, Any] = data.get("proposals", {})
    eng: Mapping[str, Any] = data.get("engines", {}).get(engine, {})
    lacks: Mapping[str, str] = eng.get("lacks", {})
    na: dict[str, str] = {}
    for rel in rels:
        for prop, reason in lacks.items():
            files = proposals.get(prop, {}).get("files", [])
            if any(_matches(rel, pat) for pat in files):
                na[rel] = f"{engine} lacks {prop}: {reason}"
                break
        for entry in eng.get("not_applicable", []):
            if any(_matches(rel, pat) for pat in entry["files"]):
                na.setdefault(rel, entry["reason"])
    fails: dict[str, dict[int, str]] = {}
    for entry in eng.get("fail", []):
        per = fails.setdefault(entry["file"], {})
        for ln in _expand_lines(entry["lines"]):
            per[ln] = entry["reason"]
    return EngineExpectations(
        engine,
        na,
        fails,
        list(eng.get("not_supported_ok", [])),
        dict(data.get("convert_failures", {})),
    )


def _expand_lines(items: Iterable[int | str]) -> Iterator[int]:
    for it in items:
        if isinstance(it, int):
            yield it
        else:
            lo, _, hi = str(it).partition("-")
            yield from range(int(lo), int(hi or lo) + 1)


@dataclasses.dataclass
class Verdict:
    rel: str
    engine: str
    status: str  # "ok", "na" (whole file), "mismatch"
    passed: int = 0
    failed: int = 0  # unexpected failures
    not_applicable: int = 0
    expected_failing: int = 0
    unexpected_passes: list[int] = dataclasses.field(default_factory=list)
    unexpected_failures: list[CommandResult] = dataclasses.field(default_factory=list)
    trap_mismatches: list[CommandResult] = dataclasses.field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0

    def report(self, limit: int = 60) -> str:
        lines = [
            f"{self.rel} on {self.engine}: {self.reason}"
            if self.reason
            else f"{self.rel} on {self.engine}:"
        ]
        for c in self.unexpected_failures[:limit]:
            lines.append(f"  line {c.line} {c.type}: FAILED: {c.detail}")
        if len(self.unexpected_failures) > limit:
            lines.append(f"  ... and {len(self.unexpected_failures) - limit} more failures")
        if self.unexpected_passes:
            lines.append(
                "  expected to fail (expectations.toml) but passed: lines "
                + ", ".join(map(str, self.unexpected_passes))
            )
        return "\n".join(lines)


def evaluate(result: FileResult, exp: EngineExpectations) -> Verdict:
    rel = result.rel
    v = Verdict(rel, result.engine, "ok", seconds=result.seconds)
    if rel in exp.not_applicable_files:
        v.status, v.reason = "na", exp.not_applicable_files[rel]
        v.not_applicable = len(result.commands)
        return v
    convert_reason = exp.convert_failure(rel)
    if result.error_kind == "convert" and convert_reason is not None:
        v.status, v.reason = "na", f"not convertible: {convert_reason}"
        return v
    if result.error:
        v.status, v.reason = "mismatch", f"{result.error_kind}: {result.error}"
        v.failed = 1
        return v
    xf = exp.expected_failures.get(rel, {})
    seen_xf: set[int] = set()
    for c in result.commands:
        if c.line in xf:
            seen_xf.add(c.line)
            if c.status == FAIL:
                v.expected_failing += 1
            elif c.status == PASS:
                v.unexpected_passes.append(c.line)
                v.passed += 1
            else:
                v.not_applicable += 1
            continue
        if c.status == PASS:
            v.passed += 1
            if c.trap_mismatch:
                v.trap_mismatches.append(c)
        elif c.status == NA:
            v.not_applicable += 1
        else:
            v.failed += 1
            v.unexpected_failures.append(c)
    stale = sorted(set(xf) - seen_xf)
    if stale:
        v.reason = f"expectations.toml names lines with no command: {stale}"
    if v.unexpected_failures or v.unexpected_passes or stale:
        v.status = "mismatch"
    return v


def count_commands(converted: Converted) -> int:
    """How many commands a converted script has (0 when it did not convert)."""
    if converted.directory is None:
        return 0
    return len(json.loads(converted.json_path.read_text())["commands"])


def not_applicable_verdict(
    converted: Converted, engine: str, exp: EngineExpectations
) -> Verdict | None:
    """The verdict for a script that is not run on ``engine`` at all, else ``None``."""
    rel = converted.rel
    if rel in exp.not_applicable_files:
        return Verdict(
            rel,
            engine,
            "na",
            not_applicable=count_commands(converted),
            reason=exp.not_applicable_files[rel],
        )
    convert_reason = exp.convert_failure(rel)
    if converted.directory is None and convert_reason is not None:
        return Verdict(rel, engine, "na", reason=f"not convertible: {convert_reason}")
    return None


def main(argv: Sequence[str]) -> int:
    if len(argv) >= 2 and argv[0] == "--worker":
        return worker_main(argv[1])
    print(
        "usage: runner.py --worker ENGINE  (see tools/conformance.py for the report)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    # Running as a script puts this directory first on sys.path; asyncwasm comes from PYTHONPATH.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)
    raise SystemExit(main(sys.argv[1:]))
