"""Settings for the pytest-django checks: SQLite, and PostgreSQL when reachable."""

import os
import socket


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


_HOST, _PORT = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
if os.environ.get("CI") or _reachable(_HOST, int(_PORT)):
    DATABASES["postgresql"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "django_asyncdb_pytest_django",
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": _HOST,
        "PORT": _PORT,
    }
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_asyncdb",
    "testapp",
]
SECRET_KEY = "tests"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
