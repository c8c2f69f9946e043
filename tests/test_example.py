"""The example bookshop end to end: real uvicorn and gunicorn processes, driven over HTTP.

Every server runs in its own process on a fresh database (SQLite always, PostgreSQL when
reachable and under CI=true), so these tests share nothing with this process's Django set-up.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "example"
sys.path.insert(0, str(EXAMPLE))

import harness  # noqa: E402

CI = bool(os.environ.get("CI"))
ASYNC_VIEWS = [
    *("books/", "books/1.json", "books/1/", "reviews/new/", "cached/", "upstream/", "fanout/")
]


def _redis_url() -> str | None:
    if harness.reachable(6379):
        return "redis://127.0.0.1:6379/0"
    if CI:
        pytest.fail("Redis at 127.0.0.1:6379 is required under CI")
    return None


def _need_postgresql() -> None:
    if not harness.reachable(5432):
        if CI:
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")


def _database_url(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return harness.sqlite_url(str(folder))
    _need_postgresql()
    url = harness.postgresql_url("asyncdb_example_test")
    assert url is not None, "PostgreSQL answered, then refused to create the database"
    return url


class Stack:
    """uvicorn (async views, django_asyncdb, hop counting) and gunicorn (sync views) on one
    database, with the local upstream."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.upstream = harness.upstream(10, folder / "upstream.log")
        self.upstream.wait_ready()
        env["UPSTREAM_URL"] = self.upstream.url + "/"
        self.asgi = harness.uvicorn(env, folder / "uvicorn.log")
        self.wsgi = harness.gunicorn(env, folder / "gunicorn.log", workers=1)
        self.asgi.wait_ready()
        self.wsgi.wait_ready()

    def get(self, prefix: str, path: str) -> httpx.Response:
        server = self.wsgi if prefix == "sync" else self.asgi
        return httpx.get(f"{server.url}/{prefix}/{path}", timeout=10)

    def post(
        self, prefix: str, path: str, data: dict[str, object], encoding: str = "form"
    ) -> httpx.Response:
        server = self.wsgi if prefix == "sync" else self.asgi
        body = {"json": data} if encoding == "json" else {"data": data}
        return httpx.post(f"{server.url}/{prefix}/{path}", **body, timeout=10)

    def reviews(self) -> int:
        return int(self.get("sync", "fanout/").json()["results"]["reviews"])

    def stop(self) -> None:
        for server in (self.asgi, self.wsgi, self.upstream):
            server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"bookshop-{request.param}")
    env = harness.base_env(
        DATABASE_URL=_database_url(request.param, folder),
        COUNT_HOPS="1",
        CACHE_PREFIX=f"test-{uuid.uuid4().hex}",
        CACHE_SECONDS="60",
    )
    redis = _redis_url()
    if redis:
        env["REDIS_URL"] = redis
    harness.prepare(env)
    running = Stack(env, folder)
    yield running
    running.stop()


@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_pages(stack, prefix):
    home = stack.get(prefix, "").request.url.copy_with(path="/")
    links = httpx.get(home, timeout=10).text
    for path in ASYNC_VIEWS:
        assert f'href="/{prefix}/{path}"' in links
    page = stack.get(prefix, "books/")
    assert page.status_code == 200
    assert f'<a href="/{prefix}/books/1/">Book 01.01</a></td><td>Author 01</td>' in page.text
    assert page.text.count("<tr><td>") == 50
    assert "Signed in as: anonymous" in page.text
    assert '<link rel="stylesheet" href="/static/books/style.css">' in page.text
    form = stack.get(prefix, "reviews/new/")
    assert form.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in form.text
    # The book picker: every book, by title.
    options = re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', form.text)
    assert options[:2] == [("", "Choose a book"), ("1", "Book 01.01")]
    assert len(options) == 201 and options[-1] == ("200", "Book 20.10")
    book = stack.get(prefix, "books/7/")
    assert book.status_code == 200
    assert "<h1>Book 01.07</h1>" in book.text and "Review 3 of Book 01.07." in book.text
    assert stack.get(prefix, "books/9999/").status_code == 404
    css = stack.get(prefix, "").request.url.copy_with(path="/static/books/style.css")
    style = httpx.get(css, timeout=10)
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert "header {" in style.text


