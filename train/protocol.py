"""The evaluation protocol, in one place: what every shipped eval.json, the shipping gate,
--eval-every and rtm-evaluate measure by default (light: no torch, so --help answers at once).

550 samples (seeds 0..549) in 5 disjoint draws of 110: each metric is a mean with the sd
between draws, which is what a difference must beat (docs/EVALUATION.md).
"""

NUM_SAMPLES, DRAWS = 550, 5
STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)      # refinement steps, up to the app's 64
PROTOCOL = {"num_samples": NUM_SAMPLES, "draws": DRAWS, "steps": list(STEPS), "fd": True}
