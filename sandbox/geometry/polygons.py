"""Exact rotated IoU and GIoU: the intersection and the enclosing hull of two oriented boxes, under autograd.

Two oriented boxes (`sandbox.geometry.oriented`, shape ``(..., 5)``) are convex
quadrilaterals, and so is what they share: a convex polygon with at most 8
vertices. Each vertex of it is a corner of one box inside the other, or a point
where an edge of one box crosses an edge of the other, as in mmcv's
``box_iou_rotated``. So `intersection_area` takes the 24 candidates (4 + 4
corners, 4 x 4 edge crossings), keeps those inside both boxes, sorts them by
angle about their mean (a point inside the polygon) and sums the shoelace
formula over them. `convex_hull_area` does the same for the corners of both
boxes that are not inside their convex hull, the enclosing region of
mmrotate's convex GIoU.

Every array has a fixed size, whatever the boxes: which candidates count and
their order are decisions read from the values (``getval``), and the area is a
polynomial of the chosen points, so autograd differentiates it exactly, with one
of the one-sided derivatives where the polygon gains or loses a vertex. Where
points coincide (a corner of both boxes, as when they are identical) they are
replaced by their mean, which shares the gradient out evenly: at identical boxes
the gradient is 0, as for the axis-aligned losses. Candidates that do not count
take the place of the first one that does, adding edges of length 0; with none
(boxes apart) every term is 0 and so is the gradient, exactly. The one division,
at an edge crossing, is guarded ("double where") where the edges are parallel.
The decisions allow a margin of `TOLERANCE` times the boxes' extent, so that a
point on the other box's edge counts however the rounding falls: identical
boxes, shared edges and corners give the exact area; a point that far outside
can add at most that margin times the perimeter to the area.

The predicted box is read as (cx, cy, |w|, |h|, theta), so an optimiser may pass
through negative sizes; the target must have w > 0 and h > 0, so the union and
the hull have positive area and IoU and GIoU never divide by 0.
"""
from __future__ import annotations

from typing import Callable

import autograd.numpy as np
import numpy
from autograd.extend import defvjp, primitive
from autograd.tracer import getval
from numpy.typing import NDArray

from sandbox._types import Array, BoolArray, Boxes, FloatArray, Values
from sandbox.geometry.boxes import Coordinates, traced
from sandbox.geometry.oriented import check_oriented_boxes, corners, unstack_oriented

__all__ = ["TOLERANCE", "ENCLOSING_RULES", "intersection_area", "convex_hull_area", "enclosing_box_area",
           "rotated_iou", "rotated_giou"]

TOLERANCE = 1e-13
"""How far outside a box, relative to the boxes' extent, a point still counts as on its edge."""

def _pair(pred: Boxes, target: Boxes) -> tuple[list[Array], list[Array], FloatArray]:
    """Both boxes as five arrays, moved so the target's centre is the origin, the prediction's
    sides read as |w|, |h|; and the scale of the pair (its extent), shape ``(...,)``, for the margins."""
    cx, cy, w, h, theta = unstack_oriented(pred)
    tcx, tcy, tw, th, ttheta = unstack_oriented(target)
    moved = [cx - tcx, cy - tcy, np.abs(w), np.abs(h), theta]
    centred = [tcx * 0.0, tcy * 0.0, tw, th, ttheta]
    values = _plain(moved + centred)
    scale = numpy.abs(values[0]) + numpy.abs(values[1]) + values[2] + values[3] + numpy.abs(values[7]) + values[8]
    return moved, centred, scale


def _inside(px: FloatArray, py: FloatArray, box: list[FloatArray], margin: FloatArray) -> BoolArray:
    """Whether points (..., k) lie in the box (five arrays (...,)), up to `margin` (...,) outside."""
    cx, cy, w, h, theta = (v[..., None] for v in box)
    dx, dy = px - cx, py - cy
    cos, sin = numpy.cos(theta), numpy.sin(theta)
    along, across = cos * dx + sin * dy, cos * dy - sin * dx
    margin = margin[..., None]
    return (numpy.abs(along) <= numpy.abs(w) / 2 + margin) & (numpy.abs(across) <= numpy.abs(h) / 2 + margin)


def _plain(arrays: list[Array]) -> list[FloatArray]:
    return [numpy.asarray(getval(a), dtype=float) for a in arrays]


def _broadcast(arrays: list[Array], shape: tuple[int, ...]) -> list[Array]:
    return [a + numpy.zeros(shape) for a in arrays]


