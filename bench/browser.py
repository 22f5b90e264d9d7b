"""What the user sees, measured in the real browser (Debian's chromium through Playwright).

Used by bench/bench_app.py (figures) and tests/test_app/test_app_browser.py (guarantees):
- `cold_load`: a fresh browser context (empty cache) opens the page; returns when the viewer
  marks its first frame painted (performance mark "rtm-first-frame", ms after navigation),
  with the page errors, console errors and plotly.js copies seen on the way.
- `drag_latency`: drags the slider across every step and back; for each `input` event the
  time from the event to the first task after the next paint (requestAnimationFrame, then a
  message: the classic input-to-paint probe).
"""

from __future__ import annotations

import shutil

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
CHROMIUM = shutil.which("chromium")


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def watch_errors(page) -> list[str]:
    """Page errors and console errors, as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    return errors


def cold_load(browser, url: str, viewport=(1280, 1100), timeout_ms: int = 60_000, motion: str = "reduce") -> dict:
    """A fresh context opens the page. motion="reduce" (prefers-reduced-motion) keeps the viewer
    from playing the first seed on load, so that measurements and tests start from a still page."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, reduced_motion=motion)
    page = context.new_page()
    errors = watch_errors(page)
    scripts: list[str] = []
    page.on("response", lambda r: scripts.append(r.url) if "plotly" in r.url.lower() else None)
    page.goto(url)
    page.wait_for_function("performance.getEntriesByName('rtm-first-frame').length > 0", timeout=timeout_ms)
    first_frame_ms = page.evaluate("performance.getEntriesByName('rtm-first-frame')[0].startTime")
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-map .main-svg') !== null", timeout=timeout_ms)
    return {"page": page, "context": context, "errors": errors, "first_frame_ms": first_frame_ms,
            "plotly_loads": scripts}


PROBE = """(selector) => {
  window.__lat = [];
  const slider = document.querySelector(selector);
  slider.addEventListener('input', (e) => {
    const t0 = e.timeStamp;
    requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => window.__lat.push(performance.now() - t0);
      ch.port2.postMessage(0);
    });
  });
}"""


def drag_latency(page, selector: str = "#rtm-viewer .rtm-slider", passes: int = 2) -> list[float]:
    """Drag the slider thumb from one end to the other `passes` times, one mouse move per
    step; returns the input-to-paint time of every input event, in ms."""
    page.evaluate(PROBE, selector)
    slider = page.locator(selector)
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    n = int(slider.get_attribute("max"))
    y = box["y"] + box["height"] / 2
    xs = [box["x"] + 8 + (box["width"] - 16) * k / n for k in range(n + 1)]
    page.mouse.move(xs[-1], y)
    page.mouse.down()
    for p in range(passes):
        for x in (xs[::-1] if p % 2 == 0 else xs):
            page.mouse.move(x, y)
    page.mouse.up()
    page.wait_for_timeout(200)
    return page.evaluate("window.__lat")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]
