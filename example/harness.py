"""Start and stop the example's servers on fresh databases: shared by the study and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
PG_URL = "postgres://{user}@{host}:{port}/{name}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def postgresql_url(name: str) -> str | None:
    """Recreate database ``name`` on the local PostgreSQL; its URL, or None if unreachable."""
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    try:
        import psycopg

        with psycopg.connect(
            dbname="postgres", user=user, host=host, port=port, connect_timeout=3, autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return None
    return PG_URL.format(user=user, host=host, port=port, name=name)


def sqlite_url(directory: str | None = None) -> str:
    """A new, empty SQLite database file."""
    folder = directory or tempfile.mkdtemp(prefix="bookshop-")
    path = Path(folder) / f"bookshop-{time.time_ns()}.sqlite3"
    return f"sqlite:///{path}"  # path is absolute: sqlite:////...


def manage(env: dict[str, str], *command: str, quiet: bool = True) -> None:
    """Run the bookshop's ``manage.py`` with ``command`` on ``env``'s database."""
    argv = [sys.executable, str(HERE / "manage.py"), *command]
    subprocess.run(argv, env=env, cwd=HERE, check=True, capture_output=quiet)


def prepare(env: dict[str, str], *, quiet: bool = True) -> None:
    """Migrate and seed the database of ``env["DATABASE_URL"]``."""
    manage(env, "migrate", "--verbosity", "0" if quiet else "1", quiet=quiet)
    manage(env, "seed", quiet=quiet)


def restore(env: dict[str, str]) -> None:
    """Put the seeded reviews of ``env["DATABASE_URL"]`` back (after a load test's posts)."""
    manage(env, "seed", "--restore")


def uvicorn_command(host: str, port: int) -> list[str]:
    """The bookshop under uvicorn (through serve.py), lifespan on."""
    return [
        *(sys.executable, str(HERE / "serve.py"), "--app-dir", str(HERE)),
        *("bookshop.asgi:application", "--host", host, "--port", str(port), "--lifespan", "on"),
    ]


def gunicorn_command(host: str, port: int, workers: int, threads: int = 1) -> list[str]:
    """The bookshop under gunicorn: ``workers`` sync workers (gthread if ``threads`` > 1)."""
    worker_class = "gthread" if threads > 1 else "sync"
    return [
        *(sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "bookshop.wsgi:application"),
        *("--bind", f"{host}:{port}", "--workers", str(workers), "--worker-class", worker_class),
        *(("--threads", str(threads)) if threads > 1 else ()),
    ]


def runserver_command(host: str, port: int) -> list[str]:
    """The bookshop under Django's runserver: a thread per request, no autoreloader."""
    return [sys.executable, str(HERE / "manage.py"), "runserver", f"{host}:{port}", "--noreload"]


def upstream_command(host: str, port: int) -> list[str]:
    """The local upstream service (its delay from UPSTREAM_DELAY_MS)."""
    return [
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "upstream:app"),
        *("--host", host, "--port", str(port)),
    ]


def base_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bookshop.settings", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


class Server:
    """A server subprocess on 127.0.0.1, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            argv, env=env, cwd=HERE, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, path: str = "/", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                httpx.get(self.url + path, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server, wait for it, and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def uvicorn(env: dict[str, str], log: Path, port: int | None = None, workers: int = 1) -> Server:
    """The bookshop under uvicorn: ``workers`` worker processes, lifespan on."""
    port = port or free_port()
    argv = [*uvicorn_command("127.0.0.1", port), "--workers", str(workers), "--no-access-log"]
    return Server([*argv, "--log-level", "info"], env, port, log)


def gunicorn(
    env: dict[str, str], log: Path, workers: int = 2, port: int | None = None, threads: int = 1
) -> Server:
    """The bookshop under gunicorn: ``workers`` sync workers (gthread ones if ``threads`` > 1)."""
    port = port or free_port()
    return Server(gunicorn_command("127.0.0.1", port, workers, threads), env, port, log)


def runserver(env: dict[str, str], log: Path, port: int | None = None) -> Server:
    """The bookshop under Django's runserver (threaded, --noreload)."""
    port = port or free_port()
    return Server(runserver_command("127.0.0.1", port), env, port, log)


def upstream(delay_ms: float, log: Path, port: int | None = None) -> Server:
    """The local upstream service, answering after ``delay_ms``."""
    port = port or free_port()
    argv = [*upstream_command("127.0.0.1", port), "--no-access-log"]
    return Server(argv, base_env(UPSTREAM_DELAY_MS=str(delay_ms)), port, log)
