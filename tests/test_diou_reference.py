"""The transcription of the DIoU authors' MATLAB gradients: right where their code is right."""
import functools

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

import sandbox
from sandbox.optim.batch import regress
from sandbox.geometry.boxes import Coordinates, box_convert, rows
from sandbox.losses.diou_reference import ascent, authors_gradient
from sandbox.losses import unchecked
from sandbox.runs.simulation import diou_protocol

DOUBLED = np.array([[1.0], [1.0], [2.0], [2.0]])  # to_xywh.m: dw = dr - dl, twice the chain rule


@pytest.fixture(scope="module")
def states():
    """(x, y, w, h) predictions around targets at (10, 10): apart, overlapping, nested."""
    rng = np.random.default_rng(0)
    n = 4000
    box = np.array([10 + rng.uniform(-3, 3, n), 10 + rng.uniform(-3, 3, n),
                    rng.uniform(0.3, 2, n), rng.uniform(0.3, 2, n)])
    target = np.array([np.full(n, 10.0), np.full(n, 10.0), rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n)])
    return box, target


def autograd_ascent(kind, box, target):
    """d(similarity)/d(x, y, w, h) by autograd: minus the loss's gradient."""
    corners = box_convert(Coordinates(target), "cxcywh", "xyxy")
    to_box = sandbox.PARAMETERISATIONS["cxcywh"].to_box
    return -grad(lambda theta: anp.sum(unchecked(sandbox.LOSSES[kind])(to_box(rows(theta)), corners)))(box)


def overlapping(box, target):
    return sandbox.iou(box_convert(Coordinates(box), "cxcywh", "xyxy"),
                       box_convert(Coordinates(target), "cxcywh", "xyxy")) > 0


def test_iou_gradient_is_the_true_one_with_w_and_h_doubled(states):
    box, target = states
    np.testing.assert_allclose(ascent("iou", box, target), DOUBLED * autograd_ascent("iou", box, target),
                               atol=1e-14)


def test_giou_gradient_is_right_where_boxes_overlap_and_wrong_apart_until_repaired(states):
    box, target = states
    expected = DOUBLED * autograd_ascent("giou", box, target)
    matlab, inside = ascent("giou", box, target), overlapping(box, target)
    np.testing.assert_allclose(matlab[:, inside], expected[:, inside], atol=1e-14)
    assert np.max(np.abs(matlab - expected)[:, ~inside]) > 0.1  # the unclamped intersection
    np.testing.assert_allclose(ascent("giou", box, target, repairs=["intersection"]), expected, atol=1e-14)


@pytest.mark.parametrize("kind", ["diou", "ciou"])
def test_distance_term_is_wrong_until_repaired(states, kind):
    box, target = states
    iou_part = DOUBLED * autograd_ascent("iou", box, target)
    distance_part = autograd_ascent("diou", box, target) - autograd_ascent("iou", box, target)
    matlab = ascent(kind, box, target)
    repaired = ascent(kind, box, target, repairs=["distance"])
    if kind == "diou":
        np.testing.assert_allclose(repaired, iou_part + distance_part, atol=1e-14)
    assert np.max(np.abs(matlab - repaired)) > 0.1  # sign of the growth term, width and height mixed
    # where the prediction lies inside the target the enclosing box does not move: no difference
    corners, target_corners = (box_convert(Coordinates(b), "cxcywh", "xyxy") for b in (box, target))
    nested = ((corners[0] > target_corners[0]) & (corners[2] < target_corners[2])
              & (corners[1] > target_corners[1]) & (corners[3] < target_corners[3]))
    assert nested.sum() > 10
    np.testing.assert_allclose(matlab[:, nested], repaired[:, nested], atol=1e-14)


