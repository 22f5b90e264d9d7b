import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from rtm_core.projection import PROJECTION_FILE, fit_pca, load_projection, reference_cloud
from app.projection import main as projection_main
from app.encode import gif_bytes, image_data_uri
from app.inputs import UI_MAX_SEED, parse_seed, parse_steps, preview
from app.nearest import describe_label
from app.service import TrajectoryService
from rtm_core import seed_to_z, trajectory


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
    assert len(payload["frames"]) == 5 and all(f.startswith("data:image/png;base64,") for f in payload["frames"][1:])
    assert payload["trained_steps"] == 1 and payload["mapper"] == "mlp" and payload["reference_method"] == "PCA"
    assets = json.loads(service.model("tiny-mlp").assets_file.read_text())  # fetched once per checkpoint
    assert len(assets["reference"]["x"]) == len(assets["reference"]["step"]) > 0
    # Every seed starts from the same picture: it comes once, with the assets, not in each payload.
    assert payload["frames"][0] is None and assets["start_frame"] == image_data_uri(service.trajectory("tiny-mlp", 3, 4).frames[0])
    assert service.trajectory("tiny-mlp", 9, 4).frames[0].tobytes() == service.trajectory("tiny-mlp", 3, 4).frames[0].tobytes()
    assert payload["token_change"] is None  # a one-pass MLP has no tokens
    assert payload["pixel_change"].startswith("data:image/png;base64,")


def test_token_and_pixel_change_are_the_steps_differences(ckpt_root):
    service = TrajectoryService(ckpt_root)
    result = service.trajectory("tiny-rtm", 8, 5)
    g = service.model("tiny-rtm").generator
    z_H = trajectory(g, seed_to_z(8, g.z_dim)[None], 5, decode=False, tokens=True).tokens[:, 0]   # (6, T, d)
    np.testing.assert_allclose(result.token_change, (z_H[1:] - z_H[:-1]).norm(dim=-1).numpy(), rtol=1e-5, atol=1e-6)
    assert result.token_change.shape == (5, 4) and (result.token_change > 0).all()   # every token moves
    frames = result.frames.astype(float)
    np.testing.assert_allclose(result.pixel_change, np.abs(frames[1:] - frames[:-1]).mean(axis=-1), rtol=1e-6)
    # The strip image holds the 5 change maps stacked, one per step, on a square-root scale of
    # 16 levels: the peak is the brightest, a quarter of it half as bright.
    strip = Image.open(io.BytesIO(base64.b64decode(service.payload(result)["pixel_change"].split(",")[1])))
    assert strip.size == (16, 5 * 16) and strip.mode == "P"
    from app.encode import CHANGE_PALETTE, change_strip
    expected = np.round(np.sqrt(result.pixel_change / result.pixel_change.max()) * 15).astype(int)
    np.testing.assert_array_equal(np.asarray(strip).reshape(5, 16, 16), expected)
    # what the page shows: level k is the colour map's colour 17 k (0 black ... 15 its brightest)
    np.testing.assert_array_equal(np.asarray(strip.convert("RGB")).reshape(5, 16, 16, 3), CHANGE_PALETTE[expected * 17])
    quarter = Image.open(io.BytesIO(base64.b64decode(change_strip(np.full((1, 2, 2), 25.0), 100.0).split(",")[1])))
    assert (np.asarray(quarter) == 8).all()                             # sqrt(1/4) x 15 = 7.5 -> 8 of 15


def test_seed_walk_ends_at_both_seeds(ckpt_root):
    service = TrajectoryService(ckpt_root)
    walk = service.seed_walk("tiny-rtm", 3, 11, 5)
    assert walk.shape == (5, 16, 16, 3)
    for frame, seed in ((walk[0], 3), (walk[-1], 11)):
        final = service.trajectory("tiny-rtm", seed).frames[-1]
        assert np.abs(frame.astype(int) - final).max() <= 1   # slerp's ends are the seeds' own z
    assert len({f.tobytes() for f in walk}) == 5                 # and the frames between differ
    with pytest.raises(ValueError, match="frames must be a whole number between 2 and 16"):
        service.seed_walk("tiny-rtm", 3, 11, 100)


def test_long_inputs_are_refused_unread_and_never_echoed_whole(ckpt_root):
    service = TrajectoryService(ckpt_root)
    with pytest.raises(ValueError, match="1,000,000 characters long") as e:
        service.trajectory("x" * 1_000_000, 1)
    assert len(str(e.value)) < 300
    with pytest.raises(ValueError, match="1,000 characters of text") as e:
        service.trajectory("tiny-rtm", "1" * 1000)
    assert len(str(e.value)) < 200
    with pytest.raises(ValueError, match="unknown checkpoint") as e:
        service.trajectory("y" * 100, 1)
    assert "y" * 50 not in str(e.value)
    assert len(preview("z" * 10**7)) < 80


