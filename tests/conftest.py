import os

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rtm_core import Generator, tiny


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
