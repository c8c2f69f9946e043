"""Querysets evaluated with learned SELECT statements (django_asyncdb.reads): the same rows,
objects, statements and errors as Django's compiled evaluation, evaluation after
evaluation, with Django's compiler skipped once a shape is known."""

import datetime
import itertools
import random
import uuid
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.db.models import Avg, Count, Max, Min, Q, Sum
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from conftest import ALIASES, ERRORS, arun
from django_asyncdb import learned, query, reads
from snapshot import snapshot
from test_read_differential import aoutcome, outcome
from testapp.models import Author, Book

# name -> (queryset for a value, the values, one after another)
SHAPES = {
    "pk__in": (lambda a, v: Author.objects.using(a).filter(pk__in=v), [[1, 2], [3, 4], [5], []]),
    "pk as text": (lambda a, v: Author.objects.using(a).filter(pk=v), ["3", 4, "1"]),
    "name": (
        lambda a, v: Author.objects.using(a).filter(name=v),
        ["Author 01", "nobody", "Author 02"],
    ),
    "gt, ordered, sliced": (
        lambda a, v: Book.objects.using(a).filter(pages__gt=v).order_by("-pages", "id")[:3],
        [100, 300, 100000, 0],
    ),
    "two filters": (
        lambda a, v: Book.objects.using(a).filter(pages__gte=v, price__lt=100).order_by("id"),
        [0, 200, 500],
    ),
    "select_related": (
        lambda a, v: Book.objects.using(a).select_related("author", "publisher").filter(pk=v),
        [1, 2, 3],
    ),
    "all, offset": (lambda a, v: Book.objects.using(a).order_by("id")[v : v + 2], [2, 4, 2, 4]),
    # Offsets and limits, with and without each (a slice's numbers are in the SQL), and
    # an empty slice (no query).
    "slices": (
        lambda a, v: Book.objects.using(a).filter(pages__gt=0).order_by("id")[v[0] : v[1]],
        [(0, 3), (1, 3), (2, 5), (0, 2), (3, None), (1, None), (4, 4), (1, 2)],
    ),
    # (the author's key: each run reads the authors before, outside the statements compared)
    "related manager": (lambda a, author: author.books.order_by("id"), [1, 2, 3]),
    "not eligible (join)": (
        lambda a, v: Book.objects.using(a).filter(author__name=v).order_by("id"),
        ["Author 01", "Author 02"],
    ),
    "values()": (
        lambda a, v: Book.objects.using(a).filter(pages__gt=v).order_by("id").values(),
        [100, 300, 100000],
    ),
    "values_list()": (
        lambda a, v: Book.objects.using(a).filter(pages__gt=v).order_by("id").values_list(),
        [100, 300],
    ),
    # One filter, the forms and fields of values() alternating: each is its own shape.
    "values forms": (
        lambda a, v: _FORMS[v](Book.objects.using(a).filter(pages__gt=50).order_by("-id")),
        [*range(7), *range(7)],
    ),
    "distinct": (
        lambda a, v: (
            Book.objects.using(a)
            .filter(pages__gt=v)
            .order_by("author")
            .values_list("author", flat=True)
            .distinct()
        ),
        [100, 300, 0],
    ),
    # The same queryset with and without distinct(), alternating: two shapes.
    "distinct or not": (
        lambda a, v: _distinct(
            Book.objects.using(a).filter(pages__gt=0).order_by("author").values_list("author"), v
        ),
        [True, False, True, False],
    ),
    # Aggregates annotated over relations (the joins they make are part of the shape).
    "annotated": (
        lambda a, v: (
            Author.objects.using(a)
            .annotate(n=Count("books"))
            .filter(age__gte=v)
            .order_by("-n", "id")
        ),
        [20, 40, 70, 20],
    ),
    "annotated values": (
        lambda a, v: (
            Author.objects.using(a)
            .annotate(top=Max("books__price"), pages=Sum("books__pages"))
            .filter(age__gte=v)
            .order_by("id")
            .values("name", "top", "pages")
        ),
        [20, 50],
    ),
    "grouped values": (
        lambda a, v: (
            Book.objects.using(a)
            .filter(pages__gt=v)
            .values("author")
            .annotate(n=Count("id"), tags=Count("tags", distinct=True))
            .order_by("author")
        ),
        [0, 200, 400],
    ),
    "annotated, ordered by it, sliced": (
        lambda a, v: (
            Author.objects.using(a)
            .annotate(avg=Avg("books__pages"))
            .order_by("-avg", "id")
            .values_list("id", "avg")[v : v + 3]
        ),
        [1, 3, 5],
    ),
    "annotated, select_related": (
        lambda a, v: (
            Book.objects.using(a)
            .select_related("author")
            .annotate(n=Count("tags"), low=Min("tags__name"))
            .filter(pk__in=v)
            .order_by("id")
        ),
        [[1, 2], [3, 4]],
    ),
    "annotated related manager": (
        lambda a, author: author.books.annotate(n=Count("tags")).order_by("id"),
        [1, 2, 3],
    ),
    "annotated, filtered on it (not eligible)": (
        lambda a, v: Author.objects.using(a).annotate(n=Count("books")).filter(n__gte=v),
        [1, 2],
    ),
    "annotated expression (not eligible)": (
        lambda a, v: (
            Author.objects.using(a)
            .annotate(n=Count("books", filter=Q(books__pages__gt=v)))
            .order_by("id")
        ),
        [100, 300],
    ),
    # A generic relation's join has a parameter (the content type): never learned.
    "annotated over a generic relation (not eligible)": (
        lambda a, v: (
            Book.objects.using(a).annotate(n=Count("comments")).filter(pages__gt=v).order_by("id")
        ),
        [0, 200],
    ),
    "values of a join (not eligible)": (
        lambda a, v: Book.objects.using(a).filter(pk__gt=v).order_by("id").values("author__name"),
        [1, 2],
    ),
}


