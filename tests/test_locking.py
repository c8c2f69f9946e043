"""Optimistic locking (django_asyncdb.locking): concurrent edits are detected, never lost.

Real tasks on every vendor load the same row, change it and save it: one save per
version wins, the others get StaleObjectError and write nothing; the retry helper keeps
every change. Models without a VersionField run exactly Django's statements.
"""

import asyncio
import threading

import pytest
from django.apps import apps
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import DatabaseError, connections, models, transaction
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.db.models import F, QuerySet
from django.test.utils import CaptureQueriesContext, isolate_apps

from conftest import arun
from django_asyncdb import NotSupportedYet, StaleObjectError, locking
from helpers import clear, insert, names
from testapp.models import Article, Counter, Page, Tag, WikiPage

pytestmark = pytest.mark.usefixtures("schema")
N = 8


async def fresh(alias, **values):
    await Article.objects.using(alias).all().adelete()
    return await Article.objects.using(alias).acreate(title="first", **values)


async def row(alias, pk):
    return await Article.objects.using(alias).values("title", "hits", "version").aget(pk=pk)


def test_concurrent_saves_one_wins_per_version(alias):
    async def main():
        article = await fresh(alias)
        loaded = asyncio.Barrier(N)

        async def edit(i):
            mine = await Article.objects.using(alias).aget(pk=article.pk)
            await loaded.wait()  # every task holds version 1 before anyone saves
            mine.title, mine.hits = f"writer {i}", mine.hits + 1
            await mine.asave()
            return mine

        outcomes = await asyncio.gather(*(edit(i) for i in range(N)), return_exceptions=True)
        return article, outcomes, await row(alias, article.pk)

    article, outcomes, final = arun(main)
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == N - 1
    assert all(type(o) is StaleObjectError and isinstance(o, DatabaseError) for o in lost)
    assert lost[0].model is Article and lost[0].pk == article.pk and lost[0].version == 1
    assert f"Article with pk {article.pk!r}" in str(lost[0])
    assert final == {"title": won[0].title, "hits": 1, "version": 2}
    assert won[0].version == 2


def test_the_retry_helper_keeps_every_change(alias):
    async def main():
        article = await fresh(alias)
        loaded = asyncio.Barrier(N)

        async def bump(i):
            mine = await Article.objects.using(alias).aget(pk=article.pk)
            await loaded.wait()

            async def change(obj):  # async change functions are awaited
                obj.hits += 1
                await asyncio.sleep(0)

            return await locking.asave_with_retry(mine, change, attempts=N)

        await asyncio.gather(*(bump(i) for i in range(N)))
        return await row(alias, article.pk)

    assert arun(main) == {"title": "first", "hits": N, "version": N + 1}


def test_the_retry_helper_gives_up_after_its_attempts(alias):
    async def main():
        article = await fresh(alias)
        stale = await Article.objects.using(alias).aget(pk=article.pk)
        calls = []

        async def run_change_natively(obj):  # another writer gets in before each save
            await Article.objects.using(alias).filter(pk=obj.pk).aupdate(title="other")
            obj.hits += 1
            calls.append(obj.version)

        with pytest.raises(StaleObjectError):
            await locking.asave_with_retry(stale, run_change_natively, attempts=3)
        return calls, await row(alias, article.pk)

    calls, final = arun(main)
    assert calls == [1, 2, 3]  # re-read before each new attempt
    assert final == {"title": "other", "hits": 0, "version": 4}


def test_a_conflict_inside_an_atomic_block(alias):
    async def main():
        await clear(alias)
        article = await fresh(alias)
        stale = await Article.objects.using(alias).aget(pk=article.pk)
        await Article.objects.using(alias).filter(pk=article.pk).aupdate(hits=5)
        with pytest.raises(StaleObjectError):
            async with transaction.atomic(using=alias):
                await insert(alias, "written before the conflict")
                stale.title = "lost"
                await stale.asave()
        rolled_back = await names(alias)
        # The helper's save runs in a savepoint: the enclosing block goes on and commits.
        async with transaction.atomic(using=alias):
            await insert(alias, "kept")
            stale.hits = 0

            def change(obj):
                obj.hits += 1

            await locking.asave_with_retry(stale, change)
        return rolled_back, await names(alias), await row(alias, article.pk)

    rolled_back, kept, final = arun(main)
    assert rolled_back == []
    assert kept == ["kept"]
    assert final == {"title": "first", "hits": 6, "version": 3}


