"""Vendor backends below the execution seam: one module per driver."""

from __future__ import annotations

from importlib import import_module

from django.core.exceptions import ImproperlyConfigured

from ..conf import AsyncSettings
from .base import Backend

_MODULES = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql"}
_EXTRAS = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql"}


def backend_for(settings: AsyncSettings) -> Backend:
    """Build the backend of a native alias, with a clear error if its driver is missing."""
    try:
        module = import_module(f"{__name__}.{_MODULES[settings.vendor]}")
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"Database alias {settings.alias!r} needs the async driver for "
            f"{settings.vendor}: pip install 'django-asyncdb[{_EXTRAS[settings.vendor]}]' "
            f"({exc})."
        ) from exc
    backend: Backend = module.Backend(settings)
    return backend
