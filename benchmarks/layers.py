"""Where one statement's client cost goes, layer by layer: the same INSERT (or get by pk)
through the driver alone, Django's sync cursor, the package's connection, its cursor, and
Django's ORM sync and async; each layer in its own process.

    python -m benchmarks.layers [--database postgresql] [--statement insert|get]
                                [--ops 2000] [--rounds 3] [--callgrind] [--layers ...]
                                [--loop uvloop|asyncio]

Client CPU µs per statement (median of rounds, process CPU time) by default; with
``--callgrind``, client instructions per statement (two valgrind runs of different op
counts per layer, the difference over the op difference, so startup cancels out). The
difference of two neighbouring rows is what the upper layer adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_app, data, loops
from benchmarks.workloads import fields

# name -> (label, sync, databases it runs on)
LAYERS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "driver-sync": ("the sync driver's cursor (Django's connection)", True, ()),
    "django-cursor": ("Django's sync cursor, connection.cursor()", True, ()),
    "psycopg-async": ("psycopg's AsyncConnection, psycopg's own wait", False, ("postgresql",)),
    "asyncpg": ("asyncpg's connection (its own binary codecs)", False, ("postgresql",)),
    "package-connection": ("the package's driver connection, no pool", False, ()),
    "package-cursor": ("django_asyncdb.cursor(): pool and error mapping", False, ()),
    "orm-sync": ("Django's sync ORM: create() / get()", True, ()),
    "orm-async": ("Django's async ORM natively: acreate() / aget()", False, ()),
}
NAMES = ("name", "value", "price", "created")


def statement(database: str, kind: str) -> str:
    """The statement Django's ORM sends for the operation, with ``%s`` placeholders."""
    from bench_models.models import Item

    table = Item._meta.db_table
    if kind == "insert":
        marks = ", ".join(["%s"] * len(NAMES))
        return f"INSERT INTO {table} ({', '.join(NAMES)}) VALUES ({marks}) RETURNING id"
    return f"SELECT id, {', '.join(NAMES)} FROM {table} WHERE id = %s LIMIT 21"


def params(database: str, kind: str, n: int) -> list[Any]:
    """The statement's parameters for op ``n``, as Django's fields prepare them."""
    if kind == "insert":
        values = fields(n)
        return [data.adapt(database, values[name]) for name in NAMES]
    return [1 + n % bench_app.ROWS]


def _driver_sql(database: str, sql: str) -> str:
    return sql.replace("%s", "?") if database == "sqlite" else sql


def sync_op(layer: str, database: str, kind: str) -> Callable[[int], Any]:
    from bench_models.models import Item
    from django.db import connection

    sql = statement(database, kind)
    if layer == "orm-sync":
        if kind == "insert":
            return lambda n: Item.objects.create(**fields(n))
        return lambda n: Item.objects.get(pk=1 + n % bench_app.ROWS)
    connection.ensure_connection()
    if layer == "driver-sync":
        cursor = connection.connection.cursor()
        sql = _driver_sql(database, sql)
    else:
        cursor = connection.cursor()

    def op(n: int) -> Any:
        cursor.execute(sql, params(database, kind, n))
        return cursor.fetchone()

    return op


async def async_op(
    layer: str, database: str, kind: str, cleanup: list[Callable[[], Awaitable[Any]]]
) -> Callable[[int], Any]:
    from bench_models.models import Item

    import django_asyncdb
    from django_asyncdb import conf
    from django_asyncdb import connections as seam
    from django_asyncdb.backends import backend_for

    sql = statement(database, kind)
    if layer == "orm-async":
        if kind == "insert":
            return lambda n: Item.objects.acreate(**fields(n))
        return lambda n: Item.objects.aget(pk=1 + n % bench_app.ROWS)
    if layer == "package-cursor":

        async def through_cursor(n: int) -> Any:
            async with django_asyncdb.cursor() as cursor:
                await cursor.execute(sql, params(database, kind, n))
                return await cursor.fetchone()

        return through_cursor
    await seam.prepare("default")
    settings = conf.get("default")
    assert settings is not None
    if layer == "package-connection":
        own = await backend_for(settings).connect()
        cleanup.append(own.close)
        return lambda n: own.fetchone(sql, params(database, kind, n))
    if layer == "asyncpg":
        return await _asyncpg_op(kind, sql, cleanup)
    import psycopg
    from django.db import connections

    # psycopg's own AsyncConnection with the parameters and adapters Django gives it.
    wrapper = connections["default"]
    options = {**wrapper.get_connection_params(), "autocommit": True}
    options["cursor_factory"] = psycopg.AsyncClientCursor
    raw = await psycopg.AsyncConnection.connect(**options)
    cleanup.append(raw.close)
    cursor = raw.cursor()

    async def through_psycopg(n: int) -> Any:
        await cursor.execute(sql, params(database, kind, n))
        return await cursor.fetchone()

    return through_psycopg


