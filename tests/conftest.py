import os

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rtm_core import Generator, save_checkpoint, tiny
from train.cpu_threads import ThreadGovernor

# On a machine that other work keeps busy, every core's thread would stall each operator (train/cpu_threads.py):
# the suite computes with the cores left free, decided once, and its subprocesses inherit the count.
if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(ThreadGovernor().start())


BROWSER_FIXTURES, SERVER_FIXTURES = {"browser", "loaded", "open_page"}, {"served", "app_url", "server"}


def pytest_collection_modifyitems(items):
    """Markers that follow from a test's fixtures: a browser test needs chromium (a system
    package) and the server; a test of the served app needs the server."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & BROWSER_FIXTURES:
            for marker in ("browser", "system", "server"):
                item.add_marker(marker)
        elif fixtures & SERVER_FIXTURES:
            item.add_marker("server")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(params=[("rtm", "stylegan2"), ("rtm", "imle"), ("mlp", "stylegan2"), ("mlp", "imle")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def any_generator(request) -> Generator:
    """A tiny generator of every mapper x decoder combination."""
    return Generator(tiny(*request.param)).eval()


@pytest.fixture
def rtm() -> Generator:
    return Generator(tiny("rtm")).eval()


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> str:
    """A prepared dataset of 16x16 digits (scikit-learn's, offline), for training tests."""
    from train.data import prepare_digits

    return str(prepare_digits(16, tmp_path_factory.mktemp("data") / "digits-16"))


@pytest.fixture(scope="session")
def few_digits(tmp_path_factory) -> str:
    """120 of the digits: a few-shot set, like the emoji subsets, for evaluating during training."""
    from train.data import prepare_digits

    return str(prepare_digits(16, tmp_path_factory.mktemp("data") / "digits-16-120", limit=120))


class PixelFeatures:
    """A cheap, deterministic feature map (a fixed random projection of the pixels) in place of
    EfficientNet-Lite0, for tests of the plumbing around the metrics (the metrics themselves are
    checked against reference implementations in test_metrics.py)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1)
        proj = torch.randn(flat.shape[1], 32, generator=torch.Generator().manual_seed(0))
        return flat @ proj


@pytest.fixture
def pixel_features(monkeypatch):
    """Evaluation during training uses PixelFeatures: seconds instead of a minute per evaluation."""
    import train.evaluation

    monkeypatch.setattr(train.evaluation, "EfficientNetLite0Features", PixelFeatures)


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    """A folder of two tiny checkpoints (tiny-rtm, trained "5 steps", and tiny-mlp) and one
    folder that is not a checkpoint: what the app's service tests open."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    save_checkpoint(Generator(tiny("rtm")), root / "tiny-rtm", meta={"step": 5, "data": "none"})
    save_checkpoint(Generator(tiny("mlp")), root / "tiny-mlp")
    (root / "not-a-checkpoint").mkdir()
    return root


# The browser tests' fixtures: the app on tiny checkpoints in this process, one headless Chromium
# per module, and a fresh page that fails its test on any page or console error.
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.app_server import launch, make_checkpoints

    demo, url = launch(make_checkpoints(tmp_path_factory.mktemp("ckpts")))
    yield demo, url
    demo.close()


@pytest.fixture(scope="module")
def app_url(served):
    return served[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from bench.browser import launch_browser

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture
def loaded(browser, app_url):
    from bench.browser import cold_load

    load = cold_load(browser, app_url)
    load["page"].requests = []
    load["page"].on("request", lambda r: load["page"].requests.append(r.url))
    yield load
    assert load["errors"] == [], load["errors"]
    load["context"].close()


@pytest.fixture
def open_page(browser, app_url):
    """open_page(query="", **cold_load options) as a context manager: a fresh page of the app at
    app_url + query, closed after, and the test fails on any page or console error it saw."""
    import contextlib

    from bench.browser import cold_load

    @contextlib.contextmanager
    def opened(query: str = "", **options):
        load = cold_load(browser, app_url + query, **options)
        try:
            yield load["page"]
        finally:
            load["context"].close()
        assert load["errors"] == [], load["errors"]
    return opened
