"""ASGI: lifespan closes the pools; django_asyncdb's handler answers as Django's does, with
Django's own sync hooks run on the event loop instead of a thread.

Every scenario runs through Django's ASGIHandler and through ours, on every vendor (the
sessions live on the alias under test), and must give the same responses and the same
sessions; ours must do it without a thread hop where the hooks are safe.
"""

import asyncio
import datetime
import io
import threading
from http.cookies import SimpleCookie

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.sessions.models import Session
from django.core.asgi import get_asgi_application as django_application
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.core.signals import request_finished, request_started
from django.http import FileResponse, HttpResponse
from django.test import override_settings
from django.utils import timezone

import asgi_project
from conftest import arun
from django_asyncdb import bridge, hooks
from django_asyncdb import connections as seam
from django_asyncdb.asgi import ASGIHandler, get_asgi_application, with_lifespan
from testapp.models import Author

PROJECT = {
    "ROOT_URLCONF": "asgi_project",
    "MIDDLEWARE": asgi_project.MIDDLEWARE,
    "ALLOWED_HOSTS": ["testserver"],
}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # [(name, value)] as str, names lowercased
        self.body = body

    def header(self, name):
        return [value for key, value in self.headers if key == name]

    def cookies(self):
        jar = SimpleCookie()
        for value in self.header("set-cookie"):
            jar.load(value)
        return jar

    def json(self):
        import json

        return json.loads(self.body)


async def call(
    app,
    method,
    path,
    *,
    body=b"",
    cookies=None,
    headers=(),
    content_type=b"application/x-www-form-urlencoded",
    messages=None,
):
    """One HTTP request through the ASGI application ``app`` (``messages``: what the
    client sends, instead of one message with ``body``)."""
    path, _, query = path.partition("?")
    raw = [(b"host", b"testserver"), *headers]
    if cookies:
        raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    if body:
        raw.append((b"content-type", content_type))
        # As clients send it: DRF reads no body without it.
        raw.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    pending = list(messages or [{"type": "http.request", "body": body, "more_body": False}])
    disconnect = asyncio.Event()
    sent = []

    async def receive():
        if pending:
            return pending.pop(0)
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    disconnect.set()
    if not sent:
        return None
    start = sent[0]
    headers = [(k.decode().lower(), v.decode()) for k, v in start["headers"]]
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return Response(start["status"], headers, content)


@pytest.fixture
def project(alias):
    """The test project on ``alias`` (its sessions there too)."""
    with override_settings(**PROJECT):
        asgi_project.SessionRouter.alias = alias
        asgi_project.RECORDED.clear()
        try:
            yield alias
        finally:
            asgi_project.SessionRouter.alias = None


@pytest.fixture
def hops(monkeypatch):
    """Every call that ran in a worker thread (asgiref's thread_handler), by function."""
    calls = []
    original = SyncToAsync.thread_handler

    def counting(self, *args, **kwargs):
        calls.append(hooks.dotted(self.func))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "thread_handler", counting)
    return calls


def serve(kind, **kwargs):
    return DjangoASGIHandler() if kind == "django" else ASGIHandler(**kwargs)


def both(scenario, alias, hops, **kwargs):
    """Run ``scenario(app, alias)`` through Django's handler and ours: (results, hops) each."""
    outcome = {}
    for kind in ("django", "asyncdb"):
        app = serve(kind, **kwargs)
        del hops[:]
        result = arun(scenario, app, alias)
        outcome[kind] = (result, list(hops))
    return outcome


def cookie_shape(response):
    """Cookie names and attributes, without values (session keys and tokens are random)."""
    return {
        name: {k: v for k, v in morsel.items() if v and k != "expires"}
        for name, morsel in response.cookies().items()
    }


async def session_visits(app, alias):
    first = await call(app, "GET", f"/{alias}/visits/")
    key = first.cookies()["sessionid"].value
    second = await call(app, "GET", f"/{alias}/visits/", cookies={"sessionid": key})
    stored = await Session.objects.using(alias).aget(session_key=key)
    return {
        "status": [first.status, second.status],
        "json": [first.json(), second.json()],
        "cookies": cookie_shape(first),
        "headers": sorted({name for name, _ in first.headers}),
        "second_sets_cookie": bool(second.header("set-cookie")),
        "session": stored.get_decoded(),
    }