@pytest.mark.parametrize("pk", [1, 7, 200])
def test_detail_equals_sync(stack, pk):
    sync, async_ = stack.get("sync", f"books/{pk}.json"), stack.get("async", f"books/{pk}.json")
    assert sync.status_code == async_.status_code == 200
    assert async_.json() == sync.json()
    assert async_.json()["author"]["name"].startswith("Author ")
    assert len(async_.json()["reviews"]) >= 3
    assert stack.get("async", "books/9999.json").status_code == 404


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_post_creates_one_row(stack, prefix, encoding):
    before = stack.reviews()
    book = stack.get("sync", "books/5.json").json()
    data = {"book": 5, "reviewer": f"{prefix} {encoding} tester", "rating": 5, "body": "Loved it."}
    response = stack.post(prefix, "api/reviews/", data, encoding)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created == {**data, "id": created["id"]}
    assert stack.reviews() == before + 1
    after = stack.get(prefix, "books/5.json").json()
    assert after["review_count"] == book["review_count"] + 1
    assert after["reviews"][-1]["id"] == created["id"]


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_bad_post_is_400_and_writes_nothing(stack, prefix, encoding):
    before = stack.reviews()
    response = stack.post(prefix, "api/reviews/", {"book": 5, "rating": 9, "body": ""}, encoding)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"reviewer", "rating", "body"}
    assert errors["rating"][0]["code"] == "max_value"
    missing = stack.post(
        prefix, "api/reviews/", {"book": 9999, "reviewer": "x", "rating": 3, "body": "x"}, encoding
    )
    assert missing.status_code == 400
    assert missing.json()["errors"]["book"][0]["message"] == "No such book."
    assert stack.reviews() == before
    assert stack.get("sync", "books/9999.json").status_code == 404


@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_bad_json_is_400_and_writes_nothing(stack, prefix):
    before = stack.reviews()
    server = stack.wsgi if prefix == "sync" else stack.asgi
    url = f"{server.url}/{prefix}/api/reviews/"
    for body, error in [
        (b'{"book": 5,', "the body is not valid JSON"),
        (b"\xff\xfe{", "the body is not valid JSON"),
        (b"[5]", "the body must be a JSON object"),
        (b'"book"', "the body must be a JSON object"),
        (
            b'{"book": 5, "reviewer": ["x"], "rating": 4, "body": "x"}',
            "the object's values must be strings, numbers or null",
        ),
    ]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        assert response.status_code == 400, body
        assert response.json() == {"error": error}, body
    assert stack.reviews() == before


def _form_token(browser: httpx.Client, url: str) -> tuple[httpx.Response, str]:
    page = browser.get(url)
    return page, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]


@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_html_form_keeps_csrf_and_redirects_after_saving(stack, prefix):
    """Post/Redirect/Get: a saved review answers 303 to its book's page, which shows it."""
    data = {"book": 3, "reviewer": f"{prefix} browser", "rating": 4, "body": "Fine."}
    assert stack.post(prefix, "reviews/new/", data).status_code == 403
    before = stack.reviews()
    server = stack.wsgi if prefix == "sync" else stack.asgi
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        page, token = _form_token(browser, f"/{prefix}/reviews/new/?book=3")
        assert '<option value="3" selected>Book 01.03</option>' in page.text
        saved = browser.post(f"/{prefix}/reviews/new/", data={**data, "csrfmiddlewaretoken": token})
        assert saved.status_code == 303, saved.text
        review = re.fullmatch(rf"/{prefix}/books/3/\?review=(\d+)", saved.headers["location"])
        assert review, saved.headers["location"]
        shown = browser.get(saved.headers["location"])
    assert shown.status_code == 200
    assert f"Thank you, {prefix} browser: your review is saved." in shown.text
    item = f'<li id="review-{review[1]}" class="new"><span class="rating">4/5</span>'
    assert f"{item} <b>{prefix} browser</b><p>Fine.</p></li>" in shown.text
    assert stack.reviews() == before + 1


