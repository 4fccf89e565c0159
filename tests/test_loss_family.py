"""Every loss in sandbox.LOSSES: exact values, gradients, finite everywhere, properties."""
import math
import numpy as np
import pytest
from autograd import grad, hessian
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import HARD_CASES, central_differences, frozen, generic_pairs, positive_boxes
from reference_losses import PARAMETER_CASES, REFERENCE_LOSSES
from sandbox import LOSSES, PARAMETERISATIONS, get_loss, iou
from sandbox.losses import CLAIMS

E = math.exp
V_SQUARE_VS_4_BY_1 = 4 / math.pi ** 2 * (math.atan(1.0) - math.atan(4.0)) ** 2  # CIoU's v, pair B

# Values worked out by hand on three pairs; the arithmetic is in the comments.
# A: pred [0,0,2,2], target [1,1,3,3]: I 1, U 7, IoU 1/7; centres (1,1), (2,2): dx = dy = 1,
#    rho^2 2; enclosing [0,0,3,3]: C_w = C_h = 3, c^2 18, C 9; same sizes.
# B: pred [0,0,4,1], target [0,0,2,2]: I 2, U 6, IoU 1/3; centres (2,.5), (1,1): dx -1, dy .5,
#    rho^2 1.25; enclosing [0,0,4,2]: C_w 4, C_h 2, c^2 20, C 8.
# C: pred [3,0,4,1], target [0,0,2,1]: apart, IoU 0, U 3; centres (3.5,.5), (1,.5): dx -2.5,
#    dy 0; enclosing [0,0,4,1]: C_w 4, C_h 1, c^2 17, C 4.
PAIRS = {"A": ([0, 0, 2, 2], [1, 1, 3, 3]), "B": ([0, 0, 4, 1], [0, 0, 2, 2]),
         "C": ([3, 0, 4, 1], [0, 0, 2, 1])}
