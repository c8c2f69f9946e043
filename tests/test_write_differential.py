"""The write scenario: the same operations through Django's own path (the sync ORM in a
thread) and natively leave the same database and send the same signals, in order."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.management.color import no_style
from django.db import IntegrityError, connections, transaction
from django.db.models import F, ProtectedError, RestrictedError, signals

from conftest import REFERENCE, arun
from helpers import alist
from testapp.models import (
    Badge,
    Comment,
    Employee,
    Label,
    Log,
    Note,
    Person,
    Stamp,
    Tagging,
    Team,
    Ticket,
)

MODELS = [Team, Label, Person, Tagging, Employee, Ticket, Note, Badge, Log, Comment, Stamp]
TRACKED = (*MODELS, Person.friends.through)

events = []


def _describe(instance):
    return (type(instance).__name__, instance.pk, getattr(instance, "name", None))


def _on_save(signal_name):
    def receiver(sender, instance, raw=False, update_fields=None, created=None, **kwargs):
        events.append(
            (
                signal_name,
                sender.__name__,
                _describe(instance),
                created,
                sorted(update_fields) if update_fields else None,
            )
        )

    return receiver


def _on_delete(signal_name):
    def receiver(sender, instance, **kwargs):
        events.append((signal_name, sender.__name__, _describe(instance)))

    return receiver


def _on_m2m(sender, instance, action, reverse, model, pk_set, **kwargs):
    events.append(
        (
            "m2m_changed",
            sender.__name__,
            _describe(instance),
            action,
            reverse,
            model.__name__,
            sorted(pk_set) if pk_set else pk_set,
        )
    )


async def _async_post_save(sender, instance, created=None, **kwargs):
    await asyncio.sleep(0)
    events.append(("async post_save", sender.__name__, _describe(instance), created))


RECEIVERS = [
    (signals.pre_save, _on_save("pre_save")),
    (signals.post_save, _on_save("post_save")),
    (signals.pre_delete, _on_delete("pre_delete")),
    (signals.post_delete, _on_delete("post_delete")),
    (signals.m2m_changed, _on_m2m),
    (signals.post_save, _async_post_save),
]


@pytest.fixture
def recorded_signals():
    for signal, receiver in RECEIVERS:
        for model in TRACKED:
            signal.connect(receiver, sender=model, weak=False)
    events.clear()
    yield events
    for signal, receiver in RECEIVERS:
        for model in TRACKED:
            signal.disconnect(receiver, sender=model)


def flush(alias):
    """Empty the write tables and restart their sequences (sync Django)."""
    connection = connections[alias]
    tables = [model._meta.db_table for model in TRACKED]
    sql = connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True)
    connection.ops.execute_sql_flush(sql)


@pytest.fixture
def seeded_comments(alias):
    """Comment is a write table here and a seeded one for other modules (generic
    relations): its seeded rows, keys and sequence are put back after the scenario."""
    rows = list(Comment.objects.using(alias).order_by("pk"))
    yield
    flush(alias)
    Comment.objects.using(alias).bulk_create(rows)
    connection = connections[alias]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Comment]):
            cursor.execute(sql)


def database_state(alias):
    """Every row of every write table, ordered by primary key."""
    return {
        model.__name__: list(model.objects.using(alias).order_by("pk").values())
        for model in TRACKED
    }


async def on_commit(db, func):
    """transaction.on_commit: Django's own path keeps its transaction on its sync thread."""
    if connections[db].settings_dict.get("ASYNC", {}).get("ENABLED", True):
        transaction.on_commit(func, using=db)
    else:
        await sync_to_async(transaction.on_commit)(func, using=db)


