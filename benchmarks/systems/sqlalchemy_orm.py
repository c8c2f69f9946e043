"""SQLAlchemy 2's asyncio ORM (psycopg 3 on PostgreSQL, aiosqlite on SQLite) on the same
tables; a session per operation, as a request handler would use."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

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
    fields,
    page_of_books,
    page_of_items,
    transfer,
    update_ops,
)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_models_item"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))


book_tags = Table(
    "bench_models_book_tags",
    Base.metadata,
    Column("id", BigInteger, primary_key=True),
    Column("book_id", ForeignKey("bench_models_book.id")),
    Column("tag_id", ForeignKey("bench_models_tag.id")),
)


class Author(Base):
    __tablename__ = "bench_models_author"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Tag(Base):
    __tablename__ = "bench_models_tag"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(30))


class Book(Base):
    __tablename__ = "bench_models_book"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int] = mapped_column(ForeignKey("bench_models_author.id"))
    author: Mapped[Author] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=book_tags)


class Account(Base):
    __tablename__ = "bench_models_account"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    balance: Mapped[int] = mapped_column(Integer)


class History(Base):
    __tablename__ = "bench_models_history"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("bench_models_account.id"))
    other: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))


def _url(database: str) -> str:
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{bench_app.SQLITE['NAME']}"
    scheme = "postgresql+psycopg" if database == "postgresql" else "mysql+asyncmy"
    return bench_app.url(database, scheme)


def run(database: str, seconds: float, keys: list[str]) -> dict[str, Measured]:
    async def main() -> dict[str, float]:
        engine = create_async_engine(_url(database), pool_size=10, max_overflow=0)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        columns = list(Item.__table__.c)
        many = Item.value <= MANY

        async def get(n: int) -> Any:
            async with sessions() as session:
                return await session.get(Item, n % data.ITEMS + 1)

        async def scalars(statement: Any) -> list[Any]:
            async with sessions() as session:
                return list((await session.scalars(statement)).all())

        async def values(n: int) -> list[dict[str, Any]]:
            async with sessions() as session:
                result = await session.execute(select(*columns).where(many))
                return [dict(row) for row in result.mappings()]

        async def values_list(n: int) -> list[Any]:
            async with sessions() as session:
                return list((await session.execute(select(*columns).where(many))).all())

        async def insert_one(n: int) -> None:
            async with sessions() as session:
                session.add(Item(**fields(n)))
                await session.commit()

        async def insert_transaction(n: int) -> None:
            async with sessions() as session, session.begin():
                for k in range(BATCH):
                    session.add(Item(**fields(n * BATCH + k)))
                    await session.flush()

        async def bulk_insert(n: int) -> None:
            async with sessions() as session:
                await session.execute(insert(Item), [fields(n * BULK + k) for k in range(BULK)])
                await session.commit()

        async def tpcb(n: int) -> None:
            first, second, amount = transfer(n)
            async with sessions() as session, session.begin():
                locked = (
                    select(Account)
                    .where(Account.id.in_((first, second)))
                    .order_by(Account.id)
                    .with_for_update()
                )
                low, high = (await session.scalars(locked)).all()
                low.balance -= amount
                high.balance += amount
                session.add(
                    History(account_id=low.id, other=high.id, amount=amount, created=data.CREATED)
                )

        async def api_request(n: int) -> None:
            async with sessions() as session:
                related = select(Book).options(joinedload(Book.author))
                (await session.scalars(related.where(Book.id == n % data.BOOKS + 1))).one()
                page = select(Item).where(Item.value > api_page(n)).order_by(Item.id).limit(PAGE)
                list((await session.scalars(page)).all())
            await insert_one(n)

        ops: dict[str, Any] = {
            "tpcb": tpcb,
            "tpcb_concurrent": tpcb,
            "api_request": api_request,
            "api_request_concurrent": api_request,
            "get": get,
            "get_concurrent": get,
            "filter_many": lambda n: scalars(select(Item).where(many)),
            "paged": lambda n: scalars(
                select(Item).order_by(Item.id).offset(page_of_items(n)).limit(PAGE)
            ),
            "values": values,
            "values_list": values_list,
            "page_related": lambda n: scalars(
                select(Book)
                .options(joinedload(Book.author), selectinload(Book.tags))
                .order_by(Book.id)
                .offset(page_of_books(n))
                .limit(PAGE)
            ),
            "insert": insert_one,
            "insert_concurrent": insert_one,
            "insert_transaction": insert_transaction,
            "bulk_insert": bulk_insert,
        }

        async def delete_one(pk: int) -> None:
            async with sessions() as session:
                await session.execute(delete(Item).where(Item.id == pk))
                await session.commit()

        results: dict[str, Measured] = {}
        sessions_open: list[Any] = []
        try:
            await get(0)
            for key in keys:
                if key in ("update_all", "update_one"):
                    session = sessions()  # one session keeps the object, as a unit of work
                    sessions_open.append(session)

                    async def save(obj: Any, all_fields: bool, session: Any = session) -> None:
                        await session.commit()

                    ops |= update_ops(await session.get(Item, 1), save)
                if key == "delete":
                    ops[key] = delete_op(database, seconds, delete_one)
                results[key] = await drive(ops[key], BY_KEY[key].concurrency, seconds)
        finally:
            for session in sessions_open:
                await session.close()
            await engine.dispose()
        return results

    return loops.run(main())
