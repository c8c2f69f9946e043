"""Prove the native path: the whole read and transaction API runs without a thread hop."""

import asyncio

import pytest
from asgiref.sync import SyncToAsync
from django.db import transaction
from django.db.models import Count, Sum

import django_asyncdb
from conftest import arun
from helpers import clear, insert
from testapp.models import Author, Book, Place


@pytest.fixture
def thread_hops(monkeypatch):
    """Count every asgiref SyncToAsync call (Django's async ORM hops through it)."""
    calls = []
    original = SyncToAsync.__call__

    def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", None) or type(self.func).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


async def exercise(alias):
    books = Book.objects.using(alias)
    authors = Author.objects.using(alias)
    await books.filter(pages__gt=200)
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
    await authors.annotate(n=Count("books")).values_list("name", "n")
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
        listed = await Author.objects.using("optout").filter(pk__lte=3)
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
