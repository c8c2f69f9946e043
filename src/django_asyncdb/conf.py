"""Per-alias settings, read from ``DATABASES[alias]["ASYNC"]`` and validated."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

# Vendors with a native backend, by Django's ``connection.vendor``.
SUPPORTED_VENDORS = ("postgresql", "sqlite", "mysql")

_NUMBERS = (int, float)


@dataclass(frozen=True, slots=True)
class AsyncSettings:
    """The native settings of one database alias."""

    alias: str
    vendor: str
    enabled: bool = True
    min_size: int = 0
    max_size: int = 10
    timeout: float = 30.0
    max_idle: float | None = 600.0
    max_lifetime: float | None = 3600.0
    check: bool = False
    inline: bool = True
    pooler: str | None = None
    pooler_prepared_statements: bool = False


def _check_number(alias: str, key: str, value: Any, *, minimum: float, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, _NUMBERS) or value < minimum:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC'][{key!r}] must be a number >= {minimum}"
            f"{' or None' if allow_none else ''}, not {value!r}."
        )


def _check_int(alias: str, key: str, value: Any, *, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC'][{key!r}] must be an integer >= {minimum}, "
            f"not {value!r}.{hint}"
        )


def parse(alias: str, vendor: str, raw: Any, *, in_memory: bool = False) -> AsyncSettings:
    """Validate one alias's ``ASYNC`` dict; raise ImproperlyConfigured naming alias and key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC'] must be a dict, not {type(raw).__name__}."
        )
    # A private in-memory SQLite database exists once per connection: one connection only.
    # Statements run on the loop's thread only where they never wait on a server.
    defaults = AsyncSettings(
        alias, vendor, max_size=1 if in_memory else 10, inline=vendor == "sqlite"
    )
    known = {
        "ENABLED": "enabled",
        "MIN_SIZE": "min_size",
        "MAX_SIZE": "max_size",
        "TIMEOUT": "timeout",
        "MAX_IDLE": "max_idle",
        "MAX_LIFETIME": "max_lifetime",
        "CHECK": "check",
        "INLINE": "inline",
        "POOLER": "pooler",
        "POOLER_PREPARED_STATEMENTS": "pooler_prepared_statements",
    }
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            meant = _closest(key, known)
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['ASYNC'] has an unknown key {key!r}"
                f"{f' (did you mean {meant!r}?)' if meant else ''}; "
                f"known keys: {', '.join(sorted(known))}."
            )
        values[known[key]] = value
    if "inline" in values and vendor != "sqlite":
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC']['INLINE'] applies to SQLite only (running short "
            f"statements on the event loop's thread); {vendor} statements never block it."
        )
    for key in ("POOLER", "POOLER_PREPARED_STATEMENTS"):
        if key in raw and vendor != "postgresql":
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['ASYNC'][{key!r}] applies to PostgreSQL only (a "
                f"transaction-mode pooler such as PgBouncer), not {vendor}."
            )
    if values.get("pooler") not in (None, "transaction"):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC']['POOLER'] must be 'transaction' (a pooler such "
            f"as PgBouncer in transaction mode between the package and PostgreSQL) or None, "
            f"not {values['pooler']!r}; session-mode pooling needs no setting."
        )
    for key in ("ENABLED", "CHECK", "INLINE", "POOLER_PREPARED_STATEMENTS"):
        if not isinstance(values.get(known[key], True), bool):
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['ASYNC'][{key!r}] must be True or False, "
                f"not {values[known[key]]!r}."
            )
    _check_int(alias, "MIN_SIZE", values.get("min_size", defaults.min_size), minimum=0)
    max_size = values.get("max_size", defaults.max_size)
    _check_int(
        alias,
        "MAX_SIZE",
        max_size,
        minimum=1,
        # A size of 0 or less reads as "no pool": say how to turn the alias off.
        hint=" To keep Django's own (thread) path for this alias, set 'ENABLED': False."
        if isinstance(max_size, int) and not isinstance(max_size, bool)
        else "",
    )
    _check_number(alias, "TIMEOUT", values.get("timeout", 1), minimum=0, allow_none=False)
    _check_number(alias, "MAX_IDLE", values.get("max_idle"), minimum=0, allow_none=True)
    _check_number(alias, "MAX_LIFETIME", values.get("max_lifetime"), minimum=0, allow_none=True)
    result = AsyncSettings(
        alias,
        vendor,
        **{field: values.get(field, getattr(defaults, field)) for field in known.values()},
    )
    if result.min_size > result.max_size:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC']['MIN_SIZE'] ({result.min_size}) must not exceed "
            f"MAX_SIZE ({result.max_size}{'' if 'max_size' in values else ', the default'})."
        )
    if in_memory and result.max_size > 1:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC']['MAX_SIZE'] must be 1 for a private in-memory "
            "SQLite database: each connection would see its own empty database."
        )
    return result


def _closest(key: Any, known: Iterable[str]) -> str | None:
    """The known key that ``key`` probably meant (another case, a small typo), if any."""
    close = difflib.get_close_matches(str(key).upper(), list(known), n=1, cutoff=0.8)
    return close[0] if close else None


_settings: dict[str, AsyncSettings] = {}
_loaded = False


