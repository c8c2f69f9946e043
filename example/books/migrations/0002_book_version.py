from django.db import migrations

import django_asyncdb.locking


class Migration(migrations.Migration):
    dependencies = [("books", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="book",
            name="version",
            field=django_asyncdb.locking.VersionField(),
        ),
    ]
