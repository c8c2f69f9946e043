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
        ({"INLINE": False}, "INLINE"),  # SQLite's only
    ],
)
def test_invalid_settings_name_alias_and_key(raw, key):
    with pytest.raises(ImproperlyConfigured) as info:
        conf.parse("replica", "postgresql", raw)
    assert "'replica'" in str(info.value)
    assert key in str(info.value)


def test_sqlite_inline_setting():
    assert conf.parse("default", "sqlite", None).inline
    assert not conf.parse("default", "sqlite", {"INLINE": False}).inline
    with pytest.raises(ImproperlyConfigured, match=r"\['INLINE'\] must be True or False"):
        conf.parse("default", "sqlite", {"INLINE": 1})
    with pytest.raises(ImproperlyConfigured, match="SQLite only"):
        conf.parse("default", "mysql", {"INLINE": True})


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


# A project set up in a fresh interpreter (its INSTALLED_APPS are not this test run's): each
# public entry point is called and its outcome printed as JSON.
SETUP_SCRIPT = """
import asyncio, json, sys
import django
from django.conf import settings

config = json.loads(sys.argv[1])
settings.configure(
    DATABASES=config["databases"], INSTALLED_APPS=config["apps"], USE_TZ=True, SECRET_KEY="x"
)
outcome = {}


def record(name, call):
    try:
        result = call()
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        outcome[name] = ["ok", repr(result)]
    except Exception as exc:
        outcome[name] = [type(exc).__name__, str(exc)]


if config["setup"]:
    record("setup", django.setup)
import django_asyncdb

record("cursor", lambda: django_asyncdb.cursor(config["alias"]).execute("SELECT 1"))
record("close_pools", django_asyncdb.close_pools)
record("asavepoint", django_asyncdb.asavepoint)
record("asavepoint_rollback", lambda: django_asyncdb.asavepoint_rollback("s1"))
if config["setup"] and "django.contrib.auth" in config["apps"]:
    from django.contrib.auth.models import Permission

    permission = Permission(content_type_id=1)
    record("aget_related", lambda: django_asyncdb.aget_related(permission, "content_type"))
    from django_asyncdb.asgi import get_asgi_application

    record("get_asgi_application", get_asgi_application)
print(json.dumps(outcome))
"""


def _run_project(tmp_path, *, apps, setup=True, alias="default", **databases):
    import json
    import subprocess
    import sys

    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
    config = {
        "databases": {"default": sqlite, **databases},
        "apps": apps,
        "setup": setup,
        "alias": alias,
    }
    done = subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return {name: tuple(result) for name, result in json.loads(done.stdout).items()}


def test_without_the_app_each_entry_point_says_to_add_it(tmp_path):
    outcome = _run_project(tmp_path, apps=["django.contrib.contenttypes", "django.contrib.auth"])
    missing = "django_asyncdb is not in INSTALLED_APPS: add 'django_asyncdb' to INSTALLED_APPS"
    assert outcome == {
        "setup": ("ok", "None"),
        "cursor": ("ImproperlyConfigured", f"{missing} to use django_asyncdb.cursor()."),
        # No pool and no async transaction can exist: nothing to close, no savepoint.
        "close_pools": ("ok", "None"),
        "asavepoint": ("ok", "None"),
        "asavepoint_rollback": ("ok", "None"),
        "aget_related": (
            "ImproperlyConfigured",
            f"{missing} to use django_asyncdb.aget_related().",
        ),
        "get_asgi_application": (
            "ImproperlyConfigured",
            f"{missing} to use django_asyncdb.asgi's handler.",
        ),
    }


def test_before_django_setup_the_cursor_says_to_call_it(tmp_path):
    outcome = _run_project(tmp_path, apps=["django_asyncdb"], setup=False)
    assert outcome["cursor"][0] == "ImproperlyConfigured"
    assert outcome["cursor"][1].startswith(
        "django_asyncdb is not set up yet, so django_asyncdb.cursor() can't be used: "
        "call django.setup() first"
    )


