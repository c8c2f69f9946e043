"""Read replicas with read-your-writes: a database router that Django leaves to each project.

Reads go to a replica and writes to the primary, as in Django's documented primary/replica
router, except where a replica would show the caller an older state than the one it made:

- inside an atomic block on the primary, reads go to the primary (they are part of it);
- after a write, the reads of the task that wrote (and of the request it belongs to) go to
  the primary for ``PIN_SECONDS``, long enough for the replicas to catch up.

The pin lives in the task's context (a ContextVar), not in a thread-local, so concurrent
requests on one event loop never pin each other. :class:`ReadYourWritesMiddleware` gives
each request a pin of its own that all of the request's tasks share (one started by
``asyncio.gather`` that writes pins the request's later reads too) and, optionally,
carries the pin over to the client's next requests with a short-lived cookie (the
redirect after a POST). Without the middleware, the pin belongs to the task (or thread)
that wrote and to the tasks it starts afterwards.

Settings::

    DATABASE_ROUTERS = ["django_asyncdb.routers.ReadYourWritesRouter"]
    ASYNCDB_REPLICAS = {
        "PRIMARY": "default",          # where writes go (default: "default")
        "REPLICAS": ["replica"],       # read from one at random
        "PIN_SECONDS": 5.0,            # reads stay on the primary this long after a write
        "COOKIE": "asyncdb_pinned",    # the middleware's cookie (None: no cookie)
    }
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections

from . import connections as seam

__all__ = ["ReadYourWritesMiddleware", "ReadYourWritesRouter", "pin", "pinned", "unpin"]


class _Pin:
    """Until when reads go to the primary (a monotonic time; 0: not pinned). Mutable and
    shared: the tasks of one request hold the same one."""

    __slots__ = ("until", "wrote")

    def __init__(self, until: float = 0.0) -> None:
        self.until = until
        self.wrote = False


_pin: ContextVar[_Pin | None] = ContextVar("django_asyncdb_pin", default=None)


@dataclass(frozen=True)
class Replicas:
    """The validated ``ASYNCDB_REPLICAS`` setting."""

    primary: str
    replicas: tuple[str, ...]
    pin_seconds: float
    cookie: str | None


_KEYS = ("PRIMARY", "REPLICAS", "PIN_SECONDS", "COOKIE")
_parsed: tuple[Any, Replicas] | None = None


def replicas_setting() -> Replicas:
    """``settings.ASYNCDB_REPLICAS``, validated (cached until the setting changes)."""
    global _parsed
    raw = getattr(settings, "ASYNCDB_REPLICAS", None)
    if _parsed is not None and _parsed[0] is raw:
        return _parsed[1]
    parsed = _parse(raw)
    _parsed = (raw, parsed)
    return parsed


def _parse(raw: Any) -> Replicas:
    def bad(why: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"ASYNCDB_REPLICAS {why}")

    if raw is None:
        raise bad("is not set: ReadYourWritesRouter needs {'REPLICAS': [aliases]}.")
    if not isinstance(raw, dict):
        raise bad(f"must be a dict, not {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise bad(f"has unknown keys {unknown}; known keys: {', '.join(_KEYS)}.")
    primary = raw.get("PRIMARY", DEFAULT_DB_ALIAS)
    names = raw.get("REPLICAS")
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise bad(f"['REPLICAS'] must be a non-empty list of aliases, not {names!r}.")
    for alias in (primary, *names):
        if alias not in settings.DATABASES:
            raise bad(f"names {alias!r}, which is not in DATABASES.")
    if primary in names:
        raise bad(f"lists the primary {primary!r} among its REPLICAS.")
    seconds = raw.get("PIN_SECONDS", 5.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise bad(f"['PIN_SECONDS'] must be a number >= 0, not {seconds!r}.")
    cookie = raw.get("COOKIE", "asyncdb_pinned")
    if cookie is not None and (not isinstance(cookie, str) or not cookie):
        raise bad(f"['COOKIE'] must be a cookie name or None, not {cookie!r}.")
    return Replicas(primary, tuple(names), float(seconds), cookie)


def pin(seconds: float | None = None) -> None:
    """Send this context's reads (its request's, under the middleware) to the primary for
    ``seconds`` (default: ``PIN_SECONDS``). The router calls it on every write."""
    if seconds is None:
        seconds = replicas_setting().pin_seconds
    state = _pin.get()
    if state is None:
        state = _Pin()
        _pin.set(state)
    state.wrote = True
    state.until = max(state.until, time.monotonic() + seconds)


def unpin() -> None:
    """Let this context's reads go to the replicas again."""
    state = _pin.get()
    if state is not None:
        state.until = 0.0


def pinned() -> bool:
    """True while this context's reads go to the primary after a write."""
    state = _pin.get()
    return state is not None and state.until > time.monotonic()


def _in_atomic_block(alias: str) -> bool:
    if seam.in_event_loop():
        # An async atomic block (and, in the bridge, Django's own blocks inside it).
        return seam.current_level(alias) is not None
    return bool(connections[alias].in_atomic_block)


class ReadYourWritesRouter:
    """Reads to a replica, writes to the primary; reads stay on the primary inside an
    atomic block there and for ``PIN_SECONDS`` after this context wrote.

    Subclass it to route only some models (return None from ``db_for_read`` and
    ``db_for_write`` for the others); its settings are read from ``ASYNCDB_REPLICAS``.
    """

    choose: Callable[[Sequence[str]], str] = staticmethod(random.choice)

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        config = replicas_setting()
        if pinned() or _in_atomic_block(config.primary):
            return config.primary
        return self.choose(config.replicas)

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        config = replicas_setting()
        pin(config.pin_seconds)
        return config.primary

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        """The primary and its replicas hold the same rows."""
        config = replicas_setting()
        same = {config.primary, *config.replicas}
        if obj1._state.db in same and obj2._state.db in same:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        """Replicas get their schema from the primary, never from migrate."""
        if db in replicas_setting().replicas:
            return False
        return None


class ReadYourWritesMiddleware:
    """One pin per request, shared by all of its tasks; with ``COOKIE`` set, a request
    that wrote pins the client's requests for ``PIN_SECONDS`` after it (a cookie of that
    age), so the page a POST redirects to reads what the POST wrote.

    Works in sync (WSGI) and async (ASGI) stacks; put it before middleware that reads
    the database (sessions, authentication).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        state, token = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            _pin.reset(token)
        return self._end(state, response)

    async def __acall__(self, request: Any) -> Any:
        state, token = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            _pin.reset(token)
        return self._end(state, response)

    def _begin(self, request: Any) -> tuple[_Pin, Any]:
        config = replicas_setting()
        state = _Pin()
        if config.cookie and config.cookie in request.COOKIES:
            state.until = time.monotonic() + config.pin_seconds
        return state, _pin.set(state)

    def _end(self, state: _Pin, response: Any) -> Any:
        config = replicas_setting()
        if state.wrote and config.cookie and config.pin_seconds > 0:
            response.set_cookie(
                config.cookie,
                "1",
                max_age=max(1, math.ceil(config.pin_seconds)),
                httponly=True,
                samesite="Lax",
            )
        return response