HAND_WORKED = {
    "giou": {"A": 1 - 1 / 7 + 2 / 9, "B": 1 - 1 / 3 + 2 / 8, "C": 1 + 1 / 4},
    "log_iou": {"A": math.log(7), "B": math.log(3), "C": -math.log(1e-6)},
    "diou": {"A": 1 - 1 / 7 + 2 / 18, "B": 1 - 1 / 3 + 1.25 / 20, "C": 1 + 6.25 / 17},
    # v = 0 for A (both square) and C (widths 1 and 2 at height 1: arctan 1 vs arctan 2)
    "ciou": {"A": 1 - 1 / 7 + 2 / 18,
             "B": 1 - 1 / 3 + 1.25 / 20 + V_SQUARE_VS_4_BY_1 ** 2 / (2 / 3 + V_SQUARE_VS_4_BY_1),
             "C": 1 + 6.25 / 17 + (4 / math.pi ** 2 * (math.atan(2) - math.atan(1)) ** 2) ** 2
             / (1 + 4 / math.pi ** 2 * (math.atan(2) - math.atan(1)) ** 2)},
    # plus (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2
    "eiou": {"A": 1 - 1 / 7 + 2 / 18, "B": 1 - 1 / 3 + 1.25 / 20 + 4 / 16 + 1 / 4,
             "C": 1 + 6.25 / 17 + 1 / 16},
    "focal_eiou": {"A": (1 / 7) ** 0.5 * (1 - 1 / 7 + 2 / 18),
                   "B": (1 / 3) ** 0.5 * (1 - 1 / 3 + 1.25 / 20 + 1 / 2), "C": 0.0},
    # angle 2|dx dy| / rho^2: A 1, B 0.8, C 0; gamma = 2 - angle;
    # shape: A 0; B w: |4-2|/4, h: |1-2|/2; C w: |1-2|/2
    "siou": {"A": 1 - 1 / 7 + (2 - 2 * E(-1 / 9)) / 2,
             "B": 1 - 1 / 3 + (2 - E(-1.2 / 16) - E(-1.2 / 16) + 2 * (1 - E(-0.5)) ** 4) / 2,
             "C": 1 + (1 - E(-2 * (2.5 / 4) ** 2) + (1 - E(-0.5)) ** 4) / 2},
    "alpha_iou": {"A": 1 - (1 / 7) ** 3, "B": 1 - (1 / 3) ** 3, "C": 1.0},
    "alpha_giou": {"A": 1 - (1 / 7) ** 3 + (2 / 9) ** 3, "B": 1 - (1 / 3) ** 3 + (2 / 8) ** 3,
                   "C": 1 + (1 / 4) ** 3},
    "alpha_diou": {"A": 1 - (1 / 7) ** 3 + (2 / 18) ** 3, "B": 1 - (1 / 3) ** 3 + (1.25 / 20) ** 3,
                   "C": 1 + (6.25 / 17) ** 3},
    "wiou": {"A": E(2 / 18) * 6 / 7, "B": E(1.25 / 20) * 2 / 3, "C": E(6.25 / 17)},
    # corners: A d1^2 = d2^2 = 2; B d1^2 0, d2^2 = 4 + 1; C d1^2 9, d2^2 4; frame 10 x 10
    "mpdiou": {"A": 1 - 1 / 7 + 4 / 200, "B": 1 - 1 / 3 + 5 / 200, "C": 1 + 13 / 200},
    # scale 0: ww = hh = 1, so DIoU's distance plus half SIoU's shape cost
    "shape_iou": {"A": 1 - 1 / 7 + 2 / 18, "B": 1 - 1 / 3 + 1.25 / 20 + (1 - E(-0.5)) ** 4,
                  "C": 1 + 6.25 / 17 + 0.5 * (1 - E(-0.5)) ** 4},
    # ratio 0.7: A inner boxes [.3,.3,1.7,1.7], [1.3,1.3,2.7,2.7]: I .16, U 2 * 1.96 - .16;
    # B [.6,.15,3.4,.85], [.3,.3,1.7,1.7]: I 1.1 * .55, U 1.96 + 1.96 - .605; C apart
    "inner_iou": {"A": 1 - 0.16 / 3.76, "B": 1 - 0.605 / 3.315, "C": 1.0},
    "inner_giou": {"A": 1 - 0.16 / 3.76 + 2 / 9, "B": 1 - 0.605 / 3.315 + 2 / 8, "C": 1.25},
    # d 0, u 0.95: IoU' = IoU / 0.95
    "focaler_iou": {"A": 1 - 1 / 7 / 0.95, "B": 1 - 1 / 3 / 0.95, "C": 1.0},
    "focaler_diou": {"A": 1 - 1 / 7 / 0.95 + 2 / 18, "B": 1 - 1 / 3 / 0.95 + 1.25 / 20,
                     "C": 1 + 6.25 / 17},
    # beta 1: A corner differences all -1: 4 * (1 - .5); B (0, 0, 2, -1): 1.5 + .5;
    # C (3, 0, 2, 0): 2.5 + 1.5
    "smooth_l1": {"A": 2.0, "B": 2.0, "C": 4.0},
}


@pytest.mark.parametrize("loss", HAND_WORKED)
@pytest.mark.parametrize("pair", PAIRS)
def test_values_worked_out_by_hand(loss, pair):
    pred, target = PAIRS[pair]
    assert LOSSES[loss](pred, target) == pytest.approx(HAND_WORKED[loss][pair], rel=1e-12, abs=1e-15)


# PARAMETER_CASES: non-default parameters, each declared with its transcription
# (`checked_at`), so that every parameter is exercised against the reference.


def _pairs_for_reference():
    preds, targets = generic_pairs(count=10, seed=1)
    return [(pred, target) for pred, target in zip(preds, targets)] + list(PAIRS.values())


@pytest.mark.portable
@pytest.mark.parametrize("spec", [*LOSSES, *PARAMETER_CASES])
def test_values_match_an_independent_transcription_of_the_paper(spec):
    # tests/reference_losses.py transcribes each paper's formula in plain Python, written
    # separately from the package and in the paper's own form
    name, _, _ = spec.partition(":")
    params = get_loss(spec).keywords if ":" in spec else {}
    pairs = _pairs_for_reference()
    assert 0 < np.mean([iou(p, t) > 0 for p, t in pairs]) < 1
    for pred, target in pairs:
        expected = REFERENCE_LOSSES[name](tuple(map(float, pred)), tuple(map(float, target)), **params)
        assert LOSSES[name](pred, target, **params) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_the_reference_covers_every_loss():
    assert set(REFERENCE_LOSSES) == set(LOSSES)


# Gradients against central differences.
@pytest.mark.slow
@pytest.mark.parametrize("param", PARAMETERISATIONS)
@pytest.mark.parametrize("spec", [*LOSSES, "ciou:trade_off_gradient=true", "alpha_ciou:trade_off_gradient=true",
                                  "focal_eiou:weight_gradient=true", *PARAMETER_CASES])
