"""Errors that teach: a sync ORM call in async code names its async twin."""

import pytest
from django.db import connections, transaction

from conftest import arun
from django_asyncdb import SyncCallInAsyncContext
from helpers import clear, names
from testapp.models import Counter, Tag

CALLS = {
    "count": (lambda a: Counter.objects.using(a).count(), "acount()"),
    "exists": (lambda a: Counter.objects.using(a).filter(name="x").exists(), "aexists()"),
    "update": (lambda a: Counter.objects.using(a).update(value=1), "aupdate()"),
    "create": (lambda a: Counter.objects.using(a).create(name="x"), "acreate()"),
    "save": (lambda a: Counter(name="x").save(using=a), "asave()"),
    "delete": (lambda a: Counter.objects.using(a).filter(name="x").delete(), "adelete()"),
    "bulk_create": (
        lambda a: Tag.objects.using(a).bulk_create([Tag(name="never")]),
        "abulk_create()",
    ),
    "get_or_create": (
        lambda a: Counter.objects.using(a).get_or_create(name="x"),
        "aget_or_create()",
    ),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_sync_orm_call_in_async_code_names_its_twin(alias, call):
    run, twin = CALLS[call]

    async def main():
        # Django 6.1's bulk_create reads SQLite's parameter limit before any I/O: that fact
        # comes from the native side once it has connected.
        await Counter.objects.using(alias).aexists()
        with pytest.raises(SyncCallInAsyncContext) as info:
            run(alias)
        return str(info.value)

    assert twin in arun(main)


def test_a_raw_cursor_in_async_code_names_the_async_cursor(alias):
    async def main():
        with pytest.raises(SyncCallInAsyncContext, match=r"django_asyncdb\.cursor"):
            connections[alias].cursor()

    arun(main)


def test_manual_savepoints_on_an_opted_out_alias_roll_back(schema):
    """On an alias left on Django's path, the async savepoint twins run Django's own."""
    optout = "optout"

    async def main():
        await clear("default")
        async with transaction.atomic(using=optout):
            await Counter.objects.using(optout).acreate(name="kept")
            sid = await transaction.asavepoint(using=optout)
            assert sid is not None
            await Counter.objects.using(optout).acreate(name="undone")
            await transaction.asavepoint_rollback(sid, using=optout)
        return await names("default")

    assert arun(main) == ["kept"]


def test_an_unloaded_generic_foreign_key_is_not_a_hidden_query(alias):
    from django_asyncdb import RelationNotLoaded, aget_related
    from testapp.models import Comment

    async def main():
        comment = await Comment.objects.using(alias).aget(pk=1)
        with pytest.raises(RelationNotLoaded, match=r"prefetch_related\('target'\)"):
            comment.target  # noqa: B018
        fetched = await aget_related(comment, "target")
        assert comment.target is fetched  # cached now
        prefetched = await Comment.objects.using(alias).prefetch_related("target").aget(pk=1)
        return type(fetched).__name__, prefetched.target == fetched

    assert arun(main) == ("Book", True)
