"""Starting boxes around a target: non-overlapping at a gap, random apart, and overlapping.

All take and return ``xyxy`` boxes, or oriented boxes (cx, cy, w, h, theta) around an
oriented target of shape (5,) (`sandbox.geometry.oriented`); the random ones take a
seed and give the same boxes for the same arguments.

For oriented boxes the gap is measured as for ``xyxy`` ones, along the axis that
separates the boxes most, over the four axes of the two rectangles' sides (the
separating-axis test; for two axis-aligned boxes, x or y): a positive gap means the
rectangles are apart, rotated IoU 0. Each oriented start has its own angle.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sandbox._types import BoolArray, FloatArray
from sandbox.geometry.boxes import box_convert, check_boxes
from sandbox.geometry.oriented import check_oriented_boxes
from sandbox.losses.formulas import iou
from sandbox.losses.kinds import ORIENTED

COMPASS: dict[float, str] = {0: "E", 45: "NE", 90: "N", 135: "NW", 180: "W", 225: "SW", 270: "S", 315: "SE"}


def direction_name(angle: float) -> str:
    """Compass name of a direction in degrees, counter-clockwise from +x (y up): 45 -> 'NE'."""
    angle = float(angle) % 360
    return COMPASS.get(angle, f"{angle:g}deg") if angle.is_integer() else f"{angle:g}deg"


def non_overlapping_starts(target: ArrayLike, gap: float = 0.5, directions: int | Sequence[float] = 8,
                           size: tuple[float, float] | None = None, theta: float | None = None) -> FloatArray:
    """Boxes at `gap` from the target, one per direction, each with IoU exactly 0.

    Each start's centre lies on the ray from the target's centre at the given
    angle, as close as it can while a gap of `gap` separates the boxes along x or y
    (for oriented boxes, along the axis of a side that separates them most).

    Parameters
    ----------
    target : array_like, shape (4,) or (5,)
        ``xyxy``, or oriented (cx, cy, w, h, theta): then the starts are oriented too.
    gap : float
        Free space between the boxes, > 0: touching boxes (gap 0) already give
        IoU a non-zero subgradient.
    directions : int or sequence of float
        A count of directions evenly spread from 0 degrees (east, counter-clockwise,
        y up), or the angles themselves in degrees.
    size : (float, float), optional
        Width and height of the starts; the target's by default.
    theta : float, optional
        Oriented starts only: their angle in radians; by default the target's plus pi/6.

    Returns
    -------
    ndarray, shape (n, 4) or (n, 5)

    Examples
    --------
    >>> non_overlapping_starts([0, 0, 2, 1], gap=0.5, directions=[0])
    array([[2.5, 0. , 4.5, 1. ]])
    """
    if np.shape(target)[-1:] == (5,):
        return _oriented_non_overlapping(_one_oriented_target(target), gap, _angles(directions), size, theta)
    if theta is not None:
        raise ValueError("theta is the angle of oriented starts: give an oriented target (cx, cy, w, h, theta)")
    target = _one_target(target)
    if not (np.isfinite(gap) and gap > 0):
        raise ValueError(f"gap must be a positive number; got {gap!r}")
    angles = _angles(directions)
    cx, cy, tw, th = box_convert(target, "xyxy", "cxcywh")
    w, h = (tw, th) if size is None else _size(size)
    cos, sin = np.cos(np.radians(angles)), np.sin(np.radians(angles))
    with np.errstate(divide="ignore"):
        distance = np.minimum(((tw + w) / 2 + gap) / np.abs(cos), ((th + h) / 2 + gap) / np.abs(sin))
    centres = np.stack([cx + distance * cos, cy + distance * sin], axis=-1)
    starts = box_convert(np.concatenate([centres, np.broadcast_to([w, h], centres.shape)], axis=-1),
                         "cxcywh", "xyxy")
    if np.any(iou(starts, target) != 0):  # cannot happen for gap > 0; kept as the promise's check
        raise AssertionError(f"a start overlaps the target: {starts[iou(starts, target) != 0]}")
    return starts


def random_non_overlapping_starts(target: ArrayLike, count: int, seed: int = 0, radius: float = 4.0,
                                  scale: tuple[float, float] = (0.5, 2.0), min_gap: float = 0.05) -> FloatArray:
    """`count` random boxes apart from the target by at least `min_gap` along x or y.

    Centres are uniform over the disk of `radius` around the target's centre;
    width and height are the target's times factors log-uniform in `scale`; an
    oriented target (shape (5,)) gets oriented starts at angles uniform in [-pi/2, pi/2).
    """
    if not (np.isfinite(min_gap) and min_gap > 0):
        raise ValueError(f"min_gap must be a positive number; got {min_gap!r}")
    if np.shape(target)[-1:] == (5,):
        oriented = _one_oriented_target(target)
        return _sample(oriented, count, seed, radius, scale,
                                lambda boxes: oriented_gap(boxes, oriented) >= min_gap)
    target = _one_target(target)
    return _sample(target, count, seed, radius, scale, lambda boxes: _gap(boxes, target) >= min_gap)


def overlapping_starts(target: ArrayLike, count: int, seed: int = 0, iou_range: tuple[float, float] = (0.05, 0.7),
                       scale: tuple[float, float] = (0.5, 2.0)) -> FloatArray:
    """`count` random boxes whose IoU with the target lies in `iou_range`, for contrast.

    Around an oriented target (shape (5,)), oriented boxes at angles uniform in
    [-pi/2, pi/2) whose rotated IoU lies in the range.
    """
    low, high = iou_range
    if not 0 < low < high <= 1:
        raise ValueError(f"iou_range must satisfy 0 < low < high <= 1; got {iou_range!r}")
    if np.shape(target)[-1:] == (5,):
        oriented = _one_oriented_target(target)

        def within(boxes: FloatArray) -> BoolArray:
            values = np.asarray(ORIENTED.iou(boxes, oriented))
            return np.asarray((values >= low) & (values <= high), dtype=bool)
        return _sample(oriented, count, seed, float(np.hypot(*oriented[2:4])), scale, within)
    target = _one_target(target)
    radius = float(np.hypot(*box_convert(target, "xyxy", "cxcywh")[2:]))
    return _sample(target, count, seed, radius, scale,
                   lambda boxes: (iou(boxes, target) >= low) & (iou(boxes, target) <= high))


def random_box_pairs(count: int, seed: int = 0, spread: float = 1.5, scale: tuple[float, float] = (0.25, 4.0)
                     ) -> tuple[FloatArray, FloatArray]:
    """`count` random (predicted, target) pairs, overlapping and apart, for studying the measures.

    Targets are centred at the origin with width and height log-uniform in
    [0.5, 2]; a prediction's centre is uniform in the square of half-side
    ``spread`` times the target's size around it, and its width and height are the
    target's times factors log-uniform in `scale`. With the defaults half of
    the pairs overlap (50.3 % of 100,000).

    Returns
    -------
    pred, target : ndarray, shape (count, 4)
        ``xyxy`` boxes.

    Examples
    --------
    >>> pred, target = random_box_pairs(3, seed=1)
    >>> pred.shape, target.shape
    ((3, 4), (3, 4))
    """
    if not (isinstance(count, (int, np.integer)) and count >= 0):
        raise ValueError(f"count must be a whole number >= 0; got {count!r}")
    low, high = _size(scale)
    rng = np.random.default_rng(seed)
    size = np.exp(rng.uniform(np.log(0.5), np.log(2.0), size=(count, 2)))
    target = box_convert(np.concatenate([np.zeros((count, 2)), size], axis=-1), "cxcywh", "xyxy")
    centre = rng.uniform(-spread, spread, size=(count, 2)) * size
    factors = np.exp(rng.uniform(np.log(low), np.log(high), size=(count, 2)))
    pred = box_convert(np.concatenate([centre, size * factors], axis=-1), "cxcywh", "xyxy")
    return pred, target


def _sample(target: FloatArray, count: int, seed: int, radius: float, scale: tuple[float, float],
            accept: Callable[[FloatArray], BoolArray | np.bool_], batch: int = 256,
            max_batches: int = 1000) -> FloatArray:
    """Rejection-sample `count` boxes around `target` that `accept` keeps.

    ``xyxy`` boxes around an ``xyxy`` target; oriented boxes around an oriented target
    (shape (5,)), each at a uniform angle in [-pi/2, pi/2), drawn after its size.
    """
    if not (isinstance(count, (int, np.integer)) and count >= 0):
        raise ValueError(f"count must be a whole number >= 0; got {count!r}")
    low, high = _size(scale)
    rng = np.random.default_rng(seed)
    oriented = len(target) == 5
    cx, cy, tw, th = target[:4] if oriented else box_convert(target, "xyxy", "cxcywh")
    kept, tries = np.empty((0, len(target))), 0
    while len(kept) < count:
        if tries == max_batches:
            raise ValueError(f"found only {len(kept)} of {count} qualifying boxes in {batch * tries} "
                             f"tries; widen the radius or the scale range")
        r, phi = radius * np.sqrt(rng.uniform(size=batch)), rng.uniform(0, 2 * np.pi, size=batch)
        factors = np.exp(rng.uniform(np.log(low), np.log(high), size=(batch, 2)))
        boxes = np.stack([cx + r * np.cos(phi), cy + r * np.sin(phi), tw * factors[:, 0], th * factors[:, 1]],
                         axis=-1)
        if oriented:
            boxes = np.concatenate([boxes, rng.uniform(-np.pi / 2, np.pi / 2, size=(batch, 1))], axis=-1)
        else:
            boxes = box_convert(boxes, "cxcywh", "xyxy")
        kept, tries = np.concatenate([kept, boxes[accept(boxes)]]), tries + 1
    return kept[:count]


def _axes_and_extents(boxes: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The unit axes of oriented boxes' two sides, shape (..., 2, 2), and their half-sizes along them (..., 2)."""
    cos, sin = np.cos(boxes[..., 4]), np.sin(boxes[..., 4])
    axes = np.stack([np.stack([cos, sin], axis=-1), np.stack([-sin, cos], axis=-1)], axis=-2)
    return axes, np.stack([boxes[..., 2] / 2, boxes[..., 3] / 2], axis=-1)


