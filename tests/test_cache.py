"""django_asyncdb.cache.RedisCache against a real Redis: its async methods give what
Django's RedisCache gives (results, stored bytes, expiries), share entries with the sync
side, hop to no thread, fail with redis-py's errors, survive cancellation, and close
their connections with the loop or on lifespan shutdown."""

import asyncio
import socket
import uuid

import pytest
import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.exceptions import ImproperlyConfigured

from django_asyncdb import cache as native_cache
from django_asyncdb.cache import RedisCache
from helpers import need_redis

DB = 11  # a Redis database of the tests' own


need_redis()

LOCATION = f"redis://127.0.0.1:6379/{DB}"


@pytest.fixture
def raw():
    client = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _params(prefix: str, **options):
    return {"KEY_PREFIX": prefix, "TIMEOUT": 300, "OPTIONS": options}


def _pair(**options):
    """Django's backend and the native one, each with a key prefix of its own."""
    ours = RedisCache(LOCATION, _params("ours", **options))
    djangos = DjangoRedisCache(LOCATION, _params("django", **options))
    return ours, djangos


class Thing:
    """A value that pickles (a class of the tests, not a builtin)."""

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Thing) and other.n == self.n


# (method, args, kwargs): Django's cache API, every kind of value and timeout.
SCENARIO = [
    ("set", ("a", {"x": [1, 2]}), {}),
    ("get", ("a",), {}),
    ("get", ("missing", "fallback"), {}),
    ("set", ("int", 41), {}),
    ("incr", ("int",), {}),
    ("incr", ("int", 10), {}),
    ("decr", ("int", 2), {}),
    ("set", ("bool", True), {"timeout": None}),
    ("set", ("thing", Thing(3)), {"timeout": 60}),
    ("get", ("thing",), {}),
    ("add", ("a", "no"), {}),
    ("add", ("new", "yes"), {"timeout": 30}),
    ("add", ("zero", "gone"), {"timeout": 0}),
    ("set", ("zero", "gone"), {"timeout": 0}),
    ("set", ("negative", "gone"), {"timeout": -5}),
    ("has_key", ("new",), {}),
    ("has_key", ("zero",), {}),
    ("touch", ("new", 120), {}),
    ("touch", ("bool",), {"timeout": None}),
    ("touch", ("missing",), {}),
    ("set_many", ({"m1": 1, "m2": "two", "m3": Thing(3)},), {"timeout": 90}),
    ("set_many", ({},), {}),
    ("get_many", (["m1", "m2", "m3", "missing"],), {}),
    ("delete", ("m1",), {}),
    ("delete", ("m1",), {}),
    ("delete_many", (["m2", "missing"],), {}),
    ("set", ("versioned", "v1"), {"version": 1}),
    ("set", ("versioned", "v2"), {"version": 2}),
    ("get", ("versioned",), {"version": 2}),
    ("incr_version", ("versioned",), {"version": 2}),
    ("get", ("versioned",), {"version": 3}),
    ("decr_version", ("versioned",), {"version": 3}),
    ("get_or_set", ("made", "value"), {"timeout": 40}),
    ("get_or_set", ("made", "other"), {}),
    ("get_or_set", ("called", lambda: [1]), {}),
]


def _stored(client, prefix):
    """What Redis holds under ``prefix``: {key without prefix: (bytes, ttl class)}."""
    found = {}
    for key in client.keys(f"{prefix}:*"):
        ttl = client.ttl(key)
        found[key.decode()[len(prefix) :]] = (client.get(key), "persistent" if ttl < 0 else ttl)
    return found


def _outcome(call):
    try:
        return ("ok", call())
    except Exception as exc:  # compared by type and message
        return ("error", type(exc), str(exc))