def test_update_fields_saves_are_checked_and_bump_the_version(alias):
    async def main():
        article = await fresh(alias)
        first = await Article.objects.using(alias).aget(pk=article.pk)
        second = await Article.objects.using(alias).aget(pk=article.pk)
        first.title = "first writer"
        await first.asave(update_fields=["title"])
        second.hits = 99
        with pytest.raises(StaleObjectError):
            await second.asave(update_fields=["hits"])
        return first.version, await row(alias, article.pk)

    version, final = arun(main)
    assert version == 2
    assert final == {"title": "first writer", "hits": 0, "version": 2}


def test_a_deleted_row_is_not_resurrected(alias):
    async def main():
        article = await fresh(alias)
        stale = await Article.objects.using(alias).aget(pk=article.pk)
        await Article.objects.using(alias).filter(pk=article.pk).adelete()
        with pytest.raises(StaleObjectError):
            await stale.asave()  # Django would INSERT it again
        return await Article.objects.using(alias).acount()

    assert arun(main) == 0


def test_update_bumps_every_row_it_touches(alias):
    async def main():
        await Article.objects.using(alias).all().adelete()
        for title in ("a", "b", "c"):
            await Article.objects.using(alias).acreate(title=title)
        stale = await Article.objects.using(alias).aget(title="a")
        touched = await Article.objects.using(alias).exclude(title="c").aupdate(hits=F("hits") + 1)
        with pytest.raises(StaleObjectError):
            await stale.asave()
        explicit = await Article.objects.using(alias).filter(title="c").aupdate(version=10)
        versions = [
            v
            async for v in Article.objects.using(alias)
            .order_by("title")
            .values_list("title", "hits", "version")
        ]
        return touched, explicit, versions

    touched, explicit, versions = arun(main)
    assert (touched, explicit) == (2, 1)
    assert versions == [("a", 1, 2), ("b", 1, 2), ("c", 0, 10)]


def test_bulk_update_refuses_clearly(alias):
    async def main():
        article = await fresh(alias)
        article.title = "bulk"
        with pytest.raises(NotSupportedYet, match="can't check the version of each Article"):
            await Article.objects.using(alias).abulk_update([article], ["title"])
        return await row(alias, article.pk)

    assert arun(main) == {"title": "first", "hits": 0, "version": 1}


def test_multi_table_inheritance_checks_the_parents_version(alias):
    async def main():
        await Page.objects.using(alias).all().adelete()
        page = await WikiPage.objects.using(alias).acreate(title="home", text="v1")
        first = await WikiPage.objects.using(alias).aget(pk=page.pk)
        second = await WikiPage.objects.using(alias).aget(pk=page.pk)
        first.title, first.text = "home 2", "first"
        await first.asave()
        second.title, second.text = "home 3", "second"
        with pytest.raises(StaleObjectError):
            await second.asave()  # neither table is written
        parent_only = await Page.objects.using(alias).aget(pk=page.pk)
        parent_only.title = "via the parent"
        await parent_only.asave()
        with pytest.raises(StaleObjectError):
            await first.asave()
        bumped = await WikiPage.objects.using(alias).filter(pk=page.pk).aupdate(text="updated")
        final = await WikiPage.objects.using(alias).values("title", "text", "version").aget()
        return first.version, bumped, final

    version, bumped, final = arun(main)
    assert version == 2 and bumped == 1
    assert final == {"title": "via the parent", "text": "updated", "version": 4}


def test_an_object_built_by_hand_keeps_djangos_update_or_insert(alias):
    async def main():
        article = await fresh(alias)
        await Article(pk=article.pk, title="by hand", version=7).asave(using=alias)
        created = Article(pk=article.pk + 1000, title="new by hand")
        await created.asave(using=alias)
        return await row(alias, article.pk), await row(alias, created.pk)

    overwritten, created = arun(main)
    assert overwritten == {"title": "by hand", "hits": 0, "version": 7}
    assert created == {"title": "new by hand", "hits": 0, "version": 1}


