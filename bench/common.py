"""What every benchmark shares: writing its results as JSON."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_results(results: dict, out: str) -> None:
    path = ROOT / out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
