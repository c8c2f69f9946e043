"""No hidden I/O: unloaded relations raise in async code; ``aget_related`` fetches them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import router
from django.db.models import ForeignObjectRel, Model
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)

from . import bridge, conf
from . import connections as seam
from .errors import RelationNotLoaded
from .query import sync_io_forbidden

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
        # Django calls get_object() while it handles its field cache's KeyError: without
        # "from None" the traceback would show that KeyError first.
        raise _not_loaded(instance, self.field.name) from None
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


def generic_foreign_key_get_of(original: Callable[..., Any]) -> Callable[..., Any]:
    """A generic foreign key's ``__get__``: an uncached target is refused in the event loop."""

    def get(self: Any, instance: Model | None, cls: Any = None) -> Any:
        field = getattr(self, "field", self)  # Django 6.1's descriptor, or the field itself
        if (
            instance is not None
            and not field.is_cached(instance)
            and getattr(instance, field.model._meta.get_field(field.ct_field).attname, None)
            is not None
            and sync_io_forbidden()
        ):
            raise _not_loaded(instance, field.name)
        return original(self, instance, cls)

    return get


async def aget_related(instance: Model, name: str) -> Any:
    """Fetch a forward FK, one-to-one, reverse one-to-one or generic FK and cache it.

    Returns what ``getattr(instance, name)`` returns in sync code, raising the same
    ``RelatedObjectDoesNotExist`` where Django does. For many-valued relations use
    ``async for`` over ``instance.<name>.all()``. On a database that is not native it
    runs Django's sync code in a thread, as Django's own async methods do.
    """
    descriptor: Any = getattr(type(instance), name, None)
    if not _single_valued(descriptor):
        raise _not_single_valued(instance, name, descriptor)
    get = functools.partial(descriptor.__get__, instance, type(instance))
    if seam.is_native(_read_alias(descriptor, instance)):
        return await bridge.run(get)
    conf.check_app("django_asyncdb.aget_related()")
    return await sync_to_async(get)()


def _generic_foreign_key(descriptor: Any) -> bool:
    # Only a model using contenttypes can have one, and that model imported the module.
    fields = sys.modules.get("django.contrib.contenttypes.fields")
    if fields is None:
        return False
    # Django 6.1 moved the descriptor out of the field into GenericForeignKeyDescriptor.
    classes = (fields.GenericForeignKey, getattr(fields, "GenericForeignKeyDescriptor", ()))
    return isinstance(descriptor, classes)


def _single_valued(descriptor: Any) -> bool:
    return isinstance(
        descriptor, ForwardManyToOneDescriptor | ReverseOneToOneDescriptor
    ) or _generic_foreign_key(descriptor)


def _read_alias(descriptor: Any, instance: Model) -> str:
    """The database Django's descriptor reads the relation from (its queryset's ``db``)."""
    if isinstance(descriptor, ForwardManyToOneDescriptor):
        model = descriptor.field.remote_field.model
    elif isinstance(descriptor, ReverseOneToOneDescriptor):
        model = descriptor.related.related_model
    else:  # a generic foreign key reads from the instance's database
        if instance._state.db is not None:
            return instance._state.db
        model = type(instance)
    alias: str = router.db_for_read(model, instance=instance)
    return alias


def _not_single_valued(instance: Model, name: str, descriptor: Any) -> Exception:
    model = type(instance).__name__
    if isinstance(descriptor, ReverseManyToOneDescriptor):
        return TypeError(
            f"{model}.{name} is many-valued: use 'async for item in obj.{name}.all()', or its "
            "a-methods (acount(), afirst(), ...); aget_related() fetches a single object."
        )
    names = ", ".join(_single_valued_names(type(instance))) or "none"
    if descriptor is None:
        return AttributeError(
            f"{model} has no relation {name!r}; its single-valued relations: {names}."
        )
    return TypeError(
        f"{model}.{name} is not a relation; aget_related() fetches a single-valued relation "
        f"of {model}: {names}."
    )


def _single_valued_names(model: type[Model]) -> list[str]:
    names = []
    for field in model._meta.get_fields():
        if field.many_to_one or field.one_to_one:
            name = field.get_accessor_name() if isinstance(field, ForeignObjectRel) else field.name
            if name:
                names.append(name)
    return names


# Related managers --------------------------------------------------------------------

# The async methods Django's related-manager factories define, each a thread hop over
# its sync twin.
MANAGER_METHODS = (
    "aadd",
    "acreate",
    "aget_or_create",
    "aupdate_or_create",
    "aremove",
    "aclear",
    "aset",
)


def _manager_alias(manager: Any, kwargs: dict[str, Any]) -> str:
    return manager._db or router.db_for_write(manager.model, instance=manager.instance)


def _manager_method(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    doc = f"Native async twin of the related manager's {name[1:]}()."
    return bridge.twin(original, name[1:], _manager_alias, doc)


def native_manager_factory(factory: Callable[..., type]) -> Callable[..., type]:
    """Wrap a related-manager factory so the classes it makes have native a-methods."""

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> type:
        cls = factory(*args, **kwargs)
        for name in MANAGER_METHODS:
            original = cls.__dict__.get(name)
            if original is not None:
                setattr(cls, name, _manager_method(name, original))
        return cls

    make.__wrapped_factory__ = factory  # type: ignore[attr-defined]
    return make
