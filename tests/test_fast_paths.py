"""Fast paths give exactly Django's results: values, types and tzinfo objects."""

import pytest
from django.db import connections
from django.db.models.functions import Now
from django.test import override_settings

from conftest import ALIASES, ERRORS, arun
from django_asyncdb import connections as seam
from testapp.models import Author

pytestmark = pytest.mark.usefixtures("schema")


def _values(alias):
    queryset = Author.objects.using(alias).order_by("pk").annotate(now=Now())
    return queryset.values_list("joined", "now")


def _native(alias):
    async def main():
        rows = [row async for row in _values(alias)]
        connection = seam.pool(alias)._idle[0]
        loader = connection.raw.adapters.get_loader(
            connection.raw.adapters.types["timestamptz"].oid, 0
        )
        return rows, loader

    return arun(main)


def _same(native, sync):
    assert len(native) == len(sync) == 12
    for native_row, sync_row in zip(native, sync, strict=True):
        assert native_row[0] == sync_row[0]
        for native_value, sync_value in zip(native_row, sync_row, strict=True):
            assert type(native_value) is type(sync_value)
            assert native_value.tzinfo is sync_value.tzinfo


@pytest.mark.parametrize("use_tz", [True, False])
def test_timestamptz_values_and_tzinfo_are_djangos(use_tz):
    if "postgresql" not in ALIASES:
        pytest.skip(f"postgresql not reachable: {ERRORS['postgresql']}")
    with override_settings(USE_TZ=use_tz):
        sync = list(_values("postgresql"))
        connections["postgresql"].close()
        native, loader = _native("postgresql")
    _same(native, sync)
    if use_tz:
        # USE_TZ with the session in UTC: psycopg's own (compiled) loader, not Django's.
        assert loader.__name__ == "TimestamptzLoader"
        assert sync[0][0].tzinfo is not None
    else:
        assert loader.__name__ == "SpecificTzLoader"  # Django's, naive datetimes
        assert sync[0][0].tzinfo is None