@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_html_form_shows_errors_and_writes_nothing(stack, prefix):
    before = stack.reviews()
    server = stack.wsgi if prefix == "sync" else stack.asgi
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        _, token = _form_token(browser, f"/{prefix}/reviews/new/")
        data = {
            "book": 9999,
            "reviewer": "  ",
            "rating": 6,
            "body": "Kept.",
            "csrfmiddlewaretoken": token,
        }
        page = browser.post(f"/{prefix}/reviews/new/", data=data)
    assert page.status_code == 400
    assert "Please correct the errors below." in page.text
    errors = dict(
        re.findall(r'<ul class="errorlist" id="id_(\w+)_error"><li>([^<]+)</li>', page.text)
    )
    assert errors == {
        "book": "Select a valid choice. 9999 is not one of the available choices.",
        "reviewer": "This field is required.",
        "rating": "Ensure this value is less than or equal to 5.",
    }
    assert "\nKept.</textarea>" in page.text  # what was typed is kept
    assert stack.reviews() == before


@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_a_stale_book_edit_is_refused_not_saved(stack, prefix):
    """Optimistic locking over HTTP: two people open the edit page of the same book; the
    first save wins, the second (its page shows the old version) gets 409 and the form
    says why; nothing of it is written. Reloading the page shows the new version."""
    pk = 11 if prefix == "sync" else 12
    server = stack.wsgi if prefix == "sync" else stack.asgi
    url = f"/{prefix}/books/{pk}/edit/"
    version = re.compile(r'<input type="hidden" name="version" value="(\d+)"')
    with (
        httpx.Client(base_url=server.url, timeout=10) as alice,
        httpx.Client(base_url=server.url, timeout=10) as bob,
    ):
        page_a, token_a = _form_token(alice, url)
        page_b, token_b = _form_token(bob, url)
        shown = version.search(page_a.text)[1]
        assert version.search(page_b.text)[1] == shown
        first = alice.post(
            url,
            data={
                "title": "Alice's",
                "price": "10.00",
                "version": shown,
                "csrfmiddlewaretoken": token_a,
            },
        )
        assert first.status_code == 303, first.text
        assert first.headers["location"] == f"/{prefix}/books/{pk}/"
        second = bob.post(
            url,
            data={
                "title": "Bob's",
                "price": "99.00",
                "version": shown,
                "csrfmiddlewaretoken": token_b,
            },
        )
        assert second.status_code == 409, second.text
        assert "Someone else changed this book after you opened it." in second.text
        assert stack.get(prefix, f"books/{pk}.json").json()["title"] == "Alice's"
        again, token_b = _form_token(bob, url)
        assert int(version.search(again.text)[1]) == int(shown) + 1
        assert 'value="Alice&#x27;s"' in again.text
        third = bob.post(
            url,
            data={
                "title": "Bob's",
                "price": "99.00",
                "version": version.search(again.text)[1],
                "csrfmiddlewaretoken": token_b,
            },
        )
        assert third.status_code == 303, third.text
    book = stack.get(prefix, f"books/{pk}.json").json()
    assert (book["title"], book["price"]) == ("Bob's", "99.00")


def test_cached_page(stack):
    first = stack.get("async", "cached/").json()
    second = stack.get("async", "cached/").json()
    assert second["cache"] == "hit"
    assert second["stats"] == first["stats"]
    assert set(first["stats"]) == {"authors", "books", "reviews"}
    assert stack.get("sync", "cached/").json()["stats"]["books"] == 200
    expected = "RedisCache" if "REDIS_URL" in stack.env else "LocMemCache"
    assert second["backend"] == expected


@pytest.mark.parametrize("prefix", ["sync", "async"])
def test_external_api(stack, prefix):
    response = stack.get(prefix, "upstream/")
    assert response.status_code == 200
    assert response.json() == {
        "upstream": {"service": "upstream", "delay_ms": 10.0, "path": "/"},
        "user": "anonymous",
    }


def test_fanout_equals_sync(stack):
    sync, async_ = stack.get("sync", "fanout/").json(), stack.get("async", "fanout/").json()
    assert async_ == sync
    assert len(sync["results"]["top_rated"]) == 5
    assert sync["results"]["authors"] == 20


