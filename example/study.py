"""Load study: WSGI vs ASGI, sync views vs thread-hop async vs native async, driven by wrk.

    python example/study.py                       # everything, about 20 minutes
    python example/study.py --seconds 1 --levels 16 --configs asgi-asyncdb --views detail

Configurations, each server in its own process on a fresh seeded database, each with
--workers worker processes (2 by default, one per core of the study's machine):
  wsgi              gunicorn sync workers, the /sync/ views
  asgi-django       uvicorn, the /async/ views on Django's built-in async ORM (ASYNCDB=0)
                    and Django's ASGI handler
  asgi-asyncdb-orm  uvicorn, the /async/ views on django_asyncdb's ORM, Django's handler
                    (ASGI_HANDLER=django): what the ORM alone changes
  asgi-asyncdb      uvicorn, the /async/ views on django_asyncdb's ORM and its handler
Writes README.md, results.json and one PNG per view into --out (example/results/).
Loopback only; every wrk run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# harness.py beside this file, and the repository's benchmarks package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import harness
from benchmarks import machine

CONFIGS = {
    "wsgi": "gunicorn sync workers, sync views",
    "asgi-django": "uvicorn, async views, Django's async ORM and ASGI handler (thread hops)",
    "asgi-asyncdb-orm": "uvicorn, async views, django_asyncdb's ORM on Django's ASGI handler",
    "asgi-asyncdb": "uvicorn, async views, django_asyncdb's ORM and ASGI handler",
}
VIEWS = {  # name: (path after /sync or /async, label)
    "books": ("/books/", "template page, 50 books"),
    "detail": ("/books/1.json", "ORM detail as JSON"),
    "create": ("/api/reviews/", "form POST, insert in a transaction"),
    "cached": ("/cached/", "cached page"),
    "upstream": ("/upstream/", "external API (upstream delay)"),
    "fanout": ("/fanout/", "fan-out, 7 queries"),
}
# Reviews of a random book other than the detail view's (book 1), so that concurrent posts
# do not all wait for one row's lock; after each form cell the reviews are restored.
POST_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  local book = math.random(2, 200)
  local body = "book=" .. book .. "&reviewer=wrk&rating=4&body=A+review+from+the+load+study."
  return wrk.format(nil, nil, nil, body)
end
"""
DATABASE_NAME = "asyncdb_example"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Cell:
    config: str
    view: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * UNITS[match[2]]


