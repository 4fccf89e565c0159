"""sandbox.learning.metrics against independent brute-force computations, and the figure helpers on it.

The references here share no code with the module: IoU from plain Python min/max over
each pair (and, for boxes on a quarter-pixel grid, by counting grid cells), accuracy
and size classes by explicit loops with COCO's bounds written out as numbers.
"""
import math

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from sandbox.learning.metrics import (ACCURACY_KEYS, METRIC_COLUMNS, SIZE_CLASSES, THRESHOLDS,
                                 accuracy_curve, evaluate, size_bounds, size_class)

# COCO's bounds (cocoeval areaRng) for its 640 x 480 images, so unscaled at that size.
SMALL_BELOW, LARGE_FROM = 32 * 32, 96 * 96


def loop_iou(pred, true):
    """IoU of one pair, pred's corners ordered first, in plain Python."""
    px1, px2 = sorted([pred[0], pred[2]])
    py1, py2 = sorted([pred[1], pred[3]])
    tx1, ty1, tx2, ty2 = true
    width = min(px2, tx2) - max(px1, tx1)
    height = min(py2, ty2) - max(py1, ty1)
    inter = width * height if width > 0 and height > 0 else 0.0
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    return inter / union


def raster_iou(pred, true, step=0.25):
    """IoU by counting the cells of a grid of side `step` whose centres each box covers."""
    def covered(box):
        x1, x2 = sorted([box[0], box[2]])
        y1, y2 = sorted([box[1], box[3]])
        return {(i, j) for i in range(-40, 260) for j in range(-40, 260)
                if x1 < (i + 0.5) * step < x2 and y1 < (j + 0.5) * step < y2}
    a, b = covered(pred), covered(true)
    return len(a & b) / len(a | b)


def loop_class(box, small_below, large_from):
    area = (box[2] - box[0]) * (box[3] - box[1])
    if area < small_below:
        return "small"
    if area < large_from:
        return "medium"
    return "large"


def brute_force(pred, true, small_below, large_from):
    """Every metric of `evaluate` by loops over images and thresholds."""
    pred, true = [list(map(float, p)) for p in pred], [list(map(float, t)) for t in true]
    out = {}
    for prefix, size in [("", None)] + [(f"{s}_", s) for s in SIZE_CLASSES]:
        chosen = [i for i in range(len(true))
                  if size is None or loop_class(true[i], small_below, large_from) == size]
        out[prefix + "count"] = len(chosen)
        if not chosen:
            for key in METRIC_COLUMNS[1:14]:
                out[prefix + key] = math.nan
            continue
        ious = [loop_iou(pred[i], true[i]) for i in chosen]
        out[prefix + "mean_iou"] = sum(ious) / len(ious)
        shares = []
        for k in range(10, 20):  # thresholds k / 20 = 0.50, ..., 0.95
            hits = 0
            for value in ious:
                if value >= k / 20:
                    hits += 1
            shares.append(hits / len(ious))
            out[f"{prefix}accuracy_{5 * k}"] = hits / len(ious)
        out[prefix + "accuracy_mean"] = sum(shares) / 10
        errors = []
        for i in chosen:
            p = [min(pred[i][0], pred[i][2]), min(pred[i][1], pred[i][3]),
                 max(pred[i][0], pred[i][2]), max(pred[i][1], pred[i][3])]
            errors.append(sum(abs(p[c] - true[i][c]) for c in range(4)) / 4)
        out[prefix + "l1_pixels"] = sum(errors) / len(errors)
    return out


def assert_metrics_equal(got, expected):
    assert list(got) == METRIC_COLUMNS
    for key in METRIC_COLUMNS:
        assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12, nan_ok=True), key