def test_sessions_and_orm_as_django_with_no_hop(project, hops):
    outcome = both(session_visits, project, hops)
    theirs, their_hops = outcome["django"]
    ours, our_hops = outcome["asyncdb"]
    assert ours == theirs
    assert ours["json"][1]["visits"] == 2
    assert ours["json"][1]["user"] == "AnonymousUser"
    assert ours["session"] == {"visits": 2}
    assert our_hops == []
    # Django's handler runs every hook in a thread: the counter can see them.
    assert "django.contrib.sessions.middleware.SessionMiddleware.process_response" in their_hops
    assert len(their_hops) >= 10


async def peeks(app, alias):
    first = await call(app, "GET", f"/{alias}/visits/")
    key = first.cookies()["sessionid"].value
    await (
        Session.objects.using(alias)
        .filter(session_key=key)
        .aupdate(expire_date=timezone.now() + datetime.timedelta(minutes=1))
    )
    peeked = await call(app, "GET", "/peek/", cookies={"sessionid": key})
    nobody = await call(app, "GET", "/peek/")
    # A key the database does not know: the session is empty, the cookie deleted.
    stale = await call(app, "GET", "/peek/", cookies={"sessionid": "x" * 32})
    stored = await Session.objects.using(alias).aget(session_key=key)
    refreshed = stored.expire_date > timezone.now() + datetime.timedelta(minutes=2)
    deleted = [
        any(c.startswith('sessionid="";') for c in r.header("set-cookie"))
        for r in (peeked, nobody, stale)
    ]
    answers = [
        (r.status, r.json(), cookie_shape(r), r.header("vary"), gone)
        for r, gone in zip((peeked, nobody, stale), deleted, strict=True)
    ]
    return answers, refreshed


@pytest.mark.parametrize("every_request", [False, True])
def test_the_session_middleware_saves_in_the_bridge_and_else_works_in_place(
    project, hops, monkeypatch, every_request
):
    """process_response saves a modified session (or every session, with
    SESSION_SAVE_EVERY_REQUEST) in the bridge, its query native; a session only read (or
    none) needs no save: the hook is called in place."""
    bridged = []
    original = bridge.run

    def counting(func, *args, **kwargs):
        bridged.append(hooks.dotted(func))
        return original(func, *args, **kwargs)

    monkeypatch.setattr(bridge, "run", counting)
    with override_settings(SESSION_SAVE_EVERY_REQUEST=every_request):
        outcome = both(peeks, project, hops)
    assert outcome["asyncdb"][0] == outcome["django"][0]
    answers, refreshed = outcome["asyncdb"][0]
    assert answers[0][:2] == (200, {"visits": 1}) and answers[1][:2] == (200, {"visits": 0})
    assert [answer[4] for answer in answers] == [False, False, True]  # deleted, in place
    assert refreshed is every_request  # saved with a new expiry date
    assert outcome["asyncdb"][1] == []
    saves = bridged.count("django.contrib.sessions.middleware.SessionMiddleware.process_response")
    # The first visit's save, then the peek's (every request); never an empty session's.
    assert saves == (2 if every_request else 1)


async def sync_view(app, alias):
    first = await call(app, "GET", f"/{alias}/sync-visits/")
    key = first.cookies()["sessionid"].value
    stored = await Session.objects.using(alias).aget(session_key=key)
    return first.status, first.json(), stored.get_decoded()


def test_sync_view_still_runs_in_a_thread(project, hops):
    outcome = both(sync_view, project, hops)
    assert outcome["asyncdb"][0] == outcome["django"][0]
    assert outcome["asyncdb"][0][1]["visits"] == 1
    # The request's thread ran the view: request_finished's receivers (which close that
    # thread's database connections) run there too, as in Django.
    assert outcome["asyncdb"][1] == [
        "asgi_project.sync_visits",
        "django.http.response.HttpResponseBase.close",
    ]


