"""The files the page fetches by URL, all under /rtm-static/ (app/http.py serves them; no URL
carries a server path): plotly.js from the installed package, the page's browser code bundled
into one script, each checkpoint's map assets, grid sprites and GIF downloads, the last three
named by their content's hash."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import plotly

from .encode import ASSETS_DIR, GRID_DIR, prune, write_by_hash
from .http import serve_static, static_url

ASSETS = Path(__file__).parent / "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"  # served locally: no CDN
GIF_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-gifs"
GIF_KEEP, GIF_MAX_AGE_S = 32, 3600   # exports are downloads: keep the newest few, for an hour
# The browser code of each kind of gr.HTML on the page: files of app/assets/, in order.
SCRIPTS = {"viewer": ("theme.js", "common.js", "explain.js", "map.js", "intervention.js", "viewer.js"),
           "grid": ("theme.js", "common.js", "grid.js"), "figures": ("figures.js",), "curves": ("theme.js", "curves.js")}
SCRIPT_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-scripts"
# One plotly.js for the whole page (the viewers and the metric curves share it), loaded by the
# viewer after its first frame is on screen. No gr.Plot: its own bundled copy would load beside
# it and race for window.Plotly.
PLOTLY_URL = static_url("plotly", PLOTLY_JS.name)

# Every file the page fetches by URL, in one place: route -> (folder, the names it may serve,
# content type). Files made at run time are named by their content's hash (24 hex digits).
HASHED = r"[0-9a-f]{24}"
STATIC_ROUTES = {"plotly": (PLOTLY_JS.parent, r"plotly\.min\.js", "text/javascript"),
                 "scripts": (SCRIPT_DIR, rf"{HASHED}\.js", "text/javascript"),
                 "assets": (ASSETS_DIR, rf"{HASHED}\.json", "application/json"),
                 "grids": (GRID_DIR, rf"{HASHED}\.webp", "image/webp"),
                 "gifs": (GIF_DIR, rf"{HASHED}\.gif", "image/gif")}


def serve_page_files() -> None:
    for route, (folder, names, content_type) in STATIC_ROUTES.items():
        serve_static(route, folder, names, content_type)


@functools.lru_cache(maxsize=1)
def page_script_url() -> str:
    """One file, named by its content, that defines window.rtmExplorer[kind](element, trigger,
    props, server, upload, watch) for every kind of SCRIPTS: its files' code as the body of a
    function of the names gr.HTML gives js_on_load, so it runs as it would inline. Served once
    per page (and cached) instead of riding in each component's config: Gradio copies every
    component's config into each new session and scans js_on_load on every attribute lookup
    it misses, ~10 ms of the server's time per new visitor with the code inline."""
    parts = ["window.rtmExplorer = window.rtmExplorer || {};"]
    for kind, files in SCRIPTS.items():
        body = "\n".join((ASSETS / name).read_text() for name in files)
        parts.append(f"window.rtmExplorer[{json.dumps(kind)}] = function (element, trigger, props, server, upload, "
                     f"watch) {{\n{body}\n}};")
    path = write_by_hash(SCRIPT_DIR, "\n".join(parts).encode(), ".js")
    return static_url("scripts", path.name)


def asset_url(path: Path) -> str:
    """A checkpoint's map assets (named by their content's hash), without the server's folder."""
    return static_url("assets", path.name)


def grid_url(path: Path) -> str:
    """A grid's sprite (named by its content's hash), without the server's folder."""
    return static_url("grids", path.name)


def gif_url(path: Path) -> str:
    return static_url("gifs", path.name)


def prune_gifs(folder: Path, keep: int = GIF_KEEP, max_age_s: float = GIF_MAX_AGE_S) -> None:
    prune(folder, "*.gif", keep, max_age_s)
