"""Test matrix: Python 3.11 + Django 5.2 LTS, Python 3.12 + Django 6.1; lint and types."""

import os
import shutil
import socket
import subprocess

import nox

nox.options.sessions = ["tests", "conformance", "lint"]
nox.options.reuse_existing_virtualenvs = True

LEGS = [("3.11", "5.2"), ("3.12", "6.1")]


def _expose_pyenv_versions() -> None:
    """pyenv's shims run only the selected versions; select every installed one."""
    if os.environ.get("PYENV_VERSION") or not shutil.which("pyenv"):
        return
    try:
        versions = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return
    wanted = [v for v in versions if v.count(".") == 2 and v.split(".")[0] == "3"]
    if wanted:
        os.environ["PYENV_VERSION"] = ":".join(sorted(wanted, reverse=True))


_expose_pyenv_versions()


def _reachable(host_variable: str, port_variable: str, default_port: int) -> bool:
    host = os.environ.get(host_variable, "127.0.0.1")
    port = int(os.environ.get(port_variable, default_port))
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def _postgresql_reachable() -> bool:
    return bool(os.environ.get("CI")) or _reachable("PGHOST", "PGPORT", 5432)


def _mariadb_reachable() -> bool:
    return bool(os.environ.get("CI")) or _reachable("MYSQL_HOST", "MYSQL_PORT", 3306)


def _redis_reachable() -> bool:
    return bool(os.environ.get("CI")) or _reachable("REDIS_HOST", "REDIS_PORT", 6379)


def _install(session: nox.Session, django: str, extras: str) -> None:
    session.install(f"django~={django}.0", "-e", f".[{extras}]")
    if _mariadb_reachable():
        # Django's own MySQL backend (the reference side) needs mysqlclient, which
        # compiles against the MariaDB/MySQL client library (libmariadb-dev).
        session.install("mysqlclient>=2.2")


@nox.session
@nox.parametrize("python,django", LEGS, ids=[f"py{p}-django{d}" for p, d in LEGS])
def tests(session: nox.Session, django: str) -> None:
    """The test suite on SQLite, PostgreSQL and MariaDB (the servers required when CI
    is set), with the example bookshop's end-to-end tests (tests/test_example.py)."""
    _install(session, django, "dev,bench,example")
    session.run("pytest", *session.posargs)
    if not session.posargs and django == LEGS[-1][1]:
        # Again on uvloop, the loop uvicorn runs when installed (the example and the
        # benchmarks, which run on it already, are left out).
        session.run(
            "pytest",
            "--ignore=tests/test_example.py",
            "--ignore=tests/test_benchmarks.py",
            env={"ASYNCDB_TEST_LOOP": "uvloop"},
        )
    # pytest-django's own fixtures, on the test databases it creates.
    session.run("pytest", "-c", "tests_pytest_django/pytest.ini", "tests_pytest_django")


@nox.session
@nox.parametrize("python,django", LEGS, ids=[f"py{p}-django{d}" for p, d in LEGS])
def conformance(session: nox.Session, django: str) -> None:
    """Django's own test modules with the app installed, on SQLite, PostgreSQL and
    MariaDB; Django's ASGI tests on django_asyncdb's handler."""
    _install(session, django, "dev")
    session.run("python", "-m", "conformance", "--database", "sqlite", *session.posargs)
    if not session.posargs:
        session.run("python", "-m", "conformance", "--asgi")
        if _redis_reachable():
            # Django's Redis cache tests on django_asyncdb.cache, through both APIs.
            session.run("python", "-m", "conformance", "--cache", "sync")
            session.run("python", "-m", "conformance", "--cache", "async")
        else:
            session.warn("Redis not reachable: the cache conformance runs skipped")
    for database, reachable in (
        ("postgresql", _postgresql_reachable()),
        ("mariadb", _mariadb_reachable()),
    ):
        if reachable:
            session.run("python", "-m", "conformance", "--database", database, *session.posargs)
        else:
            session.warn(f"{database} not reachable: conformance skipped it")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e", ".[dev]", "django~=5.2.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
