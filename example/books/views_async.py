"""The async views: Django's async API only. With django_asyncdb installed every query runs
on a native async connection; with ASYNCDB=0 the same calls hop to a thread (Django's
built-in async ORM)."""

import asyncio

from asgiref.sync import sync_to_async
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
from .views_sync import create_review


@require_GET
async def books(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    rows = [book async for book in common.book_list()]
    # Everything the template reads is loaded: rendering does no I/O.
    return render(request, "books/list.html", {"books": rows, "user": user, "mode": "async"})


@require_GET
async def detail(request: HttpRequest, pk: int) -> JsonResponse:
    user = await request.auser()
    try:
        book = await common.book_detail().aget(pk=pk)
    except Book.DoesNotExist:
        return JsonResponse({"error": "no such book"}, status=404)
    return JsonResponse(common.book_json(book, user))


@require_GET
async def book(request: HttpRequest, pk: int) -> HttpResponse:
    """A book's page with its reviews (where the review form redirects)."""
    try:
        found = await common.book_detail().aget(pk=pk)
    except Book.DoesNotExist:
        return render(request, "books/not_found.html", {"mode": "async"}, status=404)
    return render(request, "books/book.html", common.book_page(found, request, "async"))


@require_http_methods(["GET", "POST"])
async def book_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a book; a post made from a page shown before someone else's change is refused
    (409, the form shows why) instead of overwriting it."""
    try:
        found = await Book.objects.aget(pk=pk)
    except Book.DoesNotExist:
        return render(request, "books/not_found.html", {"mode": "async"}, status=404)
    form = BookForm(request.POST if request.method == "POST" else None, instance=found)
    if request.method == "POST" and await form.ais_valid():
        try:
            await form.asave()
        except StaleObjectError:  # changed since validation: the form now says why (409)
            pass
        else:
            return common.HttpResponseSeeOther(reverse("async:book", args=[pk]))
    context = common.edit_page(form, "async")
    return render(request, "books/book_edit.html", context, status=common.edit_status(form))


@require_http_methods(["GET", "POST"])
async def review_form(request: HttpRequest) -> HttpResponse:
    """The HTML form page: ordinary CSRF protection; a saved review redirects (303) to its
    book's page, invalid input shows the form again with its errors (400)."""
    books = [choice async for choice in common.book_choices()]
    data = request.POST if request.method == "POST" else None
    form = ReviewPageForm(data, books=books, initial={"book": request.GET.get("book")})
    if form.is_valid():
        created = await acreate_review(form)
        if created is not None:
            url = reverse("async:book", args=[created.book_id])
            return common.HttpResponseSeeOther(f"{url}?review={created.pk}")
        form.add_error("book", "No such book.")
    context = {"form": form, "mode": "async"}
    return render(request, "books/review_form.html", context, status=400 if form.errors else 200)


@csrf_exempt  # an API endpoint for clients without a session (and the load tool)
@require_http_methods(["POST"])
async def review_create(request: HttpRequest) -> JsonResponse:
    """Form fields or a JSON object; 201 with the review, or 400 with what is wrong."""
    try:
        form = ReviewForm(common.api_input(request))
    except ValueError as error:
        return JsonResponse({"error": str(error)}, status=400)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    review = await acreate_review(form)
    if review is None:
        return JsonResponse(common.NO_SUCH_BOOK, status=400)
    return JsonResponse(common.review_json(review), status=201)


async def acreate_review(form: ReviewForm) -> Review | None:
    """Insert the review and bump the book's counter, in one transaction."""
    if not settings.ASYNCDB:
        # Django's own async ORM has no async atomic block: the whole transaction has to
        # run in a thread.
        return await sync_to_async(create_review)(form)
    data = form.cleaned_data
    async with transaction.atomic():
        updated = await Book.objects.filter(pk=data["book"]).aupdate(
            review_count=F("review_count") + 1
        )
        if not updated:
            return None
        return await Review.objects.acreate(
            book_id=data["book"],
            reviewer=data["reviewer"],
            rating=data["rating"],
            body=data["body"],
        )


@require_GET
async def cached(request: HttpRequest) -> JsonResponse:
    stats = await cache.aget(common.CACHE_KEY)
    hit = stats is not None
    if not hit:
        counts = await asyncio.gather(*(m.objects.acount() for m in common.COUNTED.values()))
        stats = dict(zip(common.COUNTED, counts, strict=True))
        await cache.aset(common.CACHE_KEY, stats, settings.CACHE_SECONDS)
    return JsonResponse(common.cached_json(stats, hit))


@require_GET
async def external(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    response = await upstream.aclient().get(settings.UPSTREAM_URL)
    response.raise_for_status()
    return JsonResponse({"upstream": response.json(), "user": common.user_name(user)})


@require_GET
async def fanout(request: HttpRequest) -> JsonResponse:
    """Independent queries at once: each on its own pooled connection with django_asyncdb."""
    user = await request.auser()
    querysets = common.fanout_querysets()
    counts, lists = await asyncio.gather(
        asyncio.gather(*(m.objects.acount() for m in common.COUNTED.values())),
        asyncio.gather(*(_alist(qs) for qs in querysets.values())),
    )
    results: dict[str, object] = dict(zip(common.COUNTED, counts, strict=True))
    results.update(zip(querysets, lists, strict=True))
    return JsonResponse({"results": results, "user": common.user_name(user)})


async def _alist(queryset):  # type: ignore[no-untyped-def]
    return [row async for row in queryset]
