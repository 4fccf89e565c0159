"""Oriented losses on screen: each loss as the predicted box turns, and over the plane of its centre.

The figures of `experiments/oriented_boxes.py` and of the notebook
``09_oriented_boxes.ipynb`` are made of these pieces. Each takes the loss as a
function ``loss(pred, target)`` on oriented boxes (cx, cy, w, h, theta), shape
``(..., 5)``, elementwise (a function of `sandbox.losses.oriented.ORIENTED_LOSSES`,
or ``sandbox.get_loss(spec)`` of one), and the gradients are autograd's, the ones an
optimiser follows.

    >>> from sandbox.losses.oriented import ORIENTED_LOSSES
    >>> target = np.array([0.0, 0.0, 2.0, 1.0, 1.4])
    >>> values = loss_along_theta(ORIENTED_LOSSES["rotated_l1"], target, [1.4, 1.4 - np.pi])
    >>> values.round(6).tolist()   # the same rectangle, turned half a turn: raw L1 calls it far
    [0.0, 3.141593]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import autograd.numpy as anp
import numpy as np
from autograd import grad
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from numpy.typing import ArrayLike

from sandbox._types import FloatArray
from sandbox.geometry.oriented import check_oriented_boxes
from sandbox.views.plotting import plot_box, plot_target

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D
    from matplotlib.typing import ColorType

_LOSS_COLOURS = ListedColormap(colormaps["Greys"](np.linspace(0.0, 0.5, 256)))  # light: the arrows stand out
OrientedLoss = Callable[..., Any]
"""``loss(pred, target)`` on oriented boxes ``(..., 5)``, one value per pair."""


def turned(box: ArrayLike, thetas: ArrayLike) -> FloatArray:
    """`box` (5,) at each angle of `thetas` (n,), everything else equal: shape (n, 5)."""
    box = check_oriented_boxes(box, "box")
    thetas = np.asarray(thetas, dtype=float)
    return np.concatenate([np.broadcast_to(box[:4], thetas.shape + (4,)), thetas[..., None]], axis=-1)


def loss_along_theta(loss: OrientedLoss, target: ArrayLike, thetas: ArrayLike) -> FloatArray:
    """The loss of the target turned to each angle of `thetas` (n,) against the target itself: shape (n,).

    Zero where the turned box is the target's rectangle: at the target's theta, and,
    for a loss that sees rectangles rather than their five numbers, at theta + pi.
    """
    target = check_oriented_boxes(target, "target", positive_size=True)
    return np.asarray(loss(turned(target, thetas), target), dtype=float)


def centred(shape: ArrayLike, centres: Any) -> Any:
    """Oriented boxes of one `shape` (w, h, theta) at `centres` (..., 2); differentiable in the centres."""
    w, h, theta = (float(v) for v in np.asarray(shape, dtype=float))
    cx, cy = centres[..., 0], centres[..., 1]
    return anp.stack([cx, cy, w + 0 * cx, h + 0 * cx, theta + 0 * cx], axis=-1)


def loss_over_centres(loss: OrientedLoss, target: ArrayLike, xs: ArrayLike, ys: ArrayLike,
                      shape: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
    """The loss, and its gradient with respect to the centre, as the predicted box moves over a grid.

    Parameters
    ----------
    loss : callable
        ``loss(pred, target)`` on oriented boxes, elementwise.
    target : array_like, shape (5,)
    xs, ys : array_like, shapes (n,) and (m,)
        The predicted centres: (xs[j], ys[i]) at ``[i, j]``.
    shape : array_like, shape (3,), optional
        The predicted box's (w, h, theta) at every centre; by default the target's.

    Returns
    -------
    values : ndarray, shape (m, n)
    gradients : ndarray, shape (m, n, 2)
        d loss / d (cx, cy); one reverse pass for the whole grid, since the loss is elementwise.
    """
    target = check_oriented_boxes(target, "target", positive_size=True)
    shape = target[2:] if shape is None else np.asarray(shape, dtype=float)
    centres = np.stack(np.meshgrid(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)), axis=-1)
    values = loss(centred(shape, centres), target)
    gradients = grad(lambda c: anp.sum(loss(centred(shape, c), target)))(centres)
    return np.asarray(values, dtype=float), np.asarray(gradients, dtype=float)


def centre_gradient(loss: OrientedLoss, pred: ArrayLike, target: ArrayLike) -> FloatArray:
    """d loss / d (cx, cy) of each predicted box (..., 5) against the target: shape (..., 2)."""
    pred = check_oriented_boxes(pred, "pred")
    target = check_oriented_boxes(target, "target", positive_size=True)
    gradient = grad(lambda boxes: anp.sum(loss(boxes, target)))(pred)
    return np.asarray(gradient, dtype=float)[..., :2]


def plot_loss_along_theta(ax: Axes, thetas: ArrayLike, curves: Mapping[str, ArrayLike], target_theta: float,
                          colors: Sequence[ColorType] | None = None, normalise: bool = True) -> list[Line2D]:
    """Draw each loss against the predicted angle, with the target's angle and its half turns marked.

    Parameters
    ----------
    thetas : array_like, shape (n,)
    curves : dict of str to array_like of shape (n,)
        Each loss's `loss_along_theta`, by label.
    target_theta : float
        Marked by a solid line; target_theta +- pi, the same rectangle, by dashed ones.
    normalise : bool
        Scale each curve to [0, 1] by its smallest and largest finite values, so that
        losses of different ranges share the axes (the label then says so).

    Returns
    -------
    list of matplotlib.lines.Line2D
        One line per loss.
    """
    thetas = np.asarray(thetas, dtype=float)
    lines: list[Line2D] = []
    for i, (label, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=float)
        if normalise:
            finite = values[np.isfinite(values)]
            low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            values = (values - low) / (high - low) if high > low else values - low
        line, = ax.plot(thetas, values, label=label, linewidth=1.6,
                        color=f"C{i % 10}" if colors is None else colors[i])
        lines.append(line)
    ax.axvline(target_theta, color="black", linewidth=1.0)
    for same in (target_theta - np.pi, target_theta + np.pi):
        if thetas.min() <= same <= thetas.max():
            ax.axvline(same, color="black", linewidth=1.0, linestyle="--")
    ax.set_xlim(thetas.min(), thetas.max())
    ax.set_xticks(np.pi * np.array([-1, -0.5, 0, 0.5, 1]), ["−π", "−π/2", "0", "π/2", "π"])
    ax.set_xlabel("predicted θ (everything else the target's)")
    ax.set_ylabel("loss, scaled to [0, 1] per loss" if normalise else "loss")
    return lines


def plot_loss_over_centres(ax: Axes, xs: ArrayLike, ys: ArrayLike, values: ArrayLike, gradients: ArrayLike,
                           target: ArrayLike, shape: ArrayLike | None = None, arrows: int = 15) -> list[Artist]:
    """Draw one loss over the plane of predicted centres: filled contours, the target, the downhill direction.

    Arrows of unit length point along the negative gradient with respect to the
    centre on a coarser grid of about `arrows` a side; a black dot marks a centre
    where that gradient is exactly zero (no pull at all). One predicted box of
    `shape` (w, h, theta) is outlined in the lower left corner, to scale.

    Returns
    -------
    list of matplotlib artists
        The filled contours' set, the target, the sample box, the arrows and the dots.
    """
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    values, gradients = np.asarray(values, dtype=float), np.asarray(gradients, dtype=float)
    target = check_oriented_boxes(target, "target", positive_size=True)
    shape = target[2:] if shape is None else np.asarray(shape, dtype=float)
    finite = np.isfinite(values)
    low, high = (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 1.0)
    levels = np.linspace(low, high, 15) if high > low else np.array([low - 0.5, low + 0.5])
    filled = ax.contourf(xs, ys, np.where(finite, values, np.nan), levels=levels, cmap=_LOSS_COLOURS)
    ax.contour(xs, ys, np.where(finite, values, np.nan), levels=levels, colors="white", linewidths=0.5)
    artists: list[Artist] = [filled, plot_target(ax, target, fill=False, zorder=3)]
    sample = [xs[0] + 0.15 * (xs[-1] - xs[0]), ys[0] + 0.15 * (ys[-1] - ys[0]), *shape]
    artists.append(plot_box(ax, sample, edgecolor="C0", linewidth=1.2, zorder=3))
    step = max(1, len(xs) // arrows)
    sub = np.s_[::step, ::step]
    gx, gy = gradients[sub][..., 0], gradients[sub][..., 1]
    magnitude = np.hypot(gx, gy)
    X, Y = np.meshgrid(xs[::step], ys[::step])
    moving, zero = np.isfinite(magnitude) & (magnitude > 0), magnitude == 0
    unit = np.where(moving, magnitude, 1.0)
    spacing = step * (xs[1] - xs[0]) if len(xs) > 1 else 1.0
    artists.append(ax.quiver(X[moving], Y[moving], -gx[moving] / unit[moving], -gy[moving] / unit[moving],
                             color="C3", pivot="mid", angles="xy", scale_units="xy", scale=1 / (0.7 * spacing),
                             width=0.006, zorder=4))
    artists += ax.plot(X[zero], Y[zero], ".", color="black", markersize=3, zorder=5)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    return artists
