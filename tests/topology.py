"""A scale-out topology of the tests' own, as users deploy one: a PostgreSQL primary, a
streaming replica of it (``pg_basebackup -R``) that applies the primary's commits after a
real delay, and PgBouncer in transaction mode in front of the primary with a server pool
smaller than its clients.

Everything runs on 127.0.0.1, on free ports, from a temp dir (Debian's postgresql and
pgbouncer packages; as root, the servers run as the postgres user), and is stopped and
removed afterwards. The main server is never touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# The replica applies each commit this long after the primary made it: the lag that
# read-your-writes routing exists for, deterministic enough to test against.
REPLICA_DELAY_MS = 1500
# PgBouncer's server connections per (database, user): fewer than the clients it serves.
BOUNCER_POOL_SIZE = 3
DATABASE = "topology"


_taken: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this process: the kernel may give
    the same ephemeral port twice in a row, and two servers told to share one would
    leave the second one's clients talking to the first (PgBouncer's clients to the
    replica, read-only)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _taken:
            _taken.add(port)
            return port


@dataclass
class Ports:
    primary: int = field(default_factory=free_port)
    replica: int = field(default_factory=free_port)
    bouncer: int = field(default_factory=free_port)


def bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def missing() -> str | None:
    """Why the topology cannot start here, or None."""
    if bindir() is None:
        return "PostgreSQL's server binaries (Debian's postgresql package) not found"
    if shutil.which("pgbouncer") is None and not os.path.exists("/usr/sbin/pgbouncer"):
        return "pgbouncer not found (Debian's pgbouncer package)"
    return None


def as_postgres(argv: list[str]) -> list[str]:
    """initdb and PgBouncer refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(as_postgres(argv), capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done


class Topology:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent)."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports
        self.bin = bindir() or ""
        self.folder = tempfile.mkdtemp(prefix="asyncdb_topology_")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.primary_data = os.path.join(self.folder, "primary")
        self.replica_data = os.path.join(self.folder, "replica")
        self.bouncer: subprocess.Popen[bytes] | None = None
        self.started: list[str] = []

    # --- PostgreSQL -------------------------------------------------------------------
    def _pg_ctl(self, data: str, *command: str) -> None:
        log = os.path.join(self.folder, f"{os.path.basename(data)}.log")
        _run([f"{self.bin}/pg_ctl", "-D", data, "-w", "-t", "60", "-l", log, *command])

    def _options(self, port: int, *extra: str) -> str:
        return " ".join(
            [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {self.folder}", *extra]
        )

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        _run([f"{self.bin}/initdb", "-D", self.primary_data, "-U", "postgres", "--auth=trust"])
        primary = self._options(
            self.ports.primary, "-c wal_level=replica", "-c max_wal_senders=5", "-c fsync=off"
        )
        self._pg_ctl(self.primary_data, "-o", primary, "start")
        self.started.append(self.primary_data)
        self.sql("primary", f'CREATE DATABASE "{DATABASE}"', database="postgres")
        _run(
            [
                f"{self.bin}/pg_basebackup",
                "-h", "127.0.0.1",
                "-p", str(self.ports.primary),
                "-U", "postgres",
                "-D", self.replica_data,
                "-R",
                "-X", "stream",
                "--checkpoint=fast",
            ]
        )  # fmt: skip
        self.start_replica()
        self.start_bouncer()

    def start_replica(self) -> None:
        replica = self._options(
            self.ports.replica,
            "-c hot_standby=on",
            f"-c recovery_min_apply_delay={REPLICA_DELAY_MS}ms",
            "-c fsync=off",
        )
        self._pg_ctl(self.replica_data, "-o", replica, "start")
        if self.replica_data not in self.started:
            self.started.append(self.replica_data)

    def restart_replica(self) -> None:
        """A real restart of the replica's server (fast shutdown, then start)."""
        self._pg_ctl(self.replica_data, "-m", "fast", "restart")

    def sql(self, server: str, statement: str, database: str = DATABASE) -> list[tuple[Any, ...]]:
        """Run one statement on ``primary``, ``replica`` or ``bouncer`` (autocommit)."""
        import psycopg

        port = getattr(self.ports, server)
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname=database, autocommit=True
        ) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def wait_for_replica(self, timeout: float = 30.0) -> None:
        """Until the replica has applied everything the primary has written so far."""
        (target,) = self.sql("primary", "SELECT pg_current_wal_lsn()::text")[0]
        deadline = time.monotonic() + timeout
        while True:
            (caught_up,) = self.sql(
                "replica", f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            )[0]
            if caught_up:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica did not reach {target} in {timeout} s")
            time.sleep(0.05)

    # --- PgBouncer --------------------------------------------------------------------
    def start_bouncer(self) -> None:
        users = os.path.join(self.folder, "users.txt")
        with open(users, "w") as out:
            out.write('"postgres" ""\n')
        config = os.path.join(self.folder, "pgbouncer.ini")
        with open(config, "w") as out:
            out.write(
                "[databases]\n"
                f"* = host=127.0.0.1 port={self.ports.primary}\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                f"listen_port = {self.ports.bouncer}\n"
                "unix_socket_dir =\n"
                "auth_type = trust\n"
                f"auth_file = {users}\n"
                "pool_mode = transaction\n"
                f"default_pool_size = {BOUNCER_POOL_SIZE}\n"
                "max_client_conn = 1000\n"
                "admin_users = postgres\n"
                f"logfile = {os.path.join(self.folder, 'pgbouncer.log')}\n"
            )
        if os.geteuid() == 0:
            for path in (users, config):
                shutil.chown(path, "postgres")
        with open(os.path.join(self.folder, "pgbouncer.out"), "wb") as output:
            self.bouncer = subprocess.Popen(
                as_postgres([shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", config]),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                self._admin("SHOW VERSION")  # PgBouncer's own console: not another server
                return
            except Exception:
                if self.bouncer.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(self.folder, "pgbouncer.out")) as output:
                        error = output.read()
                    raise RuntimeError(f"PgBouncer did not start: {error}") from None
                time.sleep(0.1)

    def _admin(self, command: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """A command on PgBouncer's admin console (simple protocol, no prepared
        statements): its column names and rows."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.ports.bouncer, user="postgres", dbname="pgbouncer",
            autocommit=True, prepare_threshold=None, cursor_factory=psycopg.ClientCursor,
        ) as conn:  # fmt: skip
            cursor = conn.cursor()
            cursor.execute(command)
            if not cursor.description:
                return [], []
            return [column.name for column in cursor.description], cursor.fetchall()

    def reconnect_bouncer(self) -> None:
        """PgBouncer closes its server connections as they are released: the state a test
        left on them (a leaked role, prepared statements) is gone for the next one."""
        self._admin(f"RECONNECT {DATABASE}")

    def bouncer_servers(self) -> int:
        """Server connections PgBouncer holds to the primary for the test database."""
        names, rows = self._admin("SHOW POOLS")
        total = 0
        for row in rows:
            pool = dict(zip(names, row, strict=True))
            if pool["database"] == DATABASE:
                total += sum(pool[k] for k in ("sv_active", "sv_idle", "sv_used"))
        return total

    def stop(self) -> None:
        if self.bouncer is not None and self.bouncer.poll() is None:
            # As root the server runs under runuser: signal the process group's server.
            subprocess.run(["pkill", "-INT", "-f", os.path.join(self.folder, "pgbouncer.ini")])
            try:
                self.bouncer.wait(10)
            except subprocess.TimeoutExpired:
                self.bouncer.send_signal(signal.SIGKILL)
                self.bouncer.wait(10)
        for data in reversed(self.started):
            with contextlib.suppress(RuntimeError):
                self._pg_ctl(data, "-m", "immediate", "stop")
        self.started.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
