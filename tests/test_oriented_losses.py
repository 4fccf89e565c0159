"""Every loss of ORIENTED_LOSSES against its transcription (tests/reference_losses.py), and the properties its
claims state: zero at identity, blind to the angle boundary, its behaviour under scaling, symmetry, gradients
against central differences, finite values and gradients on hard cases."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from helpers import central_differences
from reference_losses import ORIENTED_PARAMETER_CASES, REFERENCE_ORIENTED_LOSSES, gwd_mmrotate
from reference_losses import probiou as probiou_as_ultralytics
from sandbox.geometry.oriented import ANGLE_CONVENTIONS, canonical
from sandbox.losses.oriented import ORIENTED_CLAIMS, ORIENTED_LOSSES

CASES = [(name, {}) for name in ORIENTED_LOSSES] + ORIENTED_PARAMETER_CASES
IDS = [name + "".join(f":{k}={v}" for k, v in params.items()) for name, params in CASES]

BOUNDARY_BLIND = {"rotated_l1"}
"""Losses on the raw parameters, which see (w, h, theta) and (h, w, theta + pi/2) as different boxes."""

TARGET = np.array([0.3, -0.2, 2.0, 1.0, 0.4])
HARD_CASES = {
    "identical": (TARGET, TARGET),
    "the same rectangle, sides swapped": (np.array([0.3, -0.2, 1.0, 2.0, 0.4 + np.pi / 2]), TARGET),
    "the same rectangle, a half turn on": (TARGET + [0, 0, 0, 0, np.pi], TARGET),
    "nested": (np.array([0.4, -0.1, 1.0, 0.5, 0.4]), TARGET),
    "same centre, crossed": (np.array([0.3, -0.2, 2.0, 1.0, 0.4 + np.pi / 2]), TARGET),
    "apart": (np.array([4.0, 3.0, 1.0, 1.5, -0.3]), TARGET),
    "far apart": (np.array([1e3, -1e3, 1.0, 1.5, 2.0]), TARGET),
    "thin prediction (aspect 1e-4)": (np.array([0.3, 0.0, 2.0, 2e-4, 0.1]), TARGET),
    "thin target (aspect 1e-4)": (TARGET, np.array([0.3, 0.0, 2.0, 2e-4, 0.1])),
    "tiny boxes": (np.array([1e-6, 0.0, 1e-6, 2e-6, 0.2]), np.array([0.0, 1e-6, 2e-6, 1e-6, 0.0])),
    "huge coordinates": (TARGET + [1e6, 1e6, 0, 0, 0], TARGET + [1e6 + 0.5, 1e6, 0, 0, 0.1]),
}
SAME_RECTANGLE = ("identical", "the same rectangle, sides swapped", "the same rectangle, a half turn on")
DEGENERATE = {  # no transcription divides by these; the package's losses must still be finite
    "zero-width prediction": (np.array([0.3, -0.2, 0.0, 1.0, 0.4]), TARGET),
    "zero-size prediction": (np.array([0.3, -0.2, 0.0, 0.0, 0.4]), TARGET),
    "zero-size prediction, apart": (np.array([5.0, 5.0, 0.0, 0.0, 0.0]), TARGET),
    "negative sizes": (np.array([0.3, -0.2, -2.0, -1.0, 0.4]), TARGET),
    "extreme aspect (1e-9)": (np.array([0.3, -0.2, 2.0, 2e-9, 0.4]), TARGET),
}


def random_pairs(count, seed=0):
    """Oriented (pred, target) pairs, overlapping and apart, angles anywhere."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2, 2, size=(2, count, 2))
    sizes = rng.uniform(0.3, 2.5, size=(2, count, 2))
    angles = rng.uniform(-np.pi, np.pi, size=(2, count, 1))
    boxes = np.concatenate([centres, sizes, angles], axis=-1)
    return boxes[0], boxes[1]


def scaled(boxes, s):
    return np.asarray(boxes) * [s, s, s, s, 1.0]


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_values_match_the_transcription_on_hard_cases_and_a_thousand_random_pairs(name, params):
    loss, reference = ORIENTED_LOSSES[name], REFERENCE_ORIENTED_LOSSES[name]
    preds, targets = random_pairs(1000)
    expected = [reference(p, t, **params) for p, t in zip(preds, targets)]
    np.testing.assert_allclose(loss(preds, targets, **params), expected, rtol=1e-10, atol=1e-12)
    at_identity = loss(TARGET, TARGET, **params)
    for case, (pred, target) in HARD_CASES.items():
        value, expected = loss(pred, target, **params), reference(pred, target, **params)
        if case in SAME_RECTANGLE and name not in BOUNDARY_BLIND:
            # a distance of exactly 0, which the transcription's matrices round to 1e-16 and KLD's
            # sqrt(sqrt(.)) (fun='sqrt') turns into 1e-4; the package's closed forms keep it 0
            assert value == pytest.approx(at_identity, abs=1e-12) and expected == pytest.approx(value, abs=1e-3)
        else:
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), case


