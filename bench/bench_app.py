"""App benchmarks (not tests: they print figures, assert nothing).

    python -m bench.bench_app.py                          # the default checkpoint, about 3 minutes
    python -m bench.bench_app.py --checkpoint NAME

(a) Cold start: `python app.py` as a new process until the first page is served.
(b) A new seed's trajectory: server time (the service alone) and end to end through
    gradio_client, median over seeds never asked before.
(c) 20 concurrent clients asking for 5 new seeds each: successes, p50 and p95, and the
    server's peak memory; once with the micro-batcher (--max-batch 32, the default) and once
    without (--max-batch 1: one forward pass after another), each on a fresh server. With the
    batcher also through light urllib clients, since gradio_client's 20 threads share the two
    cores with the server: from twenty open pages (each has opened its session with the page's
    load call) clicking together, through the queue as the page goes
    (/gradio_api/call/trajectory and its event stream); the same with each session opened by
    its first request (an API client); and through /gradio_api/run/trajectory, which skips the
    queue. Each client keeps one session, as a page does.
(d) The payload of a new seed, and the checkpoint's assets (fetched once per page).
(e) In headless Chromium (what the user sees): first frame after a cold load (3 fresh
    contexts), input-to-paint while dragging the slider across 64 steps, play's steps/s,
    server requests while scrubbing, page errors.
(f) The grid in headless Chromium: 16 seeds at the trained H; the bytes it fetched (JSON and
    sprite), the time from the click to the grid on screen, and input-to-paint while dragging
    its slider.

Without the checkpoint under checkpoints/, a randomly initialised model of the app's
default configuration stands in (the cost does not depend on the weights).
Results go to bench/results/app.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from app.launcher import free_port
from bench.browser import CHROMIUM, percentile
from bench.common import write_results

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def wait_for(url: str, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def checkpoint_root(name: str) -> tuple[Path, str, str]:
    if (ROOT / "checkpoints" / name / "config.json").is_file():
        return ROOT / "checkpoints", name, "shipped"
    import torch

    from rtm_core import Generator, app_default, save_checkpoint

    root = Path(tempfile.mkdtemp(prefix="rtm-bench-"))
    torch.manual_seed(0)
    save_checkpoint(Generator(app_default()), root / "app-default-random")
    return root, "app-default-random", "random weights, app_default() 64x64"


def start_server(root: Path, name: str, port: int, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--checkpoints", str(root),
                             "--checkpoint", name, *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def concurrent_clients(port: int, pid: int, name: str, steps: int, first_seed: int, client: str = "gradio_client") -> dict:
    """20 clients at once, each asking for 5 seeds nobody asked for before, one after another.
    client "gradio_client" goes through Gradio's queue as the page does; "queue" takes the same
    path (POST /gradio_api/call/trajectory, then read its event stream) with urllib; "http"
    posts to /gradio_api/run/trajectory, which skips the queue; "page" is "queue" from twenty
    open pages: each has made the page's load call, which opens its session, before the twenty
    click together. The urllib clients are light: gradio_client's 20 threads cost enough CPU to
    slow the server they share two cores with. Each client keeps one session (its
    session_hash), as a page does: without one, Gradio builds a fresh session state for every
    request (~10-20 ms of CPU here); "queue" and "http" open theirs with their first request."""
    from gradio_client import Client

    base = f"http://127.0.0.1:{port}/gradio_api"

    def post(url: str, body: dict) -> dict:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as r:
            return json.loads(r.read())

    def ask_http(seed: int, session: str) -> dict:
        return post(f"{base}/run/trajectory", {"data": [name, seed, steps], "session_hash": session})["data"][0]

    def ask_queue(seed: int, session: str) -> dict:
        event = post(f"{base}/call/trajectory", {"data": [name, seed, steps], "session_hash": session})["event_id"]
        with urllib.request.urlopen(f"{base}/call/trajectory/{event}", timeout=120) as stream:
            kind = None
            for line in stream:
                line = line.decode().strip()
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    if kind == "error":
                        raise RuntimeError(line)
                    return json.loads(line[5:])[0]
        raise RuntimeError("the event stream ended without a result")

    def one_client(c: int) -> list[float]:
        if client == "gradio_client":
            predict = Client(f"http://127.0.0.1:{port}/", verbose=False).predict
            ask = lambda seed: predict(name, seed, steps, api_name="/trajectory")  # noqa: E731
        else:
            session, via = f"bench-{first_seed}-{c}", ask_http if client == "http" else ask_queue
            ask = lambda seed: via(seed, session)  # noqa: E731
        times = []
        for k in range(5):
            t = time.perf_counter()
            out = ask(first_seed + 100 * c + k)
            assert len(out["frames"]) == steps + 1
            times.append((time.perf_counter() - t) * 1e3)
        return times

    if client == "page":
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as r:
            dependencies = json.loads(r.read())["dependencies"]
        load = next(d for d in dependencies if any(t[1] == "load" for t in d["targets"]))

        def open_page(session: str) -> None:
            """What a page does as it loads: its load event (a plain visit's address has no view to
            restore), which opens its Gradio session."""
            post(f"{base}/run/predict", {"data": [""] * len(load["inputs"]), "fn_index": load["id"], "trigger_id": None,
                                         "session_hash": session})

        # Twenty pages opened, then twenty visitors clicking together: only the clicks are timed.
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(pool.map(open_page, [f"bench-{first_seed}-{c}" for c in range(20)]))
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(one_client, c) for c in range(20)]
        done = [f.result() for f in futures if f.exception() is None]
    latencies = [t for times in done for t in times]
    return {"clients": 20, "requests": 100, "succeeded": len(latencies), "p50_ms": percentile(latencies, 0.5),
            "p95_ms": percentile(latencies, 0.95), "server_peak_mb": peak_memory_mb(pid)}


def grid_in_browser(page, steps: int) -> dict:
    """(f): show the default grid (16 seeds) at `steps`, then drag its slider."""
    from bench.browser import drag_latency

    page.locator("#rtm-steps input").fill(str(steps))   # (e) left it at 64
    start = time.perf_counter()
    page.get_by_role("button", name="Show grid").click()
    page.wait_for_function("document.querySelector('#rtm-grid .rtm-groot').dataset.seeds === '16'", timeout=60_000)
    page.wait_for_function("""() => { const c = document.querySelector('#rtm-grid .rtm-gpic');
        return c && getComputedStyle(c).backgroundImage.includes('webp'); }""")
    shown_s = time.perf_counter() - start
    page.wait_for_timeout(1500)  # the map is drawn
    latency = drag_latency(page, "#rtm-grid .rtm-slider", passes=16)
    return {"seeds": 16, "shown_s": shown_s, "input_events": len(latency),
            "p50_ms": percentile(latency, 0.5), "p95_ms": percentile(latency, 0.95), "max_ms": max(latency)}


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="noto-faces-rtm-64")
    parser.add_argument("--cold-loads", type=int, default=3, help="fresh browser contexts opening the page in (e)")
    parser.add_argument("--out", default="bench/results/app.json")
    args = parser.parse_args()
    root, name, kind = checkpoint_root(args.checkpoint)
    results: dict = {"checkpoint": name, "weights": kind}
    print(f"app benchmarks on {name} ({kind})")

    # (a) cold start of a fresh process
    port = free_port()
    start = time.perf_counter()
    proc = start_server(root, name, port)
    try:
        wait_for(f"http://127.0.0.1:{port}/", 120)
        results["cold_start_s"] = time.perf_counter() - start
        print(f"  (a) cold start to first page: {results['cold_start_s']:.1f} s (target <= 15 s)")

        # (b) a new seed: server time and end to end
        from gradio_client import Client

        from app.inputs import grid_seeds
        from app.service import TrajectoryService

        service = TrajectoryService(root)
        service.trajectory(name, 0)  # load the model once
        server = []
        for seed in range(1000, 1020):
            t = time.perf_counter()
            service.payload(service.trajectory(name, seed))
            server.append((time.perf_counter() - t) * 1e3)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        steps = service.model(name).trained_steps
        client.predict(name, 1, steps, api_name="/trajectory")
        e2e = []
        for seed in range(2000, 2020):
            t = time.perf_counter()
            client.predict(name, seed, steps, api_name="/trajectory")
            e2e.append((time.perf_counter() - t) * 1e3)
        results["new_seed_server_ms"] = statistics.median(server)
        results["new_seed_end_to_end_ms"] = {"median": statistics.median(e2e), "p95": percentile(e2e, 0.95)}
        print(f"  (b) new seed, {steps} steps: server {results['new_seed_server_ms']:.0f} ms median; end to end "
              f"{statistics.median(e2e):.0f} ms median, p95 {percentile(e2e, 0.95):.0f} ms (target <= 300 ms)")

        # (c) 20 concurrent clients x 5 new seeds, with and without the micro-batcher
        results["concurrent"] = {"batched": concurrent_clients(port, proc.pid, name, steps, first_seed=10_000),
                                 "batched_open_pages": concurrent_clients(
                                     port, proc.pid, name, steps, first_seed=50_000, client="page"),
                                 "batched_queue_light_clients": concurrent_clients(
                                     port, proc.pid, name, steps, first_seed=40_000, client="queue"),
                                 "batched_http": concurrent_clients(port, proc.pid, name, steps, first_seed=30_000,
                                                                    client="http")}
        unbatched_port = free_port()
        unbatched = start_server(root, name, unbatched_port, "--max-batch", "1")
        try:
            wait_for(f"http://127.0.0.1:{unbatched_port}/", 120)
            results["concurrent"]["one_at_a_time"] = concurrent_clients(unbatched_port, unbatched.pid, name, steps,
                                                                        first_seed=20_000)
        finally:
            unbatched.terminate()
            unbatched.wait(timeout=30)
        for how, r in results["concurrent"].items():
            print(f"  (c) 20 clients x 5 seeds, {how.replace('_', ' ')}: {r['succeeded']}/100 succeeded, "
                  f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms (target <= 1500 ms); server peak memory "
                  f"{r['server_peak_mb']:.0f} MB")

        # (d) payload of a new seed at the trained H (the reference cloud is fetched once per checkpoint)

        payload = service.payload(service.trajectory(name, 3000, steps))
        results["payload_kb"] = len(json.dumps(payload)) / 1024
        results["assets_kb"] = service.model(name).assets_file.stat().st_size / 1024
        grid, sprite = service.grid_payload(service.trajectories(name, grid_seeds(0, 16), steps))
        # The targets at 64x64 allow for four times the pixels a frame has at 32x32.
        payload_target, grid_target = (40, 250) if grid["resolution"] <= 32 else (80, 600)
        results["grid_kb"] = {"json": len(json.dumps(grid)) / 1024, "sprite": sprite.stat().st_size / 1024}
        print(f"  (d) payload of a new seed at H = {steps}: {results['payload_kb']:.1f} KB (target <= {payload_target} KB); "
              f"the checkpoint's assets, once per page: {results['assets_kb']:.0f} KB")
        g = results["grid_kb"]
        print(f"  (d) a grid of 16 seeds at H = {steps}: {g['json'] + g['sprite']:.0f} KB ({g['json']:.0f} KB JSON + "
              f"{g['sprite']:.0f} KB WebP sprite; target <= {grid_target} KB)")

        # (e) in the browser: cold loads, dragging across 64 steps, play
        if CHROMIUM:
            from playwright.sync_api import sync_playwright

            from bench.browser import cold_load, drag_latency, launch_browser

            with sync_playwright() as p:
                browser = launch_browser(p)
                loads = [cold_load(browser, f"http://127.0.0.1:{port}/") for _ in range(args.cold_loads)]
                first = [load["first_frame_ms"] for load in loads]
                errors = [e for load in loads for e in load["errors"]]
                results["first_frame_ms"] = {"loads": first, "median": statistics.median(first), "max": max(first)}
                results["plotly_copies"] = max(len(load["plotly_loads"]) for load in loads)
                print(f"  (e) cold loads: first frame {', '.join(f'{t / 1000:.2f}' for t in first)} s after navigation "
                      f"(target <= 3 s); plotly.js copies {results['plotly_copies']}; page errors {len(errors)}")
                for load in loads[1:]:
                    load["context"].close()
                page = loads[0]["page"]
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                page.locator("#rtm-steps input").fill("64")
                page.get_by_role("button", name="Generate").click()
                page.wait_for_function("document.querySelector('#rtm-viewer .rtm-caption').textContent.includes('of 64')")
                page.wait_for_timeout(1500)  # the map and chart are drawn
                before = len(requests)
                latency = drag_latency(page, passes=4)
                results["scrub"] = {"input_events": len(latency), "p50_ms": percentile(latency, 0.5),
                                    "p95_ms": percentile(latency, 0.95), "max_ms": max(latency),
                                    "server_requests": len(requests) - before}
                print(f"  (e) dragging across 64 steps (4 passes, {len(latency)} input events): input to paint "
                      f"p50 {percentile(latency, 0.5):.1f} ms, p95 {percentile(latency, 0.95):.1f} ms (target <= 16 ms); "
                      f"{len(requests) - before} server requests")
                page.evaluate("""() => { window.__steps = []; new MutationObserver(() => window.__steps.push(performance.now()))
                    .observe(document.querySelector('#rtm-viewer .rtm-root'), {attributes: true, attributeFilter: ['data-step']}); }""")
                page.locator("#rtm-viewer .rtm-play").click()
                page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '64'", timeout=20_000)
                times = page.evaluate("window.__steps")
                rate = (len(times) - 1) / ((times[-1] - times[0]) / 1000)
                results["play_steps_per_s"] = rate
                print(f"  (e) play: {rate:.1f} steps/s over {len(times) - 1} steps (target 10)")
                results["grid"] = g = grid_in_browser(page, steps)
                print(f"  (f) grid of 16 seeds: on screen {g['shown_s']:.2f} s after the click; dragging its slider ({g['input_events']} input events): input to "
                      f"paint p50 {g['p50_ms']:.1f} ms, p95 {g['p95_ms']:.1f} ms (target <= 16 ms)")
                results["page_errors"] = errors + loads[0]["errors"][len(errors):]
                browser.close()
        else:
            print("  (e) skipped: Debian's chromium is not installed")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