def _distinct(queryset, distinct):
    return queryset.distinct() if distinct else queryset


_FORMS = [
    lambda qs: qs.values("title", "author"),
    lambda qs: qs.values("pages", "title"),
    lambda qs: qs.values_list("title", "author"),
    lambda qs: qs.values_list("title", flat=True),
    lambda qs: qs.values_list("pages", "price", named=True),
    lambda qs: qs.values("extra", "published", "price"),
    lambda qs: qs.values_list("publisher", "pages"),
]


@pytest.fixture
def compiled(monkeypatch):
    """The models of the querysets Django compiles (not run with a learned statement)."""
    models = []
    original = query._compile

    async def counting(queryset):
        models.append(queryset.model)
        return await original(queryset)

    monkeypatch.setattr(query, "_compile", counting)
    return models


def _run(alias, name, evaluate):
    make, values = SHAPES[name]
    if name.endswith("related manager"):
        values = [Author.objects.using(alias).get(pk=v) for v in values]
    results = []
    with CaptureQueriesContext(connections[alias]) as captured:
        for value in values:
            results.append(evaluate(make(alias, value)))
    return results, [q["sql"] for q in captured if q["sql"].startswith("SELECT")]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_learned_reads_match_djangos(alias, name, compiled, thread_hops):
    """Each value of a shape, one after another: the same objects (related ones too) and
    the same statements as Django's compiled evaluation; Django compiles an eligible
    shape once."""
    expected = _run(alias, name, lambda qs: outcome(lambda: list(qs)))

    async def native():
        make, values = SHAPES[name]
        if name.endswith("related manager"):
            values = [await Author.objects.using(alias).aget(pk=v) for v in values]
        results = []
        compiled.clear()
        with CaptureQueriesContext(connections[alias]) as captured:
            for value in values:
                queryset = make(alias, value)
                results.append(await aoutcome(lambda qs=queryset: _alist(qs)))
        return results, [q["sql"] for q in captured if q["sql"].startswith("SELECT")]

    got = arun(native)
    assert got == expected
    assert thread_hops == []
    compiles = len(compiled)
    if "not eligible" in name:
        assert compiles == len(SHAPES[name][1])
    elif name == "pk__in":  # each length of the list is its own statement; [] matches nothing
        assert compiles <= 3
    elif name == "slices":  # with or without an offset, a limit; the empty slice
        assert compiles <= 4
    elif name == "values forms":
        assert compiles <= len(_FORMS)
    elif name == "distinct or not":
        assert compiles <= 2
    else:
        assert compiles <= 1  # (0: learned by an earlier test of this run)


async def _alist(queryset):
    return [obj async for obj in queryset]


