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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from . import __version__
from .atomic import write_files_atomically
from .config import ModelConfig
from .generator import Generator

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


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


def load_checkpoint(folder: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """Rebuild the Generator saved in `folder`, in float32 and eval mode, and its meta."""
    config, meta = read_config(folder), read_meta(folder)
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint has no weights")
    data = path.read_bytes()
    expected = meta.get("weights_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{path} does not match the SHA-256 recorded in {META_FILE}: the file is "
                              f"corrupted, truncated, or was replaced without re-saving; save it again")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is truncated or corrupted and cannot be read ({e})") from e

    generator = Generator(config)
    expected_shapes = {k: v.shape for k, v in generator.state_dict().items()}
    missing = sorted(set(expected_shapes) - set(state))
    unexpected = sorted(set(state) - set(expected_shapes))
    wrong = sorted(k for k in set(state) & set(expected_shapes) if state[k].shape != expected_shapes[k])
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path} does not fit {CONFIG_FILE}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {[(k, tuple(state[k].shape), tuple(expected_shapes[k])) for k in wrong[:5]]}. "
            f"The weights were saved from a different configuration.")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights in {bad[:5]}")
    generator.load_state_dict(state)  # copies into float32 parameters, so fp16 storage is restored
    return generator.to(device).eval(), meta
