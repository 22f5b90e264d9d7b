"""bench/gpu_check.sh, the one command for a GPU machine, in its --cpu-smoke form: every phase runs
and writes its results, so the script cannot rot between the sessions that have a GPU."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_every_phase_on_a_cpu(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu-smoke"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OUT": str(out)})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    phases = dict(line.split()[:2] for line in (out / "phases.txt").read_text().splitlines())
    assert phases == {"device": "rc=0", "cuda_tests": "rc=0", "throughput": "rc=0", "train": "rc=0"}, phases
    assert json.loads((out / "device.json").read_text())["torch"]
    loop = json.loads((out / "throughput.json").read_text())["loop"]["tiny"]
    assert loop["host_syncs_per_step"] == 0 and loop["images_per_s"] > 0 and loop["flop_per_image"] > 0
    assert (out / "faces_checkpoint" / "model.safetensors").is_file() and (out / "faces_samples.png").is_file()
