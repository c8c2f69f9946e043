"""Per-alias settings, read from ``DATABASES[alias]["ASYNC"]`` and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def _check_number(alias: str, key: str, value: Any, *, minimum: float, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, _NUMBERS) or value < minimum:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC'][{key!r}] must be a number >= {minimum}"
            f"{' or None' if allow_none else ''}, not {value!r}."
        )


def _check_int(alias: str, key: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC'][{key!r}] must be an integer >= {minimum}, "
            f"not {value!r}."
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
    defaults = AsyncSettings(alias, vendor, max_size=1 if in_memory else 10)
    known = {
        "ENABLED": "enabled",
        "MIN_SIZE": "min_size",
        "MAX_SIZE": "max_size",
        "TIMEOUT": "timeout",
        "MAX_IDLE": "max_idle",
        "MAX_LIFETIME": "max_lifetime",
        "CHECK": "check",
    }
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['ASYNC'] has an unknown key {key!r}; "
                f"known keys: {', '.join(sorted(known))}."
            )
        values[known[key]] = value
    for key in ("ENABLED", "CHECK"):
        if not isinstance(values.get(known[key], True), bool):
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['ASYNC'][{key!r}] must be True or False, "
                f"not {values[known[key]]!r}."
            )
    _check_int(alias, "MIN_SIZE", values.get("min_size", defaults.min_size), minimum=0)
    _check_int(alias, "MAX_SIZE", values.get("max_size", defaults.max_size), minimum=1)
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
            f"MAX_SIZE ({result.max_size})."
        )
    if in_memory and result.max_size > 1:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['ASYNC']['MAX_SIZE'] must be 1 for a private in-memory "
            "SQLite database: each connection would see its own empty database."
        )
    return result


_settings: dict[str, AsyncSettings] = {}


def load() -> dict[str, AsyncSettings]:
    """Read and validate every alias; return the settings of the native ones."""
    native: dict[str, AsyncSettings] = {}
    for alias in connections:
        wrapper = connections[alias]
        raw = wrapper.settings_dict.get("ASYNC")
        in_memory = wrapper.vendor == "sqlite" and _private_memory(wrapper.settings_dict)
        parsed = parse(alias, wrapper.vendor, raw, in_memory=in_memory)
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
    return native


def _private_memory(settings_dict: Mapping[str, Any]) -> bool:
    name = str(settings_dict.get("NAME") or "")
    return name == ":memory:" or ("mode=memory" in name and "cache=shared" not in name)


def get(alias: str) -> AsyncSettings | None:
    """The settings of a native alias, or None if the alias is not native."""
    return _settings.get(alias)


# Project-wide, not per alias: it decides whether the QuerySet class has ``__await__``.
AWAITABLE_QUERYSETS = "ASYNCDB_AWAITABLE_QUERYSETS"


def awaitable_querysets() -> bool:
    """Whether ``settings.ASYNCDB_AWAITABLE_QUERYSETS`` asks for ``await qs`` (default False)."""
    from django.conf import settings

    value = getattr(settings, AWAITABLE_QUERYSETS, False)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{AWAITABLE_QUERYSETS} must be True or False, not {value!r}.")
    return value
