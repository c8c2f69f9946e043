"""One-object inserts with learned SQL (django_asyncdb.inserts): the same statement, rows,
values and errors as Django's own insert, save after save, with Django's SQL assembly
skipped once a shape is known, and Django's path kept wherever the SQL could differ."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.db import connections
from django.db.models import F, Value
from django.db.models.functions import Upper
from django.db.models.sql.compiler import SQLInsertCompiler

from conftest import arun
from django_asyncdb import inserts, learned
from test_read_differential import aoutcome, outcome
from testapp.models import Author, Stamp, Team

UTC = datetime.UTC
PREFIX = "inserts-"


def _author_fields(n, **extra):
    return {
        "name": f"{PREFIX}{n}",
        "email": f"{PREFIX}{n}@example.com",
        "age": 30 + n,
        "born": datetime.date(1990, 1, 1 + n),
        "rating": Decimal("4.25") + n,
        "uid": uuid.UUID(int=1000 + n),
        "data": {"n": n, "tags": ["a", "b"]},
        "joined": datetime.datetime(2024, 5, 1, 12, n, tzinfo=UTC),
        **extra,
    }


def _plain(value):
    """A parameter as a comparable value (PostgreSQL's JSON adapter wraps the object)."""
    return getattr(value, "obj", value)


@pytest.fixture
def statements(monkeypatch):
    """Every (sql, params) an insert compiler produced, and how often Django's own
    as_sql ran."""
    made = []
    djangos = []
    installed = SQLInsertCompiler.as_sql
    original = inserts._original

    def recording(self):
        result = installed(self)
        made.extend((sql, tuple(_plain(p) for p in params)) for sql, params in result)
        return result

    def counting(self):
        djangos.append(self.query.model)
        return original(self)

    monkeypatch.setattr(SQLInsertCompiler, "as_sql", recording)
    monkeypatch.setattr(inserts, "_original", counting)
    return made, djangos


@pytest.fixture
def cleanup(alias):
    yield
    Author.objects.using(alias).filter(name__startswith=PREFIX).delete()
    Team.objects.using(alias).filter(name__istartswith=PREFIX).delete()
    Stamp.objects.using(alias).filter(label__startswith=PREFIX).delete()


def _row(author):
    return {
        name: getattr(author, name)
        for name in ("name", "email", "age", "born", "rating", "uid", "data", "joined", "active")
    }


def test_repeated_inserts_send_djangos_statement(alias, statements, cleanup, thread_hops):
    """Five inserts of one shape: each sends the statement Django's sync insert sends for
    the same values; Django's as_sql runs for the first only; the rows read back equal."""
    made, djangos = statements
    for n in range(5):
        Author.objects.using(alias).create(**_author_fields(n))
    expected = list(made)
    sync_rows = [
        _row(a) | {"name": None, "email": None}
        for a in Author.objects.using(alias).filter(name__startswith=PREFIX).order_by("age")
    ]
    Author.objects.using(alias).filter(name__startswith=PREFIX).delete()
    made.clear()
    djangos.clear()

    async def native():
        created = [await Author.objects.using(alias).acreate(**_author_fields(n)) for n in range(5)]
        return [a.pk for a in created]

    pks = arun(native)
    assert made == expected
    assert djangos == [Author]  # learned from the first, reused four times
    assert len(set(pks)) == 5
    rows = [
        _row(a) | {"name": None, "email": None}
        for a in Author.objects.using(alias).filter(name__startswith=PREFIX).order_by("age")
    ]
    assert rows == sync_rows
    assert thread_hops == []


def test_a_different_field_set_is_a_shape_of_its_own(alias, statements, cleanup):
    """An explicit primary key adds the pk column: Django's path learns that shape too."""
    made, djangos = statements
    pk = 90_000 + {"default": 1, "postgresql": 2, "mariadb": 3}[alias]

    async def native():
        await Team.objects.using(alias).acreate(name=f"{PREFIX}a")
        await Team.objects.using(alias).acreate(name=f"{PREFIX}b")
        explicit = await Team.objects.using(alias).acreate(pk=pk, name=f"{PREFIX}c")
        again = await Team.objects.using(alias).acreate(pk=pk + 10, name=f"{PREFIX}d")
        return explicit.pk, again.pk

    assert arun(native) == (pk, pk + 10)
    assert djangos == [Team, Team]
    assert len({sql for sql, _ in made}) == 2
    names = Team.objects.using(alias).filter(pk__in=[pk, pk + 10]).values_list("name", flat=True)
    assert sorted(names) == [f"{PREFIX}c", f"{PREFIX}d"]


def test_pre_save_runs_as_often_as_in_djangos_insert(alias, statements, cleanup, monkeypatch):
    """pre_save has side effects (auto_now, file fields): it runs as often per save as in
    Django's sync insert, on the learned path and when Django's path runs after the values
    were gathered (an expression)."""
    _made, djangos = statements
    calls = []
    field = Team._meta.get_field("name")
    original = type(field).pre_save

    def counting(self_field, obj, add):
        calls.append(str(obj.name))
        return original(self_field, obj, add)

    monkeypatch.setattr(field, "pre_save", counting.__get__(field))
    values = [f"{PREFIX}1", f"{PREFIX}2", Upper(Value(f"{PREFIX}x")), f"{PREFIX}3"]
    for value in values:
        Team.objects.using(alias).create(name=value)
    expected = list(calls)
    teams = Team.objects.using(alias).filter(name__istartswith=PREFIX)
    names = sorted(teams.values_list("name", flat=True))
    teams.delete()
    calls.clear()
    djangos.clear()

    async def native():
        for value in values:
            await Team.objects.using(alias).acreate(name=value)

    arun(native)
    assert calls == expected
    assert len(calls) >= len(values)
    assert djangos == [Team, Team]  # learned once; the expression takes Django's path
    assert (
        sorted(teams.values_list("name", flat=True))
        == names
        == sorted([f"{PREFIX}1", f"{PREFIX}2", f"{PREFIX}X".upper(), f"{PREFIX}3"])
    )


def test_expressions_and_database_defaults_match_django(alias, cleanup):
    """Values Django compiles (an expression, db_default's DEFAULT) and a value Django
    refuses (F() in an insert) give Django's results and errors, call after call."""
    cases = [
        lambda: Team.objects.using(alias).create(name=Upper(Value(f"{PREFIX}e"))).name,
        lambda: Team.objects.using(alias).create(name=F("id")),
        lambda: (lambda s: (s.code, s.kind))(Stamp.objects.using(alias).create(label=f"{PREFIX}s")),
        lambda: (lambda s: (s.code, s.kind))(
            Stamp.objects.using(alias).create(label=f"{PREFIX}t", code=3)
        ),
    ]
    expected = [outcome(case) for case in cases]
    Team.objects.using(alias).filter(name__istartswith=PREFIX).delete()
    Stamp.objects.using(alias).filter(label__startswith=PREFIX).delete()
    acases = [
        lambda: _aname(Team.objects.using(alias).acreate(name=Upper(Value(f"{PREFIX}e")))),
        lambda: Team.objects.using(alias).acreate(name=F("id")),
        lambda: _acodes(Stamp.objects.using(alias).acreate(label=f"{PREFIX}s")),
        lambda: _acodes(Stamp.objects.using(alias).acreate(label=f"{PREFIX}t", code=3)),
    ]

    async def native():
        return [await aoutcome(case) for case in acases]

    got = arun(native)
    assert got == expected
    assert expected[1][0] != "ok"  # Django refuses F() in an insert


async def _aname(created):
    return (await created).name


async def _acodes(created):
    stamp = await created
    return stamp.code, stamp.kind


def test_a_field_with_a_placeholder_keeps_djangos_path(alias, statements, cleanup, monkeypatch):
    """A field with get_placeholder (GIS) may write value-dependent SQL: never learned."""
    _made, djangos = statements
    field = Team._meta.get_field("name")
    monkeypatch.setattr(field, "get_placeholder", lambda value, compiler, connection: "%s", False)

    async def native():
        for n in range(3):
            await Team.objects.using(alias).acreate(name=f"{PREFIX}p{n}")

    arun(native)
    assert djangos == [Team, Team, Team]


def test_sync_inserts_keep_djangos_path(alias, statements, cleanup):
    """Outside the bridge (Django's sync ORM) every insert is Django's own as_sql."""
    _made, djangos = statements
    for n in range(3):
        Team.objects.using(alias).create(name=f"{PREFIX}s{n}")
    assert djangos == [Team, Team, Team]


def test_shapes_are_learned_per_database(alias, cleanup):
    async def native():
        await Team.objects.using(alias).acreate(name=f"{PREFIX}w")
        return learned.store("insert", connections[alias])

    store = arun(native)
    assert store
    (sql, _returning), *_ = (entry for entry in store.values() if entry is not None)
    quoted = connections[alias].ops.quote_name(Team._meta.db_table)
    assert sql.startswith(f"INSERT INTO {quoted}")
