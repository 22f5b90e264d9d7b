"""Every command follows one convention (docs/CLI.md): `--help` prints its usage and exits 0, a
usage error prints the usage line and one `error:` line and exits 2. Scripts run as their
docstrings say (`python scripts/NAME.py ...`) from any folder: a script that imports the
repository's own bench/ package, not installed by pip, once failed before doing anything."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["train.train", "train.data", "train.evaluate", "train.export", "train.ship", "train.gate", "train.card",
           "app.prepare", "app.projection",
           "app.launcher"] + sorted(f"bench.{p.stem}" for p in (ROOT / "bench").glob("bench_*.py"))
SCRIPTS = sorted((ROOT / "scripts").glob("*.py")) + [ROOT / "app.py"]
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=ENV)


def test_there_are_commands_to_check():
    assert len(SCRIPTS) >= 8 and len(MODULES) >= 12


@pytest.mark.parametrize("module", MODULES)
def test_a_module_answers_help_and_a_usage_error(module):
    done = run([sys.executable, "-m", module, "--help"], ROOT)
    assert done.returncode == 0 and done.stdout.startswith("usage: "), done.stderr[-2000:]
    bad = run([sys.executable, "-m", module, "--no-such-flag"], ROOT)
    assert bad.returncode == 2 and "usage: " in bad.stderr and "error: " in bad.stderr, bad.stderr[-2000:]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_script_answers_help_and_a_usage_error_from_any_folder(script, tmp_path):
    done = run([sys.executable, str(script), "--help"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: ") and script.name in done.stdout.splitlines()[0]
    bad = run([sys.executable, str(script), "--no-such-flag"], tmp_path)
    assert bad.returncode == 2 and "error: " in bad.stderr, bad.stderr[-2000:]


def test_the_output_as_a_positional_still_works_for_a_release_with_a_note(tmp_path):
    bad = run([sys.executable, "-m", "train.export", "runs/a", "out-a", "--out", "out-b"], ROOT)
    assert bad.returncode == 2 and "give the output once, as --out" in bad.stderr
    old = run([sys.executable, "-m", "train.export", str(tmp_path / "no-run"), str(tmp_path / "out")], ROOT)
    assert "note: the output as a positional is deprecated; write --out" in old.stderr
    assert old.returncode == 1 and "error: " in old.stderr and "holds no checkpoint" in old.stderr


def test_the_presets_can_be_listed_one_setting_per_line_and_each_line_is_a_flag():
    from train.config import ADVERSARIAL_PRESETS, PRESETS, TrainConfig, parse_args

    for objective, presets in (("imle", PRESETS), ("adversarial", ADVERSARIAL_PRESETS)):
        done = run([sys.executable, "-m", "train.train", "--objective", objective, "--list-presets"], ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        blocks = done.stdout.split("\n")[1:]
        for name in presets:
            start = blocks.index(f"{name}:")
            flags = []
            for line in blocks[start + 1:]:
                if not line.startswith("  "):
                    break
                flags += line.split(maxsplit=1)
            # the lines, given as flags, make the preset's settings
            assert parse_args(["--objective", objective, "--data", "x", *flags]) == \
                TrainConfig(**{**presets[name], "objective": objective, "data": "x"}), name
