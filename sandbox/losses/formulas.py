"""IoU, GIoU and the box regression losses, each as its paper defines it, elementwise.

Every function here takes a predicted box and a target box in ``xyxy`` format,
arrays of shape ``(..., 4)`` that broadcast against each other, and returns one
value per box pair, shape ``(...,)``, without reducing: the caller sums or
averages. All are written with ``autograd.numpy``.

The predicted box is read through `order_corners` first, as in Algorithm 2 of
the GIoU paper, so an optimiser may pass through inverted boxes. The target must
have positive width and height; then the union is at least the target's area and
the enclosing box at least the union, so IoU, GIoU and the distance terms never
divide by zero. The one small constant is `log_iou_loss`'s eps; where a paper's
formula is undefined (0 / 0, 0 ** p for p < 1) `sandbox.geometry.pair` supplies the limit
or a stated convention. Every value and gradient is finite for finite input.

Kinks (``min``, ``max``, ``abs``) carry the subgradient autograd defines: at a
tie, ``minimum`` and ``maximum`` give each argument half of the gradient, and
``abs`` has gradient 0 at 0. So the IoU loss has gradient exactly zero while the
boxes are strictly apart, and a half-weighted one when they touch at an edge.

Called on plain arrays, each function first checks its input (`check_boxes`);
under autograd tracing the checks are skipped, so a gradient loop pays for them
once, when it validates its input before starting, as `sandbox.fit` does.

Each loss joins the registry, `LOSSES`, where it is written: ``@registered(name)``
above its function. The registry's order is the order of the functions below (with
the Inner and Focaler variants of the IoU-based losses after the IoU family), and it
is the order of every list, sweep and figure. A loss's docstring opens with one line
giving its formula and, in parentheses at the end, its paper; `sandbox.losses.catalogue`
reads the docs' and the tables' entries from there.

A few losses carry *state* from one step to the next (Wise-IoU v2 and v3 a running mean
of the IoU loss, Unified-IoU its scheduled box scale). The state is a keyword parameter
of the loss (``iou_mean``, ``ratio``), so the function stays pure; the loss declares, in
``@registered(name, state=LossState(...))``, where the state starts and how it moves
(`LossState`), and the runners that take steps, the engine (`sandbox.optim.engine.descend`,
one state per box) and training (`sandbox.learning.training.train`, one per run, kept in
its checkpoint), hold it, update it before each step's loss and return it. Called
directly, or by scipy's methods, such a loss uses its parameter as a constant.
"""
from __future__ import annotations

import functools
import inspect
from collections import namedtuple
from typing import Any, Callable

import autograd.numpy as np

from sandbox._types import Boxes, BoxPairFunction, Values
from sandbox.geometry.boxes import FORMATS, Coordinates, box_convert, check_boxes, order_corners, traced, unstack
from sandbox.geometry.pair import Pair, detach, safe_divide, safe_power

__all__ = [
    "box_pair_function", "unchecked", "registered", "Claims", "iou", "giou", "iou_loss", "giou_loss",
    "log_iou_loss", "diou_loss", "ciou_loss", "eiou_loss", "focal_eiou_loss", "siou_loss", "alpha_iou_loss",
    "alpha_giou_loss", "alpha_diou_loss", "alpha_ciou_loss", "wiou_loss", "mpdiou_loss", "shape_iou_loss",
    "nwd_loss", "variant", "l1_loss", "l2_loss", "smooth_l1_loss", "CLAIMS", "IOU_BASED", "LOSSES", "VARIANTS",
    "ciou_mmdet_loss", "wiou_v2_loss", "wiou_v3_loss", "piou_loss", "piou_v2_loss", "bounded_iou_loss", "uiou_loss",
    "balanced_l1_loss", "LossState", "LOSS_STATES", "loss_state", "iou_loss_running_mean", "unified_iou_ratio",
    "UIOU_SCHEDULES",
]


def box_pair_function(function: Callable[..., Values]) -> BoxPairFunction:
    """Decorate ``function(pred, target, **params)`` to check plain-array input first."""
    @functools.wraps(function)
    def checked(pred: Boxes, target: Boxes, **params: Any) -> Values:
        if not (traced(pred) or traced(target)):
            pred = check_boxes(pred, "pred")
            target = check_boxes(target, "target", positive_size=True)
        return function(pred, target, **params)
    return checked


def unchecked(function: Callable[..., Values]) -> Callable[..., Values]:
    """The function behind a `box_pair_function` (or a partial of one), without the checks.

    For inner loops that checked their input once.
    """
    if isinstance(function, functools.partial):
        return functools.partial(unchecked(function.func), *function.args, **function.keywords)
    return getattr(function, "__wrapped__", function)


def _require(condition, message):
    if not condition:
        raise ValueError(message)


# The registry.
LOSSES: dict[str, BoxPairFunction] = {}
"""Every loss by name: ``loss(pred, target, **params)`` on ``xyxy`` boxes, elementwise.

Filled by `registered`, in the order the losses are written in this module.
"""

IOU_BASED: dict[str, BoxPairFunction] = {}
"""The IoU-based losses that have Inner and Focaler variants (``registered(name, variants=True)``)."""

