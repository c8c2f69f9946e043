"""Every page in a sync form (/sync/...) and an async form (/async/...)."""

from books import views_async, views_sync
from django.conf import settings
from django.urls import include, path


def views(module):  # type: ignore[no-untyped-def]
    return [
        path("books/", module.books, name="books"),
        path("books/<int:pk>.json", module.detail, name="detail"),
        path("books/<int:pk>/", module.book, name="book"),
        path("books/<int:pk>/edit/", module.book_edit, name="book-edit"),
        path("reviews/new/", module.review_form, name="review-form"),
        path("api/reviews/", module.review_create, name="review-create"),
        path("cached/", module.cached, name="cached"),
        path("upstream/", module.external, name="upstream"),
        path("fanout/", module.fanout, name="fanout"),
    ]


urlpatterns = [
    path("", views_sync.home, name="home"),
    path("sync/", include((views(views_sync), "sync"))),
    path("async/", include((views(views_async), "async"))),
]

if settings.COUNT_HOPS:
    from books.hops import hops

    urlpatterns.append(path("debug/hops/", hops))
