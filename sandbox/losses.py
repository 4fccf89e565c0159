"""IoU, GIoU and the box regression losses, elementwise over leading axes.

Every function here takes a predicted box and a target box in ``xyxy`` format,
arrays of shape ``(..., 4)`` that broadcast against each other, and returns one
value per box pair, shape ``(...,)``, without reducing: the caller sums or
averages. All are written with ``autograd.numpy``.

The predicted box is read through `order_corners` first, as in Algorithm 2 of
the GIoU paper, so an optimiser may pass through inverted boxes. The target must
have positive width and height; then the union is at least the target's area and
the enclosing box at least the union, so no division can be by zero and no small
constant is needed: every value and gradient is finite for finite input.

Kinks (``min``, ``max``, ``abs``) carry the subgradient autograd defines: at a
tie, ``minimum`` and ``maximum`` give each argument half of the gradient, and
``abs`` has gradient 0 at 0. So the IoU loss has gradient exactly zero while the
boxes are strictly apart, and a half-weighted one when they touch at an edge.

Called on plain arrays, each function first checks its input (`check_boxes`);
under autograd tracing the checks are skipped, so a gradient loop pays for them
once, when it validates its input before starting, as `sandbox.fit` does.
"""
import functools
import inspect

import autograd.numpy as np
from autograd.tracer import isbox

from .boxes import (FORMATS, box_area, box_convert, check_boxes, enclosing_box,
                    intersection_area, order_corners)


def box_pair_function(function):
    """Decorate ``function(pred, target, **params)`` to check plain-array input first."""
    @functools.wraps(function)
    def checked(pred, target, **params):
        if not (isbox(pred) or isbox(target)):
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


def _overlap(pred, target):
    """Ordered predicted box, intersection area and union area (the intersection computed once)."""
    pred = order_corners(pred)
    intersection = intersection_area(pred, target)
    return pred, intersection, box_area(pred) + box_area(target) - intersection


@box_pair_function
def iou(pred, target):
    """Intersection over union of boxes, shape ``(...,)``, in [0, 1].

    Examples
    --------
    >>> float(iou([0, 0, 2, 2], [1, 0, 3, 2]))   # overlap 1 x 2, union 6
    0.3333333333333333
    """
    _, intersection, union = _overlap(pred, target)
    return intersection / union


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
    pred, intersection, union = _overlap(pred, target)
    enclosing = box_area(enclosing_box(pred, target))
    return intersection / union - (enclosing - union) / enclosing


@box_pair_function
def iou_loss(pred, target):
    """IoU loss, 1 - IoU; flat, with gradient exactly zero, while the boxes do not overlap."""
    return 1.0 - unchecked(iou)(pred, target)


@box_pair_function
def giou_loss(pred, target):
    """GIoU loss, 1 - GIoU, in [0, 2) (arXiv 1902.09630, Algorithm 2)."""
    return 1.0 - unchecked(giou)(pred, target)


def _coordinate_difference(pred, target, coords):
    if coords not in FORMATS:
        raise ValueError(f"unknown coords {coords!r} for l1/l2; valid: {', '.join(FORMATS)}")
    return box_convert(order_corners(pred), "xyxy", coords) - box_convert(target, "xyxy", coords)


@box_pair_function
def l1_loss(pred, target, coords="xyxy"):
    """Sum of absolute coordinate differences, in the box format ``coords``.

    The GIoU paper's Figure 1 uses both the corner vector and (cx, cy, w, h).
    """
    return np.sum(np.abs(_coordinate_difference(pred, target, coords)), axis=-1)


@box_pair_function
def l2_loss(pred, target, coords="xyxy"):
    """Sum of squared coordinate differences, in the box format ``coords``."""
    return np.sum(_coordinate_difference(pred, target, coords) ** 2, axis=-1)


LOSSES = {"iou": iou_loss, "giou": giou_loss, "l1": l1_loss, "l2": l2_loss}
"""Every loss by name: ``loss(pred, target, **params)`` on ``xyxy`` boxes, elementwise."""


def get_loss(spec, **params):
    """The loss function named by `spec`, with its parameters bound.

    `spec` is a callable (returned as it is), a name in `LOSSES`, or a name with
    parameters as on the command line: ``'l1:coords=cxcywh'``, several separated
    by commas. Keyword arguments add parameters.

    Examples
    --------
    >>> float(get_loss("l1:coords=cxcywh")([0, 0, 2, 2], [1, 0, 3, 2]))
    1.0
    """
    if callable(spec):
        return functools.partial(spec, **params) if params else spec
    name, _, text = str(spec).partition(":")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses are {', '.join(LOSSES)}")
    for item in filter(None, text.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"loss parameter {item!r} in {spec!r} must be written key=value")
        params.setdefault(key.strip(), _parse_value(value.strip()))
    valid = list(inspect.signature(unchecked(LOSSES[name])).parameters)[2:]  # after pred, target
    for key in params:
        if key not in valid:
            allowed = ", ".join(valid) if valid else "none"
            raise ValueError(f"loss {name!r} has no parameter {key!r}; its parameters: {allowed}")
    return functools.partial(LOSSES[name], **params) if params else LOSSES[name]


def _parse_value(text):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
