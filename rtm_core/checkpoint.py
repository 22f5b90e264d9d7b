"""Checkpoints: a folder that describes itself, with no pickled code anywhere.

    checkpoints/NAME/
        config.json          ModelConfig.to_dict(): rebuilds the network
        model.safetensors    the weights (float32, or float16 to halve the size)
        meta.json            data, training steps, metrics, versions, and the weights' SHA-256

Other files in the folder (README.md, eval.json, the app's UMAP files) are kept. The three
files (and any `extra_files`, such as the training state) are replaced together in one
atomic folder swap (rtm_core/atomic.py), so a process killed mid-save leaves the previous
checkpoint whole. meta.json records the weights' SHA-256, so a file corrupted later is
caught at load time.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes

from .version import __version__
from .atomic import write_files_atomically
from .config import ModelConfig
from .generator import Generator

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
# Optional files beside them, written by train/ and read by the app (never by load_checkpoint):
EVAL_FILE = "eval.json"                        # train.evaluate's per-step metrics
TRAINING_IMAGES_FILE = "training_images.npz"   # images (N, R, R, C) uint8 and labels (N,) str, for the nearest-image check
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
SAFETENSORS_DTYPES = {"F32": 4, "F16": 2}     # what save_checkpoint writes, and its bytes per value
MAX_JSON_BYTES = 1 << 20                      # config.json and meta.json are a few KB
MAX_HEADER_BYTES = 1 << 24                    # a safetensors header lists names, shapes, offsets


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete, corrupted or does not fit its config."""


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def save_checkpoint(generator: Generator, folder: str | os.PathLike, meta: Optional[dict] = None,
                    storage_dtype: str = "float32", extra_files: Optional[dict[str, bytes]] = None) -> Path:
    """Save `generator` into `folder` (created if needed). Returns the folder's path.

    storage_dtype="float16" halves the file; load_checkpoint restores float32.
    extra_files (name -> bytes) are written in the same atomic step (the training state).
    Refuses weights that contain NaN or inf, so a diverged model never overwrites a good one.
    """
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage_dtype must be one of {sorted(STORAGE_DTYPES)}, got {storage_dtype!r}")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    state = {k: v.detach().to("cpu", STORAGE_DTYPES[storage_dtype] if v.is_floating_point() else v.dtype)
             .contiguous().clone() for k, v in generator.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"refusing to save a checkpoint with non-finite weights in {bad[:5]}")

    weights = safetensors_bytes(state, metadata={"format": "pt"})
    full_meta = dict(meta or {})
    full_meta.update({
        "rtm_core_version": __version__,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "storage_dtype": storage_dtype,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "parameters": generator.parameter_counts(),
    })
    files = {WEIGHTS_FILE: weights, CONFIG_FILE: _json_bytes(generator.config.to_dict()),
             META_FILE: _json_bytes(full_meta), **(extra_files or {})}
    return write_files_atomically(folder, files)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a checkpoint folder needs {CONFIG_FILE}, "
                              f"{WEIGHTS_FILE} and {META_FILE} (save it with rtm_core.save_checkpoint)")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path} is {size:,} bytes; a {what} is a few KB (at most {MAX_JSON_BYTES:,})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the {what} is damaged") from e


def read_config(folder: str | os.PathLike) -> ModelConfig:
    """The ModelConfig of a checkpoint, without loading its weights."""
    folder = _existing_folder(folder)
    try:
        return ModelConfig.from_dict(_read_json(folder / CONFIG_FILE, "model config"))
    except CheckpointError:
        raise
    except ValueError as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: {e}") from e


def read_meta(folder: str | os.PathLike) -> dict:
    meta = _read_json(_existing_folder(folder) / META_FILE, "metadata")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{Path(folder) / META_FILE} must hold a JSON object")
    return meta


def _existing_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist (or is not a folder)")
    return folder


