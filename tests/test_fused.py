"""The fused kernels of every registry loss: the registry's values, autograd's gradients, the engine's runs."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

import sandbox
import sandbox.optim.engine
from helpers import central_differences, frozen
from reference_losses import PARAMETER_CASES
from sandbox.optim.batch import regress
from sandbox.geometry.boxes import Coordinates, rows
from sandbox.losses import fused
from sandbox.losses.fused import FUSED_LOSSES, HEADS, fused_total, kernel, value_and_partials
from sandbox.losses import canonical_loss, get_loss, unchecked
from sandbox.runs.simulation import diou_protocol

# The hand-derived gradients against autograd's and central differences: `make test-portable` runs
# them under every emulated CPU, where a wrong sign in a head must still fail them.
pytestmark = pytest.mark.portable

# Parameters away from the defaults, for every parameter a kernel reads (and, below, those each
# transcription in tests/reference_losses.py is checked at).
WITH_PARAMETERS = [
    "focaler_giou:d=0.1,u=0.9", "focaler_siou:d=0.2,u=0.6,theta=2", "focaler_iou:d=0.5,u=1",
    "inner_ciou:ratio=0.8", "inner_iou:ratio=1.25", "inner_shape_iou:ratio=1.2,scale=1",
    "alpha_iou:alpha=0.5", "alpha_giou:alpha=0.5", "alpha_diou:alpha=1", "alpha_ciou:alpha=2.5",
    "focal_eiou:gamma=2,weight_gradient=true", "focal_eiou:gamma=0.3", "siou:theta=1.5", "siou:theta=1",
    "shape_iou:scale=1.5,theta=0.7", "log_iou:eps=0.3", "mpdiou:frame_width=3,frame_height=4",
    "l1:coords=cxcywh", "l2:coords=xywh", "smooth_l1:beta=0.3,coords=cxcywh", "smooth_l1:beta=0",
]
SPECS = [*FUSED_LOSSES, *WITH_PARAMETERS,
         *(spec for spec in PARAMETER_CASES if spec.partition(":")[0] in HEADS and spec not in WITH_PARAMETERS)]


def kinds_of_cases(seed=0, per_kind=12):
    """(pred, target) arrays, shape (n, 4): overlapping, apart, touching, inverted, equal, ties.

    The targets and the shifts of the tie cases are multiples of 1/8, so that the
    equalities they build (same width, shared edge, aligned centres) hold exactly.
    """
    rng = np.random.default_rng(seed)
    corner = rng.integers(0, 16, (per_kind, 2)) / 8
    size = rng.integers(2, 16, (per_kind, 2)) / 8
    target = np.hstack([corner, corner + size])
    shift = rng.integers(-6, 7, (per_kind, 2)) / 8
    preds = {
        "overlapping": target + rng.normal(0, 0.25, target.shape),
        "apart": target + np.array([4.0, 1.0, 4.5, 1.5]) + rng.normal(0, 0.1, target.shape),
        "touching": np.hstack([target[:, 2:3], target[:, 1:2] + 0.25, target[:, 2:3] + size[:, :1],
                               target[:, 3:4] + 0.25]),
        "inverted": (target + rng.normal(0, 0.25, target.shape))[:, [2, 3, 0, 1]],
        "equal": target.copy(),
        "same size, shifted": target + np.hstack([shift, shift]),
        "aligned centres": target + np.hstack([shift[:, :1], 0 * shift[:, :1], shift[:, :1], 0 * shift[:, :1]]),
        "inside": target + np.array([1, 1, -1, -1]) * size.min(axis=1, keepdims=True) / 4,
        "zero width": np.hstack([corner + 0.25, corner + np.hstack([0.25 + 0 * size[:, :1], size[:, 1:]])]),
        "point": np.hstack([corner + 0.125, corner + 0.125]),
    }
    pred = np.vstack(list(preds.values()))
    return pred, np.tile(target, (len(preds), 1))


@pytest.fixture(scope="module")
def cases():
    return kinds_of_cases()


@pytest.mark.parametrize("spec", SPECS)
def test_a_kernel_gives_the_registry_value_and_autograds_gradient_on_every_kind_of_case(spec, cases):
    pred, target = cases
    registry = unchecked(get_loss(spec))
    value, partials, iou = value_and_partials(canonical_loss(spec), list(pred.T.copy()), list(target.T.copy()))
    np.testing.assert_allclose(value, registry(pred, target), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(iou, unchecked(sandbox.iou)(pred, target))
    expected = grad(lambda p: anp.sum(registry(p, target)))(pred)
    np.testing.assert_allclose(np.array(partials).T, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("spec", SPECS)
def test_a_kernels_gradient_matches_central_differences_where_the_loss_is_smooth(spec):
    rng = np.random.default_rng(5)
    target = np.array([1.0, 2.0, 2.5, 2.75])
    registry = unchecked(get_loss(spec))
    for pred in (target + rng.normal(0, 0.3, 4), target + [2.1, 0.3, 2.4, 0.2] + rng.normal(0, 0.1, 4)):
        def fused(p):
            return fused_total(canonical_loss(spec))(rows(p[:, None]), Coordinates(target[:, None]))

        def reference(p):  # the registry loss, with the factors it holds constant frozen
            return registry(p, target)
        expected = central_differences(frozen(reference, pred), pred)
        np.testing.assert_allclose(grad(fused)(pred), expected, rtol=1e-6, atol=1e-8)


def test_specs_without_a_kernel_have_none_and_say_so():
    for spec in ("5*l1+2*giou", "ciou:trade_off_gradient=true", "alpha_ciou:trade_off_gradient=true",
                 "inner_ciou:trade_off_gradient=true", sandbox.LOSSES["giou"]):
        assert kernel(canonical_loss(spec)) is None
    with pytest.raises(ValueError, match="no fused kernel for '5\\*l1\\+2\\*giou'; there are kernels for iou, giou"):
        fused_total("5*l1+2*giou")
    assert FUSED_LOSSES == tuple(name for name in sandbox.LOSSES if name in HEADS)


def test_a_registry_loss_without_a_head_has_no_kernel_and_the_engine_runs_autograd_on_it(monkeypatch):
    # a head is optional: without one, gradient="fused" takes the autograd path, to the same result
    protocol = diou_protocol(points=2, seed=3)
    with_head = regress(protocol.anchors, protocol.targets, loss="wiou", iterations=20, gradient="fused", workers=1)
    used = []
    monkeypatch.setattr(sandbox.optim.engine, "fused_total", lambda loss: used.append(loss) or fused_total(loss))
    monkeypatch.delitem(HEADS, "wiou")
    kernel.cache_clear()
    try:
        assert kernel("wiou") is None and "wiou" not in fused.FUSED_LOSSES
        with pytest.raises(ValueError, match="no fused kernel for 'wiou'"):
            fused_total("wiou")
        without = regress(protocol.anchors, protocol.targets, loss="wiou", iterations=20, gradient="fused",
                          workers=1)
    finally:
        kernel.cache_clear()  # its answer for 'wiou' holds only while the head is gone
    assert used == []
    np.testing.assert_allclose(without.errors, with_head.errors, rtol=1e-3)


@pytest.mark.parametrize("spec", ["focaler_giou:d=0.1,u=0.9", "inner_ciou:ratio=0.8", "alpha_diou", "siou",
                                  "smooth_l1:coords=cxcywh"])
def test_the_engine_runs_the_kernel_and_agrees_with_autograd(spec, monkeypatch):
    protocol = diou_protocol(points=6, seed=4)
    used = []

    def spy(loss):
        used.append(loss)
        return fused_total(loss)
    monkeypatch.setattr(sandbox.optim.engine, "fused_total", spy)
    fused = regress(protocol.anchors, protocol.targets, loss=spec, iterations=60, gradient="fused", workers=1)
    [function] = used  # once, with the function the run's settings read the spec into
    expected = get_loss(spec)
    assert getattr(function, "func", function) is getattr(expected, "func", expected)
    assert getattr(function, "keywords", {}) == getattr(expected, "keywords", {})
    generic = regress(protocol.anchors, protocol.targets, loss=spec, iterations=60, gradient="autograd", workers=1)
    assert len(used) == 1  # gradient="autograd" does not take the kernel
    np.testing.assert_allclose(fused.errors, generic.errors, rtol=1e-3)
    np.testing.assert_allclose(fused.mean_iou, generic.mean_iou, rtol=1e-3)


@pytest.mark.parametrize("spec", ["giou", "diou", "ciou", "iou", "l1", "smooth_l1:beta=0.3,coords=cxcywh", "l2",
                                  "focaler_giou:d=0.1,u=0.9", "inner_ciou:ratio=0.8"])
def test_fused_loss_is_the_registry_loss_per_pair_with_its_gradient_against_central_differences(spec):
    # training's primitive: each pair's value, and a reverse pass that weighs each pair's partials by its own
    # upstream gradient (the weights below differ pair by pair, so a product summed over pairs would fail)
    rng = np.random.default_rng(7)
    target = np.array([[1.0, 2.0, 2.5, 2.75], [0.0, 0.0, 2.0, 1.0], [3.0, 1.0, 4.0, 5.0]])
    pred = np.vstack([target[0] + rng.normal(0, 0.3, 4), target[1] + [2.1, 0.3, 2.45, 0.2], target[2][[2, 3, 0, 1]] + [0.1, -0.2, 0.15, 0.05]])
    weights = np.array([0.5, -2.0, 3.0])
    values = fused.fused_loss(canonical_loss(spec))
    registry = unchecked(get_loss(spec))
    np.testing.assert_allclose(values(pred, target), registry(pred, target), rtol=1e-12, atol=1e-15)

    def weighted(p):
        return anp.sum(weights * values(p, target))

    def reference(p):  # the registry loss, with the factors it holds constant frozen
        return np.sum(weights * registry(p, target))
    expected = central_differences(frozen(reference, pred), pred)
    np.testing.assert_allclose(grad(weighted)(pred), expected, rtol=1e-6, atol=1e-8)


def test_fused_loss_keeps_float32_boxes_float32_and_refuses_a_spec_without_a_kernel():
    pred, target = (np.array([[0.0, 0.0, 2.0, 1.0], [1.0, 1.0, 3.0, 4.0]], dtype=np.float32) + shift
                    for shift in (0.25, 0.0))
    values = fused.fused_loss("giou")
    assert values(pred, target).dtype == np.float32
    assert grad(lambda p: anp.mean(values(p, target)))(pred).dtype == np.float32
    with pytest.raises(ValueError, match="no fused kernel for '5\\*l1\\+2\\*giou'"):
        fused.fused_loss("5*l1+2*giou")
    with pytest.raises(ValueError, match="one target per predicted box, or one for all"):
        values(pred[0], target)
