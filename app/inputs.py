"""What the app accepts from a browser or an API client, which is untrusted: every value is
length-capped before it is read, checked without rounding or clamping, and an error message
echoes at most a short preview of it."""

from __future__ import annotations

import math
from typing import Any

UI_MAX_SEED = 2**32 - 1  # what the app accepts: a subset of rtm_core's seeds (MAX_SEED = 2**63 - 1), safe in JavaScript
MAX_STEPS = 64           # inference-time refinement steps the UI offers: the shipped eval.json covers h up to 64
MAX_NAME_CHARS = 128     # a checkpoint name longer than this is refused unread
MAX_NUMBER_CHARS = 32    # a seed or step count sent as text
WALK_FRAMES = (2, 16)    # a seed walk shows between 2 and 16 seeds
GRID_SEEDS = (1, 64)     # the grid view shows between 1 and 64 seeds (16 by default)


def preview(value: Any, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters: safe to put in an error message or a log line."""
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[:4 * limit]  # never repr a 100 MB string to cut it afterwards
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """Accept ints and integral floats/strings from the UI or API; anything else is a clear error,
    never a silent rounding (3.5) or clamping (0, 10000)."""
    message = f"{name} must be a whole number between {low} and {high}"
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        raise ValueError(f"{message}; got {len(value):,} characters of text")
    if isinstance(value, bool):
        raise ValueError(f"{message}, got {value!r}")
    if value is None:   # what a number box sends when empty, for text (abc) and for numbers no float holds
        raise ValueError(f"{message}; the box is empty or does not hold a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{message}, got {preview(value)}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"{message}, got {preview(value)} (not a whole number)")
    if not low <= number <= high:
        shown = f"{int(number):,}" if isinstance(value, float) else preview(value)   # 1e+19 as the digits typed
        raise ValueError(f"{message}, got {shown} (out of range)")
    return int(number)


def parse_seed(seed: Any) -> int:
    return whole_number(seed, "seed", 0, UI_MAX_SEED)


def parse_steps(steps: Any) -> int:
    return whole_number(steps, "steps", 1, MAX_STEPS)


def parse_seeds(seeds: Any) -> list[int]:
    """A list of seeds (the grid view): 1 to 64 of them, each checked like one seed."""
    if not isinstance(seeds, (list, tuple)):
        raise ValueError(f"seeds must be a list of whole numbers, got {type(seeds).__name__}")
    low, high = GRID_SEEDS
    if not low <= len(seeds) <= high:
        raise ValueError(f"between {low} and {high} seeds at once, got {len(seeds):,}")
    return [parse_seed(s) for s in seeds]


def grid_seeds(first: Any, count: Any) -> list[int]:
    """`count` consecutive seeds from `first` (the grid view)."""
    first, count = parse_seed(first), whole_number(count, "number of seeds", *GRID_SEEDS)
    if first + count - 1 > UI_MAX_SEED:
        raise ValueError(f"the grid's last seed would be {first + count - 1}, past {UI_MAX_SEED}; start lower")
    return list(range(first, first + count))
