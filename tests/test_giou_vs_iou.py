"""GIoU against IoU (issue 8, point 3): the relation on random pairs, the experiment, the diagram."""
import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch

import sandbox
from helpers import load_experiment, positive_boxes
from sandbox.views.plotting import plot_enclosing_box, plot_giou_against_iou
from sandbox.optim.starts import random_box_pairs

experiment = load_experiment("giou_vs_iou")
ROUNDING = 1e-12  # GIoU - IoU where C = U is a few units of 1e-16, from computing C and U apart


def areas(a, b):
    """Enclosing area C and union area U of two ordered boxes, in plain Python, independently of sandbox."""
    c = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    shared = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return c, (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - shared


def union_is_a_rectangle(a, b):
    """C = U exactly: one box holds the other, or they span the same x (or y) and meet along the other."""
    def holds(outer, inner):
        return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]
    same_x = a[0] == b[0] and a[2] == b[2] and max(a[1], b[1]) <= min(a[3], b[3])
    same_y = a[1] == b[1] and a[3] == b[3] and max(a[0], b[0]) <= min(a[2], b[2])
    return holds(a, b) or holds(b, a) or same_x or same_y


@st.composite
def boxes_apart(draw):
    """Two boxes that do not overlap: B right of A by a gap >= 0 (touching included), maybe transposed."""
    a, b = draw(positive_boxes()), draw(positive_boxes())
    left = a[2] + draw(st.floats(0, 20))  # >= a[2] exactly: adding a gap >= 0 cannot round below
    b = np.array([left, b[1], left + b[2] - b[0], b[3]])
    if draw(st.booleans()):  # B above A instead
        a, b = a[[1, 0, 3, 2]], b[[1, 0, 3, 2]]
    return a, b


@given(positive_boxes(), positive_boxes())
def test_giou_never_exceeds_iou_and_equals_it_exactly_where_the_enclosing_box_is_the_union(a, b):
    i, g = float(sandbox.iou(a, b)), float(sandbox.giou(a, b))
    c, u = areas(a, b)
    assert g <= i + ROUNDING
    if union_is_a_rectangle(a, b):
        assert g == pytest.approx(i, abs=ROUNDING)
    elif (c - u) / c > 1e-9:  # C > U by more than rounding can hide
        assert g < i


def test_on_random_pairs_giou_equals_iou_for_nested_pairs_only_and_is_below_it_elsewhere():
    pred, target = random_box_pairs(10_000, seed=3)
    i, g = sandbox.iou(pred, target), sandbox.giou(pred, target)
    enclosing = sandbox.enclosing_box(pred, target)
    nested = np.all(enclosing == pred, axis=-1) | np.all(enclosing == target, axis=-1)
    assert 100 < nested.sum() < 1000 and 4000 < np.sum(i == 0) < 6000  # both kinds are really sampled
    assert np.all(np.abs(g - i)[nested] <= ROUNDING)
    assert np.all(g[~nested] < i[~nested])
    apart = i == 0
    assert np.all((g[apart] > -1) & (g[apart] <= 0))


@given(boxes_apart())
def test_giou_of_boxes_apart_is_in_minus_one_to_zero_and_is_minus_the_uncovered_share(pair):
    a, b = pair
    c, u = areas(a, b)
    assert float(sandbox.iou(a, b)) == 0
    g = float(sandbox.giou(a, b))
    assert -1 < g <= ROUNDING  # 0 where they share a whole edge (C = U), up to rounding
    assert g == pytest.approx(-(c - u) / c, abs=1e-12)


def test_giou_of_tiny_boxes_far_apart_approaches_but_never_reaches_minus_one():
    g = float(sandbox.giou([0, 0, 1e-3, 1e-3], [1e3, 1e3, 1e3 + 1e-3, 1e3 + 1e-3]))
    assert -1 < g < -1 + 1e-11