Claims = namedtuple("Claims", "positive symmetric scale_invariant")
Claims.__doc__ = """What a loss claims at its default parameters, which the tests check on random boxes.

``positive``: 0 for identical boxes and positive for any other pair; ``symmetric``:
``loss(a, b) == loss(b, a)``; ``scale_invariant``: unchanged when both boxes are
scaled about the origin. Every loss is invariant under translation.
"""

CLAIMS: dict[str, Claims] = {}
"""The `Claims` of every loss of `LOSSES`, by name."""

LossState = namedtuple("LossState", "parameter initial statistic update")
LossState.__doc__ = """The state a loss carries from step to step, and how it moves: pure functions, held by the runner.

``parameter``: the loss's keyword that takes the state; ``initial``: the state before
the first step (a spec that sets ``parameter`` starts from its value instead);
``statistic(pred, target)``: what a step reads of its boxes, one value per pair, or
None for nothing; ``update(state, statistic, step, steps)``: the state for step
``step`` (0, 1, ..., ``steps`` - 1) from the state before it and the statistic of the
boxes about to be scored (their mean over a minibatch in training; None without a
statistic). Each step updates the state first and then evaluates the loss with it,
as Wise-IoU's authors update their running mean before scaling the loss.
"""

LOSS_STATES: dict[str, LossState] = {}
"""The `LossState` of every loss of `LOSSES` that carries one, by name (``registered(name, state=...)``)."""

_VARIANTS_LISTED: list[str] = []
"""The IoU-based losses whose variants are in `LOSSES` already (see `registered`)."""


def registered(name: str, *, variants: bool = False, positive: bool = True, symmetric: bool = True,
               scale_invariant: bool = True, state: LossState | None = None
               ) -> Callable[[Callable[..., Values]], BoxPairFunction]:
    """Decorate a loss ``function(pred, target, **params)`` to put it in `LOSSES` as `name`.

    The function is wrapped by `box_pair_function` (it checks plain-array input), and
    the wrapped function is what `LOSSES` holds and the decorator returns.

    Parameters
    ----------
    name : str
        Lower case, a Python identifier: how every spec names the loss.
    variants : bool
        The loss is IoU-based and has Inner and Focaler variants (`VARIANTS`):
        ``inner_<name>`` and ``focaler_<name>`` join `LOSSES` too, with the variants
        of the other IoU-based losses (after the IoU family), or at once if the loss
        is registered after them.
    positive, symmetric, scale_invariant : bool
        Its `Claims`, False where the paper makes it so on purpose; the variants
        inherit them (and Focaler's are not positive).
    state : LossState, optional
        The state the loss carries from step to step (`LOSS_STATES`), passed to it as
        the keyword ``state.parameter``.
    """
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"a loss name must be a lower-case Python identifier such as 'my_iou'; got {name!r}")

    def register(function: Callable[..., Values]) -> BoxPairFunction:
        loss = box_pair_function(function)
        _add(name, loss, Claims(positive, symmetric, scale_invariant))
        if state is not None:
            if state.parameter not in inspect.signature(function).parameters:
                raise ValueError(f"loss {name!r} declares the state {state.parameter!r}, which is not one of its "
                                 f"parameters")
            LOSS_STATES[name] = state
        if variants:
            IOU_BASED[name] = loss
            if _VARIANTS_LISTED:  # registered after the variants' section below: its own follow it now
                _add_variants([name])
        return loss
    return register


def _add(name, loss, claims):
    if name in LOSSES:
        raise ValueError(f"loss {name!r} is registered twice; give the second one another name")
    LOSSES[name] = loss
    CLAIMS[name] = claims


def loss_state(function: Callable[..., Any]) -> tuple[LossState, Any] | None:
    """The `LossState` of a loss built by `sandbox.get_loss` (a registry loss or a partial of one) and the state
    it starts from (its spec's value of the parameter, else the declared initial), or None for a stateless loss."""
    bound: dict[str, Any] = {}
    if isinstance(function, functools.partial):
        bound, function = function.keywords, function.func
    name = next((name for name, registered in LOSSES.items() if registered is function), None)
    if name not in LOSS_STATES:
        return None
    state = LOSS_STATES[name]
    return state, bound.get(state.parameter, state.initial)


# Metrics.
@box_pair_function
def iou(pred: Boxes, target: Boxes) -> Values:
    """Intersection over union of boxes, shape ``(...,)``, in [0, 1].

    Examples
    --------
    >>> float(iou([0, 0, 2, 2], [1, 0, 3, 2]))   # overlap 1 x 2, union 6
    0.3333333333333333
    """
    return Pair(pred, target).iou


@box_pair_function
def giou(pred: Boxes, target: Boxes) -> Values:
    """Generalised IoU, IoU - (C - U) / C, shape ``(...,)``, in (-1, 1].

    C is the area of the smallest box enclosing both, U the union (Rezatofighi et
    al., CVPR 2019, arXiv 1902.09630, Algorithm 1).

    Examples
    --------
    >>> float(giou([0, 0, 1, 1], [2, 0, 3, 1]))   # apart: IoU 0, C = 3, U = 2
    -0.3333333333333333
    """
    pair = Pair(pred, target)
    return pair.iou - pair.giou_penalty