def test_related_objects_are_djangos(alias):
    """Objects from a learned statement: select_related objects cached, field values and
    types Django's (compared by snapshot), on the second evaluation of the shape."""

    def make(pk):
        return Book.objects.using(alias).select_related("author").filter(pk=pk)

    expected = [snapshot([(b, b.author) for b in make(pk)]) for pk in (1, 2)]

    async def native():
        found = []
        for pk in (1, 2):
            books = [b async for b in make(pk)]
            found.append(snapshot([(b, b.author) for b in books]))
        return found

    assert arun(native) == expected


@pytest.mark.parametrize("vendor", ["postgresql", "mariadb"])
def test_select_for_update_outside_a_transaction_is_refused_after_learning(vendor):
    """Learned inside an atomic block, then evaluated outside one: Django's error, as
    Django raises it every time."""
    if vendor not in ALIASES:
        pytest.skip(f"{vendor} not reachable: {ERRORS[vendor]}")

    def make():
        return Author.objects.using(vendor).select_for_update().filter(pk__in=[1, 2]).order_by("pk")

    expected = outcome(lambda: list(make()))
    assert expected[:2] == ("error", TransactionManagementError.__name__)

    async def native():
        results = []
        async with transaction.atomic(using=vendor):
            results.append(len(await _alist(make())))
            results.append(len(await _alist(make())))  # learned
        results.append(await aoutcome(lambda: _alist(make())))
        return results

    assert arun(native) == [2, 2, expected]


FIELDS = ("title", "pages", "price", "published")


def test_shapes_are_bounded(alias, monkeypatch):
    monkeypatch.setattr(learned, "MAX_SHAPES", 3)

    async def native():
        await seam_prepare(alias)
        for fields in itertools.combinations(FIELDS, 2):  # each is its own shape
            await _alist(Book.objects.using(alias).values_list(*fields))
        wrapper = connections[alias]
        return len(reads.shapes_of(wrapper))

    assert arun(native) <= 3


async def seam_prepare(alias):
    from django_asyncdb import connections as seam

    return await seam.prepare(alias)


# Random querysets: filters, orderings, slices and values() forms drawn from a small
# grammar, so that shapes repeat with other values, as an application's do.
_FILTERS = {
    Book: [
        lambda r: ("pages__gt", r.randrange(90, 620)),
        lambda r: ("pages__lte", r.randrange(90, 620)),
        lambda r: ("price__lt", Decimal(f"{r.randrange(4, 36)}.{r.randrange(100):02d}")),
        lambda r: ("title__startswith", f"Book {r.randrange(5)}"),
        lambda r: ("title__icontains", f"K {r.randrange(10)}"),
        lambda r: ("pk__in", r.sample(range(1, 45), r.randrange(1, 4))),
        lambda r: ("author_id", r.randrange(1, 14)),
        lambda r: ("published__gte", datetime.date(1990 + r.randrange(30), 1, 1)),
        lambda r: ("publisher", None),  # IS NULL: not eligible
        lambda r: ("published__year", 1990 + r.randrange(30)),  # a transform: not eligible
    ],
    Author: [
        lambda r: ("age__gte", r.randrange(20, 70)),
        lambda r: ("rating__lt", Decimal(f"{r.randrange(100)}.5")),
        lambda r: ("active", r.random() < 0.5),
        lambda r: ("name__contains", f"or {r.randrange(2)}"),
        lambda r: ("uid", uuid.UUID(int=r.randrange(1, 14) * 7919)),
        lambda r: (
            "joined__lt",
            datetime.datetime(2020 + r.randrange(3), 6, 1, tzinfo=datetime.UTC),
        ),
    ],
}
_ORDERINGS = {
    Book: [(), ("id",), ("-pages", "id"), ("-published", "-id"), ("author__name", "id")],
    Author: [("id",), ("-age", "id"), ("-joined", "id"), ("mentor__name", "-id")],
}
_VALUE_FIELDS = {
    Book: ("title", "pages", "price", "published", "author", "publisher_id", "extra"),
    Author: ("name", "age", "rating", "uid", "data", "joined", "active", "born"),
}


