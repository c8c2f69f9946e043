"""A real PostgreSQL restart under an open pool: no query fails after it.

The restart runs on a throwaway cluster of this test's own (Debian's initdb and pg_ctl,
a data directory under a temp dir, a free port), never on the main server. Django's
sync ORM with persistent connections (``CONN_MAX_AGE``), run as its request cycle runs it
(``close_old_connections()`` around each query), is the reference: it fails one request.
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, close_old_connections, connections

import topology
from conftest import PG_RESTART, arun
from django_asyncdb import connections as seam
from test_pool import fetch

ALIAS = "postgresql_restart"


@pytest.fixture(scope="module")
def cluster():
    bindir = topology.bindir()
    if bindir is None or ALIAS not in connections:
        if os.environ.get("CI"):
            pytest.fail("CI=true but PostgreSQL's initdb/pg_ctl or the server are missing")
        pytest.skip("PostgreSQL's server binaries (Debian's postgresql package) not found")
    folder = tempfile.mkdtemp(prefix="asyncdb_restart_")
    data = os.path.join(folder, "data")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(
        topology.as_postgres([f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {PG_RESTART['PORT']} -c listen_addresses=127.0.0.1 -k {folder}"
    pg_ctl = [f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(folder, "log")]

    def control(*command):
        subprocess.run(topology.as_postgres([*pg_ctl, *command]), check=True, capture_output=True)

    control("-o", options, "start")
    try:
        yield lambda: control("-m", "fast", "restart")
    finally:
        connections[ALIAS].close()
        control("-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _django_request():
    """One request's worth of Django's sync ORM: a query between request signals."""
    close_old_connections()
    try:
        with connections[ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except OperationalError:
        return False
    finally:
        close_old_connections()


def test_a_server_restart_fails_no_query(cluster):
    restart = cluster

    async def main():
        loop = asyncio.get_running_loop()
        django_thread = ThreadPoolExecutor(1)  # Django's sync connection lives in its thread
        assert await loop.run_in_executor(django_thread, _django_request)
        found = seam.pool(ALIAS)
        await asyncio.gather(*(fetch(ALIAS, "SELECT pg_sleep(0.2)") for _ in range(5)))
        assert found.idle == 5
        await asyncio.to_thread(restart)
        restarted = time.monotonic()
        native_failures = 0
        recovered = None
        for _ in range(10):
            try:
                await fetch(ALIAS, "SELECT 1")
            except OperationalError:
                native_failures += 1
            else:
                recovered = recovered or time.monotonic() - restarted
        django_failures = 0
        for _ in range(10):
            django_failures += not await loop.run_in_executor(django_thread, _django_request)
        await loop.run_in_executor(django_thread, lambda: connections[ALIAS].close())
        django_thread.shutdown()
        return native_failures, recovered, django_failures, found.size

    native_failures, recovered, django_failures, size = arun(main)
    print(
        f"after a restart: django_asyncdb {native_failures} failed queries of 10 "
        f"(first success {recovered * 1000:.1f} ms after the restart returned); "
        f"Django's sync ORM {django_failures} failed requests of 10"
    )
    assert native_failures == 0
    assert size == 1  # the 5 dead connections were dropped, one new one serves
    assert django_failures == 1  # the reference: what Django's own ORM does