def test_async_methods_give_what_djangos_backend_gives(raw):
    ours, djangos = _pair()
    expected = [
        _outcome(lambda m=m, a=a, k=k: getattr(djangos, m)(*a, **k)) for m, a, k in SCENARIO
    ]

    async def main():
        got = []
        for method, args, kwargs in SCENARIO:
            try:
                got.append(("ok", await getattr(ours, "a" + method)(*args, **kwargs)))
            except Exception as exc:
                got.append(("error", type(exc), str(exc)))
        return got

    assert asyncio.run(main()) == expected
    mine, theirs = _stored(raw, "ours"), _stored(raw, "django")
    assert mine.keys() == theirs.keys()
    for key, (value, ttl) in theirs.items():
        assert mine[key][0] == value, key
        assert (mine[key][1] == "persistent") == (ttl == "persistent"), key
        if ttl != "persistent":
            assert abs(mine[key][1] - ttl) <= 2, key


def test_errors_are_djangos(raw):
    """incr of a missing key, of a pickled value, a key too long for memcached (a
    warning in Django) behave the same on both sides."""
    ours = RedisCache(LOCATION, _params("e"))
    djangos = DjangoRedisCache(LOCATION, _params("e"))  # the same keys: the same messages
    djangos.set("text", "abc")
    cases = [("incr", ("missing",)), ("incr", ("text",)), ("decr", ("missing",))]
    for method, args in cases:
        expected = _outcome(lambda m=method, a=args: getattr(djangos, m)(*a))
        got = asyncio.run(_async_outcome(getattr(ours, "a" + method), *args))
        assert got == expected, method
    with pytest.warns(Warning) as sync_warnings:
        djangos.set("k" * 300, 1)
    with pytest.warns(Warning) as async_warnings:
        asyncio.run(ours.aset("k" * 300, 1))
    assert [str(w.message) for w in async_warnings] == [str(w.message) for w in sync_warnings]


async def _async_outcome(method, *args):
    try:
        return ("ok", await method(*args))
    except Exception as exc:
        return ("error", type(exc), str(exc))


def test_sync_and_async_sides_share_entries(raw):
    """One backend, one prefix: what either side writes, the other reads (the bytes are
    Django's serializer's, so Django's own RedisCache reads them too)."""
    ours = RedisCache(LOCATION, _params("shared"))
    djangos = DjangoRedisCache(LOCATION, _params("shared"))

    async def main():
        await ours.aset("from_async", Thing(7), 100)
        written = djangos.get("from_async"), ours.get("from_async")
        djangos.set("counter", 10)
        counted = await ours.aincr("counter", 5)
        djangos.set("from_sync", {"a": 1}, version=4)
        read = await ours.aget("from_sync", version=4), await ours.aget("from_sync")
        return written, counted, djangos.get("counter"), read

    assert asyncio.run(main()) == ((Thing(7), Thing(7)), 15, 15, ({"a": 1}, None))


def test_async_api_hops_to_no_thread(raw, thread_hops):
    ours, _ = _pair()

    async def main():
        for method, args, kwargs in SCENARIO:
            await getattr(ours, "a" + method)(*args, **kwargs)
        await ours.adecr("int")
        await ours.aclear()
        await ours.aclose()

    asyncio.run(main())
    assert thread_hops == []


def test_sync_calls_in_the_bridge_are_native(raw, thread_hops):
    """Sync cache calls from Django's code run in the bridge (a model signal's receiver,
    the ASGI handler's hooks) use the loop's asyncio client: no blocking socket on the
    loop, no thread."""
    from django_asyncdb import bridge

    ours, _ = _pair()

    def sync_code():
        ours.set("in_bridge", [1, 2])
        assert isinstance(ours._cache, native_cache._LoopClient)
        return ours.get("in_bridge"), ours.has_key("in_bridge")

    async def main():
        return await bridge.run(sync_code)

    assert asyncio.run(main()) == ([1, 2], True)
    assert thread_hops == []
    assert not isinstance(ours._cache, native_cache._LoopClient)  # outside: Django's client


