"""Real async Django libraries on the native ORM: django-ninja, adrf (async DRF), Channels.

tests/libraries_project.py is a small project written as each library's docs show it.
HTTP requests go through Django's ASGIHandler and through ours and must get the same
answers; the WebSocket consumer is driven with Channels' WebsocketCommunicator. Every
scenario records its thread hops: none may be an ORM method (the package runs those
natively), and the hops left are listed exactly, each with whose it is, so that a change in
a library or in the package shows up here.
"""

import json
from collections import Counter as Tally

import pytest
from asgiref.sync import sync_to_async
from channels.db import aclose_old_connections
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.db import connections, transaction
from django.test import override_settings

import libraries_project
from conftest import REFERENCE, arun
from django_asyncdb.asgi import ASGIHandler
from libraries_project import atomic
from test_asgi import call
from testapp.models import Book, Counter, Tag

# Qualnames of the ORM methods that Django's own a-methods run in a thread. QuerySet's
# _fetch_all (where `async for` hops) is the package's fetch_all (patch.py).
ORM_CLASSES = ("QuerySet.", "Model.", "BaseManager.", "Manager.", "Collector.")
ORM_FUNCTIONS = {"fetch_all"}

# Django's handler runs its request hooks in a thread, ours on the event loop
# (tests/test_asgi.py): the hops that Django's handler adds to every request here.
DJANGO_HANDLER = {
    "Signal.asend.<locals>.sync_send",  # request_started's receivers
    "SessionMiddleware.process_request",
    "AuthenticationMiddleware.process_request",
    "SessionMiddleware.process_response",
    "HttpResponseBase.close",  # request_finished's receivers
}
# Django's own hops under either handler.
LOG_RESPONSE = "log_response"  # a 4xx/5xx response is logged in a thread
CLOSE = "HttpResponseBase.close"  # request_finished runs where a hop put the request
RENDER = "SimpleTemplateResponse.render"  # DRF's Response is a TemplateResponse


def orm_hops(hops):
    """The hops that ran ORM methods: Django's own async path, which the package replaces."""
    return [
        name
        for name in hops
        if name.startswith(ORM_CLASSES) or "RelatedManager." in name or name in ORM_FUNCTIONS
    ]


def check_hops(outcome, expected):
    """No ORM hop; ours are exactly ``expected``; Django's handler adds its hooks' hops."""
    theirs, ours = outcome["django"][1], outcome["asyncdb"][1]
    assert orm_hops(theirs) == orm_hops(ours) == []
    assert set(ours) == expected
    assert set(theirs) == expected | DJANGO_HANDLER


async def reset(alias):
    """Remove what the scenarios write (the seeded rows stay)."""
    await Book.objects.filter(title__startswith="lib ").adelete()
    await Tag.objects.filter(name__startswith="lib ").adelete()
    await Counter.objects.all().adelete()
    await User.objects.filter(username__startswith="lib").adelete()
    await Session.objects.all().adelete()


@pytest.fixture
def project(alias):
    """The libraries' project, its models (and users and sessions) routed to ``alias``."""
    routers = ["libraries_project.Router", *settings.DATABASE_ROUTERS]
    with override_settings(
        ROOT_URLCONF="libraries_project",
        MIDDLEWARE=libraries_project.MIDDLEWARE,
        ALLOWED_HOSTS=["testserver"],
        DATABASE_ROUTERS=routers,
    ):
        libraries_project.Router.alias = alias
        try:
            yield alias
        finally:
            arun(reset, alias)
            libraries_project.Router.alias = None


def through_both(scenario, alias, hops, setup=None):
    """``scenario(app, alias, *prepared)`` through Django's handler, then ours: (result, hops)."""
    # Each starts from the same data; setup(alias)'s own hops are not recorded.
    outcome = {}
    for kind, app in (("django", DjangoASGIHandler()), ("asyncdb", ASGIHandler())):
        arun(reset, alias)
        prepared = [arun(setup, alias)] if setup else []
        del hops[:]
        result = arun(scenario, app, alias, *prepared)
        outcome[kind] = (result, list(hops))
    assert outcome["asyncdb"][0] == outcome["django"][0]
    return outcome


async def get(app, path, **kwargs):
    response = await call(app, "GET", path, **kwargs)
    return response.status, response.json() if response.body else None


async def send(app, method, path, data):
    body = json.dumps(data).encode()
    response = await call(app, method, path, body=body, content_type=b"application/json")
    return response.status, response.json() if response.body else None


# django-ninja ---------------------------------------------------------------------------


