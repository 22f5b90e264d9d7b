"""Evaluate a checkpoint per number of refinement steps, and how stable its trajectories are.

    python -m train.evaluate --checkpoint checkpoints/noto-faces-rtm --data data/noto-faces-32
    python -m train.evaluate --checkpoint checkpoints/noto-faces-rtm --compare checkpoints/noto-faces-mlp \\
        --data data/noto-faces-32 --steps 1,2,4,8,16 --out reports/rtm-vs-mlp

The defaults are the project's protocol (train/protocol.py: 550 samples in 5 draws at 12 step
counts), so a result compares with every shipped eval.json.

For every h in --steps (beyond the trained H too) the samples of seeds 0..n-1 are made
with exactly h steps, embedded with EfficientNet-Lite0 and compared with the real
images: FD-EffNet (the Fréchet distance of those features; not FID), KID-EffNet (KID on
the same features), k-NN precision, recall, density and coverage (k = 3), each as mean
and sd over --draws disjoint draws of the samples, and memorisation (how close samples sit
to their nearest training image, against the data's own spacing). Trajectory statistics follow w over
steps 0..max(--steps) for the same seeds. Each checkpoint gets eval.json in its folder
(schema: docs/EVALUATION.md); the HTML report (plotly, self-contained) goes to --out.
Real-image features are cached next to the dataset.
"""

from __future__ import annotations

import argparse
from typing import Optional

from .cli import program_name
from .protocol import DRAWS, NUM_SAMPLES, STEPS


def parse_step_list(text: str) -> list[int]:
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise ValueError(f"--steps must be comma-separated whole numbers such as 1,2,4,8, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise ValueError(f"--steps must be whole numbers >= 1, got {text!r}")
    return steps


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-evaluate", "train.evaluate"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder to evaluate")
    parser.add_argument("--compare", default=None, help="a second checkpoint, evaluated on the same data and seeds")
    parser.add_argument("--data", required=True, help="prepared dataset folder (python -m train.data ...)")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)),
                        help="numbers of refinement steps to evaluate (the app offers up to 64)")
    parser.add_argument("--num-samples", type=int, default=NUM_SAMPLES,
                        help=f"generated samples per step count (default {NUM_SAMPLES}, the protocol's)")
    parser.add_argument("--draws", type=int, default=DRAWS, help="split the samples into this many disjoint draws "
                        f"and report each metric's mean and sd over them (default {DRAWS}, the protocol's)")
    parser.add_argument("--num-real", type=int, default=50_000, help="at most this many real images")
    parser.add_argument("--out", default=None, help="folder for the HTML report (default: the checkpoint's)")
    parser.add_argument("--inception", default=None, help="path of FID Inception-v3 weights "
                        "(pt_inception-2015-12-05-*.pth): report standard FID instead of FD-EffNet")
    args = parser.parse_args(argv)
    # torch and the feature networks: only once the flags are read
    from rtm_core.metrics import distinct_text

    from .evaluation import run

    try:
        steps = parse_step_list(args.steps)
        if args.draws < 1 or args.num_samples < 4 * args.draws:
            raise ValueError("--draws must be >= 1 and --num-samples at least 4 per draw "
                             "(k-NN metrics need more than k = 3 samples)")
        checkpoints = [args.checkpoint] + ([args.compare] if args.compare else [])
        results = run(checkpoints, args.data, steps, args.num_samples, args.out, num_real=args.num_real,
                      inception=args.inception, draws=args.draws)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")
    for r in results:
        print(f"{r['checkpoint']} ({r['mapper']}, H={r['trained_steps']}):")
        label = "FID" if r["fd_name"] == "fid" else "FD-EffNet"
        for p in r["per_step"]:
            print(f"  h={p['steps']:3d}  {label} {p[r['fd_name']]:8.3f}  "
                  + "  ".join(f"{k} {p[k]:.3f}±{p[k + '_sd']:.3f}" for k in ("precision", "recall", "density", "coverage"))
                  + f"  memorisation {p['memorisation_ratio']:.2f}"
                  + f"  distinct nearest of {p['diversity_seeds']} {distinct_text(p)}")


if __name__ == "__main__":
    main()