def _half_extent(boxes: FloatArray, normal: FloatArray) -> FloatArray:
    """Half the length of oriented boxes' projection onto the unit vectors `normal` (..., 2)."""
    axes, halves = _axes_and_extents(boxes)
    return np.sum(halves * np.abs(np.einsum("...ij,...j->...i", axes, normal)), axis=-1)


def _candidate_axes(boxes: FloatArray, target: FloatArray) -> FloatArray:
    """The four axes of the separating-axis test for rectangles: both boxes' sides, shape (n, 4, 2)."""
    own, _ = _axes_and_extents(boxes)
    targets, _ = _axes_and_extents(np.broadcast_to(target, boxes.shape))
    return np.concatenate([own, targets], axis=-2)


def oriented_gap(boxes: ArrayLike, target: ArrayLike) -> FloatArray:
    """Free space between oriented boxes (n, 5) and an oriented target (5,), along the axis of a side that
    separates them most (the separating-axis test); positive exactly when they are apart.

    Examples
    --------
    >>> float(oriented_gap([[3.0, 0.0, 2.0, 1.0, 0.0]], [0.0, 0.0, 2.0, 1.0, np.pi / 2])[0])   # 3 - 1 - 0.5
    1.5
    """
    boxes, target = np.atleast_2d(np.asarray(boxes, dtype=float)), np.asarray(target, dtype=float)
    normals = _candidate_axes(boxes, target)  # (n, 4, 2)
    offset = (boxes[:, :2] - target[:2])[:, None, :]
    distance = np.abs(np.sum(offset * normals, axis=-1))
    reach = _half_extent(boxes[:, None, :], normals) + _half_extent(np.broadcast_to(target, (*normals.shape[:2], 5)),
                                                                    normals)
    return np.max(distance - reach, axis=-1)


