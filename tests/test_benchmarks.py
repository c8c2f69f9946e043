"""The benchmark command runs end to end (tiny durations): every system, every workload,
the report, the chart and the memory check. Figures are not asserted here; the command
itself is how they are measured."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ("tortoise", "sqlalchemy", "matplotlib")


def test_benchmark_command_on_sqlite(tmp_path):
    missing = [name for name in PEERS if not _importable(name)]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"install the [bench] extra ({', '.join(missing)} missing)")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
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
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "README.md").read_text()
    assert "| get by pk, 50 concurrent tasks |" in report
    assert "| 3,000 | 3,000 |" in report  # aiterator saw every row
    assert (tmp_path / "sqlite.png").stat().st_size > 10_000
    measured = json.loads((tmp_path / "sqlite.json").read_text())
    systems = {key.split("/")[0] for key in measured}
    assert systems == {
        "django-sync",
        "django-async",
        "django-asyncdb",
        "tortoise",
        "sqlalchemy",
        "raw-driver",
    }
    assert all(values[0] > 0 for values in measured.values()), measured


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_insert_cost_command_on_sqlite():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.insert_cost", "--database", "sqlite"),
            *("--inserts", "200", "--tasks", "10", "--rounds", "1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    figures = {
        line.rsplit(None, 2)[0].strip(): line.rsplit(None, 2)[1]
        for line in result.stdout.splitlines()[1:]
        if line.endswith("µs")
    }
    assert set(figures) == {"acreate()", "same INSERT, cursor", "Django + bridge"}
    assert float(figures["acreate()"]) > 0 and float(figures["same INSERT, cursor"]) > 0


def test_hop_cost_command():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.hop_cost", "--requests", "50", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    figures = [float(line.split(":")[1].split()[0]) for line in result.stdout.splitlines()]
    assert len(figures) == 4
    _hop, _thread, request, bridge = figures
    assert request > 0 and bridge > 0
    assert bridge < request  # eight bridged calls cost less than a request's eight hops
