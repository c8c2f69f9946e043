"""SQLite: short statements run on the event loop's thread (ASYNC["INLINE"]), and
whatever could wait or run long still goes to aiosqlite's worker thread.

Each test counts the trips to the worker thread; the fault tests hold a lock from
another connection and check that the loop keeps running while a statement waits for
it (in the worker thread), and that the statement then does what it would have done.
"""

import asyncio
import contextlib
import dataclasses
import sqlite3
import threading

import pytest
from django.db import OperationalError, transaction
from django.db.models import F

import django_asyncdb
from conftest import SQLITE_PATH, arun
from django_asyncdb import conf
from django_asyncdb.backends.sqlite import SqliteConnection
from testapp.models import Author, Counter, Team


@pytest.fixture
def trips(schema, monkeypatch):
    """The number of trips to aiosqlite's worker thread, as a one-item list."""
    count = [0]
    original = SqliteConnection._trip

    async def counting(self, function, *args):
        count[0] += 1
        return await original(self, function, *args)

    monkeypatch.setattr(SqliteConnection, "_trip", counting)
    return count


@pytest.fixture
def inline_off(monkeypatch):
    """The default alias with ASYNC["INLINE"] = False (for the pools of new loops)."""
    settings = conf.get("default")
    monkeypatch.setitem(conf._settings, "default", dataclasses.replace(settings, inline=False))


async def _warm():
    """Open the pool's connection (a trip) before counting."""
    await Counter.objects.acount()


async def _block(trips):
    """Twenty inserts in one atomic block, then reads: (trips, rows read back)."""
    await _warm()
    before = trips[0]
    async with transaction.atomic():
        for n in range(20):
            await Counter.objects.acreate(name=f"inline {n}", value=n)
        async with transaction.atomic():  # a savepoint
            await Counter.objects.acreate(name="inline nested", value=99)
    in_block = trips[0] - before
    rows = [c async for c in Counter.objects.filter(name__startswith="inline ").order_by("value")]
    author = await Author.objects.filter(pk__gt=0).order_by("pk").afirst()
    reads = trips[0] - before - in_block
    await Counter.objects.filter(name__startswith="inline ").adelete()
    return in_block, reads, [(c.name, c.value) for c in rows], author


def test_inserts_savepoints_and_reads_run_on_the_loop(trips):
    in_block, reads, rows, author = arun(_block, trips)
    assert in_block == 1  # the COMMIT
    assert reads == 0
    assert rows == [(f"inline {n}", n) for n in range(20)] + [("inline nested", 99)]
    assert author is not None


def test_inline_off_sends_every_statement_to_the_worker_thread(trips, inline_off):
    in_block, reads, rows, _ = arun(_block, trips)
    # BEGIN with the first insert, 20 more statements, SAVEPOINT, RELEASE, COMMIT.
    assert in_block == 24
    assert reads == 2
    assert rows == [(f"inline {n}", n) for n in range(20)] + [("inline nested", 99)]


def test_autocommit_writes_go_to_the_worker_thread(trips):
    async def main():
        await _warm()
        before = trips[0]
        counter = await Counter.objects.acreate(name="inline autocommit")  # commits
        await Counter.objects.filter(pk=counter.pk).aupdate(value=5)
        await Counter.objects.filter(pk=counter.pk).adelete()
        return trips[0] - before

    # The insert, the update; Django's delete runs in its own atomic block: BEGIN with
    # the one-row DELETE on the loop, the COMMIT in the worker thread.
    assert arun(main) == 3


async def _edits(trips):
    """Inside one atomic block: save(update_fields), an F() update by pk, a delete by pk
    (each reaching one row by its key). Returns (trips in the block, rows after)."""
    await _warm()
    kept = await Counter.objects.acreate(name="one row kept", value=1)
    gone = await Counter.objects.acreate(name="one row gone", value=2)
    before = trips[0]
    async with transaction.atomic():
        kept.value = 10
        await kept.asave(update_fields=["value"])
        updated = await Counter.objects.filter(pk=kept.pk).aupdate(value=F("value") + 5)
        missing = await Counter.objects.filter(pk=-1).aupdate(value=0)
        deleted = await gone.adelete()
    in_block = trips[0] - before
    rows = [(c.name, c.value) async for c in Counter.objects.filter(name__startswith="one row ")]
    await Counter.objects.filter(name__startswith="one row ").adelete()
    return in_block, (updated, missing, deleted), rows


def test_one_row_updates_and_deletes_in_a_block_run_on_the_loop(trips):
    in_block, counts, rows = arun(_edits, trips)
    assert in_block == 1  # the COMMIT
    assert counts == (1, 0, (1, {"testapp.Counter": 1}))
    assert rows == [("one row kept", 15)]


