"""The benchmark command runs end to end (tiny durations): every system, every workload,
the report, the chart and the memory check. Figures are not asserted here; the command
itself is how they are measured."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from helpers import need_redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ("tortoise", "sqlalchemy", "matplotlib")


def test_benchmark_command_on_sqlite(tmp_path):
    missing = [name for name in PEERS if not _importable(name)]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"install the [bench] extra ({', '.join(missing)} missing)")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["TMPDIR"] = str(tmp_path)  # the benchmark's SQLite file, apart from other runs'
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--database",
            "sqlite",
            "--rounds",
            "1",
            "--seconds",
            "0.05",
            "--memory-rows",
            "3000",
            "--results",
            str(tmp_path / "results"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    results = tmp_path / "results"
    report = (results / "README.md").read_text()
    assert "| get by pk, 50 concurrent tasks |" in report
    assert "| TPC-B-like transfer, 50 concurrent clients |" in report
    assert "Client CPU per operation" in report
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    assert f"The async systems run on {loop}'s event loop." in report
    assert "| 3,000 | 3,000 |" in report  # aiterator saw every row
    assert (results / "sqlite.png").stat().st_size > 10_000
    measured = json.loads((results / "sqlite.json").read_text())
    systems = {key.split("/")[0] for key in measured}
    assert systems == {
        "django-sync",
        "django-async",
        "django-asyncdb",
        "tortoise",
        "sqlalchemy",
        "raw-driver",
    }  # raw-django is PostgreSQL's only
    assert all(v["ops"][0] > 0 and v["cpu_us"][0] > 0 for v in measured.values()), measured
    # Django's sync ORM runs the concurrent workloads on threads (one per client).
    assert "django-sync/tpcb_concurrent" in measured
    # The accounts' balances still sum to zero after every system's transfers.
    connection = sqlite3.connect(tmp_path / "django_asyncdb_bench.sqlite3")
    try:
        assert connection.execute("SELECT sum(balance) FROM bench_models_account").fetchone() == (
            0,
        )
    finally:
        connection.close()


def _need_valgrind_and_postgresql():
    """Skip where valgrind or PostgreSQL is missing (never under CI, which has both)."""
    if shutil.which("valgrind") is None and not os.environ.get("CI"):
        pytest.skip("valgrind is not installed")
    check = "from benchmarks.__main__ import unavailable; print(unavailable('postgresql') or '')"
    missing = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if missing and not os.environ.get("CI"):
        pytest.skip(f"PostgreSQL: {missing}")


def _bench_db():
    """The benchmark database of this test run (apart from other runs on the server)."""
    return f"{os.environ.get('ASYNCDB_TEST_DB', 'django_asyncdb_test')}_bench"


def test_callgrind_instruction_counts(tmp_path):
    """``--callgrind`` counts client instructions per op of one workload (PostgreSQL, where
    the driver runs in the client's thread; the raw driver alone keeps it short)."""
    _need_valgrind_and_postgresql()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["ASYNCDB_BENCH_DB"] = _bench_db()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks", "--database", "postgresql"),
            *("--systems", "raw-driver", "--callgrind", "get", "--callgrind-ops", "5", "25"),
            *("--results", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[-1]
    assert row.startswith("| get by pk | "), result.stdout
    assert (tmp_path / "instructions-postgresql.md").read_text().strip().endswith(row)
    thousands = float(row.split("|")[2].replace(",", ""))
    # A get through psycopg's async path is some hundred thousand instructions; startup
    # (hundreds of millions) must have cancelled out.
    assert 10 < thousands < 5_000, row


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _command(module, *args, timeout=120, env=None):
    """``python -m module args`` from the repository's root: its output (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _layers(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["TMPDIR"] = str(tmp_path)  # the benchmark's SQLite file, apart from other runs'
    env["ASYNCDB_BENCH_DB"] = _bench_db()
    head, *lines = _command("benchmarks.layers", *args, timeout=600, env=env).splitlines()
    return head, {line[:52].strip(): float(line[52:].split()[0].replace(",", "")) for line in lines}


@pytest.mark.parametrize(("statement", "loop"), [("insert", "asyncio"), ("get", "uvloop")])
def test_layers_command_on_sqlite(tmp_path, statement, loop):
    head, figures = _layers(
        tmp_path,
        *("--database", "sqlite", "--statement", statement, "--ops", "50", "--rounds", "1"),
        *("--loop", loop),
    )
    assert head.endswith(f"(async layers on {loop}'s loop):"), head
    assert list(figures) == [
        "the sync driver's cursor (Django's connection)",
        "Django's sync cursor, connection.cursor()",
        "the package's driver connection, no pool",
        "django_asyncdb.cursor(): pool and error mapping",
        "Django's sync ORM: create() / get()",
        "Django's async ORM natively: acreate() / aget()",
    ]
    assert all(micros > 0 for micros in figures.values()), figures


def test_layers_command_counts_instructions_on_postgresql(tmp_path):
    _need_valgrind_and_postgresql()
    _, figures = _layers(
        tmp_path,
        *("--database", "postgresql", "--callgrind", "--ops", "40"),
        *("--layers", "psycopg-async", "package-connection"),
    )
    assert list(figures) == [
        "psycopg's AsyncConnection, psycopg's own wait",
        "the package's driver connection, no pool",
    ]
    # An INSERT through psycopg's async path is some hundred thousand instructions;
    # startup (hundreds of millions) must have cancelled out.
    assert all(10_000 < count < 5_000_000 for count in figures.values()), figures


def test_hop_cost_command():
    output = _command("benchmarks.hop_cost", "--requests", "50", "--rounds", "1")
    figures = [float(line.split(":")[1].split()[0]) for line in output.splitlines()]
    assert len(figures) == 4
    _hop, _thread, request, bridge = figures
    assert request > 0 and bridge > 0
    assert bridge < request  # eight bridged calls cost less than a request's eight hops


def test_cache_command():
    """python -m benchmarks.cache: both backends, every measure, positive figures (Redis
    is required under CI; otherwise skipped when it is not there)."""
    need_redis()
    output = _command("benchmarks.cache", "--ops", "100", "--rounds", "1", timeout=300)
    rows = [line.split("|")[1:-1] for line in output.splitlines() if line.startswith("| a")]
    assert [row[0].strip() for row in rows] == [
        "aget CPU µs/op",
        "aget ops/s, 50 tasks",
        "aset CPU µs/op",
        "aset ops/s, 50 tasks",
    ]
    assert all(
        float(row[1].replace(",", "")) > 0 and float(row[2].replace(",", "")) > 0 for row in rows
    )
