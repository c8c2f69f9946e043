"""Load study: WSGI vs ASGI, sync views vs thread-hop async vs native async, driven by wrk.

    python example/study.py                       # everything, about 45 minutes
    python example/study.py --seconds 1 --levels 16 --configs asgi-asyncdb --views detail

Configurations, each server in its own process on a fresh seeded database, each with
--workers worker processes (2 by default, one per core of the study's machine):
  wsgi              gunicorn sync workers, the /sync/ views
  wsgi-gthread      gunicorn gthread workers with --threads threads each (by default the
                    async pool's size: the same database connection budget), the /sync/ views
  asgi-django       uvicorn, the /async/ views on Django's built-in async ORM (ASYNCDB=0)
                    and Django's ASGI handler
  asgi-asyncdb-orm  uvicorn, the /async/ views on django_asyncdb's ORM, Django's handler
                    (ASGI_HANDLER=django): what the ORM alone changes
  asgi-asyncdb      uvicorn, the /async/ views on django_asyncdb's ORM and its handler
Links (--links, round-trip milliseconds added between the servers and PostgreSQL): 0 is
loopback; 1 puts PostgreSQL behind a delay proxy (link.py, delaylink.c) adding 0.5 ms each
way, for the views that query the database (--link-views). Redis and the upstream stay local.
Writes README.md, results.json and one PNG per view and link into --out (example/results/).
Every wrk run is bounded by --seconds; CPU ms per request is the server's processes' user +
system CPU over the run (from /proc) divided by the requests wrk counted.
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
from urllib.parse import urlsplit, urlunsplit

# harness.py beside this file, and the repository's benchmarks package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import harness
import httpx
import link as links
from benchmarks import machine

CONFIGS = {
    "wsgi": "gunicorn sync workers, sync views",
    "wsgi-gthread": "gunicorn gthread workers, sync views, one thread per pooled connection",
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
    link_ms: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    cpu_ms: float = 0.0  # the server's CPU per request

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * UNITS[match[2]]


def parse_wrk(output: str, config: str, view: str, connections: int, link_ms: float) -> Cell:
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
        link_ms=link_ms,
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


def start(config: str, env: dict[str, str], log: Path, args: argparse.Namespace) -> harness.Server:
    if config == "wsgi":
        return harness.gunicorn(env, log, workers=args.workers)
    if config == "wsgi-gthread":
        return harness.gunicorn(env, log, workers=args.workers, threads=args.threads)
    return harness.uvicorn(env, log, workers=args.workers)


def serve(
    args: argparse.Namespace,
    work: Path,
    upstream: harness.Server,
    redis: bool,
    config: str,
    link: links.DelayLink | None,
) -> tuple[harness.Server, dict[str, str]]:
    """Start ``config`` on a fresh seeded database of its own, through ``link`` if one is
    given; the server and the env that reaches the database directly (for restores)."""
    url = database_url(args.database, work, config)
    wsgi = config.startswith("wsgi")
    env = harness.base_env(
        DATABASE_URL=url,
        ASYNCDB="0" if config == "asgi-django" else "1",
        ASGI_HANDLER="django" if config in ("asgi-django", "asgi-asyncdb-orm") else "asyncdb",
        ASYNCDB_POOL=str(args.pool),
        CONN_MAX_AGE=str(args.conn_max_age if wsgi else 0),
        DJANGO_POOL=str(args.pool if config == "asgi-django" else 0),
        UPSTREAM_URL=f"{upstream.url}/",
        CACHE_PREFIX=f"study-{config}-{os.getpid()}",
    )
    if redis:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    harness.prepare(env)
    served = dict(env)
    if link is not None:
        parts = urlsplit(url)
        netloc = f"{parts.username}@127.0.0.1:{link.port}"
        served["DATABASE_URL"] = urlunsplit(parts._replace(netloc=netloc))
    log = work / f"{config}-{link.port if link else 'loopback'}.log"
    return start(config, served, log, args), env


def median_cell(runs: list[Cell]) -> Cell:
    """The round with the median requests/s; its errors are those of every round."""
    chosen = sorted(runs, key=lambda cell: cell.requests_per_second)[(len(runs) - 1) // 2]
    return replace(
        chosen,
        non_2xx=sum(cell.non_2xx for cell in runs),
        socket_errors=sum(cell.socket_errors for cell in runs),
    )


def link_label(link_ms: float) -> str:
    return "loopback" if not link_ms else f"{link_ms:g} ms round trip to PostgreSQL"


def cached_view_hops(env: dict[str, str], log: Path, requests: int = 100) -> dict[str, int]:
    """Thread hops of ``requests`` GETs of the async cached view, by function, on a server
    of one worker (the counts are per process) with ``env`` and COUNT_HOPS on: the sync
    /debug/hops/ view's own hops (the view and its response's close) left out."""
    server = harness.uvicorn(dict(env, COUNT_HOPS="1"), log, workers=1)
    try:
        server.wait_ready()
        httpx.post(f"{server.url}/debug/hops/", timeout=10).raise_for_status()
        for _ in range(requests):
            httpx.get(f"{server.url}/async/cached/", timeout=10).raise_for_status()
        hops = httpx.get(f"{server.url}/debug/hops/", timeout=10).json()
    finally:
        server.stop()
    own = {"books.hops.hops", "django.http.response.HttpResponseBase.close"}
    return {name: n for name, n in hops.items() if name not in own}


def measure(args: argparse.Namespace, work: Path) -> tuple[list[Cell], dict[str, str]]:
    """For each link, every configuration's server runs at once; each cell (view, level) is
    measured on each configuration in turn, the order rotating, so that the machine's drift
    over the run falls on all of them alike."""
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
    runs: dict[tuple[str, str, int, float], list[Cell]] = {}
    postgresql = args.database == "postgresql" or (
        args.database == "auto" and harness.reachable(5432)
    )
    try:
        for link_ms in args.links:
            views = [v for v in args.views if not link_ms or v in args.link_views]
            if link_ms and not postgresql:
                facts[f"link {link_ms:g}"] = "skipped: SQLite has no network link"
                continue
            if views:
                measure_link(args, work, lua, upstream, redis, link_ms, views, runs, facts)
    finally:
        upstream.stop()
    return [median_cell(cells) for cells in runs.values()], facts


def measure_link(
    args: argparse.Namespace,
    work: Path,
    lua: Path,
    upstream: harness.Server,
    redis: bool,
    link_ms: float,
    views: list[str],
    runs: dict[tuple[str, str, int, float], list[Cell]],
    facts: dict[str, str],
) -> None:
    servers: dict[str, harness.Server] = {}
    envs: dict[str, dict[str, str]] = {}
    link = links.DelayLink(5432, link_ms / 2).start() if link_ms else None
    requests_over_link = 0
    try:
        if link is not None:
            direct = links.postgresql_round_trip_ms(5432)
            delayed = links.postgresql_round_trip_ms(link.port)
            facts[f"link {link_ms:g}"] = (
                f"SELECT 1 takes {delayed:.2f} ms through the delay proxy, "
                f"{direct:.2f} ms on loopback (median of 200)"
            )
            link_cpu = link.cpu_seconds()
        for config in args.configs:
            servers[config], envs[config] = serve(args, work, upstream, redis, config, link)
            scheme = envs[config]["DATABASE_URL"].split(":", 1)[0]
            facts["database"] = scheme.replace("postgres", "postgresql")
        for server in servers.values():
            server.wait_ready()
        turn = 0
        for round_ in range(args.rounds):
            for view in views:
                for level in args.levels:
                    order = args.configs[turn % len(args.configs) :]
                    order += args.configs[: turn % len(args.configs)]
                    turn += 1
                    for config in order:
                        server = servers[config]
                        prefix = "/sync" if config.startswith("wsgi") else "/async"
                        path = server.url + prefix + VIEWS[view][0]
                        script = lua if view == "create" else None
                        cpu = links.tree_cpu_seconds(server.process.pid)
                        output = run_wrk(path, level, args.seconds, script)
                        cpu = links.tree_cpu_seconds(server.process.pid) - cpu
                        cell = parse_wrk(output, config, view, level, link_ms)
                        cell.cpu_ms = cpu * 1000 / max(cell.requests, 1)
                        requests_over_link += cell.requests
                        runs.setdefault((config, view, level, link_ms), []).append(cell)
                        if view == "create":  # every cell starts from the seeded data
                            harness.restore(envs[config])
                        print(
                            f"round {round_ + 1} {link_label(link_ms)[:8]:8} {config:16}"
                            f" {view:9} c={level:<3} {cell.requests_per_second:9.1f} req/s"
                            f"  p50 {cell.p50_ms:8.2f} ms  p99 {cell.p99_ms:8.2f} ms"
                            f"  CPU {cell.cpu_ms:6.2f} ms/req  errors {cell.errors}",
                            flush=True,
                        )
        if "asgi-asyncdb" in servers and "cached" in views:
            hops = cached_view_hops(envs["asgi-asyncdb"], work / "hops.log")
            facts["cached view hops"] = json.dumps(hops)
        if link is not None:
            used = link.cpu_seconds() - link_cpu
            facts[f"link {link_ms:g}"] += (
                f"; the proxy used {used * 1000 / max(requests_over_link, 1):.3f} ms of CPU "
                "per request measured, not counted in the servers' CPU"
            )
    finally:
        for config, server in servers.items():
            code = server.stop()
            if code != 0:
                print(f"{config}: server exited with {code}; log in {server.log_path}")
        if link is not None:
            link.stop()


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


def find(
    cells: list[Cell], config: str, view: str, level: int, link_ms: float = 0.0
) -> Cell | None:
    for cell in cells:
        if (cell.config, cell.view, cell.connections, cell.link_ms) == (
            config,
            view,
            level,
            link_ms,
        ):
            return cell
    return None


def best_wsgi(cells: list[Cell], view: str, level: int, link_ms: float) -> Cell | None:
    found = [find(cells, c, view, level, link_ms) for c in CONFIGS if c.startswith("wsgi")]
    return max((c for c in found if c), key=lambda c: c.requests_per_second, default=None)


def versus(ours: Cell, theirs: Cell, target: float) -> str:
    ratio = ours.requests_per_second / max(theirs.requests_per_second, 1e-9)
    held = "held" if ratio >= target else f"missed by {(1 - ratio / target) * 100:.0f}%"
    return (
        f"{ratio:.2f}x `{theirs.config}` ({ours.requests_per_second:,.0f} vs "
        f"{theirs.requests_per_second:,.0f} req/s; CPU {ours.cpu_ms:.2f} vs "
        f"{theirs.cpu_ms:.2f} ms per request) (target {target:g}x): **{held}**"
    )


def targets(cells: list[Cell], facts: dict[str, str], top: int) -> list[str]:
    """The targets, checked on this run's figures (the top connection level)."""
    lines = []
    for link_ms, goals in ((0.0, None), (1.0, {"detail": 2.0, "create": 2.0, "fanout": 2.0})):
        for view in VIEWS:
            ours = find(cells, "asgi-asyncdb", view, top, link_ms)
            wsgi = best_wsgi(cells, view, top, link_ms)
            if not (ours and wsgi):
                continue
            target = (10.0 if view == "upstream" else 1.0) if goals is None else goals.get(view)
            if target is None:
                continue
            if view == "upstream":  # against each WSGI server: threads change the ceiling
                for config in ("wsgi", "wsgi-gthread"):
                    other = find(cells, config, view, top, link_ms)
                    if other:
                        lines.append(
                            f"- {VIEWS[view][1]}, {link_label(link_ms)}, {top} connections: "
                            f"asgi-asyncdb {versus(ours, other, target)}"
                        )
                continue
            lines.append(
                f"- {VIEWS[view][1]}, {link_label(link_ms)}, {top} connections: "
                f"asgi-asyncdb {versus(ours, wsgi, target)}"
            )
    asyncdb = find(cells, "asgi-asyncdb", "detail", top)
    django = find(cells, "asgi-django", "detail", top)
    if asyncdb and django:
        ratio = asyncdb.requests_per_second / max(django.requests_per_second, 1e-9)
        held = ratio >= 2 and asyncdb.p99_ms < django.p99_ms
        lines.append(
            f"- ORM detail, loopback, {top} connections: django_asyncdb {ratio:.2f}x the "
            f"requests/s of Django's async ORM (target 2x), p99 {asyncdb.p99_ms:.1f} ms vs "
            f"{django.p99_ms:.1f} ms (target: lower): **{'held' if held else 'missed'}**"
        )
    if "cached view hops" in facts:
        hops = json.loads(facts["cached view hops"])
        which = f" ({', '.join(f'{k}: {n}' for k, n in hops.items())})" if hops else ""
        lines.append(
            "- Thread hops in 100 requests of the async cached view (asgi-asyncdb, one "
            f"worker): {sum(hops.values())}{which} (target 0): "
            f"**{'held' if not hops else 'missed'}**"
        )
    failed = [c for c in cells if c.errors]
    lines.append(
        "- Errors: "
        + (
            "none in any configuration at any level: **held**"
            if not failed
            else "**missed**: "
            + ", ".join(
                f"{c.config} {c.view} c={c.connections} {link_label(c.link_ms)}: {c.errors}"
                for c in failed
            )
        )
    )
    return lines