def test_one_row_edits_give_what_the_worker_thread_gives(trips, inline_off):
    in_block, counts, rows = arun(_edits, trips)
    assert in_block == 5  # BEGIN with the save, the update, the update, the delete, COMMIT
    assert counts == (1, 0, (1, {"testapp.Counter": 1}))
    assert rows == [("one row kept", 15)]


def test_edits_that_may_reach_many_rows_go_to_the_worker_thread(trips):
    """A filter that is not the key, a parent row whose children SQLite must look for
    (its foreign keys), a trigger: the worker thread runs them."""

    async def main():
        await _warm()
        await Counter.objects.acreate(name="many a", value=1)
        team = await Team.objects.acreate(name="one row parent")
        placed = []
        async with transaction.atomic():
            before = trips[0]
            await Counter.objects.filter(name__startswith="many ").aupdate(value=2)
            placed.append(trips[0] - before)
            before = trips[0]
            await Team.objects.filter(pk=team.pk).aupdate(name="one row renamed")
            placed.append(trips[0] - before)  # SQLite's program for it has no loop
            before = trips[0]
            # Django deletes its comments (by a filter that is not a key), then the team,
            # whose members, notes... SQLite looks for (foreign keys): two trips.
            await team.adelete()
            placed.append(trips[0] - before)
        await Counter.objects.filter(name__startswith="many ").adelete()
        return placed

    assert arun(main) == [1, 0, 2]


def test_an_update_with_a_trigger_goes_to_the_worker_thread(trips):
    """A trigger makes the program run another (a loop): the worker thread runs it, and
    the trigger's effect is there."""
    with sqlite3.connect(SQLITE_PATH, isolation_level=None) as holder:
        holder.execute(
            'CREATE TRIGGER "one_row_trigger" AFTER UPDATE OF "value" ON "testapp_counter" '
            'BEGIN UPDATE "testapp_counter" SET "name" = \'triggered\' WHERE "id" = NEW."id"; END'
        )
    holder.close()

    async def main():
        await _warm()
        counter = await Counter.objects.acreate(name="one row trigger", value=1)
        before = trips[0]
        async with transaction.atomic():
            # a statement no connection compiled before the trigger existed
            await Counter.objects.filter(pk=counter.pk).aupdate(value=F("value") * 3)
        placed = trips[0] - before
        row = await Counter.objects.aget(pk=counter.pk)
        await row.adelete()
        return placed, (row.name, row.value)

    try:
        assert arun(main) == (2, ("triggered", 3))  # the update with BEGIN, the COMMIT
    finally:
        with sqlite3.connect(SQLITE_PATH, isolation_level=None) as holder:
            holder.execute('DROP TRIGGER "one_row_trigger"')
        holder.close()


def test_long_read_moves_to_the_worker_thread(trips):
    """A read stopped by the progress handler did nothing: it runs again in the thread
    and gives the whole answer; a short read after it runs on the loop again."""
    sql = (
        "SELECT (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 200000) SELECT count(*) FROM c)"
    )

    async def main():
        await _warm()
        before = trips[0]
        async with django_asyncdb.cursor() as cursor:
            await cursor.execute(sql)
            long = await cursor.fetchone()
            after_long = trips[0] - before
            await cursor.execute("SELECT %s + 1", [41])
            short = await cursor.fetchone()
        return long, after_long, short, trips[0] - before

    assert arun(main) == ((200000,), 1, (42,), 1)


def _hold(statement, seconds):
    """Another connection takes a lock with ``statement`` and ends it after ``seconds``;
    returns (started event, thread)."""
    started = threading.Event()

    def hold():
        holder = sqlite3.connect(SQLITE_PATH, isolation_level=None)
        try:
            holder.execute(statement)
            started.set()
            threading.Event().wait(seconds)
            holder.execute("ROLLBACK")
        finally:
            started.set()
            holder.close()

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait(5)
    return thread


async def _while_ticking(operation):
    """Run ``operation`` while another task counts the loop's turns: (result, ticks)."""
    ticks = 0
    done = asyncio.Event()

    async def tick():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        return await operation(), ticks
    finally:
        done.set()
        await ticker


