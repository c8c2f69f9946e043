"""System checks: ``await qs`` beside apps that branch on awaitability."""

from django.core import checks

from django_asyncdb.checks import (
    AWAITABILITY_BRANCHING_APPS,
    awaitable_querysets_clashes,
    check_awaitable_querysets,
)


def test_the_check_is_registered():
    assert check_awaitable_querysets in checks.registry.registry.get_checks()


def test_no_warning_by_default():
    assert check_awaitable_querysets() == []
    assert [m for m in checks.run_checks() if m.id == "django_asyncdb.W001"] == []


def test_no_warning_when_opted_in_without_such_an_app(awaitable_querysets):
    assert check_awaitable_querysets() == []
    assert [m for m in checks.run_checks() if m.id == "django_asyncdb.W001"] == []


def test_a_warning_per_app_that_branches_on_awaitability():
    installed = ["django.contrib.auth", "strawberry_django", "graphene_django", "testapp"]
    messages = awaitable_querysets_clashes(installed)
    assert [(m.id, m.level) for m in messages] == [("django_asyncdb.W001", checks.WARNING)] * 2
    assert "'strawberry_django'" in messages[0].msg and "'graphene_django'" in messages[1].msg
    for message in messages:
        assert "ASYNCDB_AWAITABLE_QUERYSETS = True" in message.msg
        assert "async for" in message.hint


def test_the_known_apps_are_installed_app_names():
    """The names users put in INSTALLED_APPS, not distribution names."""
    assert {"strawberry_django", "graphene_django"} <= set(AWAITABILITY_BRANCHING_APPS)
    assert all("-" not in name for name in AWAITABILITY_BRANCHING_APPS)
