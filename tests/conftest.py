"""Test set-up: one Django project with a SQLite, a PostgreSQL and a MariaDB alias.

SQLite always runs. PostgreSQL and MariaDB run whenever their server is reachable, and
must run under CI=true (then an unreachable server fails the run instead of skipping).

ASYNCDB_TEST_LOOP=uvloop runs every event loop of the tests on uvloop (uvicorn's loop
when it is installed) instead of asyncio's own.
"""

import asyncio
import os
import tempfile

import django
import pytest
from django.conf import settings

import topology

if os.environ.get("ASYNCDB_TEST_LOOP", "asyncio") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
elif os.environ.get("ASYNCDB_TEST_LOOP", "asyncio") != "asyncio":
    raise SystemExit("ASYNCDB_TEST_LOOP is asyncio or uvloop")


# ASYNCDB_TEST_DB names the server databases, so two runs on one machine don't collide.
TEST_DB = os.environ.get("ASYNCDB_TEST_DB", "django_asyncdb_test")
PG = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": TEST_DB,
    "USER": os.environ.get("PGUSER", "postgres"),
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
}
# A second database without contenttypes (tests/routers.py keeps them off it), and the
# main one with a statement timeout (tests/test_faults.py).
PG_OTHER = {**PG, "NAME": f"{TEST_DB}_other"}
PG_TIMEOUT = {**PG, "OPTIONS": {"options": "-c statement_timeout=300"}}
# A throwaway PostgreSQL cluster that tests/test_restart.py starts and restarts.
PG_RESTART = {**PG, "NAME": "postgres", "PORT": str(topology.free_port()), "CONN_MAX_AGE": 600}
# A primary, its delayed streaming replica and PgBouncer in front of the primary, which
# tests/test_topology.py starts (tests/topology.py); the pooler's clients outnumber its
# server connections.
TOPOLOGY_PORTS = topology.Ports()
PG_PRIMARY = {**PG, "NAME": topology.DATABASE, "PORT": str(TOPOLOGY_PORTS.primary)}
PG_REPLICA = {**PG_PRIMARY, "PORT": str(TOPOLOGY_PORTS.replica)}
PG_BOUNCER = {
    **PG_PRIMARY,
    "PORT": str(TOPOLOGY_PORTS.bouncer),
    "ASYNC": {"MAX_SIZE": 4 * topology.BOUNCER_POOL_SIZE},
}
# Transactions at another isolation level: it must never reach the pooler's other clients.
PG_BOUNCER_SERIALIZABLE = {**PG_BOUNCER, "OPTIONS": {"isolation_level": 4}}  # SERIALIZABLE
# Prepared statements through the pooler, undeclared: what POOLER refuses, shown failing.
PG_BOUNCER_PREPARED = {
    **PG_BOUNCER,
    "OPTIONS": {"server_side_binding": True, "prepare_threshold": 0},
}
# A role per transaction behind the declared pooler, and Django's per-connection SET ROLE.
PG_BOUNCER_ROLE = {
    **PG_BOUNCER,
    "OPTIONS": {"assume_role": "asyncdb_app"},
    "ASYNC": {**PG_BOUNCER["ASYNC"], "POOLER": "transaction"},
}
PG_BOUNCER_ROLE_UNDECLARED = {**PG_BOUNCER, "OPTIONS": {"assume_role": "asyncdb_app"}}
SQLITE_PATH = os.path.join(tempfile.gettempdir(), f"django_asyncdb_test_{os.getpid()}.sqlite3")


def _pg_reachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(
            dbname="postgres",
            user=PG["USER"],
            password=PG["PASSWORD"] or None,
            host=PG["HOST"],
            port=PG["PORT"],
            connect_timeout=3,
            autocommit=True,
        ) as conn:
            for name in (PG["NAME"], PG_OTHER["NAME"]):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


MARIADB = {
    "ENGINE": "django.db.backends.mysql",
    "NAME": TEST_DB,
    "USER": os.environ.get("MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
    "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("MYSQL_PORT", "3306"),
    "TEST": {"CHARSET": "utf8mb4"},
}


def _mariadb_reachable() -> str | None:
    try:
        import MySQLdb

        conn = MySQLdb.connect(
            user=MARIADB["USER"],
            password=MARIADB["PASSWORD"],
            host=MARIADB["HOST"],
            port=int(MARIADB["PORT"]),
            connect_timeout=3,
        )
        try:
            cursor = conn.cursor()
            cursor.execute(f"DROP DATABASE IF EXISTS `{MARIADB['NAME']}`")
            cursor.execute(f"CREATE DATABASE `{MARIADB['NAME']}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


PG_ERROR = _pg_reachable()
MARIADB_ERROR = _mariadb_reachable()
ALIASES = (
    ["default"]
    + ([] if PG_ERROR and not os.environ.get("CI") else ["postgresql"])
    + ([] if MARIADB_ERROR and not os.environ.get("CI") else ["mariadb"])
)
# The same database through Django's own (thread-hopping) async path: the reference.
REFERENCE = {"default": "optout", "postgresql": "postgresql_optout", "mariadb": "mariadb_optout"}
ERRORS = {"postgresql": PG_ERROR, "mariadb": MARIADB_ERROR}


def pytest_configure(config):
    if os.path.exists(SQLITE_PATH):
        os.remove(SQLITE_PATH)
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH},
        # The same database, opted out: Django's own (thread-hopping) async path.
        "optout": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "ASYNC": {"ENABLED": False},
        },
    }
    if "postgresql" in ALIASES:
        databases["postgresql"] = PG
        databases["postgresql_optout"] = {**PG, "ASYNC": {"ENABLED": False}}
        databases["postgresql_other"] = PG_OTHER
        databases["postgresql_timeout"] = PG_TIMEOUT
        databases["postgresql_restart"] = PG_RESTART
        databases["topology_primary"] = PG_PRIMARY
        databases["topology_replica"] = PG_REPLICA
        databases["topology_bouncer"] = PG_BOUNCER
        databases["topology_bouncer_serializable"] = PG_BOUNCER_SERIALIZABLE
        databases["topology_bouncer_prepared"] = PG_BOUNCER_PREPARED
        databases["topology_bouncer_role"] = PG_BOUNCER_ROLE
        databases["topology_bouncer_role_undeclared"] = PG_BOUNCER_ROLE_UNDECLARED
    if "mariadb" in ALIASES:
        databases["mariadb"] = MARIADB
        databases["mariadb_optout"] = {**MARIADB, "ASYNC": {"ENABLED": False}}
    settings.configure(
        DEBUG=False,
        DATABASES=databases,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_asyncdb",
            "testapp",
        ],
        # Sessions on the alias under test in test_asgi.py; no other model is routed.
        DATABASE_ROUTERS=["asgi_project.SessionRouter", "routers.ContentTypesOnDefault"],
        USE_TZ=True,
        TIME_ZONE="Europe/Paris",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        SECRET_KEY="tests",
    )
    django.setup()


