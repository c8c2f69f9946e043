"""Optimistic locking: a version column checked on save, for async and sync Django.

Declare it with a field, as any other::

    from django_asyncdb.locking import VersionField

    class Article(models.Model):
        title = models.CharField(max_length=200)
        version = VersionField()  # an integer column, 1 on insert

Then ``save()``/``asave()`` of an object read from the database updates its row only
while the row's version is still the one the object holds, and bumps it in the same
``UPDATE`` (``... SET version = 8 WHERE id = 3 AND version = 7``). If another writer got
there first (or deleted the row), nothing is written and :class:`StaleObjectError` is
raised. ``QuerySet.update()``/``aupdate()`` bump the version of every row they touch;
``bulk_update()`` refuses (it can't check each row).

The package rebinds ``Model._do_update``, ``QuerySet.update`` and
``QuerySet.bulk_update`` (see ``patch.py``); they change nothing for models without a
``VersionField``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django import forms
from django.core import checks
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import F, Model, QuerySet
from django.forms.models import ModelFormMetaclass

from . import bridge, updates
from .errors import NotSupportedYet, StaleObjectError

__all__ = [
    "StaleObjectError",
    "VersionField",
    "VersionedModelForm",
    "asave_with_retry",
    "save_with_retry",
    "version_field",
]

M = TypeVar("M", bound=Model)


class VersionField(models.PositiveBigIntegerField):
    """The row's version: 1 on insert, one more on every checked save or update.

    In a ``ModelForm`` it is a hidden input, so the version a form was shown with comes
    back with the post, and a stale post fails instead of overwriting.
    """

    description = "Optimistic locking version"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", 1)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("default") == 1:
            del kwargs["default"]
        return name, path, args, kwargs

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"widget": forms.HiddenInput, **kwargs})

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        model = getattr(self, "model", None)
        if model is not None:
            others = [
                f.name
                for f in model._meta.concrete_fields
                if isinstance(f, VersionField) and f is not self
            ]
            if others:
                errors.append(
                    checks.Error(
                        f"{model.__name__} has more than one VersionField "
                        f"({', '.join(sorted([self.name, *others]))}).",
                        hint="A model (with its parents) takes one version field.",
                        obj=self,
                        id="django_asyncdb.E001",
                    )
                )
        return errors


_versions: dict[type[Model], VersionField | None] = {}


def version_field(model: type[Model]) -> VersionField | None:
    """The model's ``VersionField`` (its own or a parent's), or None."""
    try:
        return _versions[model]
    except KeyError:
        found = next((f for f in model._meta.concrete_fields if isinstance(f, VersionField)), None)
        _versions[model] = found
        return found


# Patch targets (installed by patch.py) ----------------------------------------------

_original_do_update = Model._do_update
_original_update = QuerySet.update
_original_bulk_update = QuerySet.bulk_update


def do_update(
    self: Model,
    base_qs: QuerySet[Any],
    using: str,
    pk_val: Any,
    values: list[tuple[Any, Any, Any]],
    update_fields: Any,
    forced_update: bool,
    *rest: Any,
) -> Any:
    """Model._do_update: the version checked and bumped in the table that holds it."""
    field = version_field(type(self))
    if (
        field is None
        or self._state.adding  # built by hand with a pk: Django's update-or-insert
        or field.model._meta.concrete_model is not base_qs.model._meta.concrete_model
    ):
        return updates.do_update(
            _original_do_update,
            self,
            base_qs,
            using,
            pk_val,
            values,
            update_fields,
            forced_update,
            *rest,
        )
    if field.attname not in self.__dict__:
        raise ValueError(
            f"{type(self).__name__}.{field.name} is deferred, so the version this object "
            f"was read with is unknown and its save can't be checked: load it with the "
            f"object (only(..., {field.name!r}), or no defer({field.name!r}))."
        )
    loaded = getattr(self, field.attname)
    bumped = (loaded or 0) + 1
    values = [value for value in values if value[0] is not field]
    values.append((field, None, bumped))
    updated = _original_do_update(
        self,
        base_qs.filter(**{field.attname: loaded}),
        using,
        pk_val,
        values,
        update_fields,
        forced_update,
        *rest,
    )
    if not updated:
        raise StaleObjectError(type(self), pk_val, loaded)
    setattr(self, field.attname, bumped)
    return updated


def update(self: QuerySet[Any], **kwargs: Any) -> int:
    """QuerySet.update (and so aupdate): every row it touches gets a new version."""
    field = version_field(self.model)
    if field is not None and field.name not in kwargs and field.attname not in kwargs:
        kwargs[field.attname] = F(field.attname) + 1
    return _original_update(self, **kwargs)


update.alters_data = True  # type: ignore[attr-defined]


def bulk_update(self: QuerySet[Any], objs: Any, fields: Any, batch_size: Any = None) -> int:
    """QuerySet.bulk_update (and so abulk_update): refused on a versioned model."""
    field = version_field(self.model)
    if field is not None:
        raise NotSupportedYet(
            f"bulk_update() can't check the {field.name} of each {self.model.__name__} "
            "row, so it could overwrite another writer's change: save() (or asave()) each "
            "object, which checks it, or use update(), which bumps it without a check."
        )
    return _original_bulk_update(self, objs, fields, batch_size=batch_size)


bulk_update.alters_data = True  # type: ignore[attr-defined]


# Retrying --------------------------------------------------------------------------


async def asave_with_retry(
    obj: M,
    change: Callable[[M], Awaitable[Any] | Any],
    *,
    attempts: int = 3,
    using: str | None = None,
) -> M:
    """Apply ``change(obj)`` (sync or async) and ``asave()``; if another writer got there
    first, re-read the object and apply ``change`` again, up to ``attempts`` times, then
    let :class:`StaleObjectError` through. Each save runs in its own atomic block (a
    savepoint inside a transaction), so a conflict never marks an enclosing block for
    rollback. ``change`` must compute from the object's current values (``obj.stock -=
    1``), not from values read before."""
    _check_attempts(attempts)
    alias = using or obj._state.db
    for attempt in range(1, attempts + 1):
        result = change(obj)
        if inspect.isawaitable(result):
            await result
        try:
            async with transaction.atomic(using=alias):
                await obj.asave(using=alias)
        except StaleObjectError:
            if attempt == attempts:
                raise
            await obj.arefresh_from_db(using=alias)
        else:
            return obj
    raise AssertionError("unreachable")  # pragma: no cover


def save_with_retry(
    obj: M, change: Callable[[M], Any], *, attempts: int = 3, using: str | None = None
) -> M:
    """The sync twin of :func:`asave_with_retry` (``change`` is a plain function)."""
    _check_attempts(attempts)
    alias = using or obj._state.db
    for attempt in range(1, attempts + 1):
        change(obj)
        try:
            with transaction.atomic(using=alias):
                obj.save(using=alias)
        except StaleObjectError:
            if attempt == attempts:
                raise
            obj.refresh_from_db(using=alias)
        else:
            return obj
    raise AssertionError("unreachable")  # pragma: no cover


def _check_attempts(attempts: int) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an integer >= 1, not {attempts!r}.")


# Forms -----------------------------------------------------------------------------


class _VersionedFormMetaclass(ModelFormMetaclass):
    """Adds the model's version to the form's fields (a hidden input) when ``Meta.fields``
    leaves it out: on the class, so that the admin (which renders ``base_fields``) and
    ``modelform_factory`` see it."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        cls = super().__new__(mcs, name, bases, attrs)
        model = getattr(cls._meta, "model", None)
        field = version_field(model) if model is not None else None
        if field is not None and field.name not in cls.base_fields:
            cls.base_fields[field.name] = field.formfield()
        return cls


