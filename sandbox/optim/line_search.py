"""The loss along an optimiser's search line: why a Wolfe line search stops at a kink.

BFGS and CG step from a box ``x`` along a direction ``d`` to ``x + a d``, and accept a
step ``a`` only if it meets the strong Wolfe conditions (Nocedal and Wright,
*Numerical Optimization*, 2nd ed., section 3.1): the loss falls enough, and the slope
``d . grad f(x + a d)`` has flattened to at most ``c2`` times its size at ``a = 0``
(scipy: ``c2 = 0.9`` for BFGS). On GIoU the slope along a line steepens until an edge
of the box crosses an edge of the target, then jumps: no step flattens it.

    >>> import numpy as np
    >>> values, slopes = loss_along_line("l2", [0, 0, 1, 1], [1, 0, 2, 1], [-1, 0, -1, 0], [0, 1])
    >>> slopes.tolist()  # L2 is smooth: its slope along a line flattens to 0 at the minimum
    [-4.0, 0.0]
"""
from __future__ import annotations

import numpy as np
from autograd import grad
from numpy.typing import ArrayLike

from sandbox._types import FloatArray
from sandbox.geometry.boxes import check_boxes
from sandbox.losses.spec import get_loss
from sandbox.optim.settings import Spec


def loss_along_line(loss: Spec, target: ArrayLike, start: ArrayLike, direction: ArrayLike, steps: ArrayLike
                    ) -> tuple[FloatArray, FloatArray]:
    """The loss and its slope at ``start + a * direction`` for each step ``a``.

    Parameters
    ----------
    loss : str or callable
        As `sandbox.get_loss` takes it, e.g. ``"giou"``; applied to ``(box, target)``.
    target, start, direction : array_like, shape (4,)
        ``xyxy``; `direction` is the search direction in box coordinates (the ``xyxy``
        parameterisation, where ``fit``'s point is the box).
    steps : array_like, shape (n,)

    Returns
    -------
    values, slopes : ndarray, shape (n,)
        The loss and its directional derivative ``direction . grad loss`` (from autograd)
        at each step.
    """
    function = get_loss(loss)
    target = check_boxes(target, "target", positive_size=True)
    start, direction = np.asarray(start, dtype=float), np.asarray(direction, dtype=float)
    gradient = grad(lambda box: function(box, target))
    boxes = [start + a * direction for a in np.atleast_1d(np.asarray(steps, dtype=float))]
    values = np.array([float(function(box, target)) for box in boxes])
    slopes = np.array([gradient(box) @ direction for box in boxes])
    return values, slopes


def bfgs_second_direction(loss: Spec, target: ArrayLike, first: ArrayLike, second: ArrayLike) -> FloatArray:
    """BFGS's search direction after its first step, from box `first` to box `second`.

    scipy's BFGS starts from the identity as inverse Hessian ``H0``; after the step
    ``s = second - first`` with gradient change ``y`` it updates to
    ``H1 = (I - rho s y^T) H0 (I - rho y s^T) + rho s s^T``, ``rho = 1 / (y . s)``
    (Nocedal and Wright, eq. 6.17), and searches along ``-H1 grad f(second)``.

    Returns
    -------
    ndarray, shape (4,)
    """
    function = get_loss(loss)
    target = check_boxes(target, "target", positive_size=True)
    gradient = grad(lambda box: function(box, target))
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    s, y = second - first, gradient(second) - gradient(first)
    rho, eye = 1.0 / (y @ s), np.eye(4)
    h1 = (eye - rho * np.outer(s, y)) @ (eye - rho * np.outer(y, s)) + rho * np.outer(s, s)
    return -h1 @ gradient(second)


def edge_crossings(start: ArrayLike, direction: ArrayLike, target: ArrayLike) -> FloatArray:
    """The steps ``a > 0`` at which an edge of ``start + a * direction`` meets an edge of `target`.

    GIoU's intersection and enclosing box change formula there, so these are the
    kinks of the loss along the line: for each of the box's edges x1, x2 (y1, y2),
    where it passes the target's x1 or x2 (y1 or y2).

    Returns
    -------
    ndarray, shape (k,)
        Sorted.
    """
    start, direction = np.asarray(start, dtype=float), np.asarray(direction, dtype=float)
    target = check_boxes(target, "target", positive_size=True)
    crossings = []
    for i in range(4):
        if direction[i] != 0:
            same_axis = target[[0, 2]] if i in (0, 2) else target[[1, 3]]
            crossings += [(edge - start[i]) / direction[i] for edge in same_axis]
    return np.array(sorted(a for a in crossings if a > 0))