# Hand-made (pred, true) pairs on a 640 x 480 image, every size class present.
HAND_MADE = [
    ([0, 0, 10, 10], [0, 0, 10, 20]),           # small, contained: IoU 0.5 exactly
    ([5, 5, 15, 15], [0, 0, 10, 10]),           # small, shifted: IoU 25 / 175
    ([30, 30, 40, 40], [0, 0, 10, 10]),         # small, apart: IoU 0
    ([10, 0, 20, 10], [0, 0, 10, 10]),          # small, touching: IoU 0
    ([50, 60, 10, 20], [10, 20, 50, 60]),       # medium, inverted both ways: IoU 1
    ([12, 20, 50, 60], [10, 20, 50, 60]),       # medium, IoU 0.95 exactly
    ([0, 0, 0, 40], [0, 0, 40, 40]),            # medium, zero width: IoU 0
    ([100, 100, 200, 220], [100, 100, 200, 200]),   # large, IoU 100 / 120
    ([0.5, 0.25, 300, 200], [0, 0, 300, 200]),      # large
    ([-20, -20, 80, 80], [0, 0, 100, 100]),         # large, partly outside the image
]


def test_thresholds_are_exactly_the_decimals_0_50_to_0_95():
    assert THRESHOLDS.tolist() == [k / 20 for k in range(10, 20)]
    assert ACCURACY_KEYS == [f"accuracy_{p}" for p in range(50, 100, 5)]


def test_metric_columns_are_the_keys_evaluate_returns_in_order():
    got = evaluate([[0, 0, 1, 1]], [[0, 0, 1, 1]], 64)
    assert list(got) == METRIC_COLUMNS
    assert METRIC_COLUMNS[:2] == ["count", "mean_iou"] and METRIC_COLUMNS[12:14] == ["accuracy_mean", "l1_pixels"]
    assert len(METRIC_COLUMNS) == 4 * 14 and "small_accuracy_75" in METRIC_COLUMNS


def test_loop_iou_agrees_with_counting_grid_cells():
    # the reference checked against a second, geometric one; all coordinates on the 0.25 grid
    for pred, true in HAND_MADE[:7]:
        assert loop_iou(pred, true) == pytest.approx(raster_iou(pred, true), abs=1e-12)


def test_evaluate_matches_brute_force_on_hand_made_cases():
    pred, true = zip(*HAND_MADE)
    got = evaluate(pred, true, (480, 640))
    assert_metrics_equal(got, brute_force(pred, true, SMALL_BELOW, LARGE_FROM))
    assert (got["small_count"], got["medium_count"], got["large_count"]) == (4, 3, 3)
    assert got["medium_accuracy_95"] == 2 / 3  # IoU 1 and IoU exactly 0.95 both reach 0.95


def test_evaluate_matches_brute_force_on_random_boxes_of_every_size():
    rng = np.random.default_rng(11)
    true_corner = rng.uniform(0, 40, (300, 2))
    true = np.hstack([true_corner, true_corner + np.exp(rng.uniform(0, np.log(60), (300, 2)))])
    pred = true + rng.normal(0, 3, (300, 4)) * rng.choice([0.1, 1, 5], (300, 1))
    got = evaluate(pred, true, 64)
    small_below, large_from = 1024 * 4096 / 307200, 9216 * 4096 / 307200
    assert_metrics_equal(got, brute_force(pred, true, small_below, large_from))
    assert min(got["small_count"], got["medium_count"], got["large_count"]) > 30


@pytest.mark.parametrize("k", range(10, 20))
def test_an_iou_exactly_at_a_threshold_reaches_it(k):
    got = evaluate([[0, 0, k, 1]], [[0, 0, 20, 1]], 640)  # IoU exactly k / 20
    assert got["mean_iou"] == k / 20
    assert accuracy_curve(got).tolist() == [1.0 if j <= k else 0.0 for j in range(10, 20)]
    assert got["accuracy_mean"] == pytest.approx((k - 9) / 10)


@pytest.mark.parametrize("image_size, scale", [((480, 640), 1), ((640, 480), 1), ((960, 1280), 4),
                                               ((240, 320), 0.25), (160, 1 / 12)])
