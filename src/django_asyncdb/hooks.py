"""Django's sync request hooks, run on the event loop by django_asyncdb's ASGI handler.

Under ASGI, Django runs every sync piece of a request through asgiref's
``sync_to_async``: each middleware hook (``process_request``, ``process_view``,
``process_response``, ...), the ``request_started``/``request_finished`` receivers and
the response's ``close()``, in a thread made for that request. Those pieces are small
and mostly do no I/O; the hops cost more than the work.

Inside a request served by :class:`django_asyncdb.asgi.ASGIHandler`, the hooks that
:class:`LoopHooks` deems safe run in the bridge instead, on the event loop: their
database queries (a session read or saved) run natively, as those of a model signal's
sync receiver do. Hooks of Django's that do no I/O at all (the security, common and
authentication middleware's, the session middleware's ``process_request`` and its
``process_response`` when the session is not to be saved, the CSRF
middleware's ``process_request`` and ``process_response`` with the token in a cookie; the
request signals when every receiver is Django's own) are called in place, without the
bridge.
Everything else keeps Django's behaviour: sync views, ``sync_to_async`` calls of your
own and unknown middleware run in the request's thread.

A hook is safe when its only blocking I/O is database queries on native aliases, or
calls of django_asyncdb's Redis cache (:mod:`django_asyncdb.cache`, native in the bridge
too): Django's own middleware (the session-touching ones only with a database,
signed-cookie, or, on that cache, cache or cached_db session engine; the cache
middleware when CACHE_MIDDLEWARE_ALIAS is that cache), Django's own receivers, and
whatever the project lists.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from types import MethodType
from typing import Any

import asgiref.sync as asgiref_sync
from asgiref.sync import SyncToAsync
from django.apps import apps
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.signals import request_finished, request_started
from django.db import router
from django.dispatch import Signal
from django.http import FileResponse, HttpResponseBase
from django.utils.module_loading import import_string

from . import bridge
from . import connections as seam

__all__ = ["HOOKS", "LoopHooks"]

HOOKS = frozenset(
    {
        "process_request",
        "process_view",
        "process_response",
        "process_exception",
        "process_template_response",
    }
)

# Django's middleware whose hooks do no I/O at all.
NO_IO = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "django.middleware.gzip.GZipMiddleware",
        "django.middleware.http.ConditionalGetMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",  # the user is lazy
    }
)
SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
# Hooks of Django's middleware above that do no I/O at all, not even a query: they are
# called in place on the loop, without the bridge (a switch to it and back costs more than
# most of them). The session's process_request only makes the (lazy) session store.
IO_FREE_HOOKS = frozenset(
    {
        *((name, hook) for name in NO_IO for hook in HOOKS),
        (SESSION, "process_request"),
    }
)
# Django's middleware whose hooks read or write the session or query the database.
SESSION_OR_DATABASE = frozenset(
    {
        SESSION,
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
        "django.contrib.sites.middleware.CurrentSiteMiddleware",
        "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
        "django.contrib.redirects.middleware.RedirectFallbackMiddleware",
    }
)
CSRF = "django.middleware.csrf.CsrfViewMiddleware"
# The CSRF middleware's hooks that read and set the token's cookie only (unless the token is
# kept in the session). process_view stays in the bridge: it reads request.POST (upload
# handlers may do I/O) and a rejected request renders the failure view with the request
# (its template's context processors may load the session and the user).
CSRF_HOOKS = frozenset({(CSRF, "process_request"), (CSRF, "process_response")})
# Session engines whose only I/O is database queries.
DATABASE_SESSIONS = frozenset(
    {
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.signed_cookies",
    }
)
# Session engines whose I/O is the session cache's, and database queries.
CACHE_SESSIONS = frozenset(
    {
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
    }
)
DJANGOS_SESSIONS = "django.contrib.sessions.backends."
# Django's middleware whose only I/O is CACHE_MIDDLEWARE_ALIAS's cache.
CACHE_MIDDLEWARE = frozenset(
    {
        "django.middleware.cache.UpdateCacheMiddleware",
        "django.middleware.cache.FetchFromCacheMiddleware",
        "django.middleware.cache.CacheMiddleware",
    }
)

# Where a sync piece of a request runs (LoopHooks.mode). UNLESS_SAVING: the session
# middleware's process_response, which saves the session (I/O) only when it was modified or
# SESSION_SAVE_EVERY_REQUEST is set; otherwise it sets headers at most (in place).
THREAD, BRIDGE, IN_PLACE, UNLESS_SAVING = 0, 1, 2, 3

_hooks: ContextVar[LoopHooks | None] = ContextVar("django_asyncdb_hooks", default=None)


def dotted(obj: Any) -> str:
    """``module.qualname`` of a class, a function, a bound method or a callable object."""
    target = getattr(obj, "__func__", obj)
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{getattr(target, '__module__', None)}.{target.__qualname__}"


def _djangos(name: str) -> bool:
    return name.startswith("django.")


def native_cache(alias: str) -> bool:
    """True if cache ``alias`` is django_asyncdb's Redis backend, whose sync calls are
    native in the bridge."""
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if not isinstance(backend, str) or not backend.startswith("django_asyncdb.cache."):
        return False
    from .cache import RedisCache

    return issubclass(import_string(backend), RedisCache)


def _sessions_and_users_are_native() -> bool:
    """True if sessions do database (or native cache) I/O only, and sessions and users live
    on native aliases."""
    engine = settings.SESSION_ENGINE
    if engine in CACHE_SESSIONS:
        if not native_cache(settings.SESSION_CACHE_ALIAS):
            return False
    elif engine not in DATABASE_SESSIONS:
        return False
    models = []
    if apps.is_installed("django.contrib.sessions"):
        models.append(apps.get_model("sessions", "Session"))
    if apps.is_installed("django.contrib.auth"):
        models.append(apps.get_model(settings.AUTH_USER_MODEL))
    return all(
        seam.is_native(router.db_for_read(model)) and seam.is_native(router.db_for_write(model))
        for model in models
    )


class LoopHooks:
    """Which of a request's sync pieces may run on the event loop.

    ``loop_safe`` names (dotted paths) middleware classes and signal receivers of the
    project whose sync code does no blocking I/O other than database queries.
    """

    def __init__(self, loop_safe: Iterable[str] = ()) -> None:
        extra = frozenset(loop_safe)
        for name in extra:
            if not isinstance(name, str) or "." not in name:
                raise TypeError(f"loop_safe takes dotted paths ('module.Name'), not {name!r}")
        native = _sessions_and_users_are_native()
        self.middleware = NO_IO | extra | (SESSION_OR_DATABASE if native else frozenset())
        if native_cache(settings.CACHE_MIDDLEWARE_ALIAS):
            self.middleware |= CACHE_MIDDLEWARE
        if native or not settings.CSRF_USE_SESSIONS:
            self.middleware |= {CSRF}
        self.in_place = IO_FREE_HOOKS
        if not settings.CSRF_USE_SESSIONS:
            self.in_place |= CSRF_HOOKS
        self.receivers = extra
        self._classes: dict[type, bool] = {}
        self._callables: dict[Any, bool] = {}
        self._djangos: dict[Any, bool] = {}
        self._hooks: dict[tuple[type, str], int] = {}

    def middleware_class(self, cls: type) -> bool:
        """May the hooks of middleware class ``cls`` run on the loop?"""
        found = self._classes.get(cls)
        if found is None:
            found = self._classes[cls] = dotted(cls) in self.middleware
        return found

    def djangos(self, receiver: Any) -> bool:
        """Is this receiver Django's own?"""
        key = getattr(receiver, "__func__", receiver)
        found = self._djangos.get(key)
        if found is None:
            found = self._djangos[key] = _djangos(dotted(receiver))
        return found

    def receiver(self, receiver: Any) -> bool:
        """May this signal receiver run on the loop? Django's own and listed ones may."""
        key = getattr(receiver, "__func__", receiver)
        found = self._callables.get(key)
        if found is None:
            found = self._callables[key] = (
                self.djangos(receiver) or dotted(receiver) in self.receivers
            )
        return found

    def signal_mode(self, signal: Signal, sender: Any) -> tuple[int, list[Any]]:
        """Where a request signal's receivers run, and its sync receivers: THREAD (as in
        Django), BRIDGE, or IN_PLACE where every receiver is one of Django's own sync
        ones (resetting the query log, closing old connections and caches: no query)."""
        if signal is not request_started and signal is not request_finished:
            return THREAD, []
        if signal is request_finished and _request_thread_used():
            # Its receivers close the sync connections of the thread the request used:
            # they run there, after whatever that thread still runs (a cancelled view).
            return THREAD, []
        sync_receivers, async_receivers = signal._live_receivers(sender)
        if not all(self.receiver(receiver) for receiver in sync_receivers):
            return THREAD, sync_receivers
        if async_receivers or not all(self.djangos(receiver) for receiver in sync_receivers):
            return BRIDGE, sync_receivers
        return IN_PLACE, sync_receivers

    def mode(self, func: Callable[..., Any]) -> int:
        """Where this thread-sensitive ``sync_to_async`` function runs: THREAD (as in
        Django), BRIDGE (on the loop, its queries native) or IN_PLACE (on the loop, called
        directly: a middleware hook that does no I/O at all, a response's close() whose
        request_finished receivers are Django's own)."""
        if type(func) is not MethodType:
            return THREAD
        name = func.__name__
        if name in HOOKS:
            key = (type(func.__self__), name)
            found = self._hooks.get(key)
            if found is None:
                found = self._hooks[key] = self._hook_mode(*key)
            return found
        owner = func.__self__
        if name == "close" and isinstance(owner, HttpResponseBase):
            # A streamed response's close() may run a generator's cleanup: any code. A file
            # response's closes its file object, which may be anything: the bridge.
            if owner.streaming and not isinstance(owner, FileResponse):
                return THREAD
            mode = self.signal_mode(request_finished, owner._handler_class)[0]
            return BRIDGE if mode == IN_PLACE and isinstance(owner, FileResponse) else mode
        if name == "process_exception_by_middleware" and isinstance(owner, BaseHandler):
            # Calls every middleware's sync process_exception in turn.
            safe = all(
                type(hook) is MethodType and self.middleware_class(type(hook.__self__))
                for hook in owner._exception_middleware
            )
            return BRIDGE if safe else THREAD
        return THREAD

    def _hook_mode(self, cls: type, name: str) -> int:
        if not self.middleware_class(cls):
            return THREAD
        hook = (dotted(cls), name)
        if hook == (SESSION, "process_response"):
            return UNLESS_SAVING
        return IN_PLACE if hook in self.in_place else BRIDGE


