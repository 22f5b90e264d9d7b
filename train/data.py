"""Datasets: prepare images once into a uint8 array, then train from memory.

A prepared dataset is a folder with
    images.npy       uint8 (N, R, R, C): every image, square, at one resolution
    manifest.json    where they came from: source, licence, resolution, one entry per image

Preparers (each also a CLI command):

    python -m train.data folder      --src my_photos/ --resolution 64 --out data/photos-64
    python -m train.data noto-emoji  --resolution 64 --out data/noto-emoji-64 [--subset faces]
    python -m train.data fluent-emoji --resolution 32 --out data/fluent-animals-32 --subset animals
    python -m train.data fashion-mnist --resolution 32 --out data/fashion-32
    python -m train.data digits      --resolution 16 --out data/digits-16   (scikit-learn's, for tests)

Noto Color Emoji comes from Debian's `fonts-noto-color-emoji`, Fashion-MNIST from
`dataset-fashion-mnist`, and Fluent Emoji from the npm package `fluentui-emoji`
(scripts/install_system_deps.sh installs all three); nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from rtm_core.atomic import write_files_atomically

from .cli import program_name

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
NOTO_EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
# npm package `fluentui-emoji` (MIT): Microsoft's Fluent Emoji as SVGs; scripts/install_system_deps.sh puts it here.
FLUENT_EMOJI_DIR = Path(os.environ.get("RTM_SOURCES", Path.home() / ".cache" / "rtm-explorer")) / "node_modules" / "fluentui-emoji"
FLUENT_STYLES = ("flat", "modern", "high-contrast")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGES_FILE, MANIFEST_FILE = "images.npy", "manifest.json"


@dataclass(frozen=True)
class PreparedDataset:
    images: np.ndarray        # uint8 (N, R, R, C)
    manifest: dict

    @property
    def resolution(self) -> int:
        return self.images.shape[1]

    @property
    def channels(self) -> int:
        return self.images.shape[3]

    def __len__(self) -> int:
        return self.images.shape[0]


# --- turning one picture into a square training image --------------------------------

def to_square(image: Image.Image, resolution: int, channels: int = 3, fit: str = "pad") -> np.ndarray:
    """Any PIL image -> uint8 (R, R, C). Transparency is composited on white.

    fit="pad" keeps the whole picture and pads the short side with white (emoji);
    fit="crop" centre-crops to a square (photos).
    """
    # A transparent colour key ("transparency" in info) on L or RGB becomes alpha, so that it is
    # composited on white like every other transparent pixel (else mode L would pad with black).
    if image.mode in ("P", "LA", "PA") or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("RGB" if channels == 3 else "L")
    w, h = image.size
    if fit == "crop":
        side = min(w, h)
        image = image.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    else:
        side = max(w, h)
        canvas = Image.new(image.mode, (side, side), 255 if channels == 1 else (255, 255, 255))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4 (e.g. 32, 64), got {resolution!r}")


# --- writing and reading prepared folders -----------------------------------------------

def save_prepared(out: str | os.PathLike, images: np.ndarray, manifest: dict) -> Path:
    """Write images.npy and manifest.json into `out`, both replaced in one atomic step."""
    manifest = {**manifest, "count": int(images.shape[0]), "resolution": int(images.shape[1]),
                "channels": int(images.shape[3])}
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    return write_files_atomically(out, {IMAGES_FILE: buffer.getvalue(),
                                        MANIFEST_FILE: json.dumps(manifest, indent=1).encode()})


def load_prepared(folder: str | os.PathLike) -> PreparedDataset:
    folder = Path(folder)
    if not (folder / IMAGES_FILE).is_file() or not (folder / MANIFEST_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} is not a prepared dataset (it needs {IMAGES_FILE} and {MANIFEST_FILE}). "
            f"Prepare one first, e.g. `python -m train.data folder --src YOUR_IMAGES --resolution 64 --out {folder}`")
    images = np.load(folder / IMAGES_FILE, allow_pickle=False)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[0] == 0:
        raise ValueError(f"{folder / IMAGES_FILE} must be a non-empty uint8 array (N, R, R, C), "
                         f"got {images.dtype} {images.shape}; prepare the dataset again")
    return PreparedDataset(images=images, manifest=json.loads((folder / MANIFEST_FILE).read_text()))


# --- preparers ------------------------------------------------------------------------------

def prepare_folder(src: str | os.PathLike, resolution: int, out: str | os.PathLike,
                   channels: int = 3, fit: str = "crop") -> Path:
    """Every PNG/JPEG/WebP under `src` (recursively). Unreadable files are skipped and counted."""
    _check_resolution(resolution)
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"image folder {src} does not exist")
    paths = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise ValueError(f"no images found under {src} (looked for {sorted(IMAGE_SUFFIXES)}, recursively)")
    images, entries, skipped = [], [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(to_square(image, resolution, channels, fit))
            entries.append({"file": str(path.relative_to(src))})
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            skipped.append(str(path.relative_to(src)))
            log.debug("skipping %s: %s", path, e)
    if skipped:
        log.warning("skipped %d unreadable or corrupt image(s) of %d under %s, e.g. %s",
                    len(skipped), len(paths), src, skipped[:3])
    if not images:
        raise ValueError(f"none of the {len(paths)} image files under {src} could be read")
    manifest = {"source": f"image folder {src}", "fit": fit, "skipped": skipped, "items": entries}
    return save_prepared(out, np.stack(images), manifest)


def _emoji_codepoints(ttf) -> dict[str, list[int]]:
    """Glyph name -> code points, for single characters (cmap) and sequences (GSUB ligatures).

    Sequences such as families, flags and skin-tone variants have no cmap entry: they are
    ligatures of their component characters, so we read them from the GSUB table.
    """
    first_cp: dict[str, int] = {}
    for cp, name in sorted(ttf.getBestCmap().items()):
        first_cp.setdefault(name, cp)
    codepoints = {name: [cp] for name, cp in first_cp.items()}
    for lookup in ttf["GSUB"].table.LookupList.Lookup:
        for table in lookup.SubTable:
            table = getattr(table, "ExtSubTable", table)  # extension lookups wrap the real one
            for first, ligatures in getattr(table, "ligatures", {}).items():
                for lig in ligatures:
                    parts = [first, *lig.Component]
                    if lig.LigGlyph not in codepoints and all(p in first_cp for p in parts):
                        codepoints[lig.LigGlyph] = [first_cp[p] for p in parts]
    return codepoints


SKIN_TONES = range(0x1F3FB, 0x1F400)
EMOJI_SUBSETS: dict[str, Callable[[list[int]], bool]] = {
    "all": lambda cps: True,
    # One emoji per concept: no skin-tone variants, no flags (regional indicator pairs).
    "base": lambda cps: not any(c in SKIN_TONES or 0x1F1E6 <= c <= 0x1F1FF for c in cps),
    "faces": lambda cps: len(cps) == 1 and (0x1F600 <= cps[0] <= 0x1F637 or 0x1F641 <= cps[0] <= 0x1F644
                                            or 0x1F910 <= cps[0] <= 0x1F92F or 0x1F970 <= cps[0] <= 0x1F97A),
    "animals": lambda cps: len(cps) == 1 and (0x1F400 <= cps[0] <= 0x1F43E or 0x1F980 <= cps[0] <= 0x1F9AE),
}


def prepare_noto_emoji(resolution: int, out: str | os.PathLike, subset: str = "all",
                       font: str | os.PathLike = NOTO_EMOJI_FONT) -> Path:
    """The 136x128 colour bitmaps of Noto Color Emoji, padded to square on white."""
    _check_resolution(resolution)
    if subset not in EMOJI_SUBSETS:
        raise ValueError(f"subset must be one of {sorted(EMOJI_SUBSETS)}, got {subset!r}")
    font = Path(font)
    if not font.is_file():
        raise FileNotFoundError(f"{font} not found: install Debian's fonts-noto-color-emoji "
                                f"(bash scripts/install_system_deps.sh)")
    from fontTools.ttLib import TTFont  # only this preparer needs fontTools

    ttf = TTFont(str(font), lazy=True)
    codepoints = _emoji_codepoints(ttf)
    images, entries = [], []
    for strike in ttf["CBDT"].strikeData:
        for name, glyph in strike.items():
            cps = codepoints.get(name, [])
            if not cps or not EMOJI_SUBSETS[subset](cps):
                continue
            glyph.ensureDecompiled()
            with Image.open(io.BytesIO(glyph.imageData)) as image:
                images.append(to_square(image, resolution, 3, "pad"))
            entries.append({"glyph": name, "codepoints": [f"U+{c:04X}" for c in cps],
                            "text": "".join(map(chr, cps))})
    if not images:
        raise ValueError(f"no emoji in subset {subset!r}")
    manifest = {"source": "Noto Color Emoji (Debian fonts-noto-color-emoji), CBDT bitmaps 136x128",
                "licence": "SIL Open Font License 1.1 (font); emoji images Apache-2.0",
                "subset": subset, "fit": "pad", "items": entries}
    return save_prepared(out, np.stack(images), manifest)


def _fluent_subset_files(subset: str, available: set[str]) -> list[tuple[str, list[int]]]:
    """(file name, code points) of the Fluent emoji in `subset`.

    The package names files by CLDR short name, not code point. For "animals" and "faces"
    we take the code points of the same Noto subset and keep those whose Unicode character
    name, written as a file name, is one of the files (most animals match; several faces
    have different CLDR names and are left out). "all" and "base" take every file except
    skin-tone variants, without code points.
    """
    import unicodedata

    if subset in ("all", "base"):
        tones = ("-light", "-medium-light", "-medium", "-medium-dark", "-dark", "-default")
        return [(f, []) for f in sorted(available) if not f[:-4].endswith(tones)]
    chosen = []
    for cp in range(0x1F300, 0x1FB00):
        name = unicodedata.name(chr(cp), "")
        file = name.lower().replace(" ", "-") + ".svg"
        if name and EMOJI_SUBSETS[subset]([cp]) and file in available:
            chosen.append((file, [cp]))
    return chosen


def prepare_fluent_emoji(resolution: int, out: str | os.PathLike, subset: str = "all", style: str = "flat",
                         src: str | os.PathLike = FLUENT_EMOJI_DIR) -> Path:
    """Microsoft's Fluent Emoji (npm `fluentui-emoji`, MIT), SVGs rasterised with cairosvg
    at 4x the target size, composited on white and downsampled (antialiased)."""
    _check_resolution(resolution)
    if subset not in EMOJI_SUBSETS:
        raise ValueError(f"subset must be one of {sorted(EMOJI_SUBSETS)}, got {subset!r}")
    if style not in FLUENT_STYLES:
        raise ValueError(f"style must be one of {FLUENT_STYLES}, got {style!r}")
    folder = Path(src) / "icons" / style
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: install the npm package fluentui-emoji "
                                f"(bash scripts/install_system_deps.sh) or pass --src")
    try:
        import cairosvg
    except (ImportError, OSError) as e:  # OSError: the Python package is there but libcairo2 is not
        raise ImportError("rasterising Fluent Emoji needs `pip install cairosvg` and Debian's libcairo2 "
                          "(bash scripts/install_system_deps.sh)") from e
    images, entries, skipped = [], [], []
    for file, cps in _fluent_subset_files(subset, {p.name for p in folder.glob("*.svg")}):
        try:
            png = cairosvg.svg2png(bytestring=(folder / file).read_bytes(), output_width=4 * resolution,
                                   output_height=4 * resolution)
            with Image.open(io.BytesIO(png)) as image:
                images.append(to_square(image, resolution, 3, "pad"))
        except (ValueError, OSError) as e:
            skipped.append(file)
            log.debug("skipping %s: %s", file, e)
            continue
        entries.append({"file": file, "name": file[:-4].replace("-", " "),
                        **({"codepoints": [f"U+{c:04X}" for c in cps], "text": "".join(map(chr, cps))} if cps else {})})
    if not images:
        raise ValueError(f"no Fluent emoji in subset {subset!r} under {folder}")
    manifest = {"source": f"Fluent Emoji ({style}), npm fluentui-emoji, rasterised with cairosvg",
                "licence": "MIT (Microsoft Fluent Emoji)", "subset": subset, "style": style, "fit": "pad",
                "skipped": skipped, "items": entries}
    return save_prepared(out, np.stack(images), manifest)


def _read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)


def prepare_fashion_mnist(resolution: int, out: str | os.PathLike, split: str = "train",
                          root: str | os.PathLike = FASHION_MNIST_DIR, limit: Optional[int] = None) -> Path:
    """Fashion-MNIST (28x28 greyscale, white garments on black) resized to `resolution`."""
    _check_resolution(resolution)
    path = Path(root) / ("train-images-idx3-ubyte.gz" if split == "train" else "t10k-images-idx3-ubyte.gz")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: install Debian's dataset-fashion-mnist "
                                f"(bash scripts/install_system_deps.sh)")
    raw = _read_idx_images(path)[:limit]
    images = np.stack([np.asarray(Image.fromarray(a).resize((resolution, resolution), Image.Resampling.BILINEAR))
                       for a in raw])[..., None]
    manifest = {"source": f"Fashion-MNIST {split} split (Debian dataset-fashion-mnist)", "licence": "MIT",
                "items": [{"index": i} for i in range(len(images))]}
    return save_prepared(out, images, manifest)


def prepare_digits(resolution: int, out: str | os.PathLike, channels: int = 3, limit: int = 0) -> Path:
    """scikit-learn's bundled 8x8 digits (1,797 images, or the first `limit`), upscaled: small
    real data for tests."""
    _check_resolution(resolution)
    from sklearn.datasets import load_digits

    digits = load_digits().images[:limit or None]  # float 0..16, (1797, 8, 8)
    pixels = (255 - digits * (255 / 16)).astype(np.uint8)  # dark strokes on white
    images = np.stack([np.asarray(Image.fromarray(a).resize((resolution, resolution), Image.Resampling.BILINEAR))
                       for a in pixels])[..., None]
    if channels == 3:
        images = np.repeat(images, 3, axis=3)
    manifest = {"source": "scikit-learn load_digits (UCI optical digits)", "licence": "CC BY 4.0",
                "items": [{"index": i} for i in range(len(images))]}
    return save_prepared(out, images, manifest)


def main(argv: Optional[Iterable[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-prepare-data", "train.data"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("folder", "noto-emoji", "fluent-emoji", "fashion-mnist", "digits"):
        p = sub.add_parser(name, allow_abbrev=False)
        p.add_argument("--resolution", type=int, default=64, help="output height = width (power of two)")
        p.add_argument("--out", required=True, help="folder to write images.npy and manifest.json into")
        if name == "folder":
            p.add_argument("--src", required=True, help="folder of PNG/JPEG/WebP images (searched recursively)")
            p.add_argument("--fit", choices=("crop", "pad"), default="crop", help="centre-crop or pad to square")
            p.add_argument("--channels", type=int, choices=(1, 3), default=3)
        if name in ("noto-emoji", "fluent-emoji"):
            p.add_argument("--subset", choices=sorted(EMOJI_SUBSETS), default="all")
        if name == "fluent-emoji":
            p.add_argument("--style", choices=FLUENT_STYLES, default="flat")
            p.add_argument("--src", default=str(FLUENT_EMOJI_DIR), help="the fluentui-emoji npm package folder")
        if name == "fashion-mnist":
            p.add_argument("--split", choices=("train", "test"), default="train")
            p.add_argument("--limit", type=int, default=None, help="keep only the first N images")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "folder":
            out = prepare_folder(args.src, args.resolution, args.out, args.channels, args.fit)
        elif args.command == "noto-emoji":
            out = prepare_noto_emoji(args.resolution, args.out, args.subset)
        elif args.command == "fluent-emoji":
            out = prepare_fluent_emoji(args.resolution, args.out, args.subset, args.style, args.src)
        elif args.command == "fashion-mnist":
            out = prepare_fashion_mnist(args.resolution, args.out, args.split, limit=args.limit)
        else:
            out = prepare_digits(args.resolution, args.out)
    except (FileNotFoundError, ValueError, ImportError) as e:
        parser.exit(2, f"error: {e}\n")
    dataset = load_prepared(out)
    print(f"wrote {len(dataset)} images of {dataset.resolution}x{dataset.resolution}x{dataset.channels} to {out}")


if __name__ == "__main__":
    main()