def test_autograd_gradient_matches_central_differences(spec, param):
    loss, parameterisation = get_loss(spec), PARAMETERISATIONS[param]
    preds, targets = generic_pairs()
    assert 0 < np.mean(iou(preds, targets) > 0) < 1  # both overlapping and apart pairs
    for pred, target in zip(preds, targets):
        def objective(x):
            return loss(parameterisation.to_box(x), target)
        x = parameterisation.from_box(pred)
        np.testing.assert_allclose(grad(objective)(x), central_differences(frozen(objective, x), x),
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("pred, side", [
    ([0.2, 0.5, 1.4, 0.5], 3),  # zero height, inside the target: grow y2
    ([3.0, 0.5, 4.0, 0.5], 3),  # zero height, apart
    ([0.5, 0.2, 0.5, 0.8], 2),  # zero width, inside: grow x2
])
def test_ciou_is_continuous_as_a_height_or_width_goes_to_zero(pred, side):
    # arctan(w / h) tends to pi / 2 as h -> 0 and to 0 as w -> 0; the loss at the flat box
    # must be that limit, not the value a point gets (the target's aspect, v = 0).
    target, flat = np.array([0.0, 0.0, 2.0, 1.0]), np.array(pred)
    at_zero = LOSSES["ciou"](flat, target)
    gaps = [abs(LOSSES["ciou"](flat + size * np.eye(4)[side], target) - at_zero)
            for size in (1e-3, 1e-6, 1e-9)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-8


def test_focal_weight_is_held_constant_so_that_the_loss_pulls_overlapping_boxes_together():
    pred, target = np.array([0.1, -0.6, 1.1, 0.9]), np.array([-1.0, -0.5, 1.0, 0.5])  # centre (0.6, 0.15)
    centre_step = np.array([-1.0, 0.0, -1.0, 0.0])  # moving the box toward the target's centre
    held = grad(lambda p: LOSSES["focal_eiou"](p, target))(pred)
    flowing = grad(lambda p: LOSSES["focal_eiou"](p, target, weight_gradient=True))(pred)
    assert held @ centre_step < 0 < flowing @ centre_step  # descent: toward the target, or away


def test_trade_off_is_held_constant_unless_asked_to_flow():
    pred, target = np.array([0.1, 0.2, 4.3, 1.1]), np.array([0.0, 0.0, 2.0, 2.0])  # no edge shared
    held = grad(lambda p: LOSSES["ciou"](p, target))(pred)
    flowing = grad(lambda p: LOSSES["ciou"](p, target, trade_off_gradient=True))(pred)
    assert not np.allclose(held, flowing)
    np.testing.assert_allclose(flowing, central_differences(lambda p: LOSSES["ciou"](p, target), pred),
                               rtol=1e-6)


# Finite everywhere.
@pytest.mark.slow
@pytest.mark.parametrize("case", HARD_CASES)
@pytest.mark.parametrize("loss", LOSSES)
def test_values_and_gradients_are_finite_at_every_hard_case_in_every_parameterisation(loss, case):
    pred, target = (np.asarray(box, dtype=float) for box in HARD_CASES[case])
    for param in PARAMETERISATIONS.values():
        if param.name == "log" and not (pred[2] > pred[0] and pred[3] > pred[1]):
            continue  # the log parameterisation cannot hold an empty or inverted box
        def objective(x):
            return LOSSES[loss](param.to_box(x), target)
        x = param.from_box(pred)
        assert np.isfinite(objective(x)), param.name
        assert np.all(np.isfinite(grad(objective)(x))), param.name
    # second derivatives too, as the trust-region methods use them
    assert np.all(np.isfinite(hessian(lambda p: LOSSES[loss](p, target))(pred)))


# Properties on random boxes: each loss claims them where it is registered (sandbox.losses.CLAIMS),
# so a loss that lacks one by design says so there.
NOT_POSITIVE = {name for name, claims in CLAIMS.items() if not claims.positive}
ASYMMETRIC = {name for name, claims in CLAIMS.items() if not claims.symmetric}  # Shape-IoU only with scale != 0
NOT_SCALE_INVARIANT = {name for name, claims in CLAIMS.items() if not claims.scale_invariant}


def test_the_claims_are_those_the_papers_make():
    # focal_eiou and the Focaler variants are zero on purpose (IoU^gamma = 0 apart; IoU' = 1 above u);
    # bounded_iou's eps (mmdetection's 1e-3) makes it nonzero for identical boxes and scale-dependent;
    # the coordinate losses and the MPDIoU family, whose frame is fixed, change with the boxes' scale;
    # NWD's constant C is fixed too; PIoU and Bounded IoU divide by the target's size alone
    assert NOT_POSITIVE == {"focal_eiou", "bounded_iou", *(name for name in LOSSES if name.startswith("focaler_"))}
    assert ASYMMETRIC == {"piou", "piou_v2", "bounded_iou"}
    assert NOT_SCALE_INVARIANT == {"l1", "l2", "smooth_l1", "balanced_l1", "bounded_iou", "nwd",
                                   *(name for name in LOSSES if name.endswith("mpdiou"))}
    assert set(CLAIMS) == set(LOSSES)


@settings(max_examples=60)
@given(positive_boxes(), positive_boxes())
def test_zero_for_identical_boxes_and_positive_otherwise(a, b):
    different = np.max(np.abs(a - b)) > 1e-6  # a difference that float arithmetic can see
    for name, loss in LOSSES.items():
        if name == "bounded_iou":  # mmdetection's eps leaves eps / (w + eps) in each term; without it, 0
            assert loss(a, a) > 0 and loss(a, a, eps=0) == 0.0 and (not different or loss(a, b, eps=0) > 0)
            continue
        assert loss(a, a) == 0.0, name
        if name not in NOT_POSITIVE and different:
            assert loss(a, b) > 0, name


def test_losses_without_positivity_are_zero_where_their_papers_put_zero():
    inside = ([0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 2.0, 1.02])  # IoU 0.98 > u = 0.95
    apart = ([3.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0])
    assert LOSSES["focal_eiou"](*apart) == 0.0  # weight IoU^gamma = 0
    assert LOSSES["focaler_iou"](*inside) == 0.0


@settings(max_examples=60)
@given(positive_boxes(), positive_boxes())
def test_symmetric_where_the_formula_is(a, b):
    for name, loss in LOSSES.items():
        if name not in ASYMMETRIC:
            assert loss(a, b) == pytest.approx(loss(b, a), rel=1e-9, abs=1e-12), name
    wide, square = [0, 0, 4, 1], [0, 0, 1, 1]  # Shape-IoU weighs by the target's shape:
    assert LOSSES["shape_iou"](wide, square, scale=1) != LOSSES["shape_iou"](square, wide, scale=1)


@settings(max_examples=60)
@given(positive_boxes(), positive_boxes(), st.floats(-50, 50), st.floats(-50, 50), st.floats(0.1, 10))
def test_invariant_under_translation_and_where_claimed_uniform_scaling(a, b, dx, dy, scale):
    shift = np.array([dx, dy, dx, dy])
    for name, loss in LOSSES.items():
        value = loss(a, b)
        assert loss(a + shift, b + shift) == pytest.approx(value, rel=1e-7, abs=1e-9), name
        if name not in NOT_SCALE_INVARIANT:
            assert loss(a * scale, b * scale) == pytest.approx(value, rel=1e-7, abs=1e-9), name
    bounded = LOSSES["bounded_iou"]  # scale invariant without mmdetection's eps
    assert bounded(a * scale, b * scale, eps=0) == pytest.approx(bounded(a, b, eps=0), rel=1e-7, abs=1e-9)


# Choosing losses with parameters.
def test_parameters_are_checked_with_a_message_that_lists_the_valid_ones():
    with pytest.raises(ValueError, match="loss 'inner_giou' has no parameter 'alpha'; its parameters: ratio"):
        get_loss("inner_giou:alpha=3")
    with pytest.raises(ValueError, match="its parameters: alpha, trade_off_gradient"):
        get_loss("alpha_ciou:ratio=0.5")
    with pytest.raises(ValueError, match="focaler bounds need 0 <= d < u <= 1"):
        LOSSES["focaler_iou"]([0, 0, 1, 1], [0, 0, 1, 1], d=0.9, u=0.5)
    with pytest.raises(ValueError, match="mpdiou needs a frame of positive size"):
        get_loss("mpdiou:frame_width=0")([0, 0, 1, 1], [0, 0, 1, 1])
