"""Scale-out as users deploy it: a primary, a streaming replica that lags for real, and
PgBouncer in transaction mode with fewer server connections than clients (tests/topology.py
starts them on ports of their own; the main server is never touched).

- Routing: every native read and write goes where Django's sync ORM sends it under the
  same router (differential, statement by statement).
- Read-your-writes (django_asyncdb.routers) against the replica's real lag.
- PgBouncer: a concurrent load with no error, ``aiterator()`` with and without
  DISABLE_SERVER_SIDE_CURSORS, and no session state of ours reaching its other clients.
- A replica restart while idle and under load.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, ProgrammingError, connections, transaction
from django.db.models import F, Max
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

import topology
from conftest import ALIASES, TOPOLOGY_PORTS, arun
from django_asyncdb import conf, routers
from django_asyncdb import connections as seam
from django_asyncdb import cursor as django_cursor
from test_pool import fetch
from testapp.models import Author, Book, Publisher, Tag

PRIMARY, REPLICA, BOUNCER = "topology_primary", "topology_replica", "topology_bouncer"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def servers(schema):
    """The topology, with the test app's tables made on the primary (and so on the
    replica) and a few rows both have."""
    from django.core.management import call_command

    why = topology.missing() or (None if "postgresql" in ALIASES else "PostgreSQL unreachable")
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but the replica/pooler topology cannot start: {why}")
        pytest.skip(why)
    started = topology.Topology(TOPOLOGY_PORTS)
    started.start()
    try:
        call_command("migrate", database=PRIMARY, verbosity=0)
        author = Author.objects.using(PRIMARY).create(
            name="Seed", email="seed@x.org", age=40, born="1980-01-01", rating=4,
            joined="2020-01-01T00:00Z",
        )  # fmt: skip
        Book.objects.using(PRIMARY).create(
            title="Seed", author=author, pages=10, price=1, published="2000-01-01"
        )
        Tag.objects.using(PRIMARY).create(name="seed")
        started.wait_for_replica()
        yield started
    finally:
        for alias in (PRIMARY, REPLICA, BOUNCER):
            connections[alias].close()
        started.stop()


class PrimaryReplica:
    """Django's documented primary/replica router: every read to the replica."""

    def db_for_read(self, model, **hints):
        return REPLICA

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True


def _author(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "email": f"{name}@x.org",
        "age": 30,
        "born": "1990-01-01",
        "rating": 3,
        "joined": "2021-01-01T00:00Z",
    }


# --- routing, differential ---------------------------------------------------------------

Op = tuple[str, Callable[[], Any], Callable[[], Any]]


