"""Fast paths give exactly Django's results: values, types and tzinfo objects."""

import asyncio
import re

import pytest
from django.db import connections
from django.db.models.functions import Now
from django.test import override_settings

from conftest import ALIASES, ERRORS, arun, server_fact
from django_asyncdb import connections as seam
from testapp.models import Author

pytestmark = pytest.mark.usefixtures("schema")


def _values(alias):
    queryset = Author.objects.using(alias).order_by("pk").annotate(now=Now())
    return queryset.values_list("joined", "now")


def _native(alias):
    async def main():
        rows = [row async for row in _values(alias)]
        connection = seam.pool(alias)._idle[0]
        loader = connection.raw.adapters.get_loader(
            connection.raw.adapters.types["timestamptz"].oid, 0
        )
        return rows, loader

    return arun(main)


def _same(native, sync):
    assert len(native) == len(sync) == 12
    for native_row, sync_row in zip(native, sync, strict=True):
        assert native_row[0] == sync_row[0]
        for native_value, sync_value in zip(native_row, sync_row, strict=True):
            assert type(native_value) is type(sync_value)
            assert native_value.tzinfo is sync_value.tzinfo


@pytest.mark.parametrize("use_tz", [True, False])
def test_timestamptz_values_and_tzinfo_are_djangos(use_tz):
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    with override_settings(USE_TZ=use_tz):
        sync = list(_values("postgresql"))
        connections["postgresql"].close()
        native, loader = _native("postgresql")
    _same(native, sync)
    if use_tz:
        # USE_TZ with the session in UTC: psycopg's own (compiled) loader, not Django's.
        assert loader.__name__ == "TimestamptzLoader"
        assert sync[0][0].tzinfo is not None
    else:
        assert loader.__name__ == "SpecificTzLoader"  # Django's, naive datetimes
        assert sync[0][0].tzinfo is None


# BEGIN sent with the transaction's first statement (PostgreSQL, client-side binding) ---


def _first_statements():
    """Atomic blocks whose first statement is of each kind, each returning what it saw."""
    from django.db import IntegrityError, transaction
    from django.db.models import F

    from testapp.models import Counter, Tag

    def update(alias):  # rowcount: the statement's, not BEGIN's
        with transaction.atomic(using=alias):
            return Counter.objects.using(alias).filter(value__gte=0).update(value=F("value") + 1)

    async def aupdate(alias):
        async with transaction.atomic(using=alias):
            return (
                await Counter.objects.using(alias)
                .filter(value__gte=0)
                .aupdate(value=F("value") + 1)
            )

    def read(alias):  # rows
        with transaction.atomic(using=alias):
            return list(Counter.objects.using(alias).order_by("name").values_list("name", "value"))

    async def aread(alias):
        async with transaction.atomic(using=alias):
            queryset = Counter.objects.using(alias).order_by("name").values_list("name", "value")
            return [row async for row in queryset]

    def locked(alias):
        with transaction.atomic(using=alias):
            return Counter.objects.using(alias).select_for_update().get(name="b").value

    async def alocked(alias):
        async with transaction.atomic(using=alias):
            return (await Counter.objects.using(alias).select_for_update().aget(name="b")).value

    def stream(alias):  # a server-side cursor declared first
        with transaction.atomic(using=alias):
            queryset = Counter.objects.using(alias).order_by("name").values_list("name")
            return list(queryset.iterator(chunk_size=1))

    async def astream(alias):
        async with transaction.atomic(using=alias):
            queryset = Counter.objects.using(alias).order_by("name").values_list("name")
            return [row async for row in queryset.aiterator(chunk_size=1)]

    def savepoint(alias):  # a nested block first: SAVEPOINT is the first statement
        with transaction.atomic(using=alias):
            with transaction.atomic(using=alias):
                Counter.objects.using(alias).create(name="c", value=3)
            return Counter.objects.using(alias).count()

    async def asavepoint(alias):
        async with transaction.atomic(using=alias):
            async with transaction.atomic(using=alias):
                await Counter.objects.using(alias).acreate(name="c", value=3)
            return await Counter.objects.using(alias).acount()

    def failing(alias):  # the first statement fails: nothing written, the error Django's
        try:
            with transaction.atomic(using=alias):
                Tag.objects.using(alias).create(name="dup")
        except IntegrityError as exc:
            return type(exc).__name__
        return None

    async def afailing(alias):
        try:
            async with transaction.atomic(using=alias):
                await Tag.objects.using(alias).acreate(name="dup")
        except IntegrityError as exc:
            return type(exc).__name__
        return None

    def empty(alias):  # no statement at all
        with transaction.atomic(using=alias):
            return "done"

    async def aempty(alias):
        async with transaction.atomic(using=alias):
            return "done"

    return {
        "update": (update, aupdate),
        "read": (read, aread),
        "locked": (locked, alocked),
        "stream": (stream, astream),
        "savepoint": (savepoint, asavepoint),
        "failing": (failing, afailing),
        "empty": (empty, aempty),
    }


