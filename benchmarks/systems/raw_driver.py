"""The ceiling: the driver alone (psycopg 3 async, aiosqlite, asyncmy) with a minimal pool (a
queue of ten connections), hand-written SQL, rows as tuples (dicts for values).

On PostgreSQL a second system, ``raw-django``, is the same code with the adapters and the
binding Django's backend gives psycopg (its adapters map, with Django's timestamptz loader,
and client-side binding): the like-for-like baseline of an ORM on Django's backend."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from benchmarks import bench_app, data, loops
from benchmarks.workloads import (
    BATCH,
    BULK,
    BY_KEY,
    MANY,
    PAGE,
    Measured,
    api_page,
    delete_op,
    drive,
    fields,
    page_of_books,
    page_of_items,
    transfer,
)

ITEM = "id, name, value, price, created"


class _Asyncmy:
    """asyncmy with the connection-level execute() psycopg and aiosqlite have."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    async def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = self.raw.cursor()
        await cursor.execute(sql, params or None)
        return cursor

    async def executemany(self, sql: str, rows: list[Any]) -> None:
        async with self.raw.cursor() as cursor:
            await cursor.executemany(sql, rows)

    async def close(self) -> None:
        await self.raw.ensure_closed()


class _Asyncpg:
    """asyncpg with the execute()/transaction() psycopg has (``%s`` become ``$n``)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @staticmethod
    def _numbered(sql: str) -> str:
        parts = sql.split("%s")
        return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))

    async def execute(self, sql: str, params: Any = ()) -> _Records:
        return _Records(await self.raw.fetch(self._numbered(sql), *params))

    async def executemany(self, sql: str, rows: list[Any]) -> None:
        await self.raw.executemany(self._numbered(sql), rows)

    def cursor(self) -> _Asyncpg:
        return self

    def transaction(self) -> Any:
        return self.raw.transaction()

    async def close(self) -> None:
        await self.raw.close()


class _Records:
    """asyncpg's records behind a cursor's fetchall() and description."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records

    async def fetchall(self) -> list[Any]:
        return self.records

    @property
    def description(self) -> list[tuple[str]]:
        return [(name,) for name in self.records[0].keys()] if self.records else []  # noqa: SIM118


