"""Models covering the field types and relation shapes the native read path must handle."""

import uuid

from django.db import models


class Publisher(models.Model):
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2)

    class Meta:
        ordering = ["id"]


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    age = models.IntegerField()
    born = models.DateField()
    rating = models.DecimalField(max_digits=5, decimal_places=2)
    uid = models.UUIDField(default=uuid.uuid4, unique=True)
    data = models.JSONField(default=dict)
    joined = models.DateTimeField()
    active = models.BooleanField(default=True)
    mentor = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self):
        return self.name


class Profile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField()


class Tag(models.Model):
    name = models.CharField(max_length=30, unique=True)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    publisher = models.ForeignKey(Publisher, null=True, on_delete=models.SET_NULL)
    pages = models.IntegerField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    published = models.DateField()
    tags = models.ManyToManyField(Tag, related_name="books")
    extra = models.JSONField(null=True)

    class Meta:
        ordering = ["title"]


class Place(models.Model):
    name = models.CharField(max_length=50)
    address = models.CharField(max_length=80)


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)
    rating = models.IntegerField(null=True)


class Counter(models.Model):
    """A plain table the transaction tests write to with raw SQL."""

    name = models.CharField(max_length=50)
    value = models.IntegerField(default=0)