@pytest.mark.parametrize("write", ["insert", "update"])
@pytest.mark.parametrize("mode", [None, "IMMEDIATE"])
def test_write_waits_for_the_write_lock_in_the_worker_thread(trips, sqlite_options, mode, write):
    """Another connection holds the write lock for 0.4 s: the block's insert (or one-row
    update) is refused on the loop at once, waits for the lock in the worker thread (the
    loop keeps turning), and is written once."""
    sqlite_options(**({"transaction_mode": mode} if mode else {}))

    async def main():
        await _warm()
        counter = await Counter.objects.acreate(name="inline to update", value=1)
        before = trips[0]
        thread = _hold("BEGIN IMMEDIATE", 0.4)

        async def write_it():
            async with transaction.atomic():
                if write == "insert":
                    await Counter.objects.acreate(name="inline waited")
                else:
                    await Counter.objects.filter(pk=counter.pk).aupdate(value=F("value") + 1)
            return trips[0] - before

        try:
            result = await _while_ticking(write_it)
        finally:
            thread.join()
        count = await Counter.objects.filter(name="inline waited").acount()
        value = (await Counter.objects.aget(pk=counter.pk)).value
        await Counter.objects.filter(name__in=["inline waited", "inline to update"]).adelete()
        return result, count, value

    (trips_taken, ticks), count, value = arun(main)
    assert (count, value) == ((1, 1) if write == "insert" else (0, 2))
    assert trips_taken == 2  # the write (with BEGIN IMMEDIATE, if so), the COMMIT
    assert ticks >= 10  # 0.4 s of lock wait, the loop free: tens of 10 ms turns


def test_read_waits_for_a_writer_in_the_worker_thread(trips):
    """A writer holds the exclusive lock (rollback journal: readers are refused) for
    0.4 s: a read is refused on the loop at once and waits in the worker thread."""
    expected = Author.objects.using("optout").count()

    async def main():
        await _warm()
        before = trips[0]
        thread = _hold("BEGIN EXCLUSIVE", 0.4)
        try:
            result = await _while_ticking(Author.objects.acount)
        finally:
            thread.join()
        return result, trips[0] - before

    (count, ticks), trips_taken = arun(main)
    assert count == expected
    assert trips_taken == 1
    assert ticks >= 10


def test_lock_wait_past_the_timeout_is_djangos_error_and_leaves_nothing_open(trips, sqlite_options):
    """With OPTIONS timeout 0.1 s and the lock held longer, the insert fails as Django's
    sync ORM fails (OperationalError, database is locked), the block is rolled back,
    and the connection is reused."""
    sqlite_options(timeout=0.1)

    async def main():
        await _warm()
        thread = _hold("BEGIN IMMEDIATE", 0.5)
        try:
            async with transaction.atomic():
                await Counter.objects.acreate(name="inline locked out")
        except OperationalError as exc:
            error = exc
        finally:
            thread.join()
        connection = django_asyncdb.connections.pool("default")._idle[-1]
        return (
            error,
            connection.reusable(),
            await Counter.objects.filter(name="inline locked out").acount(),
        )

    error, reusable, count = arun(main)
    assert "locked" in str(error)
    assert reusable
    assert count == 0


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ('SELECT "a" FROM "t" WHERE "id" = ?', "read"),
        ("  select 1", "read"),
        ('INSERT INTO "t" ("a", "b") VALUES (?, ?) RETURNING "t"."id"', "insert"),
        ('INSERT INTO "t" ("a") VALUES (?), (?)', "thread"),  # bulk_create's rows
        ('INSERT INTO "t" ("a") SELECT "a" FROM "u"', "thread"),
        ('INSERT INTO "t" ("a") VALUES ((SELECT max("a") FROM "t"))', "thread"),
        ('INSERT INTO "t" ("a") VALUES (?) ON CONFLICT DO UPDATE SET "a" = ?', "thread"),
        ('INSERT OR IGNORE INTO "t" ("a") VALUES (?)', "thread"),
        ('REPLACE INTO "t" ("a") VALUES (?)', "thread"),
        ('SAVEPOINT "s1"', "savepoint"),
        ('RELEASE SAVEPOINT "s1"', "savepoint"),
        ('ROLLBACK TO SAVEPOINT "s1"', "thread"),  # replays the journal
        ('UPDATE "t" SET "a" = ? WHERE "t"."id" = ?', "one row?"),  # if its program has no loop
        ('DELETE FROM "t" WHERE "t"."id" IN (?)', "one row?"),
        ('UPDATE OR REPLACE "t" SET "a" = ?', "thread"),
        ("COMMIT", "thread"),
        ("ROLLBACK", "thread"),
        ("BEGIN IMMEDIATE", "thread"),
        ('CREATE TABLE "x" ("a" integer)', "thread"),
    ],
)
def test_which_statements_may_run_on_the_loop(sql, where):
    from django_asyncdb.backends import sqlite

    kinds = {
        sqlite._READ: "read",
        sqlite._INSERT: "insert",
        sqlite._SAVEPOINT: "savepoint",
        sqlite._ONE_ROW: "one row?",
    }
    assert kinds.get(sqlite._kind(sql), "thread") == where