def _convex_polygon_area(xs: Array, ys: Array, keep: BoolArray, margin: FloatArray) -> Values:
    """Area of the convex polygon whose vertices are among the points (xs, ys) (..., k) where `keep`.

    The kept points are sorted by angle about their mean, which lies inside the
    polygon (or on it, when it is flat and its area 0); repeated points and points
    along an edge add nothing. With no point kept the area is 0 with gradient 0.
    Points that coincide (within `margin`, shape (...,)) are replaced by their
    mean: the value is the same, and the gradient at a vertex where both boxes meet
    is shared out equally instead of going to whichever copy the sort put first,
    so that identical boxes have IoU gradient 0, as for axis-aligned boxes.
    """
    x, y = numpy.asarray(getval(xs)), numpy.asarray(getval(ys))
    count = numpy.maximum(keep.sum(axis=-1, keepdims=True), 1)
    mean_x = numpy.where(keep, x, 0.0).sum(axis=-1, keepdims=True) / count
    mean_y = numpy.where(keep, y, 0.0).sum(axis=-1, keepdims=True) / count
    angle = numpy.where(keep, numpy.arctan2(y - mean_y, x - mean_x), numpy.inf)
    order = numpy.argsort(angle, axis=-1, kind="stable")  # the kept points first, counter-clockwise
    kept = numpy.take_along_axis(keep, order, axis=-1)
    sorted_x, sorted_y = numpy.take_along_axis(x, order, axis=-1), numpy.take_along_axis(y, order, axis=-1)
    # runs of coinciding points, each kept point in sorted order joining its predecessor's run when on it
    on = numpy.hypot(sorted_x - numpy.roll(sorted_x, 1, axis=-1), sorted_y - numpy.roll(sorted_y, 1, axis=-1))
    joins = kept & numpy.roll(kept, 1, axis=-1) & (on <= margin[..., None])
    joins[..., 0] = False
    runs = numpy.cumsum(~joins, axis=-1) - 1
    # the last kept point on the first closes the circle: its run is the first's
    last = numpy.maximum(count - 1, 0)
    last_x, last_y = numpy.take_along_axis(sorted_x, last, axis=-1), numpy.take_along_axis(sorted_y, last, axis=-1)
    closes = numpy.hypot(last_x - sorted_x[..., :1], last_y - sorted_y[..., :1]) <= margin[..., None]
    runs = numpy.where(closes & (runs == numpy.take_along_axis(runs, last, axis=-1)), 0, runs)
    xs, ys = _run_mean(_gather(xs, order), runs), _run_mean(_gather(ys, order), runs)
    vertices = numpy.where(kept, numpy.arange(order.shape[-1]), 0)  # a point not kept: the first kept one again
    following = numpy.roll(vertices, -1, axis=-1)
    return 0.5 * np.sum(_gather(xs, vertices) * _gather(ys, following) - _gather(xs, following) * _gather(ys, vertices),
                        axis=-1)


def _row_offsets(shape: tuple[int, ...]) -> NDArray[numpy.intp]:
    """The flat index of the first element of each row of an array of `shape`, shape ``(..., 1)``."""
    return numpy.arange(int(numpy.prod(shape[:-1]))).reshape(shape[:-1] + (1,)) * shape[-1]


@primitive
def _run_mean(values: Array, runs: NDArray[numpy.intp]) -> Array:
    """Each element of `values` (..., k) replaced by the mean of its run (the elements of its row with the
    same label in `runs`). A symmetric linear map, so its gradient is itself."""
    flat = (_row_offsets(numpy.shape(runs)) + runs).ravel()
    size = flat.size
    sums = numpy.bincount(flat, weights=numpy.ravel(values), minlength=size)
    counts = numpy.maximum(numpy.bincount(flat, minlength=size), 1)
    return numpy.reshape((sums / counts)[flat], numpy.shape(runs))


defvjp(_run_mean, lambda ans, values, runs: lambda g: _run_mean(g, runs))


@primitive
def _gather(values: Array, index: NDArray[numpy.intp]) -> Array:
    """``values[..., index]`` row by row (`numpy.take_along_axis`); its gradient adds by `numpy.bincount`."""
    return numpy.take_along_axis(values, index, axis=-1)


def _gather_vjp(ans: Array, values: Array, index: NDArray[numpy.intp]) -> Callable[[Array], FloatArray]:
    shape = numpy.shape(values)
    rows = _row_offsets(shape)

    def vjp(g: Array) -> FloatArray:
        total = numpy.bincount((rows + index).ravel(), weights=numpy.ravel(g), minlength=int(numpy.prod(shape)))
        return numpy.reshape(total, shape).astype(float)
    return vjp


defvjp(_gather, _gather_vjp)



