"""Differential test: many querysets through Django's sync ORM and the native path agree."""

import datetime
from decimal import Decimal

import pytest
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Concat, ExtractYear, Lower, RowNumber, TruncMonth

from conftest import arun
from snapshot import snapshot
from testapp.models import Author, Book, Comment, Place, Profile, Publisher, Restaurant, Tag

QUERYSETS = {
    "all": lambda a: Author.objects.using(a).order_by("id"),
    "filter_exclude": lambda a: Author.objects.using(a).filter(age__gte=30).exclude(active=False),
    "q_objects": lambda a: Author.objects.using(a).filter(Q(age__lt=35) | ~Q(name__endswith="2")),
    "f_expression": lambda a: Book.objects.using(a).filter(pages__gt=F("price") * 10),
    "lookups": lambda a: Author.objects.using(a).filter(
        name__icontains="author 1", email__startswith="author", born__year__gte=1960
    ),
    "in_range_isnull": lambda a: Book.objects.using(a).filter(
        pages__range=(150, 400), publisher__isnull=False, id__in=[1, 2, 3, 5, 8, 13, 21, 34]
    ),
    "join_lookup": lambda a: Book.objects.using(a).filter(
        author__mentor__name="Author 02", publisher__country__in=["GB", "FR"]
    ),
    "m2m_lookup": lambda a: Book.objects.using(a).filter(tags__name="sf").order_by("id"),
    "reverse_fk_lookup": lambda a: (
        Author.objects.using(a).filter(books__pages__gt=400).distinct().order_by("id")
    ),
    "annotate_count": lambda a: (
        Author.objects.using(a)
        .annotate(n=Count("books"), total=Sum("books__pages"))
        .order_by("-n", "id")
    ),
    "annotate_filter_having": lambda a: (
        Publisher.objects.using(a).annotate(n=Count("book")).filter(n__gt=5)
    ),
    "alias": lambda a: Author.objects.using(a).alias(n=Count("books")).filter(n__gte=3),
    "expressions": lambda a: (
        Author.objects.using(a)
        .annotate(
            label=Concat(Lower("name"), Value("-"), "age", output_field=CharField()),
            bucket=Case(When(age__lt=35, then=Value("young")), default=Value("old")),
            double=ExpressionWrapper(F("rating") * 2, output_field=DecimalField()),
            year=ExtractYear("born"),
        )
        .order_by("id")
    ),
    "values": lambda a: Book.objects.using(a).values("title", "author__name", "price"),
    "values_expr": lambda a: (
        Book.objects.using(a)
        .values("author_id")
        .annotate(n=Count("id"), avg=Avg("pages"))
        .order_by("author_id")
    ),
    "values_list": lambda a: Book.objects.using(a).values_list("id", "title", "published"),
    "values_list_flat": lambda a: Author.objects.using(a).values_list("email", flat=True),
    "values_list_named": lambda a: Author.objects.using(a).values_list("id", "uid", named=True),
    "dates": lambda a: Book.objects.using(a).dates("published", "year"),
    "datetimes": lambda a: Author.objects.using(a).datetimes("joined", "month"),
    "trunc_tz": lambda a: Author.objects.using(a).annotate(m=TruncMonth("joined")).order_by("id"),
    "distinct_values": lambda a: Book.objects.using(a).values("author_id").distinct(),
    "slice": lambda a: Book.objects.using(a).order_by("id")[5:12],
    "slice_step_zero_offset": lambda a: Author.objects.using(a).order_by("-age", "id")[:3],
    "subquery": lambda a: (
        Author.objects.using(a)
        .annotate(
            latest=Subquery(
                Book.objects.filter(author=OuterRef("pk"))
                .order_by("-published")
                .values("title")[:1]
            )
        )
        .order_by("id")
    ),
    "exists": lambda a: (
        Author.objects.using(a)
        .filter(Exists(Book.objects.filter(author=OuterRef("pk"), pages__gt=500)))
        .order_by("id")
    ),
    "in_subquery": lambda a: Book.objects.using(a).filter(
        author__in=Author.objects.filter(active=True).values("id")
    ),
    "union": lambda a: (
        Author.objects.using(a)
        .filter(age__lt=30)
        .union(Author.objects.filter(age__gt=55))
        .order_by("id")
    ),
    "intersection": lambda a: (
        Author.objects.using(a)
        .filter(age__lt=50)
        .intersection(Author.objects.filter(active=True))
        .order_by("id")
    ),
    "difference": lambda a: (
        Author.objects.using(a).difference(Author.objects.filter(active=True)).order_by("id")
    ),
    "union_values": lambda a: (
        Book.objects.using(a)
        .order_by()
        .values_list("title")
        .union(Publisher.objects.order_by().values_list("name"))
        .order_by("title")
    ),
    "union_with_ordered_parts": lambda a: (
        Book.objects.using(a).values_list("title").union(Publisher.objects.values_list("name"))
    ),
    "window": lambda a: (
        Book.objects.using(a)
        .annotate(rank=Window(RowNumber(), partition_by="author_id", order_by=F("pages").desc()))
        .order_by("author_id", "rank")
    ),
    "select_related": lambda a: Book.objects.using(a).select_related("author", "publisher"),
    "select_related_nested": lambda a: Book.objects.using(a).select_related("author__mentor"),
    "select_related_reverse_o2o": lambda a: (
        Author.objects.using(a).select_related("profile").order_by("id")
    ),
    "select_related_forward_o2o": lambda a: Profile.objects.using(a).select_related("author"),
    "defer": lambda a: Author.objects.using(a).defer("data", "email").order_by("id"),
    "only": lambda a: Book.objects.using(a).only("title", "author__name").select_related("author"),
    "mti_child": lambda a: Restaurant.objects.using(a).order_by("id"),
    "mti_parent": lambda a: Place.objects.using(a).order_by("id"),
    "mti_parent_select_child": lambda a: (
        Place.objects.using(a).select_related("restaurant").order_by("id")
    ),
    "json_key": lambda a: Author.objects.using(a).filter(data__level=1).order_by("id"),
    "json_nested": lambda a: Author.objects.using(a).filter(data__nested__k__gte=6),
    "json_has_key": lambda a: Book.objects.using(a).filter(extra__has_key="signed"),
    "json_isnull": lambda a: Book.objects.using(a).filter(extra__isnull=True),
    "json_values": lambda a: Author.objects.using(a).values("data__level", "data").order_by("id"),
    "uuid_decimal_date": lambda a: Author.objects.using(a).filter(
        uid__in=[Author(uid=None).uid, *[__import__("uuid").UUID(int=i * 7919) for i in (2, 3)]],
        rating__gte=Decimal("10.00"),
        born__lt=datetime.date(1990, 1, 1),
    ),
    "tz_datetime_filter": lambda a: Author.objects.using(a).filter(
        joined__gte=datetime.datetime(2020, 6, 1, tzinfo=datetime.UTC)
    ),
    "datetime_lookups": lambda a: Author.objects.using(a).filter(
        joined__hour__gte=1, joined__date__lt=datetime.date(2021, 1, 1)
    ),
    "coalesce_nulls": lambda a: (
        Book.objects.using(a)
        .annotate(p=Coalesce("publisher__name", Value("none")))
        .values_list("id", "p")
    ),
    "aggregate_in_annotation": lambda a: (
        Tag.objects.using(a)
        .annotate(avg_price=Avg("books__price"), mx=Max("books__pages"), mn=Min("books__pages"))
        .order_by("id")
    ),
    "empty_in": lambda a: Author.objects.using(a).filter(id__in=[]),
    "none": lambda a: Author.objects.using(a).none(),
    "extra_select": lambda a: Author.objects.using(a).extra(select={"double_age": "age * 2"}),
    "reverse_order": lambda a: Book.objects.using(a).order_by("title").reverse(),
    "prefetch_reverse_fk": lambda a: (
        Author.objects.using(a).prefetch_related("books").order_by("id")
    ),
    "prefetch_m2m": lambda a: Book.objects.using(a).prefetch_related("tags"),
    "prefetch_m2m_reverse": lambda a: Tag.objects.using(a).prefetch_related("books").order_by("id"),
    "prefetch_nested": lambda a: (
        Author.objects.using(a)
        .prefetch_related("books__tags", "books__publisher", "mentor__profile")
        .order_by("id")
    ),
    "prefetch_object_to_attr": lambda a: (
        Author.objects.using(a)
        .prefetch_related(
            Prefetch(
                "books",
                queryset=Book.objects.filter(pages__gt=300).order_by("-pages"),
                to_attr="long_books",
            )
        )
        .order_by("id")
    ),
    "prefetch_forward": lambda a: Book.objects.using(a).prefetch_related("author", "publisher"),
    "prefetch_reverse_o2o": lambda a: (
        Author.objects.using(a).prefetch_related("profile").order_by("id")
    ),
    "prefetch_generic_fk": lambda a: (
        Comment.objects.using(a).prefetch_related("target").order_by("id")
    ),
    "prefetch_generic_relation": lambda a: Book.objects.using(a).prefetch_related("comments"),
    "prefetch_with_values_error": lambda a: (
        Book.objects.using(a).values("id").prefetch_related("tags")
    ),
    "int_cast": lambda a: (
        Book.objects.using(a)
        .annotate(half=ExpressionWrapper(F("pages") / 2, output_field=IntegerField()))
        .values_list("half", flat=True)
    ),
}


