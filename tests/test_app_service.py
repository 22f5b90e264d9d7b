import io

import numpy as np
import pytest
import torch
from PIL import Image

from app.projection import PROJECTION_FILE, fit_pca, load_projection, reference_cloud
from app.projection import main as projection_main
from app.service import MAX_SEED, TrajectoryService, gif_bytes, parse_seed, parse_steps
from rtm_core import Generator, save_checkpoint, seed_to_z, tiny, trajectory


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    save_checkpoint(Generator(tiny("rtm")), root / "tiny-rtm", meta={"step": 5, "data": "none"})
    save_checkpoint(Generator(tiny("mlp")), root / "tiny-mlp")
    (root / "not-a-checkpoint").mkdir()
    return root


def test_lists_only_checkpoint_folders(ckpt_root):
    assert TrajectoryService(ckpt_root).names() == ["tiny-mlp", "tiny-rtm"]
    with pytest.raises(FileNotFoundError):
        TrajectoryService(ckpt_root / "missing")


def test_trajectory_matches_the_library(ckpt_root):
    service = TrajectoryService(ckpt_root)
    result = service.trajectory("tiny-rtm", 42, 5)
    g = service.model("tiny-rtm").generator
    tr = trajectory(g, seed_to_z(42, g.z_dim)[None], 5)
    assert result.frames.shape == (6, 16, 16, 3) and result.frames.dtype == np.uint8
    np.testing.assert_allclose(result.ws, tr.ws[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.displacement, np.linalg.norm(np.diff(result.ws, axis=0), axis=1), rtol=1e-5)
    assert result.xy.shape == (6, 2) and np.isfinite(result.xy).all()
    assert service.trajectory("tiny-rtm", 42, 5) is result              # cached
    assert service.trajectory("tiny-rtm", 42).num_steps == 3            # default: the trained H


def test_payload_has_every_frame_for_the_browser(ckpt_root):
    service = TrajectoryService(ckpt_root)
    payload = service.payload(service.trajectory("tiny-mlp", 3, 4))
    assert len(payload["frames"]) == 5 and payload["frames"][0].startswith("data:image/png;base64,")
    assert payload["trained_steps"] == 1 and payload["mapper"] == "mlp"
    assert payload["reference"]["method"] == "PCA" and len(payload["reference"]["x"]) > 0


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 1.5, "abc", None, float("nan")])
def test_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a whole number"):
        parse_seed(seed)


@pytest.mark.parametrize("steps", [0, 65, 10_000, "x", 2.5])
def test_bad_steps(steps):
    with pytest.raises(ValueError, match="steps must be a whole number between 1 and 64"):
        parse_steps(steps)


def test_good_values_parse():
    assert parse_seed("17") == 17 and parse_seed(3.0) == 3 and parse_steps("64") == 64


def test_unknown_checkpoint(ckpt_root):
    with pytest.raises(ValueError, match="unknown checkpoint '../etc'"):
        TrajectoryService(ckpt_root).trajectory("../etc", 1, 2)


def test_gif_export(ckpt_root):
    service = TrajectoryService(ckpt_root)
    gif = Image.open(io.BytesIO(gif_bytes(service.trajectory("tiny-rtm", 1, 4), size=64)))
    assert gif.format == "GIF" and gif.n_frames == 5 and gif.size == (64, 64)


def test_projection_round_trip_and_placement(ckpt_root, tmp_path):
    g = TrajectoryService(ckpt_root).model("tiny-rtm").generator
    ws, steps = reference_cloud(g, 20)
    assert ws.shape == (20 * 4, 16) and steps.tolist()[:4] == [0, 1, 2, 3]
    pca = fit_pca(ws, steps)
    np.testing.assert_allclose(pca.place(ws), pca.ref_xy, rtol=1e-4, atol=1e-4)
    pca.save(tmp_path)
    loaded = load_projection(tmp_path)
    assert loaded.method == "pca" and loaded.ref_xy.shape == (80, 2)
    # Neighbour placement (the UMAP path): a reference point lands on its own position.
    knn = type(loaded)(method="umap", ref_ws=loaded.ref_ws, ref_xy=loaded.ref_xy, ref_steps=loaded.ref_steps,
                       mean=loaded.mean, axes=loaded.axes)
    np.testing.assert_allclose(knn.place(loaded.ref_ws[5:7]), loaded.ref_xy[5:7], atol=1e-3)


@pytest.mark.slow
def test_umap_projection_cli_writes_a_file_the_service_uses(ckpt_root, tmp_path):
    import shutil

    folder = tmp_path / "c"
    shutil.copytree(ckpt_root / "tiny-rtm", folder / "tiny-rtm")
    projection_main(["--checkpoint", str(folder / "tiny-rtm"), "--seeds", "40", "--method", "umap"])
    assert (folder / "tiny-rtm" / PROJECTION_FILE).is_file()
    with np.load(folder / "tiny-rtm" / PROJECTION_FILE, allow_pickle=False) as f:
        assert str(f["method"]) == "umap"
    service = TrajectoryService(folder)
    assert service.payload(service.trajectory("tiny-rtm", 9, 3))["reference"]["method"] == "UMAP"


def test_nearest_training_images(ckpt_root, tmp_path):
    import shutil

    from app.nearest import TRAINING_IMAGES_FILE, load_training_images
    from app.nearest import main as nearest_main
    from train.data import prepare_digits

    folder = tmp_path / "c"
    shutil.copytree(ckpt_root / "tiny-rtm", folder / "tiny-rtm")
    nearest_main(["--checkpoint", str(folder / "tiny-rtm"), "--data", str(prepare_digits(16, tmp_path / "d"))])
    assert (folder / "tiny-rtm" / TRAINING_IMAGES_FILE).is_file()
    ti = load_training_images(folder / "tiny-rtm")
    assert ti.nearest(ti.images[17], k=1) == [(17, 0.0)]   # an exact copy is found at distance 0
    service = TrajectoryService(folder)
    nearest = service.payload(service.trajectory("tiny-rtm", 4, 2))["nearest"]
    assert len(nearest) == 3 and nearest[0]["image"].startswith("data:image/png")
    assert nearest[0]["distance"] <= nearest[1]["distance"] <= nearest[2]["distance"]
    with pytest.raises(SystemExit):  # data at another resolution than the model
        nearest_main(["--checkpoint", str(folder / "tiny-rtm"), "--data", str(prepare_digits(8, tmp_path / "d8"))])