# dDIOU.m worked by hand, line by line, for two predictions that span the target (the case
# where it overwrites Cw.dw = -1 and Ch.dh = -1 after filling Cw and Ch alike). Target
# B = (x, y, w, h) = (0, 0, 2, 2): t = -1, b = 1, l = -1, r = 1.
# Span across, A = (0.5, 0, 4, 1): t -0.5, b 0.5, l -1.5, r 2.5.
#   cover t -1, b 1, l -1.5, r 2.5: CCw 4, CCh 2, C = 2^2 + 4^2 = 20; d = 0.5^2 = 0.25.
#   Ct = Cb = 0 (not outside); Cl = (1, 0, -0.5, 0), Cr = (1, 0, 0.5, 0) in (dx, dy, dw, dh);
#   Cw = Ch = Cr - Cl = (0, 0, 1, 0); then pred.l < gt.l && pred.r > gt.r: Cw.dw = -1.
#   s.dx = (2 (0 - 0.5) 20 - 0) / 400 = -0.05; s.dy = 0;
#   s.dw = (2*4*Cw.dw + 2*2*Ch.dw) d / 400 = (-8 + 4) 0.25 / 400 = -1/400; s.dh = 0.
#   dIOU.m: I box t -0.5, b 0.5, l -1, r 1: I 2, U 4 + 4 - 2 = 6; dIbox (t, b, l, r) = (-2, 2, 0, 0),
#   dXbox = (-4, 4, -1, 1), dUbox = (-2, 2, -1, 1); (U dI - I dU) / U^2 = (-2/9, 2/9, 1/18, -1/18);
#   to (x, y, w, h): (l + r, t + b, r - l, b - t) = (0, 0, -1/9, 4/9).
#   Sum: (-0.05, 0, -1/9 - 1/400, 4/9).
# Span both ways, A = (0.5, 0.25, 4, 4): t -1.75, b 2.25, l -1.5, r 2.5, the target inside.
#   cover = A: CCw = CCh = 4, C = 32; d = 0.25 + 0.0625 = 0.3125.
#   Ct = (0, 1, 0, -0.5), Cb = (0, 1, 0, 0.5), Cl = (1, 0, -0.5, 0), Cr = (1, 0, 0.5, 0);
#   Cw = Ch = (Cr - Cl for x and w, Cb - Ct for y and h) = (0, 0, 1, 1); overwritten:
#   Cw.dw = -1, Ch.dh = -1, so Cw = (0, 0, -1, 1), Ch = (0, 0, 1, -1).
#   s.dx = 2 (0 - 0.5) 32 / 1024 = -1/32; s.dy = 2 (0 - 0.25) 32 / 1024 = -1/64;
#   s.dw = (8 (-1) + 8 (1)) d / 1024 = 0; s.dh = (8 (1) + 8 (-1)) d / 1024 = 0.
#   dIOU.m: I = the target, 4; U 16 + 4 - 4 = 16; dIbox = 0 (no edge of A inside B);
#   dUbox = dXbox = (-4, 4, -4, 4); -I dU / U^2 = (1/16, -1/16, 1/16, -1/16) -> (0, 0, -1/8, -1/8).
#   Sum: (-1/32, -1/64, -1/8, -1/8).
# Without the overwrite (Cw.dw = Ch.dh = 1) s.dw would be 12 * 0.25 / 400 = 3/400 in the first
# and 16 * 0.3125 / 1024 = 5/1024 (w and h) in the second.
SPANNING = np.array([[0.5, 0.0, 4.0, 1.0], [0.5, 0.25, 4.0, 4.0]]).T
DDIOU_BY_HAND = np.array([[-0.05, 0.0, -1 / 9 - 1 / 400, 4 / 9], [-1 / 32, -1 / 64, -1 / 8, -1 / 8]]).T


def test_diou_gradient_is_the_matlab_one_for_predictions_that_span_the_target():
    target = np.array([[0.0, 0.0, 2.0, 2.0]] * 2).T
    np.testing.assert_allclose(ascent("diou", SPANNING, target), DDIOU_BY_HAND, rtol=0, atol=1e-15)


def test_ciou_aspect_term_drops_the_factor_the_paper_says_it_drops(states):
    box, target = states
    v_part = ascent("ciou", box, target, repairs=["distance"]) - ascent("diou", box, target, repairs=["distance"])
    w, h, gw, gh = box[2], box[3], target[2], target[3]
    corners, target_corners = (box_convert(Coordinates(b), "cxcywh", "xyxy") for b in (box, target))
    iou = sandbox.iou(corners, target_corners)
    gap = np.arctan(gw / gh) - np.arctan(w / h)
    v = 4 / np.pi ** 2 * gap ** 2
    alpha = v / (1 - iou + v + 1e-7)
    np.testing.assert_allclose(v_part[2], alpha * 8 / np.pi ** 2 * gap * h, atol=1e-12)
    np.testing.assert_allclose(v_part[3], -alpha * 8 / np.pi ** 2 * gap * w, atol=1e-12)


@pytest.mark.slow
def test_with_the_authors_gradient_the_papers_ordering_appears():
    # the paper's finding, IoU > GIoU > DIoU in final error, needs the authors' gradients
    protocol = diou_protocol(points=200, seed=0)
    final = {loss: regress(protocol.anchors, protocol.targets, loss=loss, workers=2,
                           gradient=functools.partial(authors_gradient, loss)).errors[-1]
             for loss in ("iou", "giou", "diou")}
    assert final["iou"] > final["giou"] > 10 * final["diou"]


def test_unknown_repairs_are_named():
    with pytest.raises(ValueError, match="unknown repairs \\['sign'\\]; valid: intersection, distance"):
        ascent("diou", np.ones((4, 1)), np.ones((4, 1)), repairs=["sign"])
