"""Peak memory while streaming a large table with ``aiterator()``.

python -m benchmarks.memory DATABASE   (streams the table; prints the measurement as JSON)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any

from benchmarks import bench_app, data, loops


def fill(database: str, rows: int) -> None:
    """Replace the item table's rows with ``rows`` generated ones, in the database."""
    connection = data.connect(database)
    try:
        cursor = connection.cursor()
        cursor.execute("DELETE FROM bench_models_item")
        if database == "postgresql":
            cursor.execute(
                "INSERT INTO bench_models_item (name, value, price, created) "
                "SELECT 'item ' || g, g, g / 4.0, now() FROM generate_series(1, %s) g",
                (rows,),
            )
        elif database == "mariadb":
            cursor.execute(
                "INSERT INTO bench_models_item (name, value, price, created) "
                f"SELECT CONCAT('item ', seq), seq, seq / 4, UTC_TIMESTAMP() FROM seq_1_to_{rows:d}"
            )
        else:
            cursor.execute(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) "
                "INSERT INTO bench_models_item (name, value, price, created) "
                "SELECT 'item ' || n, n, n / 4.0, '2024-01-01 12:00:00' FROM g",
                (rows,),
            )
        connection.commit()
    finally:
        connection.close()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stream(database: str) -> dict[str, Any]:
    """In this process: iterate every row with aiterator(); report peak RSS."""
    bench_app.configure(database, native=True)
    from bench_models.models import Item

    import django_asyncdb

    async def main() -> dict[str, Any]:
        await Item.objects.acount()  # pool open, Django warmed up
        before = _peak_mb()
        seen = 0
        async for _item in Item.objects.aiterator(chunk_size=2000):
            seen += 1
        await django_asyncdb.close_pools()
        return {"seen": seen, "before_mb": before, "peak_mb": _peak_mb()}

    return loops.run(main())


def measure(database: str, rows: int) -> dict[str, Any]:
    """Fill the table, then stream it in a fresh process."""
    fill(database, rows)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", database],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(stream(sys.argv[1])))
