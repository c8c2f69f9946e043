"""What the sync and async views share: querysets, JSON shapes, links. No I/O here."""

import json
from collections.abc import Mapping
from typing import Any

from django.core.cache import caches
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Avg, QuerySet
from django.http import HttpRequest, HttpResponseRedirect

from .models import Author, Book, Review

LIST_SIZE = 50
CACHE_KEY = "bookshop:stats"
# The 400 answer when the form is valid but the book does not exist (form.errors' shape).
NO_SUCH_BOOK = {"errors": {"book": [{"message": "No such book.", "code": "invalid"}]}}


def book_list() -> QuerySet[Book]:
    """The list page's books, with their authors (one query)."""
    return Book.objects.select_related("author").order_by("id")[:LIST_SIZE]


def book_detail() -> QuerySet[Book]:
    """A book with its author (joined) and its reviews (prefetched)."""
    return Book.objects.select_related("author").prefetch_related("reviews")


def book_choices() -> QuerySet[Book, tuple[int, str]]:
    """The review form's book picker: (id, title) of every book, by title."""
    return Book.objects.order_by("title", "id").values_list("id", "title")


def book_page(book: Book, request: HttpRequest, mode: str) -> dict[str, Any]:
    """The book page's context; ``?review=<id>`` (where the form redirects after saving)
    marks that review as the visitor's new one."""
    reviews = sorted(book.reviews.all(), key=lambda r: r.pk)
    saved = request.GET.get("review", "")
    new = next((r for r in reviews if str(r.pk) == saved), None)
    return {"book": book, "reviews": reviews, "new_review": new, "mode": mode}


def edit_status(form: Any) -> int:
    """409 for an edit someone else's change made stale, 400 for other errors, else 200."""
    if form.has_error(NON_FIELD_ERRORS, "stale"):
        return 409
    return 400 if form.errors else 200


def edit_page(form: Any, mode: str) -> dict[str, Any]:
    """The book edit page's context (the title as stored, not as posted)."""
    return {"form": form, "book": form.instance, "title": form.initial["title"], "mode": mode}


class HttpResponseSeeOther(HttpResponseRedirect):
    """303: after a successful POST the browser GETs the result page (Post/Redirect/Get),
    so reloading that page does not post again."""

    status_code = 303


def api_input(request: HttpRequest) -> Mapping[str, Any]:
    """The review API's input: a JSON object (Content-Type: application/json) or form
    fields. Raises ValueError, its message for the client, if the JSON is unusable."""
    if request.content_type != "application/json":
        return request.POST
    try:
        data = json.loads(request.body)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    if any(isinstance(value, dict | list) for value in data.values()):
        raise ValueError("the object's values must be strings, numbers or null")
    return data


def user_name(user: Any) -> str:
    return user.get_username() if user.is_authenticated else "anonymous"


def book_json(book: Book, user: Any) -> dict[str, Any]:
    """The detail view's JSON; reviews come from the prefetch cache."""
    return {
        "id": book.pk,
        "title": book.title,
        "price": str(book.price),
        "published": book.published.isoformat(),
        "review_count": book.review_count,
        "author": {"id": book.author.pk, "name": book.author.name, "country": book.author.country},
        "reviews": [
            {"id": r.pk, "reviewer": r.reviewer, "rating": r.rating, "body": r.body}
            for r in sorted(book.reviews.all(), key=lambda r: r.pk)
        ],
        "user": user_name(user),
    }


def review_json(review: Review) -> dict[str, Any]:
    return {
        "id": review.pk,
        "book": review.book_id,
        "reviewer": review.reviewer,
        "rating": review.rating,
        "body": review.body,
    }


def cached_json(stats: dict[str, int], hit: bool) -> dict[str, Any]:
    return {
        "stats": stats,
        "cache": "hit" if hit else "miss",
        "backend": type(caches["default"]).__name__,
    }


def fanout_querysets() -> dict[str, QuerySet[Any]]:
    """Independent queries of the fan-out views: each value is evaluated as a list or count."""
    return {
        "top_rated": Book.objects.annotate(avg=Avg("reviews__rating"))
        .order_by("-avg", "id")
        .values("id", "title")[:5],
        "latest_reviews": Review.objects.order_by("-id").values("id", "book_id", "rating")[:5],
        "cheapest": Book.objects.order_by("price", "id").values("id", "title")[:5],
        "countries": Author.objects.order_by("country")
        .values_list("country", flat=True)
        .distinct(),
    }


COUNTED = {"authors": Author, "books": Book, "reviews": Review}


def home_links() -> list[tuple[str, list[tuple[str, str]]]]:
    """The home page's sections: (title, [(label, url)])."""
    pages = [
        ("Books (template page)", "books/"),
        ("Book 1 as JSON (select_related + prefetch_related)", "books/1.json"),
        ("Book 1's page with its reviews", "books/1/"),
        ("New review (form)", "reviews/new/"),
        ("Cached stats (cache API)", "cached/"),
        ("External API (httpx to the local upstream)", "upstream/"),
        ("Fan-out (independent queries)", "fanout/"),
    ]
    return [
        (title, [(label, f"/{prefix}/{url}") for label, url in pages])
        for title, prefix in (("Sync views", "sync"), ("Async views", "async"))
    ]
