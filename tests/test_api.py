"""The public surface and the patch points."""

import django
from django.db import transaction
from django.db.models.query import QuerySet
from django.test import override_settings

import django_asyncdb
from django_asyncdb import patch


def test_all_is_sorted_and_complete():
    assert django_asyncdb.__all__ == sorted(django_asyncdb.__all__)
    for name in django_asyncdb.__all__:
        assert getattr(django_asyncdb, name) is not None


def test_every_patch_point_is_installed():
    assert patch._installed
    for owner, name, replacement in patch._installed:
        assert vars(owner).get(name) is replacement, name
    for name in patch.ASYNC_TRANSACTION_FUNCTIONS:
        assert getattr(transaction, name) is getattr(django_asyncdb, name)


def test_patch_points_exist_in_this_django():
    """Fails loudly if a Django upgrade moves an entry point we rebind."""
    missing = [
        f"{getattr(owner, '__qualname__', owner.__name__)}.{name}"
        for owner, name, _ in [*patch._installed, *patch.AWAITABLE_PATCHES]
        if (owner, name) not in patch.NEW_ATTRIBUTES and not hasattr(owner, name)
    ]
    assert missing == [], f"Django {django.get_version()} moved: {missing}"


def test_opt_in_patches_are_new_and_absent_by_default():
    """``await qs`` is opt-in: Django has no ``__await__``, and by default neither do we."""
    for owner, name, _ in patch.AWAITABLE_PATCHES:
        assert (owner, name) in patch.NEW_ATTRIBUTES
        assert (owner, name) not in {(o, n) for o, n, _ in patch._installed}
        assert not hasattr(owner, name), f"{owner.__qualname__}.{name}"
    with override_settings(ASYNCDB_AWAITABLE_QUERYSETS=True):
        for owner, name, replacement in patch.AWAITABLE_PATCHES:
            assert vars(owner).get(name) is replacement, name


def test_install_is_idempotent():
    before = QuerySet.aget
    patch.install()
    assert QuerySet.aget is before