# The experiment.
def test_experiment_writes_its_files_and_its_data_shows_the_relation(tmp_path, capsys):
    experiment.main(["--out", str(tmp_path), "--pairs", "3000", "--seed", "7"])
    for name in ("giou_vs_iou.png", "enclosing_box.png", "pairs.npz", "config.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not list(tmp_path.glob(".*tmp*"))
    with np.load(tmp_path / "pairs.npz") as saved:
        saved = dict(saved)
    pred, target = saved["pred"], saved["target"]
    assert pred.shape == target.shape == (3000, 4)
    np.testing.assert_array_equal(pred, random_box_pairs(3000, 7)[0])
    np.testing.assert_allclose(saved["iou"], sandbox.iou(pred, target), rtol=0, atol=0)
    np.testing.assert_allclose(saved["giou"], sandbox.giou(pred, target), rtol=0, atol=0)
    i, g, c, u = saved["iou"], saved["giou"], saved["c"], saved["u"]
    np.testing.assert_allclose(g, i - (c - u) / c, atol=1e-15)
    assert np.all(c >= u * (1 - 1e-15)) and np.all(g <= i + ROUNDING)
    equal = (c - u) / c <= 1e-9
    assert equal.sum() > 0 and np.all(np.abs(g - i)[equal] <= ROUNDING) and np.all(g[~equal] < i[~equal])
    apart = i == 0
    assert 0 < apart.sum() < 3000 and np.all((g[apart] > -1) & (g[apart] <= 0))
    assert [str(n) for n in saved["example_names"]] == ["apart", "overlapping", "crossing", "nested"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pairs"] == 3000 and config["seed"] == 7 and "numpy" in config["versions"]
    measured = config["measured"]
    assert measured["apart"] == apart.sum() and measured["c_equals_u"] == equal.sum()
    assert measured["largest_giou_minus_iou"] <= ROUNDING
    assert measured["largest_giou_minus_iou_where_c_exceeds_u"] < 0
    assert -1 < measured["giou_range_apart"][0] < measured["giou_range_apart"][1] <= 0
    assert f"3000 pairs, {apart.sum()} apart" in capsys.readouterr().out


def test_replot_redraws_from_the_saved_files_without_sampling(tmp_path, monkeypatch):
    experiment.main(["--out", str(tmp_path), "--pairs", "500"])
    data = (tmp_path / "pairs.npz").read_bytes()
    for name in ("giou_vs_iou.png", "enclosing_box.png"):
        (tmp_path / name).unlink()
    monkeypatch.setattr(experiment, "random_box_pairs", lambda *a, **k: pytest.fail("--replot sampled pairs"))
    experiment.main(["--out", str(tmp_path), "--replot"])
    assert (tmp_path / "giou_vs_iou.png").stat().st_size > 0 and (tmp_path / "enclosing_box.png").exists()
    assert (tmp_path / "pairs.npz").read_bytes() == data


@pytest.mark.parametrize("arguments, words", [
    (["--pairs", "0"], "--pairs must be at least 1"),
    (["--pairs", "many"], "invalid int value: 'many'"),
    (["--seed", "-1"], "--seed must be a whole number >= 0"),
    (["--spread", "0"], "--spread must be a positive number"),
    (["--spread", "nan"], "--spread must be a positive number"),
    (["--replot"], "--replot needs pairs.npz, config.json"),
])
def test_bad_arguments_stop_before_any_work_with_one_line(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert words in error[-1]
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
    file = tmp_path / "results"
    file.write_text("not a folder")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(file)])
    assert "is a file; give a folder" in capsys.readouterr().err
    assert file.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["results"]


# The diagram helper.
PAIRS = {
    "apart": ([0, 0, 2, 1.5], [3, 1, 4.5, 3]),
    "overlapping": ([0, 0, 3, 2], [1.5, 1, 4, 3]),
    "crossing": ([0, 1, 4, 2], [1.5, 0, 2.5, 3]),
    "nested": ([1, 0.5, 2.5, 1.5], [0, 0, 4, 2.5]),
    "touching at a corner": ([0, 0, 1, 1], [1, 1, 3, 2]),
    "sharing an edge": ([0, 0, 1, 1], [1, 0, 2, 1]),
    "identical": ([0, 0, 1, 1], [0, 0, 1, 1]),
    "inverted corners": ([3, 2, 0, 0], [1.5, 1, 4, 3]),
}


def hatched(artists):
    (patch,) = [a for a in artists if isinstance(a, PathPatch)]
    return patch


@pytest.mark.parametrize("name", PAIRS)
def test_diagram_writes_the_library_values(name):
    a, b = PAIRS[name]
    artists = plot_enclosing_box(Figure().subplots(), a, b)
    text = artists[-1].get_text()
    printed = dict(re.findall(r"^(.*?) = (-?[\d.]+)$", text, flags=re.MULTILINE))
    i, g = float(sandbox.iou(a, b)), float(sandbox.giou(a, b))
    assert float(printed["IoU"]) == pytest.approx(i, abs=5e-4)
    assert float(printed["GIoU"]) == pytest.approx(g, abs=5e-4)
    assert float(printed["(C − U) / C"]) == pytest.approx(i - g, abs=5e-4)
    assert {t.get_text() for t in artists[:-1] if hasattr(t, "get_text")} == {"A", "B", "C"}


@pytest.mark.parametrize("name", PAIRS)
def test_diagram_hatches_exactly_the_part_of_the_enclosing_box_that_neither_box_covers(name):
    a, b = (sandbox.order_corners(np.array(box, dtype=float)) for box in PAIRS[name])
    path = hatched(plot_enclosing_box(Figure().subplots(), a, b)).get_path()
    c, u = areas(a, b)
    shoelace = sum(0.5 * abs(np.dot(p[:-1, 0], p[1:, 1]) - np.dot(p[1:, 0], p[:-1, 1]))
                   for p in path.to_polygons(closed_only=True))
    assert shoelace == pytest.approx(c - u, abs=1e-12)
    rng = np.random.default_rng(0)
    x1, y1, x2, y2 = sandbox.enclosing_box(a, b)
    points = rng.uniform([x1 - 1, y1 - 1], [x2 + 1, y2 + 1], size=(400, 2))
    def inside(box):
        return np.all((box[:2] < points) & (points < box[2:]), axis=-1)
    expected = inside(np.array([x1, y1, x2, y2])) & ~inside(a) & ~inside(b)
    if len(path.vertices):
        assert np.array_equal(path.contains_points(points), expected)
    else:
        assert not expected.any()


def test_diagram_refuses_more_than_one_pair():
    with pytest.raises(ValueError, match="one pair of boxes"):
        plot_enclosing_box(Figure().subplots(), [[0, 0, 1, 1]] * 2, [0, 0, 1, 1])


def test_scatter_colours_pairs_by_the_uncovered_share_and_marks_c_equal_u_and_pairs_apart():
    pred, target = random_box_pairs(2000, seed=1)
    i, g = sandbox.iou(pred, target), sandbox.giou(pred, target)
    penalty = i - g
    fig = Figure()
    ax, hist_ax = fig.subplots(1, 2, sharey=True)
    artists = plot_giou_against_iou(ax, i, g, penalty, hist_ax=hist_ax)
    points, same = artists[0], artists[1]
    assert isinstance(points, PathCollection) and isinstance(same, PathCollection)
    equal = penalty <= 1e-9
    assert len(same.get_offsets()) == equal.sum() > 0
    assert sorted(points.get_array()) == pytest.approx(sorted(penalty[~equal]))
    np.testing.assert_allclose(np.sort(same.get_offsets()[:, 0]), np.sort(i[equal]))
    bars = artists[-1]
    assert sum(bar.get_width() for bar in bars) == np.sum(i == 0)
