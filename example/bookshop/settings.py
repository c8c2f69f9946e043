"""Settings of the example bookshop, driven by environment variables.

DATABASE_URL   sqlite:///relative/path, sqlite:////absolute/path, postgres://, postgresql://,
               mysql:// or mariadb:// (default: SQLite at example/db.sqlite3)
ASYNCDB        "0" removes django_asyncdb from INSTALLED_APPS: the async views then run on
               Django's built-in thread-hopping async ORM (default "1")
ASGI_HANDLER   "asyncdb" (default with django_asyncdb): django_asyncdb.asgi's handler, which
               runs Django's own sync middleware hooks on the event loop; "django" (default
               with ASYNCDB=0): Django's own, which runs each of them in a thread
ASYNCDB_POOL   django_asyncdb's pool size per event loop (DATABASES[...]["ASYNC"]["MAX_SIZE"])
CONN_MAX_AGE   Django's persistent sync connections, in seconds (default 0, Django's default)
DJANGO_POOL    with ASYNCDB=0 on PostgreSQL: size of Django's own psycopg pool for its sync
               connections (OPTIONS["pool"], Django's advice for ASGI; default 0: no pool)
REDIS_URL      use Redis there (default: local memory): django_asyncdb's RedisCache (native
               async methods) with django_asyncdb, Django's RedisCache with ASYNCDB=0
UPSTREAM_URL   the external API the /upstream/ views call (default http://127.0.0.1:8001/)
COUNT_HOPS     "1" counts asgiref's thread hops and serves them at /debug/hops/
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

ASYNCDB = os.environ.get("ASYNCDB", "1") != "0"
ASGI_HANDLER = os.environ.get("ASGI_HANDLER", "asyncdb" if ASYNCDB else "django")
if ASGI_HANDLER not in ("asyncdb", "django"):
    raise ImproperlyConfigured(f"ASGI_HANDLER must be 'asyncdb' or 'django', not {ASGI_HANDLER!r}")
COUNT_HOPS = os.environ.get("COUNT_HOPS", "0") == "1"
DEBUG = os.environ.get("DEBUG", "0") == "1"
SECRET_KEY = os.environ.get("SECRET_KEY", "example-only-not-secret")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}


def parse_database_url(url: str) -> dict:
    """DATABASES["default"] from a URL, with urllib.parse only."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/to/cwd.sqlite3 or sqlite:////absolute/path.sqlite3
        path = unquote(parts.path)
        name = path[1:] if path.startswith("//") else path.lstrip("/")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.abspath(name)}
    if parts.scheme not in ENGINES:
        raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parts.scheme!r}")
    database = {
        "ENGINE": ENGINES[parts.scheme],
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or ""),
    }
    if database["ENGINE"] == "django.db.backends.mysql":
        database["OPTIONS"] = {"charset": "utf8mb4"}
    return database


DATABASES = {
    "default": parse_database_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "0"))
DATABASES["default"]["ASYNC"] = {"MAX_SIZE": int(os.environ.get("ASYNCDB_POOL", "10"))}
DJANGO_POOL = int(os.environ.get("DJANGO_POOL", "0"))
if DJANGO_POOL and not ASYNCDB and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Under ASGI each request's sync ORM calls run in a new thread, so without a pool each
    # request opens its own connection. Needs psycopg-pool; Django requires CONN_MAX_AGE 0.
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 1, "max_size": DJANGO_POOL}}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

if os.environ.get("REDIS_URL") and ASYNCDB:
    # The package's RedisCache: native async methods, its asyncio connections per event
    # loop shared by every cache object; the sync views keep Django's client.
    CACHES = {
        "default": {
            "BACKEND": "django_asyncdb.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "bookshop"),
            "OPTIONS": {
                # The sync side's pool, as below; the async side's is shared per loop.
                "pool_class": "bookshop.cache.SharedConnectionPool",
                "async_pool_class": "redis.asyncio.ConnectionPool",
            },
        }
    }
elif os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "bookshop"),
            # Keep Redis connections across requests (see bookshop/cache.py).
            "OPTIONS": {"pool_class": "bookshop.cache.SharedConnectionPool"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CACHE_SECONDS = int(os.environ.get("CACHE_SECONDS", "30"))

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001/")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "books",
]
if ASYNCDB:
    INSTALLED_APPS.append("django_asyncdb")

# Sessions, CSRF and auth only. Under ASGI each of Django's middleware classes runs its
# process_request/process_response hooks in a thread (asgiref's sync_to_async): Django's
# own hops, on every request, with or without django_asyncdb. Fewer classes, fewer hops.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "bookshop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        # No auth context processor: its lazy `user` would query from the template. The
        # views pass the user they awaited.
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
WSGI_APPLICATION = "bookshop.wsgi.application"
# books/static/, served by bookshop/asgi.py and wsgi.py (staticfiles' handlers) ahead of
# the middleware: the example runs without a separate web server.
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
