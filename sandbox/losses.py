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
formula is undefined (0 / 0, 0 ** p for p < 1) `sandbox.pair` supplies the limit
or a stated convention. Every value and gradient is finite for finite input.

Kinks (``min``, ``max``, ``abs``) carry the subgradient autograd defines: at a
tie, ``minimum`` and ``maximum`` give each argument half of the gradient, and
``abs`` has gradient 0 at 0. So the IoU loss has gradient exactly zero while the
boxes are strictly apart, and a half-weighted one when they touch at an edge.

Called on plain arrays, each function first checks its input (`check_boxes`);
under autograd tracing the checks are skipped, so a gradient loop pays for them
once, when it validates its input before starting, as `sandbox.fit` does.
"""
import functools
import importlib
import inspect
import pickle
import re

import autograd.numpy as np

from .boxes import FORMATS, Coordinates, box_convert, check_boxes, order_corners, traced, unstack
from .names import canonical
from .pair import Pair, detach, safe_divide, safe_power


def box_pair_function(function):
    """Decorate ``function(pred, target, **params)`` to check plain-array input first."""
    @functools.wraps(function)
    def checked(pred, target, **params):
        if not (traced(pred) or traced(target)):
            pred = check_boxes(pred, "pred")
            target = check_boxes(target, "target", positive_size=True)
        return function(pred, target, **params)
    return checked


def unchecked(function):
    """The function behind a `box_pair_function` (or a partial of one), without the checks.

    For inner loops that checked their input once.
    """
    if isinstance(function, functools.partial):
        return functools.partial(unchecked(function.func), *function.args, **function.keywords)
    return getattr(function, "__wrapped__", function)


def _require(condition, message):
    if not condition:
        raise ValueError(message)


# Metrics.
@box_pair_function
def iou(pred, target):
    """Intersection over union of boxes, shape ``(...,)``, in [0, 1].

    Examples
    --------
    >>> float(iou([0, 0, 2, 2], [1, 0, 3, 2]))   # overlap 1 x 2, union 6
    0.3333333333333333
    """
    return Pair(pred, target).iou


@box_pair_function
def giou(pred, target):
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
@box_pair_function
def iou_loss(pred, target):
    """IoU loss, 1 - IoU; flat, with gradient exactly zero, while the boxes do not overlap."""
    return 1.0 - Pair(pred, target).iou


@box_pair_function
def giou_loss(pred, target):
    """GIoU loss, 1 - IoU + (C - U) / C, in [0, 2) (Rezatofighi et al., arXiv 1902.09630)."""
    pair = Pair(pred, target)
    return 1.0 - pair.iou + pair.giou_penalty


@box_pair_function
def log_iou_loss(pred, target, eps=1e-6):
    """UnitBox's -ln IoU (Yu et al., ACM MM 2016), with IoU clamped below at `eps`.

    -ln 0 is infinite; the clamp (mmdetection's convention) caps the loss at
    -ln eps (13.8 for the default) and leaves it flat, with gradient 0, where
    IoU < eps, as while the boxes are apart.
    """
    _require(eps > 0, f"log_iou needs eps > 0; got {eps!r}")
    return -np.log(np.maximum(Pair(pred, target).iou, eps))


@box_pair_function
def diou_loss(pred, target):
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


@box_pair_function
def ciou_loss(pred, target, trade_off_gradient=False):
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


@box_pair_function
def eiou_loss(pred, target):
    """EIoU loss (Zhang et al., arXiv 2101.08158): DIoU's terms plus width and height terms.

    1 - IoU + rho^2(b, b_gt) / c^2 + (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2,
    with C_w, C_h the width and height of the smallest enclosing box.
    """
    pair = Pair(pred, target)
    return (1.0 - pair.iou + pair.centre_distance2 / pair.diagonal2
            + (pair.w - pair.tw) ** 2 / pair.enclosing_w ** 2
            + (pair.h - pair.th) ** 2 / pair.enclosing_h ** 2)


@box_pair_function
def focal_eiou_loss(pred, target, gamma=0.5, weight_gradient=False):
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


@box_pair_function
def siou_loss(pred, target, theta=4.0):
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


@box_pair_function
def alpha_iou_loss(pred, target, alpha=3.0):
    """alpha-IoU loss, 1 - IoU^alpha (He et al., NeurIPS 2021, arXiv 2110.13675)."""
    _require(alpha > 0, f"alpha must be positive; got {alpha!r}")
    return 1.0 - safe_power(Pair(pred, target).iou, alpha)


@box_pair_function
def alpha_giou_loss(pred, target, alpha=3.0):
    """alpha-GIoU loss, 1 - IoU^alpha + ((C - U) / C)^alpha (arXiv 2110.13675)."""
    pair = Pair(pred, target)
    return unchecked(alpha_iou_loss)(pred, target, alpha) + safe_power(pair.giou_penalty, alpha)


@box_pair_function
def alpha_diou_loss(pred, target, alpha=3.0):
    """alpha-DIoU loss, 1 - IoU^alpha + (rho^2 / c^2)^alpha (arXiv 2110.13675)."""
    pair = Pair(pred, target)
    return (unchecked(alpha_iou_loss)(pred, target, alpha)
            + safe_power(pair.centre_distance2 / pair.diagonal2, alpha))


@box_pair_function
def alpha_ciou_loss(pred, target, alpha=3.0, trade_off_gradient=False):
    """alpha-CIoU loss, 1 - IoU^alpha + (rho^2 / c^2)^alpha + (beta v)^alpha (arXiv 2110.13675).

    beta is CIoU's trade-off on the plain IoU, constant in the gradient unless
    `trade_off_gradient`, as in the authors' code.
    """
    pair = Pair(pred, target)
    return (unchecked(alpha_diou_loss)(pred, target, alpha)
            + safe_power(_trade_off(pair, trade_off_gradient) * pair.aspect_v, alpha))


@box_pair_function
def wiou_loss(pred, target):
    """Wise-IoU v1, R (1 - IoU), R = exp(rho^2 / (W_g^2 + H_g^2)*) (Tong et al., arXiv 2301.10051).

    W_g, H_g are the enclosing box's size; the star marks them detached from the
    gradient, as the paper does. R lies in [1, e].
    """
    pair = Pair(pred, target)
    return np.exp(pair.centre_distance2 / detach(pair.diagonal2)) * (1.0 - pair.iou)


@box_pair_function
def mpdiou_loss(pred, target, frame_width=10.0, frame_height=10.0):
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


@box_pair_function
def shape_iou_loss(pred, target, scale=0.0, theta=4.0):
    """Shape-IoU loss (Zhang and Zhang, arXiv 2312.17663), as in the authors' shapeiou.py.

    1 - IoU + (hh dx^2 + ww dy^2) / c^2 + Omega / 2, with ww = 2 w_gt^s / (w_gt^s + h_gt^s),
    hh = 2 h_gt^s / (w_gt^s + h_gt^s) for s = `scale`, and SIoU's shape cost with
    the width term weighted by hh and the height term by ww. Not symmetric: the
    weights come from the target's shape.
    """
    pair = Pair(pred, target)
    ww = 2 * pair.tw ** scale / (pair.tw ** scale + pair.th ** scale)
    hh = 2 * pair.th ** scale / (pair.tw ** scale + pair.th ** scale)
    distance = (hh * pair.dx ** 2 + ww * pair.dy ** 2) / pair.diagonal2
    return 1.0 - pair.iou + distance + 0.5 * _shape_cost(pair, theta, weight_w=hh, weight_h=ww)


def _inner_iou(pair, ratio=0.7):
    _require(ratio > 0, f"ratio must be positive; got {ratio!r}")
    return pair.scaled(ratio).iou


def _focaler_iou(pair, d=0.0, u=0.95):
    _require(0 <= d < u <= 1, f"focaler bounds need 0 <= d < u <= 1; got d={d!r}, u={u!r}")
    return np.clip((pair.iou - d) / (u - d), 0.0, 1.0)


VARIANTS = {
    "inner": (_inner_iou, "Inner-IoU (Zhang, Xu and Zhang, arXiv 2311.02877): IoU of auxiliary "
                          "boxes with the same centres and sizes times `ratio`"),
    "focaler": (_focaler_iou, "Focaler-IoU (Zhang and Zhang, arXiv 2401.10525): IoU mapped linearly "
                              "from [d, u] onto [0, 1], clipped"),
}
"""Each IoU-based loss L has variants L + IoU - IoU', with IoU' one of these remappings."""


def variant(kind, name, base):
    """The `kind` variant of the IoU-based loss `base`: L_base + IoU - IoU', IoU' from `VARIANTS`."""
    remap, source = VARIANTS[kind]
    base = unchecked(base)
    own = {p.name: p.default for p in list(inspect.signature(remap).parameters.values())[1:]}

    def loss(pred, target, **params):
        pair = Pair(pred, target)
        remapped = remap(pair, **{k: params.pop(k) for k in own if k in params})
        return base(pred, target, **params) + pair.iou - remapped

    parameters = list(inspect.signature(base).parameters.values())
    parameters += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in own.items()]
    loss.__signature__ = inspect.Signature(parameters)
    loss.__name__ = f"{kind}_{name}_loss"
    loss.__doc__ = f"{name} loss + IoU - IoU', with IoU' from {source}."
    return box_pair_function(loss)


IOU_BASED = {"iou": iou_loss, "giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss,
             "eiou": eiou_loss, "siou": siou_loss, "mpdiou": mpdiou_loss, "shape_iou": shape_iou_loss}


# Losses on the coordinates.
def _coordinate_differences(pred, target, coords):
    """The four differences between the ordered prediction and the target, in format `coords`."""
    if coords not in FORMATS:
        raise ValueError(f"unknown coords {coords!r}; valid: {', '.join(FORMATS)}")
    pred = box_convert(order_corners(Coordinates(unstack(pred))), "xyxy", coords)
    target = box_convert(Coordinates(unstack(target)), "xyxy", coords)
    return [p - t for p, t in zip(pred, target)]


@box_pair_function
def l1_loss(pred, target, coords="xyxy"):
    """Sum of absolute coordinate differences, in the box format ``coords``.

    The GIoU paper's Figure 1 uses both the corner vector and (cx, cy, w, h).
    """
    return sum(np.abs(d) for d in _coordinate_differences(pred, target, coords))


@box_pair_function
def l2_loss(pred, target, coords="xyxy"):
    """Sum of squared coordinate differences, in the box format ``coords``."""
    return sum(d ** 2 for d in _coordinate_differences(pred, target, coords))


@box_pair_function
def smooth_l1_loss(pred, target, beta=1.0, coords="xyxy"):
    """Smooth L1 (Fast R-CNN, Girshick 2015), summed over the coordinate differences x.

    0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta; beta = 0 is plain L1.
    """
    _require(beta >= 0, f"smooth_l1 needs beta >= 0; got {beta!r}")
    differences = [np.abs(d) for d in _coordinate_differences(pred, target, coords)]
    if beta == 0:
        return sum(differences)
    return sum(np.where(x < beta, 0.5 * x ** 2 / beta, x - 0.5 * beta) for x in differences)


LOSSES = {
    "iou": iou_loss, "giou": giou_loss, "log_iou": log_iou_loss, "diou": diou_loss,
    "ciou": ciou_loss, "eiou": eiou_loss, "focal_eiou": focal_eiou_loss, "siou": siou_loss,
    "alpha_iou": alpha_iou_loss, "alpha_giou": alpha_giou_loss, "alpha_diou": alpha_diou_loss,
    "alpha_ciou": alpha_ciou_loss, "wiou": wiou_loss, "mpdiou": mpdiou_loss,
    "shape_iou": shape_iou_loss,
    **{f"{kind}_{name}": variant(kind, name, base) for kind in VARIANTS for name, base in IOU_BASED.items()},
    "l1": l1_loss, "l2": l2_loss, "smooth_l1": smooth_l1_loss,
}
"""Every loss by name: ``loss(pred, target, **params)`` on ``xyxy`` boxes, elementwise."""


REGISTERED = {}
"""Losses added by `register_loss`, by name; every spec can name them as it names `LOSSES`."""


def register_loss(name, function):
    """Make `function` a loss that every spec names as `name`: `fit`, sweeps, the command lines.

    For code that defines a loss where it runs, a notebook say. ``function(pred,
    target, **params)`` takes ``xyxy`` boxes of shape ``(..., 4)`` and returns one
    value per pair, written with ``autograd.numpy``. Registering a name again
    replaces its function (a notebook cell run twice); the built-in names cannot
    be taken. Returns `function`.

    Worker processes get the loss as they get any other: forked ones inherit it,
    and spawned ones and a Dask cluster import it by its module and name, so a
    function defined in a notebook or a script's ``__main__`` runs in this process
    and forked workers only; anything else is refused before any work. Name a loss
    in an importable module as ``module:function`` to send it anywhere.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> def half_l1(pred, target):
    ...     return 0.5 * np.sum(np.abs(pred - target), axis=-1)
    >>> _ = register_loss("half_l1", half_l1)
    >>> float(get_loss("Half_L1")([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]))
    1.0
    >>> del REGISTERED["half_l1"]  # as this example leaves the registry
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"a loss name must be a Python identifier such as 'my_loss'; got {name!r}")
    key = name.lower()
    if key in LOSSES:
        raise ValueError(f"{key!r} is a built-in loss; register yours under another name")
    if not callable(function):
        raise ValueError(f"register_loss takes a function loss(pred, target); got {function!r}")
    REGISTERED[key] = function
    return function


def _loss_names():
    return [*LOSSES, *REGISTERED]


def _split(spec):
    """A spec's weighted terms, [(weight, term)], or None if it is a single loss.

    ``'5*l1+2*giou'``, ``'l1*5 + giou*2'``: terms joined by ``+``, each with an
    optional factor on either side of ``*``. A ``+`` in a number's exponent
    (``alpha=1e+3``) does not split.
    """
    if "+" not in spec and "*" not in spec:
        return None
    terms = []
    for term in re.split(r"(?<![0-9][eE])\+", spec):
        factors = [factor.strip() for factor in term.split("*")]
        if len(factors) == 1:
            weight, loss = 1.0, factors[0]
        elif len(factors) == 2 and _number(factors[0]) is not None:
            weight, loss = _number(factors[0]), factors[1]
        elif len(factors) == 2 and _number(factors[1]) is not None:
            weight, loss = _number(factors[1]), factors[0]
        else:
            raise ValueError(f"loss {spec!r}: each term of a weighted sum is a loss with at most one factor, "
                             f"as '5*l1+2*giou'; got {term.strip()!r}")
        if not loss:
            raise ValueError(f"loss {spec!r}: a term has no loss; write it as '5*l1+2*giou'")
        terms.append((weight, loss))
    return terms


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _parts(spec):
    """(kind, function name, parameters text) of a single-loss spec.

    kind is ``'name'`` for `LOSSES` and `REGISTERED` (``'giou'``,
    ``'alpha_ciou:alpha=3'``) or ``'module'`` for ``'package.module:function'``
    (``'package.module:function:key=value'``): the part after the first ``:``
    names a function when it holds no ``=``.
    """
    head, _, rest = spec.strip().partition(":")
    function, _, params = rest.partition(":")
    if function and "=" not in function and head.lower() not in _loss_names():
        return "module", f"{head}:{function}", params
    return "name", head, rest


def canonical_loss(spec):
    """The spelling of a loss spec that every record of it uses; ValueError for a bad one.

    Names in lower case, factors first, no spaces; a callable stays itself.

    >>> canonical_loss("L1*5 + GIoU*2")
    '5*l1+2*giou'
    >>> canonical_loss("Alpha_CIoU:Alpha=3")
    'alpha_ciou:alpha=3'
    """
    if callable(spec):
        return spec
    get_loss(spec)  # every mistake shows here
    terms = _split(str(spec))
    if terms is not None:
        return "+".join(loss if weight == 1 else f"{weight:g}*{loss}"
                        for weight, loss in ((w, canonical_loss(t)) for w, t in terms))
    kind, name, params = _parts(str(spec))
    if kind == "module":
        return f"{name}:{params}" if params else name
    name = canonical(name, _loss_names(), "loss")
    keys = list(inspect.signature(unchecked(_function(name))).parameters)[2:]
    items = []
    for item in filter(None, params.split(",")):
        key, _, value = item.partition("=")
        key = next((k for k in keys if k.lower() == key.strip().lower()), key.strip())
        items.append(f"{key}={value.strip()}")
    return ":".join([name, ",".join(items)]) if items else name


def _function(name):
    return LOSSES[name] if name in LOSSES else REGISTERED[name]


def get_loss(spec, **params):
    """The loss function named by `spec`, with its parameters bound.

    `spec` is one of:

    - a callable ``loss(pred, target)``, returned as it is;
    - a name in `LOSSES` or `REGISTERED`, in any case, with parameters as on the
      command line: ``'l1:coords=cxcywh'``, several separated by commas;
    - a function in an importable module, ``'package.module:function'``, with
      parameters the same way: ``'package.module:function:scale=2'``;
    - a weighted sum of those, ``'5*l1+2*giou'`` (DETR's combination; a factor may
      also follow its loss, ``'l1*5+giou*2'``).

    Keyword arguments add parameters (not to a sum). Every name, parameter and value
    is checked here, with one call on a pair of boxes, before any work.

    Examples
    --------
    >>> float(get_loss("l1:coords=cxcywh")([0, 0, 2, 2], [1, 0, 3, 2]))
    1.0
    >>> float(get_loss("5*l1+2*giou")([0, 0, 2, 2], [1, 0, 3, 2]))  # 5 * 2 + 2 * (1 - 1/3)
    11.333333333333334
    """
    if callable(spec):
        return functools.partial(spec, **params) if params else spec
    text = str(spec)
    terms = _split(text)
    if terms is not None:
        if params:
            raise ValueError(f"loss {text!r}: give a weighted sum's parameters with each term, as '5*l1:coords=cxcywh+giou'")
        return WeightedSum([(weight, get_loss(term)) for weight, term in terms])
    kind, name, text_params = _parts(text)
    if kind == "module":
        function = _import(name)
    else:
        name = canonical(name, _loss_names(), "loss", "valid losses are")
        function = _function(name)
    valid = list(inspect.signature(unchecked(function)).parameters.values())[2:]  # after pred, target
    names = [p.name for p in valid if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in valid)
    for item in filter(None, text_params.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"loss parameter {item!r} in {text!r} must be written key=value")
        key = next((k for k in names if k.lower() == key.strip().lower()), key.strip())
        params.setdefault(key, _parse_value(value.strip()))
    for key in params:
        if key not in names and not takes_any:
            allowed = ", ".join(names) if names else "none"
            raise ValueError(f"loss {name!r} has no parameter {key!r}; its parameters: {allowed}")
    loss = functools.partial(function, **params) if params else function
    if kind == "module" or name in REGISTERED:
        loss = on_arrays(loss)
    if params or kind == "module" or name in REGISTERED:
        _try(loss, text)
    return loss


def on_arrays(function):
    """`function` of stacked ``(..., 4)`` arrays, also callable on the corner arrays the engine passes.

    The built-in losses take either; a user's function need only take arrays.
    """
    def as_array(boxes):
        if isinstance(boxes, Coordinates):
            return np.stack(list(boxes), axis=-1)
        return boxes if traced(boxes) else np.asarray(boxes, dtype=float)

    def loss_on_arrays(pred, target):
        return function(as_array(pred), as_array(target))
    loss_on_arrays.__name__ = loss_on_arrays.__qualname__ = getattr(function, "__name__", "loss")
    return loss_on_arrays


def _import(reference):
    """The function at ``'package.module:function'``; ValueError saying what to fix."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"loss {reference!r}: cannot import module {module_name!r} ({error}); put its folder "
                         f"on the Python path (PYTHONPATH) or install it") from None
    function = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        raise ValueError(f"loss {reference!r}: module {module_name!r} has no function {attribute!r}")
    return function


def _try(loss, spec):
    """One call on a pair of boxes, so that a bad parameter or function shows before any work."""
    try:
        value = loss(np.array([[0.0, 0.0, 1.0, 2.0]]), np.array([[0.5, 0.5, 2.0, 1.5]]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"loss {spec!r}: {error}") from None
    except Exception as error:
        raise ValueError(f"loss {spec!r} fails on a pair of boxes: {type(error).__name__}: {error}") from None
    if np.shape(value) not in ((1,), ()):
        raise ValueError(f"loss {spec!r} must return one value per pair of boxes, shape (...,); on boxes of "
                         f"shape (1, 4) it returned shape {np.shape(value)}")


class WeightedSum:
    """``sum(weight * loss(pred, target))`` over the terms of a spec such as ``'5*l1+2*giou'``."""

    def __init__(self, terms):
        self.terms = terms

    def __call__(self, pred, target):
        return sum(weight * loss(pred, target) for weight, loss in self.terms)

    def __repr__(self):
        return " + ".join(f"{weight:g} * {getattr(loss, '__name__', loss)!s}" for weight, loss in self.terms)


def travelling(spec, forked):
    """What worker processes need to rebuild the loss `spec`; ValueError if it cannot travel.

    Returns a dict, name -> ``'module:function'``, for the `REGISTERED` losses the
    spec uses, which workers register again (`adopt`) unless `forked` (they
    inherited them). A callable travels by pickling, as a reference to its module
    and name, so it must be defined at the top level of an importable module, not
    (unless `forked`) in ``__main__``.
    """
    fix = "define it in an importable module and name it as module:function"
    if callable(spec):
        if not forked and getattr(spec, "__module__", None) == "__main__":
            raise ValueError(f"loss {_name(spec)} is defined in __main__ (a notebook or a script), which spawned "
                             f"workers and Dask workers cannot import: {fix}")
        try:
            pickle.dumps(spec)
        except Exception as error:
            raise ValueError(f"loss {_name(spec)} cannot be sent to worker processes ({type(error).__name__}: "
                             f"{error}): {fix}") from None
        return {}
    needed = {}
    for name in _named(str(spec)):
        if name not in REGISTERED:
            continue
        function = REGISTERED[name]
        reference = _reference(function)
        if reference is not None:
            needed[name] = reference
        elif not forked:
            raise ValueError(f"registered loss {name!r} ({_name(function)}) cannot reach spawned workers or a Dask "
                             f"cluster, which import it by module and name: {fix}")
    return needed


def _named(spec):
    """The `LOSSES` and `REGISTERED` names a spec uses."""
    terms = _split(spec) or [(1.0, spec)]
    return [canonical(name, _loss_names(), "loss") for kind, name, _ in (_parts(t) for _, t in terms) if kind == "name"]


def _reference(function):
    """``'module:qualified.name'`` that imports `function` itself, or None."""
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if module in (None, "__main__") or "<" in name:
        return None
    try:
        return f"{module}:{name}" if _import(f"{module}:{name}") is function else None
    except ValueError:
        return None


def _name(function):
    return repr(getattr(function, "__qualname__", function))


def adopt(registered):
    """Register, in a worker, the losses `travelling` said it needs."""
    for name, reference in registered.items():
        if name not in REGISTERED:
            register_loss(name, _import(reference))


def _parse_value(text):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
