"""Test matrix: Python 3.11 + Django 5.2 LTS, 3.12 + Django 6.1, 3.13 + Django 6.0; lint,
types and the built package."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "conformance", "lint", "docs", "package"]
nox.options.reuse_existing_virtualenvs = True

LEGS = [("3.11", "5.2"), ("3.12", "6.1"), ("3.13", "6.0")]
UVLOOP_LEG = "6.1"  # the leg that runs the suite again on uvloop


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
    if not session.posargs and django == UVLOOP_LEG:
        # Again on uvloop, the loop uvicorn runs when installed (the example and the
        # benchmarks, which run on it already, are left out).
        session.run(
            "pytest",
            "--ignore=tests/test_example.py",
            "--ignore=tests/test_example_browser.py",
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


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site (Sphinx, docs/): warnings are errors, broken references too."""
    session.install("-e", ".[docs]", "django~=5.2.0")
    shutil.rmtree("docs/_build", ignore_errors=True)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python="3.11")
def package(session: nox.Session) -> None:
    """``python -m build``: an sdist and a wheel whose version agrees with the package and
    the changelog, each installed in a fresh venv (no source tree on the path) where the
    README's demo runs with no thread hop."""
    session.install("build")
    init = Path("src/django_asyncdb/__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    if found is None:
        session.error("no __version__ in src/django_asyncdb/__init__.py")
    version = found.group(1)
    if f"## [{version}] - " not in Path("CHANGELOG.md").read_text():
        session.error(f"CHANGELOG.md has no section for {version}")
    with tempfile.TemporaryDirectory(prefix="asyncdb-package-") as folder:
        dist = Path(folder, "dist")
        session.run("python", "-m", "build", "--outdir", str(dist))
        wheel = dist / f"django_asyncdb-{version}-py3-none-any.whl"
        sdist = dist / f"django_asyncdb-{version}.tar.gz"
        for artifact in (wheel, sdist):
            if not artifact.exists():
                session.error(f"{artifact.name} was not built: {os.listdir(dist)}")
        names = zipfile.ZipFile(wheel).namelist()
        licence = f"django_asyncdb-{version}.dist-info/licenses/LICENSE"
        for wanted in ("django_asyncdb/py.typed", licence):
            if wanted not in names:
                session.error(f"the wheel lacks {wanted}")
        demo = Path(folder, "demo")
        shutil.copytree("examples", demo)
        for artifact in (wheel, sdist):
            venv = Path(folder, f"venv-{artifact.suffix.strip('.')}")
            session.run("python", "-m", "venv", str(venv))
            python = str(venv / "bin" / "python")
            session.run(python, "-m", "pip", "install", "-q", f"{artifact}[sqlite]", external=True)
            session.run(
                python,
                "-c",
                "import importlib.metadata as m, django_asyncdb as d; "
                f"assert d.__version__ == m.version('django-asyncdb') == {version!r}, d.__file__; "
                "assert 'site-packages' in d.__file__, d.__file__",
                external=True,
            )
            # From the copy's folder: the demo imports the installed package, not src/.
            with session.chdir(demo):
                session.run(python, "demo.py", external=True, env={"PYTHONPATH": ""})
