"""Fault injection on real servers: killed connections, cancelled openings, timeouts and
cancellations during streams and transactions, a query of ours in a user's transaction.

Each scenario injects the real fault (``pg_terminate_backend``/``KILL``, ``task.cancel()``,
``asyncio.wait_for``, ``statement_timeout``) and then checks the invariants: the error
is Django's (the same one Django's sync ORM raises where it has a twin), nothing was
half-written, and the server holds no session of ours in a transaction or still busy.
"""

import asyncio
import contextlib
import sqlite3
import threading
import time

import psycopg
import pytest
from django.db import OperationalError, connections, transaction
from django.db.models import IntegerField
from django.db.models.expressions import RawSQL
from django.test.utils import CaptureQueriesContext

from conftest import ALIASES, ERRORS, MARIADB, PG, arun
from django_asyncdb import connections as seam
from helpers import clear, insert, names
from test_pool import SLEEP, SLOW_SQLITE, fetch
from testapp.models import Author, Book, Publisher, Tag

pytestmark = pytest.mark.usefixtures("schema")

# A column that takes ~50 ms per Book row (SQLite: a long count per row, correlated so
# that it is not computed once): slow streams.
SLOW_ROW = {
    "postgresql": "length(pg_sleep(0.05)::text)",
    "mariadb": "SLEEP(0.05)",
    "default": "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
    'WHERE x < 3000000 + 0 * "testapp_book"."id") SELECT count(*) FROM c)',
}


def slow_books(alias):
    """A queryset whose rows come slowly, so a stream is caught mid-FETCH."""
    return Book.objects.using(alias).annotate(slow=RawSQL(SLOW_ROW[alias], (), IntegerField()))


@pytest.fixture(params=["postgresql", "mariadb"])
def server_alias(request):
    """Each vendor with a server whose connections can be killed."""
    if request.param not in ALIASES:
        pytest.skip(f"{request.param} not reachable: {ERRORS[request.param]}")
    return request.param


# The server's view of our sessions --------------------------------------------------


def _pg(dbname=None):
    return psycopg.connect(
        dbname=dbname or PG["NAME"],
        user=PG["USER"],
        password=PG["PASSWORD"] or None,
        host=PG["HOST"],
        port=PG["PORT"],
        autocommit=True,
    )


def _mariadb():
    import MySQLdb

    return MySQLdb.connect(
        user=MARIADB["USER"],
        password=MARIADB["PASSWORD"],
        host=MARIADB["HOST"],
        port=int(MARIADB["PORT"]),
        autocommit=True,
    )


def server_sessions(alias):
    """(session id, state) of every other session on the alias's database; the state is
    'idle', 'active' or 'idle in transaction' (MariaDB: from its processlist and InnoDB's
    open transactions)."""
    if alias == "postgresql":
        with _pg() as conn:
            return conn.execute(
                "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchall()
    conn = _mariadb()
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT p.ID, CASE WHEN p.COMMAND <> 'Sleep' THEN 'active' "
            "WHEN t.trx_id IS NOT NULL THEN 'idle in transaction' ELSE 'idle' END "
            "FROM information_schema.PROCESSLIST p LEFT JOIN information_schema.INNODB_TRX t "
            "ON t.trx_mysql_thread_id = p.ID WHERE p.DB = %s AND p.ID <> CONNECTION_ID()",
            [MARIADB["NAME"]],
        )
        return list(cursor.fetchall())
    finally:
        conn.close()


def kill_sessions(alias, ids, *, wait=True):
    """Terminate server sessions, as an operator or a failover does; by default, wait
    until the server has ended them."""
    if alias == "postgresql":
        with _pg() as conn:
            for pid in ids:
                conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    else:
        conn = _mariadb()
        try:
            for thread_id in ids:
                conn.cursor().execute(f"KILL {int(thread_id)}")
        finally:
            conn.close()
    deadline = time.monotonic() + 5
    while wait and time.monotonic() < deadline:
        if not {s[0] for s in server_sessions(alias)} & set(ids):
            return
        time.sleep(0.02)


def session_id(connection):
    """The server's id of a pooled connection."""
    raw = connection.raw
    return raw.info.backend_pid if hasattr(raw, "info") else raw.thread_id()


