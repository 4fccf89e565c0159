"""Oriented boxes: (cx, cy, w, h, theta), their corners, their Gaussians, their canonical forms.

An oriented box is an array of shape ``(..., 5)``: the centre (cx, cy), the width w
along the box's own first axis, the height h along its second, and the angle theta
in radians by which that first axis is turned from the x axis, counter-clockwise
when y points up (clockwise on an image, whose y axis points down), as in
mmrotate. The corners are the centre plus R(theta) (+-w/2, +-h/2) with
R(theta) = [[cos, -sin], [sin, cos]].

One box has many parameterisations: (cx, cy, w, h, theta + pi) and
(cx, cy, h, w, theta + pi/2) are the same rectangle. `canonical` picks one in
mmrotate's three conventions (`ANGLE_CONVENTIONS`). A loss on the raw five numbers
sees them as different boxes; a loss on the corners or the Gaussian does not.

`gaussian` turns each box into the 2-D normal distribution with mean the centre
and covariance R diag(s w^2, s h^2) R^T, for the scale s of a named convention
(`COVARIANCE_SCALES`): mmrotate's GWD, KLD and KFIoU use 1/4, so the box's
half-sides are one standard deviation; ultralytics' ProbIoU uses 1/12, the
covariance of the uniform distribution over the rectangle.

Like `sandbox.geometry.boxes`, every function takes stacked arrays of shape
``(..., 5)`` or `Coordinates` of five arrays, differentiably with autograd, and the
geometry does not check its input: `check_oriented_boxes` does, at the entry points.
"""
from __future__ import annotations

from typing import NamedTuple

import autograd.numpy as np
from autograd.tracer import getval
from numpy.typing import ArrayLike

from sandbox._types import Array, Boxes, FloatArray, Values
from sandbox.geometry.boxes import _raise_at_first, finite_values, restack, unstack

ANGLE_CONVENTIONS = {
    "oc": "theta in (0, pi/2], w and h in either order (OpenCV 4.5.1's minAreaRect, mmrotate's 'oc')",
    "le90": "w >= h, theta in [-pi/2, pi/2) (mmrotate's 'le90')",
    "le135": "w >= h, theta in [-pi/4, 3 pi/4) (mmrotate's 'le135')",
}
"""The canonical forms `canonical` produces, by mmrotate's name."""

COVARIANCE_SCALES = {"mmrotate": 1 / 4, "probiou": 1 / 12}
"""s in the covariance R diag(s w^2, s h^2) R^T of `gaussian`, by convention: mmrotate's
``xy_wh_r_2_xy_sigma`` (GWD, KLD, KFIoU) and ultralytics' ``_get_covariance_matrix`` (ProbIoU)."""


class Gaussian(NamedTuple):
    """A 2-D normal distribution per box: mean (x, y) and covariance [[a, c], [c, b]], each shape ``(...,)``."""

    x: Values
    y: Values
    a: Values
    b: Values
    c: Values


def unstack_oriented(boxes: Boxes) -> list[Array]:
    """The five arrays (cx, cy, w, h, theta) of oriented boxes, stacked ``(..., 5)`` or `Coordinates`."""
    return unstack(boxes, size=5)


def check_oriented_boxes(boxes: Boxes, name: str = "box", positive_size: bool = False) -> FloatArray:
    """Return oriented `boxes` as a float array after checking them; raise ValueError naming a bad box.

    Parameters
    ----------
    boxes : array_like, shape (..., 5)
        (cx, cy, w, h, theta), theta in radians.
    name : str
        What the boxes are, for the message: ``'target'``, ``'start'``.
    positive_size : bool
        Also require w > 0 and h > 0, as every target must.

    Examples
    --------
    >>> check_oriented_boxes([0, 0, 2, -1, 0.3], "target", positive_size=True)
    Traceback (most recent call last):
    ...
    ValueError: target box [0.0, 0.0, 2.0, -1.0, 0.3] has non-positive height -1.0; target boxes must have h > 0
    """
    values = finite_values(boxes, name, 5, "oriented boxes (cx, cy, w, h, theta)")
    if positive_size:
        for axis, index, symbol in [("width", 2, "w"), ("height", 3, "h")]:
            _raise_at_first(values[..., index] <= 0, values, name, f"non-positive {axis}",
                            f"{name} boxes must have {symbol} > 0", values[..., index])
    return values


def corners(boxes: Boxes) -> tuple[Array, Array]:
    """The four corners of oriented boxes: x and y, each shape ``(..., 4)``.

    In the order centre + R (-w/2, -h/2), (w/2, -h/2), (w/2, h/2), (-w/2, h/2):
    counter-clockwise (y up) for w, h > 0.

    Examples
    --------
    >>> xs, ys = corners([0.0, 0.0, 4.0, 2.0, 0.0])
    >>> xs.tolist(), ys.tolist()
    ([-2.0, 2.0, 2.0, -2.0], [-1.0, -1.0, 1.0, 1.0])
    """
    cx, cy, w, h, theta = unstack_oriented(boxes)
    cos, sin = np.cos(theta), np.sin(theta)
    u = np.stack([-w / 2, w / 2, w / 2, -w / 2], axis=-1)
    v = np.stack([-h / 2, -h / 2, h / 2, h / 2], axis=-1)
    cos, sin, cx, cy = cos[..., None], sin[..., None], cx[..., None], cy[..., None]
    return cx + cos * u - sin * v, cy + sin * u + cos * v


