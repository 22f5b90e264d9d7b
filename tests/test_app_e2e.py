import concurrent.futures

import pytest
from gradio_client import Client

from tests.app_server import launch, make_checkpoints


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    demo, url = launch(make_checkpoints(tmp_path_factory.mktemp("ckpts")))
    yield url
    demo.close()


def test_trajectory_endpoint_returns_frames_and_coordinates(server):
    client = Client(server, verbose=False)
    payload = client.predict("tiny-rtm", 42, 6, api_name="/trajectory")
    assert payload["seed"] == 42 and payload["num_steps"] == 6 and payload["trained_steps"] == 3
    assert len(payload["frames"]) == 7 and len(payload["xy"]) == 7 and len(payload["displacement"]) == 6
    compare = client.predict("tiny-mlp", 42, 2, api_name="/compare")
    assert compare["mapper"] == "mlp" and len(compare["frames"]) == 3


def test_gif_endpoint(server):
    path = Client(server, verbose=False).predict("tiny-rtm", 1, 3, api_name="/gif")
    assert open(path, "rb").read(6) in (b"GIF89a", b"GIF87a")


@pytest.mark.parametrize("args,message", [
    (("tiny-rtm", 2**40, 3), "greater than maximum value 4294967295"),
    (("tiny-rtm", -1, 3), "less than minimum value 0"),
    (("tiny-rtm", "abc", 3), "Expected a `float"),
    (("tiny-rtm", 1, 0), "less than minimum value 1"),
    (("tiny-rtm", 1, 10_000), "greater than maximum value 64"),
    (("no-such-model", 1, 3), "not in the list of choices"),
])
def test_bad_input_is_an_error_and_the_server_keeps_serving(server, args, message):
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/trajectory")
    assert client.predict("tiny-rtm", 5, 3, api_name="/trajectory")["seed"] == 5


def test_concurrent_clients(server):
    def one(i):
        return Client(server, verbose=False).predict("tiny-rtm", i, 3, api_name="/trajectory")["seed"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(one, range(16))) == list(range(16))
