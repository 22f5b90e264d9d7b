"""What the page says about each step, computed from the trajectory (app/captions.py), the path's
end through a fisheye, an intervention's effect in one sentence, the metric chart's takeaway, the
run-on overlay's data, and the API's types: each checked against figures worked out here."""


import numpy as np
import pytest

from app.captions import StepFacts, captions, chosen_step, describe_change, percent, seed_spread, shares_start, step_facts
from app.handlers import eval_takeaway
from app.inputs import MAX_STEPS, parse_seed
from app.projection import path_end
from app.service import TrajectoryService
from app.ui import whole_number_box
from rtm_core import Generator, seeds_to_z, tiny, trajectory


def facts(moved, visible, spread, nearest, trained):
    total = sum(moved)
    behind = np.cumsum([0] + moved) / total
    return [StepFacts(step=h, moved=([0] + moved)[h], path_share=([0] + moved)[h] / total, behind=float(behind[h]),
                      visible=visible[h], spread=spread[h], nearest=nearest[h]) for h in range(len(visible))]


def test_each_kind_of_step_gets_its_own_headline_from_the_figures():
    f = facts(moved=[60.0, 25.0, 10.0, 4.5, 0.5], visible=[0, 1.0, 0.6, 0.3, 0.1, 0.002],
              spread=[0, 0.3, 0.7, 0.9, 1.0, 1.0], nearest=[5, 5, 9, 2, 2, 2], trained=4)
    said = captions(f, trained=4, shared_start=True, label="😀 grinning face")
    assert said[0].startswith("The start: every seed begins from this same picture")
    assert said[1].startswith("Still a generic face: different seeds look alike here (they differ 30% as much")
    assert said[2].startswith("The face takes shape.")
    assert said[3].startswith("This face is chosen: from here on its nearest training image (😀 grinning face) "
                              "no longer changes; 95% of its path is behind it.")
    assert said[4].startswith("The face takes shape.")       # 4.5 % of the path, 10 % of the pixels
    assert said[5].startswith("Beyond the trained H = 4: the model never ran this far while it learned; only detail")
    assert "w moved 0.5, 0.5% of its whole path; 0.2% of the pixels changed by more than 3%." in said[5]
    assert chosen_step(f) == 3
    not_shared = captions(f, trained=5, shared_start=False)
    assert not_shared[0].startswith("The start: this seed's noise") and not_shared[5].startswith("Only detail changes now.")


def test_the_figures_are_the_trajectorys_own():
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    frames[1] = 100                                             # every pixel jumps
    frames[2] = frames[1]
    frames[2, :2] = 120                                         # 2 rows of 8 change by 20 > 8 levels
    frames[3] = frames[2]
    frames[3, 0, 0] = 125                                       # 5 levels: not visible
    f = step_facts(frames, np.array([3.0, 1.0, 0.0]), spread=np.array([0.0, 2.0, 4.0, 4.0]), trained=2,
                   nearest=[0, 1, 1, 1])
    assert [x.visible for x in f] == [0.0, 1.0, 0.25, 0.0]
    assert [x.path_share for x in f] == [0.0, 0.75, 0.25, 0.0] and [x.behind for x in f] == [0.0, 0.75, 1.0, 1.0]
    assert [x.spread for x in f] == [0.0, 0.5, 1.0, 1.0] and chosen_step(f) == 1


def test_seed_spread_is_the_mean_distance_from_the_seeds_mean_w():
    generator = Generator(tiny("rtm")).eval()
    spread = seed_spread(generator, 3, seeds=16)
    ws = trajectory(generator, seeds_to_z(range(16), generator.z_dim), 3, decode=False).ws.double()
    for h in range(4):
        assert spread[h] == pytest.approx((ws[h] - ws[h].mean(0)).norm(dim=1).mean().item())
    assert shares_start(spread) == (generator.config.mapper.state_init != "input")


@pytest.mark.parametrize("x, text", [(0, "0%"), (0.0004, "< 0.1%"), (0.004, "0.4%"), (0.0994, "9.9%"), (0.09996, "10%"), (0.372, "37%")])
def test_percent(x, text):
    assert percent(x) == text


def test_an_interventions_effect_in_one_sentence():
    assert describe_change([0, 0.075, 0.02, 0.004, 0.0]) == (
        "At most 7.5% of the pixels differ by more than 3%, at step 1; the recursion healed it by step 3 "
        "(under 0.5% differ from there on).")
    assert describe_change([0, 0.01, 0.3]) == "At most 30% of the pixels differ by more than 3%, at step 2; 30% still differ at the last step."
    assert describe_change([0, 0, 0]) == "No pixel differs from the original's by more than 3% at any step."


