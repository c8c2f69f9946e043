"""The greenlet bridge: results, errors, context and cancellation survive bridge reuse."""

import asyncio
import contextvars

import pytest

from django_asyncdb import bridge

request_id = contextvars.ContextVar("request_id", default=None)


def test_results_and_errors_come_back_to_the_caller():
    def add(a, b=0):
        return bridge.await_(asyncio.sleep(0, a + b))

    def fail():
        bridge.await_(asyncio.sleep(0))
        raise LookupError("from Django's code")

    async def main():
        assert await bridge.run(add, 2, b=3) == 5
        with pytest.raises(LookupError, match="from Django's code"):
            await bridge.run(fail)
        return await bridge.run(add, 7)  # the bridge that raised serves again

    assert asyncio.run(main()) == 7


def test_bridges_are_reused_and_each_job_sees_its_own_tasks_context():
    def job():
        seen = request_id.get()
        bridge.await_(asyncio.sleep(0.001))
        return seen, request_id.get(), id(bridge.greenlet.getcurrent())

    async def task(n):
        request_id.set(n)
        return await bridge.run(job)

    async def main():
        first = await asyncio.gather(*(task(n) for n in range(20)))
        second = await asyncio.gather(*(task(n) for n in range(20, 40)))
        return first, second

    first, second = asyncio.run(main())
    assert [(a, b) for a, b, _ in first + second] == [(n, n) for n in range(40)]
    assert {g for *_, g in second} <= {g for *_, g in first}  # no new greenlet needed


def test_cancellation_reaches_djangos_code_and_the_bridge_stays_usable():
    cleaned = []

    def slow():
        try:
            bridge.await_(asyncio.sleep(10))
        finally:
            cleaned.append(True)

    async def main():
        task = asyncio.create_task(bridge.run(slow))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await bridge.run(lambda: bridge.await_(asyncio.sleep(0, "again")))

    assert asyncio.run(main()) == "again"
    assert cleaned == [True]


def test_await_outside_the_bridge_is_refused():
    async def main():
        coroutine = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="outside django_asyncdb's bridge"):
            bridge.await_(coroutine)

    asyncio.run(main())