def _fresh(alias):
    from testapp.models import Counter, Tag

    Counter.objects.using(alias).all().delete()
    Counter.objects.using(alias).bulk_create(
        [Counter(name="a", value=1), Counter(name="b", value=2)]
    )
    Tag.objects.using(alias).filter(name="dup").delete()
    Tag.objects.using(alias).create(name="dup")


def _database(alias):
    from testapp.models import Counter, Tag

    return (
        list(Counter.objects.using(alias).order_by("name").values_list("name", "value")),
        Tag.objects.using(alias).filter(name="dup").count(),
    )


def _named(statements):
    """Statements with savepoint and cursor names replaced (each side names its own)."""
    names = r'["`](s\d+_x\d+|adb_s\d+|_django_curs_\w+|_adb_curs_\w+)["`]'
    return [re.sub(names, "N", str(s)) for s in statements]


@pytest.mark.parametrize("kind", list(_first_statements()))
def test_first_statement_of_a_transaction_as_django(alias, kind):
    """The same block through Django's sync ORM and natively: the same result, the same
    database afterwards, the same statements logged (BEGIN and COMMIT as Django logs
    them, the statement alone, never the BEGIN sent in front of it)."""
    from django.test.utils import CaptureQueriesContext

    sync_block, native_block = _first_statements()[kind]
    _fresh(alias)
    with CaptureQueriesContext(connections[alias]) as captured:
        expected = sync_block(alias)
    expected_sql = [query["sql"] for query in captured]
    expected_database = _database(alias)
    connections[alias].close()

    _fresh(alias)

    async def main():
        with CaptureQueriesContext(connections[alias]) as captured:
            result = await native_block(alias)
        pool = seam.pool(alias)
        idle = [c.reusable() for c in pool._idle]
        return result, [query["sql"] for query in captured], idle

    result, sql, idle = arun(main)
    sql, expected_sql = _named(sql), _named(expected_sql)
    assert result == expected
    assert _database(alias) == expected_database
    assert idle and all(idle)  # every connection back idle, outside any transaction
    if kind == "stream":
        # Django logs the DECLARE of its named cursor; the package logs the query.
        expected_sql = [s.replace("DECLARE N NO SCROLL CURSOR FOR ", "") for s in expected_sql]
    assert sql == expected_sql
    assert not any(s.startswith("BEGIN;") for s in sql)


def test_short_transaction_is_two_round_trips_on_postgresql(schema, monkeypatch):
    """Delete by pk in an atomic block (what Django's delete() does): BEGIN goes with the
    DELETE, then COMMIT: two sends, not three; a block without statements sends none."""
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    import psycopg
    from django.db import transaction

    from testapp.models import Counter

    sent = []
    original = psycopg.AsyncCursor._execute_gen  # one statement message sent

    def counting(self, query, params=None, **kwargs):
        sent.append(query)
        return original(self, query, params, **kwargs)

    async def main():
        await Counter.objects.using("postgresql").acount()  # the pool is open
        monkeypatch.setattr(psycopg.AsyncCursor, "_execute_gen", counting)
        row = await Counter.objects.using("postgresql").acreate(name="gone")
        sent.clear()
        async with transaction.atomic(using="postgresql"):
            await Counter.objects.using("postgresql").filter(pk=row.pk).adelete()
        deleted = list(sent)
        sent.clear()
        async with transaction.atomic(using="postgresql"):
            pass
        return (
            deleted,
            list(sent),
            await Counter.objects.using("postgresql").filter(pk=row.pk).aexists(),
        )

    deleted, empty, exists = arun(main)
    assert len(deleted) == 2, deleted
    assert deleted[0].startswith("BEGIN; DELETE") and deleted[1] == "COMMIT"
    assert empty == []
    assert exists is False