def test_redis_down_raises_what_djangos_backend_raises():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # closed once the block ends: nothing listens
    location = f"redis://127.0.0.1:{port}/0"
    ours = RedisCache(location, _params("down"))
    djangos = DjangoRedisCache(location, _params("down"))
    expected = _outcome(lambda: djangos.get("k"))
    got = asyncio.run(_async_outcome(ours.aget, "k"))
    assert expected[0] == "error"
    assert got[:2] == expected[:2]  # redis.exceptions.ConnectionError
    assert issubclass(got[1], redis.exceptions.ConnectionError)


def test_cancelled_command_leaves_no_reply_behind(raw):
    """Redis paused (CLIENT PAUSE) while a task waits for its aget(); the task is
    cancelled; after the pause, the next commands get their own replies, never the
    cancelled one's."""
    ours, _ = _pair()
    admin = redis.Redis(host="127.0.0.1", port=6379, db=DB)

    async def main():
        await ours.aset("old", "old value")
        await ours.aset("other", "other value")
        admin.execute_command("CLIENT", "PAUSE", 2000, "ALL")
        try:
            waiting = asyncio.create_task(ours.aget("old"))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        return await ours.aget("other"), await ours.aget("old"), await ours.aget("missing", 0)

    try:
        assert asyncio.run(main()) == ("other value", "old value", 0)
    finally:
        admin.close()


def _connections_named(name):
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        return sum(1 for c in client.client_list() if c.get("name") == name)
    finally:
        client.close()


def test_connections_are_per_loop_shared_and_closed_when_the_loop_ends(raw):
    name = f"adb-{uuid.uuid4().hex[:8]}"
    first = RedisCache(LOCATION, _params("p", client_name=name))
    second = RedisCache(LOCATION, _params("p", client_name=name))  # as Django makes per context

    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(first.aset(f"k{n}", n) for n in range(5)))
        await second.aget("k1")
        clients = native_cache._clients[loop]
        return len(clients), _connections_named(name)

    assert asyncio.run(main()) == (1, 5)  # one client for both instances; 5 at once
    assert _connections_named(name) == 0  # asyncio.run ended the loop: all closed
    assert not [loop for loop in native_cache._clients if loop.is_closed()]


def test_lifespan_shutdown_closes_the_loops_connections(raw):
    from django_asyncdb.asgi import with_lifespan

    name = f"adb-{uuid.uuid4().hex[:8]}"
    ours = RedisCache(LOCATION, _params("l", client_name=name))

    async def app(scope, receive, send):
        raise AssertionError("only lifespan here")

    async def main():
        await ours.aset("k", 1)
        before = _connections_named(name)
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        sent = []

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message["type"])

        await with_lifespan(app)({"type": "lifespan"}, receive, send)
        after = _connections_named(name)
        again = await ours.aget("k")  # a new connection after shutdown still works
        return before, after, sent, again

    before, after, sent, again = asyncio.run(main())
    assert (before, after, again) == (1, 0, 1)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_pool_and_parser_options_take_their_asyncio_twins(raw):
    ours = RedisCache(
        LOCATION,
        _params("o", pool_class="redis.BlockingConnectionPool", max_connections=3, db=DB),
    )

    async def main():
        await asyncio.gather(*(ours.aset(f"k{n}", n) for n in range(10)))  # 3 connections
        client = native_cache._clients[asyncio.get_running_loop()][ours._key]
        pool = next(iter(client._pools.values()))
        return type(pool), pool.max_connections, await ours.aget_many([f"k{n}" for n in range(10)])

    kind, size, values = asyncio.run(main())
    assert issubclass(kind, redis.asyncio.BlockingConnectionPool)
    assert size == 3
    assert values == {f"k{n}": n for n in range(10)}
    assert type(ours._cache._get_connection_pool(write=True)) is redis.BlockingConnectionPool


