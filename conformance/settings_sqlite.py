"""Django's test settings for SQLite (as tests/test_sqlite.py in Django's sources)."""

from conformance.settings_common import (  # noqa: F401
    DEFAULT_AUTO_FIELD,
    PASSWORD_HASHERS,
    SECRET_KEY,
    USE_TZ,
)

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3"},
    "other": {"ENGINE": "django.db.backends.sqlite3"},
}
