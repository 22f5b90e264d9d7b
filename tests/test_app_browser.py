"""The app in a real headless Chromium (Debian's), driven by Playwright."""

import os
import shutil
from pathlib import Path

import pytest

from tests.app_server import launch, make_checkpoints

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "tests" / "artifacts"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium "
                                                   "(scripts/install_system_deps.sh installs it)")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    demo, url = launch(make_checkpoints(tmp_path_factory.mktemp("ckpts")))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.requests = requests
        page.goto(url)
        page.wait_for_selector("#rtm-viewer .rtm-frame", timeout=60_000)  # demo.load renders seed 42
        yield page
        browser.close()
    demo.close()


def current(page) -> tuple[str, str]:
    return (page.get_attribute("#rtm-viewer .rtm-root", "data-step"),
            page.get_attribute("#rtm-viewer .rtm-frame", "src"))


def test_nothing_is_fetched_from_outside(page):
    outside = [u for u in page.requests if not u.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert outside == []


def test_generate_scrub_play_without_server_requests(page):
    seed_box = page.get_by_label("seed", exact=True)
    seed_box.fill("7")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-caption').textContent.includes('step 3 of 3')")
    page.wait_for_timeout(500)
    step, src_last = current(page)
    assert step == "3"

    before = len(page.requests)
    slider = page.locator("#rtm-viewer .rtm-slider")
    slider.focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft")  # drag back to step 0 with the keyboard
    step, src_first = current(page)
    assert step == "0" and src_first != src_last
    page.locator("#rtm-viewer .rtm-next").click()
    assert current(page)[0] == "1"
    page.locator("#rtm-viewer .rtm-strip img[data-step='2']").click()
    assert current(page)[0] == "2"
    page.locator("#rtm-viewer .rtm-play").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '3'", timeout=5000)
    assert len(page.requests) == before, page.requests[before:]  # scrubbing never asked the server

    # The trajectory map was drawn with plotly, and the current step is highlighted on it.
    assert page.locator("#rtm-viewer .rtm-map .main-svg").count() > 0
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "app.png"), full_page=True)


def test_bad_seed_shows_a_visible_error_and_the_app_keeps_working(page):
    seed_box = page.get_by_label("seed", exact=True)
    seed_box.fill("99999999999")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("greater than maximum").first.wait_for(timeout=10_000)
    seed_box.fill("11")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-caption').textContent.includes('step 3 of 3')")
