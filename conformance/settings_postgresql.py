"""Django's test settings for PostgreSQL, on this project's server (PG* variables)."""

import os

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
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