def _saves_session(request: Any) -> bool:
    """May the session middleware's process_response save ``request``'s session? A store
    of Django's does not unless it was modified (or SESSION_SAVE_EVERY_REQUEST is set) and
    holds something; of anything else set as ``request.session`` nothing is known."""
    session: Any = getattr(request, "session", None)
    if not type(session).__module__.startswith(DJANGOS_SESSIONS):
        return True
    if not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
        return False
    return not session.is_empty()


def _request_thread_used() -> bool:
    """Has asgiref started the current request's thread (ThreadSensitiveContext)?"""
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is not None and context in SyncToAsync.context_to_thread_executor


def serving(hooks: LoopHooks) -> Any:
    """Mark the current context as a request of a handler with ``hooks``; a reset token."""
    return _hooks.set(hooks)


def done(token: Any) -> None:
    """Undo :func:`serving`."""
    _hooks.reset(token)


# Patch targets (installed by patch.py) ----------------------------------------------

_original_call = SyncToAsync.__call__
_original_asend = Signal.asend
_original_sync_to_async = asgiref_sync.sync_to_async


def _mode(func: Any, thread_sensitive: bool) -> int:
    """Where ``func`` runs in a request of ours (THREAD outside one)."""
    hooks = _hooks.get()
    if hooks is None or not thread_sensitive:
        return THREAD
    return hooks.mode(func)


