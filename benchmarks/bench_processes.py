"""Beyond one process: 1,000 calls of ~1 ms of wasm in one process, a 2-worker
ProcessPoolExecutor and a 2-worker Dask LocalCluster; and what a pickled module costs.

    python benchmarks/bench_processes.py --python310 .venvs/wasmer-py310/bin/python \\
        --python3 .venvs/wasmtime-py3/bin/python

The export is ``spin(n, seed)`` (examples/dask_cluster.py), with ``n`` calibrated so that one
call runs ~1 ms here. Batching: the calls go in tasks of 50 (20 tasks, 10 per worker), each task
carrying the module (pickled each time: the worker's in-memory cache makes every arrival after
the first a hash and a lookup) and its digest, under which the worker keeps one instance. The
same with one call per task shows what a task costs. Pool and cluster are started and warmed
up (one task per worker) before the clock starts; their start-up is reported apart.
Ratios are speed-ups over one process (2.0x is the most two workers can give; this machine has
2 cores, and the parent and the scheduler share them).

Pickling: a 1.5 MB module (QuickJS) with its compiled artifact: payload size, unpickling in a
fresh cache (artifact verified and loaded) against compiling the bytes, and a memory-cache hit.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, driver_main, qjs_module

import asyncwasm
from asyncwasm import _transfer
from asyncwasm._compile import service_for
from asyncwasm._runtime import get_default_runtime

CALLS = 1000
BATCH = 50
SPIN_WASM = bytes.fromhex(
    "0061736d0100000001070160027f7f017f03020100070801047370696e00000a32013001027f200121"
    "0302400340200220004f0d01200341ed9c998e046c41b9e0006a2103200241016a21020c000b0b2003"
    "0b"
)
DIGEST = hashlib.sha256(SPIN_WASM).hexdigest()

_instances: dict[str, asyncwasm.Instance] = {}


def run_batch(module: asyncwasm.Module, digest: str, calls: list[tuple[int, int]]) -> list[int]:
    """In a worker: the calls on the worker's one instance of ``module``."""
    instance = _instances.get(digest)
    if instance is None:
        # On wasmer, Dask unpickles on its event-loop thread and runs tasks in a thread pool:
        # make the module again on this thread (a memory-cache hit; see examples/dask_cluster.py).
        module = pickle.loads(pickle.dumps(module))
        instance = _instances[digest] = asyncwasm.Instance(module)
    fn = instance.exports.spin
    return [fn(n, seed) for n, seed in calls]


def _calibrate(fn: object) -> int:
    """Rounds of ``spin`` that take ~1 ms here."""
    n = 100_000
    while True:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn(n, 1)  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        took = statistics.median(times)
        if took > 0.0002:
            return max(1, int(n * 0.001 / took))
        n *= 4


