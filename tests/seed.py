"""Deterministic data shared by the read tests, written with Django's sync ORM."""

import datetime
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

from testapp.models import Author, Book, Comment, Place, Profile, Publisher, Restaurant, Tag

UTC = datetime.UTC
PARIS = ZoneInfo("Europe/Paris")


def seed(alias: str) -> None:
    """Insert the same rows, with the same primary keys, on ``alias``."""
    publishers = [
        Publisher(id=i, name=name, country=country)
        for i, (name, country) in enumerate(
            [("Penguin", "GB"), ("Gallimard", "FR"), ("Knopf", "US"), ("Suhrkamp", "DE")], 1
        )
    ]
    Publisher.objects.using(alias).bulk_create(publishers)
    authors = []
    for i in range(1, 13):
        authors.append(
            Author(
                id=i,
                name=f"Author {i:02d}",
                email=f"author{i}@example.com",
                age=25 + (i * 7) % 40,
                born=datetime.date(1950 + i * 3, 1 + i % 12, 1 + (i * 5) % 28),
                rating=Decimal(f"{(i * 37) % 100}.{(i * 13) % 100:02d}"),
                uid=uuid.UUID(int=i * 7919),
                data={"level": i % 3, "tags": ["x", "y"][: i % 3], "nested": {"k": i}},
                joined=datetime.datetime(2020, 1 + i % 12, 1 + i, 10, i, tzinfo=UTC)
                if i % 2
                else datetime.datetime(2021, 3, 28, 1 + i % 3, 30, tzinfo=PARIS),
                active=i % 4 != 0,
                mentor_id=None if i <= 3 else 1 + i % 3,
            )
        )
    Author.objects.using(alias).bulk_create(authors)
    Profile.objects.using(alias).bulk_create(
        [Profile(id=i, author_id=i, bio=f"Bio of {i}") for i in range(1, 13) if i % 3]
    )
    tags = [Tag(id=i, name=name) for i, name in enumerate(["sf", "crime", "poetry", "essay"], 1)]
    Tag.objects.using(alias).bulk_create(tags)
    books = []
    for i in range(1, 41):
        books.append(
            Book(
                id=i,
                title=f"Book {(i * 17) % 41:02d}",
                author_id=1 + (i * 5) % 12,
                publisher_id=None if i % 7 == 0 else 1 + i % 4,
                pages=100 + (i * 37) % 500,
                price=Decimal(f"{5 + i % 30}.{(i * 11) % 100:02d}"),
                published=datetime.date(1990 + i % 30, 1 + i % 12, 1 + i % 28),
                extra=None if i % 5 == 0 else {"edition": i % 4, "signed": i % 2 == 0},
            )
        )
    Book.objects.using(alias).bulk_create(books)
    through = Book.tags.through
    through.objects.using(alias).bulk_create(
        [through(book_id=b, tag_id=1 + (b + k) % 4) for b in range(1, 41) for k in range(b % 3)]
    )
    Comment.objects.using(alias).bulk_create(
        [Comment(id=i, target=books[i % 9], text=f"comment {i}") for i in range(1, 13)]
        + [Comment(id=20 + i, target=authors[i], text=f"on author {i}") for i in range(3)]
    )
    for i in range(1, 6):
        if i % 2:
            Restaurant.objects.using(alias).create(
                id=i, name=f"Place {i}", address=f"{i} Main St", serves_pizza=i == 3, rating=i
            )
        else:
            Place.objects.using(alias).create(id=i, name=f"Place {i}", address=f"{i} Side St")
    if alias != "default":
        from django.core.management.color import no_style
        from django.db import connections

        connection = connections[alias]
        models = [Publisher, Author, Profile, Tag, Book, Place, Restaurant, through, Comment]
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(sql)
