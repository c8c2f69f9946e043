"""Per-alias settings: validation errors name the alias and the key."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_asyncdb import conf


def test_defaults():
    settings = conf.parse("default", "postgresql", None)
    assert settings.enabled
    assert (settings.min_size, settings.max_size, settings.timeout) == (0, 10, 30.0)


def test_overrides():
    settings = conf.parse(
        "replica",
        "postgresql",
        {"MIN_SIZE": 2, "MAX_SIZE": 4, "TIMEOUT": 1.5, "MAX_IDLE": None, "MAX_LIFETIME": 60},
    )
    assert (settings.min_size, settings.max_size, settings.timeout) == (2, 4, 1.5)
    assert settings.max_idle is None
    assert settings.max_lifetime == 60


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"MAX_SIZE": 0}, "MAX_SIZE"),
        ({"MAX_SIZE": "10"}, "MAX_SIZE"),
        ({"MIN_SIZE": -1}, "MIN_SIZE"),
        ({"TIMEOUT": True}, "TIMEOUT"),
        ({"TIMEOUT": None}, "TIMEOUT"),
        ({"MAX_IDLE": "x"}, "MAX_IDLE"),
        ({"ENABLED": "yes"}, "ENABLED"),
        ({"POOL_SIZE": 3}, "POOL_SIZE"),
        ({"MIN_SIZE": 5, "MAX_SIZE": 2}, "MIN_SIZE"),
    ],
)
def test_invalid_settings_name_alias_and_key(raw, key):
    with pytest.raises(ImproperlyConfigured) as info:
        conf.parse("replica", "postgresql", raw)
    assert "'replica'" in str(info.value)
    assert key in str(info.value)


def test_not_a_dict():
    with pytest.raises(ImproperlyConfigured, match=r"\['ASYNC'\] must be a dict"):
        conf.parse("default", "sqlite", [1])


def test_private_memory_sqlite_is_one_connection():
    assert conf.parse("m", "sqlite", None, in_memory=True).max_size == 1
    with pytest.raises(ImproperlyConfigured, match="in-memory"):
        conf.parse("m", "sqlite", {"MAX_SIZE": 3}, in_memory=True)


def test_opt_out_and_unsupported_vendor(monkeypatch):
    from django.db import connections

    dbs = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "off": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "ASYNC": {"ENABLED": False},
        },
        "oracle": {"ENGINE": "django.db.backends.dummy", "ASYNC": {"MAX_SIZE": 2}},
    }
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler(dbs)
    monkeypatch.setattr("django_asyncdb.conf.connections", handler)
    with pytest.raises(ImproperlyConfigured, match=r"'oracle'.*no native backend"):
        conf.load()
    del dbs["oracle"]
    handler = ConnectionHandler(dbs)
    monkeypatch.setattr("django_asyncdb.conf.connections", handler)
    native = conf.load()
    assert set(native) == {"default"}
    # Restore the project's real settings for the other tests.
    monkeypatch.setattr("django_asyncdb.conf.connections", connections)
    conf.load()