def test_instances_of_one_setting_share_its_options_and_see_them_change(raw):
    """Django makes an instance per request context from the same settings dict: what the
    backend derives from it is made once, and made again if the dict changes."""
    options = {"pool_class": "redis.BlockingConnectionPool", "max_connections": 3}
    params = {"KEY_PREFIX": "s", "OPTIONS": options}
    first, second = RedisCache(LOCATION, dict(params)), RedisCache(LOCATION, dict(params))
    assert first._key == second._key and first._options is second._options
    options["max_connections"] = 5  # changed in place
    third = RedisCache(LOCATION, dict(params))
    assert third._key != first._key
    assert third._options == {"pool_class": "redis.BlockingConnectionPool", "max_connections": 5}
    assert first._options["max_connections"] == 3

    async def sizes():
        await asyncio.gather(first.aset("a", 1), third.aset("b", 2))
        clients = native_cache._clients[asyncio.get_running_loop()]
        return [next(iter(clients[c._key]._pools.values())).max_connections for c in (first, third)]

    assert asyncio.run(sizes()) == [3, 5]
    # No OPTIONS: Django hands each instance a new empty dict; still derived once.
    bare = [RedisCache(LOCATION, {"KEY_PREFIX": "n"}) for _ in range(2)]
    assert bare[0]._options is bare[1]._options and bare[0]._options == {}
    # Another location, the same OPTIONS: its own key.
    other = RedisCache(f"redis://127.0.0.1:6379/{DB + 1}", dict(params))
    assert other._key != third._key and other._servers != third._servers


def test_a_pool_class_without_an_asyncio_twin_is_refused_at_once():
    class OwnPool(redis.ConnectionPool):
        pass

    with pytest.raises(ImproperlyConfigured, match="async_pool_class"):
        RedisCache(LOCATION, _params("x", pool_class=OwnPool))
    # Given one, both sides get theirs; Django's sync client never sees the extra option.
    ours = RedisCache(
        LOCATION,
        _params("x", pool_class=OwnPool, async_pool_class="redis.asyncio.ConnectionPool"),
    )
    assert type(ours._cache._get_connection_pool(write=True)) is OwnPool
    assert asyncio.run(ours.aget("missing", "default")) == "default"


# Under the package's ASGI handler ------------------------------------------------------

import asgi_project  # noqa: E402
from conftest import arun  # noqa: E402
from test_asgi import call, project, serve  # noqa: E402, F401  (project: a fixture)

NATIVE_CACHES = {"default": {"BACKEND": "django_asyncdb.cache.RedisCache", "LOCATION": LOCATION}}
CACHED_SITE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    *asgi_project.MIDDLEWARE,
    "django.middleware.cache.FetchFromCacheMiddleware",
]


async def cached_session_and_page(app, alias):
    """Two visits with a cache session, then a page twice (the second from the cache)."""
    from importlib import import_module

    from django.conf import settings

    SessionStore = import_module(settings.SESSION_ENGINE).SessionStore

    first = await call(app, "GET", f"/{alias}/visits/")
    key = first.cookies()["sessionid"].value
    second = await call(app, "GET", f"/{alias}/visits/", cookies={"sessionid": key})
    stored = await SessionStore(key).aload()
    del asgi_project.PAGES_MADE[:]
    pages = [await call(app, "GET", "/page/") for _ in range(2)]
    return {
        "visits": [first.json(), second.json()],
        "session": stored,
        "pages": [page.json() for page in pages],
        "made": len(asgi_project.PAGES_MADE),
    }