def test_a_requests_tasks_share_djangos_wrapper(project, hops, monkeypatch):
    """asyncio.gather in a view: under Django's handler each task builds a wrapper of its
    own; under ours the tasks that had none share the request's (as Django's own async ORM
    runs a request's queries on one thread's wrapper), and a task that took its own keeps
    it. Same answers either way."""
    from django.db import connections

    made = []
    original = type(connections).create_connection

    def counting(self, alias):
        made.append(alias)
        return original(self, alias)

    monkeypatch.setattr(type(connections), "create_connection", counting)

    async def scenario(app, alias):
        del made[:]
        response = await call(app, "GET", f"/{alias}/fanout/")
        return response.status, response.json(), made.count(alias)

    outcome = both(scenario, project, hops)
    (status, theirs, their_made), _ = outcome["django"]
    (our_status, ours, our_made), our_hops = outcome["asyncdb"]
    assert status == our_status == 200
    assert ours["counts"] == theirs["counts"]
    assert len(set(theirs["wrappers"])) == 5 and their_made == 5
    own, *shared = ours["wrappers"]
    assert len(set(shared)) == 1 and own not in shared, ours["wrappers"]
    assert our_made == 2
    assert our_hops == []


async def csrf(app, alias):
    page = await call(app, "GET", "/form/")
    token = page.json()["token"]
    cookie = page.cookies()["csrftoken"].value
    refused = await call(app, "POST", "/form/", body=b"name=x", cookies={"csrftoken": cookie})
    body = f"name=ok&csrfmiddlewaretoken={token}".encode()
    accepted = await call(app, "POST", "/form/", body=body, cookies={"csrftoken": cookie})
    return page.status, cookie_shape(page), refused.status, accepted.status, accepted.json()


def test_csrf_as_django_with_no_hop(project, hops):
    outcome = both(csrf, project, hops)
    assert outcome["asyncdb"][0] == outcome["django"][0]
    assert outcome["asyncdb"][0][2:] == (403, 200, {"posted": "ok"})
    # Django logs a 4xx/5xx response in a thread of its own (logging handlers may do I/O).
    assert outcome["asyncdb"][1] == ["django.utils.log.log_response"]


async def refused_with_a_query(app, alias):
    page = await call(app, "GET", "/form/")
    cookie = page.cookies()["csrftoken"].value
    refused = await call(app, "POST", "/form/", body=b"name=x", cookies={"csrftoken": cookie})
    return refused.status, refused.body


def test_csrf_failure_view_of_the_project_queries_natively(project, hops):
    """A project's failure view (called from the CSRF middleware's process_view) may query:
    process_view runs in the bridge (its other hooks, which only read and set the cookie,
    are called in place)."""
    authors = Author.objects.using(project).count()
    with override_settings(CSRF_FAILURE_VIEW="asgi_project.csrf_failure"):
        outcome = both(refused_with_a_query, project, hops)
    assert outcome["asyncdb"][0] == outcome["django"][0]
    assert outcome["asyncdb"][0] == (403, f"refused; {authors} authors".encode())
    assert outcome["asyncdb"][1] == ["django.utils.log.log_response"]


