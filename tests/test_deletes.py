"""Deletes by primary key with learned DELETE statements (django_asyncdb.deletes): the
same statements, results, rows, signals and errors as Django's own delete(), delete
after delete, with Django's collector and compilation skipped once a shape is known."""

import asyncio
import re
import time

import pytest
from django.db import IntegrityError, connections, transaction
from django.db.models.signals import post_delete, pre_delete
from django.test.utils import CaptureQueriesContext

from conftest import ALIASES, ERRORS, arun
from django_asyncdb import connections as seam
from django_asyncdb import deletes
from test_faults import assert_server_clean, server_sessions
from test_read_differential import aoutcome, outcome
from testapp.models import Counter, Person, Team, Ticket

PREFIX = "deletes-"


@pytest.fixture
def compiled(monkeypatch):
    """How often Django compiled a DELETE of Counter."""
    count = []
    original = deletes._original_as_sql

    def counting(self):
        if self.query.model is Counter:
            count.append(1)
        return original(self)

    monkeypatch.setattr(deletes, "_original_as_sql", counting)
    return count


@pytest.fixture
def cleanup(alias):
    yield
    Counter.objects.using(alias).filter(name__startswith=PREFIX).delete()
    Person.objects.using(alias).filter(name__startswith=PREFIX).delete()
    Team.objects.using(alias).filter(name__startswith=PREFIX).delete()


def _native_delete(queryset):
    """``queryset.adelete()`` on an event loop of its own, as comparable data."""

    async def main():
        return await aoutcome(queryset.adelete)

    return arun(main)


def _rows(alias, count):
    return [
        Counter.objects.using(alias).create(name=f"{PREFIX}{n}", value=n).pk for n in range(count)
    ]


def _templates(sql):
    """Logged statements with the rows' keys as KEY (the two runs delete rows of their own)."""
    key = r'("id"|`id`) (=|>=|IN) (\(?)[0-9, ]+'
    return [re.sub(key, r"\1 \2 \3KEY", query["sql"]) for query in sql]