def _corners_of_pair(pred: Boxes, target: Boxes
                     ) -> tuple[list[Array], list[Array], FloatArray, tuple[int, ...], list[Array]]:
    """`_pair`'s boxes, margin scale and broadcast shape, and both boxes' corners (x, y of each), broadcast."""
    moved, centred, scale = _pair(pred, target)
    px, py = corners(Coordinates(moved))
    qx, qy = corners(Coordinates(centred))
    shape = numpy.broadcast_shapes(numpy.shape(getval(px)), numpy.shape(getval(qx)))
    return moved, centred, scale, shape, _broadcast([px, py, qx, qy], shape)

def intersection_area(pred: Boxes, target: Boxes) -> Values:
    """Area of the intersection of oriented boxes, shape ``(...,)``, by clipping (unchecked input).

    Examples
    --------
    >>> square = [0.0, 0.0, 2.0, 2.0, 0.0]
    >>> round(float(intersection_area([0.0, 0.0, 2.0, 2.0, np.pi / 4], square)), 12)  # an octagon: 8 (sqrt 2 - 1)
    3.313708498985
    """
    moved, centred, scale, shape, (px, py, qx, qy) = _corners_of_pair(pred, target)
    # every edge of the prediction (rows) against every edge of the target (columns)
    ax, ay, bx, by = px[..., :, None], py[..., :, None], qx[..., None, :], qy[..., None, :]
    ex, ey = np.roll(px, -1, axis=-1)[..., :, None] - ax, np.roll(py, -1, axis=-1)[..., :, None] - ay
    fx, fy = np.roll(qx, -1, axis=-1)[..., None, :] - bx, np.roll(qy, -1, axis=-1)[..., None, :] - by
    determinant = ex * fy - ey * fx
    lengths = numpy.hypot(getval(ex), getval(ey)) * numpy.hypot(getval(fx), getval(fy))
    crossing = numpy.abs(getval(determinant)) > 1e-14 * lengths  # parallel edges, or a side of length 0, do not cross
    t = ((bx - ax) * fy - (by - ay) * fx) / np.where(crossing, determinant, 1.0)
    cross_x, cross_y = ax + t * ex, ay + t * ey
    flat = shape[:-1] + (16,)
    xs = np.concatenate([px, qx, np.reshape(cross_x, flat)], axis=-1)
    ys = np.concatenate([py, qy, np.reshape(cross_y, flat)], axis=-1)
    margin = TOLERANCE * scale
    x, y = numpy.asarray(getval(xs)), numpy.asarray(getval(ys))
    keep = _inside(x, y, _plain(moved), margin) & _inside(x, y, _plain(centred), margin)
    keep[..., 8:] &= numpy.reshape(numpy.broadcast_to(crossing, shape[:-1] + (4, 4)), flat)
    return _convex_polygon_area(xs, ys, keep, margin)


def convex_hull_area(pred: Boxes, target: Boxes) -> Values:
    """Area of the convex hull of both oriented boxes' corners, shape ``(...,)`` (unchecked input).

    The enclosing region of mmrotate's convex GIoU. Which corners lie on the hull
    is read by `_inside_hull`.

    Examples
    --------
    >>> float(convex_hull_area([3.0, 0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 2.0, 2.0, 0.0]))  # a 5 x 2 box
    10.0
    """
    moved, centred, scale, shape, (px, py, qx, qy) = _corners_of_pair(pred, target)
    pred_corners, target_corners = _plain([px, py]), _plain([qx, qy])
    margin = TOLERANCE * scale
    inside = [_inside_hull(pred_corners, _plain(moved), target_corners, margin),
              _inside_hull(target_corners, _plain(centred), pred_corners, margin)]
    keep = ~numpy.concatenate(inside, axis=-1)
    return _convex_polygon_area(np.concatenate([px, qx], axis=-1), np.concatenate([py, qy], axis=-1), keep, margin)


_CORNER_SIGNS = numpy.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
"""The signs of each corner along the box's own axes, in `corners`' order."""


