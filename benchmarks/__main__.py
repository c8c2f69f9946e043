"""Benchmark suite: Django's sync ORM, Django's built-in async ORM, django_asyncdb,
Tortoise ORM, SQLAlchemy 2's asyncio ORM and the raw driver, on the same tables and
workloads. Each system runs in its own process, systems alternate over rounds, and
medians are reported: wall operations per second and the client process's CPU time per
operation. Writes a markdown report and PNG charts to the results folder.

    python -m benchmarks [--database postgresql sqlite mariadb] [--rounds 3] [--seconds 1]
    python -m benchmarks --callgrind WORKLOAD [--database postgresql] [--systems ...]

The async systems run on uvloop when it is installed, as uvicorn does (``--loop asyncio``
for asyncio's own loop).
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

from benchmarks import bench_app, loops, machine
from benchmarks.workloads import BY_KEY, WORKLOADS

SYSTEMS = [
    "django-sync",
    "django-async",
    "django-asyncdb",
    "tortoise",
    "sqlalchemy",
    "raw-driver",
    "raw-django",
    "raw-asyncpg",
]
ONLY_ON = {
    "raw-django": "postgresql",
    "raw-asyncpg": "postgresql",
}  # systems that exist on one database only
DRIVERS = {
    "postgresql": {
        "tortoise": "asyncpg",
        "raw-driver": "psycopg",
        "raw-django": "psycopg, Django's adapters",
        "raw-asyncpg": "asyncpg",
        "sqlalchemy": "psycopg",
    },
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


def measure(
    system: str, database: str, seconds: float, keys: list[str]
) -> dict[str, tuple[float, float]]:
    """{workload: (ops/s, client CPU µs per op)} of one system, in its own process."""
    command = [sys.executable, "-m", "benchmarks.worker", system, database, str(seconds), *keys]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{system} on {database} failed:\n{done.stderr}")
    return {k: tuple(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


# Op counts of the two callgrind runs per workload: enough ops that the difference is
# the workload's, few enough that valgrind (some 50x slower) takes seconds.
CALLGRIND_OPS = {
    "filter_many": (2, 8),
    "values": (2, 8),
    "values_list": (2, 8),
    "page_related": (4, 16),
    "insert_transaction": (1, 3),
    "bulk_insert": (1, 3),
}


def instructions(system: str, database: str, key: str, ops: tuple[int, int]) -> float:
    """Client instructions per operation of one workload, counted by callgrind: the
    worker runs ``ops[0]`` and ``ops[1]`` operations (two processes side by side), and
    the difference of the two totals over the difference of the counts leaves startup
    and warm-up out. Counts don't depend on what else the machine does."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    def total(count: int, copy: int) -> int:
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "callgrind.out")
            command = [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                *(sys.executable, "-m", "benchmarks.worker", "--ops", str(count)),
                # A short time budget: the delete workload's rows are inserted for it.
                *(system, database, "0.02", key),
            ]
            # A fixed hash seed: the two runs differ in their op counts only. Each has
            # its copy of the database.
            env = {**os.environ, "PYTHONHASHSEED": "0", "ASYNCDB_BENCH_DB": _copy(copy)}
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode:
                raise SystemExit(f"{system} on {database} under callgrind failed:\n{done.stderr}")
            return _callgrind_total(Path(out).read_text())

    with ThreadPoolExecutor(2) as runs:
        few, more = runs.map(total, ops, (0, 1))
    return (more - few) / (ops[1] - ops[0])


def _copy(copy: int) -> str:
    """The name of one of the two databases the callgrind runs use side by side."""
    return f"{bench_app.NAME}_{copy}"


def _callgrind_total(text: str) -> int:
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError("no total in callgrind's output")


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
        "uvloop",
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


def _heads(database: str, systems: list[str]) -> list[str]:
    drivers = DRIVERS[database]
    return [f"{s} ({drivers[s]})" if s in drivers else s for s in systems]


def _cells(median: dict[tuple[str, str], float], systems: list[str], key: str) -> str:
    values = [median.get((system, key)) for system in systems]
    return " | ".join("n/a" if value is None else f"{value:,.0f}" for value in values)


