"""Saves of loaded objects with learned UPDATE statements (django_asyncdb.updates): the
same statements, rows, return values and errors as Django's own save, save after save,
with Django's update planning skipped once a shape is known."""

import datetime
import inspect
import uuid
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connections
from django.db.models import F
from django.db.models.sql.compiler import SQLUpdateCompiler

from conftest import arun
from django_asyncdb import bridge, locking, updates
from django_asyncdb import connections as seam
from test_read_differential import outcome
from testapp.models import Author, Employee, Team

UTC = datetime.UTC
PREFIX = "updates-"


def _author(n):
    return Author(
        name=f"{PREFIX}{n}",
        email=f"{PREFIX}{n}@example.com",
        age=20,
        born=datetime.date(1990, 1, 1),
        rating=Decimal("1.50"),
        uid=uuid.UUID(int=5000 + n),
        data={},
        joined=datetime.datetime(2024, 1, 1, tzinfo=UTC),
    )


# Successive edits of one loaded author: (attribute changes, save() keywords).
EDITS = [
    ({"age": 21}, {}),
    ({"age": 22, "rating": Decimal("2.75")}, {}),
    ({"born": datetime.date(1991, 2, 3)}, {}),
    ({"age": 23}, {"update_fields": ["age"]}),
    ({"age": 24}, {"update_fields": ["age"]}),
    ({"mentor_id": "MENTOR"}, {}),  # a NULL becomes a value: another statement
    ({"mentor_id": None, "active": False}, {}),
    ({"joined": datetime.datetime(2025, 6, 1, 8, 30, tzinfo=UTC)}, {}),
]


@pytest.fixture
def planned(monkeypatch):
    """How often Django compiled an UPDATE of Author."""
    count = []
    original = updates._original_as_sql

    def counting(self):
        if self.query.model is Author:
            count.append(1)
        return original(self)

    monkeypatch.setattr(updates, "_original_as_sql", counting)
    return count


@pytest.fixture
def cleanup(alias):
    yield
    Author.objects.using(alias).filter(name__startswith=PREFIX).delete()
    Team.objects.using(alias).filter(name__startswith=PREFIX).delete()