async def ninja_reads(app, alias):
    long_books = Book.objects.filter(pages__gte=400).order_by("id")
    expected_ids = [pk async for pk in long_books.values_list("pk", flat=True)]
    page = await get(app, "/ninja/books?min_pages=400&limit=3&offset=2")
    tagged = await get(app, "/ninja/books?tag=poetry&limit=100")
    detail = await get(app, "/ninja/books/7")
    book = await Book.objects.select_related("author").aget(pk=7)
    return {
        "page": (page[0], page[1]["count"], [b["id"] for b in page[1]["items"]]),
        "expected_page": (200, len(expected_ids), expected_ids[2:5]),
        "tagged": (tagged[0], tagged[1]["count"]),
        "expected_tagged": (200, await Book.objects.filter(tags__name="poetry").acount()),
        "tags_of_tagged": {
            "poetry" in [tag["name"] for tag in b["tags"]] for b in tagged[1]["items"]
        },
        "detail": detail,
        "expected_author": {"id": book.author.id, "name": book.author.name},
        "missing": (await get(app, "/ninja/books/999"))[0],
    }


def test_ninja_list_detail_and_pagination(project, thread_hops):
    outcome = through_both(ninja_reads, project, thread_hops)
    ours = outcome["asyncdb"][0]
    assert ours["page"] == ours["expected_page"]
    assert ours["tagged"] == ours["expected_tagged"]
    assert ours["tags_of_tagged"] == {True}
    assert ours["detail"][0] == 200
    assert ours["detail"][1]["author"] == ours["expected_author"]
    assert ours["missing"] == 404
    # Async operations and @paginate: ninja itself makes no hop.
    check_hops(outcome, {LOG_RESPONSE})


async def ninja_writes(app, alias):
    book = {
        "title": "lib new",
        "author_id": 3,
        "pages": 120,
        "price": "9.50",
        "published": "2024-05-01",
        "tags": ["poetry", "lib fresh"],
    }
    created = await send(app, "POST", "/ninja/books", book)
    orphan = {**book, "title": "lib orphan", "author_id": 999, "tags": ["lib lost"]}
    refused = await send(app, "POST", "/ninja/books", orphan)
    invalid = await send(app, "POST", "/ninja/books", {**book, "pages": "many"})
    books = [b async for b in Book.objects.filter(title__startswith="lib ").values_list("title")]
    tags = [t async for t in Tag.objects.filter(name__startswith="lib ").values_list("name")]
    # Ids differ from run to run: compare names.
    created[1].pop("id")
    created[1]["tags"] = sorted(tag["name"] for tag in created[1]["tags"])
    return {"created": created, "refused": refused, "invalid": invalid[0], "left": (books, tags)}


def test_ninja_post_writes_all_or_nothing(project, thread_hops):
    outcome = through_both(ninja_writes, project, thread_hops)
    ours = outcome["asyncdb"][0]
    status, body = ours["created"]
    assert status == 201
    assert body["author"] == {"id": 3, "name": "Author 03"}
    assert body["tags"] == ["lib fresh", "poetry"]
    # The unknown author fails at the insert (MariaDB) or at the commit (deferred foreign
    # keys): either way the tag "lib lost", created before it, is rolled back.
    assert ours["refused"] == (409, {"detail": "conflict"})
    assert ours["invalid"] == 422
    assert ours["left"] == ([("lib new",)], [("lib fresh",)])
    check_hops(outcome, {LOG_RESPONSE})