def test_a_slow_statement_goes_to_the_worker_thread_from_then_on(trips):
    """One step the progress handler cannot stop (a backtracking REGEXP, Django's
    Python function) made a read slow on the loop three times in a row: the same
    statement then runs in the worker thread, and gives the same answer."""
    from django_asyncdb.backends import sqlite

    sql = "SELECT %s REGEXP %s"
    params = ["a" * 20 + "!", "^(a+)+$"]

    async def main():
        await _warm()
        answers = []
        counts = []
        for _ in range(4):
            before = trips[0]
            async with django_asyncdb.cursor() as cursor:
                await cursor.execute(sql, params)
                answers.append(await cursor.fetchone())
            counts.append(trips[0] - before)
        return answers, counts

    try:
        answers, counts = arun(main)
        assert counts == [0, 0, 0, 1]
        assert answers == [(0,)] * 4
    finally:
        sqlite._slow.clear()
        sqlite._strikes.clear()


def test_inserts_on_the_loop_write_no_page_before_commit(trips, sqlite_options):
    """With a small page cache, a transaction of inserts outgrows it: SQLite would spill
    pages to the database file mid-transaction (locking and writing the file, syncing the
    journal) on the loop's thread. Spilling is off for statements on the loop: the file
    is untouched until COMMIT, which writes it in the worker thread."""
    import hashlib

    sqlite_options(init_command="PRAGMA cache_size = 10")

    def digest():
        with open(SQLITE_PATH, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()

    async def main():
        await _warm()
        before = digest()
        async with transaction.atomic():
            for n in range(300):
                # 300 kB of rows (SQLite does not enforce the column's max_length)
                await Counter.objects.acreate(name=f"inline spill {n:04d} " + "x" * 1000, value=n)
            during = digest()
        after = digest()
        count = await Counter.objects.filter(name__startswith="inline spill").acount()
        await Counter.objects.filter(name__startswith="inline spill").adelete()
        return before, during, after, count

    before, during, after, count = arun(main)
    assert count == 300
    assert during == before
    assert after != before


def test_cancelled_wait_in_the_worker_thread_leaves_nothing_half_done(trips):
    """A task cancelled while its insert waits for the write lock in the worker thread:
    the block is rolled back, the connection is not reused (its worker job may still
    run), and the next block runs on the loop again."""

    async def main():
        await _warm()
        first = django_asyncdb.connections.pool("default")._idle[-1]
        thread = _hold("BEGIN IMMEDIATE", 0.4)

        async def write():
            async with transaction.atomic():
                await Counter.objects.acreate(name="inline before")
                await Counter.objects.acreate(name="inline cancelled")

        try:
            task = asyncio.create_task(write())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            thread.join()
        reused = first in django_asyncdb.connections.pool("default")._idle
        before = trips[0]
        async with transaction.atomic():
            await Counter.objects.acreate(name="inline after")
        after_trips = trips[0] - before
        names = [
            name
            async for name in Counter.objects.filter(name__startswith="inline ")
            .order_by("name")
            .values_list("name", flat=True)
        ]
        await Counter.objects.filter(name__startswith="inline ").adelete()
        return reused, after_trips, names

    reused, after_trips, names = arun(main)
    assert not reused
    assert names == ["inline after"]
    assert after_trips == 1  # the COMMIT


def test_worker_thread_jobs_run_with_the_projects_pragmas(trips, sqlite_options):
    """Statements on the loop set the busy timeout to 0 and cache spilling off; a job in
    the worker thread after them sees the project's values (OPTIONS timeout 3 s, the
    default spill threshold), and the next statement on the loop sets them again."""
    sqlite_options(timeout=3)
    with contextlib.closing(sqlite3.connect(":memory:")) as probe:
        default_spill = probe.execute("PRAGMA cache_spill").fetchone()[0]

    async def main():
        async with django_asyncdb.cursor() as cursor:
            seen = []
            for _ in range(2):
                await cursor.execute("SELECT 1")  # on the loop
                await cursor.execute("PRAGMA busy_timeout")  # in the worker thread
                seen.append(await cursor.fetchone())
                await cursor.execute("PRAGMA cache_spill")
                seen.append(await cursor.fetchone())
            return seen

    assert arun(main) == [(3000,), (default_spill,)] * 2
