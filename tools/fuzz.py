"""Fuzz asyncwasm's compile surface with mutations of real modules.

Every input goes through ``validate``, ``Module``, ``compile`` and ``compile_streaming`` in a
worker process (``--worker``) of the selected engine, and the parent checks what came back:

- crash: the worker died (a signal, an abort inside the engine) while handling the input;
- hang: no answer within ``--timeout`` seconds (the worker is killed);
- non-contract: ``validate`` raised, or another entry point raised anything but ``CompileError``;
- disagreement: ``validate`` said True where ``Module()`` failed (or the reverse), or ``Module``,
  ``compile`` and ``compile_streaming`` did not all succeed or all fail.

Seeds: the modules of the spec test suite (converted by ``tests/spec/runner.py`` with the
``wasm-tools`` CLI; the cached conversion under ``.cache/spec`` is reused), QuickJS
(``qjs-wasi-reactor``, a test dependency) and a few hand-written modules. Inputs are derived
deterministically from ``--seed``: the same command fuzzes the same inputs. Inputs that failed a
check are written to ``--out`` (default ``.cache/fuzz/<engine>/``); ``--replay FILE...`` runs
those again.

    python tools/fuzz.py --engine wasmtime --count 20000 --workers 2
    python tools/fuzz.py --engine wasmer --count 300          # the brief run of `make test`

The exit status is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import random
import select
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_LEN = struct.Struct("<Q")
ENTRY_POINTS = ("validate", "module", "compile", "stream")

# --- Seeds ------------------------------------------------------------------------------------


def _spec_seeds() -> list[bytes]:
    """The binaries of the spec suite's scripts (valid, invalid and malformed ones alike)."""
    sys.path.insert(0, str(REPO))
    try:
        from tests.spec import runner
    except Exception:
        return []
    files: list[Path] = []
    root = runner.suite_dir()
    if root is not None:
        try:
            converted = runner.convert_all(root, runner.list_scripts(root))
            for entry in converted.values():
                if entry.directory is not None:
                    files.extend(sorted(entry.directory.glob("*.wasm")))
        except Exception as error:  # no wasm-tools: fall back to whatever is cached
            print(f"fuzz: could not convert the spec suite ({error})", file=sys.stderr)
    if not files:
        files = sorted(runner.cache_root().glob("*/*.wasm"))
    seen: set[bytes] = set()
    seeds = []
    for path in files:
        data = path.read_bytes()
        digest = hashlib.sha256(data).digest()
        if digest not in seen and 8 <= len(data) <= 4 << 20:
            seen.add(digest)
            seeds.append(data)
    return seeds


def _quickjs_seed() -> bytes | None:
    from importlib import metadata

    try:
        dist = metadata.distribution("qjs-wasi-reactor.wasm")
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == "qjs-wasi-reactor.wasm":
            return Path(str(dist.locate_file(file))).read_bytes()
    return None


# A small valid module (a function "loop" with a loop in it): a seed even without the suite.
_SMALL = bytes.fromhex(
    "0061736d0100000001040160000003020100070801046c6f6f7000000a0901070003400c000b0b"
)


# Modules one engine's validator accepts and its compiler refuses (the disagreements of the fuzz
# run behind issue 15): wasmtime's compact import encodings, and a SIMD opcode (i8x16.popcnt)
# that wasmer 1.1's Cranelift cannot compile.
_LENIENT = [
    bytes.fromhex("0061736d01000000010401600000020c0103656e76007f0101660000"),
    bytes.fromhex("0061736d01000000010401600000020c0103656e76007e0000010166"),
    bytes.fromhex(
        "0061736d0100000001040160000003020100070501016600000a19011700fd0c010000000000000002"
        "00000000000000fd621a0b"
    ),
]


def load_seeds() -> tuple[list[bytes], bytes | None]:
    return [*_spec_seeds(), _SMALL, *_LENIENT], _quickjs_seed()


# --- Mutations --------------------------------------------------------------------------------

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x40, 0x0B, 0x60, 0x70, 0x6F, 0xFB, 0xFC, 0xFD)
_BIG_LEBS = (
    b"\xff\xff\xff\xff\x0f",  # 2**32 - 1
    b"\x80\xad\xe2\x04",  # 10,000,000
    b"\xc1\x84\x3d",  # 1,000,001
    b"\x80\x80\x80\x80\x10",  # 2**32: too large
    b"\xff\xff\xff\xff\x7f",  # overlong
)


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _sections(wasm: bytes) -> list[tuple[int, int, int]]:
    """(id offset, body start, body end) of each section, as far as they parse."""
    out = []
    pos = 8
    while pos < len(wasm):
        start = pos + 1
        size = shift = 0
        while start < len(wasm):
            b = wasm[start]
            start += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80 or shift > 35:
                break
        end = start + size
        if end > len(wasm):
            break
        out.append((pos, start, end))
        pos = end
    return out


