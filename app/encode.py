"""What the page receives, encoded: frames as data URIs (PNG, lossless WebP from 64 px), change
maps and masks as palette strips, the GIF export, and the files the page fetches by URL (the
map's assets, grid sprites, downloads), each named by its content's hash."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from rtm_core import to_pil
from rtm_core.projection import Projection

from .nearest import TrainingImages

WEBP_MAX_SIDE = 16383   # WebP's limit: a taller strip (the training images of a large set) stays PNG
ASSETS_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-assets"  # served to the page (app/static.py)
GRID_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-grids"      # the grid view's sprites, served likewise
GRID_KEEP, GRID_MAX_AGE_S = 256, 3600


def write_assets(projection: Projection, training_images: Optional[TrainingImages], start_frame: Optional[str] = None,
                 limit: int = 3000) -> Path:
    """What every seed of a checkpoint shares, as one JSON file named by its content: the map's
    reference points (x, y, step; at most `limit`, evenly thinned), the training images as one
    PNG strip (N*R x R), and the picture every seed starts from where they share one (a data
    URI). The page fetches it once per checkpoint and keeps it."""
    keep = np.linspace(0, len(projection.ref_xy) - 1, min(limit, len(projection.ref_xy))).astype(int)
    assets: dict[str, Any] = {"reference": {"x": projection.ref_xy[keep, 0].round(3).tolist(),
                                            "y": projection.ref_xy[keep, 1].round(3).tolist(),
                                            "step": projection.ref_steps[keep].tolist()},
                              "training_images": None, "training_count": 0, "start_frame": start_frame}
    if training_images is not None and len(training_images.images):
        images = training_images.images
        assets["training_images"] = image_data_uri(images.reshape(-1, *images.shape[2:]))
        assets["training_count"] = len(images)
    return write_by_hash(ASSETS_DIR, json.dumps(assets).encode(), ".json")


def grid_sprite(frames: np.ndarray) -> Path:
    """Many seeds' frames (S+1, N, R, R, C) as one lossless WebP under GRID_DIR: a row per step, a
    column per seed. A file the page fetches: base64 in the JSON would be a third larger. Effort
    3: a higher effort takes up to a hundred times longer for a few per cent fewer bytes."""
    sprite = frames.transpose(0, 2, 1, 3, 4).reshape(frames.shape[0] * frames.shape[2], -1, frames.shape[-1])
    buffer = io.BytesIO()
    to_pil(sprite).save(buffer, format="WEBP", lossless=True, quality=50, method=3)
    prune(GRID_DIR, "*.webp", GRID_KEEP, GRID_MAX_AGE_S)
    return write_by_hash(GRID_DIR, buffer.getvalue(), ".webp")


def write_by_hash(folder: Path, body: bytes, suffix: str) -> Path:
    """folder/HASH.suffix holding `body`, named by its content (24 hex digits of its SHA-256):
    written once, atomically, so a page never fetches half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(body).hexdigest()[:24]}{suffix}"
    if not path.is_file():
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
    return path


def prune(folder: Path, pattern: str, keep: int, max_age_s: float) -> None:
    """Delete all but the newest `keep` files matching `pattern`, and any older than max_age_s:
    downloads and grid sprites are fetched soon after they are made, never kept."""
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for k, path in enumerate(files):
        if k >= keep or now - path.stat().st_mtime > max_age_s:
            path.unlink(missing_ok=True)


