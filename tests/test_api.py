"""The public surface and the patch points."""

import django
from django.db import transaction
from django.db.models.query import QuerySet

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
        for owner, name, _ in patch._installed
        if (owner, name) not in patch.NEW_ATTRIBUTES and not hasattr(owner, name)
    ]
    assert missing == [], f"Django {django.get_version()} moved: {missing}"


def test_install_is_idempotent():
    before = QuerySet.aget
    patch.install()
    assert QuerySet.aget is before
