"""Sync ORM code that hops to a worker thread inside ``async with transaction.atomic()``.

Libraries wrap sync ORM work in ``sync_to_async`` themselves: DRF serializers' unique
validators, paginators, sync signal receivers, Channels' ``database_sync_to_async``. Inside
an async atomic block their statements must run on that block's connection, in order, with
Django's semantics (savepoints for nested blocks, errors, on_commit), and roll back with it.
Each scenario checks what another connection sees (nothing before the commit) and what is
left after a commit or a rollback.
"""

import asyncio
import contextvars

import pytest
from asgiref.sync import sync_to_async
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.transaction import TransactionManagementError
from django.dispatch import Signal

from conftest import arun, server_fact
from helpers import clear, insert
from testapp.models import Counter, Tag


async def committed(alias):
    """Counter names visible to another connection (a task outside any block)."""

    async def read():
        return sorted(
            [name async for name in Counter.objects.using(alias).values_list("name", flat=True)]
        )

    return await asyncio.create_task(read(), context=contextvars.Context())


async def visible(alias):
    """Counter names visible from the current context."""
    return sorted(
        [name async for name in Counter.objects.using(alias).values_list("name", flat=True)]
    )


def scenario(alias, body):
    async def main():
        await clear(alias)
        await Tag.objects.using(alias).filter(name__startswith="hop").adelete()
        return await body(alias)

    return arun(main)


class Rollback(Exception):
    """Raised to leave a block with a rollback."""


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_sync_to_async_orm_joins_the_transaction(alias, outcome):
    def create(name):
        return Counter.objects.using(alias).create(name=name)

    def names_in_thread():
        return sorted(Counter.objects.using(alias).values_list("name", flat=True))

    async def body(a):
        try:
            async with transaction.atomic(using=a):
                await insert(a, "native")
                await sync_to_async(create)("in thread")
                seen_in_thread = await sync_to_async(names_in_thread)()
                seen_outside = await committed(a)
                if outcome == "rollback":
                    raise Rollback
        except Rollback:
            pass
        return seen_in_thread, seen_outside, await visible(a)

    in_thread, outside, after = scenario(alias, body)
    assert in_thread == ["in thread", "native"]  # the thread sees the block's own rows
    assert outside == []  # nothing committed before the block ends
    assert after == ([] if outcome == "rollback" else ["in thread", "native"])


def test_nested_atomic_in_the_thread_is_a_savepoint(alias):
    def work():
        Counter.objects.using(alias).create(name="kept")
        with pytest.raises(IntegrityError), transaction.atomic(using=alias):
            Counter.objects.using(alias).create(name="undone")
            Tag.objects.using(alias).create(name="hop")
            Tag.objects.using(alias).create(name="hop")  # unique: the savepoint rolls back

    async def body(a):
        async with transaction.atomic(using=a):
            await sync_to_async(work)()
            await insert(a, "after")  # the block goes on after the savepoint's rollback
        return await visible(a), await Tag.objects.using(a).filter(name="hop").acount()

    assert scenario(alias, body) == (["after", "kept"], 0)


def test_an_error_in_the_thread_marks_the_block_for_rollback(alias):
    def work():
        Tag.objects.using(alias).create(name="hop")
        Tag.objects.using(alias).create(name="hop")  # no savepoint: the block must roll back

    async def body(a):
        with pytest.raises(TransactionManagementError):
            async with transaction.atomic(using=a):
                await insert(a, "first")
                with pytest.raises(IntegrityError):
                    await sync_to_async(work)()
                await insert(a, "refused")  # as in Django: no statements until the end
        return await visible(a), await Tag.objects.using(a).filter(name="hop").acount()

    assert scenario(alias, body) == ([], 0)


def test_on_commit_from_the_thread(alias):
    ran = []

    def work():
        Counter.objects.using(alias).create(name="x")
        transaction.on_commit(lambda: ran.append("hook"), using=alias)

    async def body(a):
        with pytest.raises(Rollback):
            async with transaction.atomic(using=a):
                await sync_to_async(work)()
                raise Rollback
        assert ran == []
        async with transaction.atomic(using=a):
            await sync_to_async(work)()
            assert ran == []
        return ran

    assert scenario(alias, body) == ["hook"]


