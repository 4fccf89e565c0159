import numpy as np
import pytest
from autograd import grad
from hypothesis import assume, given
from hypothesis import strategies as st

from helpers import HARD_CASES, TARGET, positive_boxes
from sandbox import LOSSES, get_loss, giou, iou, l1_loss, l2_loss

# (pred, target, IoU, GIoU), the arithmetic in the comment: I intersection, U union,
# C the enclosing box's area; GIoU = I/U - (C - U)/C.
HAND_WORKED = {
    "identical": ([0, 0, 2, 1], [0, 0, 2, 1], 1.0, 1.0),  # I = U = C = 2
    "half overlapping": ([0, 0, 2, 1], [1, 0, 3, 1], 1 / 3, 1 / 3),  # I = 1, U = 3, C = 3
    "overlapping diagonally": ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7, 1 / 7 - 2 / 9),  # I 1, U 7, C 9
    "touching at an edge": ([0, 0, 1, 1], [1, 0, 2, 1], 0.0, 0.0),  # I = 0, U = C = 2
    "touching at a corner": ([0, 0, 1, 1], [1, 1, 2, 2], 0.0, -0.5),  # I = 0, U = 2, C = 4
    "nested": ([1, 1, 2, 2], [0, 0, 4, 4], 1 / 16, 1 / 16),  # I = 1, U = C = 16
    "far apart": ([0, 0, 1, 1], [9, 9, 10, 10], 0.0, -0.98),  # I = 0, U = 2, C = 100
}


@pytest.mark.parametrize("case", HAND_WORKED)
def test_iou_and_giou_match_hand_worked_values(case):
    pred, target, expected_iou, expected_giou = HAND_WORKED[case]
    assert iou(pred, target) == pytest.approx(expected_iou, abs=1e-15)
    assert giou(pred, target) == pytest.approx(expected_giou, abs=1e-15)
    assert LOSSES["iou"](pred, target) == pytest.approx(1 - expected_iou, abs=1e-15)
    assert LOSSES["giou"](pred, target) == pytest.approx(1 - expected_giou, abs=1e-15)


def test_inverted_prediction_is_read_as_the_ordered_box():
    assert giou([3, 1, 1, 0], [1, 0, 3, 1]) == 1.0


def test_l1_and_l2_on_corners_and_on_centre_and_size():
    pred, target = [0, 0, 2, 2], [1, 0, 4, 4]
    # corners: differences (-1, 0, -2, -2)
    assert l1_loss(pred, target) == 5.0 and l2_loss(pred, target) == 9.0
    # (cx, cy, w, h): (1, 1, 2, 2) - (2.5, 2, 3, 4) = (-1.5, -1, -1, -2)
    assert l1_loss(pred, target, coords="cxcywh") == 5.5
    assert l2_loss(pred, target, coords="cxcywh") == 8.25
    assert get_loss("l2:coords=cxcywh")(pred, target) == 8.25


# The README's "Conventions": every loss reads the prediction with its corners sorted (GIoU
# paper, Algorithm 2), the coordinate losses included. Ordered pred [0, 0.5, 2, 2], target
# [1, 0, 4, 4]: corner differences (-1, 0.5, -2, -2), so l1 = 5.5, l2 = 1 + 0.25 + 4 + 4 = 9.25,
# smooth_l1 (beta 1) = (1 - 0.5) + 0.5 * 0.25 + 1.5 + 1.5 = 3.625, and the l1 gradient is the
# signs (-1, 1, -1, -1). Read unsorted, the inverted [2, 2, 0, 0.5] would give differences
# (1, 2, -4, -3.5) and l1 = 10.5.
ORDERED, FAR_TARGET = np.array([0.0, 0.5, 2.0, 2.0]), np.array([1.0, 0.0, 4.0, 4.0])
INVERSIONS = {"both": [2, 3, 0, 1], "x": [2, 1, 0, 3], "y": [0, 3, 2, 1]}  # pred = ORDERED[order]


@pytest.mark.portable
@pytest.mark.parametrize("inverted", INVERSIONS)
@pytest.mark.parametrize("name, expected", [("l1", 5.5), ("l2", 9.25), ("smooth_l1", 3.625)])
def test_coordinate_losses_read_an_inverted_prediction_as_the_ordered_box(name, expected, inverted):
    order = INVERSIONS[inverted]
    pred = ORDERED[order]
    assert LOSSES[name](pred, FAR_TARGET) == expected
    # each given corner gets the gradient of the ordered corner it stands for
    gradient = grad(LOSSES[name])
    np.testing.assert_array_equal(gradient(pred, FAR_TARGET), gradient(ORDERED, FAR_TARGET)[order])
    if name == "l1":
        np.testing.assert_array_equal(gradient(ORDERED, FAR_TARGET), [-1, 1, -1, -1])
    for coords in ("xywh", "cxcywh"):
        loss = get_loss(f"{name}:coords={coords}")
        assert loss(pred, FAR_TARGET) == loss(ORDERED, FAR_TARGET)