def _normalize(name, alias, result):
    """Results of an unordered queryset compare as a multiset."""
    data = snapshot(result)
    if isinstance(result, list) and not QUERYSETS[name](alias).ordered:
        return (data[0], sorted(data[1], key=repr))
    return data


def outcome(func):
    """The result of ``func()`` as comparable data, or the error it raised."""
    try:
        return ("ok", snapshot(func()))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


async def aoutcome(func):
    """Like :func:`outcome` for a coroutine function."""
    try:
        return ("ok", snapshot(await func()))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def _sync(name, alias):
    return outcome(lambda: _normalize(name, alias, list(QUERYSETS[name](alias))))


@pytest.mark.parametrize("name", sorted(QUERYSETS))
def test_opted_in_await_matches_sync(alias, name, thread_hops, awaitable_querysets):
    expected = _sync(name, alias)

    async def native():
        async def evaluate():
            return _normalize(name, alias, await QUERYSETS[name](alias))

        return await aoutcome(evaluate)

    assert arun(native) == expected
    assert thread_hops == []


@pytest.mark.parametrize("name", sorted(QUERYSETS))
def test_async_for_and_aiterator_match_sync(alias, name, thread_hops):
    expected = _sync(name, alias)

    async def by_for():
        return _normalize(name, alias, [obj async for obj in QUERYSETS[name](alias)])

    async def by_iterator():
        qs = QUERYSETS[name](alias)
        return _normalize(name, alias, [obj async for obj in qs.aiterator(chunk_size=3)])

    async def native():
        return await aoutcome(by_for), await aoutcome(by_iterator)

    assert expected[0] == "ok" or name == "union_with_ordered_parts"
    for_result, iterator_result = arun(native)
    assert for_result == expected
    assert iterator_result == expected
    assert thread_hops == []


@pytest.mark.parametrize("name", ["prefetch_m2m", "prefetch_nested", "prefetch_object_to_attr"])
def test_prefetching_querysets_fetch_their_own_rows_natively(alias, name, bridge_runs):
    """``async for`` over a queryset with prefetch_related: its own rows come from the
    native read path; only Django's prefetching runs in the bridge (as _fetch_all runs it,
    after the rows)."""
    expected = _sync(name, alias)

    async def native():
        async def evaluate():
            return _normalize(name, alias, [obj async for obj in QUERYSETS[name](alias)])

        return await aoutcome(evaluate)

    assert arun(native) == expected
    assert bridge_runs == ["_prefetch_related_objects"]
