"""What is specific to MariaDB/MySQL: server facts learned natively, OPTIONS, inserts
without RETURNING, select_for_update options, locks held by native transactions, and
the errors MySQLdb raises before a statement is sent."""

import asyncio
import contextlib
import threading
import time

import pytest
from django.db import NotSupportedError, ProgrammingError, connections, transaction

import django_asyncdb
from conftest import ALIASES, ERRORS, arun
from django_asyncdb import bridge, conf
from django_asyncdb.backends import backend_for
from django_asyncdb.cursors import BridgeCursor
from django_asyncdb.pool import Pool
from helpers import alist
from test_read_differential import aoutcome, outcome
from testapp.models import Counter, Tag

pytestmark = pytest.mark.skipif(
    "mariadb" not in ALIASES, reason=f"MariaDB not reachable: {ERRORS['mariadb']}"
)
DB = "mariadb"


async def fetch(sql, params=None, alias=DB):
    async with django_asyncdb.cursor(alias) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


def test_server_facts_come_from_the_async_side(schema):
    """In a fresh thread Django's wrapper has never connected: the compiler's facts
    (version, sql_mode, ...) are filled from the native connection."""
    seen = {}

    def in_thread():
        async def main():
            wrapper = connections[DB]
            await Tag.objects.using(DB).aget(pk=1)
            seen["connected"] = wrapper.connection is not None
            seen["data"] = wrapper.__dict__.get("mysql_server_data")
            seen["sql_mode"] = wrapper.sql_mode
            seen["server"] = (await fetch("SELECT VERSION(), @@sql_mode"))[0]

        arun(main)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert seen["connected"] is False
    assert seen["data"]["version"] == seen["server"][0]
    assert seen["sql_mode"] == set(filter(None, seen["server"][1].split(",")))
    assert "mariadb" in seen["data"]["version"].lower()


@contextlib.contextmanager
def options(**values):
    """DATABASES[DB]['OPTIONS'] set to ``values`` (the dict every wrapper of DB shares)."""
    settings_dict = connections.settings[DB]
    original = settings_dict.get("OPTIONS", {})
    settings_dict["OPTIONS"] = values
    try:
        yield Pool(backend_for(conf.AsyncSettings(DB, "mysql", max_size=2)))
    finally:
        settings_dict["OPTIONS"] = original


def test_statements_that_leave_warnings_send_nothing_more(schema, caplog):
    """asyncmy's cursor follows a statement that left warnings with a SHOW WARNINGS of its
    own (a statement of the driver's in the user's transaction) and logs every warning;
    MySQLdb, Django's driver, does neither. The warnings stay for the user to read."""

    async def main():
        async with transaction.atomic(using=DB):
            count = "SHOW SESSION STATUS LIKE 'Com_show_warnings'"
            before = int((await fetch(count))[0][1])
            value = await fetch("SELECT CAST(%s AS SIGNED)", ["abc"])
            warnings = await fetch("SHOW WARNINGS")
            after = int((await fetch(count))[0][1])
        return value, [row[2] for row in warnings], after - before

    with connections[DB].cursor() as cursor:
        cursor.execute("SELECT CAST(%s AS SIGNED)", ["abc"])
        value = list(cursor.fetchall())
        cursor.execute("SHOW WARNINGS")
        warnings = [row[2] for row in cursor.fetchall()]
    caplog.set_level("DEBUG", logger="asyncmy")
    assert arun(main) == (value, warnings, 1)  # the test's own SHOW WARNINGS only
    assert warnings == ["Truncated incorrect INTEGER value: 'abc'"]
    assert not [r for r in caplog.records if r.name.startswith("asyncmy")]


def test_isolation_level_and_init_command_from_options(schema):
    async def main(pool):
        connection = await pool.acquire()
        try:
            return await connection.fetchall(
                "SELECT @@SESSION.tx_isolation, @asyncdb_marker, @@SESSION.sql_auto_is_null",
                None,
            )
        finally:
            pool.release(connection)
            await pool.close()

    with options(isolation_level="serializable", init_command="SET @asyncdb_marker = 42") as pool:
        rows = arun(main, pool)
    assert rows == [("SERIALIZABLE", 42, 0)]


