"""The suite runs on the event loop ASYNCDB_TEST_LOOP names (asyncio's own, or uvloop)."""

import asyncio
import os


def test_the_suite_runs_on_the_loop_it_was_asked_for():
    async def main():
        return type(asyncio.get_running_loop()).__module__

    module = asyncio.run(main())
    uvloop_wanted = os.environ.get("ASYNCDB_TEST_LOOP", "asyncio") == "uvloop"
    assert module.split(".")[0] == ("uvloop" if uvloop_wanted else "asyncio")
