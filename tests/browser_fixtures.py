"""Fixtures of the browser tests: the app on tiny checkpoints in this process, one headless
Chromium per module, and a fresh page that fails its test on any page or console error."""

import pytest

from bench.browser import cold_load, launch_browser
from tests.app_server import launch, make_checkpoints


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    demo, url = launch(make_checkpoints(tmp_path_factory.mktemp("ckpts")))
    yield demo, url
    demo.close()


@pytest.fixture(scope="module")
def app_url(served):
    return served[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture
def loaded(browser, app_url):
    load = cold_load(browser, app_url)
    load["page"].requests = []
    load["page"].on("request", lambda r: load["page"].requests.append(r.url))
    yield load
    assert load["errors"] == [], load["errors"]
    load["context"].close()
