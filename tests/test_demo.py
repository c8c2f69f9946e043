"""The README's demo runs, on SQLite alone, even where psycopg is not installed."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# As if only the [sqlite] extra were installed: psycopg cannot be imported.
RUN_WITHOUT_PSYCOPG = (
    "import runpy, sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None; "
    "runpy.run_path('examples/demo.py', run_name='__main__')"
)


def test_demo_runs_without_psycopg():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_PSYCOPG],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "rolled back (payment failed); stock is still 1" in result.stdout
    assert "thread hops (asgiref SyncToAsync calls) during all of the above: 0" in result.stdout
