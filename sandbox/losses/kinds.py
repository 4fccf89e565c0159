"""Box kinds: axis-aligned ``xyxy`` boxes (4 numbers) or oriented ones (cx, cy, w, h, theta; 5).

A run moves one kind of box, and the loss says which: a spec that names a loss of
`sandbox.losses.oriented.ORIENTED_LOSSES` is oriented, any other is axis-aligned
(`sandbox.losses.spec.loss_kind`). A `BoxKind` holds what the optimisation machinery
needs to know about its boxes, so that one engine serves both: how many numbers a
box has, the check at the entry points, the IoU and GIoU it records and calls a box
"home" by (IoU >= 0.99), the error E(t) of the DIoU simulation, the parameterisation
a run moves by default and whether the fused kernels exist.

The error of a box against its target, summed over boxes into E(t):

- axis-aligned: the L1 distance in (x, y, w, h), the DIoU paper's;
- oriented: the L1 distance between the two boxes' ``le90`` canonical forms
  (`sandbox.geometry.oriented.canonical`: w >= h, theta in [-pi/2, pi/2)) in
  (cx, cy, w, h), plus |theta_pred - theta_target| with the difference wrapped into
  [-pi/2, pi/2): a distance between rectangles, not between parameterisations, so
  that a box turned half a turn, or with its sides swapped by a quarter turn, is at
  error 0. (A square's le90 form keeps its own order of sides, so a square turned a
  quarter turn counts that quarter turn, pi/2.)

The oriented IoU and GIoU are the exact rotated ones of `sandbox.geometry.polygons`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from sandbox._types import Boxes, FloatArray, Values
from sandbox.geometry.boxes import box_convert, check_boxes, unstack
from sandbox.geometry.oriented import canonical, check_oriented_boxes, unstack_oriented
from sandbox.geometry.polygons import rotated_giou, rotated_iou
from sandbox.losses.formulas import giou, iou, unchecked

__all__ = ["BoxKind", "ALIGNED", "ORIENTED", "KINDS", "aligned_error", "oriented_error", "wrapped_angle"]


class BoxKind(NamedTuple):
    """What the machinery needs to know about one kind of box.

    Attributes
    ----------
    name : str
        ``'aligned'`` or ``'oriented'``.
    size : int
        Numbers per box on the last axis: 4 or 5.
    layout : str
        The box as the user writes it, for messages: ``'xyxy'`` or ``'(cx, cy, w, h, theta)'``.
    check : callable
        ``check(boxes, name, positive_size=False)``: the boxes as a float array, or ValueError naming a bad one.
    iou, giou : callable
        ``metric(pred, target)``, unchecked, on boxes of this kind (arrays or `Coordinates`).
    error : callable
        ``error(pred, target)``: each box's distance to its target, of which E(t) is the sum (see the module).
    default_param : str
        The parameterisation a run moves when none is named (`sandbox.PARAMETERISATIONS`).
    fused : bool
        Whether the fused kernels of `sandbox.losses.fused` exist for its losses.
    """

    name: str
    size: int
    layout: str
    check: Callable[..., FloatArray]
    iou: Callable[[Boxes, Boxes], Values]
    giou: Callable[[Boxes, Boxes], Values]
    error: Callable[[Boxes, Boxes], Values]
    default_param: str
    fused: bool


def aligned_error(pred: Boxes, target: Boxes) -> Values:
    """L1 distance in (x, y, w, h) between ``xyxy`` boxes: the DIoU paper's error, per box."""
    return sum(np.abs(p - t) for p, t in zip(unstack(box_convert(pred, "xyxy", "cxcywh")),
                                             unstack(box_convert(target, "xyxy", "cxcywh"))))


def wrapped_angle(difference: Values) -> Values:
    """An angle difference wrapped into [-pi/2, pi/2): the turn between two directions of a rectangle's side."""
    return np.mod(np.asarray(difference) + np.pi / 2, np.pi) - np.pi / 2


def oriented_error(pred: Boxes, target: Boxes) -> Values:
    """L1 distance between oriented boxes as rectangles: their le90 forms' (cx, cy, w, h), plus the
    angle difference wrapped into [-pi/2, pi/2), in absolute value.

    Examples
    --------
    >>> float(oriented_error([0.0, 0.0, 1.0, 3.0, 0.0], [0.0, 0.0, 3.0, 1.0, np.pi / 2]))   # the same rectangle
    0.0
    """
    p, t = unstack_oriented(canonical(pred, "le90")), unstack_oriented(canonical(target, "le90"))
    return sum(np.abs(a - b) for a, b in zip(p[:4], t[:4])) + np.abs(wrapped_angle(p[4] - t[4]))


def _check_aligned(boxes: Boxes, name: str = "box", positive_size: bool = False) -> FloatArray:
    return check_boxes(boxes, name, positive_size)


def _check_oriented(boxes: Boxes, name: str = "box", positive_size: bool = False) -> FloatArray:
    return check_oriented_boxes(boxes, name, positive_size)


ALIGNED = BoxKind("aligned", 4, "xyxy", _check_aligned, unchecked(iou), unchecked(giou), aligned_error, "xyxy",
                  True)
def _where_finite(metric: Callable[[Boxes, Boxes], Values]) -> Callable[[Boxes, Boxes], Values]:
    """`metric` on the pairs whose ten numbers are finite, NaN on the others (a history's steps after a box's
    last are NaN; `sandbox.geometry.polygons` refuses them, as every checked function does)."""
    def on_finite(pred: Boxes, target: Boxes) -> Values:
        p, t = (np.stack([np.asarray(c, dtype=float) for c in unstack_oriented(b)], axis=-1) for b in (pred, target))
        p, t = np.broadcast_arrays(p, t)
        finite = np.isfinite(p).all(axis=-1) & np.isfinite(t).all(axis=-1)
        values = np.full(p.shape[:-1], np.nan)
        if finite.any():
            values[finite] = metric(p[finite], t[finite])
        return values
    return on_finite


ORIENTED = BoxKind("oriented", 5, "(cx, cy, w, h, theta)", _check_oriented, _where_finite(rotated_iou),
                   _where_finite(rotated_giou),
                   oriented_error, "xywha", False)
KINDS = {kind.name: kind for kind in (ALIGNED, ORIENTED)}
