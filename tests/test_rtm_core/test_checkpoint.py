import json
from pathlib import Path

import pytest
import torch

from rtm_core import CheckpointError, Generator, load_checkpoint, read_config, save_checkpoint, seeds_to_z, tiny
from rtm_core.checkpoint import CONFIG_FILE, META_FILE, WEIGHTS_FILE


@pytest.fixture
def saved(tmp_path, any_generator):
    folder = save_checkpoint(any_generator, tmp_path / "ckpt", meta={"data": "digits", "step": 12})
    return any_generator, folder


def test_round_trip_is_bit_exact(saved):
    g, folder = saved
    loaded, meta = load_checkpoint(folder)
    assert loaded.config == g.config and not loaded.training
    for (name, a), (_, b) in zip(g.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    z = seeds_to_z([1, 2], g.z_dim)
    assert torch.equal(loaded(z), g(z))
    assert meta["data"] == "digits" and meta["step"] == 12 and meta["storage_dtype"] == "float32"
    assert meta["parameters"]["total"] == sum(p.numel() for p in g.parameters())
    assert read_config(folder) == g.config


def test_float16_storage_loads_as_float32(tmp_path, rtm):
    folder = save_checkpoint(rtm, tmp_path / "half", storage_dtype="float16")
    full = save_checkpoint(rtm, tmp_path / "full")
    assert (folder / WEIGHTS_FILE).stat().st_size < 0.6 * (full / WEIGHTS_FILE).stat().st_size
    loaded, _ = load_checkpoint(folder)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for a, b in zip(rtm.parameters(), loaded.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_saving_again_keeps_other_files_and_leaves_no_temp_files(saved):
    g, folder = saved
    (folder / "README.md").write_text("model card")
    save_checkpoint(g, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, META_FILE, "README.md"])
    # The staging and old folders are made beside the checkpoint (rtm_core/atomic.py): none is left.
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]


def test_checkpoints_contain_no_pickles(saved):
    _, folder = saved
    head = (folder / WEIGHTS_FILE).read_bytes()[:8]
    assert int.from_bytes(head, "little") < 10_000_000  # a safetensors header length, not a zip/pickle magic
    json.loads((folder / CONFIG_FILE).read_text())


def test_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    _, folder = saved
    for name in (WEIGHTS_FILE, CONFIG_FILE, META_FILE):
        data = (folder / name).read_bytes()
        (folder / name).unlink()
        with pytest.raises(CheckpointError, match=f"{name} is missing"):
            load_checkpoint(folder)
        (folder / name).write_bytes(data)
    load_checkpoint(folder)


def test_truncated_weights(saved):
    _, folder = saved
    path = folder / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(folder)
    # Without the recorded hash, safetensors itself notices the truncation.
    meta = json.loads((folder / META_FILE).read_text())
    del meta["weights_sha256"]
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(folder)


def test_corrupted_weights_and_json(saved):
    _, folder = saved
    path = folder / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside a tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(folder)
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(folder)


def test_weights_that_do_not_fit_the_config(tmp_path, rtm):
    folder = save_checkpoint(rtm, tmp_path / "ckpt")
    other = tiny().replace(mapper={"token_dim": 12})
    (folder / CONFIG_FILE).write_text(json.dumps(other.to_dict()))
    with pytest.raises(CheckpointError, match="does not fit config.json.*expected F32/F16"):
        load_checkpoint(folder)
    (folder / CONFIG_FILE).write_text(json.dumps(tiny("mlp").to_dict()))
    with pytest.raises(CheckpointError, match="does not fit config.json.*missing"):
        load_checkpoint(folder)


def test_weights_are_checked_against_the_header_before_they_are_read(saved, monkeypatch):
    """A 2 GB file (sparse here) whose header fits the config is refused from its first bytes."""
    _, folder = saved
    path = folder / WEIGHTS_FILE
    with path.open("r+b") as f:
        f.truncate(2 * 1024**3)
    reads = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or original(self))
    with pytest.raises(CheckpointError, match="2,147,483,648 bytes but its header describes"):
        load_checkpoint(folder)
    assert path not in reads
    path.write_bytes(b"\xff" * 64)  # a header length beyond the file
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(folder)


def test_configs_asking_for_absurd_sizes_are_refused(saved):
    _, folder = saved
    data = json.loads((folder / CONFIG_FILE).read_text())
    data["mapper"]["token_dim"] = 2_000_000_000
    (folder / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"token_dim must be an integer in \[1, 8192\]"):
        load_checkpoint(folder)
    (folder / CONFIG_FILE).write_text(" " * (2 << 20))
    with pytest.raises(CheckpointError, match="a few KB"):
        load_checkpoint(folder)


def test_config_from_a_newer_version(saved):
    _, folder = saved
    data = json.loads((folder / CONFIG_FILE).read_text())
    data["version"] += 1
    (folder / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="newer than this rtm_core"):
        load_checkpoint(folder)


def test_non_finite_weights_are_never_saved(tmp_path, rtm):
    save_checkpoint(rtm, tmp_path / "good")
    with torch.no_grad():
        next(rtm.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        save_checkpoint(rtm, tmp_path / "good")
    load_checkpoint(tmp_path / "good")  # the previous checkpoint is untouched


def test_bad_save_arguments(tmp_path, rtm):
    with pytest.raises(ValueError, match="storage_dtype"):
        save_checkpoint(rtm, tmp_path / "x", storage_dtype="int8")
    with pytest.raises(ValueError, match="meta"):
        save_checkpoint(rtm, tmp_path / "x", meta=[1])
    with pytest.raises(ValueError, match="ModelConfig"):
        Generator({"mapper": {}})


def test_saving_without_an_atomic_exchange_still_works(saved, monkeypatch):
    import rtm_core.atomic as atomic

    g, folder = saved
    (folder / "eval.json").write_text("{}")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # e.g. a filesystem without renameat2
    save_checkpoint(g, folder, meta={"step": 99})
    assert load_checkpoint(folder)[1]["step"] == 99 and (folder / "eval.json").read_text() == "{}"
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


def test_a_shipped_checkpoint_loads_by_name_from_any_directory(tmp_path, monkeypatch):
    import subprocess
    import sys

    from rtm_core.checkpoint import PROJECT_CHECKPOINTS, find_checkpoint

    name = "noto-faces-rtm"
    if not (PROJECT_CHECKPOINTS / name).is_dir():
        pytest.skip("the shipped checkpoints are not in this checkout")
    monkeypatch.chdir(tmp_path)
    assert find_checkpoint(name) == PROJECT_CHECKPOINTS / name
    # the README's snippet, run as a user would, from a directory with nothing in it
    code = ("import rtm_core; g, meta = rtm_core.load_checkpoint('noto-faces-rtm'); "
            "print(g.num_steps, meta['total_steps'] > 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["8", "True"]


def test_a_name_is_looked_for_under_rtm_checkpoints_first(saved, tmp_path, monkeypatch):
    from rtm_core.checkpoint import find_checkpoint

    _, folder = saved
    monkeypatch.setenv("RTM_CHECKPOINTS", str(folder.parent))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert find_checkpoint(folder.name) == folder.parent / folder.name
    with pytest.raises(CheckpointError, match="checkpoint 'no-such-model' does not exist: looked for config.json in no-such-model, "):
        find_checkpoint("no-such-model")
