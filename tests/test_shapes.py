"""aget() with learned statements: the same objects and errors as Django's get(), call
after call, and Django's planning skipped once a shape is known."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.db import connections
from django.db.models import Prefetch
from django.db.models.query import QuerySet
from django.db.models.sql.query import Query

from conftest import arun
from django_asyncdb import shapes
from test_read_differential import aoutcome, outcome
from testapp.models import Author, Book, Publisher, Restaurant

UTC = datetime.UTC
A = Author.objects


class OverridingQuerySet(QuerySet):
    """A custom QuerySet whose filter() adds a condition: it must keep Django's path."""

    def filter(self, *args, **kwargs):
        return super().filter(*args, **kwargs).filter(active=True)


# name -> (queryset factory, successive keyword sets, whether calls that find their row
# after the first skip Django's planning, or which calls do)
CASES = {
    "pk": (
        lambda a: A.using(a),
        [{"pk": 3}, {"pk": 4}, {"pk": 999}, {"pk": 7}, {"pk": "abc"}, {"pk": 12}],
        True,
    ),
    "pk_as_text": (lambda a: A.using(a), [{"pk": "5"}, {"pk": "6"}, {"pk": "x"}], True),
    "id_exact": (lambda a: A.using(a), [{"id__exact": 2}, {"id__exact": 9}], True),
    "two_fields": (
        lambda a: A.using(a),
        [
            {"name": "Author 01", "age": 32},
            {"name": "Author 02", "age": 39},
            {"name": "Author 02", "age": 1},
        ],
        True,
    ),
    "bool_changes_sql": (
        lambda a: A.using(a),
        [
            {"name": "Author 01", "active": True},
            {"name": "Author 04", "active": False},
            {"name": "Author 04", "active": True},
            {"name": "Author 05", "active": True},
        ],
        # Django 5.2 compiles True to the bare column and False to NOT column (another
        # statement); 6.x may compare to a parameter. None: either way.
        (False, None, False, True),
    ),
    "multiple": (lambda a: A.using(a), [{"active": True}, {"active": False}], False),
    "iexact": (
        lambda a: A.using(a),
        [{"email__iexact": "AUTHOR4@example.com"}, {"email__iexact": "author7@EXAMPLE.com"}],
        True,
    ),
    "startswith": (
        lambda a: A.using(a),
        [
            {"email__startswith": "author10"},
            {"email__startswith": "author11"},
            {"email__startswith": "author1"},
        ],
        True,
    ),
    "year_transform": (
        lambda a: A.using(a),
        [{"born__year": 1953}, {"born__year": 1980}, {"born__year": 1900}],
        True,
    ),
    "uuid": (
        lambda a: A.using(a),
        [{"uid": uuid.UUID(int=3 * 7919)}, {"uid": uuid.UUID(int=8 * 7919)}],
        True,
    ),
    "decimal": (
        lambda a: A.using(a),
        [{"rating": Decimal("74.26")}, {"rating": Decimal("11.39")}],
        True,
    ),
    "date": (
        lambda a: A.using(a),
        [{"born": datetime.date(1953, 2, 6)}, {"born": datetime.date(1956, 3, 11)}],
        True,
    ),
    "aware_datetime": (
        lambda a: A.using(a),
        [
            {"joined": datetime.datetime(2020, 2, 2, 10, 1, tzinfo=UTC)},
            {"joined": datetime.datetime(2020, 4, 4, 10, 3, tzinfo=UTC)},
        ],
        True,
    ),
    "foreign_key_value": (
        lambda a: Book.objects.using(a),
        [{"author": 11, "title": "Book 34"}, {"author": 9, "title": "Book 27"}],
        True,
    ),
    "across_join": (
        lambda a: Book.objects.using(a),
        [
            {"author__name": "Author 06", "pages": 137},
            {"author__name": "Author 11", "pages": 174},
        ],
        True,
    ),
    "mti_child": (lambda a: Restaurant.objects.using(a), [{"pk": 3}, {"pk": 5}, {"pk": 2}], True),
    "ordered_model": (lambda a: Publisher.objects.using(a), [{"pk": 1}, {"pk": 4}], True),
    "filtered_first": (
        lambda a: A.using(a).filter(active=True),
        [{"pk": 3}, {"pk": 4}, {"pk": 5}],
        False,
    ),
    "select_related": (
        lambda a: Book.objects.using(a).select_related("author"),
        [{"pk": 3}, {"pk": 4}, {"pk": 999}, {"pk": 5}],
        True,
    ),
    "select_related_nested_nullable": (
        lambda a: Book.objects.using(a).select_related("author__mentor", "publisher"),
        [{"pk": 3}, {"pk": 8}, {"pk": 12}],
        True,
    ),
    "prefetch_related": (
        lambda a: A.using(a).prefetch_related("books", "books__tags"),
        [{"pk": 3}, {"pk": 4}, {"pk": 999}, {"pk": 9}],
        True,
    ),
    "select_and_prefetch": (
        lambda a: Book.objects.using(a).select_related("author").prefetch_related("tags"),
        [{"pk": 3}, {"pk": 4}, {"pk": 10}],
        True,
    ),
    "prefetch_object": (
        lambda a: A.using(a).prefetch_related(Prefetch("books")),
        [{"pk": 3}, {"pk": 4}],
        False,
    ),
    "only": (lambda a: A.using(a).only("name"), [{"pk": 3}, {"pk": 4}], False),
    "custom_queryset": (
        lambda a: OverridingQuerySet(model=Author, using=a),
        [{"pk": 3}, {"pk": 4}, {"pk": 5}],
        False,
    ),
    "none_value": (
        lambda a: A.using(a),
        [{"mentor": None, "pk": 2}, {"mentor": None, "pk": 3}],
        False,
    ),
}


