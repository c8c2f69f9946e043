"""acount() and aexists() with learned statements (django_asyncdb.counts): Django's count
and answer, its statements, whatever the shape and the values, with Django's count()
and exists() run once per shape."""

import datetime
import random
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.db.models import QuerySet
from django.db.models.sql.query import Query
from django.test.utils import CaptureQueriesContext

from conftest import arun
from django_asyncdb import learned
from test_read_differential import aoutcome, outcome
from test_reads import _build, _random_spec
from testapp.models import Author, Book


@pytest.fixture
def djangos(monkeypatch):
    """The models Django's count() / exists() ran for (not a learned statement)."""
    ran = []
    for name in ("get_count", "has_results"):
        original = getattr(Query, name)

        def counting(self, using, _original=original, _name=name):
            ran.append((_name, self.model))
            return _original(self, using)

        monkeypatch.setattr(Query, name, counting)
    return ran


def _unsliced(spec):
    return (*spec[:3], None, *spec[4:])


def test_random_counts_match_djangos(alias, djangos, thread_hops):
    """120 querysets drawn at random (filters, orderings, values() forms,
    select_related), counted and tested for existence natively twice over: every answer
    is Django's, and the second round runs Django's methods only where a shape is not
    eligible (IS NULL, a transform, a join, an annotation) or a filter's SQL differs
    (pk__in's length)."""
    rng = random.Random(20261205)
    specs = [_unsliced(_random_spec(rng)) for _ in range(120)]
    specs += [(Book, [("pk__in", [])], (), None, "objects", (), False, False, None)] * 2  # no rows
    expected = [
        (outcome(lambda s=spec: _build(alias, s).count()), outcome(_build(alias, spec).exists))
        for spec in specs
    ]

    async def native():
        rounds = []
        for _ in range(2):
            djangos.clear()
            answers = []
            for spec in specs:
                answers.append(
                    (
                        await aoutcome(lambda s=spec: _build(alias, s).acount()),
                        await aoutcome(lambda s=spec: _build(alias, s).aexists()),
                    )
                )
            rounds.append((answers, len(djangos)))
        return rounds

    (first, _), (second, second_djangos) = arun(native)
    for spec, want, got_first, got_second in zip(specs, expected, first, second, strict=True):
        assert (got_first, got_second) == (want, want), spec
    counts = {count for (_, count), _ in expected}
    assert ("int", 0) in counts and len(counts) > 10
    assert {answer for _, (_, answer) in expected} == {("bool", True), ("bool", False)}
    assert thread_hops == []
    # Annotated querysets are counted by Django's methods (their calls: 2 a spec); of the
    # others' calls, most run learned statements.
    annotated = sum(spec[8] is not None for spec in specs)
    assert annotated > 20
    assert second_djangos - 2 * annotated < len(specs) - annotated


def _statements(alias, count):
    with CaptureQueriesContext(connections[alias]) as captured:
        result = count()
    return result, [q["sql"] for q in captured]


def test_statements_and_types_are_djangos(alias):
    """The statement each learned count runs is the one Django's count() sends for the
    value, and the count is Django's int."""
    values = [100, 300, 100000, 250]

    def make(pages):
        return Book.objects.using(alias).filter(pages__gt=pages).order_by("-id")

    expected = [_statements(alias, make(v).count) for v in values]
    expected += [_statements(alias, make(v).exists) for v in values]

    async def native():
        async def run(method, value):
            with CaptureQueriesContext(connections[alias]) as captured:
                result = await getattr(make(value), method)()
            return result, [q["sql"] for q in captured]

        counts = [await run("acount", v) for v in values]
        return counts + [await run("aexists", v) for v in values]

    got = arun(native)
    assert got == expected
    assert [type(result) for result, _ in got] == [int] * 4 + [bool] * 4


def test_counts_see_the_transaction(alias):
    """Inside an atomic block a learned count reads on the block's connection (its
    uncommitted rows); after the rollback they are gone."""

    async def native():
        queryset = Author.objects.using(alias).filter(age__gte=0)
        before = await queryset.acount()
        await queryset.acount()  # learned
        seen = []
        try:
            async with transaction.atomic(using=alias):
                await Author.objects.using(alias).acreate(
                    name="Counted",
                    email="counted@example.com",
                    age=41,
                    born=datetime.date(1985, 1, 1),
                    rating=Decimal("1.50"),
                    joined=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC),
                )
                seen.append(await Author.objects.using(alias).filter(age__gte=0).acount())
                seen.append(await Author.objects.using(alias).filter(name="Counted").aexists())
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        after = await queryset.acount()
        gone = await Author.objects.using(alias).filter(name="Counted").aexists()
        return before, seen, after, gone

    before, seen, after, gone = arun(native)
    assert seen == [before + 1, True]
    assert (after, gone) == (before, False)
    assert not connections[alias].in_atomic_block


class CountingQuerySet(QuerySet):
    def count(self):
        return 1000 + super().count()


def test_fetched_results_and_custom_count_are_djangos(alias):
    """A queryset whose rows are fetched counts them without a query; a QuerySet class
    with its own count() gets it called, shape learned or not."""
    expected = Book.objects.using(alias).filter(pages__gt=100).count()

    async def native():
        plain = Book.objects.using(alias).filter(pages__gt=100)
        await plain.acount()  # the shape is learned
        fetched = Book.objects.using(alias).filter(pages__gt=100)
        rows = [book async for book in fetched]
        with CaptureQueriesContext(connections[alias]) as captured:
            cached = await fetched.acount(), await fetched.aexists()
        custom = CountingQuerySet(Book).using(alias).filter(pages__gt=100)
        return len(rows), cached, len(captured), await custom.acount()

    rows, cached, queries, custom = arun(native)
    assert (rows, cached, queries) == (expected, (expected, expected > 0), 0)
    assert custom == 1000 + expected


def test_related_manager_counts(alias):
    """A related manager's count (its filter on the foreign key) per author, learned once."""
    expected = [
        (author.books.count(), author.books.exists())
        for author in Author.objects.using(alias).order_by("id")
    ]

    async def native():
        return [
            (await author.books.acount(), await author.books.aexists())
            async for author in Author.objects.using(alias).order_by("id")
        ]

    assert arun(native) == expected
    assert len(learned.store("count", connections[alias])) >= 1


def test_async_paginator_pages_match_djangos(alias, djangos, thread_hops):
    """Django 6's AsyncPaginator counts with acount() and lists a page with async for:
    every page as Django's sync Paginator gives it, no thread hop, and Django's count()
    runs once for the shape however many paginators count it."""
    paginator_module = pytest.importorskip("django.core.paginator")
    if not hasattr(paginator_module, "AsyncPaginator"):
        pytest.skip("AsyncPaginator is new in Django 6.0")

    def make(pages):
        return Book.objects.using(alias).filter(pages__gt=pages).order_by("id")

    expected = []
    for pages in (100, 250):
        paginator = paginator_module.Paginator(make(pages), 7)
        expected.append(
            (paginator.count, [[b.pk for b in paginator.page(n)] for n in paginator.page_range])
        )

    async def native():
        djangos.clear()
        got = []
        for pages in (100, 250):
            paginator = paginator_module.AsyncPaginator(make(pages), 7)
            numbers = await paginator.apage_range()
            listed = []
            for number in numbers:
                page = await paginator.apage(number)
                listed.append([b.pk for b in await page.aget_object_list()])
            got.append((await paginator.acount(), listed))
        return got, len(djangos)

    got, counted_by_django = arun(native)
    assert got == expected
    assert thread_hops == []
    assert counted_by_django <= 1  # (0: the shape learned by an earlier test of this run)
