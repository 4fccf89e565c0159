"""Losses on oriented boxes (cx, cy, w, h, theta), elementwise, in their own registry.

Every function here takes a predicted and a target oriented box, arrays of shape
``(..., 5)`` (`sandbox.geometry.oriented`) that broadcast against each other, and
returns one value per pair, shape ``(...,)``, unreduced, written with
``autograd.numpy``. The target must have w > 0 and h > 0; called on plain arrays,
each function checks its input first (`check_oriented_boxes`), and under autograd
tracing it does not, as with `sandbox.losses.formulas`.

Each loss joins `ORIENTED_LOSSES` where it is written, ``@oriented(name)`` above
it; the registry's order is the order of every list and figure. A loss's
docstring opens with one line giving its formula and, in parentheses at the end,
its paper. The losses split in three: on the five raw numbers (which see the
angle boundary), on the rectangles as polygons (rotated IoU and GIoU), and on the
boxes as Gaussians (GWD, KLD, KFIoU, ProbIoU), each of which names its covariance
convention (`sandbox.geometry.oriented.COVARIANCE_SCALES`).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import autograd.numpy as np

from sandbox._types import Boxes, BoxPairFunction, Values
from sandbox.geometry.boxes import traced
from sandbox.geometry.oriented import COVARIANCE_SCALES, check_oriented_boxes, unstack_oriented
from sandbox.geometry.pair import safe_power
from sandbox.geometry.polygons import rotated_giou, rotated_iou
from sandbox.losses.formulas import Claims

__all__ = ["ORIENTED_LOSSES", "ORIENTED_CLAIMS", "oriented", "oriented_pair_function", "rotated_l1_loss",
           "rotated_iou_loss", "rotated_giou_loss", "gwd_loss", "kld_loss", "kfiou_loss", "probiou_loss"]

ORIENTED_LOSSES: dict[str, BoxPairFunction] = {}
"""Every oriented loss by name: ``loss(pred, target, **params)`` on ``(..., 5)`` boxes, elementwise."""

ORIENTED_CLAIMS: dict[str, Claims] = {}
"""The `Claims` of every loss of `ORIENTED_LOSSES`, by name, checked by the tests on random boxes."""


def oriented_pair_function(function: Callable[..., Values]) -> BoxPairFunction:
    """Decorate ``function(pred, target, **params)`` on oriented boxes to check plain-array input first."""
    @functools.wraps(function)
    def checked(pred: Boxes, target: Boxes, **params: Any) -> Values:
        if not (traced(pred) or traced(target)):
            pred = check_oriented_boxes(pred, "pred")
            target = check_oriented_boxes(target, "target", positive_size=True)
        return function(pred, target, **params)
    return checked


def oriented(name: str, *, positive: bool = True, symmetric: bool = True,
             scale_invariant: bool = True) -> Callable[[Callable[..., Values]], BoxPairFunction]:
    """Decorate an oriented loss to put it in `ORIENTED_LOSSES` as `name`, checked, with its `Claims`."""
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"a loss name must be a lower-case Python identifier such as 'my_iou'; got {name!r}")

    def register(function: Callable[..., Values]) -> BoxPairFunction:
        if name in ORIENTED_LOSSES:
            raise ValueError(f"oriented loss {name!r} is registered twice; give the second one another name")
        loss = oriented_pair_function(function)
        ORIENTED_LOSSES[name] = loss
        ORIENTED_CLAIMS[name] = Claims(positive, symmetric, scale_invariant)
        return loss
    return register


# Losses on the raw parameters.
@oriented("rotated_l1", positive=False, scale_invariant=False)
def rotated_l1_loss(pred: Boxes, target: Boxes) -> Values:
    """L1 loss on the raw parameters, |dcx| + |dcy| + |dw| + |dh| + |dtheta| (the regression baseline of rotated detectors, e.g. Yang et al., arXiv 2101.11952).

    Blind to the angle boundary: (w, h, theta) and (h, w, theta + pi/2), or theta
    and theta + pi, are the same rectangle at a positive loss, so it is not
    positive in the `Claims` sense, and a box across the boundary is pulled the
    long way round.
    """
    return sum(np.abs(p - t) for p, t in zip(unstack_oriented(pred), unstack_oriented(target)))


# Losses on the rectangles: rotated IoU and GIoU.
@oriented("rotated_iou")
def rotated_iou_loss(pred: Boxes, target: Boxes) -> Values:
    """Rotated IoU loss, 1 - IoU of the two rectangles (Zhou et al., IoU Loss for 2D/3D Object Detection, arXiv 1908.03851).

    IoU by clipping one rectangle against the other (`sandbox.geometry.polygons`),
    as mmrotate's RotatedIoULoss (linear mode) computes it. The same for every
    parameterisation of the same rectangles, so blind to the angle boundary; and,
    as for axis-aligned boxes, flat with gradient exactly 0 while the boxes are
    apart. The prediction is read as (cx, cy, |w|, |h|, theta): an optimiser may
    pass through negative sizes.
    """
    return 1.0 - rotated_iou(pred, target)


@oriented("rotated_giou")
def rotated_giou_loss(pred: Boxes, target: Boxes, enclosing: str = "convex_hull") -> Values:
    """Rotated GIoU loss, 1 - IoU + (C - U) / C, C the convex hull of both rectangles (Rezatofighi et al., arXiv 1902.09630; mmrotate's ConvexGIoULoss).

    U is the union; C is the area of the convex hull of the eight corners, as in
    mmrotate's ConvexGIoULoss, or with ``enclosing='axis_aligned_box'`` the smallest
    axis-aligned box around both (`sandbox.geometry.polygons.ENCLOSING_RULES`).
    In [0, 2); it keeps pulling while the boxes are apart. The prediction is read as
    (cx, cy, |w|, |h|, theta).
    """
    return 1.0 - rotated_giou(pred, target, enclosing)



# Losses on the Gaussians.
#
# Each loss reads both boxes as the Gaussians of `sandbox.geometry.oriented.gaussian`, held in their
# eigen-frames (`_Gaussian`): variances s w^2 and s h^2 along the box's own axes. Determinants and
# quadratic forms are then sums of positive terms. Computed from the covariance entries instead,
# det = a b - c^2 of a 1e-7-thin box cancels to noise of either sign, and its logarithm is NaN.
_MIN_SIZE = 1e-7
"""mmrotate's floor on w and h (``xy_wh_r_2_xy_sigma`` clamps them at 1e-7), for the losses whose
formula divides by the prediction's covariance or takes its log-determinant (KLD, ProbIoU)."""

_FUNS = ("log1p", "sqrt", "none")


class _Gaussian:
    """The Gaussian of oriented boxes (`gaussian`) by its eigen-decomposition, every attribute shape ``(...,)``.

    Mean (x, y); variances ``var_w = s w^2`` along the box's first axis (cos, sin) and
    ``var_h = s h^2`` along its second (-sin, cos), s from `COVARIANCE_SCALES`.
    """

    def __init__(self, boxes: Boxes, convention: str, min_size: float = 0.0) -> None:
        if convention not in COVARIANCE_SCALES:
            raise ValueError(f"unknown covariance convention {convention!r}; valid: {', '.join(COVARIANCE_SCALES)}")
        scale = COVARIANCE_SCALES[convention]
        cx, cy, w, h, self.theta = unstack_oriented(boxes)
        if min_size > 0:
            w, h = np.maximum(np.abs(w), min_size), np.maximum(np.abs(h), min_size)
        self.x, self.y = cx, cy
        self.var_w, self.var_h = scale * w ** 2, scale * h ** 2
        self.cos, self.sin = np.cos(self.theta), np.sin(self.theta)

    @property
    def det(self) -> Values:
        """det S = var_w var_h."""
        return self.var_w * self.var_h

    @property
    def trace(self) -> Values:
        return self.var_w + self.var_h

    def adjugate_form(self, dx: Values, dy: Values) -> Values:
        """d^T adj(S) d = det(S) d^T S^-1 d, for d = (dx, dy): var_h u^2 + var_w v^2 in the box's frame."""
        u, v = self.cos * dx + self.sin * dy, -self.sin * dx + self.cos * dy
        return self.var_h * u ** 2 + self.var_w * v ** 2

    def along(self, other: "_Gaussian") -> tuple[Values, Values]:
        """The other covariance's variances along this one's axes: e1^T S' e1 and e2^T S' e2."""
        cos2 = np.cos(other.theta - self.theta) ** 2
        sin2 = 1.0 - cos2
        return other.var_w * cos2 + other.var_h * sin2, other.var_w * sin2 + other.var_h * cos2

    def trace_product(self, other: "_Gaussian") -> Values:
        """Tr(S S')."""
        first, second = self.along(other)
        return self.var_w * first + self.var_h * second

    def trace_adjugate_product(self, other: "_Gaussian") -> Values:
        """Tr(adj(S) S') = det(S) Tr(S^-1 S'); det(S + S') = det S + det S' + this."""
        first, second = self.along(other)
        return self.var_h * first + self.var_w * second


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _postprocess(distance: Values, fun: str, tau: float) -> Values:
    """mmrotate's ``postprocess``: f(distance) for f = `fun`, then 1 - 1 / (tau + f) if tau >= 1, else f."""
    _require(fun in _FUNS, f"fun must be one of {', '.join(_FUNS)}; got {fun!r}")
    _require(tau >= 0, f"tau must be >= 0 (1 - 1 / (tau + f) for tau >= 1, f itself below); got {tau!r}")
    distance = np.maximum(distance, 0.0)  # rounding leaves -1e-17 at identity
    value = np.log1p(distance) if fun == "log1p" else safe_power(distance, 0.5) if fun == "sqrt" else distance
    return 1.0 - 1.0 / (tau + value) if tau >= 1 else value


def _wasserstein2(p: _Gaussian, t: _Gaussian) -> tuple[Values, Values]:
    """GWD's d^2 = |mu_p - mu_t|^2 + Tr(S_p + S_t - 2 (S_p^1/2 S_t S_p^1/2)^1/2), and sqrt(det S_p det S_t)."""
    root_det = safe_power(p.det * t.det, 0.5)
    # in 2-D, Tr(Z^1/2) = sqrt(Tr Z + 2 sqrt(det Z)) for Z = S_p^1/2 S_t S_p^1/2 (Tr Z = Tr(S_p S_t))
    coupling = safe_power(p.trace_product(t) + 2 * root_det, 0.5)
    return (p.x - t.x) ** 2 + (p.y - t.y) ** 2 + p.trace + t.trace - 2 * coupling, root_det


@oriented("gwd", scale_invariant=False)
def gwd_loss(pred: Boxes, target: Boxes, fun: str = "log1p", tau: float = 1.0, normalize: bool = False,
             convention: str = "mmrotate") -> Values:
    """GWD loss, 1 - 1 / (tau + f(d^2)), d^2 = |mu_p - mu_t|^2 + Tr(S_p + S_t - 2 (S_p^1/2 S_t S_p^1/2)^1/2) (Yang et al., ICML 2021, arXiv 2101.11952).

    d is the 2-Wasserstein distance between the boxes' Gaussians, covariance
    R diag(w^2/4, h^2/4) R^T (``convention='mmrotate'``); in 2-D the trace of the
    matrix root is sqrt(Tr(S_p S_t) + 2 sqrt(det(S_p S_t))). f is `fun`: ``'log1p'``
    (the default, as mmrotate's), ``'sqrt'`` or ``'none'``; tau < 1 returns f(d^2)
    itself, as mmrotate's ``postprocess`` does. d^2 scales as s^2 when both boxes
    are scaled by s, so the loss is not scale invariant, which the paper's f and
    tau only soften.

    ``normalize=True`` divides d^2 by mmrotate's scale squared, (2 (det S_p
    det S_t)^(1/8))^2 = sqrt(w_p h_p w_t h_t) for this convention, which makes it
    scale invariant. mmrotate's ``gwd_loss`` applies f to d, not to the paper's
    d^2, and normalises by default: its ``fun='none'`` equals ``fun='sqrt'`` here.
    A square's Gaussian does not see its angle, so a square turned by 45 degrees
    is at GWD 0.
    """
    p, t = _Gaussian(pred, convention), _Gaussian(target, convention)
    distance, root_det = _wasserstein2(p, t)
    if normalize:
        distance = distance / np.maximum(2 * safe_power(root_det, 0.25), 1e-7) ** 2  # mmrotate's clamp
    return _postprocess(distance, fun, tau)


def _kullback_leibler(first: _Gaussian, second: _Gaussian) -> Values:
    """KL(N_first || N_second) = (Tr(S2^-1 S1) + dmu^T S2^-1 dmu - 2 + ln(det S2 / det S1)) / 2."""
    dx, dy = first.x - second.x, first.y - second.y
    return 0.5 * ((second.trace_adjugate_product(first) + second.adjugate_form(dx, dy)) / second.det
                  - 2.0 + np.log(second.det) - np.log(first.det))


_DIRECTIONS = ("target_pred", "pred_target", "symmetric")


@oriented("kld", symmetric=False)
def kld_loss(pred: Boxes, target: Boxes, direction: str = "target_pred", fun: str = "log1p", tau: float = 1.0,
             sqrt: bool = True, convention: str = "mmrotate") -> Values:
    """KLD loss, 1 - 1 / (tau + f(sqrt(D_KL))), D_KL = (Tr(S_p^-1 S_t) + dmu^T S_p^-1 dmu - 2 + ln(det S_p / det S_t)) / 2 (Yang et al., NeurIPS 2021, arXiv 2106.01883).

    The default is mmrotate's ``kld_loss`` as its rotated configs use it
    (``GDLoss(loss_type='kld', fun='log1p', tau=1.0)``): D_KL(N_t || N_p), the
    direction the paper writes (``direction='target_pred'``), square-rooted
    (``sqrt=True``), then mmrotate's ``postprocess``, f = `fun`
    (``'log1p'``, ``'sqrt'``, ``'none'``), 1 - 1 / (tau + f), or f itself for
    tau < 1. ``direction='pred_target'`` is D_KL(N_p || N_t); ``'symmetric'`` is
    mmrotate's ``jd_loss``, (D_KL(p||t) + D_KL(t||p)) / 2. Covariance
    R diag(w^2/4, h^2/4) R^T (``convention='mmrotate'``); the prediction's w and
    h are floored at 1e-7, as mmrotate clamps them, so that a zero-size
    prediction has a large finite loss rather than an infinite one. KL is
    invariant under any affine map of both boxes, scale included; mmrotate's
    ``alpha`` (a weight on the centre term, 1 by default) is left out.
    """
    _require(direction in _DIRECTIONS, f"direction must be one of {', '.join(_DIRECTIONS)}; got {direction!r}")
    p, t = _Gaussian(pred, convention, min_size=_MIN_SIZE), _Gaussian(target, convention)
    if direction == "target_pred":
        divergence = _kullback_leibler(t, p)
    elif direction == "pred_target":
        divergence = _kullback_leibler(p, t)
    else:
        divergence = 0.5 * (_kullback_leibler(p, t) + _kullback_leibler(t, p))
    divergence = np.maximum(divergence, 0.0)
    return _postprocess(safe_power(divergence, 0.5) if sqrt else divergence, fun, tau)


_KFIOU_FUNS = ("none", "ln", "exp")


@oriented("kfiou", positive=False, symmetric=False)
def kfiou_loss(pred: Boxes, target: Boxes, fun: str = "none", centre: bool = True, beta: float = 1 / 9,
               convention: str = "mmrotate") -> Values:
    """KFIoU loss, 1 - V_B / (V_p + V_t - V_B) + smooth-L1 of the centre offset, V = 4 sqrt(det S) (Yang et al., ICLR 2023, arXiv 2201.12558).

    As mmrotate's ``kfiou_loss``: S_B = S_p - K S_p with the Kalman gain
    K = S_p (S_p + S_t)^-1 is the covariance of the product of the two Gaussians
    (covariance R diag(w^2/4, h^2/4) R^T, ``convention='mmrotate'``), and
    det S_B = det S_p det S_t / det(S_p + S_t). `fun`: ``'none'`` (1 - KFIoU,
    mmrotate's default), ``'ln'`` (-ln(KFIoU + 1e-6), mmrotate's eps) or
    ``'exp'`` (exp(1 - KFIoU) - 1). KFIoU is at most 1/3, reached by identical
    boxes, so the loss is 2/3 there, not 0 (not positive in the `Claims`
    sense). The overlap term depends on the covariances alone: it has no
    gradient with respect to the centre, whether the boxes overlap or not.

    The centre term, which ``centre=False`` leaves out, is mmrotate's smooth L1
    (``beta``, 1/9 by default) summed over the two centre offsets. mmrotate takes
    it on the encoded regression deltas, the offset in an anchor's frame divided
    by the anchor's size; here the target is the anchor: the offset is turned
    into the target's frame and divided by its w and h, which keeps the term
    scale invariant and blind to the angle boundary, but not symmetric.
    """
    _require(fun in _KFIOU_FUNS, f"fun must be one of {', '.join(_KFIOU_FUNS)}; got {fun!r}")
    _require(beta > 0, f"kfiou needs beta > 0; got {beta!r}")
    p, t = _Gaussian(pred, convention), _Gaussian(target, convention)
    joint = p.det + t.det + p.trace_adjugate_product(t)  # det(S_p + S_t)
    volume_p, volume_t = 4 * safe_power(p.det, 0.5), 4 * safe_power(t.det, 0.5)
    volume = 4 * safe_power(p.det * t.det / joint, 0.5)
    overlap = volume / (volume_p + volume_t - volume)
    if fun == "none":
        loss = 1.0 - overlap
    elif fun == "ln":
        loss = -np.log(overlap + 1e-6)
    else:
        loss = np.exp(1.0 - overlap) - 1.0
    if not centre:
        return loss
    _, _, tw, th, _ = unstack_oriented(target)
    dx, dy = p.x - t.x, p.y - t.y
    offsets = [np.abs(t.cos * dx + t.sin * dy) / tw, np.abs(-t.sin * dx + t.cos * dy) / th]
    return loss + sum(np.where(d < beta, 0.5 * d ** 2 / beta, d - 0.5 * beta) for d in offsets)


_PROBIOU_FORMS = ("hellinger", "bhattacharyya")


@oriented("probiou")
def probiou_loss(pred: Boxes, target: Boxes, form: str = "hellinger", convention: str = "probiou") -> Values:
    """ProbIoU loss, H = sqrt(1 - exp(-B)), B = dmu^T (S_p + S_t)^-1 dmu / 4 + ln(det((S_p + S_t) / 2) / sqrt(det S_p det S_t)) / 2 (Llerena et al., arXiv 2106.06072).

    B is the Bhattacharyya distance between the boxes' Gaussians, covariance
    R diag(w^2/12, h^2/12) R^T (``convention='probiou'``, the uniform
    distribution over the rectangle's covariance, as ultralytics'
    ``_get_covariance_matrix``); H is the Hellinger distance, the paper's L1 and
    ultralytics' OBB loss 1 - ProbIoU. ``form='bhattacharyya'`` returns B, the
    paper's L2 = -ln(1 - L1^2). ultralytics clamps B to [1e-7, 100] and adds
    1e-7 in four places; here B is exact, H is 0 with gradient 0 at identity
    (safe_power), and the prediction's w and h are floored at 1e-7, as for KLD.
    """
    _require(form in _PROBIOU_FORMS, f"form must be one of {', '.join(_PROBIOU_FORMS)}; got {form!r}")
    p, t = _Gaussian(pred, convention, min_size=_MIN_SIZE), _Gaussian(target, convention)
    cross = p.trace_adjugate_product(t)
    joint = p.det + t.det + cross  # det(S_p + S_t); adj is linear for 2 x 2 matrices
    dx, dy = p.x - t.x, p.y - t.y
    distance = (0.25 * (p.adjugate_form(dx, dy) + t.adjugate_form(dx, dy)) / joint
                + 0.5 * (np.log(joint / 4) - 0.5 * (np.log(p.det) + np.log(t.det))))
    distance = np.maximum(distance, 0.0)
    if form == "bhattacharyya":
        return distance
    return safe_power(1.0 - np.exp(-distance), 0.5)