# The IoU loss family.
@registered("iou", variants=True)
def iou_loss(pred: Boxes, target: Boxes) -> Values:
    """IoU loss, 1 - IoU (Yu et al., UnitBox, ACM MM 2016, arXiv 1608.01471).

    Flat, with gradient exactly zero, while the boxes do not overlap.
    """
    return 1.0 - Pair(pred, target).iou


@registered("giou", variants=True)
def giou_loss(pred: Boxes, target: Boxes) -> Values:
    """GIoU loss, 1 - IoU + (C - U) / C, in [0, 2) (Rezatofighi et al., CVPR 2019, arXiv 1902.09630)."""
    pair = Pair(pred, target)
    return 1.0 - pair.iou + pair.giou_penalty


@registered("log_iou")
def log_iou_loss(pred: Boxes, target: Boxes, eps: float = 1e-6) -> Values:
    """UnitBox's loss, -ln IoU, with IoU clamped below at `eps` (Yu et al., ACM MM 2016, arXiv 1608.01471).

    -ln 0 is infinite; the clamp (mmdetection's convention) caps the loss at
    -ln eps (13.8 for the default) and leaves it flat, with gradient 0, where
    IoU < eps, as while the boxes are apart.
    """
    _require(eps > 0, f"log_iou needs eps > 0; got {eps!r}")
    return -np.log(np.maximum(Pair(pred, target).iou, eps))


@registered("diou", variants=True)
def diou_loss(pred: Boxes, target: Boxes) -> Values:
    """DIoU loss, 1 - IoU + rho^2 / c^2 (Zheng et al., AAAI 2020, arXiv 1911.08287).

    rho is the distance between the centres, c the diagonal of the smallest
    enclosing box.
    """
    pair = Pair(pred, target)
    return 1.0 - pair.iou + pair.centre_distance2 / pair.diagonal2


def _trade_off(pair, trade_off_gradient):
    """CIoU's alpha = v / ((1 - IoU) + v); 0 where both vanish (identical boxes).

    Held constant in the gradient unless `trade_off_gradient`, as in the CIoU
    authors' code (computed under torch.no_grad).
    """
    alpha = safe_divide(pair.aspect_v, (1.0 - pair.iou) + pair.aspect_v)
    return alpha if trade_off_gradient else detach(alpha)


@registered("ciou", variants=True)
def ciou_loss(pred: Boxes, target: Boxes, trade_off_gradient: bool = False) -> Values:
    """CIoU loss, DIoU + alpha v (Zheng et al., AAAI 2020, arXiv 1911.08287).

    v = 4 / pi^2 (arctan(w_gt / h_gt) - arctan(w / h))^2 measures the mismatch of
    aspect ratios, alpha = v / ((1 - IoU) + v) trades it off; alpha is a constant
    in the gradient unless `trade_off_gradient=True`. The gradient is autograd's
    of this formula: the authors' code also drops the factor 1 / (w^2 + h^2)
    from dv/dw and dv/dh, which this does not. A zero-height box has
    arctan(w / h) = pi / 2, its limit; a point box takes the target's aspect.
    """
    pair = Pair(pred, target)
    return (1.0 - pair.iou + pair.centre_distance2 / pair.diagonal2
            + _trade_off(pair, trade_off_gradient) * pair.aspect_v)


@registered("ciou_mmdet")
def ciou_mmdet_loss(pred: Boxes, target: Boxes) -> Values:
    """mmdetection's CIoU loss, DIoU + [IoU > 0.5] alpha v (mmdetection ciou_loss; Zheng et al., arXiv 2005.03572).

    CIoU as in the journal version of the DIoU paper and mmdetection's
    ``mmdet/models/losses/iou_loss.py`` (``ciou_loss``): the trade-off alpha is
    set to 0 wherever IoU <= 0.5 (``S = (ious > 0.5).float(); alpha = S * v / (1 -
    ious + v)`` under ``torch.no_grad()``), so the aspect term acts only on boxes
    that already overlap well. A loss of its own rather than a parameter of `ciou`,
    so that `ciou` stays the AAAI paper's. alpha is a constant in the gradient, as
    there. mmdetection's ``eps`` (1e-7 in the union, the heights and c^2) is left
    out, and so is its clamp of CIoU to [-1, 1], which no pair of valid boxes
    reaches. The value jumps by alpha v where IoU crosses 0.5.
    """
    pair = Pair(pred, target)
    gated = np.where(pair.iou > 0.5, _trade_off(pair, False), 0.0)
    return 1.0 - pair.iou + pair.centre_distance2 / pair.diagonal2 + detach(gated) * pair.aspect_v


@registered("eiou", variants=True)
def eiou_loss(pred: Boxes, target: Boxes) -> Values:
    """EIoU loss, DIoU + (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2 (Zhang et al., arXiv 2101.08158).

    That is 1 - IoU + rho^2(b, b_gt) / c^2 + (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2,
    with C_w, C_h the width and height of the smallest enclosing box.
    """
    pair = Pair(pred, target)
    return (1.0 - pair.iou + pair.centre_distance2 / pair.diagonal2
            + (pair.w - pair.tw) ** 2 / pair.enclosing_w ** 2
            + (pair.h - pair.th) ** 2 / pair.enclosing_h ** 2)


