"""Django's sync ORM, Django's built-in async ORM, and django_asyncdb. The two async
systems run the very same code (Django's a-methods, ``async for``); only the
transaction differs, as Django has no async one."""

from __future__ import annotations

from typing import Any

from benchmarks import bench_app, data, loops
from benchmarks.workloads import (
    BATCH,
    BULK,
    BY_KEY,
    MANY,
    PAGE,
    Exhausted,
    Measured,
    api_page,
    delete_op,
    drive,
    drive_sync,
    fields,
    page_of_books,
    page_of_items,
    transfer,
    update_ops,
    victims,
)


def _models() -> tuple[Any, Any, Any]:
    from bench_models.models import Book, Item

    page = Book.objects.select_related("author").prefetch_related("tags").order_by("id")
    return Item, Item.objects, page


def _sync_ops() -> dict[str, Any]:
    """The TPC-B-like transfer and the API request in Django's sync ORM (the very code the
    built-in async ORM runs in a thread, as Django has no async transaction)."""
    from bench_models.models import Account, Book, History, Item
    from django.db import transaction

    def tpcb(n: int) -> None:
        first, second, amount = transfer(n)
        with transaction.atomic():
            low, high = (
                Account.objects.select_for_update().filter(pk__in=(first, second)).order_by("pk")
            )
            low.balance -= amount
            low.save(update_fields=["balance"])
            high.balance += amount
            high.save(update_fields=["balance"])
            History.objects.create(account=low, other=high.pk, amount=amount, created=data.CREATED)

    def insert_in_atomic(n: int) -> None:
        with transaction.atomic():
            Item.objects.create(**fields(n))

    def api_request(n: int) -> None:
        Book.objects.select_related("author").get(pk=n % data.BOOKS + 1)
        list(Item.objects.filter(value__gt=api_page(n)).order_by("id")[:PAGE])
        insert_in_atomic(n)

    return {"tpcb": tpcb, "api_request": api_request, "insert_in_atomic": insert_in_atomic}


