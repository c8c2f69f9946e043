"""CPU per upstream call of the external-API view's client, by how its connections are split.

    python example/upstream_clients.py [--calls 2000] [--in-flight 64] [--delay 50]

Starts the local upstream (answering after --delay ms) and makes --calls calls through
books.upstream.AsyncUpstream, --in-flight at a time, on uvloop as uvicorn runs: one
AsyncClient of 32 connections against the example's 8 clients of 8 (and 64 of 1).
Loopback only.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from books.upstream import AsyncUpstream

SPLITS = [(1, 32), (8, 8), (64, 1)]  # (clients, connections each)


async def measure(url: str, shards: int, per_shard: int, calls: int, in_flight: int) -> str:
    upstream = AsyncUpstream(shards, per_shard)
    gate = asyncio.Semaphore(in_flight)

    async def call() -> None:
        async with gate:
            (await upstream.get(url)).json()

    await asyncio.gather(*(call() for _ in range(min(200, calls))))  # warm the connections
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(call() for _ in range(calls)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await upstream.aclose()
    return (
        f"{shards:3} client(s) of {per_shard:2} connections, {in_flight} in flight: "
        f"{calls / wall:7.0f} calls/s, {cpu / calls * 1e3:5.2f} ms of CPU per call"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--delay", type=float, default=50.0, help="milliseconds")
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as folder:
        server = harness.upstream(args.delay, Path(folder) / "upstream.log")
        try:
            server.wait_ready()
            for shards, per_shard in SPLITS:
                line = uvloop.run(
                    measure(server.url + "/", shards, per_shard, args.calls, args.in_flight)
                )
                print(line, flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
