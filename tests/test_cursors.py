"""django_asyncdb.cursor(): errors on an alias it can't run on say why and what to use."""

import pytest
from django.db import ProgrammingError
from django.utils.connection import ConnectionDoesNotExist

import django_asyncdb
from conftest import arun


def test_an_opted_out_alias_says_why_and_what_to_use(schema):
    async def main():
        async with django_asyncdb.cursor("optout") as cursor:
            await cursor.execute("SELECT 1")

    with pytest.raises(ProgrammingError) as info:
        arun(main)
    assert str(info.value) == (
        "Database alias 'optout' is not native: it is opted out "
        "(DATABASES['optout']['ASYNC']['ENABLED'] is False). django_asyncdb.cursor() runs on "
        "native aliases only; for this one use Django's connections['optout'].cursor() "
        "(through sync_to_async in async code)."
    )


def test_an_unknown_alias_is_djangos_error(schema):
    async def main():
        async with django_asyncdb.cursor("nope") as cursor:
            await cursor.execute("SELECT 1")

    with pytest.raises(ConnectionDoesNotExist, match="'nope' doesn't exist"):
        arun(main)
