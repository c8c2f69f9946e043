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


def _postgresql_reachable() -> bool:
    host, port = os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432"))
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@nox.session
@nox.parametrize("python,django", LEGS, ids=[f"py{p}-django{d}" for p, d in LEGS])
def tests(session: nox.Session, django: str) -> None:
    """The test suite on SQLite and PostgreSQL (PostgreSQL required when CI is set)."""
    session.install(f"django~={django}.0", "-e", ".[dev,bench]")
    session.run("pytest", *session.posargs)
    # pytest-django's own fixtures, on the test databases it creates.
    session.run("pytest", "-c", "tests_pytest_django/pytest.ini", "tests_pytest_django")


@nox.session
@nox.parametrize("python,django", LEGS, ids=[f"py{p}-django{d}" for p, d in LEGS])
def conformance(session: nox.Session, django: str) -> None:
    """Django's own test modules with the app installed, on SQLite and PostgreSQL."""
    session.install(f"django~={django}.0", "-e", ".[dev]")
    session.run("python", "-m", "conformance", "--database", "sqlite", *session.posargs)
    if os.environ.get("CI") or _postgresql_reachable():
        session.run("python", "-m", "conformance", "--database", "postgresql", *session.posargs)
    else:
        session.warn("PostgreSQL not reachable: conformance ran on SQLite only")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e", ".[dev]", "django~=5.2.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
