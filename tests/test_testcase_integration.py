"""Django's TestCase: native queries run inside the test's transaction on its connection."""

import logging

import pytest
from django.db import connections, transaction
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from conftest import ALIASES
from testapp.models import Author, Counter


@pytest.mark.usefixtures("schema")
class NativeQueriesInTestCase(TestCase):
    databases = set(ALIASES)

    @classmethod
    def setUpTestData(cls):
        for alias in ALIASES:
            Counter.objects.using(alias).create(name="from setUpTestData", value=1)

    async def test_a_native_reads_see_test_data(self):
        for alias in ALIASES:
            names = [c.name async for c in Counter.objects.using(alias).all()]
            self.assertEqual(names, ["from setUpTestData"])
            self.assertEqual(await Counter.objects.using(alias).acount(), 1)

    async def test_b_native_writes_stay_inside_the_test(self):
        for alias in ALIASES:
            await Counter.objects.using(alias).acreate(name="written natively")
            self.assertEqual(await Counter.objects.using(alias).acount(), 2)

    def test_c_writes_of_the_previous_test_were_rolled_back(self):
        for alias in ALIASES:
            self.assertEqual(
                list(Counter.objects.using(alias).values_list("name", flat=True)),
                ["from setUpTestData"],
            )

    async def test_d_async_atomic_is_a_savepoint_in_the_test(self):
        for alias in ALIASES:
            with self.assertRaises(ZeroDivisionError):
                async with transaction.atomic(using=alias):
                    await Counter.objects.using(alias).acreate(name="rolled back")
                    1 / 0  # noqa: B018
            async with transaction.atomic(using=alias, durable=True):  # as in Django's tests
                await Counter.objects.using(alias).acreate(name="kept")
            counters = Counter.objects.using(alias)
            names = sorted([n async for n in counters.values_list("name", flat=True)])
            self.assertEqual(names, ["from setUpTestData", "kept"])

    async def test_e_assert_num_queries_counts_native_queries(self):
        for alias in ALIASES:
            with self.assertNumQueries(2, using=alias):
                await Author.objects.using(alias).aget(pk=1)
                await Author.objects.using(alias).acount()

    async def test_f_debug_logging(self):
        for alias in ALIASES:
            with CaptureQueriesContext(connections[alias]) as captured:
                await Author.objects.using(alias).filter(name="Author 02").afirst()
                await Counter.objects.using(alias).acreate(name="logged")
            self.assertEqual(len(captured.captured_queries), 2)
            self.assertIn("Author 02", captured.captured_queries[0]["sql"])
            self.assertIn("INSERT", captured.captured_queries[1]["sql"])
            with (
                self.assertLogs("django.db.backends", logging.DEBUG) as logs,
                CaptureQueriesContext(connections[alias]),
            ):
                await Author.objects.using(alias).aget(pk=3)
            self.assertIn(f"alias={alias}", logs.output[0])

    async def test_g_learned_deletes_stay_inside_the_test(self):
        """Deletes by pk (the second one on the learned statement) join the test's
        transaction as Django's do: one DELETE each, no BEGIN or COMMIT of their own."""
        for alias in ALIASES:
            counters = Counter.objects.using(alias)
            extra = await counters.acreate(name="deleted natively")
            first = await counters.aget(name="from setUpTestData")
            with self.assertNumQueries(1, using=alias):
                self.assertEqual(
                    await counters.filter(pk=extra.pk).adelete(), (1, {"testapp.Counter": 1})
                )
            with self.assertNumQueries(1, using=alias):
                self.assertEqual(
                    await counters.filter(pk=first.pk).adelete(), (1, {"testapp.Counter": 1})
                )
            self.assertEqual(await counters.acount(), 0)

    def test_h_deletes_of_the_previous_test_were_rolled_back(self):
        for alias in ALIASES:
            self.assertEqual(
                list(Counter.objects.using(alias).values_list("name", flat=True)),
                ["from setUpTestData"],
            )
