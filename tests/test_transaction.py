"""Async atomic blocks: commit, rollback, savepoints, on_commit, and task fan-out inside."""

import asyncio
import contextvars
import logging

import pytest
from django.db import IntegrityError, transaction
from django.db.transaction import TransactionManagementError

import django_asyncdb
from conftest import arun
from helpers import clear, insert, names


def run(alias, scenario):
    """Run ``scenario(alias)`` on a clean Counter table."""

    async def main():
        await clear(alias)
        return await scenario(alias)

    return arun(main)


async def outside(coro):
    """Run ``coro`` in a task with a fresh context: outside any atomic block."""
    return await asyncio.create_task(coro, context=contextvars.Context())


def test_commit(alias):
    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "x")
            assert await names(a) == ["x"]
            assert await outside(names(a)) == []
        return await names(a)

    assert run(alias, scenario) == ["x"]


def test_exception_rolls_back(alias):
    async def scenario(a):
        with pytest.raises(ZeroDivisionError):
            async with transaction.atomic(using=a):
                await insert(a, "x")
                1 / 0  # noqa: B018
        return await names(a)

    assert run(alias, scenario) == []


def test_nested_savepoint_rolls_back_inner_only(alias):
    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "outer")
            with pytest.raises(ValueError):
                async with transaction.atomic(using=a):
                    await insert(a, "inner")
                    raise ValueError
            async with transaction.atomic(using=a):
                await insert(a, "inner2")
        return await names(a)

    assert run(alias, scenario) == ["inner2", "outer"]


def test_nested_without_savepoint_marks_outer_for_rollback(alias):
    async def scenario(a):
        with pytest.raises(TransactionManagementError):
            async with transaction.atomic(using=a):
                await insert(a, "outer")
                with pytest.raises(ValueError):
                    async with transaction.atomic(using=a, savepoint=False):
                        await insert(a, "inner")
                        raise ValueError
                assert transaction.get_rollback(using=a) is True
                await insert(a, "refused")  # Django refuses queries in a broken block
        return await names(a)

    assert run(alias, scenario) == []


def test_integrity_error_inside_savepoint_keeps_outer(alias):
    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "a")
            async with django_asyncdb.cursor(a) as cursor:
                await cursor.execute("SELECT id FROM testapp_counter")
                (pk,) = await cursor.fetchone()
            with pytest.raises(IntegrityError):
                async with transaction.atomic(using=a), django_asyncdb.cursor(a) as cursor:
                    await cursor.execute(
                        "INSERT INTO testapp_counter (id, name, value) VALUES (%s, 'dup', 0)",
                        [pk],
                    )
            await insert(a, "b")
        return await names(a)

    assert run(alias, scenario) == ["a", "b"]


def test_durable_cannot_nest(alias):
    async def scenario(a):
        async with transaction.atomic(using=a, durable=True):
            with pytest.raises(RuntimeError, match="durable"):
                async with transaction.atomic(using=a, durable=True):
                    pass
            await insert(a, "kept")
        return await names(a)

    assert run(alias, scenario) == ["kept"]


def test_decorator_on_async_def(alias):
    @transaction.atomic(using=alias)
    async def write_then_fail(name, fail):
        await insert(alias, name)
        if fail:
            raise KeyError(name)
        return name

    async def scenario(a):
        assert await write_then_fail("ok", False) == "ok"
        with pytest.raises(KeyError):
            await write_then_fail("bad", True)
        # The same decorated function, concurrently: each call is its own transaction.
        await asyncio.gather(write_then_fail("c1", False), write_then_fail("c2", False))
        return await names(a)

    assert run(alias, scenario) == ["c1", "c2", "ok"]


def test_bare_decorator_uses_default_alias():
    @transaction.atomic
    async def work():
        await insert("default", "bare")
        assert transaction.get_rollback() is False
        return await outside(names("default"))

    async def scenario(a):
        assert await work() == []
        return await names(a)

    assert run("default", scenario) == ["bare"]


def test_on_commit_runs_after_commit_in_order(alias):
    calls = []

    async def async_hook():
        calls.append(("async", await names(alias)))

    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "x")
            transaction.on_commit(lambda: calls.append("sync"), using=a)
            transaction.on_commit(async_hook, using=a)
            assert calls == []
        return calls

    assert run(alias, scenario) == ["sync", ("async", ["x"])]


def test_on_commit_dropped_on_rollback_and_savepoint_rollback(alias):
    calls = []

    async def scenario(a):
        with pytest.raises(ValueError):
            async with transaction.atomic(using=a):
                transaction.on_commit(lambda: calls.append("rolled back"), using=a)
                raise ValueError
        async with transaction.atomic(using=a):
            transaction.on_commit(lambda: calls.append("outer"), using=a)
            with pytest.raises(ValueError):
                async with transaction.atomic(using=a):
                    transaction.on_commit(lambda: calls.append("inner"), using=a)
                    raise ValueError
            async with transaction.atomic(using=a):
                transaction.on_commit(lambda: calls.append("inner kept"), using=a)
        return calls

    assert run(alias, scenario) == ["outer", "inner kept"]


