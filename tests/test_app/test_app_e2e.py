import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from app.static import prune_gifs
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


def test_no_response_carries_a_server_path_and_the_static_files_are_served(server):
    import tempfile

    calls = {"trajectory": ["tiny-rtm", 42, 3], "gif": ["tiny-rtm", 42, 3], "walk": ["tiny-rtm", 42, 7, 3],
             "grid": ["tiny-rtm", 0, 4, 3], "intervene": ["tiny-rtm", 42, 3, "swap", 1, 2, 7],
             "compare": ["tiny-mlp", 42, 2]}
    for api, data in calls.items():
        status, body = _post(server + f"gradio_api/run/{api}", json.dumps({"data": data}).encode())
        assert status == 200, (api, body)
        text = json.dumps(body)
        for folder in (tempfile.gettempdir(), str(Path(__file__).resolve().parents[2]), sys.prefix):
            assert folder not in text, (api, folder)
    status, body = _post(server + "gradio_api/run/trajectory", json.dumps({"data": ["tiny-rtm", 42, 3]}).encode())
    payload = body["data"][0]
    assert payload["plotly_url"] == "/rtm-static/plotly/plotly.min.js"
    for url, kind in ((payload["plotly_url"], "text/javascript"), (payload["assets_url"], "application/json")):
        with urllib.request.urlopen(server + url.lstrip("/"), timeout=30) as r:
            assert r.status == 200 and r.headers["content-type"] == kind and len(r.read()) > 1000
    for bad in ("rtm-static/assets/../../../etc/passwd", "rtm-static/assets/passwd", "rtm-static/nothing/x.js",
                "rtm-static/plotly/plotly.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server + bad, timeout=30)
        assert refused.value.code == 404


def test_the_page_config_carries_the_browser_code_by_reference_once(server):
    """The viewers' code and stylesheet are one script file and the page's css, not copies in
    every component's config (which Gradio copies into each new session)."""
    from app.static import SCRIPTS

    with urllib.request.urlopen(server + "config", timeout=30) as r:
        config = json.loads(r.read())
    html = [c["props"] for c in config["components"] if c.get("type") == "html" and c["props"].get("js_on_load")]
    assert len(html) >= 5
    heads = {props["head"] for props in html}
    assert len(heads) == 1 and all(len(props["js_on_load"]) < 200 and not props["css_template"] for props in html)
    url = heads.pop().split('src="')[1].split('"')[0]
    assert url.startswith("/rtm-static/scripts/") and url.endswith(".js")
    with urllib.request.urlopen(server + url.lstrip("/"), timeout=30) as r:
        assert r.headers["content-type"] == "text/javascript"
        script = r.read().decode()
    for kind in SCRIPTS:
        assert f'window.rtmExplorer["{kind}"] = function (element, trigger, props, server, upload, watch)' in script
    assert ".rtm-root" in config["css"]


def test_gif_endpoint(server):
    out = Client(server, verbose=False).predict("tiny-rtm", 1, 3, api_name="/gif")
    assert out["download"]["filename"] == "tiny-rtm-seed1-3steps.gif"
    assert out["download"]["url"].startswith("/rtm-static/gifs/") and out["items"][0]["src"] == out["download"]["url"]
    with urllib.request.urlopen(server + out["download"]["url"].lstrip("/"), timeout=30) as r:
        assert r.headers["content-type"] == "image/gif" and r.read(6) in (b"GIF89a", b"GIF87a")


@pytest.mark.parametrize("args,message", [
    (("tiny-rtm", 2**40, 3), "seed must be a whole number between 0 and 4294967295"),
    (("tiny-rtm", -1, 3), "seed must be a whole number between 0 and 4294967295"),
    (("tiny-rtm", 3.5, 3), r"got 3\.5 \(not a whole number\)"),          # never rounded to 4
    (("tiny-rtm", "abc", 3), "seed must be a whole number between 0 and 4294967295, got 'abc'"),
    (("tiny-rtm", 1, 0), r"steps must be a whole number between 1 and 64, got 0 \(out of range\)"),   # never clamped
    (("tiny-rtm", 1, 10_000), "steps must be a whole number between 1 and 64"),
    (("no-such-model", 1, 3), "unknown checkpoint 'no-such-model'; choose one of"),
])
def test_bad_input_is_an_error_and_the_server_keeps_serving(server, args, message):
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/trajectory")
    assert client.predict("tiny-rtm", 5, 3, api_name="/trajectory")["seed"] == 5


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_rest_api_answers_422_for_refused_input_and_logs_one_line(server, caplog):
    url = server + "gradio_api/run/trajectory"
    with caplog.at_level(logging.WARNING, logger="rtm_explorer"):
        status, body = _post(url, json.dumps({"data": ["tiny-rtm", 3.5, 3]}).encode())
    assert status == 422 and "not a whole number" in body["error"]
    refused = [r for r in caplog.records if r.name == "rtm_explorer"]
    assert len(refused) == 1 and "\n" not in refused[0].getMessage() and refused[0].exc_info is None
    status, body = _post(url, json.dumps({"data": ["tiny-rtm", 4, 3]}).encode())
    assert status == 200 and body["data"][0]["seed"] == 4


def test_huge_bodies_and_names_are_capped_before_anything_reads_them(server, caplog):
    url = server + "gradio_api/run/trajectory"
    status, body = _post(url, b'{"data": ["' + b"x" * 2_000_000 + b'", 1, 3]}')
    assert status == 413 and "at most" in body["error"]
    with caplog.at_level(logging.WARNING, logger="rtm_explorer"):
        status, body = _post(url, json.dumps({"data": ["n" * 50_000, 1, 3]}).encode())
    assert status == 422 and "50,000 characters long" in body["error"] and len(body["error"]) < 400
    assert all(len(r.getMessage()) < 500 for r in caplog.records)


@pytest.mark.parametrize("route", ["run", "call"])
def test_a_call_with_the_wrong_number_of_inputs_is_a_422_with_one_short_log_line(server, caplog, route):
    url = server + f"gradio_api/{route}/trajectory"
    with caplog.at_level(logging.INFO):
        status, body = _post(url, json.dumps({"data": ["x" * 60_000]}).encode())
    assert status == 422 and body["error"].startswith('"trajectory" takes 3 inputs') and "got 1 values" in body["error"]
    assert all(len(r.getMessage()) < 300 and r.exc_info is None for r in caplog.records)
    assert sum(r.name == "rtm_explorer" for r in caplog.records) == 1
    for bad in (b"[1, 2]", b"not json", json.dumps({"data": {"seed": 1}}).encode()):
        assert _post(url, bad)[0] == 422
    status, _ = _post(url, json.dumps({"data": ["tiny-rtm", 4, 3]}).encode())
    assert status == 200                                               # and the server still serves


def test_a_chunked_upload_over_the_cap_is_a_413_like_a_declared_one(server):
    import http.client
    from urllib.parse import urlparse

    where = urlparse(server)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    chunks = (b"x" * 65_536 for _ in range(32))                      # 2 MB, no Content-Length
    connection.request("POST", "/gradio_api/run/trajectory", body=chunks, encode_chunked=True,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 413 and "at most" in json.loads(response.read())["error"]
    connection.close()


def test_gif_exports_are_pruned(tmp_path):
    for k in range(40):
        (tmp_path / f"{k}.gif").write_bytes(b"GIF89a")
        os.utime(tmp_path / f"{k}.gif", (1e9 + k, 1e9 + k) if k < 5 else None)   # 5 are decades old
    prune_gifs(tmp_path, keep=32, max_age_s=3600)
    left = {p.name for p in tmp_path.glob("*.gif")}
    assert len(left) == 32 and not left & {f"{k}.gif" for k in range(8)}


def test_seed_walk_endpoint(server):
    items = Client(server, verbose=False).predict("tiny-rtm", 1, 9, 4, api_name="/walk")["items"]
    assert len(items) == 4 and items[0]["caption"] == "seed 1" and items[-1]["caption"] == "seed 9"
    assert all(item["src"].startswith("data:image/png;base64,") for item in items)


def test_app_cli_names_the_valid_checkpoints_from_any_folder(tmp_path):
    """From another folder: checkpoints resolve next to app.py, and a wrong name lists the right ones."""
    app = Path(__file__).resolve().parents[2] / "app.py"
    done = subprocess.run([sys.executable, str(app), "--checkpoint", "nope"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "'nope' is not under" in done.stderr and "noto-faces-rtm" in done.stderr
    helped = subprocess.run([sys.executable, str(app), "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert helped.returncode == 0 and "--checkpoints" in helped.stdout and "folder of the shipped checkpoint folders" in helped.stdout


def heavy_imports_after_help(setup: str, heavy: tuple[str, ...]) -> subprocess.CompletedProcess:
    """In a fresh interpreter: run `setup` (which defines `helps`, callables taking argv), call each
    with ['--help'], and print which of the `heavy` modules got imported."""
    code = ("import sys, contextlib, io\n" + setup +
            "for parse in helps:\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        parse(['--help'])\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])


def test_help_needs_neither_torch_nor_gradio():
    """--help answers before the heavy imports (app.launcher and train.train read their flags first)."""
    done = heavy_imports_after_help("from app.launcher import parse_args\nfrom train.train import parse_args as train_args\n"
                                    "helps = (parse_args, train_args)\n", ("torch", "gradio", "numpy"))
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_every_tools_help_answers_without_torch():
    """rtm-evaluate, rtm-prepare-data, train.ship and app.projection import torch (and the feature
    networks) only once their flags are read: --help is a fraction of a second, not 3-5 s."""
    done = heavy_imports_after_help("import importlib\nhelps = [importlib.import_module(name).main for name in "
                                    "('train.evaluate', 'train.data', 'train.ship', 'app.projection', 'app.prepare')]\n",
                                    ("torch", "gradio", "umap"))
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_usage_names_the_entry_point_it_was_run_as():
    done = subprocess.run(["rtm-evaluate", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: rtm-evaluate ")
    done = subprocess.run([sys.executable, "-m", "train.train", "--help"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.startswith("usage: python -m train.train ")
    done = subprocess.run(["rtm-explorer", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: rtm-explorer ")


def test_the_apps_flags_are_never_abbreviated():
    from app.launcher import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--checkpoint", "noto-faces-rtm", "--max-b", "4"])   # not --max-batch


def test_concurrent_clients(server):
    def one(i):
        return Client(server, verbose=False).predict("tiny-rtm", i, 3, api_name="/trajectory")["seed"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(one, range(16))) == list(range(16))


@pytest.mark.parametrize("name", ["trajectorx", "false", "false_8", "n" * 30_000])
@pytest.mark.parametrize("route", ["run", "call"])
def test_only_the_documented_endpoints_answer_and_an_unknown_name_is_a_404_with_one_short_line(server, caplog,
                                                                                               route, name):
    """An internal handler (Gradio 6 names them false, false_1, ...) or a typo is a 404 that
    lists the real endpoints; the name is cut before it is logged, and no traceback is logged."""
    with caplog.at_level(logging.INFO):
        status, body = _post(server + f"gradio_api/{route}/{name}", json.dumps({"data": ["tiny-rtm", 1, 3]}).encode())
    assert status == 404 and body["error"].startswith("no API endpoint named") and len(body["error"]) < 300
    assert "trajectory, " in body["error"] and "false" not in body["error"].split(";")[1]
    assert all(len(r.getMessage()) < 300 and r.exc_info is None for r in caplog.records)
    assert sum(r.name == "rtm_explorer" for r in caplog.records) == 1
    if route == "call":                                   # polling a result by name is refused the same way
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server + f"gradio_api/call/{name[:100]}/abc", timeout=30)
        assert refused.value.code == 404


@pytest.mark.parametrize("method, route, body, status", [
    ("GET", "gradio_api/call/trajectory/not-an-event-id", None, 404),
    ("GET", "gradio_api/queue/data?session_hash=zzz", None, 404),
    ("POST", "gradio_api/queue/join", {"data": [], "fn_index": 999, "session_hash": "abc"}, 422),
    ("POST", "gradio_api/run/predict", {"data": [], "fn_index": 999, "session_hash": "abc"}, 422),
    ("POST", "gradio_api/queue/join", {"data": [], "fn_index": "x" * 5000, "session_hash": "abc"}, 422),
    ("POST", "gradio_api/run/predict", {"data": [], "fn_index": 0, "session_hash": "abc"}, 422),
])
def test_gradios_own_routes_refuse_unknown_ids_with_one_short_line_not_a_traceback(server, caplog, method, route,
                                                                                  body, status):
    request = urllib.request.Request(server + route, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    with caplog.at_level(logging.INFO), pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == status and len(json.loads(refused.value.read())["error"]) < 200
    assert all(len(r.getMessage()) < 300 and r.exc_info is None for r in caplog.records)
    assert sum(r.name == "rtm_explorer" for r in caplog.records) == 1
    assert sum(len(r.getMessage()) for r in caplog.records) < 600          # the log grew by a line, not a page
    assert _post(server + "gradio_api/run/trajectory", json.dumps({"data": ["tiny-rtm", 4, 3]}).encode())[0] == 200


def test_a_result_is_read_by_its_event_id_whatever_session_the_client_named(server):
    event = _post(server + "gradio_api/call/trajectory", json.dumps({"data": ["tiny-rtm", 11, 3],
                                                                     "session_hash": "my-own-session"}).encode())[1]
    with urllib.request.urlopen(server + f"gradio_api/call/trajectory/{event['event_id']}", timeout=30) as stream:
        assert b"event: complete" in stream.read()


def test_the_api_types_whole_numbers_as_integers_and_answers_beyond(server):
    info = json.loads(urllib.request.urlopen(server + "gradio_api/info", timeout=30).read())["named_endpoints"]
    for name in ("/trajectory", "/compare", "/grid", "/intervene", "/gif", "/walk", "/beyond"):
        types = {p["parameter_name"]: p["type"].get("type") for p in info[name]["parameters"]}
        assert all(t == "integer" for k, t in types.items() if k != "name" and k != "kind"), (name, types)
    overlay = Client(server, verbose=False).predict("tiny-rtm", 42, 3, api_name="/beyond")
    assert overlay["from_step"] == 3 and len(overlay["xy"]) == 62 and overlay["summary"].startswith("Run on from step 3")
    status, body = _post(server + "gradio_api/run/beyond", json.dumps({"data": ["tiny-rtm", 42, 64]}).encode())
    assert status == 422 and "already runs 64 steps" in body["error"]


def test_the_page_is_served_compressed(server):
    request = urllib.request.Request(server, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as r:
        body = r.read()
        assert r.headers["Content-Encoding"] == "gzip"
    import gzip

    assert b"<html" in gzip.decompress(body).lower()


def test_an_empty_steps_box_is_an_error_that_says_so_not_a_silent_default(server):
    status, body = _post(server + "gradio_api/run/trajectory", json.dumps({"data": ["tiny-rtm", 4, None]}).encode())
    assert status == 422 and "steps box is empty" in body["error"]


def test_one_step_is_one_step_and_the_gif_labels_are_readable():
    import numpy as np
    from PIL import Image

    from app.encode import label_step, plural

    assert (plural(1, "step"), plural(8, "step")) == ("1 step", "8 steps")
    tall = []
    for k in (0, 8):
        image = np.asarray(label_step(Image.new("RGB", (256, 256), (200, 100, 50)), k, 8))
        rows = np.flatnonzero((image == 255).all(-1).any(1))           # the white label box
        tall.append((rows.min(), rows.max()))
    assert tall[0] == tall[1] and tall[0][1] - tall[0][0] >= 20        # one box size, text ~18 px high
