"""One plain model: the shape of a typical small row."""

from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)
    value = models.IntegerField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    created = models.DateTimeField()