def _hops_of_async_views(server: harness.Server) -> dict[str, int]:
    httpx.post(f"{server.url}/debug/hops/", timeout=10)
    for path in ASYNC_VIEWS:
        assert httpx.get(f"{server.url}/async/{path}", timeout=10).status_code == 200
    data = {"book": 2, "reviewer": "hops", "rating": 3, "body": "Counted."}
    assert httpx.post(f"{server.url}/async/api/reviews/", data=data, timeout=10).status_code == 201
    assert httpx.post(f"{server.url}/async/api/reviews/", json=data, timeout=10).status_code == 201
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        _, token = _form_token(browser, "/async/reviews/new/")
        saved = browser.post("/async/reviews/new/", data={**data, "csrfmiddlewaretoken": token})
        assert saved.status_code == 303
        assert browser.get(saved.headers["location"]).status_code == 200
        edit, token = _form_token(browser, "/async/books/4/edit/")
        version = re.search(r'name="version" value="(\d+)"', edit.text)[1]
        fields = {"title": "Book 01.04", "price": "14.04", "version": version}
        edited = browser.post("/async/books/4/edit/", data={**fields, "csrfmiddlewaretoken": token})
        assert edited.status_code == 303, edited.text
    return httpx.get(f"{server.url}/debug/hops/", timeout=10).json()


def _orm_hops(hops: dict[str, int]) -> dict[str, int]:
    """Hops that run ORM code or the views' own code in a thread (not Django's middleware
    adapters, its signal dispatch or the cache backend's sync_to_async)."""
    return {name: n for name, n in hops.items() if name.startswith(("django.db.", "books.views"))}


def test_only_the_cache_api_hops_with_asyncdb(stack):
    """django_asyncdb's ORM, handler and Redis cache: the async views hop to no thread.
    With Django's local-memory cache (no Redis), they hop only for that cache's own
    sync_to_async (then request_finished runs in that request's thread, as in Django). The
    sync /debug/hops/ view runs in a thread, as every sync view does."""
    hops = _hops_of_async_views(stack.asgi)
    if "REDIS_URL" in stack.env:
        # Only the sync /debug/hops/ view's request: the view, and its close() in the
        # thread it used.
        assert set(hops) <= {"books.hops.hops", "django.http.response.HttpResponseBase.close"}
        assert hops.get("django.http.response.HttpResponseBase.close", 0) <= 1, hops
        return
    cache = {f"django.core.cache.backends.locmem.LocMemCache.{m}" for m in ("get", "set")}
    allowed = {*cache, "django.http.response.HttpResponseBase.close", "books.hops.hops"}
    assert set(hops) <= allowed, hops
    assert hops["django.core.cache.backends.locmem.LocMemCache.get"] == 1


def test_thread_hops_for_orm_without_asyncdb(stack, tmp_path):
    if "sqlite" not in stack.env["DATABASE_URL"]:
        pytest.skip("the contrast is shown once, on SQLite")
    server = harness.uvicorn(dict(stack.env, ASYNCDB="0"), tmp_path / "uvicorn-asyncdb0.log")
    try:
        server.wait_ready()
        hops = _orm_hops(_hops_of_async_views(server))
    finally:
        assert server.stop() == 0
    assert hops["django.db.models.query.QuerySet.get"] >= 1  # aget
    assert hops["django.db.models.query.QuerySet._fetch_all"] >= 1  # async for
    # The transaction, in a thread: the API's two posts and the form's.
    assert hops["books.views_sync.create_review"] == 3