def test_the_transcriptions_cover_every_oriented_loss():
    assert set(REFERENCE_ORIENTED_LOSSES) == set(ORIENTED_LOSSES)


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_values_and_gradients_are_finite_on_hard_and_degenerate_cases(name, params):
    loss = ORIENTED_LOSSES[name]
    for case, (pred, target) in {**HARD_CASES, **DEGENERATE}.items():
        value = loss(pred, target, **params)
        gradient = grad(lambda p: loss(p, target, **params))(np.asarray(pred, dtype=float))
        assert np.isfinite(value) and np.isfinite(gradient).all(), (case, value, gradient)


@pytest.mark.parametrize("name", [name for name in ORIENTED_LOSSES if ORIENTED_CLAIMS[name].positive])
def test_zero_for_identical_boxes_and_positive_otherwise(name):
    loss = ORIENTED_LOSSES[name]
    preds, targets = random_pairs(200, seed=1)
    np.testing.assert_allclose(loss(targets, targets), 0.0, atol=1e-7)
    assert (loss(preds, targets) > 0).all()


def boundary_forms(boxes):
    """The same rectangles under other parameterisations: sides swapped with a quarter turn, a half turn
    on, and mmrotate's canonical forms."""
    cx, cy, w, h, theta = np.moveaxis(boxes, -1, 0)
    yield "sides swapped", np.stack([cx, cy, h, w, theta + np.pi / 2], axis=-1)
    yield "half turn", np.stack([cx, cy, w, h, theta + np.pi], axis=-1)
    yield "minus a half turn, swapped", np.stack([cx, cy, h, w, theta - np.pi / 2], axis=-1)
    for convention in ANGLE_CONVENTIONS:
        yield convention, canonical(boxes, convention)


@pytest.mark.parametrize("name, params", [case for case in CASES if case[0] not in BOUNDARY_BLIND],
                         ids=[i for case, i in zip(CASES, IDS) if case[0] not in BOUNDARY_BLIND])
def test_the_value_is_the_same_for_every_parameterisation_of_the_same_rectangles(name, params):
    loss = ORIENTED_LOSSES[name]
    preds, targets = random_pairs(200, seed=2)
    value = loss(preds, targets, **params)
    for form, other_preds in boundary_forms(preds):
        np.testing.assert_allclose(loss(other_preds, targets, **params), value, rtol=1e-9, atol=1e-12,
                                   err_msg=f"prediction {form}")
    for form, other_targets in boundary_forms(targets):
        np.testing.assert_allclose(loss(preds, other_targets, **params), value, rtol=1e-9, atol=1e-12,
                                   err_msg=f"target {form}")


def test_raw_l1_sees_the_same_rectangle_across_the_boundary_as_another_box():
    # rotated_l1's claim: the boundary is what it is blind to
    loss = ORIENTED_LOSSES["rotated_l1"]
    swapped = np.array([0.3, -0.2, 1.0, 2.0, 0.4 + np.pi / 2])
    assert loss(swapped, TARGET) == pytest.approx(1.0 + 1.0 + np.pi / 2)
    assert loss(TARGET + [0, 0, 0, 0, np.pi], TARGET) == pytest.approx(np.pi)


SCALE_LAWS = {
    # loss(s pred, s target) in terms of the loss at scale 1, for the losses that are not scale invariant
    "rotated_l1": lambda pred, target, s: (s * np.abs(pred - target)[..., :4].sum(-1)
                                            + np.abs(pred - target)[..., 4]),
    "gwd": lambda pred, target, s: s ** 2 * ORIENTED_LOSSES["gwd"](pred, target, fun="none", tau=0.0),
}
"""The stated law, evaluated at scale s (gwd's: of its d^2, ``fun='none', tau=0``)."""


@pytest.mark.parametrize("name", ORIENTED_LOSSES)
def test_scale_invariant_losses_are_unchanged_and_the_others_follow_their_stated_law(name):
    loss, preds, targets = ORIENTED_LOSSES[name], *random_pairs(200, seed=3)
    for s in (0.01, 3.0, 250.0):
        if ORIENTED_CLAIMS[name].scale_invariant:
            np.testing.assert_allclose(loss(scaled(preds, s), scaled(targets, s)), loss(preds, targets),
                                       rtol=1e-9, atol=1e-12)
            continue
        assert name in SCALE_LAWS, f"{name} is not scale invariant: state its law in SCALE_LAWS"
        params = {"fun": "none", "tau": 0.0} if name == "gwd" else {}
        np.testing.assert_allclose(loss(scaled(preds, s), scaled(targets, s), **params),
                                   SCALE_LAWS[name](preds, targets, s), rtol=1e-9)


