"""``await qs``: off by default (querysets look to other code as Django's do), on by opt-in.

Libraries choose code paths by whether a value is awaitable (graphql-core's
``is_awaitable``, "await it if awaitable" resolvers); by default a queryset must give
them the answer Django gives.
"""

import inspect
from collections.abc import Awaitable

import graphql
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models.query import QuerySet, RawQuerySet
from django.test import override_settings
from graphql.pyutils import is_awaitable

from conftest import arun
from snapshot import snapshot
from testapp.models import Author, Book, Tag

# Querysets of every kind a resolver may return: (name, queryset factory on an alias).
KINDS = {
    "manager": lambda alias: Author.objects.using(alias).all(),
    "filtered": lambda alias: Author.objects.using(alias).filter(pk__lte=3).order_by("pk"),
    "reverse_fk": lambda alias: Author.objects.using(alias).get(pk=2).books.all(),
    "many_to_many": lambda alias: Book.objects.using(alias).get(pk=1).tags.order_by("pk"),
    "reverse_many_to_many": lambda alias: Tag.objects.using(alias).get(pk=1).books.all(),
    "generic": lambda alias: Book.objects.using(alias).get(pk=1).comments.order_by("pk"),
    "values": lambda alias: Book.objects.using(alias).order_by("pk").values("pk", "title"),
    "values_list": lambda alias: Book.objects.using(alias).order_by("pk").values_list("title"),
    "flat": lambda alias: Author.objects.using(alias).order_by("pk").values_list("pk", flat=True),
    "raw": lambda alias: Author.objects.using(alias).raw("SELECT * FROM testapp_author"),
}


def _awaitability(queryset):
    return (
        inspect.isawaitable(queryset),
        isinstance(queryset, Awaitable),
        is_awaitable(queryset),
        hasattr(queryset, "__await__"),
    )


# Default mode: Django's behaviour ---------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_querysets_are_not_awaitable_by_default(alias, kind):
    assert _awaitability(KINDS[kind](alias)) == (False, False, False, False)
    assert "__await__" not in vars(QuerySet) and "__await__" not in vars(RawQuerySet)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_await_raises_pythons_type_error_as_in_django(alias, kind):
    queryset = KINDS[kind](alias)

    async def main():
        await queryset

    name = type(queryset).__name__
    with pytest.raises(TypeError, match=rf"{name}.*(can't be used in 'await'|can't be awaited)"):
        arun(main)
    assert queryset._result_cache is None  # nothing ran


async def resolve(value):
    """What GraphQL stacks do with a resolver's value: await it only if it is awaitable."""
    return await value if inspect.isawaitable(value) else value


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_await_if_awaitable_keeps_the_lazy_queryset_by_default(alias, kind, thread_hops):
    queryset = KINDS[kind](alias)
    resolved = arun(resolve, queryset)
    assert resolved is queryset and resolved._result_cache is None
    assert thread_hops == []


def _books_schema():
    """A GraphQL page object whose fields need the QuerySet itself (as pagination does)."""

    async def count(page, info):
        return await page.acount()

    async def titles(page, info):
        return [title async for title in page.values_list("title", flat=True)]

    page = graphql.GraphQLObjectType(
        "BookPage",
        {
            "count": graphql.GraphQLField(graphql.GraphQLInt, resolve=count),
            "titles": graphql.GraphQLField(
                graphql.GraphQLList(graphql.GraphQLString), resolve=titles
            ),
        },
    )
    query = graphql.GraphQLObjectType(
        "Query",
        {
            "books": graphql.GraphQLField(
                page,
                args={"alias": graphql.GraphQLArgument(graphql.GraphQLString)},
                resolve=lambda root, info, alias: Book.objects.using(alias).filter(pages__gt=200),
            )
        },
    )
    return graphql.GraphQLSchema(query)


QUERY = "query ($alias: String) { books(alias: $alias) { count titles } }"


