"""The Django app: adding ``"django_asyncdb"`` to INSTALLED_APPS activates the native layer."""

from __future__ import annotations

from django.apps import AppConfig


class AsyncDBConfig(AppConfig):
    """Reads per-alias settings and installs the patch points."""

    name = "django_asyncdb"
    verbose_name = "Native async database layer"

    def ready(self) -> None:
        """Validate ``DATABASES[alias]['ASYNC']`` and rebind Django's async entry points."""
        from . import conf, patch

        conf.load()
        patch.install()
