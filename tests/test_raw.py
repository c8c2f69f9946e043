"""raw() querysets iterate natively with the same results as Django's sync path."""

import pytest

from conftest import arun
from snapshot import snapshot
from testapp.models import Author, Book

RAW = {
    "plain": (Author, "SELECT * FROM testapp_author ORDER BY id", None, None),
    "params": (Book, "SELECT * FROM testapp_book WHERE pages > %s ORDER BY id", [300], None),
    "annotated": (
        Author,
        "SELECT id, name, age * 2 AS double_age FROM testapp_author ORDER BY id",
        None,
        None,
    ),
    "translations": (
        Author,
        "SELECT id AS pk_alias, name AS n FROM testapp_author ORDER BY id",
        None,
        {"pk_alias": "id", "n": "name"},
    ),
    "missing_pk": (Author, "SELECT name FROM testapp_author", None, None),
}


@pytest.mark.parametrize("case", sorted(RAW))
def test_raw_matches_sync(alias, case, thread_hops):
    model, sql, params, translations = RAW[case]

    def build():
        return model.objects.using(alias).raw(sql, params, translations=translations)

    try:
        expected = ("ok", snapshot(list(build())))
    except Exception as exc:
        expected = ("error", type(exc).__name__, str(exc))

    async def main():
        try:
            return ("ok", snapshot([obj async for obj in build()]))
        except Exception as exc:
            return ("error", type(exc).__name__, str(exc))

    assert arun(main) == expected
    assert thread_hops == []


@pytest.mark.parametrize("case", sorted(RAW))
def test_opted_in_await_of_raw_matches_sync(alias, case, thread_hops, awaitable_querysets):
    model, sql, params, translations = RAW[case]

    def build():
        return model.objects.using(alias).raw(sql, params, translations=translations)

    try:
        expected = ("ok", snapshot(list(build())))
    except Exception as exc:
        expected = ("error", type(exc).__name__, str(exc))

    async def main():
        try:
            return ("ok", snapshot(await build()))
        except Exception as exc:
            return ("error", type(exc).__name__, str(exc))

    assert arun(main) == expected
    assert thread_hops == []
