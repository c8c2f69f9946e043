"""The benchmark's tables, created by Django; the other ORMs map the same tables."""

from django.db import models


class Item(models.Model):
    """A typical small row."""

    name = models.CharField(max_length=100)
    value = models.IntegerField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    created = models.DateTimeField()


class Author(models.Model):
    name = models.CharField(max_length=100)


class Tag(models.Model):
    name = models.CharField(max_length=30)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    tags = models.ManyToManyField(Tag, related_name="books")


class Account(models.Model):
    """An account of the TPC-B-like workloads."""

    balance = models.IntegerField()


class History(models.Model):
    """One TPC-B-like transfer."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    other = models.IntegerField()
    amount = models.IntegerField()
    created = models.DateTimeField()