def test_losses_are_elementwise_over_leading_axes():
    preds = np.array([[[0, 0, 1, 1], [0, 0, 2, 1]], [[5, 5, 6, 6], [1, 0, 3, 1]]], dtype=float)
    for name, loss in LOSSES.items():
        values = loss(preds, TARGET)
        assert values.shape == (2, 2), name
        for index in np.ndindex(2, 2):
            assert values[index] == loss(preds[index], TARGET), name


# Properties on random boxes.
@given(positive_boxes(), positive_boxes())
def test_giou_bounds_and_symmetry(a, b):
    assert giou(a, b) <= iou(a, b) + 1e-15
    assert -1 < giou(a, b) <= 1
    assert 0 <= iou(a, b) <= 1
    assert iou(a, b) == pytest.approx(iou(b, a), rel=1e-12, abs=1e-15)
    assert giou(a, b) == pytest.approx(giou(b, a), rel=1e-12, abs=1e-15)


@given(positive_boxes(), positive_boxes(), st.floats(-50, 50), st.floats(-50, 50),
       st.floats(0.1, 10))
def test_iou_and_giou_invariant_under_translation_and_uniform_scaling(a, b, dx, dy, scale):
    shift = np.array([dx, dy, dx, dy])
    for metric in (iou, giou):
        assert metric(a + shift, b + shift) == pytest.approx(metric(a, b), abs=1e-9)
        assert metric(a * scale, b * scale) == pytest.approx(metric(a, b), abs=1e-9)


@given(positive_boxes())
def test_identical_boxes_score_one_and_lose_nothing(a):
    assert iou(a, a) == 1.0 and giou(a, a) == 1.0
    for name, loss in LOSSES.items():
        # bounded_iou at mmdetection's eps = 1e-3 keeps eps / (w + eps) in each term; without the eps, 0
        assert (loss(a, a, eps=0) if name == "bounded_iou" else loss(a, a)) == 0.0, name


@pytest.mark.portable
@given(positive_boxes(), positive_boxes(), st.sampled_from(["x", "y"]), st.floats(1e-3, 5))
def test_iou_gradient_is_exactly_zero_apart_and_giou_gradient_is_not(a, b, axis, gap):
    # move a beyond b along one axis, leaving `gap` between them
    i = 0 if axis == "x" else 1
    a = a + np.eye(4)[i] * (b[i + 2] + gap - a[i]) + np.eye(4)[i + 2] * (b[i + 2] + gap - a[i])
    assume(iou(a, b) == 0)
    assert np.all(grad(lambda p: LOSSES["iou"](p, b))(a) == 0.0)
    assert np.any(grad(lambda p: LOSSES["giou"](p, b))(a) != 0.0)


@pytest.mark.portable
def test_touching_boxes_get_a_half_weighted_iou_subgradient():
    # touching at an edge: the intersection width max(0, 0) splits its gradient in two
    pred, target = HARD_CASES["touching at an edge"]
    g = grad(lambda p: LOSSES["iou"](p, target))(np.array(pred))
    # d(1 - I/U)/dx1 = -(dI/dx1)/U, dI/dx1 = -h/2 = -0.5 with the half, U = 3
    assert g[0] == pytest.approx(0.5 / 3)


# Choosing losses by name.
def test_get_loss_reports_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="unknown loss 'diouu'; valid losses are iou, giou, log_iou, "):
        get_loss("diouu")
    with pytest.raises(ValueError, match="loss 'l1' has no parameter 'alpha'; its parameters: coords"):
        get_loss("l1:alpha=3")
    with pytest.raises(ValueError, match="loss 'giou' has no parameter 'coords'; its parameters: none"):
        get_loss("giou", coords="xyxy")
    with pytest.raises(ValueError, match="must be written key=value"):
        get_loss("l1:coords")


def test_bad_boxes_are_named_when_a_loss_is_called_directly():
    with pytest.raises(ValueError, match="pred box .* non-finite"):
        LOSSES["giou"]([0, 0, np.nan, 1], TARGET)
    with pytest.raises(ValueError, match="target box .* non-positive height"):
        LOSSES["giou"]([0, 0, 1, 1], [0, 1, 1, 1])