def mutate(rng: random.Random, seed: bytes, others: Sequence[bytes]) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
        op = rng.randrange(11)
        n = len(data)
        pos = rng.randrange(8, n) if n > 8 else n
        if op == 0 and n > 8:  # flip bits
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and n > 8:  # an interesting byte
            data[pos] = rng.choice(_INTERESTING)
        elif op == 2:  # insert random bytes
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and n > 8:  # delete a range
            del data[pos : pos + rng.randint(1, 16)]
        elif op == 4 and n > 9:  # truncate
            del data[rng.randrange(8, n) :]
        elif op == 5:  # a count or size bomb
            data[pos : pos + rng.randint(1, 5)] = rng.choice(_BIG_LEBS)
        elif op in (6, 7):  # mutate inside a section and fix its size (or not)
            sections = _sections(bytes(data))
            if not sections:
                continue
            sid, start, end = rng.choice(sections)
            body = bytearray(data[start:end])
            if body:
                i = rng.randrange(len(body))
                if rng.random() < 0.5:
                    body[i] = rng.randrange(256)
                else:
                    body[i:i] = rng.choice(_BIG_LEBS)
            new = bytes([data[sid]]) + _uleb(len(body)) + bytes(body)
            if op == 7:
                new = bytes([data[sid]]) + _uleb(end - start) + bytes(body)
            data[sid:end] = new
        elif op == 8:  # splice a section of another module in
            other = rng.choice(others)
            sections = _sections(other)
            if sections:
                sid, _, end = rng.choice(sections)
                at = rng.choice([s for s, _, _ in _sections(bytes(data))] or [8])
                data[at:at] = other[sid:end]
        elif op == 9:  # drop or duplicate a section
            sections = _sections(bytes(data))
            if sections:
                sid, _, end = rng.choice(sections)
                if rng.random() < 0.5:
                    del data[sid:end]
                else:
                    data[end:end] = data[sid:end]
        elif op == 10:  # a custom section declaring a huge size
            data[len(data) :] = b"\x00" + rng.choice(_BIG_LEBS) + b"\x01x"
    return bytes(data)


def make_input(index: int, seed: int, seeds: Sequence[bytes], quickjs: bytes | None) -> bytes:
    rng = random.Random(f"{seed}:{index}")
    base = quickjs if quickjs is not None and rng.random() < 0.003 else rng.choice(seeds)
    if rng.random() < 0.05:
        return base  # unmutated seeds too: validate/Module must agree on them as well
    return mutate(rng, base, seeds)


# --- The worker process -----------------------------------------------------------------------


def _write(f: Any, obj: object) -> None:
    payload = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    f.write(_LEN.pack(len(payload)) + payload)
    f.flush()