def table(database: str, median: dict[tuple[str, str], float], systems: list[str]) -> str:
    """Wall operations per second, higher is better."""
    lines = [
        "| workload | " + " | ".join(_heads(database, systems)) + " | asyncdb / Django async | "
        "asyncdb / Django sync | asyncdb / Tortoise |",
        "|---|" + "---:|" * (len(systems) + 3),
    ]
    for workload in WORKLOADS:
        if not any((system, workload.key) in median for system in systems):
            continue  # not measured in this run
        lines.append(
            f"| {workload.label} | {_cells(median, systems, workload.key)}"
            + f" | {_ratio(median, workload.key, 'django-async')}"
            + f" | {_ratio(median, workload.key, 'django-sync')}"
            + f" | {_ratio(median, workload.key, 'tortoise')} |"
        )
    return "\n".join(lines)


def cpu_table(database: str, cpu: dict[tuple[str, str], float], systems: list[str]) -> str:
    """Client CPU µs per operation, lower is better, with django_asyncdb's ratios to
    Django's sync ORM and Tortoise and its overhead over the raw driver."""
    raw = "raw-django" if "raw-django" in systems else "raw-driver"
    lines = [
        "| workload | " + " | ".join(_heads(database, systems)) + " | asyncdb / Django sync | "
        f"asyncdb / Tortoise | asyncdb over {raw} |",
        "|---|" + "---:|" * (len(systems) + 3),
    ]
    for workload in WORKLOADS:
        if not any((system, workload.key) in cpu for system in systems):
            continue
        ours, base = cpu.get(("django-asyncdb", workload.key)), cpu.get((raw, workload.key))
        over = "" if ours is None or base is None else f"{ours - base:+,.0f} µs"
        lines.append(
            f"| {workload.label} | {_cells(cpu, systems, workload.key)}"
            + f" | {_ratio(cpu, workload.key, 'django-sync')}"
            + f" | {_ratio(cpu, workload.key, 'tortoise')} | {over} |"
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
    parser.add_argument(
        "--loop",
        choices=loops.CHOICES,
        help="the event loop of the async systems (default: uvloop when installed, as "
        "uvicorn runs; asyncio's own otherwise)",
    )
    parser.add_argument(
        "--callgrind",
        metavar="WORKLOAD",
        nargs="+",
        choices=list(BY_KEY),
        help="instead of the timed run: client instructions per operation of these "
        "workloads for each system, counted by valgrind's callgrind (a table in the "
        "results folder; about a minute per workload and system)",
    )
    parser.add_argument(
        "--callgrind-ops",
        type=int,
        nargs=2,
        metavar=("FEW", "MORE"),
        help="the two op counts whose difference is measured (default: 10 40, fewer for "
        "the many-row workloads)",
    )
    args = parser.parse_args()
    loop = loops.choose(args.loop)  # the workers inherit it
    if args.database is None:
        args.database = []
        for database in DRIVERS:
            missing = unavailable(database)
            if missing:
                print(f"skipping {database}: {missing}", file=sys.stderr)
            else:
                args.database.append(database)
    if args.callgrind:
        callgrind_report(args)
        return
    args.results.mkdir(parents=True, exist_ok=True)
    env = environment()
    run_line = [
        "`" + " ".join(["python -m benchmarks", *sys.argv[1:]]) + "`",
        "",
        f"{env['date']}; {env['machine']}; Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("date", "machine", "python")),
        "",
        f"Median of {args.rounds} rounds of {args.seconds:g} s per workload; each system in its "
        "own process, systems alternating within each round. Django's sync ORM runs the "
        f"concurrent workloads on one thread per client. The async systems run on {loop}'s "
        "event loop.",
    ]
    for database in args.database:
        subprocess.run(
            [sys.executable, "-c", f"import benchmarks.__main__ as m; m.prepare({database!r})"],
            check=True,
        )
        systems = [s for s in args.systems if ONLY_ON.get(s, database) == database]
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_number in range(args.rounds):
            # Rotate the order each round so no system always runs first or last.
            shift = round_number % len(systems)
            for system in systems[shift:] + systems[:shift]:
                measured = measure(system, database, args.seconds, args.workloads)
                for key, figures in measured.items():
                    results.setdefault((system, key), []).append(figures)
                print(f"{database} round {round_number + 1}: {system} done", file=sys.stderr)
        median = {k: statistics.median(v[0] for v in values) for k, values in results.items()}
        cpu = {k: statistics.median(v[1] for v in values) for k, values in results.items()}
        (args.results / f"{database}.json").write_text(
            json.dumps(
                {
                    f"{s}/{k}": {"ops": [v[0] for v in values], "cpu_us": [v[1] for v in values]}
                    for (s, k), values in sorted(results.items())
                },
                indent=1,
            )
        )
        section = [
            f"## {server_version(database)}",
            "",
            *run_line,
            "",
            "Wall operations per second (higher is better):",
            "",
            table(database, median, systems),
            "",
            "Client CPU per operation, µs of the benchmark process's CPU time (lower is better; "
            "on SQLite the database engine runs in this process too):",
            "",
            cpu_table(database, cpu, systems),
            "",
            f"![{database}]({database}.png)",
        ]
        if args.memory_rows:
            section += ["", memory_report(database, args.memory_rows)]
        chart(database, median, systems, args.results / f"{database}.png")
        # One file per database, so a run of one database keeps the others' sections.
        (args.results / f"{database}.md").write_text("\n".join(section) + "\n")
        print("\n".join(section))
    write_index(args.results)
    print(f"\nwritten to {args.results}/", file=sys.stderr)


def summary(results: Path) -> str:
    """django_asyncdb against Django's built-in async ORM (wall ops/s) on every database
    measured, from the results folder's medians."""
    found = [d for d in DRIVERS if (results / f"{d}.json").exists()]
    medians = {}
    for database in found:
        measured = json.loads((results / f"{database}.json").read_text())
        medians[database] = {key: statistics.median(v["ops"]) for key, v in measured.items()}
    lines = [
        "| workload | " + " | ".join(found) + " |",
        "|---|" + "---:|" * len(found),
    ]
    for workload in WORKLOADS:
        cells = []
        for database in found:
            ours = medians[database].get(f"django-asyncdb/{workload.key}")
            theirs = medians[database].get(f"django-async/{workload.key}")
            cells.append(f"{ours / theirs:.2f}x" if ours and theirs else "")
        if any(cells):
            lines.append(f"| {workload.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_index(results: Path) -> None:
    """results/README.md: the summary, then each database's section."""
    sections = [
        (results / f"{database}.md").read_text()
        for database in DRIVERS
        if (results / f"{database}.md").exists()
    ]
    head = [
        "# Benchmark results",
        "",
        "django_asyncdb's wall throughput over Django's built-in async ORM (higher is better):",
        "",
        summary(results),
        "",
    ]
    (results / "README.md").write_text("\n".join(head) + "\n" + "\n".join(sections))


def callgrind_report(args: argparse.Namespace) -> None:
    """Client instructions per operation of the chosen workloads for each system: a
    table on stdout and in the results folder (instructions-DATABASE.md)."""
    args.results.mkdir(parents=True, exist_ok=True)
    for database in args.database:
        for copy in (0, 1):
            subprocess.run(
                [sys.executable, "-c", f"import benchmarks.__main__ as m; m.prepare({database!r})"],
                check=True,
                env={**os.environ, "ASYNCDB_BENCH_DB": _copy(copy)},
            )
        systems = [s for s in args.systems if ONLY_ON.get(s, database) == database]
        counts: dict[tuple[str, str], float] = {}
        for key in args.callgrind:
            ops = args.callgrind_ops or CALLGRIND_OPS.get(key, (10, 40))
            for system in systems:
                counts[(system, key)] = instructions(system, database, key, tuple(ops))
                print(f"{database} {key} {system}: {counts[(system, key)]:,.0f}", file=sys.stderr)
        lines = [
            f"Client instructions per operation, thousands ({database}; valgrind's callgrind, "
            "the difference of two runs of different op counts; the async systems on "
            f"{loops.chosen()}'s event loop):",
            "",
            f"`python -m benchmarks --database {database} --systems {' '.join(args.systems)} "
            f"--callgrind {' '.join(args.callgrind)} --loop {loops.chosen()}`",
            "",
            "| workload | " + " | ".join(_heads(database, systems)) + " | asyncdb / Django sync | "
            "asyncdb / Tortoise |",
            "|---|" + "---:|" * (len(systems) + 2),
        ]
        thousands = {k: v / 1000 for k, v in counts.items()}
        for workload in WORKLOADS:
            if workload.key in args.callgrind:
                lines.append(
                    f"| {workload.label} | {_cells(thousands, systems, workload.key)}"
                    + f" | {_ratio(counts, workload.key, 'django-sync')}"
                    + f" | {_ratio(counts, workload.key, 'tortoise')} |"
                )
        report = "\n".join(lines)
        (args.results / f"instructions-{database}.md").write_text(report + "\n")
        print(report)


if __name__ == "__main__":
    main()
