"""ReadYourWritesRouter's settings and pin, without servers (tests/test_topology.py runs it
against a real replica's lag)."""

import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_asyncdb import routers


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is not set"),
        (["optout"], "must be a dict"),
        ({"REPLICAS": "optout"}, "non-empty list"),
        ({"REPLICAS": []}, "non-empty list"),
        ({"REPLICAS": ["nowhere"]}, "'nowhere', which is not in DATABASES"),
        ({"REPLICAS": ["default"]}, "lists the primary 'default'"),
        ({"REPLICAS": ["optout"], "PIN_SECONDS": -1}, "PIN_SECONDS"),
        ({"REPLICAS": ["optout"], "PIN_SECONDS": True}, "PIN_SECONDS"),
        ({"REPLICAS": ["optout"], "COOKIE": ""}, "COOKIE"),
        ({"REPLICAS": ["optout"], "PIN": 1}, "unknown keys ['PIN']"),
    ],
)
def test_bad_settings_say_what_is_wrong(value, message):
    with (
        override_settings(ASYNCDB_REPLICAS=value),
        pytest.raises(ImproperlyConfigured, match="ASYNCDB_REPLICAS") as info,
    ):
        routers.ReadYourWritesRouter().db_for_read(None)
    assert message in str(info.value)


def test_routes_and_pins_per_task():
    router = routers.ReadYourWritesRouter()
    setting = {"REPLICAS": ["optout"], "PIN_SECONDS": 60}

    async def task_that_writes():
        before = router.db_for_read(None)
        assert router.db_for_write(None) == "default"
        return before, router.db_for_read(None), routers.pinned()

    async def reader():
        return router.db_for_read(None)

    async def main():
        wrote = await asyncio.create_task(task_that_writes())
        other = await asyncio.create_task(reader())
        routers.pin(60)
        pinned = router.db_for_read(None)
        routers.unpin()
        return wrote, other, pinned, router.db_for_read(None)

    with override_settings(ASYNCDB_REPLICAS=setting):
        wrote, other, pinned, unpinned = asyncio.run(main())
        assert router.allow_migrate("optout", "testapp") is False
        assert router.allow_migrate("default", "testapp") is None
    assert wrote == ("optout", "default", True)
    assert other == "optout"  # the writer's pin stayed in its task
    assert (pinned, unpinned) == ("default", "optout")