@registered("focal_eiou", positive=False)
def focal_eiou_loss(pred: Boxes, target: Boxes, gamma: float = 0.5, weight_gradient: bool = False) -> Values:
    """Focal-EIoU loss, IoU^gamma * L_EIoU (Zhang et al., arXiv 2101.08158).

    The factor IoU^gamma re-weights the EIoU loss of each box by how well it already
    fits; it is a constant in the gradient, as in the public implementations
    (``(1 - EIoU) * IoU^gamma.detach()``), unless `weight_gradient=True`. Letting it
    flow makes the loss fall fastest by shrinking the overlap, so that it pushes
    overlapping boxes apart. Either way the weight is 0 while the boxes do not
    overlap, and, like the IoU loss, the loss has no gradient there.
    """
    weight = safe_power(Pair(pred, target).iou, gamma)
    return (weight if weight_gradient else detach(weight)) * unchecked(eiou_loss)(pred, target)


@registered("siou", variants=True)
def siou_loss(pred: Boxes, target: Boxes, theta: float = 4.0) -> Values:
    """SIoU loss, 1 - IoU + (Delta + Omega) / 2 (Gevorgyan, arXiv 2205.12740).

    Angle cost Lambda = 1 - 2 sin^2(arcsin(|dy| / rho) - pi / 4), which equals
    sin(2 alpha) = 2 |dx dy| / rho^2, the form used here: it is smooth where the
    arcsin form has an infinite derivative (centres aligned), and 0 when the
    centres coincide, where the angle is undefined. Distance cost
    Delta = sum over x, y of 1 - exp(-(2 - Lambda) (d / C)^2) with the enclosing
    box's width and height C; shape cost Omega = sum over w, h of
    (1 - exp(-|w - w_gt| / max(w, w_gt)))^theta.
    """
    pair = Pair(pred, target)
    angle = safe_divide(2 * np.abs(pair.dx * pair.dy), pair.centre_distance2)
    gamma = 2.0 - angle
    distance = (2.0 - np.exp(-gamma * (pair.dx / pair.enclosing_w) ** 2)
                - np.exp(-gamma * (pair.dy / pair.enclosing_h) ** 2))
    return 1.0 - pair.iou + (distance + _shape_cost(pair, theta)) / 2


def _shape_cost(pair, theta, weight_w=1.0, weight_h=1.0):
    """SIoU's Omega: sum over w, h of (1 - exp(-weight |s - s_gt| / max(s, s_gt)))^theta."""
    omega_w = weight_w * np.abs(pair.w - pair.tw) / np.maximum(pair.w, pair.tw)
    omega_h = weight_h * np.abs(pair.h - pair.th) / np.maximum(pair.h, pair.th)
    return safe_power(1.0 - np.exp(-omega_w), theta) + safe_power(1.0 - np.exp(-omega_h), theta)


@registered("alpha_iou")
def alpha_iou_loss(pred: Boxes, target: Boxes, alpha: float = 3.0) -> Values:
    """alpha-IoU loss, 1 - IoU^alpha (He et al., NeurIPS 2021, arXiv 2110.13675)."""
    _require(alpha > 0, f"alpha must be positive; got {alpha!r}")
    return 1.0 - safe_power(Pair(pred, target).iou, alpha)


@registered("alpha_giou")
def alpha_giou_loss(pred: Boxes, target: Boxes, alpha: float = 3.0) -> Values:
    """alpha-GIoU loss, 1 - IoU^alpha + ((C - U) / C)^alpha (He et al., NeurIPS 2021, arXiv 2110.13675)."""
    pair = Pair(pred, target)
    return unchecked(alpha_iou_loss)(pred, target, alpha) + safe_power(pair.giou_penalty, alpha)


@registered("alpha_diou")
def alpha_diou_loss(pred: Boxes, target: Boxes, alpha: float = 3.0) -> Values:
    """alpha-DIoU loss, 1 - IoU^alpha + (rho^2 / c^2)^alpha (He et al., NeurIPS 2021, arXiv 2110.13675)."""
    pair = Pair(pred, target)
    return (unchecked(alpha_iou_loss)(pred, target, alpha)
            + safe_power(pair.centre_distance2 / pair.diagonal2, alpha))


@registered("alpha_ciou")
def alpha_ciou_loss(pred: Boxes, target: Boxes, alpha: float = 3.0, trade_off_gradient: bool = False) -> Values:
    """alpha-CIoU loss, 1 - IoU^alpha + (rho^2 / c^2)^alpha + (beta v)^alpha (He et al., NeurIPS 2021, arXiv 2110.13675).

    beta is CIoU's trade-off on the plain IoU, constant in the gradient unless
    `trade_off_gradient`, as in the authors' code.
    """
    pair = Pair(pred, target)
    return (unchecked(alpha_diou_loss)(pred, target, alpha)
            + safe_power(_trade_off(pair, trade_off_gradient) * pair.aspect_v, alpha))