def _snapshot_get(queryset, kwargs):
    return outcome(lambda: queryset.get(**kwargs))


@pytest.mark.parametrize("name", sorted(CASES))
def test_aget_matches_get_call_after_call(alias, name, thread_hops, monkeypatch):
    make, calls, cached = CASES[name]
    expected = [_snapshot_get(make(alias), kwargs) for kwargs in calls]

    # Django's planning of the queried model's statement (prefetching plans its own).
    planned = []
    original_add_q = Query.add_q
    model = make(alias).model

    def counting_add_q(self, *args, **kwargs):
        if self.model is model:
            planned.append(self.model)
        return original_add_q(self, *args, **kwargs)

    monkeypatch.setattr(Query, "add_q", counting_add_q)

    async def native():
        results = []
        for kwargs in calls:
            before = len(planned)
            results.append(await aoutcome(lambda kwargs=kwargs: make(alias).aget(**kwargs)))
            results.append(len(planned) - before)
        return results

    got = arun(native)
    assert got[::2] == expected
    assert thread_hops == []
    planning = got[1::2]
    if isinstance(cached, tuple):
        hits = [plans == 0 for plans in planning]
        assert [
            hit if want is not None else None for hit, want in zip(hits, cached, strict=True)
        ] == list(cached), planning
    elif cached:
        # Django plans the first call of each value type; a found row reuses the plan.
        hits = [
            plans == 0
            for plans, result in zip(planning, expected, strict=True)
            if result[0] == "ok"
        ]
        assert hits[1:] and all(hits[1:]), planning
    else:
        assert all(plans > 0 for plans in planning), planning


def test_same_shape_different_database(alias):
    """A shape is learned per database connection: the other vendor plans its own."""

    async def native():
        first = await A.using(alias).aget(pk=2)
        known = shapes.shapes_of(connections[alias])
        return first.name, [key[1] for key, shape in known.items() if shape is not None]

    name, aliases = arun(native)
    assert name == "Author 02"
    assert set(aliases) == {alias}


def test_learned_statement_is_djangos(alias):
    """The cached SQL is the statement Django compiled for get()."""

    async def native():
        await A.using(alias).aget(pk=1)
        key = shapes.shape_key(A.using(alias), [("pk", 1)])
        return shapes.shapes_of(connections[alias])[key]

    shape = arun(native)
    clone = A.using(alias).filter(pk=1).order_by()
    clone.query.set_limits(high=21)
    sql, params = clone.query.get_compiler(alias).as_sql()
    assert shape.sql == sql
    assert shapes.lookup_params(shape, [("pk", 1)]) == list(params)
