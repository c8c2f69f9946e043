"""No hidden I/O: unloaded relations raise in async code; aget_related fetches them."""

import pytest
from django.core.exceptions import SynchronousOnlyOperation

import django_asyncdb
from conftest import arun
from testapp.models import Author, Book, Comment, Place, Profile


def test_forward_fk_not_loaded_raises(alias):
    async def main():
        book = await Book.objects.using(alias).aget(pk=1)
        with pytest.raises(django_asyncdb.RelationNotLoaded) as info:
            book.author  # noqa: B018
        assert isinstance(info.value, SynchronousOnlyOperation)
        message = str(info.value)
        assert "select_related('author')" in message
        assert "prefetch_related('author')" in message
        assert "aget_related(obj, 'author')" in message
        author = await django_asyncdb.aget_related(book, "author")
        assert author.pk == book.author_id
        assert book.author is author  # cached like Django does
        return author.name

    assert (
        arun(main)
        == Author.objects.using(alias).get(pk=Book.objects.using(alias).get(pk=1).author_id).name
    )


def test_select_related_needs_no_query(alias):
    async def main():
        book = await Book.objects.using(alias).select_related("author").aget(pk=2)
        return book.author.name

    assert arun(main) == Book.objects.using(alias).get(pk=2).author.name


def test_nullable_fk_without_value_needs_no_query(alias):
    async def main():
        author = await Author.objects.using(alias).aget(pk=1)
        return author.mentor, await django_asyncdb.aget_related(author, "mentor")

    assert arun(main) == (None, None)


def test_reverse_one_to_one(alias):
    async def main():
        with_profile = await Author.objects.using(alias).aget(pk=1)
        with pytest.raises(django_asyncdb.RelationNotLoaded, match="profile"):
            with_profile.profile  # noqa: B018
        profile = await django_asyncdb.aget_related(with_profile, "profile")
        assert with_profile.profile is profile
        without = await Author.objects.using(alias).aget(pk=3)
        with pytest.raises(Author.profile.RelatedObjectDoesNotExist):
            await django_asyncdb.aget_related(without, "profile")
        with pytest.raises(Author.profile.RelatedObjectDoesNotExist):
            without.profile  # noqa: B018 - cached as missing now, as Django does
        return profile.bio

    assert arun(main) == Profile.objects.using(alias).get(author_id=1).bio


def test_forward_one_to_one_and_mti_parent(alias):
    async def main():
        profile = await Profile.objects.using(alias).aget(pk=1)
        author = await django_asyncdb.aget_related(profile, "author")
        place = await Place.objects.using(alias).aget(pk=3)
        restaurant = await django_asyncdb.aget_related(place, "restaurant")
        return author.pk, restaurant.serves_pizza

    assert arun(main) == (1, True)


def test_reverse_many_evaluated_synchronously_raises(alias):
    async def main():
        author = await Author.objects.using(alias).aget(pk=1)
        with pytest.raises(django_asyncdb.SyncCallInAsyncContext, match="async for"):
            list(author.books.all())
        with pytest.raises(TypeError, match="many-valued"):
            await django_asyncdb.aget_related(author, "books")
        return sorted([b.pk async for b in author.books.all()])

    expected = sorted(Author.objects.using(alias).get(pk=1).books.values_list("pk", flat=True))
    assert arun(main) == expected


def test_sync_code_keeps_lazy_loading(alias):
    book = Book.objects.using(alias).get(pk=1)
    assert book.author.pk == book.author_id


def test_aprefetch_related_objects(alias, thread_hops):
    from django.db import models

    from snapshot import snapshot

    expected = list(Author.objects.using(alias).filter(pk__lte=4).order_by("pk"))
    models.prefetch_related_objects(expected, "books__tags", "profile")

    async def main():
        authors = [a async for a in Author.objects.using(alias).filter(pk__lte=4).order_by("pk")]
        await models.aprefetch_related_objects(authors, "books__tags", "profile")
        return authors

    assert snapshot(arun(main)) == snapshot(expected)
    assert thread_hops == []


def test_arefresh_from_db_with_from_queryset(alias, thread_hops):
    async def main():
        author = await Author.objects.using(alias).aget(pk=5)
        author.name = "changed"
        await author.arefresh_from_db(
            fields=["name", "mentor"],
            from_queryset=Author.objects.using(alias).select_related("mentor"),
        )
        return author.name, author.mentor.name  # select_related: no hidden query

    expected = Author.objects.using(alias).select_related("mentor").get(pk=5)
    assert arun(main) == (expected.name, expected.mentor.name)
    assert thread_hops == []


def test_reverse_manager_reads_natively(alias, thread_hops):
    async def main():
        author = await Author.objects.using(alias).aget(pk=2)
        by_for = [b.pk async for b in author.books.all()]
        filtered = [b.pk async for b in author.books.filter(pages__gt=0)]
        tags = [t async for t in (await author.books.afirst()).tags.all()]
        return sorted(by_for), sorted(filtered), len(tags) >= 0

    expected = sorted(Book.objects.using(alias).filter(author_id=2).values_list("pk", flat=True))
    assert arun(main) == (expected, expected, True)
    assert thread_hops == []


def test_relation_not_loaded_is_raised_cleanly(alias):
    """No "During handling of the above exception" (Django's field-cache KeyError) above it."""
    import traceback

    async def main():
        raised = []
        book = await Book.objects.using(alias).aget(pk=1)
        profile = await Profile.objects.using(alias).aget(pk=1)
        author = await Author.objects.using(alias).aget(pk=1)
        for read in (lambda: book.author, lambda: profile.author, lambda: author.profile):
            with pytest.raises(django_asyncdb.RelationNotLoaded) as info:
                read()
            raised.append(info.value)
        return raised

    for error in arun(main):
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__
        shown = "".join(traceback.format_exception(error))
        assert "KeyError" not in shown
        assert "During handling" not in shown
        assert "is not loaded" in shown


def test_aget_related_on_an_opted_out_alias_runs_djangos_code_in_a_thread(schema, thread_hops):
    async def main():
        book = await Book.objects.using("optout").aget(pk=1)
        author = await django_asyncdb.aget_related(book, "author")
        return author.pk, book.author is author

    expected = Book.objects.using("optout").get(pk=1).author_id
    assert arun(main) == (expected, True)
    assert thread_hops


def test_aget_related_fetches_a_generic_foreign_key(alias, thread_hops):
    async def main():
        comment = await Comment.objects.using(alias).aget(pk=1)
        target = await django_asyncdb.aget_related(comment, "target")
        return type(target).__name__, target.pk, comment.target is target

    expected = Comment.objects.using(alias).get(pk=1).target
    assert arun(main) == ("Book", expected.pk, True)
    assert thread_hops == []


def test_aget_related_says_what_it_takes(alias):
    async def main():
        book = await Book.objects.using(alias).aget(pk=1)
        with pytest.raises(AttributeError) as missing:
            await django_asyncdb.aget_related(book, "auther")
        with pytest.raises(TypeError) as field:
            await django_asyncdb.aget_related(book, "title")
        with pytest.raises(TypeError) as many:
            await django_asyncdb.aget_related(book, "tags")
        return str(missing.value), str(field.value), str(many.value)

    missing, field, many = arun(main)
    assert missing == (
        "Book has no relation 'auther'; its single-valued relations: author, publisher."
    )
    assert field.startswith("Book.title is not a relation;")
    assert field.endswith(": author, publisher.")
    assert "'async for item in obj.tags.all()'" in many
