"""Cursors over the seam (Django's ``%s`` placeholders).

:class:`AsyncCursor` is the package's raw-SQL API; :class:`BridgeCursor` is the DB-API
cursor Django's own sync code receives inside the bridge. Each ``execute`` runs
through the seam: inside an async atomic block it joins the transaction; outside it
borrows a pooled connection for that one statement. Rows are held until fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from django.db import ProgrammingError, connections

from . import conf
from . import connections as seam
from .backends.base import Params, Result, Row
from .bridge import await_

__all__ = ["AsyncCursor", "BridgeCursor", "cursor"]


class _Buffered:
    """The last statement's result and a read position in its rows."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._result: Result | None = None
        self._position = 0

    def _keep(self, result: Result) -> None:
        self._result = result
        self._position = 0

    @property
    def description(self) -> list[Any] | None:
        """Column descriptions of the last statement."""
        return self._result.description if self._result else None

    @property
    def rowcount(self) -> int:
        """Rows produced or affected by the last statement (-1 before any)."""
        return self._result.rowcount if self._result else -1

    @property
    def lastrowid(self) -> Any:
        """The last inserted row id where the driver reports one (SQLite)."""
        return self._result.lastrowid if self._result else None

    def _rows(self) -> list[Row]:
        return self._result.rows if self._result else []

    def _take(self, size: int | None) -> list[Row]:
        rows = self._rows()
        end = len(rows) if size is None else self._position + size
        chunk = rows[self._position : end]
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        """Forget the last result."""
        self._result = None


class AsyncCursor(_Buffered):
    """Runs statements and keeps the last one's rows to fetch."""

    async def __aenter__(self) -> AsyncCursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def execute(self, sql: str, params: Params = None) -> AsyncCursor:
        """Run one statement; ``%s`` placeholders as in Django's ``cursor.execute``."""
        if not seam.is_native(self.alias):
            conf.check_app("django_asyncdb.cursor()")
            raise ProgrammingError(
                f"{conf.why_not_native(self.alias)} django_asyncdb.cursor() runs on native "
                f"aliases only; for this one use Django's connections[{self.alias!r}].cursor() "
                "(through sync_to_async in async code)."
            )
        wrapper = await seam.prepare(self.alias)
        self._keep(await seam.run(self.alias, sql, params, wrapper=wrapper))
        return self

    async def fetchone(self) -> Row | None:
        """The next row, or None."""
        self._check()
        rows = self._take(1)
        return rows[0] if rows else None

    async def fetchmany(self, size: int = 1) -> list[Row]:
        """Up to ``size`` next rows."""
        self._check()
        return self._take(size)

    async def fetchall(self) -> list[Row]:
        """All remaining rows."""
        self._check()
        return self._take(None)

    def _check(self) -> None:
        if self._result is None:
            raise ProgrammingError("execute() a statement before fetching.")


class BridgeCursor(_Buffered):
    """The DB-API cursor Django's sync code gets inside the bridge.

    Django wraps it in its own CursorWrapper (error mapping, query logging), and its
    compilers and backend operations read it as they read a driver cursor.
    """

    def execute(self, sql: str, params: Params = None) -> BridgeCursor:
        """Run one statement natively and keep its result."""
        # Django's CursorWrapper around this cursor logs the statement itself. A
        # statement the connection runs at once needs no switch to the task.
        try:
            result = seam.run_now(self.alias, sql, params)
            if result is None:
                result = await_(seam.run(self.alias, sql, params, logged=False, now=False))
            self._keep(result)
        except Exception as exc:
            # Logged as the driver sent it, as Django logs a failed statement.
            self._result = None
            self._failed = getattr(exc, "sent", None)
            raise
        return self

    def executemany(self, sql: str, param_list: Iterable[Params]) -> BridgeCursor:
        """Run a statement once per parameter set; rowcount is the total."""
        total = 0
        for params in param_list:
            self.execute(sql, params)
            total += max(self.rowcount, 0)
        if self._result is not None:
            self._result.rowcount = total
        return self

    _failed: Any = None

    @property
    def _query(self) -> Any:
        """What Django's PostgreSQL backend reads to log the last query."""
        return self._result.query if self._result else self._failed

    @property
    def _executed(self) -> Any:
        """What Django's MySQL backend reads to log the last query."""
        return self._query

    def fetchone(self) -> Row | None:
        """The next row, or None."""
        rows = self._take(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int = 1) -> Any:
        """Up to ``size`` next rows; at the end, what the vendor's driver returns there
        (Django's chunked reads stop on ``features.empty_fetchmany_value``: () on MySQL)."""
        return self._take(size) or connections[self.alias].features.empty_fetchmany_value

    def fetchall(self) -> list[Row]:
        """All remaining rows."""
        return self._take(None)

    def __iter__(self) -> Iterator[Row]:
        while rows := self._take(1):
            yield rows[0]


def cursor(using: str | None = None) -> AsyncCursor:
    """An async cursor on the native alias ``using`` (default: ``"default"``)."""
    return AsyncCursor(seam.default_alias(using))
