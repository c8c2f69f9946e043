"""Async views under WSGI: no server connection outlives the event loop of its request.

Django's runserver and gunicorn's sync and gthread workers run each async view through
asgiref's async_to_sync, a new event loop per request, and django_asyncdb keeps a pool per
loop. These tests send a burst of concurrent requests to an async view of the example and
count the example database's connections in pg_stat_activity, during the burst and after.
What is counted: every client backend on the example's database but the probe's. Django's
own sync connections are among them, but the example runs with CONN_MAX_AGE=0, so
request_finished closes them at the end of each request: after the burst none may remain.
"""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "example"
sys.path.insert(0, str(EXAMPLE))

import harness  # noqa: E402

CI = bool(os.environ.get("CI"))
DATABASE = "asyncdb_wsgi_loops_test"
POOL = 3  # django_asyncdb's pool size per loop: /async/fanout/ runs 7 queries at once
BURST = 20  # concurrent requests; with POOL, at most 60 of the server's 100 connections
VIEW = "/async/fanout/"
SETTLE = 5.0  # seconds for closed connections to leave pg_stat_activity
COUNT = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)

# Requests one server runs at once: runserver takes a thread per request, a gunicorn sync
# worker serves one at a time, a gthread worker one per thread.
SERVERS = {
    "runserver": (lambda env, log: harness.runserver(env, log), BURST),
    "gunicorn-sync": (lambda env, log: harness.gunicorn(env, log, workers=2), 2),
    "gunicorn-gthread": (lambda env, log: harness.gunicorn(env, log, workers=2, threads=4), 8),
}


def _connect() -> psycopg.Connection:
    """A connection to the maintenance database, so the probe is not among those counted."""
    return psycopg.connect(
        dbname="postgres",
        user=os.environ.get("PGUSER", "postgres"),
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        connect_timeout=3,
        autocommit=True,
    )


def _count(probe: psycopg.Connection) -> int:
    return int(probe.execute(COUNT, (DATABASE,)).fetchone()[0])


def _settle(probe: psycopg.Connection) -> int:
    """The count once it is 0, or after SETTLE seconds: a closed connection's backend
    leaves pg_stat_activity a moment after the client has gone."""
    deadline = time.monotonic() + SETTLE
    while (count := _count(probe)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@pytest.fixture(scope="module")
def env():
    url = harness.postgresql_url(DATABASE)
    if url is None:
        if CI:
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    # Explicit, so an ASYNCDB or CONN_MAX_AGE in the caller's environment cannot change
    # what is measured.
    env = harness.base_env(DATABASE_URL=url, ASYNCDB="1", ASYNCDB_POOL=str(POOL), CONN_MAX_AGE="0")
    harness.prepare(env)
    yield env
    with _connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def _burst(url: str) -> list[int]:
    """BURST concurrent GETs of ``url``, released together; their status codes."""
    start = threading.Barrier(BURST)

    def get(_: int) -> int:
        start.wait(timeout=10)
        return httpx.get(url, timeout=20).status_code

    with ThreadPoolExecutor(BURST) as threads:
        return list(threads.map(get, range(BURST), timeout=30))


@pytest.mark.parametrize("kind", list(SERVERS))
def test_no_connection_outlives_its_loop(env, kind, tmp_path):
    start, in_flight = SERVERS[kind]
    bound = in_flight * (POOL + 1)  # its loop's pool and Django's sync connection each
    server = start(env, tmp_path / f"{kind}.log")
    with _connect() as probe, _connect() as sampler:
        try:
            server.wait_ready()
            assert httpx.get(server.url + VIEW, timeout=10).status_code == 200
            before = _settle(probe)
            peak = 0
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, _count(sampler))

            sampling = threading.Thread(target=sample)
            sampling.start()
            try:
                codes = _burst(server.url + VIEW)
            finally:
                done.set()
                sampling.join()
            after = _settle(probe)
        finally:
            server.stop()
    figures = (
        f"{kind}: {BURST} concurrent GET {VIEW} (pool {POOL}, {in_flight} in flight at most):"
        f" peak {peak} connections during the burst (bound {bound}), {after} after,"
        f" {before} before"
    )
    print(f"\n{figures}")
    log = server.log()
    assert codes == [200] * BURST, f"{figures}\n{log}"
    assert "Traceback" not in log, log
    # The probe does see the server's connections: the other figures are not vacuous.
    assert peak >= 1, figures
    assert peak <= bound, figures
    assert after == 0, figures
