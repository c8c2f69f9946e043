"""A short tour of django_asyncdb on SQLite: native queries, a transaction, a fan-out.

Run from the repository root:  python examples/demo.py
"""

import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal

import django
from django.conf import settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
DB_PATH = os.path.join(tempfile.mkdtemp(prefix="asyncdb-demo-"), "shop.sqlite3")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB_PATH}},
    INSTALLED_APPS=["django_asyncdb", "shop"],  # <- the only change a project makes
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

from asgiref.sync import SyncToAsync  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402
from shop.models import Author, Book  # noqa: E402

import django_asyncdb  # noqa: E402

# Count every thread hop Django's built-in async ORM would make (asgiref's SyncToAsync).
thread_hops = 0
_original_call = SyncToAsync.__call__


def _counting_call(self, *args, **kwargs):
    global thread_hops
    thread_hops += 1
    return _original_call(self, *args, **kwargs)


SyncToAsync.__call__ = _counting_call


def setup() -> None:
    """Create the tables and a few rows with Django's ordinary sync ORM."""
    call_command("migrate", run_syncdb=True, verbosity=0)
    for a in range(1, 6):
        author = Author.objects.create(name=f"Author {a}")
        Book.objects.bulk_create(
            Book(title=f"Book {a}.{b}", author=author, price=Decimal(5 * a + b), stock=b)
            for b in range(1, 5)
        )


async def main() -> None:
    print("1. a queryset as a list: one native query (an async comprehension)")
    cheap = [book async for book in Book.objects.filter(price__lt=10).order_by("price")]
    print("   ", [f"{b.title} ${b.price}" for b in cheap])

    print("2. async for with select_related, and aggregate/annotate")
    async for book in Book.objects.select_related("author").filter(stock=4).order_by("id")[:3]:
        print(f"    {book.title} by {book.author.name}")
    totals = await Book.objects.aaggregate(books=Count("id"), stock=Sum("stock"))
    print("   ", totals)
    top = await Author.objects.annotate(n=Count("books")).order_by("-n", "id").afirst()
    print(f"    first author with most books: {top.name} ({top.n})")

    print("3. async transaction: the failed block rolls back, the good one commits")
    book = await Book.objects.aget(title="Book 1.1")
    try:
        async with transaction.atomic():
            async with django_asyncdb.cursor() as cursor:
                await cursor.execute("UPDATE shop_book SET stock = 0 WHERE id = %s", [book.pk])
            raise RuntimeError("payment failed")
    except RuntimeError as exc:
        print(
            f"    rolled back ({exc}); stock is still", (await Book.objects.aget(pk=book.pk)).stock
        )
    async with transaction.atomic():
        async with django_asyncdb.cursor() as cursor:
            await cursor.execute("UPDATE shop_book SET stock = stock + 10 WHERE id = %s", [book.pk])
        transaction.on_commit(lambda: print("    on_commit: restocked"))
    print("    stock now", (await Book.objects.aget(pk=book.pk)).stock)

    print("4. asyncio.gather fan-out: 20 independent queries at once, on pooled connections")
    start = time.perf_counter()
    counts = await asyncio.gather(
        *(Book.objects.filter(author__name=f"Author {1 + i % 5}").acount() for i in range(20))
    )
    print(f"    {len(counts)} counts {counts[:5]}... in {time.perf_counter() - start:.3f}s")

    print(f"5. thread hops (asgiref SyncToAsync calls) during all of the above: {thread_hops}")
    await django_asyncdb.close_pools()
    if thread_hops:
        raise SystemExit("expected no thread hop: is 'django_asyncdb' in INSTALLED_APPS?")


if __name__ == "__main__":
    setup()
    asyncio.run(main())