def test_a_deferred_version_is_refused(alias):
    async def main():
        article = await fresh(alias)
        partial = await Article.objects.using(alias).only("title").aget(pk=article.pk)
        partial.title = "partial"
        with pytest.raises(ValueError, match=r"Article.version is deferred"):
            await partial.asave()
        return await row(alias, article.pk)

    assert arun(main)["title"] == "first"


def test_sync_saves_are_checked_too(alias):
    Article.objects.using(alias).all().delete()
    article = Article.objects.using(alias).create(title="sync")
    first = Article.objects.using(alias).get(pk=article.pk)
    second = Article.objects.using(alias).get(pk=article.pk)
    first.hits = 1
    first.save()
    second.hits = 50
    with pytest.raises(StaleObjectError):
        second.save()
    locking.save_with_retry(second, lambda obj: setattr(obj, "hits", obj.hits + 1))
    with pytest.raises(NotSupportedYet):
        Article.objects.using(alias).bulk_update([second], ["hits"])
    assert Article.objects.using(alias).values("hits", "version").get(pk=article.pk) == {
        "hits": 2,
        "version": 3,
    }


def test_threads_with_the_sync_retry_helper_keep_every_change(alias):
    Article.objects.using(alias).all().delete()
    article = Article.objects.using(alias).create(title="threads")
    start = threading.Barrier(4)
    errors = []

    def bump():
        try:
            mine = Article.objects.using(alias).get(pk=article.pk)
            start.wait()
            locking.save_with_retry(mine, lambda o: setattr(o, "hits", o.hits + 1), attempts=8)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Article.objects.using(alias).values("hits", "version").get(pk=article.pk) == {
        "hits": 4,
        "version": 5,
    }


def test_models_without_a_version_run_djangos_statements(alias):
    """The same saves, updates and bulk updates of an unversioned model, through the
    package's rebound methods and through Django's own: the same SQL, the same rows."""

    def scenario():
        Counter.objects.using(alias).all().delete()
        counter = Counter.objects.using(alias).create(pk=500, name="a", value=1)
        counter.value = 2
        counter.save()
        counter.save(update_fields=["value"])
        gone = Counter.objects.using(alias).get(pk=counter.pk)
        Counter.objects.using(alias).filter(pk=counter.pk).delete()
        gone.save()  # Django inserts it again
        Counter.objects.using(alias).filter(name="a").update(value=F("value") + 1)
        gone.value = 9
        Counter.objects.using(alias).bulk_update([gone], ["value"])
        return list(Counter.objects.using(alias).values_list("name", "value"))

    def run(patched):
        originals = {
            (models.Model, "_do_update"): locking._original_do_update,
            (QuerySet, "update"): locking._original_update,
            (QuerySet, "bulk_update"): locking._original_bulk_update,
        }
        saved = {key: getattr(*key) for key in originals}
        if not patched:
            for (owner, name), original in originals.items():
                setattr(owner, name, original)
        try:
            with CaptureQueriesContext(connections[alias]) as captured:
                rows = scenario()
        finally:
            for (owner, name), current in saved.items():
                setattr(owner, name, current)
        return rows, [q["sql"] for q in captured.captured_queries]

    assert run(patched=True) == run(patched=False)