@pytest.mark.parametrize(
    ("overrides", "csrf"),
    [
        ({}, hooks.IN_PLACE),
        ({"CSRF_USE_SESSIONS": True}, hooks.BRIDGE),
        ({"CSRF_FAILURE_VIEW": "asgi_project.csrf_failure"}, hooks.IN_PLACE),
    ],
)
def test_hooks_that_do_no_io_are_called_in_place(schema, overrides, csrf):
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.messages.middleware import MessageMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.middleware.common import CommonMiddleware
    from django.middleware.csrf import CsrfViewMiddleware

    def get_response(request):
        return None

    with override_settings(**overrides):
        decided = hooks.LoopHooks()
    session = SessionMiddleware(get_response)
    modes = {
        "session request": decided.mode(session.process_request),
        "session response": decided.mode(session.process_response),
        "auth": decided.mode(AuthenticationMiddleware(get_response).process_request),
        "common": decided.mode(CommonMiddleware(get_response).process_response),
        "messages": decided.mode(MessageMiddleware(get_response).process_request),
        "csrf": decided.mode(CsrfViewMiddleware(get_response).process_request),
        "csrf response": decided.mode(CsrfViewMiddleware(get_response).process_response),
        # reads request.POST (upload handlers) and may render the failure view
        "csrf view": decided.mode(CsrfViewMiddleware(get_response).process_view),
        "recorder": decided.mode(asgi_project.Recorder(get_response).process_request),
    }
    assert modes == {
        "session request": hooks.IN_PLACE,
        "session response": hooks.UNLESS_SAVING,  # saves a modified session
        "auth": hooks.IN_PLACE,
        "common": hooks.IN_PLACE,
        "messages": hooks.BRIDGE,
        "csrf": csrf,
        "csrf response": csrf,
        "csrf view": hooks.BRIDGE,
        "recorder": hooks.THREAD,
    }


def _body(*parts, more=True):
    return [
        {"type": "http.request", "body": part, "more_body": more and n < len(parts) - 1}
        for n, part in enumerate(parts)
    ]


async def bodies(app, alias):
    answers = []
    for messages in (
        _body(b""),  # a GET: no body, one message
        [{"type": "http.request", "more_body": False}],  # no "body" key at all
        _body(b"name=abc"),
        _body(b"name=", b"", b"a" * 70_000, b"z"),  # in parts, one of them empty
        _body(b"", b"name=late"),  # the first message empty, more to come
        [{"type": "http.disconnect"}],  # gone before the body
        [
            *_body(b"name=")[:0],
            {"type": "http.request", "body": b"x", "more_body": True},
            {"type": "http.disconnect"},
        ],  # gone in the middle
    ):
        for method in ("GET", "POST"):
            # (bounded: a handler that lost a message would wait for it forever)
            response = await asyncio.wait_for(call(app, method, "/echo/", messages=messages), 30)
            answers.append(None if response is None else (response.status, response.json()))
    return answers


def test_request_bodies_as_django(project, hops):
    """The handler reads a request with no body without Django's spooled file; every other
    body, and a client gone before or during it, as Django does."""
    outcome = both(bodies, project, hops)
    assert outcome["asyncdb"][0] == outcome["django"][0]
    assert outcome["asyncdb"][1] == []
    answers = outcome["asyncdb"][0]
    assert answers[0] == (200, {"length": 0, "start": "", "end": ""})
    assert answers[7] == (200, {"length": 70006, "start": "name=a", "end": "aaz"})
    assert answers[10] is None and answers[12] is None


async def errors(app, alias):
    failed = await call(app, "GET", "/fail/")
    handled = await call(app, "GET", "/fail/?key=1")
    hook_failed = await call(app, "GET", "/fail/?fail=request")
    missing = await call(app, "GET", "/nowhere/")
    return [
        (r.status, r.header("x-recorded"), r.body if r.status == 409 else b"")
        for r in (failed, handled, hook_failed, missing)
    ]


def _with_recorder():
    return override_settings(MIDDLEWARE=[*asgi_project.MIDDLEWARE, "asgi_project.Recorder"])


def test_project_middleware_stays_in_a_thread_unless_listed(project, hops):
    loop_thread = []

    async def record(app, alias):
        loop_thread.append(threading.get_ident())
        response = await call(app, "GET", f"/{alias}/visits/")
        return response.status, response.header("x-recorded")

    with _with_recorder():
        asgi_project.RECORDED.clear()
        assert arun(record, ASGIHandler(), project) == (200, ["yes"])
        in_thread = list(asgi_project.RECORDED)
        assert hops == [
            "asgi_project.Recorder.process_request",
            "asgi_project.Recorder.process_response",
            "django.http.response.HttpResponseBase.close",  # where the thread is
        ]
        del hops[:]
        asgi_project.RECORDED.clear()
        listed = ASGIHandler(loop_safe=["asgi_project.Recorder"])
        assert arun(record, listed, project) == (200, ["yes"])
        on_loop = list(asgi_project.RECORDED)
    assert [ident for _, ident in in_thread] != [loop_thread[0]] * 2
    assert on_loop == [("process_request", loop_thread[1]), ("process_response", loop_thread[1])]
    assert hops == []


