"""The starting data of every worker process, written with the plain sync driver so
that every system starts from the same rows."""

from __future__ import annotations

import datetime
import sqlite3
from decimal import Decimal
from typing import Any

from benchmarks import bench_app

ITEMS = 1000  # rows of the item table; "filter" workloads read half of them
AUTHORS = 50
TAGS = 10
BOOKS = 500
ACCOUNTS = 1000  # rows of the TPC-B-like workloads' account table
TABLES = (
    "bench_models_history",
    "bench_models_account",
    "bench_models_book_tags",
    "bench_models_book",
    "bench_models_tag",
    "bench_models_author",
    "bench_models_item",
)
CREATED = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _rows() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "bench_models_item": [
            (i, f"item {i}", i, Decimal(i) / 4, CREATED) for i in range(1, ITEMS + 1)
        ],
        "bench_models_author": [(i, f"author {i}") for i in range(1, AUTHORS + 1)],
        "bench_models_tag": [(i, f"tag {i}") for i in range(1, TAGS + 1)],
        "bench_models_book": [(i, f"book {i}", 1 + i % AUTHORS) for i in range(1, BOOKS + 1)],
        "bench_models_book_tags": [
            (2 * i + k - 1, i, 1 + (i + 3 * k) % TAGS) for i in range(1, BOOKS + 1) for k in (0, 1)
        ],
        "bench_models_account": [(i, 0) for i in range(1, ACCOUNTS + 1)],
    }


def _mariadb(**extra: Any) -> Any:
    import MySQLdb

    db = bench_app.MARIADB
    return MySQLdb.connect(
        user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=int(db["PORT"]), **extra
    )


def connect_server(database: str) -> Any:
    """A connection to the server, outside the benchmark database (to create it)."""
    if database == "postgresql":
        import psycopg

        db = bench_app.PG
        return psycopg.connect(
            dbname="postgres",
            user=db["USER"],
            host=db["HOST"],
            port=db["PORT"],
            password=db["PASSWORD"] or None,
            autocommit=True,
        )
    return _mariadb()


def connect(database: str) -> Any:
    """A plain sync DB-API connection to the benchmark database (autocommit off)."""
    if database == "postgresql":
        import psycopg

        db = bench_app.PG
        return psycopg.connect(
            dbname=db["NAME"],
            user=db["USER"],
            host=db["HOST"],
            port=db["PORT"],
            password=db["PASSWORD"] or None,
        )
    if database == "mariadb":
        return _mariadb(database=bench_app.MARIADB["NAME"], charset="utf8mb4")
    return sqlite3.connect(bench_app.SQLITE["NAME"])


def reset(database: str) -> None:
    """Empty the tables and write the starting rows."""
    placeholder = "?" if database == "sqlite" else "%s"
    connection = connect(database)
    try:
        cursor = connection.cursor()
        for table in TABLES:
            cursor.execute(f"DELETE FROM {table}")
        for table, rows in _rows().items():  # referenced tables first
            marks = ", ".join([placeholder] * len(rows[0]))
            rows = [tuple(adapt(database, v) for v in row) for row in rows]
            cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            if database == "postgresql":
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        connection.commit()
    finally:
        connection.close()


def insert_victims(database: str, count: int) -> list[int]:
    """Insert ``count`` item rows for the delete workload; return their ids."""
    connection = connect(database)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT COALESCE(max(id), 0) FROM bench_models_item")
        start = cursor.fetchone()[0] + 1
        ids = list(range(start, start + count))
        placeholder = "?" if database == "sqlite" else "%s"
        marks = ", ".join([placeholder] * 5)
        rows = [(i, "victim", -1, Decimal(0), CREATED) for i in ids]
        rows = [tuple(adapt(database, v) for v in row) for row in rows]
        cursor.executemany(f"INSERT INTO bench_models_item VALUES ({marks})", rows)
        if database == "postgresql":
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('bench_models_item', 'id'), "
                "(SELECT max(id) FROM bench_models_item))"
            )
        connection.commit()
        return ids
    finally:
        connection.close()


def adapt(database: str, value: Any) -> Any:
    """Values as Django stores them: on SQLite decimals and datetimes as text, on
    MariaDB datetimes naive in UTC."""
    if database == "sqlite" and isinstance(value, Decimal):
        return str(value)
    if database != "postgresql" and isinstance(value, datetime.datetime):
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat(" ") if database == "sqlite" else value
    return value