def _oriented_non_overlapping(target: FloatArray, gap: float, angles: FloatArray, size: tuple[float, float] | None,
                              theta: float | None) -> FloatArray:
    """`non_overlapping_starts` around an oriented target: on each ray, the nearest centre at `gap`."""
    if not (np.isfinite(gap) and gap > 0):
        raise ValueError(f"gap must be a positive number; got {gap!r}")
    w, h = target[2:4] if size is None else _size(size)
    angle = target[4] + np.pi / 6 if theta is None else float(theta)
    if not np.isfinite(angle):
        raise ValueError(f"theta must be a finite angle in radians; got {theta!r}")
    direction = np.stack([np.cos(np.radians(angles)), np.sin(np.radians(angles))], axis=-1)
    starts = np.column_stack([np.broadcast_to(target[:2], direction.shape), np.full(len(angles), w),
                              np.full(len(angles), h), np.full(len(angles), angle)])
    normals = _candidate_axes(starts, target)
    along = np.abs(np.sum(direction[:, None, :] * normals, axis=-1))
    reach = _half_extent(starts[:, None, :], normals) + _half_extent(np.broadcast_to(target, (*normals.shape[:2], 5)),
                                                                     normals)
    # along each axis the projected gap grows linearly with the distance: the first axis to reach `gap` sets it
    with np.errstate(divide="ignore"):
        distance = np.min(np.where(along > 1e-12, (gap + reach) / np.where(along > 1e-12, along, 1.0), np.inf),
                          axis=-1)
    starts[:, :2] = target[:2] + distance[:, None] * direction
    if np.any(oriented_gap(starts, target) <= 0):  # cannot happen for gap > 0; kept as the promise's check
        raise AssertionError(f"a start overlaps the target: {starts[oriented_gap(starts, target) <= 0]}")
    return starts