def check_weights_file(path: Path, config: ModelConfig) -> None:
    """Check model.safetensors against `config` from its header alone, before reading the weights:
    every tensor the config needs is there with its shape and a stored dtype, the offsets tile the
    file exactly, and nothing else is in it. A file of the wrong size or model costs 8 bytes + its
    header to refuse, not its whole size in memory."""
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        header_len = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 0 < header_len <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path} is not a safetensors file (no valid header; {size:,} bytes)")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path} has a damaged safetensors header ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a damaged safetensors header (not an object)")
    header.pop("__metadata__", None)
    with torch.device("meta"):  # shapes only: nothing is allocated, whatever the config says
        expected = {k: tuple(v.shape) for k, v in Generator(config).state_dict().items()}
    problems, end = [], 0
    for name, shape in expected.items():
        entry = header.get(name)
        if not isinstance(entry, dict):
            problems.append(f"{name} missing")
            continue
        offsets = entry.get("data_offsets")
        if entry.get("dtype") not in SAFETENSORS_DTYPES or tuple(entry.get("shape", ())) != shape:
            problems.append(f"{name}: {entry.get('dtype')} {entry.get('shape')}, expected F32/F16 {list(shape)}")
        elif (not isinstance(offsets, list) or len(offsets) != 2 or
              offsets[1] - offsets[0] != SAFETENSORS_DTYPES[entry["dtype"]] * int(torch.Size(shape).numel())):
            problems.append(f"{name}: data offsets {offsets} do not fit its shape")
        else:
            end = max(end, offsets[1])
    problems += [f"unexpected tensor {name}" for name in sorted(set(header) - set(expected))]
    if problems:
        raise CheckpointError(f"{path} does not fit {CONFIG_FILE}: {'; '.join(problems[:5])}"
                              f"{f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''}. "
                              f"The weights were saved from a different configuration, or the file is damaged.")
    if 8 + header_len + end != size:
        raise CheckpointError(f"{path} is {size:,} bytes but its header describes {8 + header_len + end:,}: "
                              f"the file is truncated or has extra data; save it again")


# Where a checkpoint given by name is looked for, in this order (after the name as a path).
PROJECT_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"   # the repository's shipped ones
USER_CHECKPOINTS = Path(__file__).resolve().parents[1] / "my_checkpoints"   # the user's app-ready runs (git-ignored)
CHECKPOINTS_ENV = "RTM_CHECKPOINTS"   # its one meaning: the folder of your own checkpoints, instead of my_checkpoints/


def user_checkpoints() -> Path:
    """The folder of the user's own checkpoints: $RTM_CHECKPOINTS, else the project's my_checkpoints/.
    The app lists it beside the shipped ones, `app.prepare` writes there, names are looked up there."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or USER_CHECKPOINTS)


def find_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint folder from a path, or from a shipped checkpoint's name ("noto-faces-rtm"),
    looked for in this order: the path as given (relative to the working directory), then the
    project's checkpoints/NAME (beside rtm_core in a clone or an editable install), then the
    user's own folder (user_checkpoints(): where `rtm-explorer --run` puts a run; a shipped name is
    never shadowed by it). So `load_checkpoint("noto-faces-rtm")` works from any directory."""
    given = Path(name_or_path)
    if given.is_dir():
        return given            # a folder: what is wrong with it, if anything, read_config says
    candidates = [given]
    if len(given.parts) == 1 and given.name not in (".", ".."):
        candidates += [PROJECT_CHECKPOINTS / given.name, user_checkpoints() / given.name]
    for folder in candidates:
        if (folder / CONFIG_FILE).is_file():
            return folder
    shipped = sorted(p.name for p in PROJECT_CHECKPOINTS.iterdir() if (p / CONFIG_FILE).is_file()) \
        if PROJECT_CHECKPOINTS.is_dir() else []
    raise CheckpointError(f"checkpoint {str(name_or_path)[:200]!r} does not exist: looked for {CONFIG_FILE} in "
                          + ", ".join(str(c) for c in candidates)
                          + (f"; give a path, or the name of one of {shipped}" if len(candidates) > 1 and shipped else ""))


def load_checkpoint(folder: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """Rebuild the Generator saved in `folder` (a path, or a shipped checkpoint's name: see
    find_checkpoint), in float32 and eval mode, and its meta."""
    folder = find_checkpoint(folder)
    config, meta = read_config(folder), read_meta(folder)
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint has no weights")
    check_weights_file(path, config)
    data = path.read_bytes()
    expected = meta.get("weights_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{path} does not match the SHA-256 recorded in {META_FILE}: the file is "
                              f"corrupted, truncated, or was replaced without re-saving; save it again")
    try:
        state = safetensors_load(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is truncated or corrupted and cannot be read ({e})") from e
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights in {bad[:5]}")
    generator = Generator(config)
    generator.load_state_dict(state)  # copies into float32 parameters, so fp16 storage is restored
    return generator.to(device).eval(), meta