@pytest.mark.parametrize("engine", ["cache", "cached_db"])
def test_cache_sessions_and_cache_middleware_run_on_the_loop(raw, project, thread_hops, engine):  # noqa: F811
    """With the native cache, the session and cache middleware's hooks run on the loop:
    the same responses and stored session as Django's handler gives, and no thread."""
    from django.test import override_settings

    from django_asyncdb import hooks

    with override_settings(
        CACHES=NATIVE_CACHES,
        SESSION_ENGINE=f"django.contrib.sessions.backends.{engine}",
        MIDDLEWARE=CACHED_SITE,
    ):
        decided = hooks.LoopHooks()
        from django.contrib.sessions.middleware import SessionMiddleware
        from django.middleware.cache import FetchFromCacheMiddleware, UpdateCacheMiddleware

        assert decided.middleware_class(SessionMiddleware)
        assert decided.middleware_class(UpdateCacheMiddleware)
        assert decided.middleware_class(FetchFromCacheMiddleware)
        outcome = {}
        for kind in ("django", "asyncdb"):
            raw.flushdb()
            app = serve(kind)
            del thread_hops[:]
            outcome[kind] = (arun(cached_session_and_page, app, project), list(thread_hops))
    theirs, their_hops = outcome["django"]
    ours, our_hops = outcome["asyncdb"]
    assert ours == theirs
    assert ours["session"] == {"visits": 2}
    assert ours["made"] == 1  # the second page came from the cache
    assert our_hops == []
    assert "FetchFromCacheMiddleware.process_request" in their_hops


def test_cache_hooks_stay_in_threads_on_djangos_cache_backend(schema):
    from django.test import override_settings

    from django_asyncdb import hooks

    djangos = {
        "default": {
            **NATIVE_CACHES["default"],
            "BACKEND": DjangoRedisCache.__module__ + ".RedisCache",
        }
    }
    with override_settings(CACHES=djangos, SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        decided = hooks.LoopHooks()
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.middleware.cache import UpdateCacheMiddleware

    assert not decided.middleware_class(SessionMiddleware)
    assert not decided.middleware_class(UpdateCacheMiddleware)


def _kill_connections_named(name):
    """The server drops our connections (as on a restart or a proxy's idle timeout)."""
    admin = redis.Redis(host="127.0.0.1", port=6379)
    try:
        for client in admin.client_list():
            if client.get("name") == name:
                admin.client_kill_filter(_id=client["id"])
    finally:
        admin.close()


def test_connections_dropped_by_the_server_as_djangos_backend(raw):
    """Redis drops every pooled connection between two calls: the next call does what it
    does on Django's backend (redis-py reconnects, or raises its ConnectionError), the
    one after works, and no connection is left behind."""
    name = f"adb-{uuid.uuid4().hex[:8]}"
    djangos = DjangoRedisCache(LOCATION, _params("k", client_name=name + "-django"))
    ours = RedisCache(LOCATION, _params("k", client_name=name))
    djangos.set("key", "value")
    djangos.get("key")  # its pool holds a connection now
    _kill_connections_named(name + "-django")
    expected = _outcome(lambda: djangos.get("key"))

    async def main():
        await ours.aget("key")  # a pooled connection
        _kill_connections_named(name)
        got = await _async_outcome(ours.aget, "key")
        return got, await ours.aget("key"), _connections_named(name)

    got, after, open_now = asyncio.run(main())
    assert got[:2] == expected[:2]
    assert after == "value"
    assert open_now == 1
    assert _connections_named(name) == 0  # the loop's end closed it
    djangos._cache.get_client().connection_pool.disconnect()


def test_socket_timeout_while_redis_is_paused(raw):
    """OPTIONS socket_timeout 0.2 s, Redis paused for 1 s: aget() raises redis-py's
    TimeoutError as Django's get() does, and the commands after the pause get their own
    replies, never the timed-out one's."""
    options = {"socket_timeout": 0.2}
    djangos = DjangoRedisCache(LOCATION, _params("t", **options))
    ours = RedisCache(LOCATION, _params("t", **options))
    admin = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    djangos.set("first", 1)
    djangos.set("second", 2)

    async def main():
        await ours.aget("first")  # connected before the pause
        admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        try:
            expected = _outcome(lambda: djangos.get("first"))
            got = await _async_outcome(ours.aget, "first")
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        return expected, got, await ours.aget("second"), await ours.aget("first")

    try:
        expected, got, second, first = asyncio.run(main())
    finally:
        admin.close()
    assert expected[0] == "error" and issubclass(expected[1], redis.exceptions.TimeoutError)
    assert got[:2] == expected[:2]
    assert (second, first) == (2, 1)
