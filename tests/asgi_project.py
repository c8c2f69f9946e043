"""A small project served through an ASGI handler in tests/test_asgi.py: views, middleware,
URLs (ROOT_URLCONF) and a router that puts the sessions on the alias under test."""

import asyncio
import threading

from django.db import connections
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.urls import path
from django.utils.deprecation import MiddlewareMixin
from django.views.decorators.csrf import csrf_exempt

from testapp.models import Author

# threading.get_ident() of every Recorder hook call, in order.
RECORDED: list[tuple[str, int]] = []


class SessionRouter:
    """Sessions on ``alias`` while a test sets it; everything else is left to the caller."""

    alias: str | None = None

    def _route(self, model, **hints):
        if self.alias and model._meta.app_label == "sessions":
            return self.alias
        return None

    db_for_read = db_for_write = _route


class Recorder(MiddlewareMixin):
    """A project's own middleware: which thread runs its hooks?"""

    def process_request(self, request):
        RECORDED.append(("process_request", threading.get_ident()))
        if request.GET.get("fail") == "request":
            raise ValueError("process_request failed")

    def process_response(self, request, response):
        RECORDED.append(("process_response", threading.get_ident()))
        response["X-Recorded"] = "yes"
        return response

    def process_exception(self, request, exception):
        RECORDED.append(("process_exception", threading.get_ident()))
        if isinstance(exception, KeyError):
            return HttpResponse("handled", status=409)
        return None


async def visits(request, alias):
    """Count this session's visits; the session is saved by SessionMiddleware."""
    count = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", count)
    user = await request.auser()
    authors = await Author.objects.using(alias).acount()
    return JsonResponse({"visits": count, "user": str(user), "authors": authors})


async def peek(request):
    """Read the session without changing it."""
    return JsonResponse({"visits": await request.session.aget("visits", 0)})


def sync_visits(request, alias):
    """The same in a sync view (Django runs it in a thread)."""
    count = request.session.get("visits", 0) + 1
    request.session["visits"] = count
    authors = Author.objects.using(alias).count()
    return JsonResponse({"visits": count, "user": str(request.user), "authors": authors})


async def form(request):
    """GET: a CSRF token; POST (CSRF-checked): what was posted."""
    if request.method == "POST":
        return JsonResponse({"posted": request.POST.get("name")})
    return JsonResponse({"token": get_token(request)})


def csrf_failure(request, reason=""):
    """A project's CSRF failure view that queries (Django's own does no I/O)."""
    authors = Author.objects.using(SessionRouter.alias or "default").count()
    return HttpResponse(f"refused; {authors} authors", status=403)


async def echo(request):
    """What the request's body was (any method; not CSRF-checked)."""
    body = request.body
    return JsonResponse(
        {"length": len(body), "start": body[:6].decode(), "end": body[-3:].decode()}
    )


async def fail(request):
    if request.GET.get("key"):
        raise KeyError("handled by Recorder.process_exception")
    raise ValueError("a view error")


async def stream(request):
    async def chunks():
        for part in (b"a", b"b", b"c"):
            yield part

    return StreamingHttpResponse(chunks())


async def fanout(request, alias):
    """Queries at once in gathered tasks: which Django wrapper did each task use? The
    first task took its own wrapper before querying."""

    async def own():
        wrapper = connections[alias]  # this task's own, made before any query
        return await Author.objects.using(alias).acount(), id(wrapper)

    async def count(**lookups):
        found = await Author.objects.using(alias).filter(**lookups).acount()
        return found, id(connections[alias])

    results = await asyncio.gather(
        own(), count(), count(name__startswith="A"), count(pk__gt=0), count(pk__lt=0)
    )
    return JsonResponse({"counts": [n for n, _ in results], "wrappers": [w for _, w in results]})


PAGES_MADE = []


async def page(request):
    """A page the cache middleware may cache: counts the times it is made."""
    PAGES_MADE.append(request.path)
    return JsonResponse({"made": len(PAGES_MADE)})


urlpatterns = [
    path("page/", page),
    path("<str:alias>/fanout/", fanout),
    path("<str:alias>/visits/", visits),
    path("<str:alias>/sync-visits/", sync_visits),
    path("peek/", peek),
    path("form/", form),
    path("fail/", fail),
    path("echo/", csrf_exempt(echo)),
    path("stream/", stream),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