def test_lifespan_shutdown_is_clean(stack):
    """Last in the module: stops the shared uvicorn and checks how it went."""
    code = stack.asgi.stop()
    log = stack.asgi.log()
    assert code == 0, log
    assert "Application shutdown complete." in log
    assert "Traceback" not in log
    assert "ERROR" not in log


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (apt-get install wrk)")
def test_study_smoke(tmp_path):
    argv = [sys.executable, str(EXAMPLE / "study.py"), "--database", "sqlite"]
    argv += ["--configs", "wsgi-gthread", "asgi-asyncdb", "--views", "detail", "create"]
    argv += ["--levels", "2", "--seconds", "1", "--threads", "4", "--out", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "README.md").read_text()
    assert re.search(
        r"\| ORM detail as JSON \| 2 \|( [\d,.]+ \| [\d.]+ / [\d.]+ \| [\d.]+ \| 0 \|){2}$",
        report,
        re.M,
    ), report
    assert "Errors: none in any configuration at any level" in report
    assert "round trip to PostgreSQL" not in report  # SQLite: no link to delay
    assert (tmp_path / "detail.png").stat().st_size > 0
    # The report written again from results.json, measuring nothing: the same report.
    again = tmp_path / "again"
    argv = [sys.executable, str(EXAMPLE / "study.py"), "--out", str(again)]
    argv += ["--from-results", str(tmp_path / "results.json")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (again / "README.md").read_text() == report


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (apt-get install wrk)")
def test_study_over_a_delayed_link(tmp_path):
    """The study's 1 ms dimension on PostgreSQL: the link measured, the servers reach the
    database through it (a sync worker's requests take at least its round trips)."""
    _need_postgresql()
    argv = [sys.executable, str(EXAMPLE / "study.py"), "--database", "postgresql"]
    argv += ["--configs", "wsgi", "asgi-asyncdb", "--views", "detail", "--levels", "1"]
    argv += ["--seconds", "1", "--links", "0", "1", "--out", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "README.md").read_text()
    assert "## Loopback" in report and "## 1 ms round trip to PostgreSQL" in report, report
    link = re.search(r"SELECT 1 takes ([\d.]+) ms through the delay proxy, ([\d.]+) ms", report)
    assert link and float(link[1]) >= float(link[2]) + 0.95, report
    results = json.loads((tmp_path / "results.json").read_text())["cells"]
    wsgi = {c["link_ms"]: c for c in results if c["config"] == "wsgi"}
    # The detail view's two queries: one connection, one request at a time, >= 2 ms each.
    assert wsgi[1.0]["p50_ms"] >= 2.0, wsgi
    assert wsgi[1.0]["p50_ms"] > wsgi[0.0]["p50_ms"], wsgi
    assert all(c["cpu_ms"] > 0 and not c["non_2xx"] + c["socket_errors"] for c in results)
    assert (tmp_path / "detail-1ms.png").stat().st_size > 0


def test_seed_restore_puts_the_seeded_reviews_back(tmp_path):
    """The study restores the reviews after each form cell: the data every view reads."""
    env = harness.base_env(DATABASE_URL=harness.sqlite_url(str(tmp_path)))
    harness.prepare(env)
    manage = [sys.executable, str(EXAMPLE / "manage.py"), "shell", "-v", "0", "-c"]
    state = (
        "from books.models import Book, Review; "
        "print(Review.objects.count(), sorted(set(Book.objects.values_list('review_count', "
        "flat=True))), Review.objects.filter(reviewer='wrk').count())"
    )
    post = (
        "from django.db.models import F; from books.models import Book, Review; "
        "[Review.objects.create(book_id=7, reviewer='wrk', rating=4, body='x') for _ in "
        "range(5)]; Book.objects.filter(pk=7).update(review_count=F('review_count') + 5)"
    )

    def run(code):
        done = subprocess.run([*manage, code], env=env, cwd=EXAMPLE, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode().strip()

    seeded = run(state)
    assert seeded == "600 [3] 0"
    run(post)
    assert run(state) == "605 [3, 8] 5"
    harness.restore(env)
    assert run(state) == seeded


def test_upstream_clients_command():
    argv = [sys.executable, str(EXAMPLE / "upstream_clients.py"), "--calls", "100"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" client")[0].strip() for line in lines] == ["1", "8", "64"]
    assert all("calls/s" in line and "ms of CPU per call" in line for line in lines)


def test_request_cost_command():
    """example/request_cost.py: every page through every handler answers 200 (it exits
    otherwise) and gets a positive figure."""
    env = dict(os.environ)
    if _redis_url() is None:
        env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "request_cost.py"), "--requests", "20", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row[0].strip() for row in rows] == ["page", "detail", "cached", "fanout", "books"]
    assert all(float(cell.replace(",", "")) > 0 for row in rows[1:] for cell in row[1:])