async def scenario(db):
    """Everything part 2 covers, as a user writes it with Django's async API."""
    seen = []
    red = await Team.objects.using(db).acreate(name="red")
    blue = Team(name="blue")
    await blue.asave(using=db)
    ann = await Person.objects.using(db).acreate(name="ann", team=red)
    ann.score = 5
    ann.name = "not saved"
    await ann.asave(update_fields=["score"])
    await ann.arefresh_from_db()
    seen.append((ann.name, ann.score))
    await ann.arefresh_from_db(fields=["score"])
    bob = await Employee.objects.using(db).acreate(name="bob", team=blue, salary=100, mentor=ann)
    seen.append((bob.pk, bob.person_ptr_id))
    bob.salary = 120
    bob.score = 7
    await bob.asave()
    created = await Person.objects.using(db).abulk_create(
        [Person(name=f"p{i}", team=red, score=i) for i in range(5)], batch_size=2
    )
    seen.append([p.pk for p in created])
    await Team.objects.using(db).abulk_create(
        [Team(name="red"), Team(name="green")], ignore_conflicts=True
    )
    await Team.objects.using(db).abulk_create(
        [Team(name="green")],
        update_conflicts=True,
        # MySQL/MariaDB upsert on any unique key: Django refuses a target there.
        unique_fields=(
            ["name"] if connections[db].features.supports_update_conflicts_with_target else None
        ),
        update_fields=["name"],
    )
    people = [p async for p in Person.objects.using(db).filter(name__startswith="p").order_by("pk")]
    for person in people:
        person.score = person.score * 10
    seen.append(await Person.objects.using(db).abulk_update(people, ["score"], batch_size=2))
    seen.append(await Person.objects.using(db).filter(team=red).aupdate(score=F("score") + 1))
    seen.append(await Employee.objects.using(db).aupdate(salary=F("salary") * 2, score=3))
    team, was_created = await Team.objects.using(db).aget_or_create(name="red")
    seen.append((team.pk, was_created))
    team, was_created = await Team.objects.using(db).aget_or_create(name="yellow")
    seen.append((team.pk, was_created))
    person, was_created = await Person.objects.using(db).aupdate_or_create(
        name="ann", defaults={"score": 42}
    )
    seen.append((person.pk, was_created, person.score))
    person, was_created = await Person.objects.using(db).aupdate_or_create(
        name="cid", defaults={"score": 1}, create_defaults={"score": 2, "team": blue}
    )
    seen.append((person.pk, was_created, person.score))

    # Related managers: M2M with a through model, a symmetrical M2M, reverse FKs.
    x = await Label.objects.using(db).acreate(name="x")
    y = await Label.objects.using(db).acreate(name="y")
    z = await ann.labels.acreate(name="z", through_defaults={"weight": 9})
    await ann.labels.aadd(x, through_defaults={"weight": 3})
    await ann.labels.aset([x, y], through_defaults={"weight": 4})
    await ann.labels.aremove(x)
    await x.people.aadd(bob)
    label, was_created = await ann.labels.aget_or_create(name="w", through_defaults={"weight": 2})
    seen.append((label.name, was_created))
    await ann.friends.aadd(bob, person)
    await bob.friends.aremove(ann)
    await z.people.aclear()
    member = await red.members.acreate(name="via manager")
    await blue.members.aadd(member)
    await bob.mentees.aset([member], bulk=False)
    await bob.mentees.aremove(member)
    await ann.mentees.aadd(member)
    await bob.mentees.aclear()
    seen.append(sorted([p.name async for p in ann.mentees.all()]))
    seen.append(sorted([name async for name in ann.labels.values_list("name", flat=True)]))
    first = await red.comments.acreate(text="generic")
    second = await blue.comments.acreate(text="moved")
    await red.comments.aadd(second)
    await red.comments.aremove(first)
    comment, was_created = await blue.comments.aget_or_create(text="hello")
    seen.append((comment.text, was_created))
    seen.append(sorted([text async for text in red.comments.values_list("text", flat=True)]))
    stamp = await Stamp.objects.using(db).acreate(label="db defaults")
    seen.append((stamp.code, stamp.kind))
    await Stamp.objects.using(db).abulk_create([Stamp(label="a"), Stamp(label="b", code=1)])

    # Transactions with savepoints, on_commit and an IntegrityError inside.
    async with transaction.atomic(using=db):
        await Ticket.objects.using(db).acreate(owner=ann, title="kept")
        await on_commit(db, lambda: events.append(("on_commit", "outer")))
        try:
            async with transaction.atomic(using=db):
                await Ticket.objects.using(db).acreate(owner=bob, title="rolled back")
                await on_commit(db, lambda: events.append(("on_commit", "inner")))
                await Team.objects.using(db).acreate(name="red")  # duplicate
        except IntegrityError:
            seen.append("IntegrityError")
    with pytest.raises(ValueError):
        async with transaction.atomic(using=db):
            await Label.objects.using(db).acreate(name="never")
            raise ValueError

    # Deletion: PROTECT, RESTRICT, SET_NULL, SET(...), SET_DEFAULT, DO_NOTHING, CASCADE, MTI.
    await Badge.objects.using(db).acreate(holder=ann, team=red, default_team=red)
    await Badge.objects.using(db).acreate(holder=bob, team=blue)
    await Note.objects.using(db).acreate(person=ann, team=blue, text="restricts blue")
    await Note.objects.using(db).acreate(person=member, text="cascades")
    await Log.objects.using(db).acreate(person=member, message="dangling")
    try:
        await ann.adelete()
    except ProtectedError as exc:
        seen.append(("ProtectedError", sorted(o.title for o in exc.protected_objects)))
    try:
        await blue.adelete()
    except RestrictedError as exc:
        seen.append(("RestrictedError", sorted(o.text for o in exc.restricted_objects)))
    seen.append(await member.adelete())
    seen.append(await Ticket.objects.using(db).filter(owner=ann).adelete())
    seen.append(await bob.adelete())
    seen.append(await Person.objects.using(db).filter(name__startswith="p").adelete())
    seen.append(await Team.objects.using(db).filter(name="yellow").adelete())
    seen.append(await Note.objects.using(db).filter(team=blue).adelete())
    seen.append(await blue.adelete())
    seen.append(
        {m.__name__: await alist(m.objects.using(db).order_by("pk").values()) for m in TRACKED}
    )
    seen.append(await red.adelete())
    return seen


def _outcome(db):
    async def run():
        try:
            return ("ok", await scenario(db))
        except Exception as exc:  # a failure must match too, and shows in the diff
            return ("error", type(exc).__name__, str(exc))

    return arun(run)


def test_write_scenario_matches_djangos_own_path(
    alias, recorded_signals, thread_hops, seeded_comments
):
    from django.contrib.contenttypes.models import ContentType

    reference = REFERENCE[alias]
    # Django's own async path can't use a generic relation before its content type is
    # cached (the lookup hides a query); the native path fills the cache itself.
    ContentType.objects.db_manager(reference).get_for_models(*TRACKED)
    flush(alias)
    expected = (_outcome(reference), list(recorded_signals), database_state(alias))
    flush(alias)
    ContentType.objects.clear_cache()
    recorded_signals.clear()
    thread_hops.clear()
    result = _outcome(alias)
    hops = list(thread_hops)
    actual = (result, list(recorded_signals), database_state(alias))
    assert expected[0][0] == "ok", expected[0]
    assert len(expected[1]) > 100  # the scenario really sends signals
    assert sum(len(rows) for rows in expected[0][1][-2].values()) > 10  # and writes rows
    assert actual[0] == expected[0]
    assert actual[1] == expected[1]
    assert actual[2] == expected[2]
    assert hops == []
