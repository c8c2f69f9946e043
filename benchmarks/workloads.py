"""The workloads every system runs, in this order, and how they are timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from benchmarks import data

PAGE = 20  # rows of a page
MANY = 500  # rows the "many rows" filters return (value <= MANY)
BATCH = 100  # rows inserted one at a time inside one transaction
BULK = 1000  # rows of one bulk insert
TASKS = 50  # concurrent tasks of the concurrent workloads


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    concurrency: int = 1


# Reads first, on the starting rows; then writes.
WORKLOADS = [
    Workload("get", "get by pk"),
    Workload("get_concurrent", f"get by pk, {TASKS} concurrent tasks", TASKS),
    Workload("filter_many", f"filter returning {MANY} objects"),
    Workload("paged", f"page of {PAGE} objects, limit/offset"),
    Workload("values", f"values() of {MANY} rows"),
    Workload("values_list", f"values_list() of {MANY} rows"),
    Workload("page_related", f"page of {PAGE} books, select_related + prefetch_related"),
    Workload("insert", "insert one row"),
    Workload("insert_concurrent", f"insert one row, {TASKS} concurrent tasks", TASKS),
    Workload("insert_transaction", f"insert {BATCH} rows one by one in one transaction"),
    Workload("bulk_insert", f"bulk insert {BULK} rows"),
    Workload("update_all", "update all fields of an object"),
    Workload("update_one", "update one field of an object"),
    Workload("delete", "delete one row by pk"),
]
BY_KEY = {workload.key: workload for workload in WORKLOADS}

Op = Callable[[int], Awaitable[Any]]
SyncOp = Callable[[int], Any]


class Exhausted(Exception):
    """An op has no more input (the delete workload ran out of rows)."""


def offset(n: int, rows: int) -> int:
    """The offset of the n-th page over a table of ``rows`` rows."""
    return (n * PAGE) % (rows - PAGE)


def page_of_items(n: int) -> int:
    """A page of items."""
    return offset(n, data.ITEMS)


def page_of_books(n: int) -> int:
    """A page of books."""
    return offset(n, data.BOOKS)


def fields(n: int) -> dict[str, Any]:
    """The field values of the n-th new item."""
    return {
        "name": f"new {n}",
        "value": data.ITEMS + n,
        "price": Decimal(n % 1000) / 4,
        "created": data.CREATED,
    }


def victims(database: str, seconds: float) -> list[int]:
    """Rows for the delete workload (more than any system deletes in ``seconds``)."""
    return data.insert_victims(database, int(seconds * 12000) + 100)


def delete_op(database: str, seconds: float, delete_one: Callable[[int], Any]) -> Op:
    """The delete workload: ``await delete_one(pk)`` over fresh rows."""
    pks = victims(database, seconds)

    async def op(n: int) -> None:
        if n >= len(pks):
            raise Exhausted
        await delete_one(pks[n])

    return op


def update_ops(obj: Any, save: Callable[[Any, bool], Any]) -> dict[str, Op]:
    """The update workloads on ``obj``: ``await save(obj, all_fields)``."""

    async def update_all(n: int) -> None:
        for name, value in fields(n).items():
            setattr(obj, name, value)
        await save(obj, True)

    async def update_one(n: int) -> None:
        obj.value = n
        await save(obj, False)

    return {"update_all": update_all, "update_one": update_one}


async def drive(
    op: Op, concurrency: int, seconds: float, task_context: Callable[[], Any] | None = None
) -> float:
    """Call ``op(n)`` (n = 0, 1, 2, ...) from ``concurrency`` tasks for ``seconds``;
    return ops per second. ``task_context`` makes the context each task runs in."""
    counter = iter(range(10**12))
    done = 0
    deadline = time.perf_counter() + seconds

    async def run() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            try:
                await op(next(counter))
            except Exhausted:
                return
            done += 1

    async def task() -> None:
        if task_context is None:
            await run()
        else:
            async with task_context():
                await run()

    start = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


def drive_sync(op: SyncOp, seconds: float) -> float:
    """The sync twin of :func:`drive` (one caller)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        try:
            op(done)
        except Exhausted:
            break
        done += 1
    return done / (time.perf_counter() - start)