def load() -> dict[str, AsyncSettings]:
    """Read and validate every alias; return the settings of the native ones."""
    global _loaded
    native: dict[str, AsyncSettings] = {}
    for alias in connections:
        wrapper = connections[alias]
        for key in wrapper.settings_dict:
            # Django ignores keys it does not know: a misspelled ASYNC would silently
            # leave the alias on its defaults.
            if key != "ASYNC" and _closest(key, ["ASYNC"]):
                raise ImproperlyConfigured(
                    f"DATABASES[{alias!r}] has a key {key!r}: did you mean 'ASYNC'?"
                )
        raw = wrapper.settings_dict.get("ASYNC")
        in_memory = wrapper.vendor == "sqlite" and _private_memory(wrapper.settings_dict)
        parsed = parse(alias, wrapper.vendor, raw, in_memory=in_memory)
        if parsed.pooler:
            check_pooler(parsed, wrapper.settings_dict.get("OPTIONS") or {})
        if parsed.enabled and wrapper.vendor in SUPPORTED_VENDORS:
            native[alias] = parsed
        elif parsed.enabled and raw:
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['ASYNC'] is set, but vendor {wrapper.vendor!r} has no "
                f"native backend yet (supported: {', '.join(SUPPORTED_VENDORS)}). "
                "Set 'ENABLED': False to keep Django's behaviour for this alias."
            )
    _settings.clear()
    _settings.update(native)
    _loaded = True
    return native


def check_pooler(parsed: AsyncSettings, options: Mapping[str, Any]) -> None:
    """Refuse what cannot work behind a transaction-mode pooler: each transaction (and
    each statement outside one) may run on another server connection, shared with the
    pooler's other clients."""
    alias = parsed.alias
    server_binding = options.get("server_side_binding") is True
    if (
        server_binding
        and options.get("prepare_threshold") is not None
        and not parsed.pooler_prepared_statements
    ):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}] uses prepared statements (OPTIONS 'server_side_binding' "
            f"with 'prepare_threshold' {options['prepare_threshold']!r}) behind a "
            "transaction-mode pooler ('POOLER': 'transaction'): a statement prepared on one "
            "server connection is missing on the next ('prepared statement does not exist') "
            "or already there from another client. Set OPTIONS 'prepare_threshold': None, or, "
            "if the pooler tracks prepared statements (PgBouncer 1.21+ with "
            "max_prepared_statements > 0), ASYNC 'POOLER_PREPARED_STATEMENTS': True."
        )
    if options.get("assume_role") and server_binding:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}] has OPTIONS 'assume_role' behind a transaction-mode pooler "
            "with 'server_side_binding': the role is set per transaction (SET LOCAL ROLE sent "
            "with each transaction's first statement), which needs client-side binding "
            "(Django's default): remove 'server_side_binding'."
        )


def _private_memory(settings_dict: Mapping[str, Any]) -> bool:
    name = str(settings_dict.get("NAME") or "")
    return name == ":memory:" or ("mode=memory" in name and "cache=shared" not in name)


def get(alias: str) -> AsyncSettings | None:
    """The settings of a native alias, or None if the alias is not native."""
    return _settings.get(alias)


def check_app(what: str) -> None:
    """Raise ImproperlyConfigured, saying what to do, unless the app is installed and ready."""
    if apps.apps_ready and not apps.is_installed("django_asyncdb"):
        raise ImproperlyConfigured(
            f"django_asyncdb is not in INSTALLED_APPS: add 'django_asyncdb' to "
            f"INSTALLED_APPS to use {what}."
        )
    if not _loaded:
        raise ImproperlyConfigured(
            f"django_asyncdb is not set up yet, so {what} can't be used: call django.setup() "
            "first (manage.py, runserver and get_asgi_application() do), with "
            "'django_asyncdb' in INSTALLED_APPS."
        )


def why_not_native(alias: str) -> str:
    """Why an alias is not native, as the first sentence of an error message."""
    wrapper = connections[alias]  # ConnectionDoesNotExist for an alias not in DATABASES
    raw = wrapper.settings_dict.get("ASYNC")
    if isinstance(raw, Mapping) and raw.get("ENABLED") is False:
        return (
            f"Database alias {alias!r} is not native: it is opted out "
            f"(DATABASES[{alias!r}]['ASYNC']['ENABLED'] is False)."
        )
    if wrapper.vendor not in SUPPORTED_VENDORS:
        return (
            f"Database alias {alias!r} is not native: vendor {wrapper.vendor!r} has no native "
            f"backend (supported: {', '.join(SUPPORTED_VENDORS)})."
        )
    return (
        f"Database alias {alias!r} is not native: it was not in DATABASES when "
        "django_asyncdb read its settings (at django.setup())."
    )


# Project-wide, not per alias: it decides whether the QuerySet class has ``__await__``.
AWAITABLE_QUERYSETS = "ASYNCDB_AWAITABLE_QUERYSETS"


def awaitable_querysets() -> bool:
    """Whether ``settings.ASYNCDB_AWAITABLE_QUERYSETS`` asks for ``await qs`` (default False)."""
    from django.conf import settings

    value = getattr(settings, AWAITABLE_QUERYSETS, False)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{AWAITABLE_QUERYSETS} must be True or False, not {value!r}.")
    return value
