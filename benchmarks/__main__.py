"""Get-by-primary-key throughput: Django's sync ORM, Django's async ORM, django_asyncdb, and
the raw driver, each system in its own process, alternating over rounds; medians reported.

    python -m benchmarks [--database postgresql|sqlite] [--rounds 3] [--seconds 2]
"""

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys

from benchmarks import bench_app

CONCURRENCY = (1, 50)


def prepare(database: str) -> None:
    """Create the benchmark database and its rows with Django's sync ORM."""
    if database == "postgresql":
        import psycopg

        db = bench_app.PG
        with psycopg.connect(
            dbname="postgres",
            user=db["USER"],
            host=db["HOST"],
            port=db["PORT"],
            password=db["PASSWORD"] or None,
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    else:
        import os

        if os.path.exists(bench_app.SQLITE["NAME"]):
            os.remove(bench_app.SQLITE["NAME"])
    bench_app.configure(database, native=False)
    from decimal import Decimal

    from bench_models.models import Item
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    now = datetime.datetime.now(datetime.UTC)
    Item.objects.bulk_create(
        Item(id=i, name=f"item {i}", value=i, price=Decimal(i) / 4, created=now)
        for i in range(1, bench_app.ROWS + 1)
    )


def measure(system: str, database: str, concurrency: int, seconds: float) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.worker",
            system,
            database,
            str(concurrency),
            str(seconds),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["ops"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-c", f"import benchmarks.__main__ as m; m.prepare({args.database!r})"],
        check=True,
    )
    from benchmarks.worker import SYSTEMS

    results: dict[tuple[str, int], list[float]] = {}
    for round_number in range(args.rounds):
        for concurrency in CONCURRENCY:
            for system in SYSTEMS:
                if system == "django-sync" and concurrency > 1:
                    continue
                ops = measure(system, args.database, concurrency, args.seconds)
                results.setdefault((system, concurrency), []).append(ops)
                print(
                    f"round {round_number + 1}: {system:15} x{concurrency:<3} {ops:9.0f} ops/s",
                    file=sys.stderr,
                )
    median = {key: statistics.median(values) for key, values in results.items()}
    base = {c: median[("django-async", c)] for c in CONCURRENCY}
    rounds = f"median of {args.rounds} rounds of {args.seconds:g} s"
    print(f"get by pk, {args.database}, ops/s ({rounds})\n")
    print("| system | sequential | vs Django async | 50 concurrent tasks | vs Django async |")
    print("|---|---:|---:|---:|---:|")
    for system in SYSTEMS:
        cells = []
        for concurrency in CONCURRENCY:
            value = median.get((system, concurrency))
            cells += (
                ["n/a", ""]
                if value is None
                else [f"{value:,.0f}", f"{value / base[concurrency]:.2f}x"]
            )
        print(f"| {system} | " + " | ".join(cells) + " |")
    import os

    import django

    versions = f"Python {platform.python_version()}, Django {django.get_version()}"
    print(f"\n{datetime.date.today()}, {versions}, {platform.machine()}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
