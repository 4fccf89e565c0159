"""How well a box regressor did on a split: IoU, accuracy at each IoU threshold, by object size.

Every image holds one object and the model predicts one box for it, so there is
no ranking and no matching: COCO's average precision reduces to a plain share.
`evaluate` reports, over the images,

- ``mean_iou``: the mean IoU of the predicted with the true box;
- ``accuracy_50``, ``accuracy_55``, ..., ``accuracy_95``: the share of images whose
  predicted box reaches IoU >= t, for t in `THRESHOLDS` (0.50, 0.55, ..., 0.95, COCO's
  ``iouThrs``); an IoU exactly at t counts, as in COCO's matching;
- ``accuracy_mean``: the mean of those ten shares. It is the single-object analogue of
  COCO's AP@[.5:.95], *not* an average precision: with one object and one box per
  image there is no precision-recall curve to integrate;
- ``l1_pixels``: the mean over images of the mean absolute error of the four ``xyxy``
  coordinates, in pixels, the measure an L1 loss optimises;
- ``count``: the number of images;

and the same figures for each size class of `SIZE_CLASSES`, prefixed by its name
(``small_mean_iou``, ``small_accuracy_50``, ..., ``small_count``). `METRIC_COLUMNS`
lists every key in order, for CSV headers.

    >>> m = evaluate([[0, 0, 10, 10]], [[0, 0, 10, 20]], image_size=64)   # IoU 0.5
    >>> m["mean_iou"], m["accuracy_50"], m["accuracy_55"], m["accuracy_mean"]
    (0.5, 1.0, 0.0, 0.1)
    >>> m["l1_pixels"]   # |20 - 10| / 4
    2.5
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sandbox._types import BoolArray, FloatArray
from sandbox.geometry.boxes import box_area, check_boxes, order_corners
from sandbox.losses.formulas import iou

# 0.50, 0.55, ..., 0.95, each exactly the double nearest its decimal (not an arange's drift),
# so that an IoU of exactly 0.55 reaches the 0.55 threshold.
THRESHOLDS = np.round(np.arange(50, 100, 5) / 100, 2)
SIZE_CLASSES = ("small", "medium", "large")

# COCO's area bounds in pixels (pycocotools cocoeval.py, Params.setDetParams:
# areaRng = [[0, 1e5**2], [0, 32**2], [32**2, 96**2], [96**2, 1e5**2]]) and the size of a
# typical COCO image, 640 x 480, to which they belong.
COCO_AREA_BOUNDS = (32.0 ** 2, 96.0 ** 2)
COCO_IMAGE_AREA = 640.0 * 480.0

_SUMMARY = ["count", "mean_iou", *[f"accuracy_{round(t * 100)}" for t in THRESHOLDS],
            "accuracy_mean", "l1_pixels"]
ACCURACY_KEYS = [f"accuracy_{round(t * 100)}" for t in THRESHOLDS]
METRIC_COLUMNS = _SUMMARY + [f"{size}_{key}" for size in SIZE_CLASSES for key in _SUMMARY]


def image_area(image_size: int | tuple[int, int]) -> float:
    """The area in pixels of an image given as one side (square) or two sides (any order)."""
    sides = np.asarray(image_size, dtype=float).ravel()
    if sides.size not in (1, 2) or not np.all(np.isfinite(sides)) or np.any(sides <= 0):
        raise ValueError(f"image_size must be one positive side (a square image) or two "
                         f"(height and width); got {image_size!r}")
    return float(np.prod(sides)) if sides.size == 2 else float(sides[0] ** 2)


def size_bounds(image_size: int | tuple[int, int]) -> tuple[float, float]:
    """COCO's small/medium and medium/large area bounds scaled to the image, in pixels squared.

    COCO calls an object small below 32^2 pixels, large from 96^2 up, in images
    of typically 640 x 480. An image of another size keeps the same shares of the
    image: each bound is multiplied by ``image_area / (640 * 480)``. For a 64 x 64
    image the bounds are 13.65 and 122.9 pixels squared, squares of about 3.7 and
    11.1 pixels a side; for 32 x 32, 3.41 and 30.7, sides of 1.85 and 5.5 pixels, so
    objects of at least 2 x 2 pixels there are never small.

    Returns
    -------
    small_below, large_from : float
    """
    scale = image_area(image_size) / COCO_IMAGE_AREA
    return COCO_AREA_BOUNDS[0] * scale, COCO_AREA_BOUNDS[1] * scale


def size_class(boxes: ArrayLike, image_size: int | tuple[int, int]) -> NDArray[np.str_]:
    """The COCO size class of each box, by its area against `size_bounds`.

    small: area < 32^2, medium: 32^2 <= area < 96^2, large: area >= 96^2, each bound
    scaled to the image. The classes are half-open so that they partition the boxes:
    pycocotools ignores a ground truth when ``area < lo or area > hi`` (cocoeval.py,
    ``evaluateImg``), so an area exactly on a bound counts in both neighbouring classes
    there. As in COCO, an image's class is its true object's; COCO measures a
    segmentation mask's area, here it is the box's.

    Parameters
    ----------
    boxes : array_like, shape (..., 4)
        ``xyxy``, in pixels; inverted corners are ordered first.
    image_size : int or (int, int)
        One side of a square image, or its two sides.

    Returns
    -------
    ndarray of str, shape (...,)
        One of `SIZE_CLASSES` per box.

    Examples
    --------
    >>> size_class([[0, 0, 32, 32], [0, 0, 31, 32], [0, 0, 96, 96]], (480, 640)).tolist()
    ['medium', 'small', 'large']
    """
    boxes = check_boxes(boxes, "boxes")
    area = box_area(order_corners(boxes))
    small_below, large_from = size_bounds(image_size)
    index = (area >= small_below).astype(int) + (area >= large_from)
    return np.asarray(SIZE_CLASSES)[index]


def accuracy_curve(metrics: Mapping[str, float | str], size: str | None = None, suffix: str = "") -> FloatArray:
    """The ten accuracies of `metrics` (an `evaluate` result or a CSV row) in `THRESHOLDS` order.

    `size` picks a size class's (``"small"``, ...); by default those over all images.
    `suffix` reads the columns so named instead, e.g. ``"_std"`` for ``accuracy_50_std``, ...
    Returns an ndarray of float, shape (10,).

    >>> row = {"accuracy_50": "0.9", "accuracy_50_std": "0.02"}   # as csv.DictReader gives it
    >>> accuracy_curve(row, suffix="_std")
    Traceback (most recent call last):
    ...
    KeyError: "metrics has no column 'accuracy_55_std'"
    """
    prefix = "" if size is None else f"{size}_"
    keys = [prefix + key + suffix for key in ACCURACY_KEYS]
    missing = [key for key in keys if key not in metrics]
    if missing:
        raise KeyError(f"metrics has no column {missing[0]!r}")
    return np.array([float(metrics[key]) for key in keys])


def evaluate(pred: ArrayLike, true: ArrayLike, image_size: int | tuple[int, int]) -> dict[str, int | float]:
    """Score one predicted box per image against the image's true box (see the module's docstring).

    Parameters
    ----------
    pred : array_like, shape (n, 4)
        Predicted ``xyxy`` boxes, in pixels. A box is read with its corners ordered,
        as `sandbox.iou` reads it (the GIoU paper's Algorithm 2): an inverted box
        (x2 < x1 or y2 < y1) counts as the box it spans, for the IoU and the L1 error
        alike. A box of zero width or height has IoU 0. A box with a non-finite
        coordinate (a diverged model) is a miss: IoU 0, and an infinite L1 error.
    true : array_like, shape (n, 4)
        True ``xyxy`` boxes, each of positive width and height; they decide each
        image's size class.
    image_size : int or (int, int)
        One side of a square image, or its two sides, in pixels; it scales the size
        classes' bounds (`size_bounds`).

    Returns
    -------
    dict
        Keyed by `METRIC_COLUMNS`, in that order: the counts as int, every other
        figure as float. A size class without images has count 0 and NaN for the rest.
    """
    pred = np.asarray(pred, dtype=float)
    true = check_boxes(true, "true", positive_size=True)
    if pred.ndim != 2 or pred.shape[1] != 4 or pred.shape != true.shape or len(pred) == 0:
        raise ValueError(f"pred and true must be matching arrays of shape (n, 4) with n >= 1; "
                         f"got {pred.shape} and {true.shape}")
    finite = np.all(np.isfinite(pred), axis=1)
    placed = np.where(finite[:, None], pred, true)  # any finite stand-in: scored below as a miss
    ious = np.where(finite, iou(placed, true), 0.0)
    errors = np.where(finite, np.mean(np.abs(order_corners(placed) - true), axis=1), np.inf)
    hits = ious[:, None] >= THRESHOLDS  # (n, 10)
    classes = size_class(true, image_size)

    def summary(chosen: BoolArray) -> list[int | float]:
        count = int(np.sum(chosen))
        if count == 0:
            return [0] + [np.nan] * (len(_SUMMARY) - 1)
        accuracies = np.mean(hits[chosen], axis=0)
        return [count, float(np.mean(ious[chosen])), *map(float, accuracies),
                float(np.mean(accuracies)), float(np.mean(errors[chosen]))]

    values = summary(np.ones(len(pred), dtype=bool))
    for size in SIZE_CLASSES:
        values += summary(classes == size)
    return dict(zip(METRIC_COLUMNS, values))