@registered("wiou")
def wiou_loss(pred: Boxes, target: Boxes) -> Values:
    """Wise-IoU v1, R (1 - IoU), R = exp(rho^2 / (W_g^2 + H_g^2)*) (Tong et al., arXiv 2301.10051).

    W_g, H_g are the enclosing box's size; the star marks them detached from the
    gradient, as the paper does. R lies in [1, e].
    """
    pair = Pair(pred, target)
    return np.exp(pair.centre_distance2 / detach(pair.diagonal2)) * (1.0 - pair.iou)


def iou_loss_running_mean(state: Any, value: Any, step: int, steps: int) -> Any:
    """Wise-IoU's running mean of the IoU loss, (1 - m) state + m value, m = 1 - 0.05^(1 / steps).

    The paper's momentum m = 1 - 0.05^(1 / (n t)) leaves the initial value a weight of
    5 % after n t steps (n batches an epoch, t epochs); here n t is the run's
    ``steps``, its whole length.
    """
    momentum = 1.0 - 0.05 ** (1.0 / steps)
    return (1.0 - momentum) * state + momentum * value


def _iou_loss_statistic(pred: Boxes, target: Boxes) -> Values:
    """L_IoU = 1 - IoU of each pair: what Wise-IoU's running mean averages."""
    return 1.0 - Pair(pred, target).iou


_WISE_IOU_STATE = LossState("iou_mean", 1.0, _iou_loss_statistic, iou_loss_running_mean)


def _outlier_degree(pair, iou_mean):
    """Wise-IoU's beta = L_IoU* / mean(L_IoU), the IoU loss detached; 0 where the mean is 0."""
    _require(np.all(np.asarray(iou_mean) >= 0), f"Wise-IoU's iou_mean must be >= 0; got {iou_mean!r}")
    return safe_divide(detach(1.0 - pair.iou), iou_mean)


@registered("wiou_v2", state=_WISE_IOU_STATE)
def wiou_v2_loss(pred: Boxes, target: Boxes, iou_mean: float = 1.0, gamma: float = 0.5) -> Values:
    """Wise-IoU v2, (L_IoU* / mean L_IoU)^gamma L_WIoUv1 (Tong et al., arXiv 2301.10051).

    The monotonic focusing: the v1 loss (`wiou`) times the detached IoU loss over its
    running mean, to the power gamma (0.5, the paper's). `iou_mean` is the running
    mean, state that the engine and training carry (`LOSS_STATES`; 1.0, the authors'
    start, when the loss is called on its own).
    """
    _require(gamma > 0, f"wiou_v2 needs gamma > 0; got {gamma!r}")
    pair = Pair(pred, target)
    return safe_power(_outlier_degree(pair, iou_mean), gamma) * unchecked(wiou_loss)(pred, target)


@registered("wiou_v3", state=_WISE_IOU_STATE)
def wiou_v3_loss(pred: Boxes, target: Boxes, iou_mean: float = 1.0, alpha: float = 1.9, delta: float = 3.0) -> Values:
    """Wise-IoU v3, r L_WIoUv1, r = beta / (delta alpha^(beta - delta)) (Tong et al., arXiv 2301.10051).

    The non-monotonic focusing: beta = L_IoU* / mean(L_IoU) is the outlier degree of
    a box (its IoU loss, detached, over the running mean `iou_mean`), and r, largest
    at beta = 1 / ln(alpha), gives ordinary boxes the largest gradient gain. alpha =
    1.9 and delta = 3 are the paper's (the authors' v1 branch, ``iou.py``). The
    running mean is state that the engine and training carry (`LOSS_STATES`).
    """
    _require(alpha > 0 and delta > 0, f"wiou_v3 needs alpha > 0 and delta > 0; got {alpha!r}, {delta!r}")
    pair = Pair(pred, target)
    beta = _outlier_degree(pair, iou_mean)
    return beta / (delta * alpha ** (beta - delta)) * unchecked(wiou_loss)(pred, target)


@registered("mpdiou", variants=True, scale_invariant=False)
def mpdiou_loss(pred: Boxes, target: Boxes, frame_width: float = 10.0, frame_height: float = 10.0) -> Values:
    """MPDIoU loss, 1 - IoU + (d1^2 + d2^2) / (w^2 + h^2) (Ma and Xu, arXiv 2307.07662).

    d1, d2: distances between the top-left corners and between the bottom-right
    corners; w, h: the size of the frame (the input image in the paper). The
    default 10 x 10 suits the sandbox's unit-sized boxes; the penalty, and with it
    the pull on boxes that do not overlap, shrinks as the frame grows.
    """
    _require(frame_width > 0 and frame_height > 0,
             f"mpdiou needs a frame of positive size; got {frame_width!r} x {frame_height!r}")
    pair = Pair(pred, target)
    corners = ((pair.x1 - pair.tx1) ** 2 + (pair.y1 - pair.ty1) ** 2
               + (pair.x2 - pair.tx2) ** 2 + (pair.y2 - pair.ty2) ** 2)
    return 1.0 - pair.iou + corners / (frame_width ** 2 + frame_height ** 2)


