"""Learned statements are kept per database, not per Django connection wrapper: Django
makes a wrapper per async context (per request under ASGI), and each request must
neither learn its statements again nor keep its wrapper alive."""

import asyncio
import gc

from django.db.backends.base.base import BaseDatabaseWrapper

from conftest import arun
from django_asyncdb import connections as seam
from testapp.models import Author, Counter

PREFIX = "learned-"


def _wrappers(alias):
    gc.collect()
    return [
        o  # type(), not isinstance(): a lazy object's __class__ would evaluate it
        for o in gc.get_objects()
        if issubclass(type(o), BaseDatabaseWrapper) and o.alias == alias
    ]


def test_requests_share_statements_and_drop_their_wrappers(alias, bridge_runs):
    ran = bridge_runs

    async def request(n):
        token = seam.share_wrappers()  # as the package's ASGI handler does per request
        try:
            author = await Author.objects.using(alias).aget(pk=1 + n % 3)
            books = [b async for b in author.books.order_by("id")]
            counter = await Counter.objects.using(alias).acreate(name=f"{PREFIX}{n}")
            counter.value = n
            await counter.asave()
            await Counter.objects.using(alias).filter(pk=counter.pk).adelete()
            return author.pk, len(books)
        finally:
            seam.stop_sharing(token)

    async def main():
        results = [await asyncio.create_task(request(n)) for n in range(3)]
        first = list(ran)
        ran.clear()
        results += [await asyncio.create_task(request(n)) for n in range(3, 40)]
        return results, first

    before = len(_wrappers(alias))
    results, first = arun(main)
    assert [pk for pk, _ in results] == [1 + n % 3 for n in range(40)]
    # The first requests learned (get, create, save, delete ran Django's code in the
    # bridge); the later ones, each on a wrapper of its own, used what they learned.
    assert "get" in first and "delete" in first
    assert "get" not in ran and "delete" not in ran
    assert ran.count("save") == 37  # Django's save() itself always runs
    # No request's wrapper outlives it (a learned compiler used to keep its own alive).
    assert len(_wrappers(alias)) <= before + 2