def _read(f: Any) -> Any:
    head = f.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    return pickle.loads(f.read(n))


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    step = max(1, len(data) // 7)
    for i in range(0, len(data), step):
        yield data[i : i + step]


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        result = call()
    except BaseException as error:  # everything is reported, KeyboardInterrupt included
        if isinstance(error, (SystemExit, KeyboardInterrupt)):
            raise
        return type(error).__module__ + "." + type(error).__qualname__, str(error)[:300]
    # (asyncwasm's public classes report ``__module__ == "asyncwasm"``)
    return "ok", repr(result) if isinstance(result, bool) else "ok"


def _run_one(data: bytes, validating: Any, compiling: Any, loop: Any) -> dict[str, Any]:
    import asyncwasm

    return {
        "validate": _outcome(lambda: validating.validate(data)),
        "module": _outcome(lambda: asyncwasm.Module(data, runtime=compiling)),
        "compile": _outcome(lambda: loop.run_until_complete(compiling.compile(data))),
        "stream": _outcome(
            lambda: loop.run_until_complete(compiling.compile_streaming(_chunks(data)))
        ),
    }


def worker_main() -> None:
    import asyncwasm

    engine = os.environ.get("ASYNCWASM_ENGINE")
    validating = asyncwasm.Runtime(engine)
    # No in-memory cache: compile() and compile_streaming() compile for themselves instead of
    # reusing what validate() or each other compiled.
    compiling = asyncwasm.Runtime(engine, cache_size=0)
    loop = asyncio.new_event_loop()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    while True:
        job = _read(inp)
        if job is None:
            break
        _write(out, _run_one(job, validating, compiling, loop))
    validating.close()
    compiling.close()


# --- The parent -------------------------------------------------------------------------------


@dataclass
class Report:
    engine: str
    inputs: int = 0
    valid: int = 0
    seconds: float = 0.0
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    non_contract: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> bool:
        return bool(self.crashes or self.hangs or self.non_contract or self.disagreements)

    def summary(self) -> str:
        return (
            f"fuzz {self.engine}: {self.inputs} inputs ({self.valid} valid) in "
            f"{self.seconds:.0f} s: {len(self.crashes)} crashes, {len(self.hangs)} hangs, "
            f"{len(self.non_contract)} non-contract exceptions, {len(self.disagreements)} "
            "validate/Module/compile disagreements"
        )


_CONTRACT = "asyncwasm.CompileError"


def check(result: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(non-contract findings, disagreements) for one input's outcomes."""
    odd, disagree = [], []
    kind, value = result["validate"]
    if kind != "ok":
        odd.append(f"validate raised {kind}: {value}")
    for name in ("module", "compile", "stream"):
        kind, value = result[name]
        if kind not in ("ok", _CONTRACT):
            odd.append(f"{name} raised {kind}: {value}")
    compiled = {name: result[name][0] == "ok" for name in ("module", "compile", "stream")}
    if result["validate"] == ("ok", "True") and not compiled["module"]:
        disagree.append(f"validate True, Module() raised {result['module']}")
    if result["validate"] == ("ok", "False") and compiled["module"]:
        disagree.append("validate False, Module() compiled")
    if len(set(compiled.values())) > 1:
        disagree.append(f"entry points disagree: {result}")
    return odd, disagree


class _Worker:
    def __init__(self, python: str, engine: str) -> None:
        env = {**os.environ, "ASYNCWASM_ENGINE": engine, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def ask(self, data: bytes, timeout: float) -> dict[str, tuple[str, str]] | str:
        """The worker's outcomes, or "hang" / "crash: <how>"."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        try:
            _write(self.proc.stdin, data)
        except BrokenPipeError:
            return f"crash: exit {self.proc.wait()}"
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            return "hang"
        answer = _read(self.proc.stdout)
        if answer is None:
            code = self.proc.wait()
            how = signal.Signals(-code).name if code < 0 else f"exit {code}"
            return f"crash: {how}"
        result: dict[str, tuple[str, str]] = answer
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(
    engine: str,
    python: str,
    inputs: Callable[[int], bytes],
    count: int,
    timeout: float,
    out: Path,
    progress: bool,
) -> Report:
    report = Report(engine)
    started = time.monotonic()
    worker = _Worker(python, engine)
    try:
        for index in range(count):
            data = inputs(index)
            answer = worker.ask(data, timeout)
            report.inputs += 1
            problems: list[tuple[list[str], str]] = []
            if isinstance(answer, str):
                problems.append((report.hangs if answer == "hang" else report.crashes, answer))
                worker = _Worker(python, engine)
            else:
                report.outcomes.update(f"{k}:{v[0].rpartition('.')[2]}" for k, v in answer.items())
                report.valid += answer["module"][0] == "ok"
                odd, disagree = check(answer)
                problems += [(report.non_contract, m) for m in odd]
                problems += [(report.disagreements, m) for m in disagree]
            for bucket, message in problems:
                path = out / f"{hashlib.sha256(data).hexdigest()[:16]}.wasm"
                out.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                bucket.append(f"input {index} ({path}): {message[:500]}")
            if progress and index and index % 1000 == 0:
                print(f"  {engine}: {index} inputs, {time.monotonic() - started:.0f} s", flush=True)
    finally:
        worker.close()
    report.seconds = time.monotonic() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default=os.environ.get("ASYNCWASM_ENGINE", "wasmtime"))
    parser.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="index of the first input")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per input")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--replay", type=Path, nargs="*", default=None)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    out = args.out or REPO / ".cache" / "fuzz" / args.engine
    if args.replay is not None:
        files = [p.read_bytes() for p in args.replay]
        report = run(
            args.engine, args.python, files.__getitem__, len(files), args.timeout, out, False
        )
        reports = [report]
    else:
        seeds, quickjs = load_seeds()
        print(
            f"fuzz {args.engine}: {len(seeds)} seeds"
            f"{' + QuickJS' if quickjs else ''}, inputs {args.start}..{args.start + args.count}",
            flush=True,
        )

        def inputs(offset: int, index: int) -> bytes:
            return make_input(args.start + offset + index, args.seed, seeds, quickjs)

        reports = _parallel(args, out, inputs)
    failed = False
    for report in reports:
        print(report.summary())
        for name in ("crashes", "hangs", "non_contract", "disagreements"):
            for line in getattr(report, name)[:20]:
                print(f"  {name}: {line}")
        failed |= report.failed
    if args.json is not None:
        args.json.write_text(
            json.dumps([{**r.__dict__, "outcomes": dict(r.outcomes)} for r in reports], indent=1)
        )
    return 1 if failed else 0


def _parallel(
    args: argparse.Namespace, out: Path, inputs: Callable[[int, int], bytes]
) -> list[Report]:
    """Split the inputs between ``--workers`` threads, each driving one worker process."""
    import concurrent.futures
    import functools

    shares = [
        args.count // args.workers + (i < args.count % args.workers) for i in range(args.workers)
    ]
    offsets = [sum(shares[:i]) for i in range(args.workers)]
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(
                run,
                args.engine,
                args.python,
                functools.partial(inputs, offset),
                share,
                args.timeout,
                out,
                args.progress,
            )
            for offset, share in zip(offsets, shares, strict=True)
        ]
        parts = [f.result() for f in futures]
    total = Report(args.engine)
    for part in parts:
        total.inputs += part.inputs
        total.valid += part.valid
        total.seconds = max(total.seconds, part.seconds)
        total.crashes += part.crashes
        total.hangs += part.hangs
        total.non_contract += part.non_contract
        total.disagreements += part.disagreements
        total.outcomes.update(part.outcomes)
    return [total]


if __name__ == "__main__":
    sys.exit(main())