def test_default_isolation_is_djangos_read_committed(schema):
    assert arun(fetch, "SELECT @@SESSION.tx_isolation") == [("READ-COMMITTED",)]


def test_invalid_isolation_level_is_djangos_error(schema):
    from django.core.exceptions import ImproperlyConfigured

    with (
        options(isolation_level="sometimes") as pool,
        pytest.raises(ImproperlyConfigured, match="Invalid transaction isolation level"),
    ):
        arun(pool.acquire)


def test_inserts_without_returning_use_the_last_insert_id(schema, monkeypatch):
    """MySQL has no RETURNING: Django reads the cursor's last insert id. Forced here on
    MariaDB (which has RETURNING), both paths must give the same keys."""
    features_class = type(connections[DB].features)
    monkeypatch.setattr(features_class, "can_return_columns_from_insert", False)
    monkeypatch.setattr(features_class, "can_return_rows_from_bulk_insert", False)

    def no_cached_returning():
        # A wrapper may have cached the real value on its features already.
        connections[DB].features.__dict__.pop("can_return_columns_from_insert", None)

    def sync_side():
        no_cached_returning()
        counter = Counter.objects.using(DB).create(name="no-returning", value=1)
        created = Counter.objects.using(DB).bulk_create([Counter(name="b1"), Counter(name="b2")])
        return counter.pk, [c.pk for c in created]

    async def native():
        no_cached_returning()
        counter = await Counter.objects.using(DB).acreate(name="no-returning", value=2)
        created = await Counter.objects.using(DB).abulk_create(
            [Counter(name="b1"), Counter(name="b2")]
        )
        fetched = await Counter.objects.using(DB).aget(pk=counter.pk)
        return counter.pk, [c.pk for c in created], fetched.value

    try:
        sync_pk, sync_bulk = sync_side()
        pk, bulk, value = arun(native)
    finally:
        Counter.objects.using(DB).filter(name__in=["no-returning", "b1", "b2"]).delete()
    assert pk == sync_pk + 3  # the next auto-increment value after the sync rows
    assert value == 2
    assert bulk == sync_bulk == [None, None]  # as Django leaves them without RETURNING


@pytest.mark.parametrize(
    "options",
    [{}, {"nowait": True}, {"skip_locked": True}, {"of": ("self",)}, {"no_key": True}],
    ids=["plain", "nowait", "skip_locked", "of", "no_key"],
)
def test_select_for_update_options_as_django(schema, options):
    Counter.objects.using(DB).get_or_create(name="sfu", defaults={"value": 1})

    def sync_side():
        with transaction.atomic(using=DB):
            return [
                c.value
                for c in Counter.objects.using(DB).select_for_update(**options).filter(name="sfu")
            ]

    async def native():
        async with transaction.atomic(using=DB):
            rows = await alist(
                Counter.objects.using(DB).select_for_update(**options).filter(name="sfu")
            )
            return [c.value for c in rows]

    expected = outcome(sync_side)
    assert arun(aoutcome, native) == expected
    if options.get("of") or options.get("no_key"):
        assert expected[0] == "error" and expected[1] == NotSupportedError.__name__