class VersionedModelForm(forms.ModelForm, metaclass=_VersionedFormMetaclass):
    """A ``ModelForm`` for a model with a ``VersionField``: the version the form was shown
    with travels in a hidden field. Validation compares it with the row's (one query): a
    stale post is invalid, with a non-field error. A change that lands between validation
    and save makes ``save()`` raise :class:`StaleObjectError`, with the same error added
    to the form, so the view shows the form again instead of overwriting::

        if await form.ais_valid():  # is_valid(), its queries native
            try:
                await form.asave()
            except StaleObjectError:
                return render(request, "edit.html", {"form": form}, status=409)
            return redirect(...)
    """

    stale_message = (
        "Someone else changed this %(model)s after you opened it. Your changes were "
        "not saved: reload the page to see the current values."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = version_field(type(self.instance))
        if field is None:
            raise TypeError(
                f"{type(self).__name__}: {type(self.instance).__name__} has no VersionField."
            )
        self._version = field
        self.initial.setdefault(field.name, getattr(self.instance, field.attname))
        self.fields[field.name].required = not self.instance._state.adding

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        version = cleaned.get(self._version.name)
        if version is not None and not self.instance._state.adding:
            setattr(self.instance, self._version.attname, version)
            # Stale already? Say so with the other errors (the save checks it again).
            instance = self.instance
            current = (
                type(instance)
                ._base_manager.using(instance._state.db)
                .filter(pk=instance.pk)
                .values_list(self._version.attname, flat=True)
                .first()
            )
            if current != version:
                raise self._stale_error()
        return cleaned

    def _stale_error(self) -> ValidationError:
        model = self.instance._meta.verbose_name
        return ValidationError(self.stale_message, code="stale", params={"model": model})

    def save(self, commit: bool = True) -> Any:
        try:
            return super().save(commit)
        except StaleObjectError:
            self.add_error(None, self._stale_error())
            raise


async def _save_in_a_thread(form: VersionedModelForm) -> Any:
    return await sync_to_async(form.save)()


def _form_alias(form: VersionedModelForm, kwargs: dict[str, Any]) -> str:
    return router.db_for_write(type(form.instance), instance=form.instance)


async def _is_valid_in_a_thread(form: VersionedModelForm) -> bool:
    return await sync_to_async(form.is_valid)()


VersionedModelForm.asave = bridge.twin(
    _save_in_a_thread,
    "save",
    _form_alias,
    "``save()`` with its many-to-many data, natively (no thread hop) on a native alias.",
)
VersionedModelForm.ais_valid = bridge.twin(
    _is_valid_in_a_thread,
    "is_valid",
    _form_alias,
    "``is_valid()`` natively: the queries of its validation (model choice fields, unique "
    "checks) run with no thread hop on a native alias.",
)


def install() -> None:
    """Rebind the three entry points (idempotent; ``patch.install()`` lists them too).

    Done when this module is imported, that is when a model declares a ``VersionField``:
    checked saves then need the field only, so a project that has not (or not yet) added
    ``django_asyncdb`` to ``INSTALLED_APPS`` is protected all the same.
    """
    Model._do_update = do_update
    QuerySet.update = update
    QuerySet.bulk_update = bulk_update


install()
