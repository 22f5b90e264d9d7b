"""Take the README's screenshot: start the app, generate a seed in headless Chromium, save a PNG.

    python scripts/screenshot_app.py --out docs/app.png [--seed 42] [--step 3]
    python scripts/screenshot_app.py --out docs/grid.png --grid 0 [--step 4]    # the grid of 16 seeds from seed 0
    python scripts/screenshot_app.py --out docs/intervention.png --seed 42 --intervene knockout:3:2   # kind:token:step
    python scripts/screenshot_app.py --out /tmp/phone.png --checkpoint noto-faces-rtm-64 --theme dark --viewport 390x844
"""

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # bench/ is the repository's, not installed: `python scripts/...` from anywhere

from app.launcher import free_port  # noqa: E402
from bench.browser import launch_browser  # noqa: E402
from train.cli import positional_out  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("old_out", nargs="?", help=argparse.SUPPRESS)   # OUT as a positional, until the next release
    parser.add_argument("--out", help="the PNG to write")
    parser.add_argument("--seed", default="42")
    parser.add_argument("--step", type=int, default=None, help="step to show (default: the last)")
    parser.add_argument("--grid", default=None, help="take the grid of 16 seeds from this one instead of the viewer")
    parser.add_argument("--checkpoint", default=None, help="the checkpoint shown first (default: the app's)")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    parser.add_argument("--viewport", type=viewport, default=(1280, 1000), help="WIDTHxHEIGHT in CSS pixels, "
                        "e.g. 390x844 for a phone; the viewer's shot is the page's top WIDTH x (HEIGHT - 60)")
    parser.add_argument("--intervene", default=None, help="KIND:TOKEN:STEP[:DONOR]: the seed and its intervention, side by side")
    args = parser.parse_args()
    args.out = positional_out(parser, args.out, args.old_out)
    from playwright.sync_api import sync_playwright

    port = free_port()
    checkpoint = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *checkpoint], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = launch_browser(p)
            width, height = args.viewport
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"http://127.0.0.1:{port}/?__theme={args.theme}")
            page.wait_for_selector("#rtm-viewer .rtm-frame", timeout=60_000)
            if args.grid is not None:
                grid_shot(page, args)
            elif args.intervene is not None:
                intervention_shot(page, args)
            else:
                viewer_shot(page, args)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {args.out}")


def viewport(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit() and 200 <= int(width) <= 4000 and 200 <= int(height) <= 4000):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in CSS pixels (200-4000 each), e.g. 390x844")
    return int(width), int(height)


def viewer_shot(page, args) -> None:
    page.locator("#rtm-seed input").fill(args.seed)
    page.locator("#rtm-generate").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-map .main-svg') !== null", timeout=60_000)
    page.wait_for_timeout(1000)
    if args.step is not None:
        page.locator(f"#rtm-viewer .rtm-thumb[data-step='{args.step}']").click()
        page.wait_for_timeout(300)
    width, height = args.viewport
    page.screenshot(path=args.out, clip={"x": 0, "y": 0, "width": width, "height": height - 60})


def intervention_shot(page, args) -> None:
    kind, token, step, *donor = args.intervene.split(":")
    page.locator("#rtm-seed input").fill(args.seed)
    page.locator("#rtm-generate").click()
    page.wait_for_function(f"document.querySelector('#rtm-viewer .rtm-root').dataset.seed === '{args.seed}'")
    page.locator("#rtm-int-kind input").fill(kind)
    page.keyboard.press("Enter")
    page.locator("#rtm-int-token input").fill(token)
    page.locator("#rtm-int-step input").fill(step)
    if donor:
        page.locator("#rtm-int-donor input").fill(donor[0])
    page.get_by_role("button", name="Intervene").click()
    page.wait_for_function("document.querySelector('#rtm-viewer-b .rtm-map .main-svg') !== null", timeout=60_000)
    page.wait_for_timeout(1500)
    page.locator("#rtm-viewers").screenshot(path=args.out)


def grid_shot(page, args) -> None:
    page.get_by_role("button", name="Show grid").scroll_into_view_if_needed()
    page.locator("label:has-text('first seed') input").fill(args.grid)
    page.get_by_role("button", name="Show grid").click()
    page.wait_for_function("document.querySelector('#rtm-grid .rtm-map .main-svg') !== null", timeout=60_000)
    page.wait_for_timeout(1500)
    if args.step is not None:
        for _ in range(int(page.get_attribute("#rtm-grid .rtm-groot", "data-step")) - args.step):
            page.locator("#rtm-grid .rtm-prev").click()
        page.wait_for_timeout(300)
    page.locator("#rtm-grid").screenshot(path=args.out)


if __name__ == "__main__":
    main()