def test_isolation_level_goes_with_the_first_statement(schema):
    """OPTIONS['isolation_level'] on PostgreSQL: the deferred BEGIN carries it."""
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    import psycopg
    from django.db import transaction

    import django_asyncdb
    from django_asyncdb import close_pools

    settings_dict = connections.settings["postgresql"]
    original = settings_dict.get("OPTIONS", {})
    settings_dict["OPTIONS"] = {**original, "isolation_level": psycopg.IsolationLevel.SERIALIZABLE}

    async def main():
        try:
            async with (
                transaction.atomic(using="postgresql"),
                django_asyncdb.cursor("postgresql") as cursor,
            ):
                await cursor.execute("SHOW transaction_isolation")
                inside = await cursor.fetchall()
            async with django_asyncdb.cursor("postgresql") as cursor:
                await cursor.execute("SHOW transaction_isolation")
                outside = await cursor.fetchall()
            return inside, outside
        finally:
            await close_pools()

    try:
        inside, outside = asyncio.run(main())
    finally:
        settings_dict["OPTIONS"] = original
    assert inside == [("serializable",)]
    assert outside == [("read committed",)]


# psycopg's wait: the socket stays registered with the loop between statements ----------


def _skip_without_postgresql():
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")


def test_idle_connection_with_data_to_read_does_not_spin_the_loop(schema):
    """A notification arrives on an idle pooled connection (its socket turns readable
    with nobody waiting): the loop must not wake up for it again and again, and the
    connection answers its next statement."""
    _skip_without_postgresql()
    import time

    import psycopg

    import django_asyncdb
    from conftest import PG

    async def main():
        async with django_asyncdb.cursor("postgresql") as cursor:
            await cursor.execute("LISTEN adb_idle")
        with psycopg.connect(
            dbname=PG["NAME"],
            user=PG["USER"],
            password=PG["PASSWORD"] or None,
            host=PG["HOST"],
            port=PG["PORT"],
            autocommit=True,
        ) as other:
            other.execute("NOTIFY adb_idle, 'hello'")
        await asyncio.sleep(0.05)  # the notification is on the idle socket now
        started = time.process_time()
        await asyncio.sleep(0.5)
        spent = time.process_time() - started
        async with django_asyncdb.cursor("postgresql") as cursor:
            await cursor.execute("SELECT 1")
            answer = await cursor.fetchall()
        return spent, answer, len(seam.pool("postgresql")._idle)

    spent, answer, idle = arun(main)
    assert spent < 0.2, f"the loop spun for {spent:.2f} s of CPU in 0.5 s"
    assert answer == [(1,)]
    assert idle == 1  # the same connection, still in use


def test_each_statement_wakes_its_task_once(schema, monkeypatch):
    """The task waits once per statement: not woken by the selector's stale report of
    the previous answer (level-triggered, reported again before the task read it), nor
    once per packet of an answer that arrives in many; and the answers are whole."""
    _skip_without_postgresql()
    from psycopg.waiting import Wait

    import django_asyncdb
    from django_asyncdb.backends.postgresql import AsyncConnection

    waits = []
    original = AsyncConnection.wait

    def counting(gen):
        state = next(gen)
        while True:
            waits.append(state)
            try:
                state = gen.send((yield state))
            except StopIteration as done:
                return done.value

    async def wait(self, gen, interval=0.1, timeout=None):
        return await original(self, counting(gen), interval, timeout)

    monkeypatch.setattr(AsyncConnection, "wait", wait)

    async def main():
        answers = []
        async with django_asyncdb.cursor("postgresql") as cursor:
            await cursor.execute("SELECT 1")  # the pool is open
            waits.clear()
            for n in range(20):
                await cursor.execute("SELECT %s::int, pg_sleep(0.001)", [n])
                answers.append((await cursor.fetchone())[0])
            short = list(waits)
            waits.clear()
            await cursor.execute("SELECT repeat('x', 4000000), generate_series(1, 3)")
            big = await cursor.fetchall()
        return answers, short, list(waits), big

    answers, short, long, big = arun(main)
    assert answers == list(range(20))
    assert short == [Wait.R] * 20
    assert long == [Wait.R]  # 12 MB: hundreds of packets, one wake
    assert [len(text) for text, _ in big] == [4_000_000] * 3


