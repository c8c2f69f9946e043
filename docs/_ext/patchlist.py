"""The ``asyncdb-patches`` directive: the table of every Django and asgiref entry point the
package rebinds, read from ``django_asyncdb.patch`` when the docs are built, so the page
cannot fall behind the code."""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _name(obj: Any) -> str:
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return getattr(obj, "__name__", repr(obj))


def _replacement(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name is None:
        return type(obj).__name__
    return f"{module.removeprefix('django_asyncdb.')}.{name}" if module else name


class PatchList(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from django_asyncdb import patch

        rows = [(_name(owner), attr, _replacement(new)) for owner, attr, new in patch._patches()]
        rows += [
            (_name(owner), attr, _replacement(new)) for owner, attr, new in patch.AWAITABLE_PATCHES
        ]
        rows += [
            ("django.db.transaction", name, f"transaction.{name}")
            for name in patch.ASYNC_TRANSACTION_FUNCTIONS
        ]
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        for _ in range(3):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        group += head
        head += self._row(("owner", "attribute", "replaced by (django_asyncdb.)"))
        body = nodes.tbody()
        group += body
        for row in rows:
            body += self._row(row)
        return [table]

    @staticmethod
    def _row(cells: tuple[str, str, str]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", nodes.literal(text, text))
            row += entry
        return row


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("asyncdb-patches", PatchList)
    return {"parallel_read_safe": True, "version": "1"}