def test_row_lock_of_a_native_transaction_blocks_others(schema):
    """A row locked by select_for_update inside a native atomic block makes another
    connection's NOWAIT lock fail until the block ends."""
    Counter.objects.using(DB).get_or_create(name="locked-row", defaults={"value": 1})

    async def main():
        locked = asyncio.Event()
        release = asyncio.Event()

        async def holder():
            async with transaction.atomic(using=DB):
                await alist(Counter.objects.using(DB).select_for_update().filter(name="locked-row"))
                locked.set()
                await release.wait()

        task = asyncio.create_task(holder())
        await locked.wait()
        try:
            async with transaction.atomic(using=DB):
                await alist(
                    Counter.objects.using(DB)
                    .select_for_update(nowait=True)
                    .filter(name="locked-row")
                )
            blocked = False
        except Exception as exc:  # Django's OperationalError, as for Django's own NOWAIT
            blocked = type(exc).__name__
        release.set()
        await task
        async with transaction.atomic(using=DB):
            after = await alist(
                Counter.objects.using(DB).select_for_update(nowait=True).filter(name="locked-row")
            )
        return blocked, len(after)

    assert arun(main) == ("OperationalError", 1)


def raised(func):
    """The class of the exception ``func()`` raises, or None."""
    try:
        func()
    except Exception as exc:
        return type(exc)
    return None


async def araised(func):
    """The class of the exception awaiting ``func()`` raises, or None."""
    try:
        await func()
    except Exception as exc:
        return type(exc)
    return None


def django_cursor_execute(sql, params):
    """Django's own cursor: MySQLdb outside the loop, the bridge's cursor inside it."""
    with connections[DB].cursor() as cursor:
        if bridge.in_bridge():
            assert isinstance(cursor.cursor, BridgeCursor)
        cursor.execute(sql, params)
        return cursor.fetchall()


async def in_bridge(sql, params):
    return await bridge.run(django_cursor_execute, sql, params)


def counters():
    return Counter.objects.using(DB)


COUNTER = Counter._meta.db_table
WRONG_COUNTS = {
    "too_few": (f"SELECT id FROM {COUNTER} WHERE id = %s AND name = %s", [1]),
    "too_many": (f"SELECT id FROM {COUNTER} WHERE id = %s", [1, 2]),
}
# The same statement through Django's sync side, and natively.
COUNT_PATHS = {
    "cursor": (django_cursor_execute, fetch),
    "raw_aiter": (
        lambda sql, params: list(Counter.objects.using(DB).raw(sql, params)),
        lambda sql, params: alist(Counter.objects.using(DB).raw(sql, params)),
    ),
    "bridge": (django_cursor_execute, in_bridge),
}


@pytest.mark.parametrize("path", sorted(COUNT_PATHS))
@pytest.mark.parametrize("case", sorted(WRONG_COUNTS))
def test_wrong_parameter_count_is_djangos_error(schema, case, path):
    """MySQLdb reports a %s count that does not match the parameters as ProgrammingError."""
    sql, params = WRONG_COUNTS[case]
    sync_side, native = COUNT_PATHS[path]
    expected = raised(lambda: sync_side(sql, params))
    assert expected is ProgrammingError
    assert arun(araised, lambda: native(sql, params)) is expected