@registered("shape_iou", variants=True)
def shape_iou_loss(pred: Boxes, target: Boxes, scale: float = 0.0, theta: float = 4.0) -> Values:
    """Shape-IoU loss, 1 - IoU + shape-weighted distance + Omega / 2 (Zhang and Zhang, arXiv 2312.17663).

    As in the authors' shapeiou.py: 1 - IoU + (hh dx^2 + ww dy^2) / c^2 + Omega / 2,
    with ww = 2 w_gt^s / (w_gt^s + h_gt^s), hh = 2 h_gt^s / (w_gt^s + h_gt^s) for
    s = `scale`, and SIoU's shape cost with the width term weighted by hh and the
    height term by ww. The weights come from the target's shape, so the loss is
    symmetric only at ``scale=0``, the default, where ww = hh = 1.
    """
    pair = Pair(pred, target)
    ww = 2 * pair.tw ** scale / (pair.tw ** scale + pair.th ** scale)
    hh = 2 * pair.th ** scale / (pair.tw ** scale + pair.th ** scale)
    distance = (hh * pair.dx ** 2 + ww * pair.dy ** 2) / pair.diagonal2
    return 1.0 - pair.iou + distance + 0.5 * _shape_cost(pair, theta, weight_w=hh, weight_h=ww)


def _piou_penalty(pair):
    """PIoU's P: the mean of the four edge distances, each over the target's width or height."""
    return ((np.abs(pair.x1 - pair.tx1) + np.abs(pair.x2 - pair.tx2)) / pair.tw
            + (np.abs(pair.y1 - pair.ty1) + np.abs(pair.y2 - pair.ty2)) / pair.th) / 4


@registered("piou", symmetric=False)
def piou_loss(pred: Boxes, target: Boxes) -> Values:
    """PIoU loss, 1 - IoU + 1 - exp(-P^2) (Liu et al., Powerful-IoU, Neural Networks 2024).

    P = (|dw1| + |dw2|) / (4 w_gt) + (|dh1| + |dh2|) / (4 h_gt), with dw1, dw2, dh1,
    dh2 the distances between the corresponding edges of the two boxes; normalised
    by the target alone, so the loss is not symmetric. As the authors' ``piou.py``
    (fppccc/Powerful-IoU), without its eps.
    """
    pair = Pair(pred, target)
    return 1.0 - pair.iou + 1.0 - np.exp(-_piou_penalty(pair) ** 2)


@registered("piou_v2", symmetric=False)
def piou_v2_loss(pred: Boxes, target: Boxes, lambda_: float = 1.3) -> Values:
    """PIoU v2 loss, u(lambda q) L_PIoU, u(x) = 3 x exp(-x^2), q = exp(-P) (Liu et al., Powerful-IoU, Neural Networks 2024).

    The non-monotonic attention of PIoU v2 on the PIoU loss (`piou`); lambda = 1.3,
    the authors' default. q is not detached: the authors' ``piou.py`` lets the
    gradient flow through it, and so does this.
    """
    _require(lambda_ > 0, f"piou_v2 needs lambda_ > 0; got {lambda_!r}")
    x = lambda_ * np.exp(-_piou_penalty(Pair(pred, target)))
    return 3 * x * np.exp(-x ** 2) * unchecked(piou_loss)(pred, target)


@registered("bounded_iou", positive=False, symmetric=False, scale_invariant=False)
def bounded_iou_loss(pred: Boxes, target: Boxes, beta: float = 0.2, eps: float = 1e-3) -> Values:
    """Bounded IoU loss, smooth L1 of the four bounds 1 - IoU_B on cx, cy, w, h (Tychsen-Smith and Petersson, CVPR 2018, arXiv 1711.00164).

    As mmdetection's ``bounded_iou_loss``: for the centres 1 - max((w_gt - 2|dx|) /
    (w_gt + 2|dx| + eps), 0), for the sizes 1 - min(w_gt / (w + eps), w / (w_gt +
    eps)), and the same in y; each passed through smooth L1 with `beta` (0.2) and the
    four summed (mmdetection averages them). The denominators come from the target,
    so the loss is not symmetric; with mmdetection's eps = 1e-3 it is not 0 for
    identical boxes (each term is eps / (w_gt + eps)) nor scale invariant, and with
    ``eps=0`` it is both. A box of zero width has size term 1, its limit.
    """
    _require(beta > 0 and eps >= 0, f"bounded_iou needs beta > 0 and eps >= 0; got beta={beta!r}, eps={eps!r}")
    pair = Pair(pred, target)
    terms = []
    for offset, size, target_size in ((pair.dx, pair.w, pair.tw), (pair.dy, pair.h, pair.th)):
        spread = 2 * np.abs(offset)
        terms.append(1.0 - np.maximum((target_size - spread) / (target_size + spread + eps), 0.0))
    for size, target_size in ((pair.w, pair.tw), (pair.h, pair.th)):
        terms.append(1.0 - np.minimum(safe_divide(target_size, size + eps), size / (target_size + eps)))
    return sum(np.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta) for x in terms)


