"""The benchmark's model and Django settings, shared by the runner and the workers."""

import os
import sys
import tempfile

import django
from django.conf import settings

# The server database's name (ASYNCDB_BENCH_DB: two runs on one server don't collide).
NAME = os.environ.get("ASYNCDB_BENCH_DB", "django_asyncdb_bench")
PG = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": NAME,
    "USER": os.environ.get("PGUSER", "postgres"),
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
}
SQLITE = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.path.join(tempfile.gettempdir(), f"{NAME}.sqlite3"),
    # Concurrent transactions that read, then write (the TPC-B-like transfer) fail with
    # "database is locked" under SQLite's default deferred BEGIN; Django's docs advise this.
    "OPTIONS": {"transaction_mode": "IMMEDIATE"},
}
MARIADB = {
    "ENGINE": "django.db.backends.mysql",
    "NAME": NAME,
    "USER": os.environ.get("MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
    "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("MYSQL_PORT", "3306"),
}
DATABASES = {"postgresql": PG, "sqlite": SQLITE, "mariadb": MARIADB}
ROWS = 1000


def url(database: str, scheme: str) -> str:
    """``scheme://user[:password]@host:port/name`` of a server database."""
    db = DATABASES[database]
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"{scheme}://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def configure(database: str, native: bool) -> None:
    """Configure Django for one database, with or without django_asyncdb installed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    db = dict(DATABASES[database])
    db["ASYNC"] = {"MAX_SIZE": 10}
    apps = ["django_asyncdb", "bench_models"] if native else ["bench_models"]
    settings.configure(
        DATABASES={"default": db},
        INSTALLED_APPS=apps,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    django.setup()