def _inside_hull(own: list[FloatArray], box: list[FloatArray], other: list[FloatArray], margin: FloatArray) -> BoolArray:
    """Whether each corner of `box` (`own`: x and y, (..., 4)) lies inside the convex hull of both boxes' corners
    (`other`: the other box's), by more than `margin`.

    In coordinates (a, b) along the two outward normals of the box's sides that
    meet at the corner, the corner is the origin and its own box lies where
    a, b <= 0. The corner is on the hull when some direction n >= 0 of that
    quadrant has n . q <= 0 for every corner q of the other box. It has none when a
    q lies where a, b > 0, or when some q with a > 0 >= b and some r with
    b > 0 >= a see each other counter-clockwise (a_q b_r - b_q a_r > 0): the
    directions each leaves do not meet. The corner is moved out by `margin` along
    both normals first, so one on the hull's boundary up to rounding stays on it.
    """
    cx, cy, w, h, theta = (v[..., None, None] for v in box)
    cos, sin = numpy.cos(theta), numpy.sin(theta)
    (xs, ys), (other_xs, other_ys) = own, other
    dx, dy = other_xs[..., None, :] - xs[..., :, None], other_ys[..., None, :] - ys[..., :, None]
    margin = margin[..., None, None]
    a = _CORNER_SIGNS[:, :1] * (cos * dx + sin * dy) - margin
    b = _CORNER_SIGNS[:, 1:] * (cos * dy - sin * dx) - margin
    beyond = ((a > 0) & (b > 0)).any(axis=-1)
    first, second = (a > 0) & (b <= 0), (a <= 0) & (b > 0)
    turn = a[..., :, None] * b[..., None, :] - b[..., :, None] * a[..., None, :]
    facing = (first[..., :, None] & second[..., None, :] & (turn > 0)).any(axis=(-2, -1))
    return numpy.asarray(beyond | facing)


def enclosing_box_area(pred: Boxes, target: Boxes) -> Values:
    """Area of the smallest axis-aligned box around both oriented boxes, shape ``(...,)`` (unchecked input)."""
    moved, centred, _ = _pair(pred, target)
    px, py = corners(Coordinates(moved))
    qx, qy = corners(Coordinates(centred))
    width = np.maximum(np.max(px, axis=-1), np.max(qx, axis=-1)) - np.minimum(np.min(px, axis=-1), np.min(qx, axis=-1))
    height = np.maximum(np.max(py, axis=-1), np.max(qy, axis=-1)) - np.minimum(np.min(py, axis=-1), np.min(qy, axis=-1))
    return width * height


ENCLOSING_RULES: dict[str, Callable[[Boxes, Boxes], Values]] = {
    "convex_hull": convex_hull_area,
    "axis_aligned_box": enclosing_box_area,
}
"""The enclosing region C of `rotated_giou`, by name: the convex hull of both boxes' corners (the
default, mmrotate's ConvexGIoU), or the smallest axis-aligned box around them."""


def _areas(pred: Boxes, target: Boxes) -> tuple[Values, Values]:
    """The intersection and the union of oriented boxes, the prediction read as |w|, |h|."""
    _, _, w, h, _ = unstack_oriented(pred)
    _, _, tw, th, _ = unstack_oriented(target)
    intersection = intersection_area(pred, target)
    return intersection, np.abs(w) * np.abs(h) + tw * th - intersection


def _checked(pred: Boxes, target: Boxes) -> tuple[Boxes, Boxes]:
    if traced(pred) or traced(target):
        return pred, target
    return check_oriented_boxes(pred, "pred"), check_oriented_boxes(target, "target", positive_size=True)


def rotated_iou(pred: Boxes, target: Boxes) -> Values:
    """Intersection over union of oriented boxes ``(..., 5)``, shape ``(...,)``, in [0, 1].

    The prediction is read as (cx, cy, |w|, |h|, theta); the target must have w, h > 0.
    Checks plain-array input (`check_oriented_boxes`); under autograd it does not.

    Examples
    --------
    >>> float(rotated_iou([0.0, 0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 1.0, 2.0, np.pi / 2]))  # the same box
    1.0
    """
    pred, target = _checked(pred, target)
    intersection, union = _areas(pred, target)
    return intersection / union


def rotated_giou(pred: Boxes, target: Boxes, enclosing: str = "convex_hull") -> Values:
    """Generalised IoU of oriented boxes, IoU - (C - U) / C, shape ``(...,)``, in (-1, 1].

    U is the union and C the area of the enclosing region named by `enclosing`
    (`ENCLOSING_RULES`): by default the convex hull of both boxes' corners, as in
    mmrotate's ConvexGIoU; ``'axis_aligned_box'`` takes the smallest axis-aligned box
    around both, as GIoU does for axis-aligned boxes (Rezatofighi et al., CVPR 2019,
    arXiv 1902.09630). The prediction is read as (cx, cy, |w|, |h|, theta).

    Examples
    --------
    >>> float(rotated_giou([3.0, 0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 2.0, 2.0, 0.0]))  # apart: C = 10, U = 8
    -0.2
    """
    if enclosing not in ENCLOSING_RULES:
        raise ValueError(f"unknown enclosing rule {enclosing!r}; valid: {', '.join(ENCLOSING_RULES)}")
    pred, target = _checked(pred, target)
    intersection, union = _areas(pred, target)
    enclosure = ENCLOSING_RULES[enclosing](pred, target)
    return intersection / union - (enclosure - union) / enclosure