def _recorder(seen, pk):
    """An execute wrapper keeping the UPDATE statements Django's cursor runs (the row's
    key as "KEY": the two runs update rows of their own)."""

    def recorder(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            *values, key = (getattr(p, "obj", p) for p in params)
            seen.append((sql, (*values, "KEY" if key == pk else key)))
        return execute(sql, params, many, context)

    return recorder


def _state(alias, pk):
    author = Author.objects.using(alias).get(pk=pk)
    return {
        f.attname: getattr(author, f.attname)
        for f in Author._meta.concrete_fields
        if f.attname not in ("id", "mentor_id", "uid", "email", "name")
    } | {"mentor": author.mentor_id is not None}


def _apply(author, changes, mentor):
    for name, value in changes.items():
        setattr(author, name, mentor if value == "MENTOR" else value)


def test_repeated_saves_send_djangos_statements(alias, planned, cleanup, thread_hops):
    mentor = Author.objects.using(alias).get(pk=1).pk
    subject = _author(1)
    subject.save(using=alias)

    expected = []
    with connections[alias].execute_wrapper(_recorder(expected, subject.pk)):
        author = Author.objects.using(alias).get(pk=subject.pk)
        for changes, kwargs in EDITS:
            _apply(author, changes, mentor)
            author.save(**kwargs)
    expected_state = _state(alias, subject.pk)
    Author.objects.using(alias).filter(pk=subject.pk).delete()
    subject = _author(1)
    subject.save(using=alias)
    planned.clear()

    got = []

    async def native():
        # Django's wrapper of this task's context (asgiref's Local follows contexts).
        with connections[alias].execute_wrapper(_recorder(got, subject.pk)):
            author = await Author.objects.using(alias).aget(pk=subject.pk)
            for changes, kwargs in EDITS:
                _apply(author, changes, mentor)
                await author.asave(**kwargs)

    arun(native)
    assert got == expected
    assert _state(alias, subject.pk) == expected_state
    # Django compiled one statement per shape: fields and NULLs (all fields with no
    # mentor, with one, update_fields=["age"]; no mentor again is the first shape).
    # Django 5.2 writes NULL in the SQL, Django 6 sends it as a parameter.
    shapes = {(sql, tuple(p is None for p in params)) for sql, params in expected}
    assert len(planned) == len(shapes)
    assert len(planned) < len(EDITS)
    assert thread_hops == []


def test_a_row_gone_behaves_as_in_django(alias, cleanup):
    """0 rows updated: Django's save() inserts the object again; with update_fields it
    raises DatabaseError. The learned path returns what Django's _do_update returns."""

    def scenario(save):
        team = Team.objects.using(alias).create(name=f"{PREFIX}gone")
        results = []
        for _ in range(2):
            team.name = f"{PREFIX}gone"
            results.append(outcome(lambda: save(team, {})))
        Team.objects.using(alias).filter(pk=team.pk).delete()
        results.append(outcome(lambda: save(team, {"update_fields": ["name"]})))
        results.append(outcome(lambda: save(team, {})))  # inserted again
        results.append(Team.objects.using(alias).filter(pk=team.pk).count())
        Team.objects.using(alias).filter(pk=team.pk).delete()
        return results

    expected = scenario(lambda team, kwargs: team.save(**kwargs))

    def native_save(team, kwargs):
        async def main():
            await team.asave(**kwargs)

        return arun(main)

    got = scenario(native_save)
    assert got == expected
    # DatabaseError, or its subclass NotUpdated on Django 6.1
    assert expected[2][0] == "error" and expected[2][1] in (DatabaseError.__name__, "NotUpdated")


def test_direct_do_update_returns_what_djangos_returns(alias, cleanup):
    """Model._do_update's own return value (a bool on Django 5.2, rows on Django 6),
    for a row found and a row gone, on the learned path."""
    team = Team.objects.using(alias).create(name=f"{PREFIX}direct")
    field = Team._meta.get_field("name")
    django_5 = "returning_fields" not in inspect.signature(locking._original_do_update).parameters

    def call():
        base = Team._base_manager.using(alias)
        rest = () if django_5 else ([],)
        return team._do_update(base, alias, team.pk, [(field, None, team.name)], None, False, *rest)

    expected = [call(), call()]

    async def native():
        await seam.prepare(alias)
        found = [await bridge.run(call) for _ in range(3)]
        await Team.objects.using(alias).filter(pk=team.pk).adelete()
        found.append(await bridge.run(call))
        return found

    got = arun(native)
    assert got[:3] == [expected[0]] * 3
    assert got[3] == (False if django_5 else [])


def test_expressions_mti_and_errors_match_django(alias, cleanup):
    """An F() value (Django's path), a multi-table child (one UPDATE per table), and a
    unique violation: the same rows and errors as Django's save()."""
    taken = Author.objects.using(alias).get(pk=2).email

    def scenario(save):
        author = _author(7)
        author.save(using=alias)
        author = Author.objects.using(alias).get(pk=author.pk)
        results = []
        author.age = F("age") + 5
        results.append(outcome(lambda: save(author, {})))
        author.refresh_from_db()
        results.append(author.age)
        author.email = taken
        results.append(outcome(lambda: save(author, {})))
        team = Team.objects.using(alias).create(name=f"{PREFIX}mti")
        employee = Employee.objects.using(alias).create(name="e", team=team, salary=1)
        employee = Employee.objects.using(alias).get(pk=employee.pk)
        for salary in (2, 3):
            employee.salary, employee.score = salary, salary * 10
            results.append(outcome(lambda: save(employee, {})))
        fresh = Employee.objects.using(alias).get(pk=employee.pk)
        results.append((fresh.salary, fresh.score))
        fresh.delete()
        team.delete()
        return results

    expected = scenario(lambda obj, kwargs: obj.save(**kwargs))
    Author.objects.using(alias).filter(name__startswith=PREFIX).delete()

    def native_save(obj, kwargs):
        async def main():
            await obj.asave(**kwargs)

        return arun(main)

    got = scenario(native_save)
    assert got == expected
    assert expected[2][0] == "error" and expected[2][1] == IntegrityError.__name__


def test_sync_saves_keep_djangos_path(alias, planned, cleanup):
    subject = _author(3)
    subject.save(using=alias)
    planned.clear()
    for age in (30, 31, 32):
        subject.age = age
        subject.save()
    assert len(planned) == 3


def test_the_compiler_records_only_while_learning():
    assert SQLUpdateCompiler.as_sql is updates.as_sql
    assert updates._recorder._captured.get() is None