SURROGATE = "\udcff"  # a lone surrogate: no encoding can send it
BY_NAME = f"SELECT id FROM {COUNTER} WHERE name = %s"
TARGET = "unencodable-target"  # the row the update would rename
# Each operation with a lone surrogate in a parameter (or the SQL): Django's sync side,
# and the native path.
SURROGATE_OPERATIONS = {
    "filter": (
        lambda: list(counters().filter(name=SURROGATE)),
        lambda: alist(counters().filter(name=SURROGATE)),
    ),
    "aiterator": (
        lambda: list(counters().filter(name=SURROGATE).iterator()),
        lambda: alist(counters().filter(name=SURROGATE).aiterator()),
    ),
    "count": (
        lambda: counters().filter(name=SURROGATE).count(),
        lambda: counters().filter(name=SURROGATE).acount(),
    ),
    "get": (lambda: counters().get(name=SURROGATE), lambda: counters().aget(name=SURROGATE)),
    "create": (
        lambda: counters().create(name=SURROGATE),
        lambda: counters().acreate(name=SURROGATE),
    ),
    "update": (
        lambda: counters().filter(name=TARGET).update(name=SURROGATE),
        lambda: counters().filter(name=TARGET).aupdate(name=SURROGATE),
    ),
    "cursor": (
        lambda: django_cursor_execute(BY_NAME, [SURROGATE]),
        lambda: fetch(BY_NAME, [SURROGATE]),
    ),
    "cursor_in_tuple": (
        lambda: django_cursor_execute(f"SELECT id FROM {COUNTER} WHERE name IN %s", [(SURROGATE,)]),
        lambda: fetch(f"SELECT id FROM {COUNTER} WHERE name IN %s", [(SURROGATE,)]),
    ),
    "cursor_in_sql": (
        lambda: django_cursor_execute(f"SELECT id FROM {COUNTER} WHERE name = '{SURROGATE}'", None),
        lambda: fetch(f"SELECT id FROM {COUNTER} WHERE name = '{SURROGATE}'", None),
    ),
    "raw": (
        lambda: list(Counter.objects.using(DB).raw(BY_NAME, [SURROGATE])),
        lambda: alist(Counter.objects.using(DB).raw(BY_NAME, [SURROGATE])),
    ),
    "bridge": (
        lambda: django_cursor_execute(BY_NAME, [SURROGATE]),
        lambda: in_bridge(BY_NAME, [SURROGATE]),
    ),
}


@pytest.mark.parametrize("operation", sorted(SURROGATE_OPERATIONS))
def test_unencodable_parameter_raises_as_django(schema, operation):
    """MySQLdb encodes the SQL and each string strictly: a lone surrogate raises
    UnicodeEncodeError before anything is sent, never a wrong result or a stored row."""
    sync_side, native = SURROGATE_OPERATIONS[operation]
    counters().get_or_create(name=TARGET)
    before = sorted(counters().values_list("id", "name"))
    expected = raised(sync_side)
    assert expected is UnicodeEncodeError
    assert arun(araised, native) is expected
    assert sorted(counters().values_list("id", "name")) == before


def test_non_ascii_and_binary_parameters_still_pass(schema):
    """Strings the connection can encode and bytes (sent as raw bytes) are not refused."""
    sql = "SELECT %s, LENGTH(%s), HEX(%s), %s"
    params = ["é\U0001f600", b"\xff\xfe'", b"\x00\xdc", "%s"]
    assert arun(fetch, sql, params) == [tuple(row) for row in django_cursor_execute(sql, params)]


def test_streams_hold_no_more_than_a_chunk_ahead(schema):
    """aiterator() outside a transaction streams through an unbuffered cursor. asyncmy reads
    whatever arrives, with no flow control, and parses every complete row it holds: with
    other tasks running between chunks, most of a large result ended up in memory (110 MB
    for this one). The stream reads only while a fetch runs, a bounded amount."""
    import tracemalloc

    rows = 200_000

    async def main():
        async with django_asyncdb.cursor(DB) as cursor:
            await cursor.execute(
                "INSERT INTO testapp_counter (name, value) "
                f"SELECT CONCAT('stream ', REPEAT('x', 30), seq), seq FROM seq_1_to_{rows}"
            )
        stop = asyncio.Event()

        async def busy():  # a server's other tasks: the loop runs between our chunks
            while not stop.is_set():
                await asyncio.sleep(0)

        other = asyncio.ensure_future(busy())
        queryset = Counter.objects.using(DB).filter(name__startswith="stream ")
        tracemalloc.start()
        try:
            seen = total = 0
            async for _name, value in queryset.values_list("name", "value").aiterator(1000):
                seen += 1
                total += value
                if seen % 1000 == 0:
                    time.sleep(0.002)  # a slow consumer: the kernel's buffers fill meanwhile
                    await asyncio.sleep(0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            stop.set()
            await other
            await queryset.adelete()
        return seen, total, peak

    seen, total, peak = arun(main)
    assert (seen, total) == (rows, rows * (rows + 1) // 2)
    assert peak < 16_000_000, f"{peak / 1e6:.1f} MB traced while streaming"