async def _in_place(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A hook that does no I/O, called on the loop in the task."""
    return func(*args, **kwargs)


async def _unless_saving(func: Callable[..., Any], request: Any, response: Any) -> Any:
    """The session middleware's process_response: in place unless it saves the session."""
    if _saves_session(request):
        return await bridge.run(func, request, response)
    return func(request, response)


def _runner(mode: int) -> Callable[..., Awaitable[Any]] | None:
    """What runs a function of ``mode`` on the loop (None: THREAD, asgiref's way)."""
    if mode == BRIDGE:
        return bridge.run
    if mode == IN_PLACE:
        return _in_place
    if mode == UNLESS_SAVING:
        return _unless_saving
    return None


def sync_to_async_call(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """SyncToAsync.__call__: a safe hook of a request of ours runs on the loop."""
    run = _runner(_mode(self.func, self._thread_sensitive))
    if run is not None:
        return run(self.func, *args, **kwargs)
    return _original_call(self, *args, **kwargs)


def sync_to_async(
    func: Callable[..., Any] | None = None,
    *,
    thread_sensitive: bool = True,
    executor: Any = None,
    context: Any = None,
) -> Any:
    """asgiref's sync_to_async where Django's request path calls it (middleware hooks,
    the response's close()): a safe hook of a request of ours gets the bridge at once,
    without a SyncToAsync object made and thrown away per call."""
    if func is not None and executor is None and context is None:
        run = _runner(_mode(func, thread_sensitive))
        if run is not None:
            return functools.partial(run, func)
    original: Any = _original_sync_to_async  # (typed by overloads: func or none)
    return original(func, thread_sensitive=thread_sensitive, executor=executor, context=context)


async def asend(self: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
    """Signal.asend: a request signal of ours with safe receivers is sent on the loop."""
    hooks = _hooks.get()
    if hooks is not None:
        mode, sync_receivers = hooks.signal_mode(self, sender)
        if mode == IN_PLACE:  # Django's own sync receivers only, called as send() does
            return [
                (receiver, receiver(signal=self, sender=sender, **named))
                for receiver in sync_receivers
            ]
        if mode == BRIDGE:
            # In the bridge, send() calls the sync receivers and awaits the async ones.
            return await bridge.run(self.send, sender, **named)
    return await _original_asend(self, sender, **named)