def test_gwd_is_scale_invariant_with_mmrotates_normalisation():
    preds, targets = random_pairs(200, seed=4)
    loss = ORIENTED_LOSSES["gwd"]
    np.testing.assert_allclose(loss(scaled(preds, 40.0), scaled(targets, 40.0), normalize=True),
                               loss(preds, targets, normalize=True), rtol=1e-9)


@pytest.mark.parametrize("name", ORIENTED_LOSSES)
def test_every_loss_is_translation_invariant_and_symmetric_where_it_claims_to_be(name):
    loss, preds, targets = ORIENTED_LOSSES[name], *random_pairs(200, seed=5)
    shift = np.array([3.5, -7.25, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(loss(preds + shift, targets + shift), loss(preds, targets), rtol=1e-9, atol=1e-12)
    swapped = np.allclose(loss(targets, preds), loss(preds, targets), rtol=1e-9, atol=1e-12)
    assert swapped == ORIENTED_CLAIMS[name].symmetric


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_autograd_gradient_matches_central_differences(name, params):
    loss = ORIENTED_LOSSES[name]
    preds, targets = random_pairs(12, seed=6)
    for pred, target in zip(preds, targets):
        def objective(x):
            return loss(x, target, **params)
        np.testing.assert_allclose(grad(objective)(pred), central_differences(objective, pred),
                                   rtol=1e-6, atol=1e-8)


def test_kfious_overlap_term_has_no_pull_on_the_centre_anywhere_and_its_centre_term_does():
    # KFIoU of two Gaussians depends on their covariances alone: apart or overlapping, moving the
    # centre changes nothing; the paper's (and mmrotate's) centre term is what pulls
    loss = ORIENTED_LOSSES["kfiou"]
    preds, targets = random_pairs(100, seed=7)
    without, with_centre = (grad(lambda p: anp.sum(loss(p, targets, centre=c)))(preds) for c in (False, True))
    assert (without[:, :2] == 0).all() and (np.abs(with_centre[:, :2]).sum(-1) > 0).all()
    assert (np.abs(without[:, 2:]).sum(-1) > 0).all()  # sizes and angle still matter
    # identical boxes: KFIoU = 1/3, the loss 2/3, not 0
    assert loss(TARGET, TARGET) == pytest.approx(2 / 3, rel=1e-12)
    far = TARGET + [1e3, 0, 0, 0, 0]
    assert loss(far, TARGET, centre=False) == pytest.approx(2 / 3, rel=1e-12)


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("normalize", [False, True])
def test_gwd_with_sqrt_is_mmrotates_gwd_loss_with_fun_none(tau, normalize):
    # mmrotate applies f to d, the paper to d^2: its fun='none' is the paper's f = sqrt
    preds, targets = random_pairs(100, seed=8)
    expected = [gwd_mmrotate(p, t, fun="none", tau=tau, normalize=normalize) for p, t in zip(preds, targets)]
    np.testing.assert_allclose(ORIENTED_LOSSES["gwd"](preds, targets, fun="sqrt", tau=tau, normalize=normalize),
                               expected, rtol=1e-10)


def test_probiou_is_ultralytics_loss_up_to_its_small_constants():
    # ultralytics adds eps = 1e-7 in four places and clamps B at eps; on these pairs the two differ by
    # 5e-8 in the median and 3.9e-6 at most (where det(S_p + S_t) is smallest, so eps weighs most)
    preds, targets = random_pairs(1000, seed=9)
    ours = ORIENTED_LOSSES["probiou"](preds, targets)
    theirs = np.array([probiou_as_ultralytics(p, t, eps=1e-7) for p, t in zip(preds, targets)])
    assert np.max(np.abs(ours - theirs)) < 1e-5 and np.median(np.abs(ours - theirs)) < 1e-7
    assert probiou_as_ultralytics(TARGET, TARGET, eps=1e-7) == pytest.approx(math.sqrt(1 - math.exp(-1e-7) + 1e-7))


def test_the_convention_table_has_every_gaussian_loss_with_its_defaults():
    # docs/reference/oriented-losses.md is written by hand; its defaults are the signatures'
    import inspect

    from helpers import ROOT

    rows = {}
    for line in (ROOT / "docs" / "reference" / "oriented-losses.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells[2].strip("`")
    gaussian = [name for name, loss in ORIENTED_LOSSES.items()
                if "convention" in inspect.signature(loss).parameters]
    assert sorted(rows) == sorted(gaussian)
    for name, written in rows.items():
        defaults = {p.name: p.default for p in list(inspect.signature(ORIENTED_LOSSES[name]).parameters.values())[2:]}
        quoted = dict(item.split("=") for item in written.split(", "))
        assert {key: eval(value, {}) for key, value in quoted.items()} == defaults, name