def _batches(calls: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    return [calls[i : i + size] for i in range(0, len(calls), size)]


def _pool_run(
    executor: concurrent.futures.ProcessPoolExecutor,
    module: asyncwasm.Module,
    calls: list[tuple[int, int]],
    size: int,
) -> tuple[float, list[int]]:
    t = time.perf_counter()
    futures = [executor.submit(run_batch, module, DIGEST, b) for b in _batches(calls, size)]
    results = [r for f in futures for r in f.result()]
    return time.perf_counter() - t, results


async def _dask_figures(
    module: asyncwasm.Module, calls: list[tuple[int, int]], single: float, expected: list[int]
) -> list[Figure]:
    from dask.distributed import Client, LocalCluster

    figures = []
    t = time.perf_counter()
    async with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            asynchronous=True,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        [remote] = await client.scatter([module], broadcast=True)
        warm = [client.submit(run_batch, remote, DIGEST, calls[:2], pure=False) for _ in range(4)]
        await client.gather(warm)
        figures.append(Figure("dask: cluster start-up and warm-up", time.perf_counter() - t, "s"))
        for size in (BATCH, 1):
            t = time.perf_counter()
            futures = client.map(
                run_batch,
                *zip(*[(remote, DIGEST, b) for b in _batches(calls, size)], strict=True),
                pure=False,
            )
            results = [r for part in await client.gather(futures) for r in part]
            took = time.perf_counter() - t
            assert results == expected, "dask results differ"
            what = f"{size} calls per task" if size > 1 else "1 call per task"
            figures.append(Figure(f"dask, 2 workers, {what}", took, "s"))
            figures.append(Figure(f"dask, 2 workers, {what}: speed-up", single / took, "x"))
    return figures


async def measure(engine: str, quick: bool) -> list[Figure]:
    assert get_default_runtime().engine == engine, "run with ASYNCWASM_ENGINE set"
    module = asyncwasm.Module(SPIN_WASM)
    fn = asyncwasm.Instance(module).exports.spin
    n = _calibrate(fn)
    calls = [(n, seed) for seed in range(CALLS)]
    figures = [Figure("spin rounds for ~1 ms", n, "rounds")]

    t = time.perf_counter()
    expected = [fn(*c) for c in calls]
    single = time.perf_counter() - t
    figures.append(Figure("one process, 1,000 calls", single, "s"))

    for method in ("fork", "spawn"):
        t = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context(method)
        ) as executor:
            for f in [executor.submit(run_batch, module, DIGEST, calls[:2]) for _ in range(4)]:
                f.result()
            figures.append(
                Figure(f"pool ({method}): start-up and warm-up", time.perf_counter() - t, "s")
            )
            for size in (BATCH, 1):
                took, results = _pool_run(executor, module, calls, size)
                assert results == expected, "pool results differ"
                what = f"{size} calls per task" if size > 1 else "1 call per task"
                figures.append(Figure(f"pool ({method}), 2 workers, {what}", took, "s"))
                figures.append(
                    Figure(f"pool ({method}), 2 workers, {what}: speed-up", single / took, "x")
                )

    figures += await _dask_figures(module, calls, single, expected)
    figures += _pickle_figures()
    return figures


def _pickle_figures() -> list[Figure]:
    wasm = qjs_module()
    module = asyncwasm.Module(wasm)
    t = time.perf_counter()
    payload = pickle.dumps(module)
    first_dump = time.perf_counter() - t
    t = time.perf_counter()
    pickle.dumps(module)
    again_dump = time.perf_counter() - t
    service = service_for(get_default_runtime())

    def fresh_load(data: bytes) -> float:
        service.clear_cache()
        t = time.perf_counter()
        pickle.loads(data)
        return time.perf_counter() - t

    with_artifact = fresh_load(payload)
    bare = pickle.dumps(
        _Bare(_transfer._FORMAT, wasm, hashlib.sha256(wasm).digest())  # bytes only
    )
    compiled = fresh_load(bare)
    t = time.perf_counter()
    pickle.loads(payload)
    hit = time.perf_counter() - t
    return [
        Figure("QuickJS (1.5 MB) pickle payload with artifact", len(payload) / 1e6, "MB"),
        Figure("QuickJS pickle.dumps, first (serializes)", first_dump * 1000, "ms"),
        Figure("QuickJS pickle.dumps, again (artifact kept)", again_dump * 1000, "ms"),
        Figure("QuickJS unpickle, cache miss, artifact", with_artifact * 1000, "ms"),
        Figure("QuickJS unpickle, cache miss, bytes only (compiles)", compiled * 1000, "ms"),
        Figure("QuickJS unpickle, memory-cache hit", hit * 1000, "ms"),
        Figure("artifact speed-up of a cache miss", compiled / with_artifact, "x"),
    ]


class _Bare:
    """Pickles as a module payload without an artifact (what a small module sends)."""

    def __init__(self, fmt: int, wasm: bytes, digest: bytes) -> None:
        self.args = (fmt, wasm, digest, None)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_transfer._load, self.args)


if __name__ == "__main__":
    driver_main(__doc__ or "", "Beyond one process", measure)