def test_errors_in_views_and_hooks_as_django(project, hops):
    with _with_recorder():
        outcome = both(errors, project, hops, loop_safe=["asgi_project.Recorder"])
    assert outcome["asyncdb"][0] == outcome["django"][0]
    assert outcome["asyncdb"][0] == [
        (500, ["yes"], b""),
        (409, ["yes"], b"handled"),
        (500, [], b""),  # Recorder's own process_request failed: no process_response
        (404, ["yes"], b""),
    ]
    # Django builds the error response and logs it in threads of its own (not the
    # request's: thread_sensitive=False); handler500 and logging handlers may do any I/O.
    assert set(outcome["asyncdb"][1]) == {
        "django.core.handlers.exception.response_for_exception",
        "django.utils.log.log_response",
    }


async def streamed(app, alias):
    response = await call(app, "GET", "/stream/")
    return response.status, response.body


def test_streaming_response_closes_in_a_thread(project, hops):
    outcome = both(streamed, project, hops)
    assert outcome["asyncdb"][0] == outcome["django"][0] == (200, b"abc")
    assert outcome["asyncdb"][1] == ["django.http.response.HttpResponseBase.close"]


received = []


def project_receiver(sender, **kwargs):
    """A request_started receiver of the project's own, which queries."""
    alias = asgi_project.SessionRouter.alias or "default"
    received.append(Author.objects.using(alias).count())


async def async_receiver(sender, **kwargs):
    """An async request_started receiver."""
    received.append("async")


def test_request_signal_with_a_project_receiver(project, hops):
    async def one(app, alias):
        return (await call(app, "GET", f"/{alias}/visits/")).status

    request_started.connect(project_receiver)
    try:
        assert arun(one, ASGIHandler(), project) == 200
        assert hops == [
            "django.dispatch.dispatcher.Signal.asend.<locals>.sync_send",
            "django.http.response.HttpResponseBase.close",  # where the thread is
        ]
        del hops[:]
        listed = ASGIHandler(loop_safe=["test_asgi.project_receiver"])
        assert arun(one, listed, project) == 200
        assert hops == []
        authors = Author.objects.using(project).count()
        assert received == [authors, authors]
    finally:
        request_started.disconnect(project_receiver)
        received.clear()


