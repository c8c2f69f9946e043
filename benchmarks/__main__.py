"""Benchmark suite: Django's sync ORM, Django's built-in async ORM, django_asyncdb,
Tortoise ORM, SQLAlchemy 2's asyncio ORM and the raw driver, on the same tables and
workloads. Each system runs in its own process, systems alternate over rounds, and
medians are reported. Writes a markdown report and PNG charts to the results folder.

    python -m benchmarks [--database postgresql sqlite mariadb] [--rounds 3] [--seconds 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from benchmarks import bench_app, machine
from benchmarks.workloads import BY_KEY, WORKLOADS

SYSTEMS = ["django-sync", "django-async", "django-asyncdb", "tortoise", "sqlalchemy", "raw-driver"]
DRIVERS = {
    "postgresql": {"tortoise": "asyncpg", "raw-driver": "psycopg", "sqlalchemy": "psycopg"},
    "sqlite": {"tortoise": "aiosqlite", "raw-driver": "aiosqlite", "sqlalchemy": "aiosqlite"},
    "mariadb": {"tortoise": "asyncmy", "raw-driver": "asyncmy", "sqlalchemy": "asyncmy"},
}
RESULTS = Path(__file__).parent / "results"


def prepare(database: str) -> None:
    """Create the benchmark database and its tables with Django (run in a subprocess)."""
    if database != "sqlite":
        from benchmarks import data

        name = bench_app.DATABASES[database]["NAME"]
        connection = data.connect_server(database)
        try:
            cursor = connection.cursor()
            if database == "postgresql":
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{name}"')
            else:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            connection.close()
    elif os.path.exists(bench_app.SQLITE["NAME"]):
        os.remove(bench_app.SQLITE["NAME"])
    bench_app.configure(database, native=False)
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def unavailable(database: str) -> str | None:
    """Why ``database`` can't be benchmarked here, or None."""
    if database == "sqlite":
        return None
    from benchmarks import data

    try:
        data.connect_server(database).close()
    except ImportError as exc:
        package = "psycopg" if database == "postgresql" else "mysqlclient"
        return f"pip install {package} ({exc})"
    except Exception as exc:
        return f"server not reachable ({exc})"
    return None


def measure(system: str, database: str, seconds: float, keys: list[str]) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.worker", system, database, str(seconds), *keys]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{system} on {database} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def environment() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    packages = [
        "django",
        "psycopg",
        "aiosqlite",
        "asyncmy",
        "tortoise-orm",
        "asyncpg",
        "sqlalchemy",
    ]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "python": platform.python_version(),
        **{package: version(package) for package in packages},
    }


def server_version(database: str) -> str:
    if database == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    from benchmarks import data

    connection = data.connect(database)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT VERSION()" if database == "mariadb" else "SHOW server_version")
        name = "MariaDB" if database == "mariadb" else "PostgreSQL"
        return f"{name} {cursor.fetchone()[0]}"
    finally:
        connection.close()


def _ratio(median: dict[tuple[str, str], float], key: str, other: str) -> str:
    ours, theirs = median.get(("django-asyncdb", key)), median.get((other, key))
    return "" if not ours or not theirs else f"{ours / theirs:.2f}x"


def table(database: str, median: dict[tuple[str, str], float], systems: list[str]) -> str:
    drivers = DRIVERS[database]
    heads = [f"{s} ({drivers[s]})" if s in drivers else s for s in systems]
    lines = [
        "| workload | " + " | ".join(heads) + " | asyncdb / Django async | "
        "asyncdb / Tortoise | asyncdb overhead over raw driver |",
        "|---|" + "---:|" * (len(systems) + 3),
    ]
    for workload in WORKLOADS:
        if not any((system, workload.key) in median for system in systems):
            continue  # not measured in this run
        cells = []
        for system in systems:
            value = median.get((system, workload.key))
            cells.append("n/a" if value is None else f"{value:,.0f}")
        ours = median.get(("django-asyncdb", workload.key))
        raw = median.get(("raw-driver", workload.key))
        overhead = ""
        if ours and raw:
            # Per operation, in the caller's terms: wall time per op (for concurrent
            # workloads, per op of the whole group of tasks).
            overhead = f"{(1 / ours - 1 / raw) * 1e6:,.0f} µs/op"
        lines.append(
            f"| {workload.label} | "
            + " | ".join(cells)
            + f" | {_ratio(median, workload.key, 'django-async')}"
            + f" | {_ratio(median, workload.key, 'tortoise')} | {overhead} |"
        )
    return "\n".join(lines)


