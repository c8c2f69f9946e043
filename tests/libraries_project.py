"""A project built on real async Django libraries, as their docs show them, for
tests/test_libraries.py: a django-ninja API, an adrf (async DRF) viewset and a Channels
WebSocket consumer over tests/testapp's models.

Their code queries through the default managers, as a project's code does; ``Router``
sends testapp's, auth's and sessions' models to the alias under test.
"""

import json
from datetime import date
from decimal import Decimal

from adrf.routers import SimpleRouter
from adrf.serializers import ModelSerializer
from adrf.viewsets import ModelViewSet
from channels.auth import AuthMiddlewareStack, login
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.contrib.auth.models import User
from django.db import IntegrityError, router, transaction
from django.shortcuts import aget_object_or_404
from django.urls import include, path
from ninja import NinjaAPI, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.security import django_auth
from rest_framework.pagination import PageNumberPagination

from testapp.models import Book, Counter, Tag


class Router:
    """testapp's, auth's and sessions' models on ``alias`` while a test sets it."""

    alias: str | None = None
    apps = frozenset({"testapp", "auth", "sessions"})

    def _route(self, model, **hints):
        if self.alias and model._meta.app_label in self.apps:
            return self.alias
        return None

    db_for_read = db_for_write = _route


def atomic():
    """The project's transaction: on the database its models are routed to."""
    return transaction.atomic(using=router.db_for_write(Book))


# django-ninja ---------------------------------------------------------------------------

api = NinjaAPI(urls_namespace="libraries-ninja")


class TagOut(Schema):
    id: int
    name: str


class AuthorOut(Schema):
    id: int
    name: str


class BookOut(Schema):
    id: int
    title: str
    pages: int
    price: Decimal
    author: AuthorOut
    tags: list[TagOut]


class BookIn(Schema):
    title: str
    author_id: int
    pages: int
    price: Decimal
    published: date
    tags: list[str] = []


def books_with_relations():
    # Both relations are loaded with the books: schemas read them on the event loop.
    return Book.objects.select_related("author").prefetch_related("tags")


@api.exception_handler(IntegrityError)
def integrity_error(request, exc):
    return api.create_response(request, {"detail": "conflict"}, status=409)


@api.get("/books", response=list[BookOut])
@paginate(LimitOffsetPagination)
async def list_books(request, min_pages: int = 0, tag: str | None = None):
    """Books with at least ``min_pages`` pages, with the tag ``tag`` if given."""
    books = books_with_relations().filter(pages__gte=min_pages).order_by("id")
    return books.filter(tags__name=tag) if tag else books


@api.get("/books/{book_id}", response=BookOut)
async def get_book(request, book_id: int):
    """One book, its author joined."""
    return await aget_object_or_404(books_with_relations(), pk=book_id)


@api.post("/books", response={201: BookOut})
async def create_book(request, payload: BookIn):
    """A book and its tags (created if new), all or nothing."""
    async with atomic():
        tags = [(await Tag.objects.aget_or_create(name=name))[0] for name in payload.tags]
        book = await Book.objects.acreate(**payload.dict(exclude={"tags"}))
        await book.tags.aset(tags)
    return Status(201, await books_with_relations().aget(pk=book.pk))


@api.get("/me", auth=django_auth)
async def me(request):
    """The session's user (ninja's own session auth is sync: it runs in a thread)."""
    return {"username": request.auth.username}


# adrf -------------------------------------------------------------------------------------


class TagSerializer(ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]  # name is unique: DRF adds a UniqueValidator


class Pages(PageNumberPagination):
    page_size = 2


class TagViewSet(ModelViewSet):
    """Tags, paginated; ``?prefix=`` filters by name."""

    queryset = Tag.objects.order_by("name")
    serializer_class = TagSerializer
    pagination_class = Pages

    def get_queryset(self):
        prefix = self.request.query_params.get("prefix")
        tags = super().get_queryset()
        return tags.filter(name__startswith=prefix) if prefix else tags

    async def acreate(self, request, *args, **kwargs):
        """Create a tag; the tags listed in ``replaces`` are deleted first, all or nothing."""
        async with atomic():
            await Tag.objects.filter(pk__in=request.data.get("replaces", [])).adelete()
            # DRF validates in a thread: its unique check must see the deletes above.
            return await super().acreate(request, *args, **kwargs)


drf_router = SimpleRouter()
drf_router.register("tags", TagViewSet)

urlpatterns = [
    path("ninja/", api.urls),
    path("drf/", include(drf_router.urls)),
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


# Channels ---------------------------------------------------------------------------------


class CounterConsumer(AsyncWebsocketConsumer):
    """Counts the messages sent to it in the database; ``signup`` creates a user and logs in."""

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data)
        if "signup" in message:
            await self.send(text_data=json.dumps(await self.signup(message["signup"])))
            return
        user = self.scope["user"]
        name = user.username if user.is_authenticated else "anonymous"
        await Counter.objects.acreate(name=f"ws {name}", value=message["value"])
        count = await Counter.objects.filter(name__startswith="ws ").acount()
        await self.send(text_data=json.dumps({"user": name, "count": count}))

    async def signup(self, username):
        """A new user, logged in on this connection's session, all or nothing."""
        try:
            async with atomic():
                user = await User.objects.acreate_user(username)
                # Channels' login runs in a thread: it creates the session row and
                # Django's user_logged_in receiver saves last_login, in this transaction.
                await login(self.scope, user)
                await self.scope["session"].asave()
                if "refused" in username:
                    raise PermissionError(username)
        except PermissionError:
            return {"refused": username}
        return {"user": username, "session": self.scope["session"].session_key}


websocket_application = AuthMiddlewareStack(
    URLRouter([path("ws/counter/", CounterConsumer.as_asgi())])
)