@registered("nwd", scale_invariant=False)
def nwd_loss(pred: Boxes, target: Boxes, constant: float = 1.0) -> Values:
    """NWD loss, 1 - exp(-sqrt(|c - c_gt|^2 + ((w - w_gt)^2 + (h - h_gt)^2) / 4) / C) (Wang et al., arXiv 2110.13389).

    The square root is the 2-Wasserstein distance between the Gaussians
    N((cx, cy), diag(w^2/4, h^2/4)) of the two boxes; C is `constant`. The paper
    sets C to the dataset's mean absolute box size (12.8 pixels for AI-TOD);
    the default 1 is the size of the sandbox's boxes (the 2 x 1 target, the
    1 x 1.5 starts), so a box one size away has NWD e^-1. The loss saturates
    at 1 as the distance grows, and its pull fades as exp(-W / C). Not scale
    invariant: W grows with the boxes and C does not.
    """
    _require(constant > 0, f"nwd needs constant > 0; got {constant!r}")
    pair = Pair(pred, target)
    distance2 = pair.centre_distance2 + ((pair.w - pair.tw) ** 2 + (pair.h - pair.th) ** 2) / 4
    return 1.0 - np.exp(-safe_power(distance2, 0.5) / constant)


def _inner_iou(pair, ratio=0.7):
    _require(np.all(np.asarray(ratio) > 0), f"ratio must be positive; got {ratio!r}")
    return pair.scaled(ratio).iou


def _focaler_iou(pair, d=0.0, u=0.95):
    _require(0 <= d < u <= 1, f"focaler bounds need 0 <= d < u <= 1; got d={d!r}, u={u!r}")
    return np.clip((pair.iou - d) / (u - d), 0.0, 1.0)


UIOU_SCHEDULES = {
    "linear": lambda progress: 2.0 - 1.5 * progress,
    "cosine": lambda progress: 0.75 * np.cos(np.pi * progress) + 1.25,
    "fraction": lambda progress: 200.0 / (300.0 * progress + 100.0),
}
"""Unified-IoU's schedules of the box scale over training, each from 2 at the start to 0.5 at the end."""


def unified_iou_ratio(progress: float, schedule: str = "linear") -> float:
    """Unified-IoU's box scale at `progress` (step / steps, in [0, 1]) of a run: 2 at the start, 0.5 at the end.

    The authors' code (``bbox_iou`` with ``UIoU=True``) writes its three schedules
    over 300 epochs: linear ``-0.005 * epoch + 2`` (the one it uses), cosine ``0.75 *
    cos(pi * epoch / 300) + 1.25`` and fraction ``200 / (epoch + 100)``; here epoch /
    300 is `progress`.
    """
    if schedule not in UIOU_SCHEDULES:
        raise ValueError(f"unknown Unified-IoU schedule {schedule!r}; valid: {', '.join(UIOU_SCHEDULES)}")
    return float(UIOU_SCHEDULES[schedule](progress))


def _scheduled_ratio(state: Any, statistic: Any, step: int, steps: int) -> Any:
    """Unified-IoU's ratio at step `step` of `steps`: the linear schedule, whatever the state was."""
    return unified_iou_ratio(step / steps) + 0.0 * np.asarray(state)  # one ratio per box, as the state came


@registered("uiou", state=LossState("ratio", 1.0, None, _scheduled_ratio))
def uiou_loss(pred: Boxes, target: Boxes, ratio: float = 1.0) -> Values:
    """Unified-IoU loss, 1 - IoU of both boxes scaled about their centres by ratio (Luo et al., arXiv 2408.06636).

    UIoU scales the prediction and the target by the same `ratio`, which the
    engine and training move over the run from 2 (larger boxes: a gradient for
    boxes that do not overlap yet, weight on the low-quality ones) to 0.5 (smaller
    boxes: weight on the high-quality ones) by the authors' linear schedule
    (`unified_iou_ratio`, `LOSS_STATES`); called on its own it uses `ratio` as
    given, 1 (the IoU loss) by default. This is UIoU on the IoU loss; the authors'
    code scales the boxes before whichever IoU loss it is combined with (CIoU in
    YOLO). Its focal weighting of the confidence loss is not a box loss and is left
    out.
    """
    return 1.0 - _inner_iou(Pair(pred, target), ratio)


Variant = namedtuple("Variant", "remap title remapped paper positive")
Variant.__doc__ = """A remapping of IoU, ``remap(pair, **params)``: its `title`, what IoU' is (`remapped`),
its `paper`, and whether its variants can be `positive` (`Claims`)."""

VARIANTS = {
    "inner": Variant(_inner_iou, "Inner-IoU", "the IoU of auxiliary boxes with the same centres and sizes "
                                              "times `ratio`", "Zhang, Xu and Zhang, arXiv 2311.02877", True),
    # 0 wherever IoU > u, identical boxes or not
    "focaler": Variant(_focaler_iou, "Focaler-IoU", "the IoU mapped linearly from [d, u] onto [0, 1], clipped",
                       "Zhang and Zhang, arXiv 2401.10525", False),
}
"""Each IoU-based loss L has variants L + IoU - IoU', with IoU' one of these remappings."""