def test_broken_side_files_are_warnings_and_the_model_still_loads(ckpt_root, tmp_path):
    import shutil

    shutil.copytree(ckpt_root / "tiny-rtm", tmp_path / "broken")
    (tmp_path / "broken" / "eval.json").write_text("{not json")
    (tmp_path / "broken" / PROJECTION_FILE).write_bytes(b"not a zip file")
    service = TrajectoryService(tmp_path)
    model = service.model("broken")
    assert model.eval is None and model.projection.method == "pca"     # PCA fallback for the map
    assert len(model.warnings) == 2 and "eval.json could not be read" in " ".join(model.warnings)
    assert len(service.payload(service.trajectory("broken", 1))["frames"]) == 4


def test_loading_a_model_never_blocks_requests_for_another(ckpt_root, monkeypatch):
    import threading

    import app.service as service_module

    service = TrajectoryService(ckpt_root)
    service.model("tiny-rtm")
    entered, release = threading.Event(), threading.Event()
    real = service_module.load_checkpoint

    def slow_load(folder):
        entered.set()
        release.wait(10)
        return real(folder)

    monkeypatch.setattr(service_module, "load_checkpoint", slow_load)
    loader = threading.Thread(target=service.model, args=("tiny-mlp",))
    loader.start()
    try:
        assert entered.wait(10)
        done = threading.Event()
        threading.Thread(target=lambda: (service.trajectory("tiny-rtm", 77), done.set())).start()
        assert done.wait(10), "a request for a loaded model waited for another model's file read"
    finally:
        release.set()
        loader.join()


def test_labels_are_text(ckpt_root):
    assert describe_label("😀") == "😀 grinning face"
    hostile = '<img src=x onerror="alert(1)">'
    assert describe_label(hostile) == hostile   # unchanged text: the page puts it in as textContent
    assert len(describe_label("a" * 10_000)) == 64


@pytest.mark.parametrize("seed", [-1, UI_MAX_SEED + 1, 1.5, 3.5, "abc", None, float("nan"), float("inf"), True, "1e400"])
def test_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a whole number"):
        parse_seed(seed)


@pytest.mark.parametrize("steps", [0, 65, 10_000, "x", 2.5, -3])
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
    result = service.trajectory("tiny-rtm", 1, 4)
    gif = Image.open(io.BytesIO(gif_bytes(result.frames, size=128)))
    assert gif.format == "GIF" and gif.n_frames == 5 and gif.size == (128, 128)
    # every frame carries its step in the bottom-left corner: a white box with dark text
    plain = np.asarray(Image.fromarray(result.frames[0]).resize((128, 128), Image.Resampling.NEAREST).convert("RGB"))
    corner = np.asarray(gif.convert("RGB"))[-16:, :40]
    assert (corner != plain[-16:, :40]).any() and (corner.min(axis=2) < 100).any() and (corner.min(axis=2) > 230).any()


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
    assert service.payload(service.trajectory("tiny-rtm", 9, 3))["reference_method"] == "UMAP"


def test_nearest_training_images(ckpt_root, tmp_path):
    import shutil

    from app.nearest import TRAINING_IMAGES_FILE, load_training_images
    from train.ship import main as nearest_main
    from train.data import prepare_digits

    folder = tmp_path / "c"
    shutil.copytree(ckpt_root / "tiny-rtm", folder / "tiny-rtm")
    nearest_main(["--checkpoint", str(folder / "tiny-rtm"), "--data", str(prepare_digits(16, tmp_path / "d"))])
    assert (folder / "tiny-rtm" / TRAINING_IMAGES_FILE).is_file()
    ti = load_training_images(folder / "tiny-rtm")
    assert ti.nearest(ti.images[17], k=1) == [(17, 0.0)]   # an exact copy is found at distance 0
    service = TrajectoryService(folder)
    nearest = service.payload(service.trajectory("tiny-rtm", 4, 2))["nearest"]
    assert len(nearest) == 3 and [n["index"] for n in nearest][0] == ti.nearest(service.trajectory("tiny-rtm", 4, 2).frames[-1], 1)[0][0]
    assets = json.loads(service.model("tiny-rtm").assets_file.read_text())
    assert assets["training_count"] == len(ti.images) and assets["training_images"].startswith("data:image/png")
    assert nearest[0]["distance"] <= nearest[1]["distance"] <= nearest[2]["distance"]
    with pytest.raises(SystemExit):  # data at another resolution than the model
        nearest_main(["--checkpoint", str(folder / "tiny-rtm"), "--data", str(prepare_digits(8, tmp_path / "d8"))])


def test_frames_of_64_px_and_more_are_lossless_webp_and_small_ones_png():
    import base64
    import io

    from PIL import Image


    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    uri = image_data_uri(frame)
    assert uri.startswith("data:image/webp;base64,")   # 12-14 % fewer bytes than PNG, and faster
    back = np.array(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert np.array_equal(back, frame)                 # lossless: the model's own pixels
    assert image_data_uri(frame[:32, :32]).startswith("data:image/png;base64,")
    tall = np.zeros((64 * 300, 64, 3), np.uint8)       # beyond WebP's 16,383 px: stays PNG
    assert image_data_uri(tall).startswith("data:image/png;base64,")
