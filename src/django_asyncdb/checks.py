"""System checks (``manage.py check``): settings that clash with other installed apps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core import checks

from . import conf

# Installed apps (their INSTALLED_APPS names) known to choose a code path by whether a value
# is awaitable: all run their resolvers on graphql-core, whose ``is_awaitable`` looks for
# ``__await__``. With ``await qs`` on, a resolver's queryset is awaited (a list arrives where
# a QuerySet was expected) or a coroutine is created in sync code and never awaited.
AWAITABILITY_BRANCHING_APPS = {
    "ariadne_django": "Ariadne",
    "graphene_django": "Graphene-Django",
    "strawberry.django": "Strawberry",
    "strawberry_django": "Strawberry GraphQL Django",
}


def awaitable_querysets_clashes(app_names: Iterable[str]) -> list[checks.CheckMessage]:
    """A W001 warning for each app in ``app_names`` that branches on awaitability."""
    return [
        checks.Warning(
            f"{conf.AWAITABLE_QUERYSETS} = True makes every QuerySet awaitable, and "
            f"{AWAITABILITY_BRANCHING_APPS[name]} ({name!r}) awaits what is awaitable: "
            "querysets returned by resolvers would be evaluated early and arrive as lists, or "
            "become coroutines that sync code never awaits.",
            hint=(
                f"Remove {conf.AWAITABLE_QUERYSETS} (querysets then behave as in Django) and "
                "write '[obj async for obj in qs]' where the code awaited a queryset."
            ),
            id="django_asyncdb.W001",
        )
        for name in app_names
        if name in AWAITABILITY_BRANCHING_APPS
    ]


def check_awaitable_querysets(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn when ``await qs`` is on beside an app that branches on awaitability."""
    if not conf.awaitable_querysets():
        return []
    # The setting affects every app, so look at all of them even when Django narrows the run.
    return awaitable_querysets_clashes(config.name for config in apps.get_app_configs())


def check_pooler_roles(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn where Django's own sync connections would leak a role through a pooler."""
    from django.db import connections

    messages: list[checks.CheckMessage] = []
    for alias in connections:
        settings = conf.get(alias)
        options = connections.settings[alias].get("OPTIONS") or {}
        if settings is None or not settings.pooler or not options.get("assume_role"):
            continue
        messages.append(
            checks.Warning(
                f"DATABASES[{alias!r}] has OPTIONS 'assume_role' behind a transaction-mode "
                "pooler: the package's connections set the role per transaction, but "
                "Django's own sync connections (sync views, management commands, the "
                "admin) run SET ROLE once per connection, which stays on the pooler's "
                "server connection for its other clients and is missing from later "
                "transactions of this one.",
                hint=(
                    "Give sync code a database user that has the role's rights instead of "
                    "assume_role, or connect it to PostgreSQL directly (another alias)."
                ),
                id="django_asyncdb.W002",
            )
        )
    return messages
