"""The newcomer's path, timed end to end (not a test: it prints figures, asserts nothing).

    python -m bench.bench_newcomer                       # --preset quick: about 10 minutes on 2 cores
    python -m bench.bench_newcomer --preset cpu          # the longer recipe
    python -m bench.bench_newcomer --source fluent-faces # pictures the shipped model never saw (Fluent Emoji faces)
    python -m bench.bench_newcomer --source fluent-faces --train-flags="--init-from none"   # from scratch

What a new user types, each as its own process, on a folder of PNG images (by default 100 Noto
face emoji at 64x64; --source fluent-faces: Microsoft's 63 Fluent Emoji faces, another art style
that the shipped model never saw), written out as files, as anyone's pictures would be:

  1. prepare   rtm-prepare-data folder --src FOLDER --resolution 32 --out DATA
  2. train     rtm-train --preset PRESET --data DATA --out RUN
  3. open      rtm-explorer --run RUN --name mine: made app-ready (export, images, quick
               evaluation, PCA map), then served, until the first trajectory of seed 0 arrives
               through gradio_client (what the page asks for first).

Prints each stage's time, the total, and the model's quality as the app's evaluation measured
it (precision, recall, coverage at the trained H against the training images; distinct nearest
training images among 100 seeds). Checkpoints go to a temporary folder ($RTM_CHECKPOINTS), not
checkpoints/. Results go to bench/results/newcomer.json; the run stays in --work for looking.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app.launcher import free_port
from bench.bench_app import wait_for
from bench.common import ROOT, write_results

SOURCES = {   # name -> (prepared folder, the train.data command that makes it)
    "noto-faces": (ROOT / "data" / "noto-faces-64", ["noto-emoji", "--subset", "faces"]),
    "fluent-faces": (ROOT / "data" / "fluent-faces-64", ["fluent-emoji", "--subset", "faces"]),
}


def write_image_folder(folder: Path, count: int, source: str = "noto-faces") -> int:
    """`count` PNG files, as a user's folder would hold them (the source's faces, prepared if missing)."""
    from PIL import Image

    faces, command = SOURCES[source]
    if not (faces / "images.npy").is_file():
        run([sys.executable, "-m", "train.data", *command, "--resolution", "64", "--out", str(faces)])
    images = np.load(faces / "images.npy")[:count]           # N x H x W x C, uint8
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"face_{i:03d}.png")
    return len(images)


def run(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, **kwargs)
    return time.perf_counter() - start


def prepared(folder: Path) -> bool:
    """app.prepare has finished this folder (its record says complete; it may be mid-write)."""
    try:
        return json.loads((folder / "prepared_from.json").read_text()).get("complete", False)
    except (OSError, ValueError):
        return False


def open_in_app(run_dir: Path, checkpoints: Path, log: Path) -> tuple[float, float]:
    """rtm-explorer --run: seconds until the app-ready folder exists, and until seed 0's
    trajectory arrived through gradio_client."""
    from gradio_client import Client

    port = free_port()
    start = time.perf_counter()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "app.py", "--run", str(run_dir), "--name", "mine", "--port", str(port)],
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RTM_CHECKPOINTS": str(checkpoints)})
    try:
        while not prepared(checkpoints / "mine"):
            if server.poll() is not None:
                raise RuntimeError(f"rtm-explorer --run stopped; see {log}")
            time.sleep(0.2)
        prepared_s = time.perf_counter() - start
        wait_for(f"http://127.0.0.1:{port}/", 300)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        steps = json.loads((checkpoints / "mine" / "config.json").read_text())["mapper"]["num_steps"]
        client.predict("mine", 0, steps, api_name="/trajectory")
        return prepared_s, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--source", choices=sorted(SOURCES), default="noto-faces", help="whose pictures")
    parser.add_argument("--train-flags", default="", help='more rtm-train flags, e.g. "--init-from none"')
    parser.add_argument("--work", default=None, help="folder for the images, data, run and checkpoints (default: a temporary one)")
    parser.add_argument("--out", default="bench/results/newcomer.json")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="rtm-newcomer-"))
    folder, data, run_dir, checkpoints = work / "my_images", work / "data-32", work / "run", work / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    count = write_image_folder(folder, args.images, args.source)
    print(f"newcomer's path: {count} {args.source} images in {folder}, preset {args.preset} {args.train_flags}, "
          f"threads {os.environ.get('OMP_NUM_THREADS', 'all')}")

    times = {"prepare_s": run([sys.executable, "-m", "train.data", "folder", "--src", str(folder),
                               "--resolution", "32", "--out", str(data)])}
    print(f"  1. prepare: {times['prepare_s']:.0f} s")
    with open(work / "train.log", "w") as log:
        times["train_s"] = run([sys.executable, "-m", "train.train", "--preset", args.preset, "--data", str(data),
                                "--out", str(run_dir), *args.train_flags.split()], stdout=log, stderr=subprocess.STDOUT)
    steps = json.loads((run_dir / "checkpoint" / "meta.json").read_text())["step"]
    print(f"  2. train: {times['train_s'] / 60:.1f} min ({steps} steps; log {work / 'train.log'})")
    prepared_s, opened_s = open_in_app(run_dir, checkpoints, work / "app.log")
    times.update(app_ready_s=prepared_s, open_s=opened_s)
    print(f"  3. open: app-ready after {prepared_s:.0f} s, seed 0 on screen after {opened_s:.0f} s")
    total = sum(times[k] for k in ("prepare_s", "train_s", "open_s"))
    evaluation = json.loads((checkpoints / "mine" / "eval.json").read_text())
    trained = evaluation["trained_steps"]
    at_h = next(row for row in evaluation["per_step"] if row["steps"] == trained)
    quality = {k: at_h[k] for k in ("precision", "recall", "coverage", "distinct_nearest")}
    print(f"  total: {total / 60:.1f} min (target <= 10 min); the model at h = {trained}: "
          + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in quality.items()))
    print(f"  its samples: {run_dir / 'samples'}")
    write_results({"preset": args.preset, "source": args.source, "train_flags": args.train_flags, "images": count, "steps": steps, **times, "total_s": total,
                   "quality_at_trained_h": quality, "work": str(work)}, args.out)


if __name__ == "__main__":
    main()
