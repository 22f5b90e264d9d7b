"""bench/gpu_check.sh, the one command for a lent GPU machine, in its --cpu-smoke form: every phase
runs (the GPU's command lines on the stand-in CUDA device) and writes its results, what must be
sent along is said first, and a phase that runs out of time leaves its results so far (the
training phase: its last checkpoint) and the others go on."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def gpu_check(out: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "bench/gpu_check.sh", "--cpu-smoke"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OUT": str(out), **env})


def phases(out: Path) -> dict[str, str]:
    return dict(line.split()[:2] for line in (out / "phases.txt").read_text().splitlines())


@pytest.mark.training
@pytest.mark.slow
def test_the_gpu_check_runs_every_phase_on_a_cpu(tmp_path):
    out = tmp_path / "check"
    done = gpu_check(out)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    carry = re.match(r"carry:.* ([\d.]+) MiB in all \(this check allows itself 48\)$", done.stdout.splitlines()[0])
    assert carry and float(carry.group(1)) <= 48, done.stdout.splitlines()[0]
    assert phases(out) == {"device": "rc=0", "cuda_tests": "rc=0", "throughput": "rc=0", "train": "rc=0"}, phases(out)
    assert json.loads((out / "device.json").read_text())["torch"] and (out / "cuda_tests.xml").is_file()
    throughput = json.loads((out / "throughput.json").read_text())   # on the stand-in CUDA device
    loop, graphed = throughput["loop"]["tiny"], throughput["loop"]["tiny_cuda_graph"]
    assert throughput["device"] == "cuda:0" and graphed["cuda_graph"] and graphed["speedup_over_eager"] > 0
    assert loop["host_syncs_per_step"] == 0 and loop["images_per_s"] > 0 and loop["flop_per_image"] > 0
    assert (out / "faces_checkpoint" / "model.safetensors").is_file() and (out / "faces_samples.png").is_file()


@pytest.mark.training
@pytest.mark.slow
def test_a_phase_out_of_time_keeps_its_last_checkpoint_and_the_others_go_on(tmp_path):
    out = tmp_path / "check"
    done = gpu_check(out, GPU_CHECK_LIMITS="cuda_tests=2 throughput=1 train=12")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    ran = phases(out)
    assert ran == {"device": "rc=0", "cuda_tests": "rc=125", "throughput": "rc=125", "train": "rc=124"}, ran
    # too short a limit: skipped, and said so; the training killed by its limit keeps its last save
    meta = json.loads((out / "faces_checkpoint" / "meta.json").read_text())
    assert meta["step"] >= 5 and (out / "faces_metrics.jsonl").is_file()
    assert "done: " in done.stdout.splitlines()[-1]
