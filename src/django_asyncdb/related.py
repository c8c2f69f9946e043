"""No hidden I/O: unloaded relations raise in async code; ``aget_related`` fetches them."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)

from .errors import RelationNotLoaded
from .query import replay, sync_io_forbidden

__all__ = ["aget_related"]

_original_get_object = ForwardManyToOneDescriptor.get_object
_original_reverse_get = ReverseOneToOneDescriptor.__get__


def _not_loaded(instance: Model, name: str) -> RelationNotLoaded:
    model = type(instance).__name__
    return RelationNotLoaded(
        f"{model}.{name} is not loaded, and reading it in async code would run a hidden "
        f"query. Load it with select_related({name!r}) or prefetch_related({name!r}), or "
        f"fetch it with 'await django_asyncdb.aget_related(obj, {name!r})'."
    )


def forward_get_object(self: ForwardManyToOneDescriptor, instance: Model) -> Any:
    """ForwardManyToOneDescriptor.get_object: refused in the event loop."""
    if sync_io_forbidden():
        raise _not_loaded(instance, self.field.name)
    return _original_get_object(self, instance)


def reverse_one_to_one_get(
    self: ReverseOneToOneDescriptor, instance: Model | None, cls: Any = None
) -> Any:
    """ReverseOneToOneDescriptor.__get__: an uncached value is refused in the event loop."""
    if (
        instance is not None
        and not self.related.is_cached(instance)
        and instance.pk is not None
        and sync_io_forbidden()
    ):
        raise _not_loaded(instance, self.related.accessor_name or self.related.name)
    return _original_reverse_get(self, instance, cls)


async def aget_related(instance: Model, name: str) -> Any:
    """Fetch a forward FK, one-to-one or reverse one-to-one natively and cache it.

    Returns what ``getattr(instance, name)`` returns in sync code, raising the same
    ``RelatedObjectDoesNotExist`` where Django does. For many-valued relations use
    ``await instance.<name>.all()`` or ``async for``.
    """
    descriptor = getattr(type(instance), name, None)
    if not isinstance(descriptor, ForwardManyToOneDescriptor | ReverseOneToOneDescriptor):
        raise TypeError(
            f"{type(instance).__name__}.{name} is not a single-valued relation; for a "
            f"many-valued one use 'await obj.{name}.all()' or 'async for'."
        )
    return await replay(descriptor.__get__, instance, type(instance))
