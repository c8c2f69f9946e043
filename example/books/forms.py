"""Input validation for the review POST endpoints."""

from django import forms


class ReviewForm(forms.Form):
    """A review of one book; the book's existence is checked by the view, in its
    transaction, so that validation itself does no I/O (and stays usable from async code)."""

    book = forms.IntegerField(min_value=1)
    reviewer = forms.CharField(max_length=60)
    rating = forms.IntegerField(min_value=1, max_value=5)
    body = forms.CharField(max_length=2000)
