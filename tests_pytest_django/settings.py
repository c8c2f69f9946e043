"""Settings for the pytest-django checks: SQLite, and PostgreSQL and MariaDB when reachable."""

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
_MY_HOST, _MY_PORT = os.environ.get("MYSQL_HOST", "127.0.0.1"), os.environ.get("MYSQL_PORT", "3306")
if os.environ.get("CI") or _reachable(_MY_HOST, int(_MY_PORT)):
    DATABASES["mariadb"] = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "django_asyncdb_pytest_django",
        "USER": os.environ.get("MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
        "HOST": _MY_HOST,
        "PORT": _MY_PORT,
        "TEST": {"CHARSET": "utf8mb4"},
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