def test_description_made_late_is_the_statements_own(schema):
    """A result's column description is made when first read (the ORM rarely reads it),
    after the connection ran other statements: it is still that statement's, the very
    columns Django's sync cursor describes."""
    _skip_without_postgresql()
    import django_asyncdb

    sql = "SELECT 1::int AS a, 'x'::varchar(7) AS b, 2.5::numeric(5, 2) AS c, now() AS d"
    with connections["postgresql"].cursor() as cursor:
        cursor.execute(sql)
        expected = [tuple(column) for column in cursor.description]
    connections["postgresql"].close()

    async def main():
        first, second = django_asyncdb.cursor("postgresql"), django_asyncdb.cursor("postgresql")
        await first.execute(sql)
        await second.execute("SELECT 3 AS other")  # the same pooled connection, next
        await second.execute("UPDATE testapp_author SET name = name WHERE false")
        return first.description, second.description

    described, after_update = arun(main)
    assert [tuple(column) for column in described] == expected
    assert [column.name for column in described] == ["a", "b", "c", "d"]
    assert after_update is None


def test_statement_larger_than_the_socket_buffer(schema):
    """A statement of several megabytes waits for the socket to take it (the write
    wait) and its answer is the server's."""
    _skip_without_postgresql()
    import hashlib

    import django_asyncdb

    text = "".join(chr(0x41 + i % 26) for i in range(8_000_000))

    async def main():
        async with django_asyncdb.cursor("postgresql") as cursor:
            await cursor.execute("SELECT md5(%s), length(%s)", [text, text])
            return await cursor.fetchall()

    assert arun(main) == [(hashlib.md5(text.encode()).hexdigest(), len(text))]


def test_sqlite_begin_that_fails_surfaces_as_django_and_leaves_nothing_open(schema, sqlite_options):
    """SQLite with transaction_mode IMMEDIATE while another connection holds the write
    lock: BEGIN (sent with the block's first statement) fails with Django's
    OperationalError, no ROLLBACK is attempted on a transaction that never began, the
    connection is reused, and the next block works once the lock is gone."""
    import sqlite3

    from django.db import OperationalError, transaction

    from conftest import SQLITE_PATH
    from testapp.models import Counter

    sqlite_options(transaction_mode="IMMEDIATE", timeout=0.2)
    holder = sqlite3.connect(SQLITE_PATH, isolation_level=None)

    async def main():
        await Counter.objects.acount()  # the pool's connection is open
        connection = seam.pool("default")._idle[0]
        holder.execute("BEGIN IMMEDIATE")
        try:
            async with transaction.atomic():
                await Counter.objects.acreate(name="locked out")
        except OperationalError as exc:
            error = exc
        finally:
            holder.execute("ROLLBACK")
        idle = seam.pool("default")._idle
        reused = list(idle) == [connection] and connection.reusable()
        async with transaction.atomic():
            await Counter.objects.acreate(name="after")
        return (
            error,
            reused,
            await Counter.objects.filter(name__in=["locked out", "after"]).acount(),
        )

    try:
        error, reused, count = arun(main)
    finally:
        holder.close()
    assert "locked" in str(error)
    assert reused
    assert count == 1


def test_each_request_context_readies_its_own_wrapper(alias):
    """prepare() remembers the wrapper it readied in the task's context. Tasks in fresh
    contexts (as ASGI servers run requests) each get a Django wrapper of their own: each
    is readied with the server's facts, answers them without connecting, and is the one
    its context keeps using."""
    import contextvars

    from testapp.models import Book

    async def request():
        await Book.objects.using(alias).acount()
        wrapper = connections[alias]
        facts = server_fact(wrapper)
        readied = await seam.prepare(alias)
        await Book.objects.using(alias).filter(pk=0).aexists()
        return wrapper, readied, connections[alias], facts, wrapper.connection

    async def main():
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(request(), context=contextvars.Context()) for _ in range(3)]
        return await asyncio.gather(*tasks)

    results = arun(main)
    assert len({id(wrapper) for wrapper, *_ in results}) == 3
    for wrapper, readied, later, facts, sync_connection in results:
        assert readied is wrapper and later is wrapper
        assert facts
        assert sync_connection is None  # never connected to learn them
