"""Seed the bookshop with a fixed set of authors, books and reviews (idempotent)."""

import datetime
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from books.models import Author, Book, Review

AUTHORS = 20
BOOKS_PER_AUTHOR = 10
REVIEWS_PER_BOOK = 3
COUNTRIES = ["Chile", "France", "Japan", "Nigeria", "Norway", "Peru", "Poland", "USA"]


def seeded_reviews(books: list[Book]) -> list[Review]:
    return [
        Review(
            book=book,
            reviewer=f"Reader {(i * 31 + r) % 97}",
            rating=1 + (i + r) % 5,
            body=f"Review {r} of {book.title}.",
        )
        for i, book in enumerate(books)
        for r in range(1, REVIEWS_PER_BOOK + 1)
    ]


class Command(BaseCommand):
    help = "Create the example's authors, books and reviews unless they already exist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--restore",
            action="store_true",
            help="put the reviews and the books' counters back as seeded (after a load test)",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["restore"] and Author.objects.exists():
            with transaction.atomic():
                Review.objects.all().delete()
                Book.objects.update(review_count=REVIEWS_PER_BOOK)
                Review.objects.bulk_create(seeded_reviews(list(Book.objects.order_by("id"))))
            self.stdout.write("seed: reviews restored")
            return
        if Author.objects.exists():
            self.stdout.write("seed: data already present, nothing to do")
            return
        with transaction.atomic():
            authors = Author.objects.bulk_create(
                Author(name=f"Author {a:02d}", country=COUNTRIES[a % len(COUNTRIES)])
                for a in range(1, AUTHORS + 1)
            )
            books = Book.objects.bulk_create(
                Book(
                    title=f"Book {a:02d}.{b:02d}",
                    author=author,
                    price=Decimal(f"{5 + (a * b) % 40}.{b:02d}"),
                    published=datetime.date(1950 + (a * 7 + b) % 70, 1 + b % 12, 1 + a % 28),
                    review_count=REVIEWS_PER_BOOK,
                )
                for a, author in enumerate(authors, 1)
                for b in range(1, BOOKS_PER_AUTHOR + 1)
            )
            Review.objects.bulk_create(seeded_reviews(books))
        self.stdout.write(
            f"seed: {len(authors)} authors, {len(books)} books, "
            f"{len(books) * REVIEWS_PER_BOOK} reviews"
        )