def test_size_classes_at_the_exact_bounds(image_size, scale):
    small_side, large_side = 32 * math.sqrt(scale), 96 * math.sqrt(scale)
    assert size_bounds(image_size) == pytest.approx((1024 * scale, 9216 * scale), rel=1e-14)
    if scale in (1, 4, 0.25):  # sides exact in binary: the box's area is the bound itself
        boxes = [[0, 0, small_side, small_side], [0, 0, large_side, large_side],
                 [0, 0, small_side, small_side - 0.5], [0, 0, large_side - 0.5, large_side],
                 [large_side, large_side, 0, 0]]  # inverted, read as the box it spans
        assert size_class(boxes, image_size).tolist() == ["medium", "large", "small", "medium", "large"]
    boxes = [[0, 0, small_side * 0.999, small_side], [0, 0, small_side * 1.001, small_side],
             [0, 0, large_side * 0.999, large_side], [0, 0, large_side * 1.001, large_side]]
    assert size_class(boxes, image_size).tolist() == ["small", "medium", "medium", "large"]


def test_a_size_class_without_images_has_count_0_and_nan():
    got = evaluate([[0, 0, 2, 2], [1, 1, 3, 3]], [[0, 0, 2, 2], [0, 0, 3, 3]], (480, 640))
    assert got["small_count"] == 2 and got["small_mean_iou"] == pytest.approx((1 + 4 / 9) / 2)
    for size in ("medium", "large"):
        assert got[f"{size}_count"] == 0
        values = [got[f"{size}_{key}"] for key in METRIC_COLUMNS[1:14]]
        assert all(math.isnan(v) for v in values)


def test_an_inverted_prediction_scores_as_the_box_it_spans():
    true = [[0, 0, 10, 10], [0, 0, 10, 10]]
    inverted = evaluate([[12, 8, 2, -2], [2, 8, 12, -2]], true, 64)
    ordered = evaluate([[2, -2, 12, 8], [2, -2, 12, 8]], true, 64)
    assert_metrics_equal(inverted, ordered)
    assert ordered["mean_iou"] == pytest.approx(64 / 136) and ordered["l1_pixels"] == 2.0


def test_a_degenerate_or_non_finite_prediction_is_a_miss():
    got = evaluate([[5, 5, 5, 9], [np.nan, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 10, 10]] * 3, 64)
    assert got["mean_iou"] == pytest.approx(1 / 3) and got["accuracy_95"] == pytest.approx(1 / 3)
    assert got["l1_pixels"] == math.inf


@pytest.mark.parametrize("pred, true, image_size, message", [
    ([[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 1, 1]], 64, r"matching arrays of shape \(n, 4\)"),
    (np.zeros((0, 4)), np.zeros((0, 4)), 64, "n >= 1"),
    ([[0, 0, 1, 1]], [[0, 0, 0, 1]], 64, "true box .* non-positive width"),
    ([[0, 0, 1, 1]], [[0, 0, 1, 1]], (0, 64), "image_size must be one positive side"),
    ([[0, 0, 1, 1]], [[0, 0, 1, 1]], (3, 4, 5), "image_size must be one positive side"),
])
def test_bad_input_is_refused_with_a_message(pred, true, image_size, message):
    with pytest.raises(ValueError, match=message):
        evaluate(pred, true, image_size)


# The figure helpers in sandbox.views.plotting ------------------------------------------------------
LOSSES = ["l2", "l1", "iou", "giou"]


def drawn(fig):
    fig.draw_without_rendering()
    return fig


def outside(legend, ax):
    """True if the legend's drawn box does not overlap the axes' data area."""
    a, b = legend.get_window_extent(), ax.get_window_extent()
    return a.x0 >= b.x1 or a.x1 <= b.x0 or a.y0 >= b.y1 or a.y1 <= b.y0


def test_accuracy_curves_draw_each_loss_with_a_clipped_band_and_the_legend_outside():
    from sandbox.views.plotting import plot_accuracy_curves
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    curves = np.linspace(1, 0, 10)[None] * np.array([[1.0], [0.9], [0.6], [0.3]])
    artists = plot_accuracy_curves(ax, THRESHOLDS, curves, LOSSES, spreads=np.full((4, 10), 0.05))
    lines = artists[0:8:2]
    assert [line.get_label() for line in lines] == LOSSES
    np.testing.assert_array_equal(lines[2].get_xdata(), THRESHOLDS)
    np.testing.assert_array_equal(lines[2].get_ydata(), curves[2])
    band = artists[1].get_paths()[0].vertices  # the first loss's band: 1 + 0.05 clipped to 1
    assert band[:, 1].max() == 1.0 and band[:, 1].min() == 0.0
    assert outside(artists[-1], drawn(fig).axes[0])