# Each scenario deletes through ``delete(queryset)`` with the keys of 6 fresh rows.
SCENARIOS = {
    "by pk": lambda qs, keys: [qs.filter(pk=k) for k in keys[:3]],
    "by id, a row gone": lambda qs, keys: [qs.filter(id=keys[0]), qs.filter(id=keys[0])],
    "by pk as a string": lambda qs, keys: [qs.filter(pk=str(k)) for k in keys[:2]],
    "pk__in, two lengths": lambda qs, keys: [
        qs.filter(pk__in=keys[:2]),
        qs.filter(pk__in=keys[2:4]),
        qs.filter(pk__in=keys[4:5]),
    ],
    "pk__in empty": lambda qs, keys: [qs.filter(pk__in=[]), qs.filter(pk__in=[])],
    "pk__gte": lambda qs, keys: [qs.filter(pk__gte=keys[4]), qs.filter(pk__gte=keys[0])],
    "another filter": lambda qs, keys: [qs.filter(pk=keys[0], value=0), qs.filter(value=1)],
    "ordered, sliced, values": lambda qs, keys: [
        qs.filter(pk=keys[0]).order_by("name"),
        qs.filter(pk=keys[1])[:1],
        qs.filter(pk=keys[1]).values("id"),
        qs.filter(pk=keys[1]).exclude(pk=keys[2]),
    ],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_deletes_match_djangos(alias, scenario, cleanup, thread_hops):
    """The same results, statements logged (BEGIN, DELETE, COMMIT) and rows left as
    Django's delete(); no thread hop."""

    def sync_run():
        keys = _rows(alias, 6)
        with CaptureQueriesContext(connections[alias]) as captured:
            results = [
                outcome(qs.delete) for qs in SCENARIOS[scenario](Counter.objects.using(alias), keys)
            ]
        left = sorted(Counter.objects.using(alias).filter(pk__in=keys).values_list("value"))
        Counter.objects.using(alias).filter(pk__in=keys).delete()
        return results, _templates(captured), left

    expected = sync_run()

    keys = _rows(alias, 6)

    async def native():
        with CaptureQueriesContext(connections[alias]) as captured:
            results = [
                await aoutcome(qs.adelete)
                for qs in SCENARIOS[scenario](Counter.objects.using(alias), keys)
            ]
        left = [
            v async for v in Counter.objects.using(alias).filter(pk__in=keys).values_list("value")
        ]
        await Counter.objects.using(alias).filter(pk__in=keys).adelete()
        return results, _templates(captured), sorted(left)

    assert arun(native) == expected
    assert thread_hops == []


def test_a_shape_is_learned_once_and_skips_djangos_path(alias, compiled, bridge_runs, cleanup):
    keys = _rows(alias, 5)

    async def native():
        results = [await Counter.objects.using(alias).filter(pk=keys[0]).adelete()]
        learned = len(compiled)
        results += [await Counter.objects.using(alias).filter(pk=k).adelete() for k in keys[1:]]
        return results, learned

    results, learned = arun(native)
    assert results == [(1, {"testapp.Counter": 1})] * 5
    assert learned and len(compiled) == learned  # Django compiled the first delete only
    assert bridge_runs == ["delete"]  # ... and ran the first one only
    assert not Counter.objects.using(alias).filter(pk__in=keys).exists()


def test_djangos_sync_delete_is_untouched(alias, compiled, cleanup):
    for key in _rows(alias, 3):
        assert Counter.objects.using(alias).filter(pk=key).delete() == (1, {"testapp.Counter": 1})
    assert len(compiled) == 3


def test_receivers_and_cascades_take_djangos_path(alias, cleanup):
    """A pre_delete/post_delete receiver connected after the shape was learned is called as
    in Django; a model with relations to collect deletes them as Django does."""
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append((kwargs["signal"] is pre_delete, instance.name))

    def scenario(delete):
        keys = _rows(alias, 3)
        results = [delete(Counter.objects.using(alias).filter(pk=keys[0]))]
        pre_delete.connect(receiver, sender=Counter)
        post_delete.connect(receiver, sender=Counter)
        try:
            results.append(delete(Counter.objects.using(alias).filter(pk=keys[1])))
        finally:
            pre_delete.disconnect(receiver, sender=Counter)
            post_delete.disconnect(receiver, sender=Counter)
        results.append(delete(Counter.objects.using(alias).filter(pk=keys[2])))
        team = Team.objects.using(alias).create(name=f"{PREFIX}team")
        person = Person.objects.using(alias).create(name=f"{PREFIX}p", team=team)
        results.append(delete(Person.objects.using(alias).filter(pk=person.pk)))
        results.append(delete(Team.objects.using(alias).filter(pk=team.pk)))
        results.append(seen[:])
        seen.clear()
        return results

    expected = scenario(lambda qs: outcome(qs.delete))

    got = scenario(_native_delete)
    assert got == expected
    assert expected[-1] == [(True, f"{PREFIX}1"), (False, f"{PREFIX}1")]


def test_protected_rows_and_errors_match_django(alias, cleanup):
    """PROTECT: Django's collector raises, every time, and the row stays."""

    def scenario(delete):
        team = Team.objects.using(alias).create(name=f"{PREFIX}protect")
        person = Person.objects.using(alias).create(name=f"{PREFIX}owner", team=team)
        Ticket.objects.using(alias).create(owner=person, title="t")
        # The message names the Ticket (its key differs between the runs).
        results = [delete(Person.objects.using(alias).filter(pk=person.pk))[:2] for _ in range(2)]
        Ticket.objects.using(alias).filter(owner=person).delete()
        results.append(delete(Person.objects.using(alias).filter(pk=person.pk)))
        team.delete()
        return results

    expected = scenario(lambda qs: outcome(qs.delete))

    assert scenario(_native_delete) == expected
    assert expected[0][1] == "ProtectedError"


def test_a_learned_delete_joins_the_users_block(alias, cleanup):
    """Inside the user's atomic block (savepoint=False, as Django's collector): rolled
    back with it, and an error after it leaves the row in place."""
    keys = _rows(alias, 3)

    async def main():
        await Counter.objects.using(alias).filter(pk=keys[0]).adelete()  # learned
        with pytest.raises(IntegrityError):
            async with transaction.atomic(using=alias):
                assert await Counter.objects.using(alias).filter(pk=keys[1]).adelete() == (
                    1,
                    {"testapp.Counter": 1},
                )
                await Team.objects.using(alias).acreate(name=f"{PREFIX}dup")
                await Team.objects.using(alias).acreate(name=f"{PREFIX}dup")
        async with transaction.atomic(using=alias):
            await Counter.objects.using(alias).filter(pk=keys[2]).adelete()
        await assert_server_clean(alias, seam.pool(alias))
        return sorted([k async for k in Counter.objects.using(alias).values_list("pk", flat=True)])

    left = arun(main)
    assert keys[0] not in left and keys[1] in left and keys[2] not in left


async def _cancel_while_locked(vendor, key, delete, *, until_stopped=False):
    """Run ``delete()`` while another transaction holds the row's lock, cancel it while
    it waits, then (after the server shows no statement running, ``until_stopped``)
    release the lock; nothing of ours is left in a transaction or running."""
    objects = Counter.objects.using(vendor)
    locked, release = asyncio.Event(), asyncio.Event()

    async def holder():
        async with transaction.atomic(using=vendor):
            await objects.select_for_update().filter(pk=key).aget()
            locked.set()
            await release.wait()

    holding = asyncio.create_task(holder())
    await locked.wait()
    deleting = asyncio.create_task(delete())
    await asyncio.sleep(0.3)
    assert not deleting.done()
    deleting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await deleting
    deadline = time.monotonic() + 5
    while until_stopped and time.monotonic() < deadline:
        sessions = await asyncio.to_thread(server_sessions, vendor)
        if not [s for s in sessions if s[1] == "active"]:
            break
        await asyncio.sleep(0.05)
    release.set()
    await holding
    await assert_server_clean(vendor, seam.pool(vendor))


@pytest.mark.parametrize("vendor", ["postgresql", "mariadb"])
def test_a_cancelled_learned_delete_leaves_the_row_and_no_transaction(vendor, cleanup_all):
    """A delete waiting for a row lock, cancelled: the row stays, no connection is left in
    a transaction or running, and the next delete of the shape works."""
    if vendor not in ALIASES:
        pytest.skip(f"{vendor} not reachable: {ERRORS[vendor]}")
    keys = _rows(vendor, 3)
    objects = Counter.objects.using(vendor)

    async def main():
        await objects.filter(pk=keys[0]).adelete()  # learned
        await _cancel_while_locked(vendor, keys[1], objects.filter(pk=keys[1]).adelete)
        present = await objects.filter(pk=keys[1]).aexists()
        result = await objects.filter(pk=keys[1]).adelete()
        return present, result

    assert arun(main) == (True, (1, {"testapp.Counter": 1}))


@pytest.fixture
def cleanup_all():
    yield
    for alias in ALIASES:
        Counter.objects.using(alias).filter(name__startswith=PREFIX).delete()


# Model.adelete(): the instance's fast delete, learned --------------------------------


def _receiver(seen):
    def receiver(sender, instance, **kwargs):
        seen.append((kwargs["signal"] is pre_delete, instance.name))

    return receiver


def _sync_instance_scenario(alias):
    """Objects deleted one by one (the last a second copy of a row already deleted),
    one with a receiver connected, then a model with relations to collect: results, the
    key after each delete, statements logged, what is left."""
    keys = _rows(alias, 4)
    objects = [Counter.objects.using(alias).get(pk=k) for k in keys]
    objects.insert(2, Counter.objects.using(alias).get(pk=keys[0]))
    seen = []
    receiver = _receiver(seen)
    results = []
    with CaptureQueriesContext(connections[alias]) as captured:
        for n, obj in enumerate(objects):
            if n == 3:
                pre_delete.connect(receiver, sender=Counter)
            try:
                results.append((outcome(obj.delete), obj.pk))
            finally:
                pre_delete.disconnect(receiver, sender=Counter)
    team = Team.objects.using(alias).create(name=f"{PREFIX}instance team")
    person = Person.objects.using(alias).create(name=f"{PREFIX}member", team=team)
    results.append((outcome(team.delete), team.pk))
    gone = not Person.objects.using(alias).filter(pk=person.pk).exists()
    left = Counter.objects.using(alias).filter(pk__in=keys).count()
    return results, _templates(captured), gone, left, seen


async def _native_instance_scenario(alias):
    """The same, with adelete()."""
    objects_of = Counter.objects.using(alias)
    keys = [(await objects_of.acreate(name=f"{PREFIX}{n}", value=n)).pk for n in range(4)]
    objects = [await objects_of.aget(pk=k) for k in keys]
    objects.insert(2, await objects_of.aget(pk=keys[0]))
    seen = []
    receiver = _receiver(seen)
    results = []
    with CaptureQueriesContext(connections[alias]) as captured:
        for n, obj in enumerate(objects):
            if n == 3:
                pre_delete.connect(receiver, sender=Counter)
            try:
                results.append((await aoutcome(obj.adelete), obj.pk))
            finally:
                pre_delete.disconnect(receiver, sender=Counter)
    team = await Team.objects.using(alias).acreate(name=f"{PREFIX}instance team")
    person = await Person.objects.using(alias).acreate(name=f"{PREFIX}member", team=team)
    results.append((await aoutcome(team.adelete), team.pk))
    gone = not await Person.objects.using(alias).filter(pk=person.pk).aexists()
    left = await objects_of.filter(pk__in=keys).acount()
    return results, _templates(captured), gone, left, seen


def test_instance_deletes_match_djangos(alias, compiled, bridge_runs, cleanup, thread_hops):
    """obj.adelete(): Django's results, keys set to None, statements (one DELETE, no
    transaction), signals and cascades; Django's delete() runs for the model's first
    object and where a receiver or relations are there, and compiles once."""
    expected = _sync_instance_scenario(alias)
    compiled.clear()
    got = arun(lambda: _native_instance_scenario(alias))
    assert got == expected
    one, none = (("ok", ("tuple", [("int", n), {"testapp.Counter": ("int", n)}])) for n in (1, 0))
    assert expected[0][:5] == [(one, None), (one, None), (none, None), (one, None), (one, None)]
    assert expected[2:] == (True, 0, [(True, f"{PREFIX}2")])
    assert len(compiled) == 2  # the first object's DELETE, and the receiver's
    assert bridge_runs.count("delete") == 3  # the first, the receiver's, the team's
    assert thread_hops == []


def test_a_learned_instance_delete_joins_the_users_block(alias, cleanup):
    """Inside the user's atomic block: rolled back with it (the row is back, though the
    object's key was set to None, as Django's delete() does)."""
    keys = _rows(alias, 3)

    async def main():
        objects = [await Counter.objects.using(alias).aget(pk=k) for k in keys]
        await objects[0].adelete()  # learned
        with pytest.raises(IntegrityError):
            async with transaction.atomic(using=alias):
                assert await objects[1].adelete() == (1, {"testapp.Counter": 1})
                await Team.objects.using(alias).acreate(name=f"{PREFIX}dup")
                await Team.objects.using(alias).acreate(name=f"{PREFIX}dup")
        async with transaction.atomic(using=alias):
            await objects[2].adelete()
        await assert_server_clean(alias, seam.pool(alias))
        return sorted([k async for k in Counter.objects.using(alias).values_list("pk", flat=True)])

    left = arun(main)
    assert keys[0] not in left and keys[1] in left and keys[2] not in left


@pytest.mark.parametrize("vendor", ["postgresql", "mariadb"])
def test_a_cancelled_instance_delete_leaves_the_row_and_no_transaction(vendor, cleanup_all):
    """obj.adelete() waiting for a row lock, cancelled: the statement is stopped on the
    server (the row stays, its key too), no connection is left in a transaction or
    running, and the next delete works."""
    if vendor not in ALIASES:
        pytest.skip(f"{vendor} not reachable: {ERRORS[vendor]}")
    keys = _rows(vendor, 2)
    objects = Counter.objects.using(vendor)

    async def main():
        await (await objects.aget(pk=keys[0])).adelete()  # learned
        victim = await objects.aget(pk=keys[1])
        # Outside a transaction, as Django's, the DELETE would run once the lock is
        # released; the package's cancel stops it on the server first.
        await _cancel_while_locked(vendor, keys[1], victim.adelete, until_stopped=True)
        present = await objects.filter(pk=keys[1]).aexists()
        return present, victim.pk, await victim.adelete()

    assert arun(main) == (True, keys[1], (1, {"testapp.Counter": 1}))