def test_where_request_signals_are_sent(schema):
    """In place with Django's own receivers only; in the bridge with a listed receiver of
    the project or an async one; in a thread with an unlisted one."""
    listed = hooks.LoopHooks(["test_asgi.project_receiver"])
    sender = ASGIHandler

    def modes(decided):
        return [decided.signal_mode(s, sender)[0] for s in (request_started, request_finished)]

    assert modes(hooks.LoopHooks()) == [hooks.IN_PLACE, hooks.IN_PLACE]
    # A response's close() sends request_finished; a file response's also closes its file
    # object, which may be anything: the bridge.
    plain, served = HttpResponse(b"x"), FileResponse(io.BytesIO(b"x"))
    for response in (plain, served):
        response._handler_class = sender
    assert hooks.LoopHooks().mode(plain.close) == hooks.IN_PLACE
    assert hooks.LoopHooks().mode(served.close) == hooks.BRIDGE
    request_started.connect(project_receiver)
    try:
        assert modes(hooks.LoopHooks()) == [hooks.THREAD, hooks.IN_PLACE]
        assert modes(listed) == [hooks.BRIDGE, hooks.IN_PLACE]
    finally:
        request_started.disconnect(project_receiver)
    request_finished.connect(async_receiver)
    try:
        assert modes(hooks.LoopHooks()) == [hooks.IN_PLACE, hooks.BRIDGE]

        async def one():
            return (await call(ASGIHandler(), "GET", "/form/")).status

        with override_settings(**PROJECT):
            assert arun(one) == 200
        assert received == ["async"]
    finally:
        request_finished.disconnect(async_receiver)
        received.clear()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"SessionMiddleware": True, "CsrfViewMiddleware": True, "MessageMiddleware": True}),
        (
            {"SESSION_ENGINE": "django.contrib.sessions.backends.cache"},
            {"SessionMiddleware": False, "CsrfViewMiddleware": True, "MessageMiddleware": False},
        ),
        (
            {"SESSION_ENGINE": "django.contrib.sessions.backends.file", "CSRF_USE_SESSIONS": True},
            {"SessionMiddleware": False, "CsrfViewMiddleware": False, "MessageMiddleware": False},
        ),
        (
            {"SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies"},
            {"SessionMiddleware": True, "CsrfViewMiddleware": True, "MessageMiddleware": True},
        ),
    ],
)
def test_which_of_djangos_middleware_run_on_the_loop(schema, overrides, expected):
    from django.contrib.messages.middleware import MessageMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.middleware.common import CommonMiddleware
    from django.middleware.csrf import CsrfViewMiddleware

    classes = {
        "SessionMiddleware": SessionMiddleware,
        "CsrfViewMiddleware": CsrfViewMiddleware,
        "MessageMiddleware": MessageMiddleware,
    }
    with override_settings(**overrides):
        decided = hooks.LoopHooks()
    assert {name: decided.middleware_class(cls) for name, cls in classes.items()} == expected
    assert decided.middleware_class(CommonMiddleware)

    class Subclass(SessionMiddleware):
        """A project's subclass is the project's code: not trusted unless listed."""

    assert not decided.middleware_class(Subclass)


def test_sessions_on_a_non_native_alias_stay_in_threads(schema):
    asgi_project.SessionRouter.alias = "optout"
    try:
        decided = hooks.LoopHooks()
    finally:
        asgi_project.SessionRouter.alias = None
    from django.contrib.sessions.middleware import SessionMiddleware

    assert not decided.middleware_class(SessionMiddleware)


def test_loop_safe_takes_dotted_paths():
    with pytest.raises(TypeError, match="dotted paths"):
        ASGIHandler(loop_safe=[asgi_project.Recorder])


def test_handler_needs_the_app():
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "testapp"]
    with (
        override_settings(INSTALLED_APPS=apps),
        pytest.raises(ImproperlyConfigured) as info,
    ):
        ASGIHandler()
    assert str(info.value) == (
        "django_asyncdb is not in INSTALLED_APPS: add 'django_asyncdb' to INSTALLED_APPS to "
        "use django_asyncdb.asgi's handler."
    )


def _lifespan(app):
    async def main():
        await Author.objects.acount()
        pool = seam.pool("default")
        assert pool.size >= 1
        inbox = asyncio.Queue()
        sent = []
        for message in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": message})

        async def send(message):
            sent.append(message["type"])

        await app({"type": "lifespan"}, inbox.get, send)
        return sent, pool.size

    return arun(main)


def _wrapped_django():
    return with_lifespan(django_application())


@pytest.mark.parametrize("make", [get_asgi_application, _wrapped_django])
def test_lifespan_closes_pools(schema, make):
    sent, size = _lifespan(make())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert size == 0


def test_hooks_on_the_loop_make_no_sync_to_async_objects(project, monkeypatch):
    """Django makes a SyncToAsync per middleware hook call and for the response's close();
    under our handler the safe ones go to the bridge without one (Django's handler, the
    same requests: one per call)."""
    made = []
    original = SyncToAsync.__init__

    def counting(self, func, *args, **kwargs):
        made.append(hooks.dotted(func))
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__init__", counting)
    counts = {}
    for kind in ("django", "asyncdb"):
        app = serve(kind)  # (loading the middleware wraps process_view once, not per call)
        del made[:]
        assert arun(session_visits, app, project)["json"][1]["visits"] == 2
        counts[kind] = list(made)
    assert counts["asyncdb"] == []
    assert (
        "django.contrib.sessions.middleware.SessionMiddleware.process_response" in counts["django"]
    )