def parse_wrk(output: str, config: str, view: str, connections: int) -> Cell:
    """Requests/s, p50, p99 and errors from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"could not parse wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Cell(
        config=config,
        view=view,
        connections=connections,
        requests_per_second=float(rps[1]),
        p50_ms=duration_ms(p50[1]),
        p99_ms=duration_ms(p99[1]),
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run_wrk(url: str, connections: int, seconds: float, script: Path | None) -> str:
    argv = ["wrk", "-t", str(min(2, connections)), "-c", str(connections)]
    argv += ["-d", f"{seconds:g}s", "--latency", "--timeout", "10s"]
    if script:
        argv += ["-s", str(script)]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    return done.stdout


def database_url(choice: str, folder: Path, config: str) -> str:
    if choice in ("auto", "postgresql"):
        url = harness.postgresql_url(f"{DATABASE_NAME}_{config.replace('-', '_')}")
        if url:
            return url
        if choice == "postgresql":
            raise SystemExit("PostgreSQL at 127.0.0.1:5432 is not reachable")
    return harness.sqlite_url(str(folder))


def start(config: str, env: dict[str, str], log: Path, workers: int) -> harness.Server:
    if config == "wsgi":
        return harness.gunicorn(env, log, workers=workers)
    return harness.uvicorn(env, log, workers=workers)


def serve(
    args: argparse.Namespace, work: Path, upstream: harness.Server, redis: bool, config: str
) -> tuple[harness.Server, dict[str, str]]:
    """Start ``config`` on a fresh seeded database of its own; the server and its env."""
    url = database_url(args.database, work, config)
    env = harness.base_env(
        DATABASE_URL=url,
        ASYNCDB="0" if config == "asgi-django" else "1",
        ASGI_HANDLER="django" if config in ("asgi-django", "asgi-asyncdb-orm") else "asyncdb",
        ASYNCDB_POOL=str(args.pool),
        CONN_MAX_AGE=str(args.conn_max_age if config == "wsgi" else 0),
        DJANGO_POOL=str(args.pool if config == "asgi-django" else 0),
        UPSTREAM_URL=f"{upstream.url}/",
        CACHE_PREFIX=f"study-{config}-{os.getpid()}",
    )
    if redis:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    harness.prepare(env)
    return start(config, env, work / f"{config}.log", args.workers), env


def median_cell(runs: list[Cell]) -> Cell:
    """The round with the median requests/s; its errors are those of every round."""
    chosen = sorted(runs, key=lambda cell: cell.requests_per_second)[(len(runs) - 1) // 2]
    return replace(
        chosen,
        non_2xx=sum(cell.non_2xx for cell in runs),
        socket_errors=sum(cell.socket_errors for cell in runs),
    )


def measure(args: argparse.Namespace, work: Path) -> tuple[list[Cell], dict[str, str]]:
    """Every configuration's server runs at once; each cell (view, level) is measured on each
    configuration in turn, the order rotating, so that the machine's drift over the run
    falls on all of them alike."""
    facts: dict[str, str] = {}
    lua = work / "post.lua"
    lua.write_text(POST_LUA)
    upstream = harness.upstream(args.upstream_delay, work / "upstream.log")
    upstream.wait_ready()
    redis = args.cache == "redis" or (args.cache == "auto" and harness.reachable(6379))
    facts["cache"] = (
        "Redis: django_asyncdb.cache.RedisCache (native async methods) in the configurations"
        " with the package, Django's RedisCache in the others (its connections shared by the"
        " process: bookshop/cache.py)"
        if redis
        else "local memory"
    )
    servers: dict[str, harness.Server] = {}
    envs: dict[str, dict[str, str]] = {}
    runs: dict[tuple[str, str, int], list[Cell]] = {}
    try:
        for config in args.configs:
            servers[config], envs[config] = serve(args, work, upstream, redis, config)
            scheme = envs[config]["DATABASE_URL"].split(":", 1)[0]
            facts["database"] = scheme.replace("postgres", "postgresql")
        for server in servers.values():
            server.wait_ready()
        turn = 0
        for round_ in range(args.rounds):
            for view in args.views:
                for level in args.levels:
                    order = args.configs[turn % len(args.configs) :]
                    order += args.configs[: turn % len(args.configs)]
                    turn += 1
                    for config in order:
                        prefix = "/sync" if config == "wsgi" else "/async"
                        path = servers[config].url + prefix + VIEWS[view][0]
                        script = lua if view == "create" else None
                        output = run_wrk(path, level, args.seconds, script)
                        cell = parse_wrk(output, config, view, level)
                        runs.setdefault((config, view, level), []).append(cell)
                        if view == "create":  # every cell starts from the seeded data
                            harness.restore(envs[config])
                        print(
                            f"round {round_ + 1} {config:16} {view:9} c={level:<3}"
                            f" {cell.requests_per_second:9.1f} req/s  p50 {cell.p50_ms:8.2f} ms"
                            f"  p99 {cell.p99_ms:8.2f} ms  errors {cell.errors}",
                            flush=True,
                        )
    finally:
        for config, server in servers.items():
            code = server.stop()
            if code != 0:
                print(f"{config}: server exited with {code}; log in {server.log_path}")
        upstream.stop()
    return [median_cell(cells) for cells in runs.values()], facts


def versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {"Python": platform.python_version()}
    for name in ("django", "django-asyncdb", "uvicorn", "gunicorn", "httpx", "psycopg"):
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "not installed"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    found["wrk"] = (wrk.stdout or wrk.stderr).split(" [")[0].removeprefix("wrk ").strip()
    return found


def find(cells: list[Cell], config: str, view: str, level: int) -> Cell | None:
    for cell in cells:
        if (cell.config, cell.view, cell.connections) == (config, view, level):
            return cell
    return None


def targets(cells: list[Cell], top: int, workers: int) -> list[str]:
    """The issue's targets, checked on this run's figures."""
    lines = []
    asyncdb = find(cells, "asgi-asyncdb", "detail", top)
    django = find(cells, "asgi-django", "detail", top)
    if asyncdb and django:
        ratio = asyncdb.requests_per_second / max(django.requests_per_second, 1e-9)
        held = ratio >= 2 and asyncdb.p99_ms < django.p99_ms
        lines.append(
            f"- ORM detail, {top} connections: django_asyncdb {ratio:.2f}x the requests/s of "
            f"Django's async ORM (target 2x), p99 {asyncdb.p99_ms:.1f} ms vs "
            f"{django.p99_ms:.1f} ms (target: lower): **{'held' if held else 'missed'}**"
        )
        orm = find(cells, "asgi-asyncdb-orm", "detail", top)
        if orm:
            lines.append(
                f"  - of which the ORM alone (`asgi-asyncdb-orm`, on Django's handler): "
                f"{orm.requests_per_second / max(django.requests_per_second, 1e-9):.2f}x, "
                f"p99 {orm.p99_ms:.1f} ms"
            )
    wsgi = find(cells, "wsgi", "upstream", top)
    for config in ("asgi-django", "asgi-asyncdb-orm", "asgi-asyncdb"):
        other = find(cells, config, "upstream", top)
        if wsgi and other:
            ratio = other.requests_per_second / max(wsgi.requests_per_second, 1e-9)
            lines.append(
                f"- External API, {top} connections: {config} {ratio:.1f}x the requests/s of "
                f"{workers}-worker WSGI (target 10x): **{'held' if ratio >= 10 else 'missed'}**"
            )
    failed = [c for c in cells if c.errors]
    lines.append(
        "- Errors: "
        + (
            "none in any configuration at any level: **held**"
            if not failed
            else "**missed**: "
            + ", ".join(f"{c.config} {c.view} c={c.connections}: {c.errors}" for c in failed)
        )
    )
    return lines


def table(cells: list[Cell], configs: list[str], views: list[str], levels: list[int]) -> str:
    head = "| view | connections |" + "".join(
        f" {c} req/s | {c} p50 / p99 ms | {c} errors |" for c in configs
    )
    rows = [head, "|---|---:|" + "---:|---:|---:|" * len(configs)]
    for view in views:
        for level in levels:
            row = f"| {VIEWS[view][1]} | {level} |"
            for config in configs:
                cell = find(cells, config, view, level)
                if cell is None:
                    row += " n/a | n/a | n/a |"
                    continue
                row += (
                    f" {cell.requests_per_second:,.0f} | {cell.p50_ms:.1f} / {cell.p99_ms:.1f} |"
                    f" {cell.errors} |"
                )
            rows.append(row)
    return "\n".join(rows)


def charts(cells: list[Cell], args: argparse.Namespace, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    width = 0.8 / len(args.configs)
    for view in args.views:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for i, config in enumerate(args.configs):
            found = [find(cells, config, view, level) for level in args.levels]
            xs = [x + i * width for x in range(len(args.levels))]
            left.bar(xs, [c.requests_per_second if c else 0 for c in found], width, label=config)
            right.bar(xs, [c.p99_ms if c else 0 for c in found], width, label=config)
        for axis, title in ((left, "requests/s (higher is better)"), (right, "p99 ms (lower)")):
            axis.set_xticks(
                [x + width * (len(args.configs) - 1) / 2 for x in range(len(args.levels))]
            )
            axis.set_xticklabels([f"{level} conn." for level in args.levels])
            axis.set_title(title)
        right.set_yscale("log")
        left.legend(fontsize="small")
        fig.suptitle(f"{VIEWS[view][1]} ({view})")
        fig.tight_layout()
        name = f"{view}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names


def report(cells: list[Cell], facts: dict[str, str], args: argparse.Namespace, out: Path) -> str:
    top = max(args.levels)
    found = versions()
    lines = [
        "# Load study: WSGI vs ASGI, sync vs thread-hop async vs native async",
        "",
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {machine.describe()}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in found.items()) + ".",
        "",
        f"Command: `{args.command}`",
        "",
        f"Database: {facts.get('database', '?')}, fresh and seeded for each configuration; "
        f"cache: {facts.get('cache', '?')}; upstream delay {args.upstream_delay:g} ms; "
        f"{args.seconds:g} s per cell, {args.rounds} round(s) (the median's shown, errors "
        "of all rounds); every server runs throughout, and each cell is measured on each "
        "configuration in turn, in a rotating order; "
        f"django_asyncdb pool MAX_SIZE {args.pool} per worker; "
        f"CONN_MAX_AGE {args.conn_max_age} for WSGI; under ASGI 0 (Django's advice), and on "
        f"PostgreSQL Django's own psycopg pool of {args.pool} per worker for `asgi-django`. "
        "The upstream client: httpx, 8 AsyncClients of 8 connections per worker "
        "(books/upstream.py).",
        "",
        f"Configurations (each server in its own process, with {args.workers} worker "
        f"process{'es' if args.workers > 1 else ''}, gunicorn's and uvicorn's alike):",
        "",
        *(f"- `{name}`: {what}" for name, what in CONFIGS.items() if name in args.configs),
        "",
        "Latencies in ms; errors are non-2xx responses plus socket errors, as wrk counts them.",
        "",
        table(cells, args.configs, args.views, args.levels),
        "",
        "## Targets",
        "",
        *targets(cells, top, args.workers),
        "",
    ]
    lines += [f"![{name}]({name})" for name in charts(cells, args, out)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["auto", "postgresql", "sqlite"], default="auto")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--views", nargs="+", choices=list(VIEWS), default=list(VIEWS))
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell")
    parser.add_argument(
        "--rounds", type=int, default=3, help="each cell is the round with the median req/s"
    )
    parser.add_argument("--upstream-delay", type=float, default=50.0, help="milliseconds")
    parser.add_argument("--cache", choices=["auto", "redis", "locmem"], default="auto")
    parser.add_argument(
        "--pool", type=int, default=10, help="django_asyncdb MAX_SIZE and Django's own pool size"
    )
    parser.add_argument("--conn-max-age", type=int, default=60, help="WSGI CONN_MAX_AGE")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server")
    parser.add_argument("--out", type=Path, default=harness.HERE / "results")
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "example/study.py", *(argv or sys.argv[1:])])
    if not shutil.which("wrk"):
        print(
            "wrk is not installed: on Debian/Ubuntu `apt-get install -y wrk` (as root), "
            "on macOS `brew install wrk`.",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bookshop-study-") as folder:
        cells, facts = measure(args, Path(folder))
    (args.out / "results.json").write_text(
        json.dumps({"facts": facts, "cells": [asdict(c) for c in cells]}, indent=1) + "\n"
    )
    text = report(cells, facts, args, args.out)
    (args.out / "README.md").write_text(text)
    print(f"\nwrote {args.out / 'README.md'}")
    print("\n".join(targets(cells, max(args.levels), args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
