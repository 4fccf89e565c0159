"""Exact rotated IoU and GIoU (sandbox.geometry.polygons): the axis-aligned metrics at theta = 0, hand-computed
values on the hard cases, a plain-Python clipping on random pairs, gradients, and invariances.

tests/test_oriented_losses.py holds what every oriented loss shares (the transcription on 1000 random pairs,
zero at identity, the angle boundary, scaling, translation and symmetry); this file holds what is particular to
clipping polygons."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.spatial
from autograd import grad

from helpers import central_differences
from reference_losses import REFERENCE_ORIENTED_LOSSES
from sandbox.geometry.boxes import box_convert
from sandbox.geometry.oriented import corners
from sandbox.geometry.polygons import ENCLOSING_RULES, convex_hull_area, rotated_giou, rotated_iou
from sandbox.losses.formulas import giou, iou
from sandbox.losses.oriented import ORIENTED_LOSSES

SQRT2 = math.sqrt(2)


def random_pairs(count, seed, sizes=(0.1, 3.0), angles=(-np.pi, np.pi)):
    """Oriented (pred, target) pairs with centres in [-2, 2]^2, overlapping and apart."""
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(-2, 2, (2, count, 2)), rng.uniform(*sizes, (2, count, 2)),
                            rng.uniform(*angles, (2, count, 1))], axis=-1)
    return boxes[0], boxes[1]


def turned(boxes, angle, about=(0.0, 0.0)):
    """The boxes rotated together by `angle` about the point `about`."""
    boxes = np.array(boxes, dtype=float)
    x, y = boxes[..., 0] - about[0], boxes[..., 1] - about[1]
    c, s = math.cos(angle), math.sin(angle)
    boxes[..., 0], boxes[..., 1] = about[0] + c * x - s * y, about[1] + s * x + c * y
    boxes[..., 4] += angle
    return boxes


def as_xyxy(boxes):
    return box_convert(np.asarray(boxes)[..., :4], "cxcywh", "xyxy")


def in_form(boxes, form):
    """Boxes at theta = 0 written in another form of the same rectangles."""
    if form == "theta = pi":
        return boxes + [0, 0, 0, 0, np.pi]
    if form == "sides swapped, theta = pi/2":
        return boxes[..., [0, 1, 3, 2, 4]] + [0, 0, 0, 0, np.pi / 2]
    return boxes


@pytest.mark.parametrize("form", ["theta = 0", "theta = pi", "sides swapped, theta = pi/2"])
def test_at_theta_0_both_equal_the_axis_aligned_iou_and_giou_on_a_thousand_pairs(form):
    preds, targets = random_pairs(1000, seed=0, angles=(0.0, 0.0))
    expected_iou, expected_giou = iou(as_xyxy(preds), as_xyxy(targets)), giou(as_xyxy(preds), as_xyxy(targets))
    assert 0.2 < (expected_iou > 0).mean() < 0.8  # overlapping and apart pairs both
    stacked = np.where(np.arange(5) % 2 == 0, targets, preds)  # the target's cx and w, the prediction's cy and h
    expected_stacked = giou(as_xyxy(stacked), as_xyxy(targets))
    preds, targets, stacked = (in_form(boxes, form) for boxes in (preds, targets, stacked))
    np.testing.assert_allclose(rotated_iou(preds, targets), expected_iou, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rotated_giou(preds, targets, enclosing="axis_aligned_box"), expected_giou,
                               rtol=0, atol=1e-12)
    # the default encloses by the convex hull, inside the enclosing box: GIoU at least the axis-aligned one,
    # and the same where the hull is the box (the boxes span the same x range)
    hull_giou = rotated_giou(preds, targets)
    assert (hull_giou >= expected_giou - 1e-12).all() and (hull_giou > expected_giou + 1e-3).mean() > 0.3
    np.testing.assert_allclose(rotated_giou(stacked, targets), expected_stacked, rtol=0, atol=1e-12)


TARGET = np.array([0.0, 0.0, 2.0, 1.0, 0.0])
SQUARE = np.array([0.0, 0.0, 2.0, 2.0, 0.0])
# (pred, target, IoU, GIoU with the convex hull), each value worked out by hand in its comment
KNOWN_VALUES = {
    # the same rectangle, twice: IoU 1, C = U
    "identical": (TARGET, TARGET, 1.0, 1.0),
    # a shared full edge: no overlap, and the hull is the 3 x 1 rectangle U
    "touching at an edge": ([1.5, 0.0, 1.0, 1.0, 0.0], TARGET, 0.0, 0.0),
    # corner to corner: the hull is the 3 x 2 box [-1, 2] x [-0.5, 1.5] less two triangles, 1/2 and 1: C = 4.5, U = 3
    "touching at a corner": ([1.5, 1.0, 1.0, 1.0, 0.0], TARGET, 0.0, -1 / 3),
    # a 0.5 x 0.5 square turned by 1 rad, its corners 0.354 from the centre, inside the 2 x 1 target: 0.25 / 2
    "nested": ([0.1, 0.0, 0.5, 0.5, 1.0], TARGET, 0.125, 0.125),
    # the left half of the target: three edges shared, IoU 1 / 2, C = U
    "sharing three edges": ([-0.5, 0.0, 1.0, 1.0, 0.0], TARGET, 0.5, 0.5),
    # a 2 x 2 square and itself turned 45 degrees: the intersection is the regular octagon of area
    # 8 (sqrt 2 - 1), the union 8 (2 - sqrt 2), so IoU = 1 / sqrt 2; the hull is the regular octagon of
    # circumradius sqrt 2, area 2 sqrt 2 R^2 = 4 sqrt 2
    "a square and itself turned 45 degrees": (
        [0.0, 0.0, 2.0, 2.0, np.pi / 4], SQUARE, 1 / SQRT2,
        1 / SQRT2 - (4 * SQRT2 - 8 * (2 - SQRT2)) / (4 * SQRT2)),
    # a plus sign, 1 x 3 over 3 x 1: overlap 1, union 5; the hull is the 3 x 3 box less four corner triangles
    # of area 1/2: C = 7
    "crossing (a plus sign)": ([0.0, 0.0, 1.0, 3.0, 0.0], [0.0, 0.0, 3.0, 1.0, 0.0], 0.2, 0.2 - 2 / 7),
    # a point inside: nothing shared, C = U = 2
    "zero-size prediction inside": ([0.3, 0.2, 0.0, 0.0, 0.4], TARGET, 0.0, 0.0),
    # a point at (3, 0): the hull adds the triangle (1, -0.5), (3, 0), (1, 0.5) of area 1: C = 3, U = 2
    "zero-size prediction apart": ([3.0, 0.0, 0.0, 0.0, 0.0], TARGET, 0.0, -1 / 3),
    # a 1 x 1 box from 2.5 to 3.5 level with the target: the hull is the 4.5 x 1 box, U = 3
    "apart, level": ([3.0, 0.0, 1.0, 1.0, 0.0], TARGET, 0.0, -1 / 3),
    # the same box read with negative sizes: |w|, |h|
    "negative sizes": ([-0.5, 0.0, -1.0, -1.0, 0.0], TARGET, 0.5, 0.5),
}


@pytest.mark.parametrize("angle", [0.0, 0.7, -2.9])
@pytest.mark.parametrize("case", KNOWN_VALUES)
def test_hard_cases_have_their_hand_computed_values_at_any_common_angle(case, angle):
    pred, target, expected_iou, expected_giou = KNOWN_VALUES[case]
    pred, target = turned(pred, angle, about=(0.3, -0.2)), turned(target, angle, about=(0.3, -0.2))
    assert rotated_iou(pred, target) == pytest.approx(expected_iou, abs=1e-12)
    assert rotated_giou(pred, target) == pytest.approx(expected_giou, abs=1e-12)
    if not case.startswith(("zero", "negative")):  # a target must have a positive size
        assert rotated_iou(target, pred) == pytest.approx(expected_iou, abs=1e-12)
        assert rotated_giou(target, pred) == pytest.approx(expected_giou, abs=1e-12)


def test_apart_boxes_have_giou_below_zero_and_it_grows_as_they_approach():
    target = np.array([0.0, 0.0, 2.0, 1.0, 0.3])
    gaps = np.linspace(0.1, 20.0, 50)
    preds = np.stack([2.0 + gaps, 0 * gaps, 1 + 0 * gaps, 1.5 + 0 * gaps, 0.9 + 0 * gaps], axis=-1)
    preds = turned(preds, 0.3)
    values = rotated_giou(preds, target)
    assert (rotated_iou(preds, target) == 0).all() and (values < 0).all() and (np.diff(values) < 0).all()


def test_random_pairs_match_plain_sutherland_hodgman_and_scipys_hull_to_1e_10():
    # sizes over three orders of magnitude, so that many pairs are nested as well as crossing and apart
    rng = np.random.default_rng(1)
    count = 2000
    centres = rng.uniform(-2, 2, (2, count, 2))
    sizes = np.exp(rng.uniform(np.log(0.01), np.log(10.0), (2, count, 2)))
    angles = rng.uniform(-4, 4, (2, count, 1))
    preds, targets = np.concatenate([centres, sizes, angles], axis=-1)
    expected = np.array([[1 - REFERENCE_ORIENTED_LOSSES["rotated_iou"](p, t),
                          1 - REFERENCE_ORIENTED_LOSSES["rotated_giou"](p, t)] for p, t in zip(preds, targets)])
    areas = np.prod(sizes, axis=-1)
    nested = np.isclose(expected[:, 0], np.minimum(*areas) / np.maximum(*areas), rtol=1e-9)
    assert (expected[:, 0] > 0).mean() > 0.2 and nested.sum() > 20  # overlapping, nested among them, and apart
    np.testing.assert_allclose(rotated_iou(preds, targets), expected[:, 0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(rotated_giou(preds, targets), expected[:, 1], rtol=0, atol=1e-10)


def test_pairs_snapped_to_each_others_edges_match_the_clipping_to_1e_12():
    # the prediction's centre and sides at multiples of a quarter of the target's sides, in the target's frame,
    # at the same angle, a quarter or half turn on, or turned by 1e-13, 1e-9 or 1e-6: shared and collinear edges,
    # corners on edges, slivers, zero sizes
    rng = np.random.default_rng(8)
    count = 3000
    _, targets = random_pairs(count, seed=8, sizes=(0.2, 3.0))
    steps, fractions = rng.integers(-4, 5, (count, 2)) / 4, rng.integers(0, 9, (count, 2)) / 4
    u, v = steps[:, 0] * targets[:, 2], steps[:, 1] * targets[:, 3]
    cos, sin = np.cos(targets[:, 4]), np.sin(targets[:, 4])
    turns = rng.choice([0.0, np.pi / 2, np.pi, 1e-13, -1e-9, 1e-6, np.pi / 4], count)
    preds = np.stack([targets[:, 0] + cos * u - sin * v, targets[:, 1] + sin * u + cos * v,
                      fractions[:, 0] * targets[:, 2], fractions[:, 1] * targets[:, 3], targets[:, 4] + turns], axis=-1)
    expected = np.array([[1 - REFERENCE_ORIENTED_LOSSES["rotated_iou"](p, t),
                          1 - REFERENCE_ORIENTED_LOSSES["rotated_giou"](p, t)] for p, t in zip(preds, targets)])
    np.testing.assert_allclose(rotated_iou(preds, targets), expected[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rotated_giou(preds, targets), expected[:, 1], rtol=0, atol=1e-12)


def test_the_hull_area_is_scipys_convex_hull_of_the_eight_corners():
    # Qhull, independent of the package and of the transcription's monotone chain
    preds, targets = random_pairs(500, seed=9)
    expected = [scipy.spatial.ConvexHull(np.concatenate([np.stack(corners(p), -1), np.stack(corners(t), -1)])).volume
                for p, t in zip(preds, targets)]
    np.testing.assert_allclose(convex_hull_area(preds, targets), expected, rtol=1e-12)


def test_the_axis_aligned_rule_matches_its_transcription_and_an_unknown_rule_is_refused():
    preds, targets = random_pairs(300, seed=2)
    expected = [1 - REFERENCE_ORIENTED_LOSSES["rotated_giou"](p, t, enclosing="axis_aligned_box")
                for p, t in zip(preds, targets)]
    np.testing.assert_allclose(rotated_giou(preds, targets, enclosing="axis_aligned_box"), expected, atol=1e-10)
    # the smallest axis-aligned box holds the convex hull
    assert (rotated_giou(preds, targets, "axis_aligned_box") <= rotated_giou(preds, targets) + 1e-12).all()
    with pytest.raises(ValueError, match="unknown enclosing rule 'box'; valid: convex_hull, axis_aligned_box"):
        rotated_giou(preds, targets, enclosing="box")
    assert list(ENCLOSING_RULES) == ["convex_hull", "axis_aligned_box"]


def test_input_is_checked_on_plain_arrays_naming_the_bad_box():
    with pytest.raises(ValueError, match="target box .* has non-positive width"):
        rotated_iou(TARGET, [0.0, 0.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 5\)"):
        rotated_giou([0.0, 0.0, 1.0, 1.0], TARGET)


METRICS = {"rotated_iou": rotated_iou, "rotated_giou": rotated_giou,
           "rotated_giou:axis_aligned_box": lambda p, t: rotated_giou(p, t, "axis_aligned_box")}


def overlapping_pairs(count, seed):
    """Random pairs that overlap without nesting or coinciding: away from the kinks of the clipping."""
    preds, targets = random_pairs(4 * count, seed, sizes=(0.5, 2.5))
    preds[:, :2] = targets[:, :2] + 0.4 * (preds[:, :2] - targets[:, :2])
    values = rotated_iou(preds, targets)
    chosen = (values > 0.05) & (values < 0.9)
    return preds[chosen][:count], targets[chosen][:count]


@pytest.mark.parametrize("name", METRICS)
def test_gradients_match_central_differences_for_pred_and_target(name):
    metric = METRICS[name]
    preds, targets = overlapping_pairs(15, seed=3)
    apart_preds, apart_targets = random_pairs(40, seed=4)
    apart = rotated_iou(apart_preds, apart_targets) == 0
    preds, targets = np.concatenate([preds, apart_preds[apart][:5]]), np.concatenate([targets, apart_targets[apart][:5]])
    for pred, target in zip(preds, targets):
        for wrt, objective in [("pred", lambda x: metric(x, target)), ("target", lambda x: metric(pred, x))]:
            point = pred if wrt == "pred" else target
            np.testing.assert_allclose(grad(objective)(point), central_differences(objective, point),
                                       rtol=1e-6, atol=1e-8, err_msg=f"{wrt} of {pred} {target}")


def test_the_iou_losss_gradient_is_exactly_zero_while_the_boxes_are_apart():
    preds, targets = random_pairs(500, seed=5)
    apart = rotated_iou(preds, targets) == 0
    preds, targets = preds[apart], targets[apart]
    assert len(preds) > 100
    loss = ORIENTED_LOSSES["rotated_iou"]
    assert (grad(lambda p: anp.sum(loss(p, targets)))(preds) == 0).all()
    assert (grad(lambda t: anp.sum(loss(preds, t)))(targets) == 0).all()
    assert (np.abs(grad(lambda p: anp.sum(ORIENTED_LOSSES["rotated_giou"](p, targets)))(preds)).sum(-1) > 0).all()


@pytest.mark.parametrize("name", ["rotated_iou", "rotated_giou"])
def test_at_the_target_the_gradient_is_zero_whichever_way_the_same_rectangle_is_written(name):
    # the loss is smallest there; as for the axis-aligned losses (whose min and max split a tie evenly), the
    # gradient is the mean of the one-sided ones, 0, not one side's, which would push a box off its target
    loss = ORIENTED_LOSSES[name]
    _, targets = random_pairs(50, seed=10)
    for form in [lambda b: b, lambda b: b[:, [0, 1, 3, 2, 4]] + [0, 0, 0, 0, np.pi / 2],
                 lambda b: b + [0, 0, 0, 0, np.pi]]:
        np.testing.assert_allclose(grad(lambda p: anp.sum(loss(p, targets)))(form(targets)), 0.0, atol=1e-12)
        np.testing.assert_allclose(grad(lambda t: anp.sum(loss(form(targets), t)))(targets), 0.0, atol=1e-12)


R = np.array([0.4, -0.3, 2.0, 1.0, 0.6])
DEGENERATE = {
    "identical": (R, R),
    "the same rectangle, sides swapped": (R[[0, 1, 3, 2, 4]] + [0, 0, 0, 0, np.pi / 2], R),
    "touching at an edge": (turned([1.5, 0.0, 1.0, 1.0, 0.0], 0.6), turned(TARGET, 0.6)),
    "touching at a corner": (turned([1.5, 1.0, 1.0, 1.0, 0.0], 0.6), turned(TARGET, 0.6)),
    "sharing three edges": (turned([-0.5, 0.0, 1.0, 1.0, 0.0], 0.6), turned(TARGET, 0.6)),
    "parallel, overlapping in part": (turned([0.5, 0.25, 2.0, 1.0, 0.0], 0.6), turned(TARGET, 0.6)),
    "nested": (turned([0.1, 0.0, 0.5, 0.5, 1.0], 0.6), turned(TARGET, 0.6)),
    "crossing at right angles": (R[[0, 1, 2, 3, 4]] + [0, 0, 0, 0, np.pi / 2], R),
    "zero width on the target's edge": (turned([1.0, 0.0, 0.0, 0.6, 0.0], 0.6), turned(TARGET, 0.6)),
    "zero width": ([0.4, -0.3, 0.0, 1.0, 0.1], R),
    "zero size at the target's centre": ([0.4, -0.3, 0.0, 0.0, 0.0], R),
    "zero size on a corner of the target": (turned([1.0, 0.5, 0.0, 0.0, 0.0], 0.6), turned(TARGET, 0.6)),
    "zero size, apart": ([5.0, 5.0, 0.0, 0.0, 0.0], R),
    "negative sizes": (R * [1, 1, -1, -1, 1], R),
    "apart": ([5.0, -3.0, 1.0, 3.0, 2.0], R),
    "far apart": ([1e4, 1e4, 1.0, 3.0, 2.0], R),
    "tiny boxes": ([1e-6, 0.0, 1e-6, 2e-6, 0.2], [0.0, 1e-6, 2e-6, 1e-6, 0.0]),
    "huge coordinates": (R + [1e6, 1e6, 0, 0, 0], R + [1e6 + 0.5, 1e6, 0, 0, 0.1]),
}


@pytest.mark.parametrize("name", METRICS)
def test_values_and_gradients_are_finite_in_every_degenerate_case(name):
    metric = METRICS[name]
    for case, (pred, target) in DEGENERATE.items():
        pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
        value = metric(pred, target)
        gradients = grad(lambda p: metric(p, target))(pred), grad(lambda t: metric(pred, t))(target)
        assert np.isfinite(value) and -1 < value <= 1 + 1e-12, (case, value)
        assert all(np.isfinite(g).all() for g in gradients), (case, gradients)


def test_a_batch_broadcasts_like_the_pairs_one_at_a_time():
    preds, targets = random_pairs(24, seed=6)
    grid = rotated_giou(preds.reshape(4, 6, 5)[:, :, None, :], targets.reshape(4, 6, 5)[:, None, :, :])
    assert grid.shape == (4, 6, 6)
    assert grid[2, 3, 5] == pytest.approx(rotated_giou(preds[2 * 6 + 3], targets[2 * 6 + 5]), abs=1e-15)


@pytest.mark.parametrize("name", METRICS)
def test_invariant_when_both_boxes_are_turned_together_about_any_point(name):
    metric, (preds, targets) = METRICS[name], random_pairs(300, seed=7)
    value = metric(preds, targets)
    for angle, about in [(np.pi / 2, (0.0, 0.0)), (np.pi, (1.0, -2.0)), (-0.8, (-3.0, 0.5))]:
        moved = metric(turned(preds, angle, about), turned(targets, angle, about))
        if name.endswith("axis_aligned_box"):  # the rule is tied to the axes: only quarter turns keep it
            assert angle not in (np.pi / 2, np.pi) or np.allclose(moved, value, rtol=0, atol=1e-12)
            continue
        np.testing.assert_allclose(moved, value, rtol=0, atol=1e-12)