async def _asyncpg_op(
    kind: str, sql: str, cleanup: list[Callable[[], Awaitable[Any]]]
) -> Callable[[int], Any]:
    """asyncpg as Tortoise uses it: ``$n`` placeholders, the statement prepared once and
    cached by asyncpg, Python values bound by its binary codecs (no Django adapters), a
    record back."""
    import asyncpg

    db = bench_app.PG
    raw = await asyncpg.connect(
        database=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"],
        port=int(db["PORT"]),
    )
    cleanup.append(raw.close)
    parts = sql.split("%s")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))

    def values(n: int) -> list[Any]:
        if kind == "insert":
            row = fields(n)
            return [row[name] for name in NAMES]
        return [1 + n % bench_app.ROWS]

    return lambda n: raw.fetchrow(numbered, *values(n))


def child(layer: str, database: str, kind: str, ops: int, rounds: int) -> list[float]:
    """Run ``rounds`` of ``ops`` statements after a warm-up; CPU µs per op of each round."""
    bench_app.configure(database, native=True)
    warm = 100
    figures: list[float] = []
    if LAYERS[layer][1]:
        op = sync_op(layer, database, kind)
        for n in range(warm):
            op(n)
        for r in range(rounds):
            start = time.process_time()
            for n in range(ops):
                op(warm + r * ops + n)
            figures.append((time.process_time() - start) / ops * 1e6)
        return figures

    async def main() -> None:
        import django_asyncdb

        cleanup: list[Callable[[], Awaitable[Any]]] = [django_asyncdb.close_pools]
        op = await async_op(layer, database, kind, cleanup)
        for n in range(warm):
            await op(n)
        for r in range(rounds):
            start = time.process_time()
            for n in range(ops):
                await op(warm + r * ops + n)
            figures.append((time.process_time() - start) / ops * 1e6)
        for close in cleanup:
            await close()

    loops.run(main())
    return figures


def _run_child(layer: str, args: argparse.Namespace, ops: int, rounds: int, out: str = "") -> str:
    command = [sys.executable, "-m", "benchmarks.layers", "--child", layer]
    command += ["--database", args.database, "--statement", args.statement]
    command += ["--ops", str(ops), "--rounds", str(rounds)]
    if out:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]
    # A fixed hash seed: two runs under callgrind differ in their op counts only.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"layer {layer} failed:\n{done.stderr}")
    return done.stdout


def instructions(layer: str, args: argparse.Namespace) -> float:
    """Client instructions per statement of one layer (callgrind, two runs)."""
    from benchmarks.__main__ import _callgrind_total

    few, more = args.ops // 4, args.ops
    totals = []
    with tempfile.TemporaryDirectory() as folder:
        for count in (few, more):
            out = os.path.join(folder, f"callgrind.{count}")
            _run_child(layer, args, count, 1, out)
            totals.append(_callgrind_total(Path(out).read_text()))
    return (totals[1] - totals[0]) / (more - few)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite", "mariadb"])
    parser.add_argument("--statement", choices=["insert", "get"], default="insert")
    parser.add_argument("--ops", type=int, help="statements per round (2000; 400 with --callgrind)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--layers", nargs="+", choices=list(LAYERS), help="only these layers")
    parser.add_argument(
        "--loop",
        choices=loops.CHOICES,
        help="the async layers' event loop (default: uvloop if installed)",
    )
    parser.add_argument("--child", choices=list(LAYERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.database = args.database or "postgresql"
    args.ops = args.ops or (400 if args.callgrind else 2000)
    if args.child:
        print(json.dumps(child(args.child, args.database, args.statement, args.ops, args.rounds)))
        return
    loop = loops.choose(args.loop)  # the children inherit it
    prepare = f"import benchmarks.__main__ as m; m.prepare({args.database!r})"
    subprocess.run([sys.executable, "-c", prepare], check=True)
    data.reset(args.database)
    layers = [k for k, v in LAYERS.items() if not v[2] or args.database in v[2]]
    layers = [k for k in layers if not args.layers or k in args.layers]
    unit = "instructions per statement" if args.callgrind else "client CPU µs per statement"
    print(f"{args.statement}, {args.database}, {unit} (async layers on {loop}'s loop):")
    previous: float | None = None
    for layer in layers:
        if args.callgrind:
            figure = instructions(layer, args)
            text = f"{figure:12,.0f}"
        else:
            rounds = json.loads(_run_child(layer, args, args.ops, args.rounds).splitlines()[-1])
            figure = statistics.median(rounds)
            text = f"{figure:9.1f} µs"
        step = "" if previous is None else f"  ({figure - previous:+,.0f})"
        print(f"  {LAYERS[layer][0]:50s} {text}{step}")
        previous = figure


if __name__ == "__main__":
    main()
