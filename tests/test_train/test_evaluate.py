import json

import numpy as np
import pytest
import torch

from rtm_core import Generator, sample, save_checkpoint, seeds_to_z, tiny
from rtm_core.metrics import seed_diversity
from train import evaluation as ev
from train.evaluate import main as evaluate_main
from train.data import prepare_digits


class RecordingExtractor:
    """A cheap deterministic feature map that remembers every batch of images it saw."""

    def __init__(self):
        self.seen = []
        self.proj = torch.randn(3 * 16 * 16, 8, generator=torch.Generator().manual_seed(0))

    def __call__(self, images):
        self.seen.append(images.clone())
        return images.flatten(1) @ self.proj


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    save_checkpoint(Generator(tiny("rtm")), root / "rtm", meta={"step": 3})
    save_checkpoint(Generator(tiny("mlp")), root / "mlp")
    data = prepare_digits(16, root / "digits")
    return root, str(data)


def test_metrics_at_h_use_images_made_with_exactly_h_steps(setup):
    root, data = setup
    g = Generator(tiny("rtm")).eval()
    extractor = RecordingExtractor()
    real = np.random.default_rng(0).normal(size=(40, 8))
    result = ev.evaluate(g, real, [1, 2, 5], num_samples=12, extractor=extractor, batch=5, progress=False)
    z = seeds_to_z(list(range(12)), g.z_dim)
    for h, seen in zip([1, 2, 5], [torch.cat(extractor.seen[3 * i:3 * i + 3]) for i in range(3)]):
        torch.testing.assert_close(seen, sample(g, z, h))
    assert [p["steps"] for p in result["per_step"]] == [1, 2, 5]
    t = result["trajectory"]
    assert t["steps"] == [1, 2, 3, 4, 5] and len(t["displacement_mean"]) == 5
    assert t["contraction_ratio_median"][0] is None and t["diverged_share"] == 0.0   # post-norm keeps it bounded


def test_a_one_pass_mapper_is_decoded_and_embedded_once_for_every_h():
    g = Generator(tiny("mlp")).eval()
    extractor, decoded = RecordingExtractor(), []
    synthesize = g.synthesize
    g.synthesize = lambda w: decoded.append(len(w)) or synthesize(w)
    real = np.random.default_rng(0).normal(size=(40, 8))
    result = ev.evaluate(g, real, [1, 2, 8], num_samples=12, extractor=extractor, batch=12, progress=False,
                         trajectories=False)
    assert decoded == [12] and len(extractor.seen) == 1    # its w after 2 or 8 steps is its w after 1
    first, *rest = result["per_step"]
    assert [p["steps"] for p in result["per_step"]] == [1, 2, 8]
    assert all({**p, "steps": 1} == first for p in rest)


def test_trajectory_statistics_on_a_hand_made_trajectory():
    """Three seeds halve their step each time; the fourth jumps to 1000 at the last step."""
    g = Generator(tiny("rtm")).eval()                                          # H = 3
    x = torch.tensor([[0.0, 1.0, 1.5, 1.75]] * 3 + [[0.0, 1.0, 2.0, 1000.0]])  # (B, S+1): the first coordinate of w
    ws = torch.zeros(4, 4, g.w_dim)
    ws[:, :, 0] = x.t()
    t = ev.trajectory_statistics(g, ws, seeds_to_z(list(range(4)), g.z_dim), image_seeds=2)
    assert t["steps"] == [1, 2, 3] and t["num_seeds"] == 4
    assert t["displacement_mean"] == pytest.approx([1.0, 0.625, 249.6875])
    assert t["contraction_ratio_median"] == [None, 0.5, 0.5]
    assert t["diverged_share"] == 0.25 and t["stalled_share"] == 0.0 and t["moving_share"] == [1.0, 1.0, 1.0]


def test_cli_writes_eval_json_and_reports(setup, tmp_path, monkeypatch):
    root, data = setup
    monkeypatch.setattr(ev, "EfficientNetLite0Features", RecordingExtractor)
    evaluate_main(["--checkpoint", str(root / "rtm"), "--compare", str(root / "mlp"), "--data", data,
             "--steps", "1,3,4", "--num-samples", "16", "--draws", "2", "--num-real", "100", "--out", str(tmp_path)])
    metric_keys = {"kid_effnet", "precision", "recall", "density", "coverage"}
    for name, mapper in (("rtm", "rtm"), ("mlp", "mlp")):
        result = json.loads((root / name / "eval.json").read_text())
        assert result["schema"] == 2 and result["mapper"] == mapper and result["num_real"] == 100
        assert result["kid_name"] == "kid_effnet"
        assert [p["steps"] for p in result["per_step"]] == [1, 3, 4]
        for p in result["per_step"]:
            assert set(p) == ({"steps", "fd_effnet", "kid_effnet_std", "draws", "draw_size", "memorisation_ratio",
                               "near_copy_share", "distinct_nearest", "diversity_seeds", "distinct_nearest_mean",
                               "distinct_nearest_sd", "distinct_nearest_blocks",
                               "distinct_nearest_uniform", "pixel_rms_nearest_median", "pixel_rms_data_nn_median",
                               "coverage_same_distribution"}
                              | metric_keys | {f"{k}_sd" for k in metric_keys})
            assert (p["draws"], p["draw_size"]) == (2, 8)
            assert all(np.isfinite(v) for v in p.values())
        assert "not comparable with FID" in result["features"]
    moving = json.loads((root / "mlp" / "eval.json").read_text())["trajectory"]["moving_share"]
    assert moving[0] == 1.0 and moving[1:] == [0.0, 0.0, 0.0]  # the MLP's one pass, then a fixed point
    html = (tmp_path / "compare_report.html").read_text()
    assert "FD-EffNet" in html and "data:image/png;base64" in html and "plotly" in html.lower()
    assert list((root.parent / root.name / "digits").glob("features-effnet-lite0-100-*.npy"))  # cached


