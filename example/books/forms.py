"""Input validation for the review POST endpoints."""

from collections.abc import Iterable
from typing import Any

from django import forms

from django_asyncdb.locking import VersionedModelForm

from .models import Book


class ReviewForm(forms.Form):
    """A review of one book; the book's existence is checked by the view, in its
    transaction, so that validation itself does no I/O (and stays usable from async code)."""

    book = forms.IntegerField(min_value=1)
    reviewer = forms.CharField(max_length=60)
    rating = forms.IntegerField(min_value=1, max_value=5)
    body = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 4}))


class ReviewPageForm(ReviewForm):
    """The HTML page's form: the book is picked from a <select> of the books the view loaded
    (``async for`` in the async view). A ModelChoiceField would query its queryset while the
    page renders (its choices) and while it validates (``queryset.get()``): sync ORM code,
    which async code must not run. These choices are a list, so neither does any I/O."""

    book = forms.TypedChoiceField(coerce=int, empty_value=None)

    def __init__(self, *args: Any, books: Iterable[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["book"].choices = [("", "Choose a book"), *books]


class BookForm(VersionedModelForm):
    """The book edit form: the version it was shown with comes back in a hidden field, and
    a post after someone else's change is refused with a form error (StaleObjectError)."""

    class Meta:
        model = Book
        fields = ["title", "price"]