def run_django_adapters(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    if database != "postgresql":
        raise SystemExit("raw-django is a PostgreSQL system")
    return run(database, seconds, keys, django_adapters=True)


def run_asyncpg(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    if database != "postgresql":
        raise SystemExit("raw-asyncpg is a PostgreSQL system")
    return run(database, seconds, keys, asyncpg=True)


def run(
    database: str,
    seconds: float,
    keys: list[str],
    django_adapters: bool = False,
    asyncpg: bool = False,
) -> dict[str, Measured]:
    postgresql = database == "postgresql"
    mariadb = database == "mariadb"
    mark = "?" if database == "sqlite" else "%s"

    def row(n: int) -> tuple[Any, ...]:
        values = tuple(fields(n).values())
        return tuple(data.adapt(database, v) for v in values)

    async def connect() -> Any:
        if asyncpg:
            import asyncpg as driver

            db = bench_app.PG
            raw = await driver.connect(
                database=db["NAME"],
                user=db["USER"],
                host=db["HOST"],
                port=int(db["PORT"]),
                password=db["PASSWORD"] or None,
            )
            return _Asyncpg(raw)
        if postgresql:
            import psycopg

            db = bench_app.PG
            options: dict[str, Any] = {}
            if django_adapters:
                import datetime

                from django.db.backends.postgresql.psycopg_any import get_adapters_template

                options["context"] = get_adapters_template(True, datetime.UTC)
                options["cursor_factory"] = psycopg.AsyncClientCursor
            return await psycopg.AsyncConnection.connect(
                dbname=db["NAME"],
                user=db["USER"],
                host=db["HOST"],
                port=db["PORT"],
                password=db["PASSWORD"] or None,
                autocommit=True,
                **options,
            )
        if mariadb:
            import asyncmy

            db = bench_app.MARIADB
            raw = await asyncmy.connect(
                database=db["NAME"],
                user=db["USER"],
                password=db["PASSWORD"],
                host=db["HOST"],
                port=int(db["PORT"]),
                autocommit=True,
            )
            return _Asyncmy(raw)
        import aiosqlite

        return await aiosqlite.connect(bench_app.SQLITE["NAME"], isolation_level=None)

    async def main() -> dict[str, float]:
        pool: asyncio.Queue[Any] = asyncio.Queue()
        connections = [await connect() for _ in range(10)]
        for connection in connections:
            pool.put_nowait(connection)

        @asynccontextmanager
        async def acquire() -> Any:
            connection = await pool.get()
            try:
                yield connection
            finally:
                pool.put_nowait(connection)

        async def fetch(sql: str, params: tuple[Any, ...] = ()) -> tuple[list[Any], Any]:
            async with acquire() as connection:
                cursor = await connection.execute(sql, params)
                return await cursor.fetchall(), cursor.description

        async def execute(sql: str, params: Any = ()) -> None:
            async with acquire() as connection:
                await connection.execute(sql, params)

        insert_sql = (
            "INSERT INTO bench_models_item (name, value, price, created) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})"
        )

        async def values(n: int) -> list[dict[str, Any]]:
            rows, description = await fetch(
                f"SELECT {ITEM} FROM bench_models_item WHERE value <= {mark}", (MANY,)
            )
            names = [column[0] for column in description]
            return [dict(zip(names, r, strict=True)) for r in rows]

        async def page_related(n: int) -> list[Any]:
            books, _ = await fetch(
                "SELECT b.id, b.title, b.author_id, a.id, a.name FROM bench_models_book b "
                "JOIN bench_models_author a ON a.id = b.author_id "
                f"ORDER BY b.id LIMIT {PAGE} OFFSET {page_of_books(n)}"
            )
            ids = [book[0] for book in books]
            marks = ", ".join([mark] * len(ids))
            tags, _ = await fetch(
                "SELECT bt.book_id, t.id, t.name FROM bench_models_tag t "
                "JOIN bench_models_book_tags bt ON bt.tag_id = t.id "
                f"WHERE bt.book_id IN ({marks})",
                tuple(ids),
            )
            return [books, tags]

        async def insert_transaction(n: int) -> None:
            async with acquire() as connection:
                if postgresql:
                    async with connection.transaction():
                        for k in range(BATCH):
                            await connection.execute(insert_sql, row(n * BATCH + k))
                else:
                    await connection.execute("BEGIN")
                    for k in range(BATCH):
                        await connection.execute(insert_sql, row(n * BATCH + k))
                    await connection.execute("COMMIT")

        async def bulk_insert(n: int) -> None:
            async with acquire() as connection:
                if postgresql:
                    async with connection.transaction():
                        await connection.cursor().executemany(
                            insert_sql, [row(n * BULK + k) for k in range(BULK)]
                        )
                else:
                    await connection.execute("BEGIN")
                    await connection.executemany(
                        insert_sql, [row(n * BULK + k) for k in range(BULK)]
                    )
                    await connection.execute("COMMIT")

        async def in_transaction(connection: Any, statements: Any) -> None:
            """Run ``await statements(connection)`` between BEGIN and COMMIT."""
            if postgresql:
                async with connection.transaction():
                    await statements(connection)
            else:
                await connection.execute("BEGIN IMMEDIATE" if database == "sqlite" else "BEGIN")
                try:
                    await statements(connection)
                except BaseException:
                    await connection.execute("ROLLBACK")
                    raise
                await connection.execute("COMMIT")

        lock = "" if database == "sqlite" else " FOR UPDATE"

        async def tpcb(n: int) -> None:
            first, second, amount = transfer(n)

            async def statements(connection: Any) -> None:
                cursor = await connection.execute(
                    f"SELECT id, balance FROM bench_models_account WHERE id IN ({mark}, {mark}) "
                    f"ORDER BY id{lock}",
                    (first, second),
                )
                (low, low_balance), (high, high_balance) = await cursor.fetchall()
                update = f"UPDATE bench_models_account SET balance = {mark} WHERE id = {mark}"
                await connection.execute(update, (low_balance - amount, low))
                await connection.execute(update, (high_balance + amount, high))
                await connection.execute(
                    "INSERT INTO bench_models_history (account_id, other, amount, created) "
                    f"VALUES ({mark}, {mark}, {mark}, {mark})",
                    (low, high, amount, data.adapt(database, data.CREATED)),
                )

            async with acquire() as connection:
                await in_transaction(connection, statements)

        async def api_request(n: int) -> None:
            await fetch(
                "SELECT b.id, b.title, b.author_id, a.id, a.name FROM bench_models_book b "
                f"JOIN bench_models_author a ON a.id = b.author_id WHERE b.id = {mark}",
                (n % data.BOOKS + 1,),
            )
            await fetch(
                f"SELECT {ITEM} FROM bench_models_item WHERE value > {mark} ORDER BY id "
                f"LIMIT {PAGE}",
                (api_page(n),),
            )

            async def statements(connection: Any) -> None:
                await connection.execute(insert_sql, row(n))

            async with acquire() as connection:
                await in_transaction(connection, statements)

        many = f"SELECT {ITEM} FROM bench_models_item WHERE value <= {mark}"
        ops: dict[str, Any] = {
            "get": lambda n: fetch(
                f"SELECT {ITEM} FROM bench_models_item WHERE id = {mark}", (n % data.ITEMS + 1,)
            ),
            "filter_many": lambda n: fetch(many, (MANY,)),
            "paged": lambda n: fetch(
                f"SELECT {ITEM} FROM bench_models_item ORDER BY id "
                f"LIMIT {PAGE} OFFSET {page_of_items(n)}"
            ),
            "values": values,
            "values_list": lambda n: fetch(many, (MANY,)),
            "page_related": page_related,
            "insert": lambda n: execute(insert_sql, row(n)),
            "insert_transaction": insert_transaction,
            "bulk_insert": bulk_insert,
            "update_all": lambda n: execute(
                f"UPDATE bench_models_item SET name = {mark}, value = {mark}, price = {mark}, "
                f"created = {mark} WHERE id = {mark}",
                (*row(n), 1),
            ),
            "update_one": lambda n: execute(
                f"UPDATE bench_models_item SET value = {mark} WHERE id = {mark}", (n, 1)
            ),
        }

        async def delete_one(pk: int) -> None:
            await execute(f"DELETE FROM bench_models_item WHERE id = {mark}", (pk,))

        ops["tpcb"] = tpcb
        ops["api_request"] = api_request
        for key in ("get", "insert", "tpcb", "api_request"):
            ops[f"{key}_concurrent"] = ops[key]
        results: dict[str, Measured] = {}
        try:
            for key in keys:
                if key == "delete":
                    ops[key] = delete_op(database, seconds, delete_one)
                results[key] = await drive(ops[key], BY_KEY[key].concurrency, seconds)
        finally:
            for connection in connections:
                await connection.close()
        return results

    return loops.run(main())