def test_request_cost_on_postgresql():
    _need_postgresql()
    env = dict(os.environ)
    if _redis_url() is None:
        env.pop("REDIS_URL", None)
    argv = [sys.executable, str(EXAMPLE / "request_cost.py"), "--database", "postgresql"]
    argv += ["--page", "fanout", "--requests", "20", "--rounds", "1"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "(PostgreSQL, cache:" in result.stdout
    assert re.search(r"^\| fanout \| [\d,]+ \| [\d,]+ \| [\d,]+ \|$", result.stdout, re.M)


def _server_url(kind: str, name: str) -> str:
    """The URL of database ``name`` on the local PostgreSQL or MariaDB (failing under CI,
    else skipping, when that server is not there)."""
    if kind == "postgresql":
        _need_postgresql()
        return harness.PG_URL.format(user="postgres", host="127.0.0.1", port=5432, name=name)
    try:
        import MySQLdb  # noqa: F401 (Django's MySQL backend, which migrate uses)
    except ImportError:
        reason = "mysqlclient is not installed"
    else:
        reason = "" if harness.reachable(3306) else "MariaDB at 127.0.0.1:3306 is not reachable"
    if reason and CI:
        pytest.fail(f"{reason} (required under CI)")
    if reason:
        pytest.skip(reason)
    return f"mysql://root@127.0.0.1:3306/{name}"


def _drop(kind: str, name: str) -> None:
    if kind == "postgresql":
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root")
        try:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


def _wait_for_page(process: subprocess.Popen, url: str, log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"run.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(url, timeout=5).raise_for_status().text
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"run.py did not serve {url}:\n{log.read_text()}")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_run_creates_a_missing_database(kind, tmp_path):
    """example/run.py on a database that does not exist: it creates it (saying so once),
    migrates, seeds and serves; run again, it finds it and says nothing about it."""
    name = f"asyncdb_example_run_{uuid.uuid4().hex[:10]}"
    env = harness.base_env(DATABASE_URL=_server_url(kind, name))
    port, upstream = harness.free_port(), harness.free_port()
    argv = [sys.executable, str(EXAMPLE / "run.py"), "--port", str(port)]
    argv += ["--upstream-port", str(upstream)]
    log = tmp_path / "run.log"
    try:
        for run in (1, 2):
            with open(log, "wb") as out:
                # Its own session: Ctrl+C reaches run.py, uvicorn and the upstream.
                process = subprocess.Popen(
                    argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            try:
                page = _wait_for_page(process, f"http://127.0.0.1:{port}/async/books/", log)
            finally:
                os.killpg(process.pid, signal.SIGINT)  # as Ctrl+C
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            assert "Book 01.01</a></td><td>Author 01</td>" in page
            output = log.read_text()
            created = [line for line in output.splitlines() if line.startswith("createdb:")]
            server = "PostgreSQL at 127.0.0.1:5432" if kind == "postgresql" else "MariaDB/MySQL"
            if run == 1:
                assert len(created) == 1 and name in created[0] and server in created[0], output
            else:
                assert not created, output
    finally:
        _drop(kind, name)


def test_run_says_in_one_line_how_to_create_the_database():
    """A database run.py cannot create (the role does not exist): one line, no traceback."""
    _need_postgresql()
    name = f"asyncdb_example_run_{uuid.uuid4().hex[:10]}"
    url = f"postgres://asyncdb_no_such_role@127.0.0.1:5432/{name}"
    argv = [sys.executable, str(EXAMPLE / "run.py"), "--port", str(harness.free_port())]
    done = subprocess.run(
        argv, env=harness.base_env(DATABASE_URL=url), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"CommandError: cannot create database '{name}' on PostgreSQL")
    assert 'role "asyncdb_no_such_role" does not exist' in done.stderr
    assert done.stderr.endswith(
        f"create it yourself, e.g. createdb -h 127.0.0.1 -p 5432 -U asyncdb_no_such_role {name}\n"
    )
