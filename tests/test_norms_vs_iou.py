"""Step 1 of the GIoU argument: Figure 1's boxes, the IoU band against brute force, rank correlations."""
import itertools
import json

import numpy as np
import pytest

import sandbox
from helpers import load_experiment
from sandbox.views import norms

experiment = load_experiment("norms_vs_iou")


def distance(boxes, target, norm, coords):
    """The coordinate distance written out afresh, for checking sandbox.views.norms."""
    difference = sandbox.box_convert(np.asarray(boxes, float), "xyxy", coords) - sandbox.box_convert(
        np.asarray(target, float), "xyxy", coords)
    return np.linalg.norm(difference, ord=2 if norm == "l2" else 1, axis=-1)


@pytest.mark.parametrize("norm, coords", list(itertools.product(["l1", "l2"], ["xyxy", "cxcywh"])))
def test_coordinate_distance_takes_lists_in_every_format(norm, coords):
    # in xyxy, box_convert gives lists back as lists, which once failed to subtract
    pred, target = [[0, 0, 2, 2], [1, 1, 4, 2]], [[1, 0, 3, 2], [0, 0, 1, 1]]
    assert np.allclose(norms.coordinate_distance(pred, target, norm, coords), distance(pred, target, norm, coords),
                       rtol=0, atol=1e-12)


@pytest.mark.portable
@pytest.mark.parametrize("panel", ["a", "b"])
def test_figure1_boxes_give_the_papers_printed_values(panel):
    paper, stored = norms.PAPER_FIGURE1[panel], norms.FIGURE1[panel]
    boxes, target = np.array(stored["boxes"]), np.array(stored["target"])
    assert np.all(np.round(boxes, 2) == boxes)  # two decimals at most
    printed = np.array([[paper["distance"], i, g] for i, g in paper["values"]])
    measured = np.stack([distance(boxes, target, paper["norm"], paper["coords"]),
                         sandbox.iou(boxes, target), sandbox.giou(boxes, target)], axis=-1)
    # Rounded to two decimals, every value is the paper's (GIoU paper, Figure 1), and clear of a tie.
    assert np.array_equal(np.round(measured, 2), printed)
    assert np.all(np.abs(measured - printed) < 0.005)


@pytest.mark.portable
@pytest.mark.parametrize("panel", ["a", "b"])
def test_the_optimiser_finds_boxes_with_the_papers_values_from_the_stated_starts(panel):
    solved, paper = norms.solve_figure1(panel), norms.PAPER_FIGURE1[panel]
    assert (solved["norm"], solved["coords"]) == (paper["norm"], paper["coords"])
    printed = [(paper["distance"], i, g) for i, g in paper["values"]]
    values = norms.figure1_values(solved["target"], solved["boxes"], paper["norm"], paper["coords"])
    assert all(norms.matches(v, p) for v, p in zip(values, printed))
    assert np.array_equal(np.round(values, 2), printed)


def test_a_box_the_optimiser_cannot_find_is_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(norms, "solve_figure1_box", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit) as stop:
        experiment.main(["--out", str(tmp_path / "out")])
    message = str(stop.value.code)
    assert "Figure 1 panel a: no two-decimal box found" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_nelder_mead_starts_again_where_it_stopped_when_no_rounded_box_matches(monkeypatch):
    paper, stored = norms.PAPER_FIGURE1["b"], norms.FIGURE1["b"]
    starts, fit = [], norms.fit

    def first_ends_early(start, target, **options):
        starts.append(np.array(start))
        return fit(start, target, **dict(options, maxiter=5 if len(starts) == 1 else options["maxiter"]))

    monkeypatch.setattr(norms, "fit", first_ends_early)
    (iou_value, giou_value), fractions = paper["values"][1], stored["starts"][1]
    box = norms.solve_figure1_box(stored["target"], paper["norm"], paper["coords"], paper["distance"],
                                  iou_value, giou_value, norms.start_box(stored["target"], fractions))
    assert len(starts) == 2 and not np.array_equal(starts[1], starts[0])
    values = norms.figure1_values(stored["target"], [box], paper["norm"], paper["coords"])[0]
    assert norms.matches(values, (paper["distance"], iou_value, giou_value))


