"""Prove the native path: the whole read and transaction API runs without a thread hop."""

import asyncio

import pytest
from django.db import transaction
from django.db.models import Count, Sum

import django_asyncdb
from conftest import arun
from helpers import clear, insert
from testapp.models import Author, Book, Place


async def exercise(alias):
    books = Book.objects.using(alias)
    authors = Author.objects.using(alias)
    [b async for b in books.filter(pages__gt=200)]
    [b async for b in books.select_related("author", "publisher")]
    [b async for b in books.values("title").aiterator(chunk_size=7)]
    await authors.aget(pk=1)
    await authors.afirst()
    await authors.alast()
    await authors.aearliest("born")
    await authors.alatest("born")
    await authors.acount()
    await authors.aexists()
    await authors.acontains(await authors.aget(pk=2))
    await authors.aaggregate(Sum("age"), n=Count("id"))
    await authors.ain_bulk([1, 2, 3])
    await books.aexplain()
    [row async for row in authors.annotate(n=Count("books")).values_list("name", "n")]
    [p async for p in Place.objects.using(alias).raw("SELECT * FROM testapp_place")]
    await django_asyncdb.aget_related(await books.aget(pk=1), "author")
    await asyncio.gather(*(authors.filter(pk=i).afirst() for i in range(1, 6)))
    await clear(alias)
    async with transaction.atomic(using=alias):
        await insert(alias, "a")
        async with transaction.atomic(using=alias):
            await insert(alias, "b")
            transaction.on_commit(lambda: None, using=alias)
        sid = await transaction.asavepoint(using=alias)
        await transaction.asavepoint_rollback(sid, using=alias)
        await asyncio.gather(insert(alias, "c"), authors.acount())


def test_no_thread_hop(alias, thread_hops):
    arun(exercise, alias)
    assert thread_hops == []


def test_the_counter_sees_djangos_own_hops(thread_hops):
    """The fixture can fail: an opted-out path does hop."""

    async def main():
        from asgiref.sync import sync_to_async

        await sync_to_async(lambda: None)()

    arun(main)
    assert len(thread_hops) == 1


def test_opted_out_alias_keeps_djangos_behaviour(thread_hops, schema):
    async def main():
        author = await Author.objects.using("optout").aget(pk=1)
        count = await Author.objects.using("optout").acount()
        listed = [a async for a in Author.objects.using("optout").filter(pk__lte=3)]
        async with transaction.atomic(using="optout"):
            in_block = await Author.objects.using("optout").filter(pk=2).afirst()
        return author.pk, count, len(listed), in_block.pk

    assert arun(main) == (1, 12, 3, 2)
    assert len(thread_hops) >= 5


def test_sync_side_never_connects_from_the_event_loop(alias):
    """In a fresh thread, Django's wrapper is new: after native work it is still unopened."""
    import threading

    from django.db import connections

    outcome = {}

    def thread_main():
        arun(exercise, alias)
        outcome["sync connection"] = connections[alias].connection

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join()
    assert outcome == {"sync connection": None}


def test_aiterator_uses_a_server_side_cursor_on_postgresql(schema):
    if "postgresql" not in schema:
        pytest.skip("PostgreSQL not reachable")

    async def cursors():
        async with django_asyncdb.cursor("postgresql") as cursor:
            await cursor.execute("SELECT name FROM pg_cursors")
            return [row[0] for row in await cursor.fetchall()]

    async def main():
        seen = []
        async with transaction.atomic(using="postgresql"):
            async for _ in Book.objects.using("postgresql").aiterator(chunk_size=5):
                seen.append(await cursors())
                break
        return seen

    (names,) = arun(main)
    assert any(name.startswith("_adb_curs_") for name in names)


def test_aiterator_without_server_side_cursors(alias, monkeypatch):
    from django.db import connections

    monkeypatch.setitem(connections[alias].settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)

    async def main():
        books = Book.objects.using(alias).order_by("id")
        return [b.pk async for b in books.aiterator(chunk_size=7)]

    assert arun(main) == list(range(1, 41))


def test_cancelled_stream_returns_no_busy_connection(alias):
    from django_asyncdb import connections as seam

    async def main():
        started = asyncio.Event()

        async def consume():
            async for _ in Book.objects.using(alias).aiterator(chunk_size=2):
                started.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        pool = seam.pool(alias)
        assert all(connection.reusable() for connection in pool._idle)
        return await Book.objects.using(alias).acount()

    assert arun(main) == 40
