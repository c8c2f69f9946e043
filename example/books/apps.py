"""The bookshop app; in COUNT_HOPS mode it counts asgiref's thread hops."""

from collections import Counter

from django.apps import AppConfig
from django.conf import settings

# Calls run in a worker thread by asgiref's SyncToAsync, by the function's "module.qualname",
# since start or last reset.
HOPS: Counter[str] = Counter()


def _name(func: object) -> str:
    func = getattr(func, "func", func)  # functools.partial
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}"


def count_hops() -> None:
    """Count every function asgiref's SyncToAsync runs in a worker thread (its
    ``thread_handler`` runs there; a sync_to_async call run on the event loop is not a hop)."""
    from asgiref.sync import SyncToAsync

    original = SyncToAsync.thread_handler

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        HOPS[_name(self.func)] += 1
        return original(self, *args, **kwargs)

    SyncToAsync.thread_handler = counting  # type: ignore[method-assign]


class BooksConfig(AppConfig):
    name = "books"

    def ready(self) -> None:
        if settings.COUNT_HOPS:
            count_hops()
