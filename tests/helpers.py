"""Helpers shared by the tests: raw SQL through the package's cursor API, list evaluation."""

import os
import socket

import pytest

import django_asyncdb
from testapp.models import Counter

TABLE = Counter._meta.db_table


async def alist(queryset):
    """A queryset's results as a list, natively: Django's querysets are not awaitable."""
    return [item async for item in queryset]


async def insert(alias, name, value=0):
    """Insert a Counter row with raw SQL through the native cursor."""
    async with django_asyncdb.cursor(alias) as cursor:
        await cursor.execute(f"INSERT INTO {TABLE} (name, value) VALUES (%s, %s)", [name, value])


async def names(alias):
    """Counter names visible from the current context, sorted."""
    return sorted(await alist(Counter.objects.using(alias).values_list("name", flat=True)))


async def clear(alias):
    """Empty the Counter table (autocommit)."""
    async with django_asyncdb.cursor(alias) as cursor:
        await cursor.execute(f"DELETE FROM {TABLE}")


def need_redis():
    """Skip unless Redis answers at 127.0.0.1:6379 (fail under CI=true, which starts it)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            return
    if os.environ.get("CI"):
        pytest.fail("Redis at 127.0.0.1:6379 is required under CI", pytrace=False)
    pytest.skip("Redis is not reachable at 127.0.0.1:6379", allow_module_level=True)
