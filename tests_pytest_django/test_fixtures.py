"""pytest-django's db and transactional_db fixtures with native queries."""

import asyncio

import pytest
from django.conf import settings
from django.db import transaction

from django_asyncdb import close_pools
from testapp.models import Counter

ALIASES = sorted(settings.DATABASES)


def run(coro):
    async def main():
        try:
            return await coro
        finally:
            await close_pools()

    return asyncio.run(main())


async def native_names(alias):
    return sorted([n async for n in Counter.objects.using(alias).values_list("name", flat=True)])


@pytest.mark.django_db(databases=ALIASES)
@pytest.mark.parametrize("alias", ALIASES)
def test_db_fixture_native_queries_see_the_test_transaction(alias):
    Counter.objects.using(alias).create(name="sync")

    async def work():
        await Counter.objects.using(alias).acreate(name="native")
        async with transaction.atomic(using=alias):
            await Counter.objects.using(alias).acreate(name="in savepoint")
        return await native_names(alias)

    assert run(work()) == ["in savepoint", "native", "sync"]
    assert sorted(Counter.objects.using(alias).values_list("name", flat=True)) == [
        "in savepoint",
        "native",
        "sync",
    ]


@pytest.mark.django_db(databases=ALIASES)
@pytest.mark.parametrize("alias", ALIASES)
def test_db_fixture_rolled_back_the_previous_test(alias):
    assert run(native_names(alias)) == []


@pytest.mark.django_db(databases=ALIASES, transaction=True)
@pytest.mark.parametrize("alias", ALIASES)
def test_transactional_db_native_commits_are_seen_by_sync_code(alias):
    async def work():
        async with transaction.atomic(using=alias):
            await Counter.objects.using(alias).acreate(name="committed")
        return await native_names(alias)

    assert run(work()) == ["committed"]
    assert list(Counter.objects.using(alias).values_list("name", flat=True)) == ["committed"]


@pytest.mark.django_db(databases=ALIASES)
@pytest.mark.parametrize("alias", ALIASES)
def test_django_assert_num_queries_counts_native_queries(alias, django_assert_num_queries):
    async def work():
        # Entered in the task, as in an async test: Django's connections are per task there.
        with django_assert_num_queries(2, using=alias):
            await Counter.objects.using(alias).acount()
            return await Counter.objects.using(alias).filter(name="x").aexists()

    assert run(work()) is False