# Annotations, one name or two: the same names with other aggregates, columns, joins and
# distinct, so that an incomplete shape would hand one the other's statement.
_ANNOTATIONS = {
    Book: [
        {"n": lambda: Count("tags")},
        {"n": lambda: Max("tags__name")},
        {"n": lambda: Min("tags__name")},
        {"n": lambda: Count("*")},
        {"n": lambda: Count("tags", distinct=True), "m": lambda: Count("publisher")},
        {"n": lambda: Count("tags"), "m": lambda: Count("publisher")},
        {"n": lambda: Count("tags", distinct=True), "m": lambda: Count("author__books")},
        {"n": lambda: Count("tags"), "m": lambda: Count("author__books")},
    ],
    Author: [
        {"n": lambda: Count("books")},
        {"n": lambda: Sum("books__pages")},
        {"n": lambda: Avg("books__pages")},
        {"n": lambda: Max("books__price")},
        {"n": lambda: Count("mentor")},
        {"n": lambda: Count("books", distinct=True), "m": lambda: Count("books__tags")},
        {"n": lambda: Count("books"), "m": lambda: Count("books__tags")},
        {"n": lambda: Count("books__tags", distinct=True), "m": lambda: Sum("books__pages")},
        {"n": lambda: Max("books__pages")},
        {"n": lambda: Min("books__pages")},
        {"n": lambda: Count("*")},
    ],
}


def _random_spec(r):
    model = r.choice([Book, Author])
    filters = [r.choice(_FILTERS[model])(r) for _ in range(r.randrange(3))]
    ordering = r.choice(_ORDERINGS[model])
    low, k = r.randrange(4), r.randrange(1, 5)
    window = r.choice([None, (0, k), (low, low + k), (low, None)])
    form = r.choice(["objects", "objects", "values", "values_list", "flat", "named"])
    fields = tuple(r.sample(_VALUE_FIELDS[model], r.randrange(1, 4)))
    related = model is Book and form == "objects" and r.random() < 0.3
    distinct = r.random() < 0.2
    annotations = None
    if r.random() < 0.35:
        annotations = r.randrange(len(_ANNOTATIONS[model]))
        if r.random() < 0.5:
            ordering = ("-n", "id")
        if r.random() < 0.5:
            fields = (*fields, "n")
    return model, filters, ordering, window, form, fields, related, distinct, annotations


def _build(alias, spec):
    model, filters, ordering, window, form, fields, related, distinct, annotations = spec
    queryset = model.objects.using(alias).filter(**dict(filters))
    if annotations is not None:
        made = _ANNOTATIONS[model][annotations]
        queryset = queryset.annotate(**{name: make() for name, make in made.items()})
    else:
        fields = tuple(name for name in fields if name != "n")
    if ordering:
        queryset = queryset.order_by(*ordering)
    if related:
        queryset = queryset.select_related("author")
    if form == "values":
        queryset = queryset.values(*fields)
    elif form == "values_list":
        queryset = queryset.values_list(*fields)
    elif form == "flat":
        queryset = queryset.values_list(fields[0], flat=True)
    elif form == "named":
        queryset = queryset.values_list(*fields, named=True)
    if distinct:
        queryset = queryset.distinct()
    if window is not None:
        queryset = queryset[window[0] : window[1]]
    return queryset


# The forms an annotated queryset is read in; the last two group differently (by the
# author; by each book, as annotate() before values() does) with the same values().
_ANNOTATED_FORMS = [
    lambda qs, made: qs.annotate(**made).order_by("-n", "id"),
    lambda qs, made: qs.annotate(**made).order_by("id").values("id", *made),
    lambda qs, made: qs.annotate(**made).order_by("n", "-id").values_list("n", flat=True)[1:4],
    lambda qs, made: (
        qs.values("author").annotate(**made).values("author", *made).order_by("author", *made)
    ),
    lambda qs, made: qs.annotate(**made).values("author", *made).order_by("author", *made),
]


