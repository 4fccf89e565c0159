"""Boxes: formats, one converter, geometry, and the checks every entry point runs.

A box is an array of shape ``(..., 4)``: coordinates on the last axis, any leading
shape. The canonical format is ``'xyxy'`` (x1, y1, x2, y2); ``'xywh'`` (x1, y1, w, h)
and ``'cxcywh'`` (centre x, centre y, w, h) convert to and from it with
`box_convert`. The geometry functions are written with ``autograd.numpy`` so that
losses built from them can be differentiated; they take ``xyxy`` boxes whose
corners are ordered (x1 <= x2, y1 <= y2) and do not check their input.

For batched work the same boxes may be held as `Coordinates`, four separate
arrays of shape ``(...,)``: every function here, in `sandbox.geometry.pair`, the losses and
the parameterisations accepts them and returns boxes in the form it was given.
Contiguous coordinate arrays spare autograd the indexing of the last axis, which
costs more than the arithmetic on large batches.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar, overload

import autograd.numpy as np
from autograd.extend import SparseObject, defvjp, primitive, vspace
from autograd.tracer import getval, isbox
from numpy.typing import ArrayLike

from sandbox._types import Array, BoolArray, Boxes, FloatArray, Values

FORMATS = ("xyxy", "xywh", "cxcywh")

_ArrayLikeT = TypeVar("_ArrayLikeT", bound=ArrayLike)


class Coordinates(tuple[Values, ...]):
    """Boxes as coordinate arrays, each shape ``(...,)``: four (x1, y1, x2, y2, or the format's own), or
    five for oriented boxes (cx, cy, w, h, theta; `sandbox.geometry.oriented`)."""

    def __new__(cls, coordinates: Iterable[Values]) -> Coordinates:
        coordinates = tuple(coordinates)
        if len(coordinates) not in (4, 5):
            raise ValueError(f"Coordinates holds four coordinate arrays (five for oriented boxes); "
                             f"got {len(coordinates)}")
        return super().__new__(cls, coordinates)


@primitive
def _row(stacked: Array, i: int) -> Array:
    return stacked[i]


def _row_vjp(ans: Array, stacked: Array, i: int) -> Callable[[Array], Any]:
    space = vspace(stacked)

    def vjp(g: Array) -> Any:  # autograd's SparseObject
        def add_into(accumulated: FloatArray) -> FloatArray:
            accumulated[i] += g
            return accumulated
        return SparseObject(space, add_into)
    return vjp


defvjp(_row, _row_vjp)


def rows(stacked: Array) -> Coordinates:
    """`Coordinates` of the rows of an array of shape ``(4, ...)`` (or ``(5, ...)``), differentiably.

    For a gradient with respect to one array of parameters: autograd's own
    indexing would add each row's gradient back with ``np.add.at``, about ten
    times slower than the row-wise addition used here.
    """
    return Coordinates(_row(stacked, i) for i in range(len(stacked)))


def traced(boxes: Boxes) -> bool:
    """Whether autograd is tracing `boxes` (an array, or any of four `Coordinates`)."""
    return any(isbox(c) for c in boxes) if isinstance(boxes, Coordinates) else isbox(boxes)


def check_format(fmt: str) -> None:
    """Raise ValueError unless `fmt` is one of `FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown box format {fmt!r}; valid formats are {', '.join(FORMATS)}")


def check_boxes(boxes: Boxes, name: str = "box", positive_size: bool = False) -> FloatArray:
    """Return `boxes` as a float array after checking them; raise ValueError naming a bad box.

    Parameters
    ----------
    boxes : array_like, shape (..., 4)
        Boxes in ``xyxy`` format (for `positive_size`) or any format otherwise.
    name : str
        What the boxes are, for the message: ``'target'``, ``'start'``.
    positive_size : bool
        Also require x2 > x1 and y2 > y1, as every target must.

    Examples
    --------
    >>> check_boxes([0, 0, 0, 1], "target", positive_size=True)
    Traceback (most recent call last):
    ...
    ValueError: target box [0.0, 0.0, 0.0, 1.0] has non-positive width 0.0; target boxes must have x2 > x1
    """
    values = finite_values(boxes, name, 4, "four coordinates")
    if positive_size:
        for axis, (low, high) in [("width", (0, 2)), ("height", (1, 3))]:
            size = values[..., high] - values[..., low]
            rule = f"{name} boxes must have {'x2 > x1' if axis == 'width' else 'y2 > y1'}"
            _raise_at_first(size <= 0, values, name, f"non-positive {axis}", rule, size)
    return values


def finite_values(boxes: Boxes, name: str, size: int, what: str) -> FloatArray:
    """`boxes` as a float array of shape ``(..., size)`` of finite numbers; ValueError naming the problem.

    The checks every kind of box shares (`check_boxes`, and
    `sandbox.geometry.oriented.check_oriented_boxes` with five numbers); `what` says
    what the last axis holds, for the message.
    """
    if isinstance(boxes, Coordinates):
        boxes = np.stack([np.asarray(getval(c), dtype=float) for c in boxes], axis=-1)
    try:
        values = np.asarray(getval(boxes), dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers of shape (..., {size}): {error}") from None
    if values.ndim == 0 or values.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), {what} on the last axis; got shape {values.shape}")
    _raise_at_first(~np.isfinite(values).all(axis=-1), values, name,
                    "non-finite coordinates", "every coordinate must be a finite number")
    return values


def _raise_at_first(bad: BoolArray, values: FloatArray, name: str, problem: str, rule: str,
                    quantity: FloatArray | None = None) -> None:
    if not np.any(bad):
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    where = "" if not index else f" {index[0] if len(index) == 1 else index}"
    amount = "" if quantity is None else f" {float(quantity[index])}"
    box = [float(v) for v in values[index]]
    raise ValueError(f"{name} box{where} {box} has {problem}{amount}; {rule}")


@overload
def box_convert(boxes: Coordinates, in_fmt: str, out_fmt: str) -> Coordinates: ...
@overload
def box_convert(boxes: _ArrayLikeT, in_fmt: str, out_fmt: str) -> _ArrayLikeT | Array: ...
def box_convert(boxes: Boxes, in_fmt: str, out_fmt: str) -> Boxes | Array:
    """Convert boxes of shape ``(..., 4)`` from format `in_fmt` to `out_fmt`.

    Differentiable with autograd; checks the formats and the last axis, not the values.
    Boxes already in `out_fmt` come back as they were given (a list stays a list).

    Examples
    --------
    >>> box_convert(np.array([1.0, 2.0, 4.0, 6.0]), "xyxy", "cxcywh")
    array([2.5, 4. , 3. , 4. ])
    """
    check_format(in_fmt)
    check_format(out_fmt)
    if not isinstance(boxes, Coordinates) and np.shape(boxes)[-1:] != (4,):
        raise ValueError(f"boxes must have shape (..., 4); got shape {np.shape(boxes)}")
    if in_fmt == out_fmt:
        return boxes
    a, b, c, d = unstack(boxes)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        half_w, half_h = c / 2, d / 2
        a, b, c, d = a - half_w, b - half_h, a + half_w, b + half_h
    if out_fmt == "xywh":
        return restack(boxes, [a, b, c - a, d - b])
    if out_fmt == "cxcywh":
        return restack(boxes, [(a + c) / 2, (b + d) / 2, c - a, d - b])
    return restack(boxes, [a, b, c, d])


def unstack(boxes: Boxes, size: int = 4) -> list[Array]:
    """The `size` coordinate arrays of `boxes`: array_like ``(..., size)``, traced, or `Coordinates`.

    Four for ``xyxy`` boxes and the other formats; five for oriented boxes
    (`sandbox.geometry.oriented.unstack_oriented`).
    """
    if isinstance(boxes, Coordinates):
        return list(boxes)
    # a float array keeps its precision, so that float32 targets do not promote a float32 network's loss
    floating = isbox(boxes) or (isinstance(boxes, np.ndarray) and np.issubdtype(boxes.dtype, np.floating))
    values: Array = boxes if floating else np.asarray(boxes, dtype=float)
    return [values[..., i] for i in range(size)]


@overload
def restack(like: Coordinates, coordinates: Sequence[Array]) -> Coordinates: ...
@overload
def restack(like: ArrayLike, coordinates: Sequence[Array]) -> Array: ...
def restack(like: Boxes, coordinates: Sequence[Array]) -> Coordinates | Array:
    """Four coordinate arrays as boxes in the form of `like`: `Coordinates`, or stacked ``(..., 4)``."""
    if isinstance(like, Coordinates):
        return Coordinates(coordinates)
    return np.stack(coordinates, axis=-1)


@overload
def order_corners(boxes: Coordinates) -> Coordinates: ...
@overload
def order_corners(boxes: ArrayLike) -> Array: ...
def order_corners(boxes: Boxes) -> Coordinates | Array:
    """Sort each box's corners so that x1 <= x2 and y1 <= y2 (the GIoU paper's Algorithm 2).

    An optimiser may move a predicted box through an inverted state; every loss
    reads the box through this function. Where x1 == x2, autograd's ``minimum``
    and ``maximum`` share the gradient equally between the two corners.
    """
    x1, y1, x2, y2 = unstack(boxes)
    return restack(boxes, [np.minimum(x1, x2), np.minimum(y1, y2),
                           np.maximum(x1, x2), np.maximum(y1, y2)])


def box_area(boxes: Boxes) -> Values:
    """Area of ordered ``xyxy`` boxes, shape ``(...,)``."""
    x1, y1, x2, y2 = unstack(boxes)
    return (x2 - x1) * (y2 - y1)


def intersection_area(boxes1: Boxes, boxes2: Boxes) -> Values:
    """Area shared by two sets of ordered ``xyxy`` boxes (broadcast), shape ``(...,)``.

    Zero when the boxes are apart or only touch. The clamp ``maximum(., 0)`` has
    gradient zero for boxes strictly apart and one half where they exactly touch.
    """
    ax1, ay1, ax2, ay2 = unstack(boxes1)
    bx1, by1, bx2, by2 = unstack(boxes2)
    width = np.maximum(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0)
    height = np.maximum(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0)
    return width * height


def union_area(boxes1: Boxes, boxes2: Boxes) -> Values:
    """Area covered by either of two ordered ``xyxy`` boxes, shape ``(...,)``."""
    return box_area(boxes1) + box_area(boxes2) - intersection_area(boxes1, boxes2)


@overload
def enclosing_box(boxes1: Coordinates, boxes2: Boxes) -> Coordinates: ...
@overload
def enclosing_box(boxes1: ArrayLike, boxes2: Boxes) -> Array: ...
def enclosing_box(boxes1: Boxes, boxes2: Boxes) -> Coordinates | Array:
    """Smallest ``xyxy`` box containing both ordered ``xyxy`` boxes, shape ``(..., 4)``."""
    ax1, ay1, ax2, ay2 = unstack(boxes1)
    bx1, by1, bx2, by2 = unstack(boxes2)
    return restack(boxes1, [np.minimum(ax1, bx1), np.minimum(ay1, by1),
                            np.maximum(ax2, bx2), np.maximum(ay2, by2)])