def table(
    cells: list[Cell], configs: list[str], views: list[str], levels: list[int], link_ms: float
) -> str:
    head = "| view | connections |" + "".join(
        f" {c} req/s | p50 / p99 ms | CPU ms/req | errors |" for c in configs
    )
    rows = [head, "|---|---:|" + "---:|---:|---:|---:|" * len(configs)]
    for view in views:
        for level in levels:
            row = f"| {VIEWS[view][1]} | {level} |"
            for config in configs:
                cell = find(cells, config, view, level, link_ms)
                if cell is None:
                    row += " n/a | n/a | n/a | n/a |"
                    continue
                row += (
                    f" {cell.requests_per_second:,.0f} | {cell.p50_ms:.1f} / {cell.p99_ms:.1f} |"
                    f" {cell.cpu_ms:.2f} | {cell.errors} |"
                )
            rows.append(row)
    return "\n".join(rows)


def summary(cells: list[Cell], args: argparse.Namespace) -> str:
    """One row per link and view at the top connection level: requests/s and the servers'
    CPU ms per request of every configuration, and asgi-asyncdb against the best WSGI."""
    top = max(args.levels)
    head = "| link | view |" + "".join(f" {c} |" for c in args.configs)
    head += " asgi-asyncdb / best WSGI |"
    rows = [head, "|---|---|" + "---:|" * (len(args.configs) + 1)]
    for link_ms in args.links:
        for view in measured_views(cells, args.views, link_ms):
            row = f"| {'loopback' if not link_ms else f'{link_ms:g} ms'} | {VIEWS[view][1]} |"
            for config in args.configs:
                cell = find(cells, config, view, top, link_ms)
                row += f" {cell.requests_per_second:,.0f} ({cell.cpu_ms:.2f}) |" if cell else " |"
            ours = find(cells, "asgi-asyncdb", view, top, link_ms)
            wsgi = best_wsgi(cells, view, top, link_ms)
            ratio = ours.requests_per_second / wsgi.requests_per_second if ours and wsgi else 0
            rows.append(row + (f" {ratio:.2f}x |" if ratio else " |"))
    return "\n".join(rows)


