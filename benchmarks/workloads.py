"""The workloads every system runs, in this order, and how they are timed."""

from __future__ import annotations

import asyncio
import threading
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

# Set by ``benchmarks.worker --ops N``: run exactly N operations per workload instead of
# ``seconds`` (the instruction counts of ``python -m benchmarks --callgrind`` need it).
OPS: int | None = None


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
    Workload("tpcb", "TPC-B-like transfer (2 rows locked, 2 updates, 1 insert)"),
    Workload("tpcb_concurrent", f"TPC-B-like transfer, {TASKS} concurrent clients", TASKS),
    Workload("api_request", "API request (get + select_related, page of 20, insert in atomic)"),
    Workload("api_request_concurrent", f"API request, {TASKS} concurrent clients", TASKS),
]
BY_KEY = {workload.key: workload for workload in WORKLOADS}

Op = Callable[[int], Awaitable[Any]]
SyncOp = Callable[[int], Any]


Measured = tuple[float, float]  # (operations per second, client CPU µs per operation)


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


def transfer(n: int) -> tuple[int, int, int]:
    """The n-th TPC-B-like transfer: two distinct accounts (lower id first, so that
    concurrent transfers lock rows in one order) and a signed amount."""
    first = n % data.ACCOUNTS + 1
    second = (n * 7919 + 17) % data.ACCOUNTS + 1
    if second == first:
        second = first % data.ACCOUNTS + 1
    amount = n % 100 + 1
    if first > second:
        first, second, amount = second, first, -amount
    return first, second, amount


def api_page(n: int) -> int:
    """The lower bound of the n-th API request's filtered page (``value > bound``)."""
    return (n * PAGE) % (data.ITEMS - PAGE)


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


def _budget(seconds: float) -> tuple[float, int]:
    """(deadline, op limit) of a workload: ``seconds`` from now, or exactly ``OPS`` ops."""
    if OPS is not None:
        return float("inf"), OPS
    return time.perf_counter() + seconds, 10**12


def _result(done: int, start: float, cpu: float) -> Measured:
    wall = time.perf_counter() - start
    return done / wall, (time.process_time() - cpu) / max(done, 1) * 1e6


async def drive(
    op: Op, concurrency: int, seconds: float, task_context: Callable[[], Any] | None = None
) -> Measured:
    """Call ``op(n)`` (n = 0, 1, 2, ...) from ``concurrency`` tasks for ``seconds``;
    return ops per second and this process's CPU µs per op. ``task_context`` makes the
    context each task runs in."""
    deadline, limit = _budget(seconds)
    counter = iter(range(limit))
    done = 0

    async def run() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            n = next(counter, None)
            if n is None:
                return
            try:
                await op(n)
            except Exhausted:
                return
            done += 1

    async def task() -> None:
        if task_context is None:
            await run()
        else:
            async with task_context():
                await run()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task() for _ in range(concurrency)))
    return _result(done, start, cpu)


def drive_sync(
    op: SyncOp, concurrency: int, seconds: float, thread_end: Callable[[], Any] | None = None
) -> Measured:
    """The sync twin of :func:`drive`: one caller, or ``concurrency`` threads (each calls
    ``thread_end`` when it stops, to close its connections)."""
    deadline, limit = _budget(seconds)
    counter = iter(range(limit))
    lock = threading.Lock()
    done = 0

    def run() -> None:
        nonlocal done
        try:
            while time.perf_counter() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                try:
                    op(n)
                except Exhausted:
                    return
                with lock:
                    done += 1
        finally:
            if concurrency > 1 and thread_end is not None:
                thread_end()

    start, cpu = time.perf_counter(), time.process_time()
    if concurrency == 1:
        run()
    else:
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                run()
            except BaseException as exc:  # surfaced below, after every thread stopped
                errors.append(exc)

        threads = [threading.Thread(target=guarded) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    return _result(done, start, cpu)