def test_version_field_in_migrations():
    """The models and their migrations agree (makemigrations would write nothing)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    changes = MigrationAutodetector(loader.project_state(), ProjectState.from_apps(apps)).changes(
        graph=loader.graph, trim_to_apps={"testapp"}
    )
    assert changes == {}
    _, path, _, kwargs = Article._meta.get_field("version").deconstruct()
    assert (path, kwargs) == ("django_asyncdb.locking.VersionField", {})


@isolate_apps("testapp")
def test_two_version_fields_are_refused_by_the_checks():
    class Twice(models.Model):
        one = locking.VersionField()
        two = locking.VersionField()

        class Meta:
            app_label = "testapp"

    assert [e.id for e in Twice.check()].count("django_asyncdb.E001") == 2


class ArticleForm(locking.VersionedModelForm):
    class Meta:
        model = Article
        fields = ["title"]


class ArticleTagsForm(locking.VersionedModelForm):
    class Meta:
        model = Article
        fields = ["title", "tags"]


def test_a_stale_form_post_is_a_form_error(alias, thread_hops):
    async def main():
        article = await fresh(alias)
        tag = await Tag.objects.using(alias).acreate(name=f"locking-{alias}")
        shown = await Article.objects.using(alias).aget(pk=article.pk)
        html = ArticleForm(instance=shown).as_p()  # what the editor was shown
        # ... meanwhile someone else saves
        await Article.objects.using(alias).filter(pk=article.pk).aupdate(title="theirs")
        posted = {"title": "mine", "version": str(shown.version), "tags": [str(tag.pk)]}
        with_tags = Article.objects.using(alias).prefetch_related("tags")  # no query in init
        stale = ArticleTagsForm(posted, instance=await with_tags.aget(pk=shown.pk))
        stale.fields["tags"].queryset = Tag.objects.using(alias)
        assert not await stale.ais_valid()  # found stale while validating
        errors = list(stale.non_field_errors())
        assert stale.has_error(NON_FIELD_ERRORS, "stale")
        # A change between validation and save: the save refuses, the form says why.
        racing = ArticleForm(
            {"title": "racing", "version": "2"}, instance=await with_tags.aget(pk=shown.pk)
        )
        assert await racing.ais_valid(), racing.errors
        await Article.objects.using(alias).filter(pk=article.pk).aupdate(hits=F("hits") + 1)
        with pytest.raises(StaleObjectError):
            await racing.asave()
        assert list(racing.non_field_errors()) == errors
        reloaded = await with_tags.aget(pk=shown.pk)
        posted["version"] = str(ArticleForm(instance=reloaded).initial["version"])
        good = ArticleTagsForm(posted, instance=reloaded)
        good.fields["tags"].queryset = Tag.objects.using(alias)
        assert await good.ais_valid(), good.errors
        saved = await good.asave()
        tags = [t.name async for t in saved.tags.all()]
        missing = ArticleForm({"title": "no version"}, instance=reloaded)
        assert not missing.is_valid() and "version" in missing.errors
        return html, errors, await row(alias, article.pk), tags

    html, errors, final, tags = arun(main)
    assert 'type="hidden" name="version" value="1"' in html
    assert errors == [
        "Someone else changed this article after you opened it. Your changes were not "
        "saved: reload the page to see the current values."
    ]
    assert final == {"title": "mine", "hits": 1, "version": 4}
    assert tags == [f"locking-{alias}"]
    assert thread_hops == []


def test_a_new_object_through_the_form(alias):
    async def main():
        await Article.objects.using(alias).all().adelete()
        form = ArticleForm({"title": "created"})
        assert await form.ais_valid(), form.errors
        return await form.asave()

    created = arun(main)
    assert (created.title, created.version) == ("created", 1)


def _run_notes_project(folder):
    """Add a ``notes`` app (a Note with a VersionField) to the project in ``folder``, run
    its ``run.py`` in a Python process of its own and return the lines it printed."""
    import subprocess
    import sys

    app = folder / "notes"
    app.mkdir(exist_ok=True)
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(
        "from django.db import models\n"
        "from django_asyncdb.locking import VersionField\n\n\n"
        "class Note(models.Model):\n"
        "    title = models.CharField(max_length=20)\n"
        "    version = VersionField()\n"
    )
    done = subprocess.run(
        [sys.executable, "run.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_checked_saves_without_the_app_installed(tmp_path):
    """Declaring the field is enough: a project without django_asyncdb in INSTALLED_APPS
    (Django's own async ORM, in threads) gets checked saves too."""
    (tmp_path / "run.py").write_text(
        "import asyncio\n"
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['notes'], DEFAULT_AUTO_FIELD="
        "'django.db.models.AutoField', DATABASES={'default': {'ENGINE': "
        f"'django.db.backends.sqlite3', 'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}})\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        "from django_asyncdb import StaleObjectError\n"
        "from notes.models import Note\n"
        "call_command('migrate', run_syncdb=True, verbosity=0)\n"
        "note = Note.objects.create(title='a')\n"
        "first, second = Note.objects.get(), Note.objects.get()\n"
        "first.save()\n"
        "try:\n"
        "    second.save()\n"
        "except StaleObjectError:\n"
        "    print('sync: stale')\n"
        "async def main():\n"
        "    third = await Note.objects.aget()\n"
        "    await Note.objects.filter(pk=third.pk).aupdate(title='b')\n"
        "    try:\n"
        "        await third.asave()\n"
        "    except StaleObjectError:\n"
        "        print('async: stale')\n"
        "asyncio.run(main())\n"
        "print(list(Note.objects.values_list('title', 'version')))\n"
    )
    assert _run_notes_project(tmp_path) == ["sync: stale", "async: stale", "[('b', 3)]"]


def test_the_admin_with_a_versioned_form(tmp_path):
    """Django's admin, as a project sets it up (a ModelAdmin with a VersionedModelForm):
    the change page carries the version; a stale change is shown as a form error and
    written nowhere; a change from the reloaded page saves."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "admin.py").write_text(
        "from django.contrib import admin\n"
        "from django_asyncdb.locking import VersionedModelForm\n"
        "from .models import Note\n\n\n"
        "class NoteForm(VersionedModelForm):\n"
        "    class Meta:\n"
        "        model = Note\n"
        "        fields = ['title']\n\n\n"
        "@admin.register(Note)\n"
        "class NoteAdmin(admin.ModelAdmin):\n"
        "    form = NoteForm\n"
    )
    (tmp_path / "urls.py").write_text(
        "from django.contrib import admin\nfrom django.urls import path\n"
        "urlpatterns = [path('admin/', admin.site.urls)]\n"
    )
    (tmp_path / "run.py").write_text(
        "import re\n"
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(\n"
        "    DEBUG=False, SECRET_KEY='x', ROOT_URLCONF='urls', ALLOWED_HOSTS=['testserver'],\n"
        "    DEFAULT_AUTO_FIELD='django.db.models.AutoField',\n"
        "    INSTALLED_APPS=['django.contrib.admin', 'django.contrib.auth',\n"
        "        'django.contrib.contenttypes', 'django.contrib.sessions',\n"
        "        'django.contrib.messages', 'django_asyncdb', 'notes'],\n"
        "    MIDDLEWARE=['django.contrib.sessions.middleware.SessionMiddleware',\n"
        "        'django.middleware.csrf.CsrfViewMiddleware',\n"
        "        'django.contrib.auth.middleware.AuthenticationMiddleware',\n"
        "        'django.contrib.messages.middleware.MessageMiddleware'],\n"
        "    TEMPLATES=[{'BACKEND': 'django.template.backends.django.DjangoTemplates',\n"
        "        'APP_DIRS': True, 'OPTIONS': {'context_processors': [\n"
        "        'django.template.context_processors.request',\n"
        "        'django.contrib.auth.context_processors.auth',\n"
        "        'django.contrib.messages.context_processors.messages']}}],\n"
        "    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3',\n"
        f"        'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}},\n"
        ")\n"
        "django.setup()\n"
        "from django.contrib.auth.models import User\n"
        "from django.core.management import call_command\n"
        "from django.test import Client\n"
        "from notes.models import Note\n"
        "call_command('migrate', run_syncdb=True, verbosity=0)\n"
        "note = Note.objects.create(title='first')\n"
        "client = Client()\n"
        "client.force_login(User.objects.create_superuser('admin', 'a@example.com', 'pw'))\n"
        "url = f'/admin/notes/note/{note.pk}/change/'\n"
        "page = client.get(url).content.decode()\n"
        'shown = re.search(r\'name="version" value="(\\d+)"\', page)[1]\n'
        "Note.objects.filter(pk=note.pk).update(title='theirs')\n"
        "stale = client.post(url, {'title': 'mine', 'version': shown, '_save': 'Save'})\n"
        "print(stale.status_code, 'Someone else changed this note' in stale.content.decode())\n"
        "print(Note.objects.values_list('title', 'version').get())\n"
        "page = client.get(url).content.decode()\n"
        'fresh = re.search(r\'name="version" value="(\\d+)"\', page)[1]\n'
        "saved = client.post(url, {'title': 'mine', 'version': fresh, '_save': 'Save'})\n"
        "print(shown, fresh, saved.status_code)\n"
        "print(Note.objects.values_list('title', 'version').get())\n"
    )
    assert _run_notes_project(tmp_path) == [
        "200 True",
        "('theirs', 2)",
        "1 2 302",
        "('mine', 3)",
    ]
