"""The bookshop: ordinary Django models; Book has a version for its edit form."""

from django.db import models

from django_asyncdb.locking import VersionField


class Author(models.Model):
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=60, blank=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    price = models.DecimalField(max_digits=6, decimal_places=2)
    published = models.DateField()
    review_count = models.IntegerField(default=0)
    # Optimistic locking: the edit form carries it, so a stale edit is refused, not saved
    # over someone else's (django_asyncdb.locking).
    version = VersionField()

    def __str__(self) -> str:
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.CharField(max_length=60)
    rating = models.PositiveSmallIntegerField()
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