def test_an_alias_of_an_unsupported_vendor_says_so(tmp_path):
    outcome = _run_project(
        tmp_path,
        apps=["django_asyncdb"],
        alias="other",
        other={"ENGINE": "django.db.backends.dummy"},
    )
    assert outcome["setup"] == ("ok", "None")
    assert outcome["cursor"][0] == "ProgrammingError"
    assert outcome["cursor"][1].startswith(
        "Database alias 'other' is not native: vendor 'unknown' has no native backend "
        "(supported: postgresql, sqlite, mysql). django_asyncdb.cursor() runs on native "
        "aliases only; for this one use Django's connections['other'].cursor()"
    )


def test_max_size_zero_says_how_to_turn_the_alias_off():
    with pytest.raises(ImproperlyConfigured, match=r"not 0\. .*set 'ENABLED': False\.$"):
        conf.parse("default", "sqlite", {"MAX_SIZE": 0})


def test_max_size_of_the_wrong_type_says_only_that():
    with pytest.raises(ImproperlyConfigured) as raised:
        conf.parse("default", "sqlite", {"MAX_SIZE": "10"})
    assert str(raised.value) == (
        "DATABASES['default']['ASYNC']['MAX_SIZE'] must be an integer >= 1, not '10'."
    )


def test_min_size_above_the_default_max_size_says_it_is_the_default():
    with pytest.raises(ImproperlyConfigured, match=r"MAX_SIZE \(10, the default\)\.$"):
        conf.parse("default", "sqlite", {"MIN_SIZE": 20})


@pytest.mark.parametrize(
    ("key", "hint"),
    [("MAXSIZE", "MAX_SIZE"), ("max_size", "MAX_SIZE"), ("TIME_OUT", "TIMEOUT")],
)
def test_a_misspelled_key_names_the_right_one(key, hint):
    expected = rf"unknown key '{key}' \(did you mean '{hint}'\?\)"
    with pytest.raises(ImproperlyConfigured, match=expected):
        conf.parse("default", "sqlite", {key: 1})


def test_a_misspelled_async_setting_is_not_ignored(tmp_path):
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "other.sqlite3")}
    outcome = _run_project(tmp_path, apps=["django_asyncdb"], other={**sqlite, "async": {}})
    assert outcome["setup"] == (
        "ImproperlyConfigured",
        "DATABASES['other'] has a key 'async': did you mean 'ASYNC'?",
    )


def test_the_pooler_setting():
    assert conf.parse("p", "postgresql", None).pooler is None
    parsed = conf.parse("p", "postgresql", {"POOLER": "transaction"})
    assert (parsed.pooler, parsed.pooler_prepared_statements) == ("transaction", False)
    assert conf.parse("p", "postgresql", {"POOLER": None}).pooler is None
    with pytest.raises(ImproperlyConfigured, match=r"'transaction'.*or None, not 'session'"):
        conf.parse("p", "postgresql", {"POOLER": "session"})
    with pytest.raises(ImproperlyConfigured, match="PostgreSQL only"):
        conf.parse("p", "sqlite", {"POOLER": "transaction"})
    with pytest.raises(ImproperlyConfigured, match="POOLER_PREPARED_STATEMENTS'] must be True"):
        conf.parse("p", "postgresql", {"POOLER": "transaction", "POOLER_PREPARED_STATEMENTS": 1})


@pytest.mark.parametrize(
    ("options", "prepared", "error"),
    [
        ({}, False, None),
        ({"server_side_binding": True}, False, None),  # Django's prepare_threshold: None
        ({"server_side_binding": True, "prepare_threshold": 5}, False, "prepared statements"),
        ({"server_side_binding": True, "prepare_threshold": 5}, True, None),
        ({"prepare_threshold": 5}, False, None),  # client-side binding never prepares
        ({"assume_role": "reader"}, False, None),
        ({"assume_role": "reader", "server_side_binding": True}, False, "assume_role"),
    ],
)
def test_what_cannot_work_behind_a_transaction_pooler_is_refused(options, prepared, error):
    parsed = conf.parse(
        "pooled", "postgresql", {"POOLER": "transaction", "POOLER_PREPARED_STATEMENTS": prepared}
    )
    if error is None:
        conf.check_pooler(parsed, options)
        return
    with pytest.raises(ImproperlyConfigured, match=error) as info:
        conf.check_pooler(parsed, options)
    assert "'pooled'" in str(info.value)
