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
from sandbox.losses.formulas import Claims

__all__ = ["ORIENTED_LOSSES", "ORIENTED_CLAIMS", "oriented", "oriented_pair_function", "rotated_l1_loss"]

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


# Losses on the Gaussians.
