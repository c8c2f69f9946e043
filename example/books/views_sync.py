"""The sync views (WSGI under gunicorn; under ASGI Django runs them in a thread)."""

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from django_asyncdb.locking import StaleObjectError

from . import common, upstream
from .forms import BookForm, ReviewForm, ReviewPageForm
from .models import Book, Review


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "books/home.html", {"sections": common.home_links()})


@require_GET
def books(request: HttpRequest) -> HttpResponse:
    context = {"books": list(common.book_list()), "user": request.user, "mode": "sync"}
    return render(request, "books/list.html", context)


@require_GET
def detail(request: HttpRequest, pk: int) -> JsonResponse:
    try:
        book = common.book_detail().get(pk=pk)
    except Book.DoesNotExist:
        return JsonResponse({"error": "no such book"}, status=404)
    return JsonResponse(common.book_json(book, request.user))


@require_GET
def book(request: HttpRequest, pk: int) -> HttpResponse:
    """A book's page with its reviews (where the review form redirects)."""
    try:
        found = common.book_detail().get(pk=pk)
    except Book.DoesNotExist:
        return render(request, "books/not_found.html", {"mode": "sync"}, status=404)
    return render(request, "books/book.html", common.book_page(found, request, "sync"))


@require_http_methods(["GET", "POST"])
def book_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a book; a stale post is refused (409) instead of overwriting."""
    try:
        found = Book.objects.get(pk=pk)
    except Book.DoesNotExist:
        return render(request, "books/not_found.html", {"mode": "sync"}, status=404)
    form = BookForm(request.POST if request.method == "POST" else None, instance=found)
    if request.method == "POST" and form.is_valid():
        try:
            form.save()
        except StaleObjectError:  # changed since validation: the form now says why (409)
            pass
        else:
            return common.HttpResponseSeeOther(reverse("sync:book", args=[pk]))
    context = common.edit_page(form, "sync")
    return render(request, "books/book_edit.html", context, status=common.edit_status(form))


@require_http_methods(["GET", "POST"])
def review_form(request: HttpRequest) -> HttpResponse:
    """The HTML form page: ordinary CSRF protection; a saved review redirects (303) to its
    book's page, invalid input shows the form again with its errors (400)."""
    books = list(common.book_choices())
    data = request.POST if request.method == "POST" else None
    form = ReviewPageForm(data, books=books, initial={"book": request.GET.get("book")})
    if form.is_valid():
        created = create_review(form)
        if created is not None:
            url = reverse("sync:book", args=[created.book_id])
            return common.HttpResponseSeeOther(f"{url}?review={created.pk}")
        form.add_error("book", "No such book.")
    context = {"form": form, "mode": "sync"}
    return render(request, "books/review_form.html", context, status=400 if form.errors else 200)


@csrf_exempt  # an API endpoint for clients without a session (and the load tool)
@require_http_methods(["POST"])
def review_create(request: HttpRequest) -> JsonResponse:
    """Form fields or a JSON object; 201 with the review, or 400 with what is wrong."""
    try:
        form = ReviewForm(common.api_input(request))
    except ValueError as error:
        return JsonResponse({"error": str(error)}, status=400)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    review = create_review(form)
    if review is None:
        return JsonResponse(common.NO_SUCH_BOOK, status=400)
    return JsonResponse(common.review_json(review), status=201)


def create_review(form: ReviewForm) -> Review | None:
    """Insert the review and bump the book's counter, in one transaction."""
    data = form.cleaned_data
    with transaction.atomic():
        if not Book.objects.filter(pk=data["book"]).update(review_count=F("review_count") + 1):
            return None
        return Review.objects.create(
            book_id=data["book"],
            reviewer=data["reviewer"],
            rating=data["rating"],
            body=data["body"],
        )


@require_GET
def cached(request: HttpRequest) -> JsonResponse:
    stats = cache.get(common.CACHE_KEY)
    hit = stats is not None
    if not hit:
        stats = {name: model.objects.count() for name, model in common.COUNTED.items()}
        cache.set(common.CACHE_KEY, stats, settings.CACHE_SECONDS)
    return JsonResponse(common.cached_json(stats, hit))


@require_GET
def external(request: HttpRequest) -> JsonResponse:
    response = upstream.client().get(settings.UPSTREAM_URL)
    response.raise_for_status()
    return JsonResponse({"upstream": response.json(), "user": common.user_name(request.user)})


@require_GET
def fanout(request: HttpRequest) -> JsonResponse:
    """The same independent queries as the async view, one after another."""
    results: dict[str, object] = {
        name: model.objects.count() for name, model in common.COUNTED.items()
    }
    results.update({name: list(qs) for name, qs in common.fanout_querysets().items()})
    return JsonResponse({"results": results, "user": common.user_name(request.user)})