def variant(kind: str, name: str, base: Callable[..., Values]) -> BoxPairFunction:
    """The `kind` variant of the IoU-based loss `base`: L_base + IoU - IoU', IoU' from `VARIANTS`."""
    remap, title, remapped, paper = VARIANTS[kind][:4]
    base = unchecked(base)
    own = {p.name: p.default for p in list(inspect.signature(remap).parameters.values())[1:]}

    def loss(pred: Boxes, target: Boxes, **params: Any) -> Values:
        pair = Pair(pred, target)
        remapped = remap(pair, **{k: params.pop(k) for k in own if k in params})
        return base(pred, target, **params) + pair.iou - remapped

    parameters = list(inspect.signature(base).parameters.values())
    parameters += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in own.items()]
    loss.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    loss.__name__ = f"{kind}_{name}_loss"
    loss.__doc__ = f"{title} variant of {name}, L_{name} + IoU - IoU', IoU' {remapped} ({paper})."
    return box_pair_function(loss)


def _add_variants(bases):
    """Register the variants of the IoU-based losses `bases`, kind by kind; they claim what their base does."""
    for kind, remapping in VARIANTS.items():
        for name in bases:
            claims = CLAIMS[name]._replace(positive=CLAIMS[name].positive and remapping.positive)
            _add(f"{kind}_{name}", variant(kind, name, IOU_BASED[name]), claims)
    _VARIANTS_LISTED.extend(bases)


# The Inner and Focaler variants of every IoU-based loss above: next in LOSSES, all Inner ones first.
_add_variants(list(IOU_BASED))


# Losses on the coordinates.
def _coordinate_differences(pred, target, coords):
    """The four differences between the ordered prediction and the target, in format `coords`."""
    if coords not in FORMATS:
        raise ValueError(f"unknown coords {coords!r}; valid: {', '.join(FORMATS)}")
    pred = box_convert(order_corners(Coordinates(unstack(pred))), "xyxy", coords)
    target = box_convert(Coordinates(unstack(target)), "xyxy", coords)
    return [p - t for p, t in zip(pred, target)]


@registered("l1", scale_invariant=False)
def l1_loss(pred: Boxes, target: Boxes, coords: str = "xyxy") -> Values:
    """L1 loss, the sum of absolute coordinate differences in ``coords`` (Rezatofighi et al., arXiv 1902.09630).

    The GIoU paper's Figure 1 compares L1 and L2 on both the corner vector and
    (cx, cy, w, h); ``coords`` is the box format of the differences.
    """
    return sum(np.abs(d) for d in _coordinate_differences(pred, target, coords))


@registered("l2", scale_invariant=False)
def l2_loss(pred: Boxes, target: Boxes, coords: str = "xyxy") -> Values:
    """L2 loss, the sum of squared coordinate differences in ``coords`` (Rezatofighi et al., arXiv 1902.09630).

    The GIoU paper's Figure 1 compares L1 and L2 on both the corner vector and
    (cx, cy, w, h); ``coords`` is the box format of the differences.
    """
    return sum(d ** 2 for d in _coordinate_differences(pred, target, coords))


@registered("smooth_l1", scale_invariant=False)
def smooth_l1_loss(pred: Boxes, target: Boxes, beta: float = 1.0, coords: str = "xyxy") -> Values:
    """Smooth L1, summed over coordinate differences (Girshick, Fast R-CNN, ICCV 2015, arXiv 1504.08083).

    0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta, for each difference x;
    beta = 0 is plain L1.
    """
    _require(beta >= 0, f"smooth_l1 needs beta >= 0; got {beta!r}")
    differences = [np.abs(d) for d in _coordinate_differences(pred, target, coords)]
    if beta == 0:
        return sum(differences)
    return sum(np.where(x < beta, 0.5 * x ** 2 / beta, x - 0.5 * beta) for x in differences)



@registered("balanced_l1", scale_invariant=False)
def balanced_l1_loss(pred: Boxes, target: Boxes, alpha: float = 0.5, gamma: float = 1.5, beta: float = 1.0,
                     coords: str = "xyxy") -> Values:
    """Balanced L1, summed over coordinate differences (Pang et al., Libra R-CNN, CVPR 2019, arXiv 1904.02701).

    For each difference x: alpha / b (b |x| + 1) ln(b |x| / beta + 1) - alpha |x|
    where |x| < beta, else gamma |x| + gamma / b - alpha beta, with b = e^(gamma /
    alpha) - 1 (so that alpha ln(b + 1) = gamma and the gradient is continuous at
    beta = 1), as mmdetection's ``balanced_l1_loss``, whose defaults (alpha 0.5,
    gamma 1.5, beta 1) these are. ``coords`` is the box format of the differences, as
    for `l1`; the paper applies it to its regression deltas.
    """
    _require(alpha > 0 and gamma > 0 and beta > 0,
             f"balanced_l1 needs alpha, gamma and beta > 0; got {alpha!r}, {gamma!r}, {beta!r}")
    b = np.exp(gamma / alpha) - 1
    total = 0.0
    for difference in _coordinate_differences(pred, target, coords):
        x = np.abs(difference)
        total = total + np.where(x < beta, alpha / b * (b * x + 1) * np.log(b * x / beta + 1) - alpha * x,
                                 gamma * x + gamma / b - alpha * beta)
    return total