def test_metrics_over_draws_are_means_with_spread():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(90, 4))
    out = ev.metrics_over_draws(real, fake, 3, "fd_effnet", "kid_effnet")
    each = [ev.metrics(real, part) for part in np.array_split(fake, 3)]
    for key in ("precision", "recall", "kid_effnet"):
        values = [e[key] for e in each]
        assert out[key] == pytest.approx(np.mean(values)) and out[key + "_sd"] == pytest.approx(np.std(values, ddof=1))
    assert out["fd_effnet"] == pytest.approx(ev.metrics(real, fake)["fd_effnet"])   # once, on all samples
    assert (out["draws"], out["draw_size"]) == (3, 30)


def test_memorisation_tells_copies_from_new_samples():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 8))
    copies = real[:40] + 1e-6
    assert ev.memorisation(real, copies) == {"memorisation_ratio": pytest.approx(0, abs=1e-4), "near_copy_share": 1.0}
    fresh = ev.memorisation(real, rng.normal(size=(200, 8)))
    assert 0.7 < fresh["memorisation_ratio"] < 1.5 and fresh["near_copy_share"] < 0.1


def test_seed_diversity_counts_distinct_nearest_training_images():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    as_images = torch.from_numpy(data).permute(0, 3, 1, 2).double() / 127.5 - 1          # exact copies
    collapsed = as_images[[3] * 50]                                                        # one image for every seed
    spread = as_images[np.arange(50) % 20] + 0.01 * torch.randn(50, 3, 4, 4, dtype=torch.float64)
    one = seed_diversity(collapsed, data, num_seeds=50)
    assert one["distinct_nearest"] == 1 and one["diversity_seeds"] == 50
    assert one["pixel_rms_nearest_median"] == pytest.approx(0, abs=1e-9)
    many = seed_diversity(spread, data, num_seeds=50)
    assert many["distinct_nearest"] == 20
    assert many["distinct_nearest_uniform"] == pytest.approx(20 * (1 - 0.95 ** 50))     # 18.5: uniform draws
    # Near-copies sit ~1 grey level from a training image; the images are ~100 apart (uniform noise).
    assert many["pixel_rms_nearest_median"] < 3 and many["pixel_rms_data_nn_median"] > 50
    assert seed_diversity(spread, data, num_seeds=10)["diversity_seeds"] == 10
    # Further whole blocks of seeds are counted too: blocks of 10 seeds over images 0-9, 10-19, 0-9,
    # 10-19, 0-9 (the 50 spread samples), and a sixth block of seeds all on image 3 (dropped: 5 seeds).
    blocks = seed_diversity(torch.cat([spread, collapsed[:15]]), data, num_seeds=10)
    assert blocks["distinct_nearest"] == 10 and blocks["distinct_nearest_blocks"] == 6
    assert blocks["distinct_nearest_mean"] == pytest.approx((5 * 10 + 1) / 6)
    assert blocks["distinct_nearest_sd"] == pytest.approx(np.std([10] * 5 + [1]))
    assert one["distinct_nearest_blocks"] == 1 and one["distinct_nearest_sd"] == 0
    with pytest.raises(ValueError, match="cannot be compared"):
        seed_diversity(spread[:, :, :2, :2], data)


def test_cli_errors(setup, capsys):
    root, data = setup
    for args in (["--steps", "0,2"], ["--steps", "a"], ["--num-samples", "2"], ["--num-samples", "8", "--draws", "3"]):
        with pytest.raises(SystemExit):
            evaluate_main(["--checkpoint", str(root / "rtm"), "--data", data, *args])
        assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_with_inception_weights_reports_fid(setup, tmp_path):
    from rtm_core.metrics.inception import FIDInceptionV3

    root, data = setup
    weights = tmp_path / "inception.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)
    evaluate_main(["--checkpoint", str(root / "rtm"), "--data", data, "--steps", "2", "--num-samples", "6", "--draws", "1",
             "--num-real", "12", "--inception", str(weights), "--out", str(tmp_path)])
    result = json.loads((root / "rtm" / "eval.json").read_text())
    assert result["fd_name"] == "fid" and "fid" in result["per_step"][0] and "standard FID" in result["features"]
    assert "FID (lower is better)" in (tmp_path / "eval_report.html").read_text()
