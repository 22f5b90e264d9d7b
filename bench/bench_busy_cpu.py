"""The quick preset's training speed on a quiet CPU and beside one busy process (not a test: it
prints figures, asserts nothing).

    python -m bench.bench_busy_cpu                      # threads 0 (one per free core) vs every core
    python -m bench.bench_busy_cpu --images 1600 --arms adaptive
    python -m bench.bench_busy_cpu --resolution 64 --arms adaptive    # 64x64 faces: noto-faces-rtm-64 fine-tuned

A newcomer's machine is rarely idle. Each arm trains `rtm-train --preset quick` on the Noto faces
at 32x32, as its own process, twice: alone, and beside a busy process (a Python loop that keeps
one core busy). Figures: images/s over the training steps (metrics.jsonl's images_per_s, the pool
selections apart), the seconds to the first progress line, and busy / quiet as a ratio measured in one run
(the target is at least 0.35 on a 2-core machine, one core lost). Arms:

  all-cores   --threads N, N = every core (what a run did before it counted free cores)
  adaptive    --threads 0: one thread per core that others leave free (train/cpu_threads.py)
  passive     all-cores with OMP_WAIT_POLICY=PASSIVE (waiting threads sleep instead of spinning)

Results go to bench/results/busy_cpu.json.
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

from bench.common import ROOT, write_results

ARMS = ("all-cores", "adaptive", "passive")


def prepared_faces(work: Path, resolution: int) -> Path:
    data = ROOT / "data" / f"noto-faces-{resolution}"
    if not (data / "images.npy").is_file():
        data = work / f"noto-faces-{resolution}"
        subprocess.run([sys.executable, "-m", "train.data", "noto-emoji", "--subset", "faces", "--resolution",
                        str(resolution), "--out", str(data)], check=True, cwd=ROOT)
    return data


def busy_process() -> subprocess.Popen:
    """One core kept busy, as another user's job would."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def train_once(arm: str, data: Path, out: Path, images: int, minutes: float, busy: bool) -> dict:
    cores = len(os.sched_getaffinity(0))
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    threads = "0" if arm == "adaptive" else str(cores)
    if arm == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    command = [sys.executable, "-m", "train.train", "--preset", "quick", "--data", str(data), "--out", str(out),
               "--max-images", str(images), "--max-minutes", str(minutes), "--log-every", "10", "--threads", threads,
               "--no-progress"]
    hog = busy_process() if busy else None
    try:
        time.sleep(0.5 if busy else 0)                  # the other job was there first
        start, first_line, said = time.perf_counter(), None, []
        with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              text=True) as process:
            for line in process.stderr:            # the log as a user watches it: when does progress show?
                said.append(line)
                if first_line is None and line.startswith("step "):
                    first_line = time.perf_counter() - start
        wall = time.perf_counter() - start
    finally:
        if hog:
            hog.kill()
            hog.wait()
    if process.returncode != 0:
        raise SystemExit(f"{arm}: training failed:\n{''.join(said)[-2000:]}")
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "images_per_s" in line]
    rates = [line["images_per_s"] for line in steps[1:]] or [steps[0]["images_per_s"]]   # the first window warms up
    chosen = [line.split("threads ")[1].split()[0] for line in said if line.startswith("cpu threads")]
    return {"images_per_s": sum(rates) / len(rates), "steps": steps[-1]["step"], "wall_s": wall,
            "first_progress_line_s": first_line, "threads_chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=800, help="training images per run (quick preset: 7,200)")
    parser.add_argument("--minutes", type=float, default=2.0, help="each run's --max-minutes")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--resolution", type=int, choices=(32, 64), default=32,
                        help="the faces' size: the quick preset fine-tunes the shipped model of that size")
    parser.add_argument("--out", default="bench/results/busy_cpu.json")
    args = parser.parse_args()
    results: dict = {"cores": len(os.sched_getaffinity(0)), "images": args.images, "resolution": args.resolution,
                     "arms": {}}
    print(f"quick preset on {args.resolution}x{args.resolution} faces, {args.images} images per run, "
          f"{results['cores']} cores; img/s over the training steps")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = prepared_faces(work, args.resolution)
        for arm in args.arms:
            quiet = train_once(arm, data, work / f"{arm}-quiet", args.images, args.minutes, busy=False)
            loaded = train_once(arm, data, work / f"{arm}-busy", args.images, args.minutes, busy=True)
            ratio = loaded["images_per_s"] / quiet["images_per_s"]
            results["arms"][arm] = {"quiet": quiet, "busy": loaded, "busy_over_quiet": ratio}
            print(f"{arm:10s} quiet {quiet['images_per_s']:6.1f} img/s | beside a busy process "
                  f"{loaded['images_per_s']:6.1f} img/s ({loaded['steps']} steps in {loaded['wall_s']:.0f} s) | "
                  f"busy / quiet {ratio:.2f} | first progress line after {quiet['first_progress_line_s']:.0f} s quiet, "
                  f"{loaded['first_progress_line_s']:.0f} s busy", flush=True)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