def pytest_report_header(config):
    lines = []
    for name, alias, db in (("PostgreSQL", "postgresql", PG), ("MariaDB", "mariadb", MARIADB)):
        error = ERRORS[alias]
        if error:
            state = "FAILING (CI=true)" if os.environ.get("CI") else "skipped"
            lines.append(f"{name} tests {state}: server not reachable ({error})")
        else:
            lines.append(f"{name} tests run against {db['HOST']}:{db['PORT']}")
    return lines


def pytest_unconfigure(config):
    if os.path.exists(SQLITE_PATH):
        os.remove(SQLITE_PATH)


@pytest.fixture
def bridge_runs(monkeypatch):
    """The names of the functions django_asyncdb's bridge runs (Django's own code)."""
    from django_asyncdb import bridge

    ran = []
    original = bridge.run

    async def recording(func, *args, **kwargs):
        ran.append(getattr(func, "__name__", func))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(bridge, "run", recording)
    return ran


@pytest.fixture(autouse=True)
def fresh_statements():
    """Each test starts with no learned statement (they are kept per database, for the
    whole process): its first use of a shape runs Django's path, as in a new process."""
    from django_asyncdb import learned

    learned.forget()


@pytest.fixture(scope="session")
def schema():
    """Create the tables on every alias and seed the shared read-only data."""
    from django.core.management import call_command

    from seed import seed

    for alias, error in ERRORS.items():
        if error and alias in ALIASES:
            pytest.fail(f"CI=true but {alias} is not reachable: {error}")
    for alias in ALIASES:
        call_command("migrate", database=alias, verbosity=0)
        seed(alias)
    yield ALIASES


@pytest.fixture(
    params=["default", "postgresql", "mariadb"], ids=["sqlite", "postgresql", "mariadb"]
)
def alias(request, schema):
    """Each vendor in turn: the alias to run a test on."""
    if request.param not in ALIASES:
        pytest.skip(f"{request.param} not reachable: {ERRORS[request.param]}")
    return request.param


@pytest.fixture
def sqlite_options():
    """Set OPTIONS of the SQLite alias for one test (its new connections use them)."""
    from django.db import connections

    settings_dict = connections.settings["default"]
    original = settings_dict.get("OPTIONS", {})

    def set_options(**options):
        settings_dict["OPTIONS"] = {**original, **options}

    yield set_options
    settings_dict["OPTIONS"] = original
    connections["default"].close()


@pytest.fixture
def thread_hops(monkeypatch):
    """Record, by qualname, every function asgiref's SyncToAsync runs in a worker thread."""
    from asgiref.sync import SyncToAsync

    calls = []
    original = SyncToAsync.thread_handler

    # Django's built-in async ORM hops through it. thread_handler, not __call__:
    # django_asyncdb's ASGI handler runs some sync_to_async calls (Django's own request
    # hooks) on the event loop, and those are not hops.
    def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", None) or type(self.func).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "thread_handler", counting)
    return calls


@pytest.fixture
def awaitable_querysets():
    """``await qs`` for one test: the opt-in ASYNCDB_AWAITABLE_QUERYSETS = True."""
    from django.test import override_settings

    with override_settings(ASYNCDB_AWAITABLE_QUERYSETS=True):
        yield


def arun(coro_fn, *args, **kwargs):
    """Run a coroutine function on a fresh event loop and close the pools after it."""
    from django_asyncdb import close_pools

    async def main():
        try:
            return await coro_fn(*args, **kwargs)
        finally:
            await close_pools()

    return asyncio.run(main())


def server_fact(wrapper):
    """A fact Django reads from a live connection (PostgreSQL's version, MariaDB's server
    data, SQLite's parameter limit): it connects unless the package filled it in."""
    return {
        "postgresql": lambda: wrapper.pg_version,
        "mysql": lambda: wrapper.mysql_server_data["version"],
        "sqlite": lambda: wrapper.features.max_query_params,
    }[wrapper.vendor]()