def test_accuracy_curves_refuse_a_shape_that_does_not_fit_the_labels():
    from sandbox.views.plotting import plot_accuracy_curves
    with pytest.raises(ValueError, match=r"shape \(4, 10\)"):
        plot_accuracy_curves(Figure().subplots(), THRESHOLDS, np.zeros((3, 10)), LOSSES)


def test_gallery_draws_the_true_and_every_finite_prediction_in_pixel_coordinates_with_one_legend():
    from sandbox.views.plotting import plot_prediction_gallery
    images = np.random.default_rng(0).uniform(size=(3, 20, 30))
    true = np.array([[2.0, 3, 3, 4.5], [5, 5, 9, 8], [0, 0, 30, 20]])  # size bounds 2 and 18 px^2
    predictions = {"l2": true + 1, "iou": true[:, [2, 3, 0, 1]], "giou": np.full((3, 4), np.nan)}
    fig = Figure(figsize=(8, 3.5), layout="constrained")
    axes = fig.subplots(1, 3)
    artists = plot_prediction_gallery(axes, images, true, predictions, labels=["iou", "l2", "giou"])
    for k, ax in enumerate(axes):
        assert ax.images[0].get_extent() == [0, 30, 20, 0]  # pixel (i, j) is [j, j + 1] x [i, i + 1]
        edges = [tuple(patch.get_edgecolor()) for patch in ax.patches]
        assert len(ax.patches) == 3 and edges == [to_rgba("white"), to_rgba("C0"), to_rgba("C1")]
        inverted = ax.patches[1]  # "iou", drawn in C0: the box it spans, the true one
        assert (*inverted.get_xy(), inverted.get_width(), inverted.get_height()) == (
            true[k, 0], true[k, 1], true[k, 2] - true[k, 0], true[k, 3] - true[k, 1])
        assert ax.get_legend() is None
    assert [ax.get_title() for ax in axes] == ["small, 1 × 1.5 px", "medium, 4 × 3 px", "large, 30 × 20 px"]
    legend = artists[-1]
    assert fig.legends == [legend] and [t.get_text() for t in legend.get_texts()] == ["true box", "iou", "l2", "giou"]
    assert all(outside(legend, ax) for ax in drawn(fig).axes)


def test_gallery_refuses_missing_predictions_and_mismatched_axes():
    from sandbox.views.plotting import plot_prediction_gallery
    images, true = np.zeros((2, 8, 8)), [[0, 0, 4, 4], [1, 1, 5, 5]]
    with pytest.raises(ValueError, match=r"no predictions for \['giou'\]"):
        plot_prediction_gallery(Figure().subplots(1, 2), images, true, {"l2": true}, labels=["giou"])
    with pytest.raises(ValueError, match="and 3 axes"):
        plot_prediction_gallery(Figure().subplots(1, 3), images, true, {"l2": true})


def test_by_size_bars_have_the_values_and_an_empty_class_says_so():
    from sandbox.views.plotting import plot_by_size
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    values = np.array([[np.nan, 0.5, 0.7], [np.nan, 0.4, 0.9]])
    artists = plot_by_size(ax, values, ["l2", "giou"], SIZE_CLASSES, spreads=np.full((2, 3), 0.1),
                           counts=[0, 40, 60])
    assert [[bar.get_height() for bar in bars] for bars in artists[:2]] == [[0.5, 0.7], [0.4, 0.9]]
    assert artists[2].get_text() == "no images" and artists[2].get_position()[0] == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["small\n(0 images)", "medium\n(40 images)",
                                                             "large\n(60 images)"]
    assert outside(artists[-1], drawn(fig).axes[0])
