"""Keep ContentType's cache filled from the native side.

Generic relations read content types through ``ContentType.objects.get_for_model()``,
a query hidden in an attribute access (a GenericRelation manager, a
GenericForeignKey assignment). Content types rarely change, so the native layer loads
them all once per database, with one native query, whenever that cache is empty.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.apps import apps
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.dispatch import receiver

logger = logging.getLogger("django_asyncdb")

_loading: set[str] = set()


@functools.cache
def _installed() -> bool:
    return apps.is_installed("django.contrib.contenttypes")


@receiver(setting_changed)
def _forget_installed(*, setting: str, **kwargs: Any) -> None:
    if setting == "INSTALLED_APPS":
        _installed.cache_clear()


def needs_warming(alias: str) -> bool:
    """True if contenttypes is installed and its cache for ``alias`` is empty."""
    if alias in _loading or not _installed():
        return False
    from django.contrib.contenttypes.models import ContentType

    return not ContentType.objects._cache.get(alias)


async def warm(alias: str) -> None:
    """Load every content type of ``alias`` into ContentType's cache."""
    from django.contrib.contenttypes.models import ContentType

    _loading.add(alias)
    try:
        content_types: list[Any] = await ContentType.objects.db_manager(alias).all()
    except DatabaseError:  # not migrated yet: nothing to cache
        logger.debug("content types of %r not loaded", alias, exc_info=True)
        return
    finally:
        _loading.discard(alias)
    for content_type in content_types:
        ContentType.objects._add_to_cache(alias, content_type)