def test_drf_serializer_unique_validator_inside_atomic(alias):
    from rest_framework import serializers

    class TagSerializer(serializers.ModelSerializer):
        class Meta:
            model = Tag
            fields = ["name"]

    def validate_and_save(name):
        serializer = TagSerializer(data={"name": name})
        serializer.fields["name"].validators[0].queryset = Tag.objects.using(alias)
        if not serializer.is_valid():
            return serializer.errors
        serializer.instance = Tag.objects.using(alias).create(**serializer.validated_data)
        return None

    async def body(a):
        with pytest.raises(Rollback):
            async with transaction.atomic(using=a):
                await Tag.objects.using(a).acreate(name="hop native")
                # The unique validator's query sees the row created natively in the block.
                duplicate = await sync_to_async(validate_and_save)("hop native")
                fresh = await sync_to_async(validate_and_save)("hop serializer")
                raise Rollback
        left = await Tag.objects.using(a).filter(name__startswith="hop").acount()
        return duplicate, fresh, left

    duplicate, fresh, left = scenario(alias, body)
    assert list(duplicate) == ["name"] and duplicate["name"][0].code == "unique"
    assert fresh is None
    assert left == 0  # the rollback undid the serializer's write too


def test_paginator_inside_atomic(alias):
    def page(number):
        paginator = Paginator(Counter.objects.using(alias).order_by("name"), 2)
        current = paginator.page(number)
        return paginator.count, [counter.name for counter in current.object_list]

    async def body(a):
        async with transaction.atomic(using=a):
            for name in "abcde":
                await insert(a, name)
            return await sync_to_async(page)(2)

    assert scenario(alias, body) == (5, ["c", "d"])


def test_sync_signal_receiver_inside_atomic(alias):
    audit = Signal()

    def receiver(sender, name, **kwargs):
        Counter.objects.using(alias).create(name=f"audit {name}")

    audit.connect(receiver, weak=False)

    async def body(a):
        with pytest.raises(Rollback):
            async with transaction.atomic(using=a):
                await insert(a, "x")
                await audit.asend(sender=None, name="x")  # Django runs it in a thread
                assert await visible(a) == ["audit x", "x"]
                raise Rollback
        return await visible(a)

    assert scenario(alias, body) == []


def test_channels_database_sync_to_async_inside_atomic(alias):
    from channels.db import database_sync_to_async

    @database_sync_to_async
    def consumer_write(name):
        Counter.objects.using(alias).create(name=name)
        return Counter.objects.using(alias).count()

    async def body(a):
        with pytest.raises(Rollback):
            async with transaction.atomic(using=a):
                await insert(a, "native")
                count = await consumer_write("consumer")
                raise Rollback
        return count, await visible(a)

    assert scenario(alias, body) == (2, [])


def test_thread_hops_outside_atomic_keep_djangos_behaviour(alias):
    def create(name):
        with transaction.atomic(using=alias):  # Django's own block on the sync connection
            return Counter.objects.using(alias).create(name=name).pk

    async def body(a):
        pk = await sync_to_async(create)("sync")
        return pk is not None, await committed(a)

    assert scenario(alias, body) == (True, ["sync"])


def test_the_threads_wrapper_knows_the_server_without_connecting(alias):
    """Facts Django reads from a live connection (PostgreSQL's version, MariaDB's server
    data, SQLite's parameter limit) are in the worker thread's own wrapper once it joined
    the block."""
    from django.db import connections

    def close():  # an earlier test's thread hop may have left one (Django's behaviour)
        connections[alias].close()

    def facts():
        Counter.objects.using(alias).filter(name="x").exists()  # the thread's first statement
        wrapper = connections[alias]
        found = server_fact(wrapper)
        return found, wrapper.connection

    async def body(a):
        await sync_to_async(close)()
        async with transaction.atomic(using=a):
            return await sync_to_async(facts)()

    found, sync_connection = scenario(alias, body)
    assert found
    assert sync_connection is None  # the thread never opened Django's sync connection
