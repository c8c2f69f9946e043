"""Run Django's own test modules, unmodified, with django_asyncdb in INSTALLED_APPS.

    python -m conformance [--database sqlite|postgresql|mariadb] [module ...]

The modules come from the sdist of the installed Django version (fetched with
``pip download`` into .conformance/ on first use).
"""

import argparse
import os
import runpy
import subprocess
import sys
import tarfile
from pathlib import Path

import django

MODULES = [
    "async",
    "generic_relations",
    "basic",
    "signals",
    "sessions_tests",
    "update_only_fields",
    "auth_tests",
    "transactions",
    "get_or_create",
    "delete",
    "many_to_many",
    "prefetch_related",
    "select_related",
]
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".conformance"


def django_tests() -> Path:
    """The tests/ folder of the installed Django's sdist."""
    version = django.get_version()
    target = CACHE / f"django-{version}"
    if not (target / "tests" / "runtests.py").exists():
        CACHE.mkdir(exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"django=={version}",
                "-d",
                str(CACHE),
            ],
            check=True,
        )
        with tarfile.open(CACHE / f"django-{version}.tar.gz") as archive:
            members = [
                m for m in archive.getmembers() if m.name.startswith(f"django-{version}/tests/")
            ]
            archive.extractall(CACHE, members=members, filter="data")
    return target / "tests"


def install_app() -> None:
    """Add django_asyncdb to INSTALLED_APPS whenever Django sets up (runtests sets its own)."""
    original_setup = django.setup

    def setup(*args, **kwargs):
        from django.conf import settings

        if "django_asyncdb" not in settings.INSTALLED_APPS:
            settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_asyncdb"]
        return original_setup(*args, **kwargs)

    django.setup = setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument("modules", nargs="*", default=MODULES)
    args, extra = parser.parse_known_args()
    tests = django_tests()
    sys.path[:0] = [str(tests), str(ROOT)]
    os.chdir(tests)
    install_app()
    sys.argv = [
        "runtests.py",
        f"--settings=conformance.settings_{args.database}",
        "--parallel=1",
        "--noinput",
        *extra,
        *args.modules,
    ]
    runpy.run_path(str(tests / "runtests.py"), run_name="__main__")


if __name__ == "__main__":
    main()
