"""WebAssembly on a Dask cluster: compile a module once, map calls over the workers.

    python examples/dask_cluster.py [--workers 2] [--calls 200] [--batch 25] [--cache-dir DIR]

Needs ``dask`` and ``distributed`` (``pip install 'asyncwasm[test]'`` has them). What happens:

1. The client compiles the module once (``await asyncwasm.compile``), on the event loop of
   Dask's asynchronous ``Client``.
2. ``client.scatter(module, broadcast=True)`` sends it to every worker: an ``asyncwasm.Module``
   pickles as its wasm bytes and their sha256 (plus the compiled artifact for modules of 64 KiB
   or more, which a worker with the same engine loads instead of compiling). Each worker
   unpickles it once.
3. The calls are mapped in batches (one task per ``--batch`` calls: a task costs Dask about a
   millisecond, so one call per task would cost more than the call). A worker keeps one
   instance per module, keyed by the module's digest, for all the batches it runs.

With ``--cache-dir``, workers compile into a shared on-disk cache: on one machine they compile
each module once between them (the first compiles, the others load the artifact).

The cluster is a ``LocalCluster`` of worker processes on 127.0.0.1 (no dashboard); point
``Client`` at a real scheduler's address to use a cluster of machines.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
from typing import Any

from dask.distributed import Client, LocalCluster, get_worker

import asyncwasm

# (func (export "spin") (param $n i32) (param $seed i32) (result i32)): $n rounds of a linear
# congruential generator started at $seed; about 1 ms of wasm for $n = 1,000,000.
SPIN_WASM = bytes.fromhex(
    "0061736d0100000001070160027f7f017f03020100070801047370696e00000a32013001027f200121"
    "0302400340200220004f0d01200341ed9c998e046c41b9e0006a2103200241016a21020c000b0b2003"
    "0b"
)


def spin_in_python(n: int, seed: int) -> int:
    """What ``spin`` computes, for checking the results."""
    x = seed & 0xFFFFFFFF
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def run_batch(
    module: asyncwasm.Module, digest: str, export: str, calls: list[tuple[int, ...]]
) -> dict[str, Any]:
    """On a worker: run ``calls`` on the worker's one instance of ``module``."""
    worker = get_worker()
    instances: dict[str, asyncwasm.Instance] = worker.__dict__.setdefault("asyncwasm_instances", {})
    instance = instances.get(digest)
    if instance is None:
        # wasmer's objects are thread-affine, and Dask unpickles a task's arguments on the
        # worker's event-loop thread but runs the task in its thread pool: a pickle round trip
        # makes the module again on this thread, from the worker's in-memory compile cache (no
        # compilation; on wasmtime, a cache hit that changes nothing).
        module = pickle.loads(pickle.dumps(module))
        instance = instances[digest] = asyncwasm.Instance(module)
    fn = instance.exports[export]
    return {
        "worker": worker.address,
        "pid": os.getpid(),
        "instance": id(instance),
        "results": [fn(*args) for args in calls],
    }


def compile_on_worker(cache_dir: str, wasm: bytes) -> dict[str, int]:
    """On a worker: compile ``wasm`` through a runtime on the shared ``cache_dir``."""

    async def main() -> dict[str, int]:
        async with asyncwasm.Runtime(cache_dir=cache_dir, max_workers=1) as rt:
            await rt.compile(wasm)
            info = rt.cache_info()
            return {"compiles": info.compiles, "disk_hits": info.disk_hits}

    return asyncio.run(main())


async def run(
    calls: list[tuple[int, ...]],
    *,
    wasm: bytes = SPIN_WASM,
    export: str = "spin",
    workers: int = 2,
    batch: int = 25,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Run ``calls`` of ``export`` over a local cluster of ``workers`` processes."""
    async with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            asynchronous=True,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        module = await asyncwasm.compile(wasm)  # once, here
        digest = hashlib.sha256(wasm).hexdigest()
        [remote] = await client.scatter([module], broadcast=True)
        batches = [calls[i : i + batch] for i in range(0, len(calls), batch)]
        futures = client.map(
            run_batch,
            [remote] * len(batches),
            [digest] * len(batches),
            [export] * len(batches),
            batches,
            pure=False,
        )
        done = await client.gather(futures)
        out: dict[str, Any] = {
            "results": [r for d in done for r in d["results"]],
            "instances": sorted({(d["worker"], d["pid"], d["instance"]) for d in done}),
        }
        if cache_dir is not None:
            # Every worker compiles the same module through the shared cache_dir at once.
            addresses = sorted({d["worker"] for d in done})
            compiled = [
                client.submit(compile_on_worker, cache_dir, wasm, workers=[a], pure=False)
                for a in addresses
            ]
            out["cache"] = await client.gather(compiled)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=100_000, help="spin's $n per call")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    args = parser.parse_args()
    calls = [(args.rounds, seed) for seed in range(args.calls)]
    out = asyncio.run(run(calls, workers=args.workers, batch=args.batch, cache_dir=args.cache_dir))
    if args.json:
        print(json.dumps(out))
        return
    expected = [spin_in_python(*c) for c in calls[:3]]
    print(f"{len(out['results'])} calls over {args.workers} workers; first: {out['results'][:3]}")
    print(f"  (expected {expected})")
    for worker, pid, instance in out["instances"]:
        print(f"  worker {worker} (pid {pid}): instance {instance:#x}")
    if "cache" in out:
        print(f"  shared cache_dir: {out['cache']}")


if __name__ == "__main__":
    main()