def test_the_fisheye_keeps_directions_orders_distances_and_starts_where_the_map_merges_steps():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(12, 32))
    ws = np.cumsum(np.concatenate([[np.zeros(32)], direction * (0.3 ** np.arange(12))[:, None]]), axis=0)
    displacement = np.linalg.norm(np.diff(ws, axis=0), axis=1)
    xy = np.stack([np.arange(13) * 10.0, np.zeros(13)], axis=1)  # apart on the map: the path rule decides
    end = path_end(ws, displacement, xy, span=100.0)
    behind = np.cumsum(displacement) / displacement.sum()
    assert end["from_step"] == int(np.argmax(behind >= 0.8)) + 1     # the step by which 80 % is walked
    radius = np.linalg.norm(np.array(end["xy"]), axis=1)
    truth = np.linalg.norm(ws[end["from_step"]:] - ws[-1], axis=1)
    assert np.all(np.diff(radius) < 0) and radius[-1] == 0          # farther from the last step = farther out
    moved = truth > 0
    assert np.allclose(radius[moved], np.log10(truth[moved] / truth[moved].min()) + 1, atol=1e-3)
    assert end["distance"] == [float(f"{d:.3g}") for d in truth]
    slow = np.cumsum(np.concatenate([[np.zeros(32)], direction * (0.9 ** np.arange(12))[:, None]]), axis=0)
    slow_moves = np.linalg.norm(np.diff(slow, axis=0), axis=1)
    assert path_end(slow, slow_moves, xy, span=100.0)["from_step"] >= 6           # 80 % walked late
    xy[4:] = xy[4]                                                    # steps 4 on: one point of the map
    assert path_end(slow, slow_moves, xy, span=100.0)["from_step"] == 4
    assert path_end(ws[:3], displacement[:2], xy[:3], 100.0) is None  # under three steps: nothing to magnify


def test_the_metric_takeaway_reads_eval_json():
    rows = [{"steps": h, "precision": p, "recall": r, "density": d, "coverage": c}
            for h, p, r, d, c in ((1, 0.2, 0.1, 0.3, 0.2), (4, 0.95, 0.68, 1.1, 0.83), (8, 0.98, 0.70, 1.12, 0.85))]
    said = eval_takeaway({"per_step": rows}, 8)
    assert "precision 0.98, recall 0.70, density 1.12, coverage 0.85" in said
    assert "About 98% of the samples look like real images, and they reach about 70% of the real images." in said
    assert "Density above 1" in said and "From step 4 on, every score is within 0.05" in said
    assert eval_takeaway(None, 8) == "" and eval_takeaway({"per_step": rows}, 3) == ""


def test_the_run_on_overlay_continues_the_same_path(ckpt_root):
    service = TrajectoryService(ckpt_root)
    short, long = service.trajectory("tiny-rtm", 3, 5), service.trajectory("tiny-rtm", 3, MAX_STEPS)
    b = service.beyond_payload("tiny-rtm", 3, 5)
    assert b["from_step"] == 5 and len(b["xy"]) == MAX_STEPS - 5 + 1
    assert np.allclose(b["xy"][0], short.xy[-1], atol=1e-3)           # it starts where the shown path ends
    further = long.displacement[5:].sum()
    assert f"w moved a further {further:.3g}" in b["summary"] and b["summary"].startswith("Run on from step 5 to 64")
    with pytest.raises(ValueError, match="already runs 64 steps"):
        service.beyond_payload("tiny-rtm", 3, 64)


def test_the_api_documents_whole_numbers_as_integers_and_errors_name_what_was_typed():
    box = whole_number_box(42)
    assert box.api_info() == {"type": "integer"} and box.example_payload() == 42 and box.get_block_name() == "number"
    with pytest.raises(ValueError, match=r"got 18,446,744,073,709,551,616 \(out of range\)"):
        parse_seed(float(2 ** 64))
    with pytest.raises(ValueError, match="the box is empty or does not hold a number") as refused:
        parse_seed(None)
    assert "1e309" not in str(refused.value)


def test_the_model_line_says_fine_tuned_where_a_stage_trained_on_other_data():
    """A newcomer's quick run starts from a shipped model: its 900 steps on their images are not
    '18,743 steps in 5 stages on my_images'."""
    from app.handlers import training_line

    shipped = {"step": 2000, "total_steps": 17843, "stages": 4, "data": "data/noto-faces-32",
               "data_source": "Noto faces", "lineage": [{"step": 5000, "data": "data/noto-faces-32"}] * 3}
    assert training_line(shipped) == "trained 17,843 steps in 4 stages on `Noto faces`"
    mine = {"step": 900, "total_steps": 18743, "stages": 5, "data": "data/mine-32", "data_source": "image folder my_images",
            "lineage": [*shipped["lineage"], {"step": 2000, "data": "data/noto-faces-32",
                                              "checkpoint": "/repo/checkpoints/noto-faces-rtm"}]}
    assert training_line(mine) == ("fine-tuned 900 steps on `image folder my_images` from `noto-faces-rtm` "
                                   "(17,000 steps before)")
    assert training_line({}) == "untrained weights"