def chart(database: str, median: dict[tuple[str, str], float], systems: list[str], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in WORKLOADS if ("django-async", w.key) in median]
    fig, axis = plt.subplots(figsize=(11, 0.55 * len(workloads) * len(systems) / 3 + 2))
    height = 0.8 / len(systems)
    for index, system in enumerate(systems):
        values = [
            median.get((system, w.key), 0) / median[("django-async", w.key)] for w in workloads
        ]
        positions = [row + index * height for row in range(len(workloads))]
        axis.barh(positions, values, height=height, label=system)
    axis.set_yticks([row + 0.4 - height / 2 for row in range(len(workloads))])
    axis.set_yticklabels([w.label for w in workloads], fontsize=8)
    axis.invert_yaxis()
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    axis.set_xlabel(
        "throughput relative to Django's built-in async ORM (log scale, higher is better)"
    )
    axis.set_title(f"{database}: medians, one run")
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def memory_report(database: str, rows: list[int]) -> str:
    from benchmarks import memory

    lines = [
        f"Peak memory of `async for obj in Item.objects.aiterator()` ({database}), "
        "one process per size:",
        "",
        "| rows | objects seen | RSS before | peak RSS | growth |",
        "|---:|---:|---:|---:|---:|",
    ]
    for count in rows:
        result = memory.measure(database, count)
        lines.append(
            f"| {count:,} | {result['seen']:,} | {result['before_mb']:.0f} MB | "
            f"{result['peak_mb']:.0f} MB | {result['peak_mb'] - result['before_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        nargs="+",
        choices=["postgresql", "sqlite", "mariadb"],
        help="default: every database whose server and driver are here",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per workload and round")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=SYSTEMS)
    parser.add_argument("--workloads", nargs="+", choices=list(BY_KEY), default=list(BY_KEY))
    parser.add_argument(
        "--memory-rows",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="row counts of the aiterator memory check (none to skip)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.database is None:
        args.database = []
        for database in DRIVERS:
            missing = unavailable(database)
            if missing:
                print(f"skipping {database}: {missing}", file=sys.stderr)
            else:
                args.database.append(database)
    args.results.mkdir(parents=True, exist_ok=True)
    env = environment()
    run_line = [
        f"`python -m benchmarks {' '.join(sys.argv[1:])}`".replace("` ", "`").rstrip(),
        "",
        f"{env['date']}; {env['machine']}; Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("date", "machine", "python")),
        "",
        f"Operations per second, median of {args.rounds} rounds of {args.seconds:g} s per "
        "workload; each system in its own process, systems alternating within each round.",
    ]
    for database in args.database:
        subprocess.run(
            [sys.executable, "-c", f"import benchmarks.__main__ as m; m.prepare({database!r})"],
            check=True,
        )
        results: dict[tuple[str, str], list[float]] = {}
        for round_number in range(args.rounds):
            # Rotate the order each round so no system always runs first or last.
            shift = round_number % len(args.systems)
            for system in args.systems[shift:] + args.systems[:shift]:
                measured = measure(system, database, args.seconds, args.workloads)
                for key, ops in measured.items():
                    results.setdefault((system, key), []).append(ops)
                print(f"{database} round {round_number + 1}: {system} done", file=sys.stderr)
        median = {key: statistics.median(values) for key, values in results.items()}
        (args.results / f"{database}.json").write_text(
            json.dumps({f"{s}/{k}": v for (s, k), v in sorted(results.items())}, indent=1)
        )
        section = [
            f"## {server_version(database)}",
            "",
            *run_line,
            "",
            table(database, median, args.systems),
            "",
            f"![{database}]({database}.png)",
        ]
        if args.memory_rows:
            section += ["", memory_report(database, args.memory_rows)]
        chart(database, median, args.systems, args.results / f"{database}.png")
        # One file per database, so a run of one database keeps the others' sections.
        (args.results / f"{database}.md").write_text("\n".join(section) + "\n")
        print("\n".join(section))
    sections = [
        (args.results / f"{database}.md").read_text()
        for database in DRIVERS
        if (args.results / f"{database}.md").exists()
    ]
    (args.results / "README.md").write_text("# Benchmark results\n\n" + "\n".join(sections))
    print(f"\nwritten to {args.results}/", file=sys.stderr)


if __name__ == "__main__":
    main()