def measured_views(cells: list[Cell], views: list[str], link_ms: float) -> list[str]:
    return [v for v in views if any(c.view == v and c.link_ms == link_ms for c in cells)]


def charts(cells: list[Cell], args: argparse.Namespace, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    width = 0.8 / len(args.configs)
    for link_ms in args.links:
        for view in measured_views(cells, args.views, link_ms):
            fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
            for i, config in enumerate(args.configs):
                found = [find(cells, config, view, level, link_ms) for level in args.levels]
                xs = [x + i * width for x in range(len(args.levels))]
                left.bar(
                    xs, [c.requests_per_second if c else 0 for c in found], width, label=config
                )
                right.bar(xs, [c.p99_ms if c else 0 for c in found], width, label=config)
            for axis, title in (
                (left, "requests/s (higher is better)"),
                (right, "p99 ms (lower)"),
            ):
                axis.set_xticks(
                    [x + width * (len(args.configs) - 1) / 2 for x in range(len(args.levels))]
                )
                axis.set_xticklabels([f"{level} conn." for level in args.levels])
                axis.set_title(title)
            right.set_yscale("log")
            left.legend(fontsize="small")
            fig.suptitle(f"{VIEWS[view][1]} ({view}), {link_label(link_ms)}")
            fig.tight_layout()
            name = f"{view}.png" if not link_ms else f"{view}-{link_ms:g}ms.png"
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
        f"Run {facts['run']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in found.items()) + ".",
        "",
        f"Command: `{args.command}`",
        "",
        f"Database: {facts.get('database', '?')}, fresh and seeded for each configuration and "
        f"link; cache: {facts.get('cache', '?')}; upstream delay {args.upstream_delay:g} ms; "
        f"{args.seconds:g} s per cell, {args.rounds} round(s) (the median's shown, errors "
        "of all rounds); every server of a link runs throughout, and each cell is measured on "
        "each configuration in turn, in a rotating order; "
        f"django_asyncdb pool MAX_SIZE {args.pool} per worker; `wsgi-gthread` "
        f"{args.threads} threads per worker; "
        f"CONN_MAX_AGE {args.conn_max_age} for WSGI; under ASGI 0 (Django's advice), and on "
        f"PostgreSQL Django's own psycopg pool of {args.pool} per worker for `asgi-django`. "
        "The upstream client: httpx, 8 AsyncClients of 8 connections per worker "
        "(books/upstream.py). CPU ms/req: the server's processes' user + system CPU during "
        "the cell divided by its requests (the machine has 2 cores; wrk runs on them too).",
        "",
        f"Configurations (each server in its own process, with {args.workers} worker "
        f"process{'es' if args.workers > 1 else ''}, gunicorn's and uvicorn's alike):",
        "",
        *(f"- `{name}`: {what}" for name, what in CONFIGS.items() if name in args.configs),
        "",
        "Latencies in ms; errors are non-2xx responses plus socket errors, as wrk counts them.",
        "",
    ]
    lines += [
        f"## Summary: {max(args.levels)} connections",
        "",
        "Requests/s (the servers' CPU ms per request); the full tables follow.",
        "",
        summary(cells, args),
        "",
    ]
    for link_ms in args.links:
        views = measured_views(cells, args.views, link_ms)
        if not views:
            continue
        label = link_label(link_ms)
        lines += [f"## {label[0].upper()}{label[1:]}", ""]
        if f"link {link_ms:g}" in facts:
            lines += [f"Link: {facts[f'link {link_ms:g}']}.", ""]
        lines += [table(cells, args.configs, views, args.levels, link_ms), ""]
    lines += ["## Targets", "", *targets(cells, facts, top), ""]
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
    parser.add_argument(
        "--threads", type=int, help="threads per wsgi-gthread worker (default: --pool)"
    )
    parser.add_argument(
        "--links",
        nargs="+",
        type=float,
        default=[0.0, 1.0],
        help="round-trip ms added between the servers and PostgreSQL; 0 is loopback",
    )
    parser.add_argument(
        "--link-views",
        nargs="+",
        choices=list(VIEWS),
        default=["books", "detail", "create", "fanout"],
        help="the views measured over a delayed link (the others do not query the database)",
    )
    parser.add_argument("--out", type=Path, default=harness.HERE / "results")
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write the report again from a run's results.json",
    )
    args = parser.parse_args(argv)
    given = list(argv if argv is not None else sys.argv[1:])
    if "--out" in given:  # where the report goes is not part of the run
        del given[given.index("--out") : given.index("--out") + 2]
    args.command = shlex.join(["python", "example/study.py", *given])
    args.threads = args.threads or args.pool
    if any(args.links) and args.database != "sqlite" and links.compiler() is None:
        print(
            "a delayed link needs a C compiler (cc or gcc) for example/delaylink.c", file=sys.stderr
        )
        return 2
    if not shutil.which("wrk"):
        print(
            "wrk is not installed: on Debian/Ubuntu `apt-get install -y wrk` (as root), "
            "on macOS `brew install wrk`.",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        facts = saved["facts"]
        cells = [Cell(**cell) for cell in saved["cells"]]
        # The run's own options (levels, seconds, ...), from the command it recorded.
        out = args.out
        args = parser.parse_args(shlex.split(facts["command"])[2:])
        args.out, args.command = out, facts["command"]
        args.threads = args.threads or args.pool
    else:
        with tempfile.TemporaryDirectory(prefix="bookshop-study-") as folder:
            cells, facts = measure(args, Path(folder))
        facts["command"] = args.command
        facts["run"] = (
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {machine.describe()}"
        )
        (args.out / "results.json").write_text(
            json.dumps({"facts": facts, "cells": [asdict(c) for c in cells]}, indent=1) + "\n"
        )
    text = report(cells, facts, args, args.out)
    (args.out / "README.md").write_text(text)
    print(f"\nwrote {args.out / 'README.md'}")
    print("\n".join(targets(cells, facts, max(args.levels))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
