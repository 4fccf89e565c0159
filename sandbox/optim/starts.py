"""Starting boxes around a target: non-overlapping at a gap, random apart, and overlapping.

All take and return ``xyxy`` boxes; the random ones take a seed and give the same
boxes for the same arguments.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sandbox._types import BoolArray, FloatArray
from sandbox.geometry.boxes import box_convert, check_boxes
from sandbox.losses.formulas import iou

COMPASS: dict[float, str] = {0: "E", 45: "NE", 90: "N", 135: "NW", 180: "W", 225: "SW", 270: "S", 315: "SE"}


def direction_name(angle: float) -> str:
    """Compass name of a direction in degrees, counter-clockwise from +x (y up): 45 -> 'NE'."""
    angle = float(angle) % 360
    return COMPASS.get(angle, f"{angle:g}deg") if angle.is_integer() else f"{angle:g}deg"


def non_overlapping_starts(target: ArrayLike, gap: float = 0.5, directions: int | Sequence[float] = 8,
                           size: tuple[float, float] | None = None) -> FloatArray:
    """Boxes at `gap` from the target, one per direction, each with IoU exactly 0.

    Each start's centre lies on the ray from the target's centre at the given
    angle, as close as it can while a gap of `gap` separates the boxes along x or y.

    Parameters
    ----------
    target : array_like, shape (4,)
    gap : float
        Free space between the boxes, > 0: touching boxes (gap 0) already give
        IoU a non-zero subgradient.
    directions : int or sequence of float
        A count of directions evenly spread from 0 degrees (east, counter-clockwise,
        y up), or the angles themselves in degrees.
    size : (float, float), optional
        Width and height of the starts; the target's by default.

    Returns
    -------
    ndarray, shape (n, 4)

    Examples
    --------
    >>> non_overlapping_starts([0, 0, 2, 1], gap=0.5, directions=[0])
    array([[2.5, 0. , 4.5, 1. ]])
    """
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
    width and height are the target's times factors log-uniform in `scale`.
    """
    target = _one_target(target)
    if not (np.isfinite(min_gap) and min_gap > 0):
        raise ValueError(f"min_gap must be a positive number; got {min_gap!r}")
    return _sample(target, count, seed, radius, scale, lambda boxes: _gap(boxes, target) >= min_gap)


def overlapping_starts(target: ArrayLike, count: int, seed: int = 0, iou_range: tuple[float, float] = (0.05, 0.7),
                       scale: tuple[float, float] = (0.5, 2.0)) -> FloatArray:
    """`count` random boxes whose IoU with the target lies in `iou_range`, for contrast."""
    target = _one_target(target)
    low, high = iou_range
    if not 0 < low < high <= 1:
        raise ValueError(f"iou_range must satisfy 0 < low < high <= 1; got {iou_range!r}")
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
    """Rejection-sample `count` boxes around `target` that `accept` keeps."""
    if not (isinstance(count, (int, np.integer)) and count >= 0):
        raise ValueError(f"count must be a whole number >= 0; got {count!r}")
    low, high = _size(scale)
    rng = np.random.default_rng(seed)
    cx, cy, tw, th = box_convert(target, "xyxy", "cxcywh")
    kept, tries = np.empty((0, 4)), 0
    while len(kept) < count:
        if tries == max_batches:
            raise ValueError(f"found only {len(kept)} of {count} qualifying boxes in {batch * tries} "
                             f"tries; widen the radius or the scale range")
        r, phi = radius * np.sqrt(rng.uniform(size=batch)), rng.uniform(0, 2 * np.pi, size=batch)
        factors = np.exp(rng.uniform(np.log(low), np.log(high), size=(batch, 2)))
        boxes = box_convert(np.stack([cx + r * np.cos(phi), cy + r * np.sin(phi),
                                      tw * factors[:, 0], th * factors[:, 1]], axis=-1),
                            "cxcywh", "xyxy")
        kept, tries = np.concatenate([kept, boxes[accept(boxes)]]), tries + 1
    return kept[:count]


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