def test_annotated_shapes_are_told_apart(alias, compiled, thread_hops):
    """Every annotation of the grammar in every form, over the same filter with other
    values, in turn, twice: each is Django's result, though the querysets differ only by
    their aggregate, its column, its distinct or the grouping (a shape missing any of
    them would run another's statement); Django compiles each shape once."""
    cases = [
        (model, index, form)
        for model in (Book, Author)
        for index in range(len(_ANNOTATIONS[model]))
        for form in range(len(_ANNOTATED_FORMS))
        if model is Book or form < 3
    ]

    def make(case, value):
        model, index, form = case
        made = {name: build() for name, build in _ANNOTATIONS[model][index].items()}
        base = model.objects.using(alias).filter(pk__gt=value)
        return _ANNOTATED_FORMS[form](base, made)

    values = (0, 2)
    expected = [outcome(lambda c=case, v=v: list(make(c, v))) for v in values for case in cases]

    async def native():
        rounds = []
        for _ in range(2):
            compiled.clear()
            rounds.append(
                [
                    await aoutcome(lambda c=case, v=v: _alist(make(c, v)))
                    for v in values
                    for case in cases
                ]
            )
            rounds.append(len(compiled))
        return rounds

    first, first_compiles, second, second_compiles = arun(native)
    assert first == expected
    assert second == expected
    assert len({repr(result) for result in expected}) > len(cases)  # they differ
    assert first_compiles <= len(cases)  # (fewer: learned by an earlier test of this run)
    assert second_compiles == 0
    assert thread_hops == []


def test_annotations_added_again_keep_their_columns(alias, compiled, thread_hops):
    """An annotation added again (after alias(), or after a values() that left it out)
    comes last among the columns though its place among the annotations is unchanged:
    the two querysets are two shapes, each with its own columns (one learned statement
    for both swapped the values)."""

    def make(again, value):
        queryset = Author.objects.using(alias).filter(age__gte=value)
        if again == "alias":
            queryset = queryset.values("name").alias(n=Count("*"))
            queryset = queryset.annotate(top=Max("age"), n=Count("*"))
        elif again == "values":
            queryset = queryset.annotate(n=Count("*"), top=Max("age")).values("name")
            queryset = queryset.annotate(top=Max("age"), n=Count("*"))
        else:
            queryset = queryset.values("name").annotate(n=Count("*"), top=Max("age"))
        return queryset.order_by("name")

    cases = [(again, value) for value in (20, 40) for again in (None, "alias", "values")]
    expected = [outcome(lambda c=case: list(make(*c))) for case in cases]

    async def native():
        return [await aoutcome(lambda c=case: _alist(make(*c))) for case in cases * 2]

    assert arun(native) == expected * 2
    assert len(compiled) <= 3
    assert thread_hops == []


def test_random_querysets_match_djangos(alias, compiled, thread_hops):
    """120 querysets drawn at random, evaluated natively twice over (each shape learned
    once, then reused with other values and slices): every result is Django's."""
    rng = random.Random(20261204)
    specs = [_random_spec(rng) for _ in range(120)]
    expected = [outcome(lambda s=spec: list(_build(alias, s))) for spec in specs]

    async def native():
        rounds = []
        for _ in range(2):
            compiled.clear()
            rounds.append(
                [await aoutcome(lambda s=spec: _alist(_build(alias, s))) for spec in specs]
            )
        return rounds, len(compiled)

    (first, second), compiles = arun(native)
    for spec, want, got_first, got_second in zip(specs, expected, first, second, strict=True):
        assert (got_first, got_second) == (want, want), spec
    assert thread_hops == []
    assert compiles < len(specs) // 2  # the second round mostly runs learned statements


def test_random_gets_match_djangos(alias, thread_hops):
    """aget() with random lookups, twice over (each shape learned once): the object, or
    Django's DoesNotExist / MultipleObjectsReturned with its message, every time."""
    rng = random.Random(4122026)
    specs = []
    for _ in range(100):
        model = rng.choice([Book, Author])
        lookups = dict(rng.choice(_FILTERS[model])(rng) for _ in range(rng.randrange(1, 3)))
        if rng.random() < 0.3:
            lookups = {"pk": rng.randrange(1, 45)}
        specs.append((model, lookups, model is Book and rng.random() < 0.3))

    def build(spec):
        model, _, related = spec
        queryset = model.objects.using(alias)
        return queryset.select_related("author") if related else queryset.all()

    expected = [outcome(lambda s=spec: build(s).get(**s[1])) for spec in specs]

    async def native():
        return [
            [await aoutcome(lambda s=spec: build(s).aget(**s[1])) for spec in specs]
            for _ in range(2)
        ]

    first, second = arun(native)
    for spec, want, got_first, got_second in zip(specs, expected, first, second, strict=True):
        assert (got_first, got_second) == (want, want), spec
    assert {want[0] for want in expected} == {"ok", "error"}
    assert thread_hops == []