async def assert_server_clean(alias, pool, *, settle=3.0):
    """Nothing of ours left in a transaction or still running, and no more sessions than
    the pool may hold. Statements stopped by a cancel take a moment to end on the server."""
    if alias not in ("postgresql", "mariadb"):
        for connection in pool._idle:
            assert connection.reusable()
        return
    ours = {session_id(connection) for connection in pool._idle}
    deadline = time.monotonic() + settle
    while True:
        sessions = await asyncio.to_thread(server_sessions, alias)
        busy = [s for s in sessions if s[1] != "idle"]
        if not busy or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert busy == []
    assert ours <= {s[0] for s in sessions}
    assert pool.size <= pool.max_size


# 1. Dead pooled connections ----------------------------------------------------------


async def _grow(alias, n):
    """Make the pool hold ``n`` idle connections (n overlapping queries)."""
    await asyncio.gather(*(fetch(alias, SLEEP[alias], [0.2]) for _ in range(n)))
    found = seam.pool(alias)
    assert found.idle == n
    return found


async def _failures(alias, count=10):
    failed = 0
    for _ in range(count):
        try:
            assert await Author.objects.using(alias).acount() == 12
        except OperationalError:
            failed += 1
    return failed


def test_idle_connections_killed_by_the_server_fail_no_query(server_alias):
    alias = server_alias

    async def main():
        found = await _grow(alias, 5)
        await asyncio.to_thread(kill_sessions, alias, [session_id(c) for c in found._idle])
        failed = await _failures(alias)
        await assert_server_clean(alias, found)
        return failed

    assert arun(main) == 0


def test_a_connection_lost_in_use_takes_the_idle_ones_with_it(server_alias):
    alias = server_alias

    async def main():
        found = await _grow(alias, 5)
        ids = [session_id(c) for c in found._idle]
        busy = asyncio.create_task(fetch(alias, SLEEP[alias], [5]))
        await asyncio.sleep(0.3)
        assert found.idle == 4
        await asyncio.to_thread(kill_sessions, alias, ids)
        with pytest.raises(OperationalError):  # the one query that was running: lost
            await busy
        dropped = found.idle  # before any other checkout
        failed = await _failures(alias)
        await assert_server_clean(alias, found)
        return dropped, failed

    assert arun(main) == (0, 0)


def test_check_makes_a_round_trip_on_checkout(schema):
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    from django_asyncdb import conf

    async def main():
        found = seam.pool("postgresql")
        await fetch("postgresql", "SELECT 1")
        original = conf.get("postgresql")
        conf._settings["postgresql"] = conf.parse("postgresql", "postgresql", {"CHECK": True})
        try:
            found.check = True
            connection = await found.acquire()
            try:
                with _pg() as probe:
                    last = probe.execute(
                        "SELECT query FROM pg_stat_activity WHERE pid = %s",
                        [session_id(connection)],
                    ).fetchone()[0]
            finally:
                found.release(connection)
        finally:
            conf._settings["postgresql"] = original
        return last

    assert arun(main) == "SELECT 1"


# 2. Cancellation while the pool opens ------------------------------------------------


def test_a_cancelled_opener_does_not_fail_the_others(alias):
    async def main():
        tasks = [asyncio.create_task(Book.objects.using(alias).acount()) for _ in range(5)]
        await asyncio.sleep(0)  # every task is waiting for the pool's opening
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await assert_server_clean(alias, seam.pool(alias))
        return results

    results = arun(main)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [40] * 4


