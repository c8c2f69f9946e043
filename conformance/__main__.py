"""Run Django's own test modules, unmodified, with django_asyncdb in INSTALLED_APPS.

    python -m conformance [--database sqlite|postgresql|mariadb] [module ...]
    python -m conformance --asgi              # Django's ASGI tests on django_asyncdb's handler
    python -m conformance --cache sync|async  # Django's Redis cache tests on django_asyncdb.cache

The modules come from the sdist of the installed Django version (fetched with
``pip download`` into .conformance/ on first use). With ``--asgi``, Django's
``ASGIHandler`` and ``get_asgi_application`` are django_asyncdb.asgi's for the run.
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
# The module that serves requests through Django's ASGIHandler. (staticfiles_tests'
# handler tests do too, but in settings whose INSTALLED_APPS leave django_asyncdb out.)
ASGI_MODULES = ["asgi"]
# Django's tests of its Redis cache backend (the other backends' tests skip or pass as they
# do without the app).
CACHE_MODULES = ["cache.tests.RedisCacheTests"]
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


def install_app(asgi: bool, cache: str | None = None) -> None:
    """Add django_asyncdb to INSTALLED_APPS whenever Django sets up (runtests sets its own);
    with ``asgi``, put django_asyncdb's ASGI handler in the place of Django's."""
    original_setup = django.setup

    def setup(*args, **kwargs):
        from django.conf import settings

        if "django_asyncdb" not in settings.INSTALLED_APPS:
            settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_asyncdb"]
        if cache:
            from conformance import native_cache

            settings.CACHES = {
                **settings.CACHES,
                "redis": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": native_cache.LOCATION,
                    "OPTIONS": native_cache.OPTIONS,
                },
            }
            native_cache.install(cache)
        done = original_setup(*args, **kwargs)
        if asgi:
            # Imported first, so that its ASGIStaticFilesHandler keeps Django's handler as
            # its base, as in a project; the tests wrap ours in it.
            import django.contrib.staticfiles.handlers
            import django.core.asgi
            import django.core.handlers.asgi

            from django_asyncdb import asgi as ours

            django.core.handlers.asgi.ASGIHandler = ours.ASGIHandler
            django.core.asgi.get_asgi_application = ours.get_asgi_application
        return done

    django.setup = setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument(
        "--asgi", action="store_true", help="Django's ASGI tests on django_asyncdb's handler"
    )
    parser.add_argument(
        "--cache",
        choices=["sync", "async"],
        help="Django's Redis cache tests on django_asyncdb.cache.RedisCache, through its sync "
        "or its async methods",
    )
    parser.add_argument("modules", nargs="*")
    args, extra = parser.parse_known_args()
    modules = args.modules or (
        ASGI_MODULES if args.asgi else CACHE_MODULES if args.cache else MODULES
    )
    tests = django_tests()
    sys.path[:0] = [str(tests), str(ROOT)]
    os.chdir(tests)
    install_app(args.asgi, args.cache)
    sys.argv = [
        "runtests.py",
        f"--settings=conformance.settings_{args.database}",
        "--parallel=1",
        "--noinput",
        *extra,
        *modules,
    ]
    runpy.run_path(str(tests / "runtests.py"), run_name="__main__")


if __name__ == "__main__":
    main()
