"""asyncmy against aiomysql on the same work, to choose the MariaDB/MySQL driver: get a
row by primary key, one task and 50 concurrent tasks on a queue of ten connections,
alternating drivers over rounds.

    python -m benchmarks.mysql_drivers [--rounds 3] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

SQL = "SELECT id, name, value, price, created FROM asyncdb_driver_item WHERE id = %s"
ROWS = 1000
SERVER = {
    "host": os.environ.get("MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("MYSQL_PORT", "3306")),
    "user": os.environ.get("MYSQL_USER", "root"),
    "password": os.environ.get("MYSQL_PASSWORD", ""),
    "autocommit": True,
}
DATABASE = os.environ.get("MYSQL_DATABASE", "test")


async def connect(driver: str) -> Any:
    if driver == "asyncmy":
        import asyncmy

        return await asyncmy.connect(database=DATABASE, **SERVER)
    import aiomysql

    return await aiomysql.connect(db=DATABASE, **SERVER)


async def close(driver: str, connection: Any) -> None:
    if driver == "asyncmy":
        await connection.ensure_closed()
    else:
        connection.close()


async def setup() -> None:
    connection = await connect("asyncmy")
    async with connection.cursor() as cursor:
        await cursor.execute("DROP TABLE IF EXISTS asyncdb_driver_item")
        await cursor.execute(
            "CREATE TABLE asyncdb_driver_item (id bigint PRIMARY KEY, name varchar(100), "
            "value int, price decimal(8, 2), created datetime(6))"
        )
        await cursor.executemany(
            "INSERT INTO asyncdb_driver_item VALUES (%s, %s, %s, %s, NOW(6))",
            [(i, f"item {i}", i, i / 4) for i in range(1, ROWS + 1)],
        )
    await close("asyncmy", connection)


async def measure(driver: str, tasks: int, seconds: float) -> float:
    connections = [await connect(driver) for _ in range(min(tasks, 10))]
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for connection in connections:
        queue.put_nowait(connection)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            connection = await queue.get()
            try:
                async with connection.cursor() as cursor:
                    await cursor.execute(SQL, (done % ROWS + 1,))
                    await cursor.fetchall()
            finally:
                queue.put_nowait(connection)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    rate = done / (time.perf_counter() - start)
    for connection in connections:
        await close(driver, connection)
    return rate


async def main(rounds: int, seconds: float) -> None:
    await setup()
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for tasks in (1, 50):
            for driver in ("aiomysql", "asyncmy"):
                results.setdefault((driver, tasks), []).append(
                    await measure(driver, tasks, seconds)
                )
    print(f"get by pk, ops/s, median of {rounds} rounds of {seconds:g} s\n")
    print("| driver | 1 task | 50 tasks |\n|---|---:|---:|")
    for driver in ("aiomysql", "asyncmy"):
        cells = [f"{statistics.median(results[(driver, t)]):,.0f}" for t in (1, 50)]
        print(f"| {driver} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.seconds))
