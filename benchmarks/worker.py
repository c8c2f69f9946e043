"""Run one system over the workloads in this process; print {workload: [ops/s, CPU µs per
op]} as JSON.

python -m benchmarks.worker [--ops N] SYSTEM DATABASE SECONDS WORKLOAD...

``--ops N`` runs exactly N operations per workload instead of SECONDS (for instruction
counts under callgrind).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable

from benchmarks import data, workloads

# name -> (module, function, what it is)
SYSTEMS: dict[str, tuple[str, str, str]] = {
    "django-sync": ("django_orm", "run_django_sync", "Django's sync ORM"),
    "django-async": (
        "django_orm",
        "run_django_async",
        "Django's built-in async ORM (each task in a ThreadSensitiveContext)",
    ),
    "django-asyncdb": ("django_orm", "run_asyncdb", "Django's async ORM with django_asyncdb"),
    "tortoise": ("tortoise_orm", "run", "Tortoise ORM"),
    "sqlalchemy": ("sqlalchemy_orm", "run", "SQLAlchemy 2 asyncio ORM"),
    "raw-driver": ("raw_driver", "run", "the driver alone, minimal pool"),
    "raw-django": (
        "raw_driver",
        "run_django_adapters",
        "the driver alone with Django's adapters and binding (PostgreSQL)",
    ),
    "raw-asyncpg": ("raw_driver", "run_asyncpg", "asyncpg alone, minimal pool (PostgreSQL)"),
}


def runner(system: str) -> Callable[[str, float, list[str]], dict[str, float]]:
    module, function, _ = SYSTEMS[system]
    return getattr(importlib.import_module(f"benchmarks.systems.{module}"), function)


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["--ops"]:
        workloads.OPS = int(arguments[1])
        arguments = arguments[2:]
    system, database, seconds, *keys = arguments
    run = runner(system)  # import first: a missing package fails before any work
    data.reset(database)
    print(json.dumps(run(database, float(seconds), keys)))


if __name__ == "__main__":
    main()
