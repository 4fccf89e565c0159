"""The geometry of a (predicted, target) box pair, and arithmetic that stays finite at its edges.

`Pair` holds what the IoU-family losses measure about two boxes (sizes, centres,
overlap, the smallest enclosing box), each computed on first use and kept, so a
loss reads like its paper. The helpers `safe_divide`, `safe_power` and `detach`
carry the conventions that keep values and autograd gradients finite where a
formula is undefined (0 / 0, 0 ** p for p < 1) or where a paper holds a factor
constant in the gradient.
"""
from __future__ import annotations

from functools import cached_property

import autograd.numpy as np
from autograd.tracer import getval

from sandbox.geometry.boxes import (
    Coordinates,
    box_area,
    box_convert,
    enclosing_box,
    intersection_area,
    order_corners,
    unstack,
)
from sandbox._types import Boxes, Values


def safe_divide(numerator: Values, denominator: Values, at_zero: float = 0.0) -> Values:
    """numerator / denominator where the denominator is not 0, else `at_zero`; finite gradients.

    Both branches of an ``np.where`` are differentiated, so the division runs on a
    denominator made safe first ("double where"): no NaN leaks into the gradient.
    """
    nonzero = denominator != 0
    return np.where(nonzero, numerator / np.where(nonzero, denominator, 1.0), at_zero)


def safe_power(base: Values, exponent: float) -> Values:
    """base ** exponent for base >= 0; at base 0 with exponent < 1, value 0 and gradient 0.

    The true one-sided derivative there is infinite; 0 is the convention.
    """
    if exponent >= 1:
        return base ** exponent
    positive = base > 0
    return np.where(positive, np.where(positive, base, 1.0) ** exponent, 0.0)


def detach(value: Values) -> Values:
    """The value without its autograd history: a constant in every derivative (torch's detach)."""
    return getval(value)


class Pair:
    """A predicted and a target box, ``xyxy``, shape ``(..., 4)``; the prediction is read ordered.

    Every attribute has shape ``(...,)``. Differences run from the prediction to
    the target (``dx = target centre x - predicted centre x``).
    """

    def __init__(self, pred: Boxes, target: Boxes) -> None:
        self.pred = order_corners(Coordinates(unstack(pred)))
        self.target = Coordinates(unstack(target))
        self.x1, self.y1, self.x2, self.y2 = self.pred
        self.tx1, self.ty1, self.tx2, self.ty2 = self.target

    @cached_property
    def w(self) -> Values:
        return self.x2 - self.x1

    @cached_property
    def h(self) -> Values:
        return self.y2 - self.y1

    @cached_property
    def tw(self) -> Values:
        return self.tx2 - self.tx1

    @cached_property
    def th(self) -> Values:
        return self.ty2 - self.ty1

    @cached_property
    def dx(self) -> Values:
        return ((self.tx1 - self.x1) + (self.tx2 - self.x2)) / 2  # exactly 0 for identical boxes

    @cached_property
    def dy(self) -> Values:
        return ((self.ty1 - self.y1) + (self.ty2 - self.y2)) / 2

    @cached_property
    def centre_distance2(self) -> Values:
        """Squared distance between the centres, rho^2 in the DIoU paper."""
        return self.dx ** 2 + self.dy ** 2

    @cached_property
    def intersection(self) -> Values:
        return intersection_area(self.pred, self.target)

    @cached_property
    def union(self) -> Values:
        """At least the target's area, so never 0: the target is checked to have positive size."""
        return box_area(self.pred) + box_area(self.target) - self.intersection

    @cached_property
    def iou(self) -> Values:
        return self.intersection / self.union

    @cached_property
    def enclosing(self) -> Coordinates:
        """The smallest box containing both, as `Coordinates` (x1, y1, x2, y2)."""
        return enclosing_box(self.pred, self.target)

    @cached_property
    def enclosing_w(self) -> Values:
        return self.enclosing[2] - self.enclosing[0]

    @cached_property
    def enclosing_h(self) -> Values:
        return self.enclosing[3] - self.enclosing[1]

    @cached_property
    def enclosing_area(self) -> Values:
        return self.enclosing_w * self.enclosing_h

    @cached_property
    def diagonal2(self) -> Values:
        """Squared diagonal of the enclosing box, c^2 in the DIoU paper; at least the target's."""
        return self.enclosing_w ** 2 + self.enclosing_h ** 2

    @cached_property
    def giou_penalty(self) -> Values:
        """(C - U) / C: the share of the enclosing box that neither box covers."""
        return (self.enclosing_area - self.union) / self.enclosing_area

    @cached_property
    def aspect_v(self) -> Values:
        """CIoU's v = 4 / pi^2 (arctan(w_gt / h_gt) - arctan(w / h))^2.

        arctan(w / h) is computed as arctan2(w, h): pi / 2 for a zero-height box,
        its limit. A point (w = h = 0) has no aspect ratio; it takes the
        target's, so v = 0 there.
        """
        target_angle = np.arctan2(self.tw, self.th)
        has_size = (self.w != 0) | (self.h != 0)
        angle = np.where(has_size, np.arctan2(np.where(has_size, self.w, 1.0),
                                              np.where(has_size, self.h, 1.0)), target_angle)
        return 4 / np.pi ** 2 * (target_angle - angle) ** 2

    def scaled(self, ratio: float) -> Pair:
        """The pair of auxiliary boxes of Inner-IoU: same centres, widths and heights times `ratio`."""
        def scale(box: Coordinates) -> Coordinates:
            cx, cy, w, h = box_convert(box, "xyxy", "cxcywh")
            return box_convert(Coordinates((cx, cy, w * ratio, h * ratio)), "cxcywh", "xyxy")
        return Pair(scale(self.pred), scale(self.target))