def _operations() -> list[Op]:
    """(name, Django's sync call, the native async call): each pair does the same."""

    def seed() -> Any:  # a new queryset per call: update() marks its queryset for writing
        return Author.objects.filter(name="Seed")

    def name() -> str:
        return f"t{next(_names)}"

    def sync_related() -> Any:
        return [b.title for b in seed().get().books.all()]

    async def native_related() -> Any:
        author = await seed().aget()
        return [b.title async for b in author.books.all()]

    def sync_save() -> Any:
        tag = Tag.objects.create(name=name())
        tag.name = name()
        tag.save()

    async def native_save() -> Any:
        tag = await Tag.objects.acreate(name=name())
        tag.name = name()
        await tag.asave()

    def sync_delete() -> Any:
        Tag.objects.create(name=name()).delete()

    async def native_delete() -> Any:
        await (await Tag.objects.acreate(name=name())).adelete()

    def sync_locked() -> Any:
        with transaction.atomic(using=PRIMARY):
            return [a.name for a in seed().select_for_update()]

    async def native_locked() -> Any:
        async with transaction.atomic(using=PRIMARY):
            return [a.name async for a in seed().select_for_update()]

    def sync_atomic_read() -> Any:
        with transaction.atomic(using=PRIMARY):
            return seed().count()

    async def native_atomic_read() -> Any:
        async with transaction.atomic(using=PRIMARY):
            return await seed().acount()

    def sync_m2m() -> Any:
        book = Book.objects.filter(title="Seed").get()
        tag = Tag.objects.create(name=name())
        book.tags.add(tag)
        book.tags.remove(tag)
        return book.tags.count()

    async def native_m2m() -> Any:
        book = await Book.objects.filter(title="Seed").aget()
        tag = await Tag.objects.acreate(name=name())
        await book.tags.aadd(tag)
        await book.tags.aremove(tag)
        return await book.tags.acount()

    def sync_bulk_update() -> Any:
        tags = [Tag.objects.create(name=name())]
        tags[0].name = name()
        return Tag.objects.bulk_update(tags, ["name"])

    async def native_bulk_update() -> Any:
        tags = [await Tag.objects.acreate(name=name())]
        tags[0].name = name()
        return await Tag.objects.abulk_update(tags, ["name"])

    def sync_queryset_delete() -> Any:
        tag = Tag.objects.create(name=name())
        return Tag.objects.filter(pk=tag.pk).delete()

    async def native_queryset_delete() -> Any:
        tag = await Tag.objects.acreate(name=name())
        return await Tag.objects.filter(pk=tag.pk).adelete()

    return [
        ("get", lambda: seed().get().name, lambda: _name(seed().aget())),
        ("last", lambda: seed().last().name, lambda: _name(seed().alast())),
        ("latest", lambda: seed().latest("joined").name, lambda: _name(seed().alatest("joined"))),
        ("contains", lambda: seed().contains(seed().get()), lambda: _contains(seed())),
        ("count", lambda: seed().count(), lambda: seed().acount()),
        ("exists", lambda: seed().exists(), lambda: seed().aexists()),
        ("first", lambda: seed().first().name, lambda: _name(seed().afirst())),
        ("values_list", lambda: list(seed().values_list("name")),
         lambda: _list(seed().values_list("name"))),
        ("aggregate", lambda: seed().aggregate(m=Max("age")),
         lambda: seed().aaggregate(m=Max("age"))),
        ("in_bulk", lambda: len(seed().in_bulk()), lambda: _len(seed().ain_bulk())),
        ("prefetch", lambda: len(list(seed().prefetch_related("books"))),
         lambda: _len(_list(seed().prefetch_related("books")))),
        ("related", sync_related, native_related),
        ("iterator", lambda: len(list(seed().iterator())), lambda: _len(_iterate(seed()))),
        ("create", lambda: Tag.objects.create(name=name()) and None,
         lambda: _none(Tag.objects.acreate(name=name()))),
        ("save", sync_save, native_save),
        ("update", lambda: seed().update(age=F("age")), lambda: seed().aupdate(age=F("age"))),
        ("delete", sync_delete, native_delete),
        ("queryset delete", sync_queryset_delete, native_queryset_delete),
        ("bulk_update", sync_bulk_update, native_bulk_update),
        ("many-to-many", sync_m2m, native_m2m),
        ("bulk_create", lambda: len(Tag.objects.bulk_create([Tag(name=name())])),
         lambda: _len(Tag.objects.abulk_create([Tag(name=name())]))),
        ("get_or_create", lambda: Tag.objects.get_or_create(name="seed")[1],
         lambda: _second(Tag.objects.aget_or_create(name="seed"))),
        ("update_or_create", lambda: Tag.objects.update_or_create(name="seed")[1],
         lambda: _second(Tag.objects.aupdate_or_create(name="seed"))),
        ("select_for_update", sync_locked, native_locked),
        ("read in atomic", sync_atomic_read, native_atomic_read),
    ]  # fmt: skip


async def _name(coro: Any) -> str:
    return (await coro).name


async def _contains(qs: Any) -> bool:
    return bool(await qs.acontains(await qs.aget()))


async def _list(qs: Any) -> list[Any]:
    return [row async for row in qs]


async def _iterate(qs: Any) -> list[Any]:
    return [row async for row in qs.aiterator(chunk_size=10)]


async def _len(coro: Any) -> int:
    return len(await coro)