def to_polygon(boxes: Boxes) -> Array:
    """Oriented boxes as mmrotate's polygons (x0, y0, x1, y1, x2, y2, x3, y3), shape ``(..., 8)``."""
    xs, ys = corners(boxes)
    return np.reshape(np.stack([xs, ys], axis=-1), np.shape(xs)[:-1] + (8,))


def from_polygon(polygons: ArrayLike) -> FloatArray:
    """Oriented boxes ``(..., 5)`` of rectangles given as polygons ``(..., 8)`` in `corners`' order.

    The inverse of `to_polygon` up to the angle: theta is the direction of the
    first edge, in (-pi, pi]. Not differentiable (a converter for data).
    """
    points = np.reshape(np.asarray(polygons, dtype=float), np.shape(polygons)[:-1] + (4, 2))
    first, second = points[..., 1, :] - points[..., 0, :], points[..., 2, :] - points[..., 1, :]
    centre = points.mean(axis=-2)
    w, h = np.hypot(first[..., 0], first[..., 1]), np.hypot(second[..., 0], second[..., 1])
    theta = np.arctan2(first[..., 1], first[..., 0])
    return np.stack([centre[..., 0], centre[..., 1], w, h, theta], axis=-1)



def gaussian(boxes: Boxes, convention: str = "mmrotate") -> Gaussian:
    """Each oriented box as a 2-D normal: mean its centre, covariance R diag(s w^2, s h^2) R^T.

    s is ``COVARIANCE_SCALES[convention]``: 1/4 (``'mmrotate'``) or 1/12 (``'probiou'``).
    The same for every parameterisation of the same rectangle: swapping w and h
    with a quarter turn, or a half turn, leaves the covariance as it was.

    Examples
    --------
    >>> g = gaussian([1.0, 2.0, 4.0, 2.0, np.pi / 2])   # turned a quarter: the long side along y
    >>> [round(float(v), 12) for v in g]
    [1.0, 2.0, 1.0, 4.0, 0.0]
    """
    if convention not in COVARIANCE_SCALES:
        raise ValueError(f"unknown covariance convention {convention!r}; valid: {', '.join(COVARIANCE_SCALES)}")
    scale = COVARIANCE_SCALES[convention]
    cx, cy, w, h, theta = unstack_oriented(boxes)
    cos, sin = np.cos(theta), np.sin(theta)
    var_w, var_h = scale * w ** 2, scale * h ** 2
    return Gaussian(cx, cy, var_w * cos ** 2 + var_h * sin ** 2, var_w * sin ** 2 + var_h * cos ** 2,
                    (var_w - var_h) * cos * sin)


def from_gaussian(distribution: Gaussian, convention: str = "mmrotate") -> FloatArray:
    """The oriented boxes ``(..., 5)`` whose `gaussian` is `distribution`, in the ``'le90'`` form.

    By the eigen-decomposition of the covariance (mmrotate's ``gaussian2bbox`` does it
    by SVD). Not differentiable (a converter for data).
    """
    x, y, a, b, c = (np.asarray(getval(v), dtype=float) for v in distribution)
    scale = COVARIANCE_SCALES[convention]
    mean, half_gap = (a + b) / 2, np.hypot((a - b) / 2, c)
    w, h = np.sqrt((mean + half_gap) / scale), np.sqrt(np.maximum(mean - half_gap, 0.0) / scale)
    theta = 0.5 * np.arctan2(2 * c, a - b)  # the major axis, in (-pi/2, pi/2]
    return canonical(np.stack([x, y, w, h, theta], axis=-1), "le90")


def canonical(boxes: Boxes, convention: str = "le90") -> Array:
    """The same rectangles with the angle in one of mmrotate's ranges (`ANGLE_CONVENTIONS`).

    ``'le90'`` and ``'le135'`` put the longer side first (w >= h; a square keeps
    its order) and the angle in [-pi/2, pi/2) or [-pi/4, 3 pi/4) (mmrotate's
    ``norm_angle``); ``'oc'`` keeps the sides' roles and turns the angle by quarter
    turns into (0, pi/2], swapping w and h at each quarter turn (mmrotate's
    ``poly2obb_np_oc``). Differentiable where the result does not jump.

    Examples
    --------
    >>> canonical([0.0, 0.0, 1.0, 3.0, 0.0], "le90").tolist()   # h > w: a quarter turn, sides swapped
    [0.0, 0.0, 3.0, 1.0, -1.5707963267948966]
    """
    if convention not in ANGLE_CONVENTIONS:
        raise ValueError(f"unknown angle convention {convention!r}; valid: {', '.join(ANGLE_CONVENTIONS)}")
    cx, cy, w, h, theta = unstack_oriented(boxes)
    if convention == "oc":
        quarters = np.ceil(getval(theta) / (np.pi / 2)) - 1  # theta - quarters pi/2 in (0, pi/2]
        odd = np.mod(quarters, 2) == 1
        w, h = np.where(odd, h, w), np.where(odd, w, h)
        return restack(boxes, [cx, cy, w, h, theta - quarters * (np.pi / 2)])
    swap = h > w
    w, h, theta = np.where(swap, h, w), np.where(swap, w, h), np.where(swap, theta + np.pi / 2, theta)
    shift = np.pi / 2 if convention == "le90" else np.pi / 4
    turns = np.floor((getval(theta) + shift) / np.pi)  # the angle's own gradient survives the wrap
    return restack(boxes, [cx, cy, w, h, theta - turns * np.pi])
