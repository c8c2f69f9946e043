"""The event loop the async systems run on: uvloop, as uvicorn runs when it is installed
(``uvicorn[standard]``), or asyncio's own. ``python -m benchmarks --loop`` and
``python -m benchmarks.layers --loop`` choose it for their worker processes through
``ASYNCDB_BENCH_LOOP``; every system runs on the same loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
VARIABLE = "ASYNCDB_BENCH_LOOP"
CHOICES = ("uvloop", "asyncio")


def default() -> str:
    """uvloop when it is installed, as uvicorn chooses; asyncio's own loop otherwise."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def chosen() -> str:
    name = os.environ.get(VARIABLE) or default()
    if name not in CHOICES:
        raise SystemExit(f"{VARIABLE} is one of {', '.join(CHOICES)}, not {name!r}")
    return name


def choose(name: str | None) -> str:
    """Make ``name`` (or the default) the loop of this process's workers; return it."""
    name = name or default()
    os.environ[VARIABLE] = name
    return chosen()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop (checked: a figure labelled uvloop's is
    never measured on another loop)."""
    name = chosen()

    async def checked() -> T:
        running = type(asyncio.get_running_loop()).__module__.split(".")[0]
        if running != name:
            main.close()
            raise RuntimeError(f"the benchmark asked for {name}'s loop but runs on {running}'s")
        return await main

    if name == "uvloop":
        import uvloop

        return uvloop.run(checked())
    return asyncio.run(checked())