async def _none(coro: Any) -> None:
    await coro


async def _second(coro: Any) -> Any:
    return (await coro)[1]


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _by_alias(captures: dict[str, CaptureQueriesContext]) -> dict[str, list[str]]:
    """Each alias's statements, by their first word (transaction control left out; a
    server-side cursor's DECLARE, as Django's sync iterator logs it, counts as the SELECT
    that aiterator() logs)."""
    return {
        alias: [
            "SELECT" if word == "DECLARE" else word
            for query in captured.captured_queries
            if (word := query["sql"].split(None, 1)[0].upper()) not in _CONTROL
        ]
        for alias, captured in captures.items()
    }


class _Capture:
    def __init__(self) -> None:
        self.captures = {
            alias: CaptureQueriesContext(connections[alias]) for alias in (PRIMARY, REPLICA)
        }

    def __enter__(self) -> dict[str, CaptureQueriesContext]:
        for capture in self.captures.values():
            capture.__enter__()
        return self.captures

    def __exit__(self, *exc: Any) -> None:
        for capture in self.captures.values():
            capture.__exit__(*exc)


def test_every_native_read_and_write_goes_where_django_sends_it(servers):
    """Under Django's primary/replica router: reads to the replica, writes, get_or_create
    and select_for_update to the primary; the same statements on the same alias as Django's
    sync ORM, and the same results."""
    operations = _operations()

    def sync_side() -> list[tuple[Any, dict[str, list[str]]]]:
        seen = []
        try:
            for _, sync_call, _ in operations:
                with _Capture() as captures:
                    result = sync_call()
                seen.append((result, _by_alias(captures)))
        finally:
            for alias in (PRIMARY, REPLICA):
                connections[alias].close()
        return seen

    async def native_side() -> list[tuple[Any, dict[str, list[str]]]]:
        seen = []
        # The package reads the content types once per alias on first use: not compared.
        for alias in (PRIMARY, REPLICA):
            await seam.prepare(alias)
        for _, _, native_call in operations:
            with _Capture() as captures:
                result = await native_call()
            seen.append((result, _by_alias(captures)))
        return seen

    with override_settings(DATABASE_ROUTERS=[PrimaryReplica()]):
        expected: list[Any] = []
        thread = threading.Thread(target=lambda: expected.extend(sync_side()))
        thread.start()
        thread.join()
        servers.wait_for_replica()
        got = arun(native_side)
    assert len(got) == len(expected) == len(operations)
    for (name, _, _), (result, statements), (want, want_statements) in zip(
        operations, got, expected, strict=True
    ):
        assert statements == want_statements, name
        assert result == want, name
    by_name = {
        name: statements for (name, _, _), (_, statements) in zip(operations, got, strict=True)
    }
    assert by_name["get"] == {PRIMARY: [], REPLICA: ["SELECT"]}
    assert by_name["create"] == {PRIMARY: ["INSERT"], REPLICA: []}
    assert by_name["select_for_update"][REPLICA] == []
    assert by_name["get_or_create"] == {PRIMARY: ["SELECT"], REPLICA: []}


# --- read-your-writes ----------------------------------------------------------------

PIN_SECONDS = 0.5  # well under the replica's delay: a read after it shows the lag again


@pytest.fixture
def read_your_writes(servers):
    with override_settings(
        DATABASE_ROUTERS=["django_asyncdb.routers.ReadYourWritesRouter"],
        ASYNCDB_REPLICAS={"PRIMARY": PRIMARY, "REPLICAS": [REPLICA], "PIN_SECONDS": PIN_SECONDS},
    ):
        yield servers


def _fresh_tag(servers) -> int:
    """A row written on the primary behind the router's back: the replica shows it only
    after its delay."""
    name = f"fresh{next(_names)}"
    ((pk,),) = servers.sql(
        "primary", f"INSERT INTO testapp_tag (name) VALUES ('{name}') RETURNING id"
    )
    return int(pk)


