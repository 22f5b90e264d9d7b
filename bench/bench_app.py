"""App benchmarks (not tests: they print figures, assert nothing).

    python bench/bench_app.py                          # the default checkpoint, about 2 minutes
    python bench/bench_app.py --checkpoint NAME

(a) Cold start: `python app.py` as a new process until the first page is served.
(b) A new seed's trajectory: server time (the service alone) and end to end through
    gradio_client, median over seeds never asked before.
(c) 20 concurrent clients asking for 5 new seeds each: successes, p50 and p95.
(d) Scrubbing in headless Chromium: server requests while the slider moves 50 times.

Without the checkpoint under checkpoints/, a randomly initialised model of the app's
default configuration stands in (the cost does not depend on the weights).
Results go to bench/results/app.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_results  # noqa: E402
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.app_server import free_port  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="noto-faces-rtm")
    parser.add_argument("--out", default="bench/results/app.json")
    args = parser.parse_args()
    root, name, kind = checkpoint_root(args.checkpoint)
    results: dict = {"checkpoint": name, "weights": kind}
    print(f"app benchmarks on {name} ({kind})")

    # (a) cold start of a fresh process
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--checkpoints", str(root),
                             "--checkpoint", name], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/", 120)
        results["cold_start_s"] = time.perf_counter() - start
        print(f"  (a) cold start to first page: {results['cold_start_s']:.1f} s (target <= 15 s)")

        # (b) a new seed: server time and end to end
        from gradio_client import Client

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

        # (c) 20 concurrent clients x 5 new seeds
        def one_client(c: int) -> list[float]:
            cl = Client(f"http://127.0.0.1:{port}/", verbose=False)
            times = []
            for k in range(5):
                t = time.perf_counter()
                out = cl.predict(name, 10_000 + 100 * c + k, steps, api_name="/trajectory")
                assert len(out["frames"]) == steps + 1
                times.append((time.perf_counter() - t) * 1e3)
            return times

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(one_client, c) for c in range(20)]
            done = [f.result() for f in futures if f.exception() is None]
        latencies = [t for times in done for t in times]
        results["concurrent"] = {"clients": 20, "requests": 100, "succeeded": len(latencies),
                                 "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95)}
        print(f"  (c) 20 clients x 5 seeds: {len(latencies)}/100 succeeded, p50 {percentile(latencies, 0.5):.0f} ms, "
              f"p95 {percentile(latencies, 0.95):.0f} ms")

        # (d) scrubbing in the browser
        chromium = shutil.which("chromium")
        if chromium:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync"])
                page = browser.new_page()
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#rtm-viewer .rtm-slider", timeout=60_000)
                page.wait_for_timeout(1000)
                before = len(requests)
                slider = page.locator("#rtm-viewer .rtm-slider")
                slider.focus()
                t = time.perf_counter()
                for k in range(50):
                    page.keyboard.press("ArrowLeft" if (k // steps) % 2 == 0 else "ArrowRight")
                scrub_ms = (time.perf_counter() - t) * 1e3 / 50
                results["scrub"] = {"moves": 50, "server_requests": len(requests) - before, "ms_per_move": scrub_ms}
                print(f"  (d) 50 slider moves: {len(requests) - before} server requests, {scrub_ms:.1f} ms per move "
                      f"(key press to frame, through Playwright)")
                browser.close()
        else:
            print("  (d) skipped: Debian's chromium is not installed")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
