"""Models covering the field types and relation shapes the native read path must handle."""

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from django_asyncdb.locking import VersionField


class Comment(models.Model):
    """Attached to any model through a generic foreign key."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=50)


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
    comments = GenericRelation(Comment)

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


# Write-path models -------------------------------------------------------------------


def _no_team():
    """SET(callable): the value a Badge's team takes when its team is deleted."""
    return None


class Team(models.Model):
    name = models.CharField(max_length=50, unique=True)
    comments = GenericRelation(Comment)


class Label(models.Model):
    name = models.CharField(max_length=30, unique=True)


class Person(models.Model):
    name = models.CharField(max_length=50)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    mentor = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="mentees"
    )
    score = models.IntegerField(default=0)
    labels = models.ManyToManyField(Label, through="Tagging", related_name="people")
    friends = models.ManyToManyField("self", blank=True)


class Tagging(models.Model):
    person = models.ForeignKey(Person, on_delete=models.CASCADE)
    label = models.ForeignKey(Label, on_delete=models.CASCADE)
    weight = models.IntegerField(default=1)


class Employee(Person):
    salary = models.IntegerField(default=0)


class Ticket(models.Model):
    owner = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="tickets")
    title = models.CharField(max_length=50)


class Note(models.Model):
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="notes")
    team = models.ForeignKey(Team, on_delete=models.RESTRICT, null=True, related_name="notes")
    text = models.CharField(max_length=50)


class Badge(models.Model):
    holder = models.ForeignKey(Person, null=True, on_delete=models.SET_NULL, related_name="badges")
    team = models.ForeignKey(Team, on_delete=models.SET(_no_team), null=True, related_name="badges")
    default_team = models.ForeignKey(
        Team,
        on_delete=models.SET_DEFAULT,
        default=None,
        null=True,
        related_name="default_badges",
    )


class Log(models.Model):
    person = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    message = models.CharField(max_length=50)


class Stamp(models.Model):
    """Values the database fills in (RETURNING where the backend has it)."""

    label = models.CharField(max_length=20)
    code = models.IntegerField(db_default=7)
    kind = models.CharField(max_length=10, db_default="new")


class Article(models.Model):
    """Optimistic locking: a version checked on save (django_asyncdb.locking)."""

    title = models.CharField(max_length=100)
    hits = models.IntegerField(default=0)
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    version = VersionField()


class Page(models.Model):
    """A versioned parent of multi-table inheritance."""

    title = models.CharField(max_length=100)
    version = VersionField()


class WikiPage(Page):
    text = models.CharField(max_length=100, default="")