def test_the_replica_lags_for_real(servers):
    """The reference: under Django's documented router a read right after a write
    misses it (the replica applies commits REPLICA_DELAY_MS late), and finds it later."""

    async def main():
        tag = await Tag.objects.acreate(name=f"lag{next(_names)}")
        at_once = await Tag.objects.filter(pk=tag.pk).aexists()
        await asyncio.to_thread(servers.wait_for_replica)
        return at_once, await Tag.objects.filter(pk=tag.pk).aexists()

    with override_settings(DATABASE_ROUTERS=[PrimaryReplica()]):
        assert arun(main) == (False, True)


def test_a_task_reads_its_own_writes_and_only_it(read_your_writes):

    async def writer():
        tag = await Tag.objects.acreate(name=f"own{next(_names)}")
        own = await Tag.objects.filter(pk=tag.pk).aexists()
        # A task the writer starts after its write shares its pin.
        (child,) = await asyncio.gather(Tag.objects.filter(pk=tag.pk).aexists())
        return tag.pk, own, child

    async def main():
        pk, own, child = await asyncio.create_task(writer())
        # Another task on the same loop (the main one never wrote): not pinned.
        bystander = await asyncio.create_task(Tag.objects.filter(pk=pk).aexists())
        return own, child, bystander

    assert arun(main) == (True, True, False)


def test_the_pin_ends_after_pin_seconds(read_your_writes):
    async def main():
        tag = await Tag.objects.acreate(name=f"end{next(_names)}")
        assert routers.pinned()
        await asyncio.sleep(PIN_SECONDS + 0.1)
        assert not routers.pinned()
        return await Tag.objects.filter(pk=tag.pk).aexists()  # the replica, still behind

    assert arun(main) is False


def test_reads_inside_an_atomic_block_on_the_primary_go_to_it(read_your_writes):
    servers = read_your_writes
    pk = _fresh_tag(servers)

    async def main():
        outside = await Tag.objects.filter(pk=pk).aexists()
        async with transaction.atomic(using=PRIMARY):
            inside = await Tag.objects.filter(pk=pk).aexists()
        return outside, inside, routers.pinned()

    assert arun(main) == (False, True, False)

    def sync_block():
        outside = Tag.objects.filter(pk=pk).exists()
        with transaction.atomic(using=PRIMARY):
            inside = Tag.objects.filter(pk=pk).exists()
        connections[PRIMARY].close()
        connections[REPLICA].close()
        return outside, inside

    assert _in_thread(sync_block) == (False, True)