# A dark-to-bright colour map (black, purple, orange, yellow) for change maps, as a PNG palette.
_STOPS = np.array([[0, 0, 0], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
CHANGE_PALETTE = np.stack([np.interp(np.linspace(0, len(_STOPS) - 1, 256), np.arange(len(_STOPS)), _STOPS[:, c])
                           for c in range(3)], axis=1).round().astype(np.uint8)


def change_strip(change: np.ndarray, peak: float) -> Optional[str]:
    """(S, R, R) change maps -> one PNG data URI, the maps stacked top to bottom (S*R x R) and
    scaled so that `peak` is the brightest colour (square-root scale): one small palette image
    for all steps."""
    if len(change) == 0:
        return None
    # 16 levels: enough to see where the image changes, and the PNG stays small (payload <= 40 KB).
    # On a square-root scale: most steps change a few levels where the first changes 100, and a
    # linear scale showed them black; here a quarter of the peak is half as bright.
    # A 16-entry palette (the colour map's every 17th colour) stored at 4 bits per pixel: 15 %
    # fewer bytes than 8-bit indices into all 256 colours, for the same pixels.
    levels = np.clip(np.round(np.sqrt(np.clip(change, 0, None) / max(peak, 1e-6)) * 15), 0, 15).astype(np.uint8)
    rows = levels.reshape(-1, levels.shape[-1])
    image = Image.frombytes("P", (rows.shape[1], rows.shape[0]), rows.tobytes())
    image.putpalette(CHANGE_PALETTE[::17].tobytes())
    return _data_uri(image, bits=4)


# Cyan: the one hue the face emoji do not use (red hid red and orange faces under the mask).
MASK_RGB = (0, 229, 255)


def mask_strip(differs: np.ndarray) -> str:
    """(S+1, R, R) bool -> one PNG data URI, the masks stacked top to bottom: cyan where True,
    transparent elsewhere, to lay over the frame."""
    rows = differs.reshape(-1, differs.shape[-1]).astype(np.uint8)
    image = Image.frombytes("P", (rows.shape[1], rows.shape[0]), rows.tobytes())
    image.putpalette([0, 0, 0, *MASK_RGB])
    image.info["transparency"] = 0
    return _data_uri(image)


def _data_uri(image: Image.Image, bits: int = 8) -> str:
    # Small images: PNG at zlib's fastest level (a higher one costs more time per new seed than
    # the bytes it saves). From 64x64 on, a colour image is lossless WebP, smaller and faster than
    # PNG at any level, which keeps a 64x64 payload under 80 KB (docs/BENCHMARKS.md, the 64x64
    # explorer); quality 25 is the encoder's effort (still lossless). Palette strips stay PNG.
    buffer = io.BytesIO()
    if image.mode == "RGB" and min(image.size) >= 64 and max(image.size) <= WEBP_MAX_SIDE:
        image.save(buffer, format="WEBP", lossless=True, quality=25, method=1)
        return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode()
    image.save(buffer, format="PNG", compress_level=6 if min(image.size) >= 64 else 1, bits=bits)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_data_uri(frame: np.ndarray) -> str:
    return _data_uri(to_pil(frame))


def label_step(image: Image.Image, step: int, steps: int) -> Image.Image:
    """'step k/n' in the bottom-left corner, dark on a white box: readable on any emoji. The
    bundled scalable font at 1/14 of the frame (18 px in a 256 px GIF; PIL's bitmap default is
    ~8 px), and the box from the font's full height, so every frame's box is the same size."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(12, image.height // 14))
    draw, text, pad = ImageDraw.Draw(image), f"step {step}/{steps}", max(3, image.height // 64)
    ascent, descent = font.getmetrics()
    width = draw.textlength(f"step {steps}/{steps}", font=font)     # the widest label: one box size throughout
    top = image.height - pad - (ascent + descent) - 2 * pad
    draw.rectangle((pad, top, pad + width + 2 * pad, image.height - pad), fill="white")
    draw.text((2 * pad, top + pad), text, font=font, fill=(40, 40, 40))
    return image


def plural(count: int, word: str) -> str:
    """'1 step', '8 steps'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def gif_bytes(frames: np.ndarray, size: int = 256, frame_ms: int = 100) -> bytes:
    """A refinement's frames (S+1, R, R, C) as an animated GIF (each step `frame_ms`, the last held
    for a second), every frame labelled with its step."""
    frames = [label_step(to_pil(f).resize((size, size), Image.Resampling.NEAREST).convert("RGB"), k, len(frames) - 1)
              for k, f in enumerate(frames)]
    buffer = io.BytesIO()
    durations = [frame_ms] * (len(frames) - 1) + [1000]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return buffer.getvalue()