def test_a_task_cancelled_while_its_connection_opens_leaks_nothing(alias, monkeypatch):
    """The pool grows in the task that needs the connection; cancelled at any point of
    the opening, the connection being made is closed (not left for the garbage collector:
    an unclosed sqlite3 connection, socket or transport) and its slot is freed."""
    import gc
    import warnings

    async def attempt(delay):
        pool = seam.pool(alias)
        await pool.open()
        held, done = asyncio.Event(), asyncio.Event()

        async def hold():  # keeps the pool's one connection in a transaction
            async with transaction.atomic(using=alias):
                await Book.objects.using(alias).acount()
                held.set()
                await done.wait()

        holder = asyncio.create_task(hold())
        await held.wait()
        task = asyncio.create_task(Book.objects.using(alias).acount())  # opens a second
        await asyncio.sleep(0 if delay is None else delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        done.set()
        await holder
        await asyncio.sleep(0.05)  # an opening left running in a driver thread ends
        assert pool._size == len(pool._connections)
        await assert_server_clean(alias, pool)
        assert await Book.objects.using(alias).acount() == 40  # the pool still serves

    unclosed = []

    class Tracked(sqlite3.Connection):  # Python < 3.13 closes a dropped one silently
        closed = False

        def close(self):
            self.closed = True
            super().close()

        def __del__(self):
            if not self.closed:
                unclosed.append(self)

    def connect(*args, **kwargs):
        return original_connect(*args, factory=Tracked, **kwargs)

    original_connect = sqlite3.dbapi2.connect
    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)  # Django's Database.connect
    delays = [None, *(i * 0.0005 for i in range(12))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for delay in delays:
            arun(attempt, delay)
            gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert unclosed == []


# 3. Errors and cancellations during streams ------------------------------------------


def _outcome(run):
    try:
        run()
    except Exception as exc:
        return type(exc), type(exc.__cause__)
    return None


@pytest.mark.parametrize("in_atomic", [False, True], ids=["autocommit", "atomic"])
def test_statement_timeout_during_a_stream_surfaces_as_in_django(schema, in_atomic):
    alias = "postgresql_timeout"
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    queryset = Book.objects.using(alias).annotate(
        slow=RawSQL(SLOW_ROW["postgresql"], (), IntegerField())
    )

    def sync():
        if in_atomic:
            with transaction.atomic(using=alias):
                list(queryset.iterator(chunk_size=20))
        else:
            # Django's sync iterator() declares a WITH HOLD cursor in autocommit, which
            # the server fills at the DECLARE's commit, outside the statement's timeout:
            # the reference is the same statement run whole.
            list(queryset)

    expected = _outcome(sync)
    connections[alias].close()

    async def main():
        try:
            if in_atomic:
                async with transaction.atomic(using=alias):
                    [book async for book in queryset.aiterator(chunk_size=20)]
            else:
                [book async for book in queryset.aiterator(chunk_size=20)]
        except Exception as exc:
            outcome = type(exc), type(exc.__cause__)
        else:
            outcome = None
        assert await Book.objects.using(alias).acount() == 40
        await assert_server_clean("postgresql", seam.pool(alias))
        return outcome

    assert expected == (OperationalError, psycopg.errors.QueryCanceled)
    assert arun(main) == expected


async def _consume(queryset):
    return [book async for book in queryset.aiterator(chunk_size=20)]


@pytest.mark.parametrize("in_atomic", [False, True], ids=["autocommit", "atomic"])
def test_wait_for_around_a_stream_times_out(alias, in_atomic):
    async def main():
        await clear(alias)
        with pytest.raises(TimeoutError):
            if in_atomic:
                async with transaction.atomic(using=alias):
                    await insert(alias, "never")
                    await asyncio.wait_for(_consume(slow_books(alias)), 0.3)
            else:
                await asyncio.wait_for(_consume(slow_books(alias)), 0.3)
        assert await Book.objects.using(alias).acount() == 40
        await assert_server_clean(alias, seam.pool(alias))
        return await names(alias)

    assert arun(main) == []


@pytest.mark.parametrize("in_atomic", [False, True], ids=["autocommit", "atomic"])
def test_a_cancelled_stream_stays_cancelled(alias, in_atomic):
    async def consume():
        if in_atomic:
            async with transaction.atomic(using=alias):
                await insert(alias, "never")
                await _consume(slow_books(alias))
        else:
            await _consume(slow_books(alias))

    async def main():
        await clear(alias)
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await Book.objects.using(alias).acount() == 40
        await assert_server_clean(alias, seam.pool(alias))
        return await names(alias)

    assert arun(main) == []


# 4. A statement interrupted inside an atomic block -----------------------------------


def test_an_interrupted_statement_stops_at_once_inside_atomic(alias):
    slow = SLEEP.get(alias, SLOW_SQLITE)
    params = [5] if alias in SLEEP else None

    async def main():
        await clear(alias)
        elapsed = None
        with pytest.raises(OperationalError, match="interrupted"):
            async with transaction.atomic(using=alias):
                await insert(alias, "never")
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(fetch(alias, slow, params), 0.3)
                started = time.monotonic()
                try:
                    await insert(alias, "after")
                finally:
                    elapsed = time.monotonic() - started
        await assert_server_clean(alias, seam.pool(alias))
        return elapsed, await names(alias)

    elapsed, rows = arun(main)
    assert rows == []
    # The slow statement runs for about 5 s: the next one must not wait for it.
    assert elapsed < 1.0


def test_wait_for_around_an_atomic_block(alias):
    slow = SLEEP.get(alias, SLOW_SQLITE)
    params = [5] if alias in SLEEP else None

    async def block():
        async with transaction.atomic(using=alias):
            await insert(alias, "never")
            await fetch(alias, slow, params)

    async def main():
        await clear(alias)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(block(), 0.3)
        await assert_server_clean(alias, seam.pool(alias))
        return await names(alias)

    assert arun(main) == []


# 6. No query of ours inside a user's transaction -------------------------------------


@pytest.fixture(scope="module")
def other_database(schema):
    """A second PostgreSQL database with the app's tables but no contenttypes."""
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    alias = "postgresql_other"
    with connections[alias].schema_editor() as editor:
        for model in (Publisher, Author, Tag, Book):
            editor.create_model(model)
    connections[alias].close()
    return alias


def test_no_query_of_ours_runs_inside_a_users_transaction(other_database):
    from django.contrib.contenttypes.models import ContentType

    alias = other_database
    ContentType.objects.clear_cache()

    async def main():
        with CaptureQueriesContext(connections[alias]) as captured:
            async with transaction.atomic(using=alias):
                author = await Author.objects.using(alias).acreate(
                    name="A",
                    email="a@x.org",
                    age=1,
                    born="2000-01-01",
                    rating=1,
                    joined="2000-01-01T00:00:00Z",
                )
                book = await Book.objects.using(alias).acreate(
                    title="T", author=author, pages=1, price=1, published="2000-01-01"
                )
                tags = [await Tag.objects.using(alias).acreate(name=n) for n in "xy"]
                await book.tags.aset(tags)
            for _ in range(5):
                await Book.objects.using(alias).acount()
        return [query["sql"] for query in captured], await book.tags.acount()

    statements, count = arun(main)
    assert count == 2
    ours = [i for i, sql in enumerate(statements) if "django_content_type" in sql]
    assert len(ours) <= 1  # tried once, not before every statement
    begin = next(i for i, sql in enumerate(statements) if sql.startswith("BEGIN"))
    assert all(i < begin for i in ours)  # and never inside the transaction


# A bank ledger under random cancellation ---------------------------------------------


def test_random_cancellation_of_transfers_keeps_the_ledger_balanced(alias):
    import random

    from django.db.models import F

    from testapp.models import Counter

    accounts = [f"account {i}" for i in range(5)]
    rng = random.Random(13)

    async def transfer(source, target, amount):
        async with transaction.atomic(using=alias):
            await (
                Counter.objects.using(alias).filter(name=source).aupdate(value=F("value") - amount)
            )
            await asyncio.sleep(rng.random() * 0.01)  # the task holds its transaction
            await (
                Counter.objects.using(alias).filter(name=target).aupdate(value=F("value") + amount)
            )

    async def main():
        await clear(alias)
        for name in accounts:
            await insert(alias, name, 100)
        tasks = [
            asyncio.create_task(transfer(*rng.sample(accounts, 2), rng.randint(1, 20)))
            for _ in range(40)
        ]
        for task in rng.sample(tasks, 20):
            await asyncio.sleep(rng.random() * 0.01)
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        values = [
            value async for value in Counter.objects.using(alias).values_list("value", flat=True)
        ]
        await assert_server_clean(alias, seam.pool(alias))
        return outcomes, values

    outcomes, values = arun(main)
    cancelled = sum(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert 0 < cancelled < len(outcomes)  # some were cut short, some went through
    # SQLite may refuse a writer after its busy timeout: an error, never half a transfer.
    assert all(
        outcome is None or isinstance(outcome, (asyncio.CancelledError, OperationalError))
        for outcome in outcomes
    )
    assert sum(values) == 100 * len(accounts)


# 7. Short-lived event loops (async views under WSGI) ---------------------------------


def _worker_threads():
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


def test_connections_close_with_their_event_loop(alias):
    """Under WSGI each async view runs on a loop of its own (asgiref's async_to_sync):
    when the loop ends, its connections are closed, not left for the next loop."""
    from asgiref.sync import async_to_sync

    slow = SLEEP.get(alias)

    async def view():
        if slow is None:
            await asyncio.gather(*(Author.objects.using(alias).acount() for _ in range(3)))
        else:
            await asyncio.gather(*(fetch(alias, slow, [0.2]) for _ in range(3)))

    for wrapper in connections.all():
        wrapper.close()
    workers_before = len(_worker_threads())
    threads = [threading.Thread(target=async_to_sync(view)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if alias == "default":
        assert len(_worker_threads()) == workers_before  # aiosqlite's threads ended
        return
    deadline = time.monotonic() + 3
    while (sessions := server_sessions(alias)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions == []


def test_a_loop_closed_by_hand_while_sqlite_works_leaves_no_dead_thread():
    """A loop closed by hand (no cancellation, no clean-up) while aiosqlite's thread runs
    one of its statements: the thread can't answer that loop, and must neither die of
    it (its sqlite3 connection would never be closed) nor print an error; the sweep of
    closed loops then ends the thread and closes the connection."""
    errors = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    workers_before = len(_worker_threads())
    slow = SLOW_SQLITE.replace("30000000", "2000000")
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(fetch("default", slow))
        loop.run_until_complete(asyncio.sleep(0.1))  # the statement is in the worker now
        assert not task.done()
        assert len(_worker_threads()) == workers_before + 1
        task._log_destroy_pending = False  # left pending on purpose
        loop.close()
        deadline = time.monotonic() + 20
        busy = [c for found in seam._pools.get(loop, {}).values() for c in found._connections]
        assert len(busy) == 1
        while busy[0]._in_worker and time.monotonic() < deadline:
            time.sleep(0.02)  # the statement ends, and its answer finds the loop closed
        time.sleep(0.1)
        assert errors == []
        assert len(_worker_threads()) == workers_before + 1  # alive, its connection open
        seam.sweep_closed_loops()
        while len(_worker_threads()) > workers_before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(_worker_threads()) == workers_before
        assert busy[0].raw._connection is None  # closed by the sweep
    finally:
        threading.excepthook = previous
        task = None
    assert errors == []


# 8. Clean exit --------------------------------------------------------------------------

EXIT_SCRIPT = """
import asyncio, sys
import django
from django.conf import settings

settings.configure(DATABASES={"default": %(database)r}, INSTALLED_APPS=["django_asyncdb"],
                   USE_TZ=True)
django.setup()
import django_asyncdb
from django.db import transaction


async def query():
    async with django_asyncdb.cursor() as cursor:
        await cursor.execute("SELECT 1")


async def hold():
    async with transaction.atomic():
        await query()
        await asyncio.sleep(3600)


async def main():
    await asyncio.gather(*(query() for _ in range(3)))
    if sys.argv[1] == "pending":
        asyncio.get_running_loop().create_task(hold())
        await asyncio.sleep(0.2)


if sys.argv[1] == "run":
    asyncio.run(main())  # no close_pools(): the loop's end closes them
else:  # a loop closed with a task still holding a transaction's connection
    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
print("done")
"""


@pytest.mark.parametrize("mode", ["run", "pending"])
def test_a_script_exits_cleanly(alias, mode, tmp_path):
    import subprocess
    import sys

    database = dict(connections[alias].settings_dict)
    database = {key: database[key] for key in ("ENGINE", "NAME", "USER", "HOST", "PORT")}
    database["PASSWORD"] = connections[alias].settings_dict["PASSWORD"]
    script = tmp_path / "script.py"
    script.write_text(EXIT_SCRIPT % {"database": database})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-X", "dev", str(script), mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr
    assert elapsed < 30  # no driver thread kept the interpreter from exiting
    for noise in ("ResourceWarning", "Exception ignored", "django_asyncdb", "Traceback"):
        assert noise not in done.stderr, done.stderr
    # asyncio reports the script's own task left pending; nothing of ours.
    expected = 1 if mode == "pending" else 0
    assert done.stderr.count("Task was destroyed but it is pending") == expected, done.stderr
