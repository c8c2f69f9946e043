"""Tortoise ORM (its default PostgreSQL driver, asyncpg; aiosqlite on SQLite) on the
same tables."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise, fields, models
from tortoise.transactions import in_transaction

from benchmarks import bench_app, data, loops
from benchmarks.workloads import (
    BATCH,
    BULK,
    BY_KEY,
    MANY,
    PAGE,
    Measured,
    api_page,
    delete_op,
    drive,
    page_of_books,
    page_of_items,
    transfer,
    update_ops,
)
from benchmarks.workloads import fields as item_fields


class Item(models.Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=100)
    value = fields.IntField()
    price = fields.DecimalField(max_digits=8, decimal_places=2)
    created = fields.DatetimeField()

    class Meta:
        table = "bench_models_item"
        app = "bench"


class Author(models.Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=100)

    class Meta:
        table = "bench_models_author"
        app = "bench"


class Tag(models.Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=30)

    class Meta:
        table = "bench_models_tag"
        app = "bench"


class Book(models.Model):
    id = fields.BigIntField(primary_key=True)
    title = fields.CharField(max_length=200)
    author: Any = fields.ForeignKeyField("bench.Author", related_name="books")
    tags: Any = fields.ManyToManyField(
        "bench.Tag",
        through="bench_models_book_tags",
        forward_key="tag_id",
        backward_key="book_id",
        related_name="books",
    )

    class Meta:
        table = "bench_models_book"
        app = "bench"


class Account(models.Model):
    id = fields.BigIntField(primary_key=True)
    balance = fields.IntField()

    class Meta:
        table = "bench_models_account"
        app = "bench"


class History(models.Model):
    id = fields.BigIntField(primary_key=True)
    account: Any = fields.ForeignKeyField("bench.Account", related_name=False)
    other = fields.IntField()
    amount = fields.IntField()
    created = fields.DatetimeField()

    class Meta:
        table = "bench_models_history"
        app = "bench"


def _url(database: str) -> str:
    if database == "sqlite":
        return f"sqlite://{bench_app.SQLITE['NAME']}"
    scheme = "asyncpg" if database == "postgresql" else "mysql"  # mysql: on asyncmy
    return bench_app.url(database, scheme) + "?minsize=1&maxsize=10"


def run(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    async def insert_transaction(n: int) -> None:
        async with in_transaction():
            for k in range(BATCH):
                await Item.create(**item_fields(n * BATCH + k))

    async def tpcb(n: int) -> None:
        first, second, amount = transfer(n)
        async with in_transaction():
            locked = Account.filter(id__in=(first, second)).order_by("id").select_for_update()
            low, high = await locked
            low.balance -= amount
            await low.save(update_fields=["balance"])
            high.balance += amount
            await high.save(update_fields=["balance"])
            await History.create(account=low, other=high.id, amount=amount, created=data.CREATED)

    async def api_request(n: int) -> None:
        await Book.filter(id=n % data.BOOKS + 1).select_related("author").get()
        await Item.filter(value__gt=api_page(n)).order_by("id").limit(PAGE)
        async with in_transaction():
            await Item.create(**item_fields(n))

    async def save(obj: Any, all_fields: bool) -> None:
        await (obj.save() if all_fields else obj.save(update_fields=["value"]))

    async def delete_one(pk: int) -> None:
        await Item.filter(id=pk).delete()

    async def main() -> dict[str, float]:
        await Tortoise.init(
            db_url=_url(database), modules={"bench": [__name__]}, use_tz=True, timezone="UTC"
        )
        ops: dict[str, Any] = {
            "get": lambda n: Item.get(id=n % data.ITEMS + 1),
            "filter_many": lambda n: Item.filter(value__lte=MANY),
            "paged": lambda n: Item.all().order_by("id").offset(page_of_items(n)).limit(PAGE),
            "values": lambda n: Item.filter(value__lte=MANY).values(),
            "values_list": lambda n: Item.filter(value__lte=MANY).values_list(
                "id", "name", "value", "price", "created"
            ),
            "page_related": lambda n: (
                Book.all()
                .order_by("id")
                .offset(page_of_books(n))
                .limit(PAGE)
                .select_related("author")
                .prefetch_related("tags")
            ),
            "insert": lambda n: Item.create(**item_fields(n)),
            "bulk_insert": lambda n: Item.bulk_create(
                [Item(**item_fields(n * BULK + k)) for k in range(BULK)]
            ),
            "insert_transaction": insert_transaction,
            "tpcb": tpcb,
            "api_request": api_request,
        }
        for key in ("get", "insert", "tpcb", "api_request"):
            ops[f"{key}_concurrent"] = ops[key]
        results: dict[str, Measured] = {}
        try:
            await Item.get(id=1)
            for key in keys:
                if key in ("update_all", "update_one"):
                    ops |= update_ops(await Item.get(id=1), save)
                if key == "delete":
                    ops[key] = delete_op(database, seconds, delete_one)
                results[key] = await drive(ops[key], BY_KEY[key].concurrency, seconds)
        finally:
            await Tortoise.close_connections()
        return results

    return loops.run(main())
