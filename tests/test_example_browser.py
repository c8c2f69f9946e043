"""The example bookshop in a real browser: headless Chromium (Debian's package) driven by
Playwright, against uvicorn (async views) and gunicorn (sync views) on a fresh SQLite
database, as tests/test_example.py starts them.

Screenshots go to tests/artifacts/browser/ (ignored by git). Needs ``pip install playwright``
and ``apt-get install chromium`` (not ``playwright install``: Playwright drives the system's
Chromium); under CI=true a missing one fails the test, elsewhere it is skipped.
"""

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "example"
sys.path.insert(0, str(EXAMPLE))

import harness  # noqa: E402

CI = bool(os.environ.get("CI"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "browser"
ACCENT = "rgb(122, 59, 18)"  # style.css's --accent, #7a3b12
ERROR_RED = "rgb(179, 38, 30)"  # .errorlist, #b3261e


def _missing(reason: str) -> None:
    if CI:
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install playwright)")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        _missing("Chromium is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bookshop-browser")
    env = harness.base_env(DATABASE_URL=harness.sqlite_url(str(folder)))
    env.pop("REDIS_URL", None)
    harness.prepare(env)
    running = {
        "async": harness.uvicorn(env, folder / "uvicorn.log"),
        "sync": harness.gunicorn(env, folder / "gunicorn.log", workers=1),
    }
    try:
        for server in running.values():
            server.wait_ready()
        yield running
    finally:
        for server in running.values():
            server.stop()
    log = running["async"].log()
    assert "Traceback" not in log and "ERROR" not in log, log


def _style(locator, prop: str) -> str:
    return locator.evaluate(f"e => getComputedStyle(e).{prop}")


@pytest.mark.parametrize(("prefix", "pk"), [("sync", 7), ("async", 8)])  # one database
def test_a_visitor_reviews_a_book(browser, servers, prefix, pk):
    """Browse the books, open one, post a bad review (the error is beside its field), then a
    good one (303 to the book's page, which shows it); reloading posts nothing again."""
    from playwright.sync_api import expect

    base = servers[prefix].url
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    failed = []
    page.on("response", lambda r: r.status >= 400 and failed.append((r.request.method, r.url)))

    def shot(name: str) -> None:
        page.screenshot(path=ARTIFACTS / f"{prefix}-{name}.png", full_page=True)

    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Bookshop", exact=True)).to_be_visible()
    section = page.locator("ul", has=page.locator(f"a[href='/{prefix}/books/']"))
    section.get_by_role("link", name="Books (template page)").click()
    expect(page).to_have_url(f"{base}/{prefix}/books/")
    expect(page.get_by_role("heading", name=f"Books ({prefix})")).to_be_visible()
    expect(page.locator("table.books tr")).to_have_count(51)  # the header row and 50 books
    expect(page.get_by_text("Signed in as: anonymous")).to_be_visible()
    # The stylesheet applied: the header bar, the table across the page.
    header = page.locator("header")
    assert _style(header, "backgroundColor") == ACCENT
    assert _style(header.get_by_role("link", name="Bookshop"), "color") == "rgb(255, 255, 255)"
    assert page.locator("table.books").bounding_box()["width"] > 800
    shot("books")

    title = f"Book 01.{pk:02d}"
    page.get_by_role("link", name=title, exact=True).click()
    expect(page).to_have_url(f"{base}/{prefix}/books/{pk}/")
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    reviews = page.locator("ul.reviews > li")
    expect(reviews).to_have_count(3)
    page.locator("main").get_by_role("link", name="Write a review").click()
    expect(page).to_have_url(f"{base}/{prefix}/reviews/new/?book={pk}")
    expect(page.get_by_label("Book")).to_have_value(str(pk))  # picked from the book's page
    expect(page.get_by_label("Book").locator("option")).to_have_count(201)

    # Bad input the browser lets through (spaces are not empty to it): the server's error,
    # beside the field, with what was typed kept.
    page.get_by_label("Reviewer").fill("   ")
    page.get_by_label("Rating").fill("4")
    page.get_by_label("Body").fill("Too shy to sign.")
    with page.expect_response(f"{base}/{prefix}/reviews/new/?book={pk}") as posted:
        page.get_by_role("button", name="Save").click()
    assert posted.value.status == 400
    expect(page.get_by_text("Please correct the errors below.")).to_be_visible()
    field = page.locator("form.review > div", has=page.locator("#id_reviewer"))
    error = field.locator(".errorlist")
    expect(error).to_have_text("This field is required.")
    expect(error).to_be_visible()
    expect(page.locator(".errorlist")).to_have_count(1)
    assert _style(error, "color") == ERROR_RED
    box, entry = error.bounding_box(), page.get_by_label("Reviewer").bounding_box()
    assert 0 <= entry["y"] - (box["y"] + box["height"]) < 20, (box, entry)  # just above it
    expect(page.get_by_label("Body")).to_have_value("Too shy to sign.")
    expect(page.get_by_label("Reviewer")).to_have_attribute("aria-invalid", "true")
    shot("error")

    # Good input: Post/Redirect/Get to the book's page, the new review shown.
    reviewer = f"Ada ({prefix})"
    page.get_by_label("Reviewer").fill(reviewer)
    page.get_by_label("Rating").fill("5")
    page.get_by_label("Body").fill(f"A page-turner, read on the {prefix} side.")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Save").click()
    shown = navigation.value
    assert shown.status == 200
    assert shown.request.redirected_from.response().status == 303
    assert shown.request.method == "GET"
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/{prefix}/books/{pk}/\?review=\d+$"))
    expect(page.locator(".message.success")).to_have_text(
        f"Thank you, {reviewer}: your review is saved."
    )
    expect(reviews).to_have_count(4)
    new = page.locator("ul.reviews > li.new")
    expect(new).to_contain_text(reviewer)
    expect(new).to_contain_text(f"A page-turner, read on the {prefix} side.")
    expect(new).to_contain_text("5/5")
    assert _style(new, "borderTopColor") == "rgb(60, 141, 64)"
    shot("saved")

    page.reload()  # a GET: nothing is posted again
    expect(reviews).to_have_count(4)
    expect(page.get_by_role("heading", name="Reviews (4)")).to_be_visible()
    assert failed == [("POST", f"{base}/{prefix}/reviews/new/?book={pk}")], failed
    page.close()
