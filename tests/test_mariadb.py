"""What is specific to MariaDB/MySQL: server facts learned natively, OPTIONS, inserts
without RETURNING, select_for_update options, and locks held by native transactions."""

import asyncio
import contextlib
import threading

import pytest
from django.db import NotSupportedError, connections, transaction

import django_asyncdb
from conftest import ALIASES, ERRORS, arun
from django_asyncdb import conf
from django_asyncdb.backends import backend_for
from django_asyncdb.pool import Pool
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
            rows = await Counter.objects.using(DB).select_for_update(**options).filter(name="sfu")
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
                await Counter.objects.using(DB).select_for_update().filter(name="locked-row")
                locked.set()
                await release.wait()

        task = asyncio.create_task(holder())
        await locked.wait()
        try:
            async with transaction.atomic(using=DB):
                await (
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
            after = (
                await Counter.objects.using(DB)
                .select_for_update(nowait=True)
                .filter(name="locked-row")
            )
        return blocked, len(after)

    assert arun(main) == ("OperationalError", 1)
