"""Batched regression: many (predicted, target) pairs moved at once by gradient steps.

Every case follows the update of the DIoU paper's simulation (Zheng et al., AAAI
2020, arXiv 1911.08287, Algorithm 1), generalised::

    theta_t = theta_{t-1} - lr * schedule(t) * (2 - IoU_{t-1}) * dL/dtheta_{t-1}

for any loss of `sandbox.LOSSES`, any schedule of `sandbox.SCHEDULES`, the
(2 - IoU) weight on or off, and any parameterisation theta. It is the
first-order engine, `sandbox.optim.engine.descend`, with the paper's settings: gradient
descent, no stop on a small gradient, and only the running sums E(t) and mean IoU
kept. The engine processes cases in chunks, so memory stays bounded whatever
their number, spreads the chunks over worker processes, and gives results that do
not depend on the number of workers or on the chunk size.

An oriented loss (`sandbox.losses.oriented.ORIENTED_LOSSES`) regresses oriented boxes
(cx, cy, w, h, theta), shape (n, 5), moving the five raw numbers (``'xywha'``), with
the rotated IoU in the (2 - IoU) weight and E(t) the distance between rectangles of
`sandbox.losses.kinds.oriented_error`.
"""
from __future__ import annotations

from typing import Callable

from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult

from sandbox.optim.engine import BLOCK, descend
from sandbox.optim.rules import Rate, Schedule
from sandbox.optim.settings import GradientFunction, Spec, resolve, whole

__all__ = ["BLOCK", "regress"]


def regress(preds: ArrayLike, targets: ArrayLike, loss: Spec = "giou", param: str | None = None, iterations: int = 200,
            lr: Rate = 0.1, schedule: str | Schedule = "step", iou_weighting: bool = True,
            reference_gradient: bool = False, gradient: str | GradientFunction = "autograd",
            chunk_size: int | None = None, workers: int = 1, scheduler: str | None = None,
            progress: Callable[[int, int], object] | None = None) -> OptimizeResult:
    """Regress every predicted box toward its target; return E(t), the mean IoU and the final boxes.

    Parameters
    ----------
    preds, targets : array_like, shape (n, 4) or (n, 5)
        ``xyxy`` boxes, or oriented ones for an oriented loss; a single target of shape (4,)
        (or (5,)) serves every case.
    loss : str or callable
        A loss of `sandbox.LOSSES` or `sandbox.losses.oriented.ORIENTED_LOSSES` by name, with
        parameters as `sandbox.get_loss` takes them.
    param : str, optional
        What moves: a name in `sandbox.PARAMETERISATIONS`; by default (x, y, w, h),
        ``'cxcywh'``, as the paper; for oriented boxes ``'xywha'``, the only one.
    iterations, lr, schedule
        T steps at learning rate ``lr * schedule(t, T)``; the default ``'step'`` is the
        paper's 0.1 / 0.01 / 0.001 with drops at 80 % and 90 % of T.
    iou_weighting : bool
        Multiply each step by (2 - IoU), as the paper does.
    reference_gradient : bool
        Double the width and height components of the gradient, as the authors' MATLAB
        code does (it takes dL/dw as dL/d(right edge) - dL/d(left edge)).
    gradient : str or callable
        ``'autograd'`` (the default, as everywhere: autograd through the loss's own
        operations) or ``'fused'``: the kernels of `sandbox.losses.fused`, for every
        registry loss (`sandbox.losses.fused.FUSED_LOSSES`), about three times faster
        (the oriented losses have none: they run through autograd);
        an experiment that needs the speed names it and records it. Their gradients
        agree to about 1e-16; over many steps a box that keeps crossing a kink can
        amplify that into differences visible in a few cases. Or a function
        ``gradient(theta, target) -> (g, iou)`` for parameters theta of shape (4, m)
        and target corners, used instead: only to run a published implementation's
        update for comparison (`sandbox.losses.diou_reference`); it must be picklable
        for `workers` > 1, and `loss` is then only a label.
    chunk_size : int, optional
        Cases per chunk, a multiple of `BLOCK`. By default at most `CHUNK`, and small
        enough that every worker gets at least four chunks, so that they finish together.
    workers : int
        Processes to spread the chunks over; 1 runs in this process.
    scheduler : str, optional
        The address of a Dask scheduler whose cluster runs the chunks instead; the same
        results bit for bit.
    progress : callable, optional
        ``progress(done, total)`` after each chunk, in cases.

    Returns
    -------
    OptimizeResult
        ``errors`` (T + 1,): E(t), the sum over cases of the L1 distance in
        (x, y, w, h) between box and target (for oriented boxes, that of
        `sandbox.losses.kinds.oriented_error`), t = 0 the start; ``mean_iou`` (T + 1,);
        ``final_boxes`` (n, 4) ``xyxy`` (or (n, 5), oriented); ``final_errors`` and ``final_ious`` (n,);
        ``cases``, ``iterations``, ``seconds``; ``settings``, the run's resolved
        `sandbox.optim.settings.Settings` as its records hold them.
    """
    iterations = whole(iterations, "iterations")  # named as the caller wrote it; resolve knows it as maxiter
    settings = resolve(loss, "gd", param, iterations, aligned_param="cxcywh", lr=lr, schedule=schedule,
                       iou_weighting=iou_weighting, gtol=None, reference_gradient=reference_gradient,
                       gradient=gradient)
    kind = settings.kind
    preds = kind.check(preds, "pred")
    targets = kind.check(targets, "target", positive_size=True)
    if preds.ndim != 2:
        raise ValueError(f"preds must have shape (n, {kind.size}); got shape {preds.shape}")
    run = descend(preds, targets, settings, record="sums", chunk_size=chunk_size, workers=workers,
                  scheduler=scheduler, progress=progress)
    return OptimizeResult(errors=run.errors, mean_iou=run.mean_iou, final_boxes=run.box,
                          final_errors=run.final_errors, final_ious=run.final_ious, cases=len(preds),
                          iterations=iterations, seconds=run.seconds, settings=settings.record())