def _sync_page(alias):
    books = Book.objects.using(alias).filter(pages__gt=200)
    titles = list(books.values_list("title", flat=True))
    return {"books": {"count": books.count(), "titles": titles}}


def test_graphql_core_gets_the_queryset_by_default(alias, thread_hops):
    async def main():
        return await graphql.graphql(_books_schema(), QUERY, variable_values={"alias": alias})

    result = arun(main)
    assert result.errors is None
    assert result.data == _sync_page(alias)
    assert thread_hops == []


# Opt-in: ASYNCDB_AWAITABLE_QUERYSETS = True -------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_opted_in_querysets_are_awaitable(alias, kind, awaitable_querysets):
    assert _awaitability(KINDS[kind](alias)) == (True, True, True, True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_opted_in_await_gives_the_sync_rows_natively(alias, kind, thread_hops, awaitable_querysets):
    expected = list(KINDS[kind](alias))
    queryset = KINDS[kind](alias)

    async def main():
        return await queryset

    result = arun(main)
    assert type(result) is list
    assert snapshot(result) == snapshot(expected)
    assert thread_hops == []


def test_opted_in_await_if_awaitable_evaluates_early(alias, awaitable_querysets):
    """The trade-off of the opt-in: code that awaits what is awaitable gets a list."""
    queryset = KINDS["filtered"](alias)
    assert arun(resolve, queryset) == list(KINDS["filtered"](alias))


def test_opted_in_graphql_core_receives_a_list_where_a_queryset_was_returned(
    alias, awaitable_querysets
):
    async def main():
        return await graphql.graphql(_books_schema(), QUERY, variable_values={"alias": alias})

    result = arun(main)
    assert result.data == {"books": {"count": None, "titles": None}}
    assert sorted(str(error.message) for error in result.errors) == [
        "'list' object has no attribute 'acount'",
        "'list' object has no attribute 'values_list'",
    ]


# The setting ---------------------------------------------------------------------------


def test_the_setting_installs_and_removes_await():
    from django_asyncdb import query

    assert not hasattr(QuerySet, "__await__")
    with override_settings(ASYNCDB_AWAITABLE_QUERYSETS=True):
        assert vars(QuerySet)["__await__"] is query.queryset_await
        assert vars(RawQuerySet)["__await__"] is query.raw_await
        with override_settings(ASYNCDB_AWAITABLE_QUERYSETS=False):
            assert not hasattr(QuerySet, "__await__")
        assert hasattr(QuerySet, "__await__")
    assert not hasattr(QuerySet, "__await__") and not hasattr(RawQuerySet, "__await__")


def test_isinstance_awaitable_follows_the_setting_both_ways(alias):
    """ABCs cache isinstance answers per class: a change must leave no stale answer."""
    queryset = KINDS["manager"](alias)
    assert not isinstance(queryset, Awaitable)
    with override_settings(ASYNCDB_AWAITABLE_QUERYSETS=True):
        assert isinstance(queryset, Awaitable) and inspect.isawaitable(queryset)
    assert not isinstance(queryset, Awaitable) and not inspect.isawaitable(queryset)


def test_ready_reads_the_setting():
    from django.apps import apps

    from django_asyncdb import patch

    config = apps.get_app_config("django_asyncdb")
    with override_settings(ASYNCDB_AWAITABLE_QUERYSETS=True):
        patch.set_awaitable_querysets(False)
        config.ready()
        assert hasattr(QuerySet, "__await__")
    config.ready()
    assert not hasattr(QuerySet, "__await__")


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_setting_must_be_a_bool(value):
    with (
        pytest.raises(ImproperlyConfigured, match="ASYNCDB_AWAITABLE_QUERYSETS must be True"),
        override_settings(ASYNCDB_AWAITABLE_QUERYSETS=value),
    ):
        pass  # pragma: no cover - entering raises
    assert not hasattr(QuerySet, "__await__")
