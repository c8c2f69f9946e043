"""The Django app: adding ``"django_asyncdb"`` to INSTALLED_APPS activates the native layer."""

from __future__ import annotations

from django.apps import AppConfig


class AsyncDBConfig(AppConfig):
    """Reads per-alias settings and installs the patch points."""

    name = "django_asyncdb"
    verbose_name = "Native async database layer"

    def ready(self) -> None:
        """Validate the settings, rebind Django's async entry points, register the checks."""
        from django.core import checks
        from django.test.signals import setting_changed

        from . import conf, patch
        from .checks import check_awaitable_querysets, check_pooler_roles
        from .connections import settings_changed

        conf.load()
        patch.install()
        patch.set_awaitable_querysets(conf.awaitable_querysets())
        setting_changed.connect(settings_changed, dispatch_uid="django_asyncdb")
        setting_changed.connect(patch.setting_changed, dispatch_uid="django_asyncdb.await")
        checks.register(check_awaitable_querysets, checks.Tags.compatibility)
        checks.register(check_pooler_roles)  # (not Tags.database: it reads settings only)
