"""Keep ContentType's cache filled from the native side.

Generic relations read content types through ``ContentType.objects.get_for_model()``,
a query hidden in an attribute access (a GenericRelation manager, a
GenericForeignKey assignment). Content types rarely change, so the native layer loads
them all once per database, with one native query, whenever that cache is empty.

That query is the package's own, so it never runs inside a user's transaction: only
before a statement outside any atomic block (an atomic block's BEGIN counts), on a
pooled autocommit connection, where a failure can't abort anything. A database
without the table (a router keeps contenttypes elsewhere, a legacy database) is
tried once, and again only after a migration or a settings change.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.apps import apps
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.db.models.signals import post_migrate
from django.dispatch import receiver

logger = logging.getLogger("django_asyncdb")

_loading: set[str] = set()
# Aliases whose warm-up failed or found nothing: not tried again until a migration or
# a settings change, rather than on every statement.
_settled: set[str] = set()


@functools.cache
def _installed() -> bool:
    return apps.is_installed("django.contrib.contenttypes")


@receiver(setting_changed)
def _forget_installed(*, setting: str, **kwargs: Any) -> None:
    if setting == "INSTALLED_APPS":
        _installed.cache_clear()
    if setting in ("INSTALLED_APPS", "DATABASES", "DATABASE_ROUTERS"):
        _settled.clear()


@receiver(post_migrate)
def _after_migrate(*, using: str, **kwargs: Any) -> None:
    _settled.discard(using)


def needs_warming(alias: str) -> bool:
    """True if contenttypes is installed and its cache for ``alias`` is empty and
    worth filling."""
    if alias in _settled or alias in _loading or not _installed():
        return False
    from django.contrib.contenttypes.models import ContentType

    return not ContentType.objects._cache.get(alias)


async def warm(alias: str) -> None:
    """Load every content type of ``alias`` into ContentType's cache."""
    from django.contrib.contenttypes.models import ContentType

    _loading.add(alias)
    try:
        # async for, not await: querysets are awaitable only by opt-in.
        content_types: list[Any] = [ct async for ct in ContentType.objects.db_manager(alias).all()]
    except DatabaseError:  # not migrated (yet), or kept on another database
        logger.debug("content types of %r not loaded", alias, exc_info=True)
        _settled.add(alias)
        return
    finally:
        _loading.discard(alias)
    if not content_types:
        _settled.add(alias)
    for content_type in content_types:
        ContentType.objects._add_to_cache(alias, content_type)
