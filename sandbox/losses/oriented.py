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
from sandbox.geometry.oriented import check_oriented_boxes, unstack_oriented
from sandbox.geometry.polygons import rotated_giou, rotated_iou
from sandbox.losses.formulas import Claims

__all__ = ["ORIENTED_LOSSES", "ORIENTED_CLAIMS", "oriented", "oriented_pair_function", "rotated_l1_loss",
           "rotated_iou_loss", "rotated_giou_loss"]

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