def test_on_commit_robust_and_not(alias, caplog):
    calls = []

    def boom():
        raise RuntimeError("boom")

    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "robust")
            transaction.on_commit(boom, using=a, robust=True)
            transaction.on_commit(lambda: calls.append("after robust"), using=a)
        with pytest.raises(RuntimeError, match="boom"):
            async with transaction.atomic(using=a):
                await insert(a, "committed anyway")
                transaction.on_commit(boom, using=a)
                transaction.on_commit(lambda: calls.append("never"), using=a)
        return await names(a)

    with caplog.at_level(logging.ERROR):
        assert run(alias, scenario) == ["committed anyway", "robust"]
    assert calls == ["after robust"]
    assert "Error calling" in caplog.text


def test_on_commit_outside_transaction_runs_now(alias):
    calls = []

    async def hook():
        calls.append("async")

    async def scenario(a):
        transaction.on_commit(lambda: calls.append("sync"), using=a)
        transaction.on_commit(hook, using=a)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return calls

    assert run(alias, scenario) == ["sync", "async"]


def test_set_rollback_rolls_back_without_exception(alias):
    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "x")
            transaction.set_rollback(True, using=a)
        with pytest.raises(TransactionManagementError):
            transaction.set_rollback(True, using=a)
        return await names(a)

    assert run(alias, scenario) == []


def test_manual_savepoints(alias):
    async def scenario(a):
        assert await transaction.asavepoint(using=a) is None  # autocommit: no-op, as Django
        async with transaction.atomic(using=a):
            await insert(a, "kept")
            sid = await transaction.asavepoint(using=a)
            await insert(a, "undone")
            await transaction.asavepoint_rollback(sid, using=a)
            sid2 = await django_asyncdb.asavepoint_create(using=a)
            await insert(a, "released")
            await django_asyncdb.asavepoint_commit(sid2, using=a)
            with pytest.raises(django_asyncdb.SyncCallInAsyncContext, match="asavepoint"):
                getattr(transaction, "savepoint_create", transaction.savepoint)(using=a)
        return await names(a)

    assert run(alias, scenario) == ["kept", "released"]


def test_sync_atomic_in_event_loop_is_refused(alias):
    async def scenario(a):
        with (
            pytest.raises(django_asyncdb.SyncCallInAsyncContext, match="async with"),
            transaction.atomic(using=a),
        ):
            pass
        return True

    assert run(alias, scenario)


def test_gather_inside_atomic_joins_the_transaction(alias):
    async def child(a, i):
        await insert(a, f"c{i}")
        return len(await names(a))

    async def scenario(a):
        with pytest.raises(LookupError):
            async with transaction.atomic(using=a):
                seen = await asyncio.gather(*(child(a, i) for i in range(6)))
                assert sorted(seen)[-1] == 6
                assert len(await names(a)) == 6
                assert await outside(names(a)) == []
                raise LookupError  # everything the children wrote goes too
        assert await names(a) == []
        async with transaction.atomic(using=a), asyncio.TaskGroup() as group:
            for i in range(3):
                group.create_task(child(a, i))
        return await names(a)

    assert run(alias, scenario) == ["c0", "c1", "c2"]


def test_concurrent_nested_blocks_in_children(alias):
    async def child(a, i):
        try:
            async with transaction.atomic(using=a):
                await insert(a, f"n{i}")
                await asyncio.sleep(0)
                await insert(a, f"m{i}")
                if i % 2:
                    raise ValueError(i)
        except ValueError:
            pass

    async def scenario(a):
        async with transaction.atomic(using=a):
            await asyncio.gather(*(child(a, i) for i in range(6)))
        return await names(a)

    assert run(alias, scenario) == ["m0", "m2", "m4", "n0", "n2", "n4"]


def test_task_outliving_the_block_is_refused(alias):
    async def scenario(a):
        release = asyncio.Event()

        async def late():
            await release.wait()
            await insert(a, "late")

        async with transaction.atomic(using=a):
            task = asyncio.create_task(late())
        release.set()
        with pytest.raises(TransactionManagementError, match="ended"):
            await task
        return await names(a)

    assert run(alias, scenario) == []


def test_non_atomic_reads_do_not_wait_for_a_transaction(alias):
    async def scenario(a):
        async with transaction.atomic(using=a):
            await insert(a, "x")
            # Another task outside the block reads on its own pooled connection.
            seen = await outside(names(a))
        return seen, await names(a)

    assert run(alias, scenario) == ([], ["x"])


def test_native_writes_join_the_transaction(alias):
    from testapp.models import Counter

    async def scenario(a):
        with pytest.raises(LookupError):
            async with transaction.atomic(using=a):
                await Counter.objects.using(a).acreate(name="rolled back")
                assert await outside(names(a)) == []
                raise LookupError
        async with transaction.atomic(using=a):
            await Counter.objects.using(a).acreate(name="kept")
        return await names(a)

    assert run(alias, scenario) == ["kept"]


def test_select_for_update(alias):
    from testapp.models import Counter

    async def scenario(a):
        from django.db import connections

        await insert(a, "locked", 1)
        if connections[a].features.has_select_for_update:  # as in Django: PostgreSQL only
            with pytest.raises(TransactionManagementError, match="outside of a transaction"):
                [c async for c in Counter.objects.using(a).select_for_update()]
        async with transaction.atomic(using=a):
            locked = Counter.objects.using(a).select_for_update().filter(name="locked")
            rows = [c async for c in locked]
            return [row.value for row in rows]

    assert run(alias, scenario) == [1]