def run_django_sync(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    """Django's sync ORM: one caller, or one thread per client on the concurrent
    workloads (each with its own connection, closed when the thread stops)."""
    bench_app.configure(database, native=False)
    from django.db import connections, transaction

    Item, items, page = _models()

    def insert_transaction(n: int) -> None:
        with transaction.atomic():
            for k in range(BATCH):
                items.create(**fields(n * BATCH + k))

    ops: dict[str, Any] = {
        "get": lambda n: items.get(pk=n % data.ITEMS + 1),
        "filter_many": lambda n: list(items.filter(value__lte=MANY)),
        "paged": lambda n: list(items.order_by("id")[page_of_items(n) :][:PAGE]),
        "values": lambda n: list(items.filter(value__lte=MANY).values()),
        "values_list": lambda n: list(items.filter(value__lte=MANY).values_list()),
        "page_related": lambda n: list(page[page_of_books(n) :][:PAGE]),
        "insert": lambda n: items.create(**fields(n)),
        "insert_transaction": insert_transaction,
        "bulk_insert": lambda n: items.bulk_create(
            [Item(**fields(n * BULK + k)) for k in range(BULK)]
        ),
        **_sync_ops(),
    }
    for key in ("get", "insert", "tpcb", "api_request"):
        ops[f"{key}_concurrent"] = ops[key]
    results: dict[str, Measured] = {}
    for key in keys:
        if key in ("update_all", "update_one"):
            obj = items.get(pk=1)

            def update_all(n: int, obj: Any = obj) -> None:
                for name, value in fields(n).items():
                    setattr(obj, name, value)
                obj.save()

            def update_one(n: int, obj: Any = obj) -> None:
                obj.value = n
                obj.save(update_fields=["value"])

            ops |= {"update_all": update_all, "update_one": update_one}
        if key == "delete":
            pks = victims(database, seconds)

            def delete(n: int, pks: list[int] = pks) -> None:
                if n >= len(pks):
                    raise Exhausted
                items.filter(pk=pks[n]).delete()

            ops[key] = delete
        results[key] = drive_sync(ops[key], BY_KEY[key].concurrency, seconds, connections.close_all)
    return results


def _run_async(database: str, seconds: float, keys: list[str], native: bool) -> dict[str, Measured]:
    bench_app.configure(database, native=native)
    from asgiref.sync import ThreadSensitiveContext, sync_to_async
    from bench_models.models import Account, Book, History
    from django.db import connections, transaction

    Item, items, page = _models()
    in_thread = {key: sync_to_async(op) for key, op in _sync_ops().items()}

    async def listed(queryset: Any) -> list[Any]:
        return [row async for row in queryset]

    def insert_batch_in_thread(n: int) -> None:
        with transaction.atomic():
            for k in range(BATCH):
                items.create(**fields(n * BATCH + k))

    async def insert_transaction(n: int) -> None:
        if native:
            async with transaction.atomic():
                for k in range(BATCH):
                    await items.acreate(**fields(n * BATCH + k))
        else:  # Django has no async transaction: the whole block goes to a thread
            await sync_to_async(insert_batch_in_thread)(n)

    async def save(obj: Any, all_fields: bool) -> None:
        await (obj.asave() if all_fields else obj.asave(update_fields=["value"]))

    async def delete_one(pk: int) -> None:
        await items.filter(pk=pk).adelete()

    async def tpcb(n: int) -> None:
        if not native:  # Django has no async transaction: the whole block goes to a thread
            return await in_thread["tpcb"](n)
        first, second, amount = transfer(n)
        async with transaction.atomic():
            locked = Account.objects.select_for_update().filter(pk__in=(first, second))
            low, high = [account async for account in locked.order_by("pk")]
            low.balance -= amount
            await low.asave(update_fields=["balance"])
            high.balance += amount
            await high.asave(update_fields=["balance"])
            await History.objects.acreate(
                account=low, other=high.pk, amount=amount, created=data.CREATED
            )

    async def api_request(n: int) -> None:
        await Book.objects.select_related("author").aget(pk=n % data.BOOKS + 1)
        await listed(items.filter(value__gt=api_page(n)).order_by("id")[:PAGE])
        if native:
            async with transaction.atomic():
                await items.acreate(**fields(n))
        else:
            await in_thread["insert_in_atomic"](n)

    class RequestContext(ThreadSensitiveContext):
        """Django's built-in async ORM: each task in its own ThreadSensitiveContext, as
        ASGIHandler runs each request, closing its thread's connection at the end as
        request_finished does."""

        async def __aexit__(self, *exc: object) -> None:
            await sync_to_async(connections.close_all)()
            await super().__aexit__(*exc)

    async def main() -> dict[str, float]:
        get = lambda n: items.aget(pk=n % data.ITEMS + 1)  # noqa: E731
        insert = lambda n: items.acreate(**fields(n))  # noqa: E731
        ops: dict[str, Any] = {
            "get": get,
            "get_concurrent": get,
            "filter_many": lambda n: listed(items.filter(value__lte=MANY)),
            "paged": lambda n: listed(items.order_by("id")[page_of_items(n) :][:PAGE]),
            "values": lambda n: listed(items.filter(value__lte=MANY).values()),
            "values_list": lambda n: listed(items.filter(value__lte=MANY).values_list()),
            "page_related": lambda n: listed(page[page_of_books(n) :][:PAGE]),
            "insert": insert,
            "insert_concurrent": insert,
            "insert_transaction": insert_transaction,
            "bulk_insert": lambda n: items.abulk_create(
                [Item(**fields(n * BULK + k)) for k in range(BULK)]
            ),
            "tpcb": tpcb,
            "tpcb_concurrent": tpcb,
            "api_request": api_request,
            "api_request_concurrent": api_request,
        }
        context = None if native else RequestContext
        results: dict[str, Measured] = {}
        await get(0)
        for key in keys:
            if key in ("update_all", "update_one"):
                ops |= update_ops(await items.aget(pk=1), save)
            if key == "delete":
                ops[key] = delete_op(database, seconds, delete_one)
            results[key] = await drive(ops[key], BY_KEY[key].concurrency, seconds, context)
        if native:
            import django_asyncdb

            await django_asyncdb.close_pools()
        return results

    return loops.run(main())


def run_django_async(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    return _run_async(database, seconds, keys, native=False)


def run_asyncdb(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    return _run_async(database, seconds, keys, native=True)