def sphere_grid(norm, steps):
    """Offsets of norm 1 on a grid independent of the band's parameterisation.

    L2: the surface of the cube [-1, 1]^4 on a grid of `steps` + 1 points a side,
    pushed out to the unit sphere. L1: every integer 4-vector of L1 norm `steps`, over `steps`.
    """
    if norm == "l2":
        axis = np.linspace(-1, 1, steps + 1)
        faces = []
        for k, side in itertools.product(range(4), (-1.0, 1.0)):
            rest = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
            faces.append(np.insert(rest, k, side, axis=1))
        points = np.concatenate(faces)
        return points / np.linalg.norm(points, axis=1, keepdims=True)
    values = np.arange(-steps, steps + 1)
    grid = np.stack(np.meshgrid(values, values, values, indexing="ij"), -1).reshape(-1, 3)
    last = steps - np.abs(grid).sum(axis=1)
    grid, last = grid[last >= 0], last[last >= 0]
    points = np.concatenate([np.column_stack([grid, last]), np.column_stack([grid, -last])])
    return np.unique(points, axis=0) / steps


@pytest.mark.slow
@pytest.mark.parametrize("norm, coords, target", [
    ("l2", "xyxy", [0.0, 0.0, 2.0, 0.5]), ("l2", "cxcywh", [0.0, 0.0, 2.0, 0.5]),
    ("l1", "xyxy", [0.0, 0.0, 2.0, 0.5]), ("l1", "cxcywh", [0.0, 0.0, 2.0, 0.5]),
    ("l2", "xyxy", [1.0, 2.0, 2.5, 3.5]), ("l1", "cxcywh", [1.0, 2.0, 2.5, 3.5]),  # square: x, y swap searched
])
def test_band_extremes_agree_with_a_brute_force_grid_within_their_certified_error(norm, coords, target):
    target = np.array(target)
    unit = sphere_grid(norm, 36 if norm == "l2" else 40)
    for relative in (0.3, 1.0):
        radius = relative * norms.target_size(target)
        moved = sandbox.box_convert(target, "xyxy", coords) + radius * unit
        boxes = sandbox.box_convert(moved, coords, "xyxy")
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        for measure, metric in (("iou", sandbox.iou), ("giou", sandbox.giou)):
            brute = metric(boxes, target)
            for sense, pick in (("max", np.max), ("min", np.min)):
                value, gap, box = norms.band_extreme(target, radius, norm, coords, measure, sense)
                sign = 1 if sense == "max" else -1
                # the certified error covers every box the grid found ...
                assert sign * (pick(brute) - value) <= gap + 1e-9, (measure, sense, relative)
                # ... and the search is at least as good as the grid
                assert sign * (value - pick(brute)) >= -1e-3, (measure, sense, relative)
                if box is not None:  # the value is attained by a real box at exactly that distance
                    assert box[2] >= box[0] and box[3] >= box[1]
                    assert distance(box, target, norm, coords) == pytest.approx(radius, abs=1e-9)
                    assert metric(box, target) == pytest.approx(value, abs=1e-9)


@pytest.mark.slow
def test_iou_band_is_scale_invariant_and_its_minimum_reaches_zero_at_the_degenerate_radius():
    small, large = np.array([0.0, 0.0, 2.0, 0.5]), np.array([0.0, 0.0, 20.0, 5.0])
    relative = np.array([0.2, 0.8])
    band_small = norms.iou_band(small, relative * norms.target_size(small), "l2", "xyxy")
    band_large = norms.iou_band(large, relative * norms.target_size(large), "l2", "xyxy")
    for key in ("iou_min", "iou_max", "giou_max"):
        np.testing.assert_allclose(band_small[key], band_large[key], atol=1e-6)
    # 0.5 / sqrt(2): both y edges moved 0.25 toward each other flattens the box, IoU 0
    assert norms.degenerate_radius(small, "l2", "xyxy") == pytest.approx(0.5 / np.sqrt(2))
    flat = small + np.array([0.0, 0.25, 0.0, -0.25])
    assert sandbox.iou(flat, small) == 0 and distance(flat, small, "l2", "xyxy") == pytest.approx(0.5 / np.sqrt(2))


