"""Terminal methods (aget, afirst, acount, ...) agree with their sync twins, errors included."""

import pytest
from django.db.models import Avg, Count, Max, Sum

from conftest import arun
from test_read_differential import aoutcome, outcome
from testapp.models import Author, Book, Publisher, Restaurant

A = Author.objects
CASES = {
    "get": ("get", lambda a: A.using(a), lambda a: (), {"pk": 3}),
    "get_filters": (
        "get",
        lambda a: A.using(a).filter(age__gt=20),
        lambda a: (),
        {"name": "Author 05"},
    ),
    "get_missing": ("get", lambda a: A.using(a), lambda a: (), {"pk": 999}),
    "get_multiple": ("get", lambda a: A.using(a), lambda a: (), {"age__gte": 0}),
    "get_many_over_limit": ("get", lambda a: Book.objects.using(a), lambda a: (), {}),
    "get_union_filter": (
        "get",
        lambda a: A.using(a).filter(pk=1).union(A.filter(pk=2)),
        lambda a: (),
        {"pk": 1},
    ),
    "get_invalid_lookup": ("get", lambda a: A.using(a), lambda a: (), {"nope__exact": 1}),
    "get_mti": ("get", lambda a: Restaurant.objects.using(a), lambda a: (), {"pk": 3}),
    "first": ("first", lambda a: Book.objects.using(a), lambda a: (), {}),
    "first_unordered": ("first", lambda a: A.using(a).filter(age__gt=40), lambda a: (), {}),
    "first_empty": ("first", lambda a: A.using(a).filter(pk=-1), lambda a: (), {}),
    "last": ("last", lambda a: Book.objects.using(a).filter(pages__lt=300), lambda a: (), {}),
    "last_unordered": ("last", lambda a: A.using(a), lambda a: (), {}),
    "earliest": ("earliest", lambda a: A.using(a), lambda a: ("born",), {}),
    "latest_two_fields": (
        "latest",
        lambda a: Book.objects.using(a),
        lambda a: ("published", "id"),
        {},
    ),
    "latest_empty": ("latest", lambda a: A.using(a).filter(pk=-1), lambda a: ("born",), {}),
    "earliest_sliced": ("earliest", lambda a: A.using(a)[:2], lambda a: ("born",), {}),
    "count": ("count", lambda a: A.using(a), lambda a: (), {}),
    "count_filtered": (
        "count",
        lambda a: Book.objects.using(a).filter(tags__name="sf"),
        lambda a: (),
        {},
    ),
    "count_distinct": (
        "count",
        lambda a: Book.objects.using(a).values("author").distinct(),
        lambda a: (),
        {},
    ),
    "count_sliced": ("count", lambda a: A.using(a).order_by("id")[3:7], lambda a: (), {}),
    "count_union": (
        "count",
        lambda a: A.using(a).filter(pk__lt=4).union(A.filter(pk__gt=10)),
        lambda a: (),
        {},
    ),
    "count_none": ("count", lambda a: A.using(a).none(), lambda a: (), {}),
    "count_annotated": (
        "count",
        lambda a: A.using(a).annotate(n=Count("books")).filter(n__gt=2),
        lambda a: (),
        {},
    ),
    "exists": ("exists", lambda a: A.using(a).filter(age__gt=60), lambda a: (), {}),
    "exists_true": (
        "exists",
        lambda a: Book.objects.using(a).filter(pages__gt=100),
        lambda a: (),
        {},
    ),
    "exists_empty_in": ("exists", lambda a: A.using(a).filter(pk__in=[]), lambda a: (), {}),
    "contains": (
        "contains",
        lambda a: A.using(a).filter(age__lt=50),
        lambda a: (A.using(a).get(pk=2),),
        {},
    ),
    "contains_other_model": ("contains", lambda a: A.using(a), lambda a: (Publisher(pk=1),), {}),
    "contains_unsaved": ("contains", lambda a: A.using(a), lambda a: (Author(),), {}),
    "contains_values": (
        "contains",
        lambda a: A.using(a).values("id"),
        lambda a: (Author(pk=1),),
        {},
    ),
    "aggregate": (
        "aggregate",
        lambda a: Book.objects.using(a),
        lambda a: (Avg("pages"),),
        {"total": Sum("price"), "most": Max("published"), "n": Count("id")},
    ),
    "aggregate_empty": (
        "aggregate",
        lambda a: Book.objects.using(a).filter(pk=-1),
        lambda a: (),
        {"s": Sum("pages"), "n": Count("id")},
    ),
    "aggregate_over_annotation": (
        "aggregate",
        lambda a: A.using(a).annotate(n=Count("books")),
        lambda a: (),
        {"avg_books": Avg("n")},
    ),
    "aggregate_sliced": (
        "aggregate",
        lambda a: Book.objects.using(a).order_by("id")[:5],
        lambda a: (),
        {"s": Sum("pages")},
    ),
    "aggregate_no_args": ("aggregate", lambda a: Book.objects.using(a), lambda a: (), {}),
    "aggregate_not_aggregate": (
        "aggregate",
        lambda a: Book.objects.using(a),
        lambda a: (),
        {"x": "pages"},
    ),
    "in_bulk": ("in_bulk", lambda a: A.using(a), lambda a: ([1, 2, 3, 999],), {}),
    "in_bulk_all": ("in_bulk", lambda a: Publisher.objects.using(a), lambda a: (), {}),
    "in_bulk_field": (
        "in_bulk",
        lambda a: A.using(a),
        lambda a: (["author4@example.com"],),
        {"field_name": "email"},
    ),
    "in_bulk_empty": ("in_bulk", lambda a: A.using(a), lambda a: ([],), {}),
    "in_bulk_not_unique": (
        "in_bulk",
        lambda a: A.using(a),
        lambda a: ([30],),
        {"field_name": "age"},
    ),
    "in_bulk_sliced": ("in_bulk", lambda a: A.using(a)[:2], lambda a: ([1],), {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_native_terminal_matches_sync(alias, case, thread_hops):
    method, build_qs, build_args, kwargs = CASES[case]
    args = build_args(alias)
    expected = outcome(lambda: getattr(build_qs(alias), method)(*args, **kwargs))

    async def native():
        return await getattr(build_qs(alias), "a" + method)(*args, **kwargs)

    assert arun(aoutcome, native) == expected
    assert thread_hops == []


def test_explain_runs_natively(alias):
    async def native():
        return await Book.objects.using(alias).filter(pages__gt=200).aexplain()

    text = arun(native)
    assert isinstance(text, str)
    assert text
    assert text.count("\n") >= 0
    # Each vendor's plan of a full scan of testapp_book.
    expected_word = {"postgresql": "Seq Scan", "mariadb": "testapp_book ALL"}.get(alias, "SCAN")
    assert expected_word in text