def _in_thread(func: Callable[[], Any]) -> Any:
    """``func()`` in a new thread (a context of its own, as a WSGI server's thread)."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(func()))
    thread.start()
    thread.join()
    return box[0]


def test_sync_code_reads_its_own_writes_per_thread(read_your_writes):
    name = f"sync{next(_names)}"

    def write_then_read():
        try:
            tag = Tag.objects.create(name=name)
            return tag.pk, Tag.objects.filter(pk=tag.pk).exists()
        finally:
            connections[PRIMARY].close()
            connections[REPLICA].close()

    def read(pk):
        try:
            return Tag.objects.filter(pk=pk).exists()
        finally:
            connections[REPLICA].close()

    pk, own = _in_thread(write_then_read)
    assert own is True
    assert _in_thread(lambda: read(pk)) is False


def test_the_middleware_pins_a_request_and_the_clients_next_one(read_your_writes):
    from django.http import HttpResponse

    servers = read_your_writes
    factory = RequestFactory()
    name = f"mw{next(_names)}"
    written = asyncio.Event()
    done_reading = asyncio.Event()

    async def post(request):
        # A task of the request writes; the request's own later reads see it.
        await asyncio.gather(Tag.objects.acreate(name=name))
        found = await Tag.objects.filter(name=name).aexists()
        written.set()
        await done_reading.wait()  # stay pinned while another request reads
        return HttpResponse(str(found))

    async def get(request):
        return HttpResponse(str(await Tag.objects.filter(pk=request.GET["pk"]).aexists()))

    async def main():
        posting = asyncio.create_task(routers.ReadYourWritesMiddleware(post)(factory.post("/")))
        await written.wait()
        pk = _fresh_tag(servers)
        reader = routers.ReadYourWritesMiddleware(get)
        # A concurrent request of another client, on the same loop: not pinned.
        other = await reader(factory.get("/", {"pk": pk}))
        done_reading.set()
        posted = await posting
        # The client's next request carries the cookie: it reads from the primary.
        request = factory.get("/", {"pk": pk})
        request.COOKIES.update({"asyncdb_pinned": posted.cookies["asyncdb_pinned"].value})
        following = await reader(request)
        return posted, other, following

    posted, other, following = arun(main)
    assert posted.content == b"True"
    assert posted.cookies["asyncdb_pinned"]["max-age"] == 1
    assert other.content == b"False"
    assert "asyncdb_pinned" not in other.cookies  # it wrote nothing
    assert following.content == b"True"


def test_the_middleware_in_a_sync_stack(read_your_writes):
    from django.http import HttpResponse

    servers = read_your_writes
    factory = RequestFactory()

    def post(request):
        tag = Tag.objects.create(name=f"wsgi{next(_names)}")
        return HttpResponse(str(Tag.objects.filter(pk=tag.pk).exists()))

    def get(request):
        return HttpResponse(str(Tag.objects.filter(pk=request.GET["pk"]).exists()))

    def requests():
        try:
            posted = routers.ReadYourWritesMiddleware(post)(factory.post("/"))
            # The same thread serves the next client: the last request's pin is gone.
            pk = _fresh_tag(servers)
            other = routers.ReadYourWritesMiddleware(get)(factory.get("/", {"pk": pk}))
            return posted.content, other.content, "asyncdb_pinned" in posted.cookies
        finally:
            connections[PRIMARY].close()
            connections[REPLICA].close()

    assert _in_thread(requests) == (b"True", b"False", True)


# --- PgBouncer in transaction mode ---------------------------------------------------


def test_a_concurrent_load_through_pgbouncer_has_no_error(servers):
    """64 tasks on a pool of 12 connections to PgBouncer, which has 3 server connections:
    reads, inserts in transactions and row locks, with no error and nothing left over."""
    prefix = f"load{next(_names)}-"
    tasks, rounds = 64, 9

    async def client(number: int) -> int:
        made = 0
        for i in range(rounds):
            kind = (number + i) % 3
            if kind == 0:
                assert await Author.objects.using(BOUNCER).filter(name="Seed").acount() == 1
            elif kind == 1:
                async with transaction.atomic(using=BOUNCER):
                    await Tag.objects.using(BOUNCER).acreate(name=f"{prefix}{number}-{i}")
                made += 1
            else:
                async with transaction.atomic(using=BOUNCER):
                    seed = Author.objects.using(BOUNCER).select_for_update().filter(name="Seed")
                    author = await seed.aget()
                    await Author.objects.using(BOUNCER).filter(pk=author.pk).aupdate(age=F("age"))
        return made

    async def main():
        made = await asyncio.gather(*(client(n) for n in range(tasks)), return_exceptions=True)
        errors = [result for result in made if isinstance(result, BaseException)]
        found = seam.pool(BOUNCER)
        state = (found.size, found.idle, [c.reusable() for c in found._idle])
        count = await Tag.objects.using(BOUNCER).filter(name__startswith=prefix).acount()
        return errors, sum(m for m in made if isinstance(m, int)), count, state

    errors, made, count, (size, idle, reusable) = arun(main)
    assert errors == []
    assert count == made == sum(1 for n in range(tasks) for i in range(rounds) if (n + i) % 3 == 1)
    assert size <= 4 * topology.BOUNCER_POOL_SIZE and idle == size and all(reusable)
    assert servers.bouncer_servers() <= topology.BOUNCER_POOL_SIZE


@pytest.fixture
def streamed_rows(servers):
    prefix = f"stream{next(_names)}-"
    Tag.objects.using(BOUNCER).bulk_create(Tag(name=f"{prefix}{i:04}") for i in range(300))
    connections[BOUNCER].close()
    return prefix, [f"{prefix}{i:04}" for i in range(300)]


@pytest.fixture(params=[False, True], ids=["server-side-cursors", "disabled"])
def server_side_setting(request):
    settings_dict = connections.settings[BOUNCER]
    settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = request.param
    yield request.param
    settings_dict.pop("DISABLE_SERVER_SIDE_CURSORS", None)


def test_aiterator_through_pgbouncer(servers, streamed_rows, server_side_setting):
    """aiterator() keeps its stream on one server connection (a transaction around the
    server-side cursor, or a client-side read), while other clients take PgBouncer's
    server connections between its chunks; with or without server-side cursors."""
    prefix, expected = streamed_rows

    async def others(stop: asyncio.Event) -> int:
        done = 0
        while not stop.is_set():
            async with transaction.atomic(using=BOUNCER):
                await Author.objects.using(BOUNCER).filter(name="Seed").aexists()
            done += 1
        return done

    async def main():
        stop = asyncio.Event()
        busy = [asyncio.create_task(others(stop)) for _ in range(6)]
        names = []
        queryset = Tag.objects.using(BOUNCER).filter(name__startswith=prefix).order_by("name")
        async for tag in queryset.aiterator(chunk_size=7):
            names.append(tag.name)
            await asyncio.sleep(0)  # let the others run between rows
        stop.set()
        return names, sum(await asyncio.gather(*busy))

    names, others_done = arun(main)
    assert names == expected
    assert others_done > 0


def test_djangos_sync_iterator_through_pgbouncer_needs_disabled_server_side_cursors(
    servers, streamed_rows, server_side_setting
):
    """The reference for the README: Django's sync iterator() declares its cursor WITH
    HOLD outside a transaction, so its next FETCH may reach a server connection that
    never saw it (PgBouncer hands the last one released to the next client); with
    DISABLE_SERVER_SIDE_CURSORS it reads on the client and works."""
    prefix, expected = streamed_rows

    def iterate():
        names: list[str] = []
        try:
            queryset = Tag.objects.using(BOUNCER).filter(name__startswith=prefix).order_by("name")
            rows = queryset.iterator(chunk_size=7)
            names.append(next(rows).name)
            # Another client takes the server connection the cursor was declared on.
            with psycopg.connect(
                host="127.0.0.1", port=TOPOLOGY_PORTS.bouncer, user="postgres",
                dbname=topology.DATABASE,
            ) as other:  # fmt: skip
                other.execute("SELECT 1")  # its transaction stays open until the end
                names.extend(tag.name for tag in rows)
            return names
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            connections[BOUNCER].close()

    with warnings.catch_warnings():
        # The failed cursor's CLOSE fails too, so psycopg warns when it is collected.
        warnings.simplefilter("ignore", ResourceWarning)
        outcome = _in_thread(iterate)
        gc.collect()
    if server_side_setting:
        assert outcome == expected
    else:
        assert isinstance(outcome, str), outcome
        assert outcome.startswith("InvalidCursorName") and "does not exist" in outcome


def test_no_session_state_of_ours_reaches_the_poolers_other_clients(servers):
    """Our transactions at SERIALIZABLE (OPTIONS["isolation_level"]) and our session's
    time zone, interleaved on PgBouncer's 3 server connections with other clients that set
    a time zone of their own: each side always sees its own settings."""
    alias = "topology_bouncer_serializable"

    async def ours(rounds: int) -> list[tuple[str, str, str]]:
        seen = []
        for _ in range(rounds):
            async with django_cursor(alias) as cursor:
                await cursor.execute("SELECT current_setting('TimeZone')")
                (zone,) = await cursor.fetchone()
            async with transaction.atomic(using=alias), django_cursor(alias) as cursor:
                await cursor.execute(
                    "SELECT current_setting('transaction_isolation'), current_setting('TimeZone')"
                )
                isolation, zone_inside = await cursor.fetchone()
            seen.append((zone, isolation, zone_inside))
        return seen

    async def theirs(rounds: int) -> list[tuple[str, str]]:
        seen = []
        async with await psycopg.AsyncConnection.connect(
            host="127.0.0.1", port=TOPOLOGY_PORTS.bouncer, user="postgres",
            dbname=topology.DATABASE, autocommit=True, prepare_threshold=None,
        ) as other:  # fmt: skip
            await other.execute("SET TIME ZONE 'Asia/Tokyo'")
            for _ in range(rounds):
                async with other.transaction():
                    row = await (
                        await other.execute(
                            "SELECT current_setting('transaction_isolation'), "
                            "current_setting('TimeZone')"
                        )
                    ).fetchone()
                seen.append(row)
                await asyncio.sleep(0)
        return seen

    async def main():
        return await asyncio.gather(*(ours(20) for _ in range(6)), *(theirs(20) for _ in range(4)))

    results = arun(main)
    for seen in results[:6]:
        assert set(seen) == {("UTC", "serializable", "UTC")}
    for seen in results[6:]:
        assert set(seen) == {("read committed", "Asia/Tokyo")}


# --- the replica restarts ---------------------------------------------------------------


def test_a_replica_restart_while_idle_fails_no_query(servers):
    async def main():
        found = seam.pool(REPLICA)
        await asyncio.gather(*(fetch(REPLICA, "SELECT pg_sleep(0.1)") for _ in range(4)))
        before = found.idle
        await asyncio.to_thread(servers.restart_replica)
        failures = 0
        for _ in range(10):
            try:
                assert await Tag.objects.using(REPLICA).filter(name="seed").aexists()
            except OperationalError:
                failures += 1
        return before, failures, found.size, found.idle

    before, failures, size, idle = arun(main)
    assert before == 4
    assert failures == 0
    assert size == idle == 1  # the 4 dead connections were dropped, one new one serves


def test_a_replica_restart_under_load(servers):
    """Readers keep reading while the replica restarts: what fails during the restart
    fails with Django's OperationalError, everything after it succeeds, and no connection
    is left checked out or in a transaction."""

    async def main():
        stop = asyncio.Event()
        errors: list[BaseException] = []
        reads = 0

        async def reader() -> None:
            nonlocal reads
            while not stop.is_set():
                try:
                    await Tag.objects.using(REPLICA).filter(name="seed").acount()
                    reads += 1
                except Exception as exc:
                    errors.append(exc)
                    await asyncio.sleep(0.02)

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        await asyncio.sleep(0.3)
        before = reads
        await asyncio.to_thread(servers.restart_replica)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*readers)
        after = await asyncio.gather(
            *(Tag.objects.using(REPLICA).filter(name="seed").acount() for _ in range(20))
        )
        found = seam.pool(REPLICA)
        return before, errors, after, found.size, found.idle, [c.reusable() for c in found._idle]

    before, errors, after, size, idle, reusable = arun(main)
    print(f"replica restart under load: {len(errors)} failed reads ({before} before it)")
    assert before > 0
    assert all(isinstance(error, OperationalError) for error in errors), errors
    assert after == [1] * 20
    assert idle == size and all(reusable)


# --- declaring the pooler (ASYNC "POOLER") ------------------------------------------------

ROLE = "asyncdb_app"


@pytest.fixture
def app_role(servers):
    """A role with rights on the test app's tables but one (testapp_publisher)."""
    exists = servers.sql("primary", f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'")
    if not exists:
        servers.sql("primary", f"CREATE ROLE {ROLE}")
        servers.sql("primary", f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}")
        servers.sql("primary", f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
        servers.sql("primary", f"REVOKE ALL ON testapp_publisher FROM {ROLE}")
    yield servers
    servers.reconnect_bouncer()


async def _current_user_through_pooler(transaction_: bool) -> str:
    """``current_user`` as another client of PgBouncer sees it."""
    async with await psycopg.AsyncConnection.connect(
        host="127.0.0.1", port=TOPOLOGY_PORTS.bouncer, user="postgres",
        dbname=topology.DATABASE, autocommit=True, prepare_threshold=None,
    ) as other:  # fmt: skip
        if transaction_:
            async with other.transaction():
                row = await (await other.execute("SELECT current_user")).fetchone()
        else:
            row = await (await other.execute("SELECT current_user")).fetchone()
    assert row is not None
    return str(row[0])


def test_a_role_per_transaction_behind_a_declared_pooler(app_role):
    """OPTIONS["assume_role"] with ASYNC "POOLER": "transaction": every statement of ours
    (outside a transaction, in one, in an aiterator() stream) runs in the role, and the
    pooler's other clients never get it."""
    alias = "topology_bouncer_role"

    async def ours(rounds: int) -> set[str]:
        seen = set()
        for i in range(rounds):
            async with django_cursor(alias) as cursor:
                await cursor.execute("SELECT current_user")
                seen.add((await cursor.fetchone())[0])
            async with transaction.atomic(using=alias):
                await Tag.objects.using(alias).acreate(name=f"role{next(_names)}")
                async with django_cursor(alias) as cursor:
                    await cursor.execute("SELECT current_user")
                    seen.add((await cursor.fetchone())[0])
            if i % 5 == 0:
                async for tag in Tag.objects.using(alias).filter(name="seed").aiterator():
                    assert tag.name == "seed"
        return seen

    async def theirs(rounds: int) -> set[str]:
        seen = set()
        for i in range(rounds):
            seen.add(await _current_user_through_pooler(transaction_=i % 2 == 0))
        return seen

    async def denied() -> str:
        """The role is what the server checks rights against (none on publishers)."""
        try:
            await Publisher.objects.using(alias).acount()
        except ProgrammingError as exc:
            return str(exc)
        return "no error"

    async def main():
        results = await asyncio.gather(
            *(ours(15) for _ in range(6)), *(theirs(15) for _ in range(3))
        )
        return results, await denied()

    results, error = arun(main)
    assert all(seen == {ROLE} for seen in results[:6])
    assert all(seen == {"postgres"} for seen in results[6:])
    assert "permission denied" in error


def test_a_per_connection_role_leaks_through_the_pooler_undeclared(app_role):
    """The reference (Django's own sync connections do the same): SET ROLE once per
    connection, through a transaction-mode pooler, stays on the server connection that
    PgBouncer hands to its next client."""
    alias = "topology_bouncer_role_undeclared"

    async def main():
        async with django_cursor(alias) as cursor:
            await cursor.execute("SELECT 1")
        return await _current_user_through_pooler(transaction_=False)

    assert arun(main) == ROLE


def test_prepared_statements_through_an_undeclared_pooler_fail(servers):
    """Why "POOLER" refuses prepared statements: with server-side binding and a
    prepare_threshold, psycopg names its statements per connection (_pg3_0, ...), and
    PgBouncer 1.18 runs them on server connections that never saw them, or saw another
    client's."""
    alias = "topology_bouncer_prepared"

    async def client() -> None:
        for i in range(10):
            await Tag.objects.using(alias).filter(name=f"x{i % 3}").aexists()

    async def main():
        outcomes = await asyncio.gather(*(client() for _ in range(20)), return_exceptions=True)
        return [str(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]

    try:
        errors = arun(main)
    finally:
        servers.reconnect_bouncer()
    assert errors and all("prepared statement" in error for error in errors)
    with pytest.raises(ImproperlyConfigured, match="prepared statements"):
        conf.check_pooler(
            conf.parse(alias, "postgresql", {"POOLER": "transaction"}),
            connections.settings[alias]["OPTIONS"],
        )


def test_the_check_warns_of_djangos_own_connections_setting_the_role(servers):
    from django_asyncdb.checks import check_pooler_roles

    warnings_ = check_pooler_roles()
    assert [w.id for w in warnings_] == ["django_asyncdb.W002"]
    assert "'topology_bouncer_role'" in warnings_[0].msg