def _one_oriented_target(target: ArrayLike) -> FloatArray:
    target = check_oriented_boxes(target, "target", positive_size=True)
    if target.shape != (5,):
        raise ValueError(f"starts are made around one target box of shape (5,); got {target.shape}")
    return target


def _gap(boxes: FloatArray, target: FloatArray) -> FloatArray:
    """Free space between boxes and target along the axis that separates them most."""
    x = np.maximum(boxes[:, 0] - target[2], target[0] - boxes[:, 2])
    y = np.maximum(boxes[:, 1] - target[3], target[1] - boxes[:, 3])
    return np.maximum(x, y)


def _one_target(target: ArrayLike) -> FloatArray:
    target = check_boxes(target, "target", positive_size=True)
    if target.shape != (4,):
        raise ValueError(f"starts are made around one target box of shape (4,); got {target.shape}")
    return target


def _angles(directions: int | Sequence[float]) -> FloatArray:
    if np.ndim(directions) == 0:
        if not (isinstance(directions, (int, np.integer)) and directions > 0):
            raise ValueError(f"directions must be a positive count or a list of angles; got {directions!r}")
        return np.arange(directions) * 360.0 / directions
    angles = np.asarray(directions, dtype=float)
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError(f"directions must be finite angles in degrees; got {directions!r}")
    return angles


def _size(pair: ArrayLike) -> FloatArray:
    pair = np.asarray(pair, dtype=float)
    if pair.shape != (2,) or not np.all(np.isfinite(pair)) or np.any(pair <= 0):
        raise ValueError(f"expected two positive numbers (width, height or low, high); got {pair.tolist()}")
    return pair
