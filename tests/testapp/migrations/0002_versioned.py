import django.db.models.deletion
from django.db import migrations, models

import django_asyncdb.locking


class Migration(migrations.Migration):
    dependencies = [("testapp", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Article",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("title", models.CharField(max_length=100)),
                ("hits", models.IntegerField(default=0)),
                ("version", django_asyncdb.locking.VersionField()),
                (
                    "tags",
                    models.ManyToManyField(blank=True, related_name="articles", to="testapp.tag"),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Page",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("title", models.CharField(max_length=100)),
                ("version", django_asyncdb.locking.VersionField()),
            ],
        ),
        migrations.CreateModel(
            name="WikiPage",
            fields=[
                (
                    "page_ptr",
                    models.OneToOneField(
                        auto_created=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        parent_link=True,
                        primary_key=True,
                        serialize=False,
                        to="testapp.page",
                    ),
                ),
                ("text", models.CharField(default="", max_length=100)),
            ],
            bases=("testapp.page",),
        ),
    ]
