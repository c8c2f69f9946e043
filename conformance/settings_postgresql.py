"""Django's test settings for PostgreSQL, on this project's server (PG* variables)."""

import os

from conformance.settings_common import (  # noqa: F401
    DEFAULT_AUTO_FIELD,
    PASSWORD_HASHERS,
    SECRET_KEY,
    USE_TZ,
)

_SERVER = {
    "ENGINE": "django.db.backends.postgresql",
    "USER": os.environ.get("PGUSER", "postgres"),
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
}
DATABASES = {
    "default": {**_SERVER, "NAME": "django_asyncdb_conformance"},
    "other": {**_SERVER, "NAME": "django_asyncdb_conformance_other"},
}
