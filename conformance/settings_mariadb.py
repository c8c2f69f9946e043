"""Django's test settings for MariaDB/MySQL, on this project's server (MYSQL_* variables)."""

import os

from conformance.settings_common import (  # noqa: F401
    DEFAULT_AUTO_FIELD,
    PASSWORD_HASHERS,
    SECRET_KEY,
    USE_TZ,
)

_SERVER = {
    "ENGINE": "django.db.backends.mysql",
    "USER": os.environ.get("MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
    "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("MYSQL_PORT", "3306"),
    "TEST": {"CHARSET": "utf8mb4"},
}
DATABASES = {
    "default": {**_SERVER, "NAME": "django_asyncdb_conformance"},
    "other": {**_SERVER, "NAME": "django_asyncdb_conformance_other"},
}