async def signed_in_session(alias):
    """The session key of a new user, logged in as Django's login() leaves it."""
    user = await User.objects.acreate_user("lib reader")
    session = SessionStore()
    await session.aupdate(
        {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    await session.asave()
    return session.session_key


async def ninja_session_auth(app, alias, session_key):
    anonymous = await get(app, "/ninja/me")
    signed_in = await get(app, "/ninja/me", cookies={"sessionid": session_key})
    return anonymous, signed_in


def test_ninja_session_auth_runs_in_a_thread(project, thread_hops):
    outcome = through_both(ninja_session_auth, project, thread_hops, setup=signed_in_session)
    assert outcome["asyncdb"][0] == (
        (401, {"detail": "Unauthorized"}),
        (200, {"username": "lib reader"}),
    )
    # ninja calls a sync auth (its own django_auth) with sync_to_async; request.user's
    # session and user queries run there, on Django's sync connection.
    check_hops(outcome, {"SessionAuth", CLOSE, LOG_RESPONSE})


def test_the_counter_sees_djangos_orm_hops(project, thread_hops):
    """On an opted-out alias the same API hops for its queries: orm_hops() sees them."""
    ours = arun(ninja_reads, ASGIHandler(), project)
    assert orm_hops(thread_hops) == []
    libraries_project.Router.alias = REFERENCE[project]  # the same database
    try:
        assert arun(ninja_reads, ASGIHandler(), project) == ours
    finally:
        libraries_project.Router.alias = project
    # async for (ninja's paginator, prefetch_related), acount, aget: each in a thread.
    assert set(orm_hops(thread_hops)) == {"fetch_all", "QuerySet.count", "QuerySet.get"}


# adrf (async DRF) ---------------------------------------------------------------------------


async def drf_crud(app, alias):
    created = await send(app, "POST", "/drf/tags/", {"name": "lib one"})
    duplicate = await send(app, "POST", "/drf/tags/", {"name": "lib one"})
    too_long = await send(app, "POST", "/drf/tags/", {"name": "lib " + "x" * 40})
    await send(app, "POST", "/drf/tags/", {"name": "lib two"})
    await send(app, "POST", "/drf/tags/", {"name": "lib three"})
    pk = created[1]["id"]
    pages = [await get(app, f"/drf/tags/?prefix=lib&page={n}") for n in (1, 2)]
    retrieved = await get(app, f"/drf/tags/{pk}/")
    updated = await send(app, "PUT", f"/drf/tags/{pk}/", {"name": "lib uno"})
    clash = await send(app, "PATCH", f"/drf/tags/{pk}/", {"name": "lib two"})
    deleted = await call(app, "DELETE", f"/drf/tags/{pk}/")
    gone = await get(app, f"/drf/tags/{pk}/")
    left = [n async for n in Tag.objects.filter(name__startswith="lib ").values_list("name")]
    return {
        "created": created[0],
        "duplicate": duplicate,
        "too_long": too_long[0],
        "pages": [
            (s, body["count"], [tag["name"] for tag in body["results"]]) for s, body in pages
        ],
        "retrieved": (retrieved[0], retrieved[1]["name"]),
        "updated": (updated[0], updated[1]["name"]),
        "clash": clash,
        "deleted": (deleted.status, gone[0]),
        "left": sorted(left),
    }


UNIQUE = {"name": ["tag with this name already exists."]}
# adrf's own hops: it runs DRF's sync machinery with sync_to_async.
ADRF = {
    "APIView.initial",  # authentication, permissions, throttles, content negotiation
    "BaseSerializer.is_valid",  # validation, the UniqueValidator's query included
    # ModelSerializer's fields are DRF's sync fields: two hops per field and object.
    "Field.get_attribute",
    "BigIntegerField.to_representation",
    "CharField.to_representation",
}


def test_adrf_viewset_crud(project, thread_hops):
    outcome = through_both(drf_crud, project, thread_hops)
    ours = outcome["asyncdb"][0]
    assert ours["created"] == 201
    assert ours["duplicate"] == (400, UNIQUE)
    assert ours["too_long"] == 400
    assert ours["pages"] == [(200, 3, ["lib one", "lib three"]), (200, 3, ["lib two"])]
    assert ours["retrieved"] == (200, "lib one")
    assert ours["updated"] == (200, "lib uno")
    assert ours["clash"] == (400, UNIQUE)
    assert ours["deleted"] == (204, 404)
    assert ours["left"] == [("lib three",), ("lib two",)]  # the refused ones wrote nothing
    adrf = ADRF | {
        "APIView.check_object_permissions",  # aget_object()
        # A sync paginator: its count and page queries run in the thread.
        "PageNumberPagination.paginate_queryset",
        "PageNumberPagination.get_paginated_response",
    }
    check_hops(outcome, adrf | {RENDER, CLOSE, LOG_RESPONSE})


async def three_tags(alias):
    await Tag.objects.abulk_create([Tag(name="lib a"), Tag(name="lib b"), Tag(name="lib c")])


def test_adrf_hops_of_one_list_request(project, thread_hops):
    async def one_page(app, alias, _):
        status, body = await get(app, "/drf/tags/?prefix=lib")
        return status, [tag["name"] for tag in body["results"]]

    outcome = through_both(one_page, project, thread_hops, setup=three_tags)
    assert outcome["asyncdb"][0] == (200, ["lib a", "lib b"])
    # A page of 2 tags of 2 fields: 13 hops, 8 of them to serialize 4 values.
    assert Tally(outcome["asyncdb"][1]) == {
        "APIView.initial": 1,
        "PageNumberPagination.paginate_queryset": 1,
        "Field.get_attribute": 4,
        "BigIntegerField.to_representation": 2,
        "CharField.to_representation": 2,
        "PageNumberPagination.get_paginated_response": 1,
        RENDER: 1,
        CLOSE: 1,
    }


async def drf_replaces(app, alias):
    old = await Tag.objects.acreate(name="lib old")
    other = await Tag.objects.acreate(name="lib other")
    await Tag.objects.acreate(name="lib kept")
    replaced = await send(app, "POST", "/drf/tags/", {"name": "lib old", "replaces": [old.pk]})
    refused = await send(app, "POST", "/drf/tags/", {"name": "lib kept", "replaces": [other.pk]})
    left = [n async for n in Tag.objects.filter(name__startswith="lib ").values_list("name")]
    return replaced[0], refused, sorted(left)


def test_adrf_validation_in_a_thread_joins_the_transaction(project, thread_hops):
    outcome = through_both(drf_replaces, project, thread_hops)
    replaced, refused, left = outcome["asyncdb"][0]
    # DRF's unique check ran in a thread inside the view's atomic block and saw the block's
    # delete: another connection would still see "lib old" and refuse it.
    assert replaced == 201
    # It saw "lib kept" too: 400, and the block's delete of "lib other" is rolled back.
    assert refused == (400, UNIQUE)
    assert left == [("lib kept",), ("lib old",), ("lib other",)]
    check_hops(outcome, ADRF | {RENDER, CLOSE, LOG_RESPONSE})


# Channels -------------------------------------------------------------------------------


async def exchange(communicator, message):
    await communicator.send_json_to(message)
    return await communicator.receive_json_from()


async def connected(cookie=None):
    headers = [(b"cookie", f"sessionid={cookie}".encode())] if cookie else []
    communicator = WebsocketCommunicator(
        libraries_project.websocket_application, "/ws/counter/", headers=headers
    )
    accepted, _ = await communicator.connect()
    assert accepted
    return communicator


async def websocket_session(alias):
    first = await connected()
    anonymous = await exchange(first, {"value": 1})
    signed_up = await exchange(first, {"signup": "lib ada"})
    as_ada = await exchange(first, {"value": 2})
    await first.disconnect()
    again = await connected(cookie=signed_up["session"])  # AuthMiddlewareStack's user
    back = await exchange(again, {"value": 3})
    await again.disconnect()
    other = await connected()
    refused = await exchange(other, {"signup": "lib refused"})
    await other.disconnect()
    users = User.objects.filter(username__startswith="lib").values_list("username", "last_login")
    return {
        "replies": [anonymous, as_ada, back],
        "signed_up": signed_up["user"],
        "refused": refused,
        "users": [(name, last_login is not None) async for name, last_login in users],
        "sessions": await Session.objects.acount(),
        "counters": [c async for c in Counter.objects.order_by("value").values_list("name")],
    }


def test_channels_consumer(project, thread_hops):
    result = arun(websocket_session, project)
    assert result["replies"] == [
        {"user": "anonymous", "count": 1},
        {"user": "lib ada", "count": 2},
        {"user": "lib ada", "count": 3},
    ]
    assert result["counters"] == [("ws anonymous",), ("ws lib ada",), ("ws lib ada",)]
    # Channels' login runs in a thread inside the consumer's atomic block: the session row
    # it creates and the last_login that Django's user_logged_in receiver saves (an UPDATE
    # of the user the block created, invisible to another connection) join the block: kept
    # for "lib ada", rolled back with "lib refused".
    assert result["signed_up"] == "lib ada"
    assert result["refused"] == {"refused": "lib refused"}
    assert result["users"] == [("lib ada", True)]
    assert result["sessions"] == 1
    assert orm_hops(thread_hops) == []
    # Channels' communicator swaps close_old_connections for no_op while it sends and
    # receives: the same hop.
    hops = {"close_old_connections" if name == "no_op" else name for name in thread_hops}
    assert hops == {
        "close_old_connections",  # Channels, before every handler and at disconnect
        "get_user",  # AuthMiddlewareStack, once per connection: session and user queries
        "login",  # channels.auth.login: session and last_login writes
        "SessionStore.asave.<locals>.sync_transaction",  # Django's own session.asave()
    }


@pytest.fixture
def thread_connection(project):
    """The alias; afterwards the sync connection of the thread its hops ran in is closed."""
    yield project
    # Thread-sensitive hops outside a request all run in asgiref's one thread.
    arun(sync_to_async(lambda: connections[project].close()))


def test_channels_aclose_old_connections_inside_a_block(thread_connection):
    """Channels' aclose_old_connections() in a block, in a thread already connected."""
    # aclose_old_connections() runs Django's close_old_connections() in a thread. Where that
    # thread holds Django's sync connection from an earlier hop outside the block, Django
    # would find get_autocommit() False (the thread joined the block) and close it inside
    # "atomic", marking the block for rollback and leaving the thread's wrapper closed in a
    # transaction for good. The package leaves that connection alone while the thread is
    # in the block: the block commits, and the thread's next query works.
    alias = thread_connection

    def count():
        return Counter.objects.count()

    async def main():
        await Counter.objects.all().adelete()
        await sync_to_async(count)()  # a hop outside the block: the thread connects
        async with atomic():
            await Counter.objects.acreate(name="in block")
            await aclose_old_connections()
            rolled_back = transaction.get_rollback(using=alias)
        return rolled_back, await sync_to_async(count)()

    assert arun(main) == (False, 1)