@pytest.mark.parametrize("measure", ["iou", "giou"])
@pytest.mark.parametrize("coords", ["xyxy", "cxcywh"])
def test_the_lipschitz_constant_bounds_the_change_between_random_nearby_boxes(measure, coords):
    target = np.array([0.0, 0.0, 2.0, 0.5])
    rng = np.random.default_rng(3)
    start = sandbox.box_convert(target, "xyxy", coords) + rng.normal(0, 0.6, size=(20000, 4))
    step = rng.normal(0, 0.05, size=(20000, 4))
    a, b = sandbox.box_convert(start, coords, "xyxy"), sandbox.box_convert(start + step, coords, "xyxy")
    real = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1]) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    metric = sandbox.iou if measure == "iou" else sandbox.giou
    change = np.abs(metric(a[real], target) - metric(b[real], target))
    lipschitz = norms.lipschitz_constant(target, measure, coords)
    assert np.all(change <= lipschitz * np.linalg.norm(step[real], axis=1) + 1e-12)


def test_rank_correlations_rank_the_iou_loss_perfectly_among_overlapping_pairs_and_flag_constants():
    pred, target = sandbox.optim.starts.random_box_pairs(2000, seed=1)
    rows = {row["loss"]: row for row in norms.rank_correlations(pred, target)}
    assert set(rows) == set(sandbox.LOSSES)
    assert rows["iou"]["spearman_overlapping"] == pytest.approx(1.0)
    assert rows["giou"]["spearman_overlapping"] > rows["l1"]["spearman_overlapping"]
    assert rows["l2"]["spearman_overlapping"] < 0.6  # L2 on corners orders boxes by IoU poorly
    apart = sandbox.iou(pred, target) == 0
    only_apart = norms.rank_correlations(pred[apart], target[apart], ["iou", "giou"])
    assert only_apart[0]["constant_all"] and np.isnan(only_apart[0]["spearman_all"])
    assert not only_apart[1]["constant_all"]


@pytest.mark.slow
def test_experiment_writes_figure1_the_band_and_the_table_and_replots_from_them(tmp_path, capsys):
    out = tmp_path / "run"
    experiment.main(["--out", str(out), "--targets", "0", "0", "2", "1", "--radii", "2", "--max-radius", "0.6",
                     "--pairs", "300", "--losses", "iou", "giou", "l1", "l2"])
    for name in (*experiment.FIGURES, "figure1.json", "band.npz", "spearman.csv", "config.json"):
        assert (out / name).stat().st_size > 0, name
    figure1 = json.loads((out / "figure1.json").read_text())
    assert figure1["a"]["norm"] == "l2" and figure1["a"]["coords"] == "xyxy"
    assert figure1["b"]["norm"] == "l1" and figure1["b"]["coords"] == "cxcywh"
    assert figure1["a"]["boxes"] == norms.FIGURE1["a"]["boxes"] and figure1["b"]["boxes"] == norms.FIGURE1["b"]["boxes"]
    band = np.load(out / "band.npz")
    assert band["0_l2_xyxy_iou_max"][0] == 1.0 and band["0_l2_xyxy_iou_max"].shape == (2,)
    printed = capsys.readouterr().out
    assert "Spearman" in printed and "l2" in printed
    (out / "figure1.png").unlink()
    experiment.main(["--out", str(out), "--replot"])
    assert (out / "figure1.png").exists()


@pytest.mark.parametrize("arguments, words", [
    (["--losses", "xiou"], "unknown loss 'xiou'"),
    (["--targets", "0", "0", "0", "1"], "non-positive width"),
    (["--targets", "0", "0", "1", "-1"], "non-positive height"),
    (["--targets", "0", "0", "1"], "four numbers per box"),
    (["--radii", "1"], "--radii must be at least 2"),
    (["--cells", "100"], "--cells must be at least 10000"),
    (["--replot"], "--replot needs figure1.json"),
])
def test_bad_arguments_stop_before_any_work(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), *arguments])
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("keep me")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(file)])
    assert "is a file" in capsys.readouterr().err and file.read_text() == "keep me"


def test_the_band_searchs_plain_numpy_measures_are_sandbox_iou_and_giou():
    pred, target = sandbox.optim.starts.random_box_pairs(2000, seed=3)
    for measure, function in [("iou", sandbox.iou), ("giou", sandbox.giou)]:
        np.testing.assert_allclose(norms.measure_values(pred, target[0], measure), function(pred, target[0]),
                                   rtol=0, atol=1e-15)
