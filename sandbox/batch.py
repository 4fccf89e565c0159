"""Batched regression: many (predicted, target) pairs moved at once by gradient steps.

Every case follows the update of the DIoU paper's simulation (Zheng et al., AAAI
2020, arXiv 1911.08287, Algorithm 1), generalised::

    theta_t = theta_{t-1} - lr * schedule(t) * (2 - IoU_{t-1}) * dL/dtheta_{t-1}

for any loss of `sandbox.LOSSES`, any schedule of `sandbox.SCHEDULES`, the
(2 - IoU) weight on or off, and any parameterisation theta. The gradient comes
from autograd: one reverse pass over the sum of the independent per-case losses
of a chunk. For IoU, GIoU, DIoU and CIoU with their default parameters that pass
goes through the fused kernels of `sandbox.fused`.

Cases are processed in chunks, so memory stays bounded whatever their number,
and chunks are spread over worker processes. The results do not depend on the
number of workers or on the chunk size: every case is computed on its own, and
the summed error E(t) is added up from partial sums over fixed blocks of
`BLOCK` cases with `math.fsum`, which rounds once, whatever the order.
"""
import ctypes
import math
import multiprocessing
import time

import autograd.numpy as anp
import numpy as np
from autograd import grad
from scipy.optimize import OptimizeResult

from .boxes import Coordinates, box_convert, check_boxes, rows
from .first_order import get_schedule
from .fused import KINDS, fused_total, target_terms
from .losses import get_loss, iou, unchecked
from .parameterisations import get_parameterisation

BLOCK = 1024
"""Cases per partial sum of E(t) and of the mean IoU; chunks hold whole blocks."""
CHUNK = 32 * BLOCK
"""The largest chunk by default: its temporaries stay within a few MiB of cache per worker."""
SIZE_PARAMETERS = {"cxcywh": (2, 3), "xywh": (2, 3), "log": (2, 3)}
"""The parameters that are a width and a height, which the reference gradient doubles."""


def regress(preds, targets, loss="giou", param="cxcywh", iterations=200, lr=0.1, schedule="step",
            iou_weighting=True, reference_gradient=False, fused=True, chunk_size=None,
            workers=1, progress=None, gradient=None):
    """Regress every predicted box toward its target; return E(t), the mean IoU and the final boxes.

    Parameters
    ----------
    preds, targets : array_like, shape (n, 4)
        ``xyxy`` boxes; a single target of shape (4,) serves every case.
    loss : str or callable
        A loss of `sandbox.LOSSES` by name, with parameters as `sandbox.get_loss` takes them.
    param : str
        What moves: a name in `sandbox.PARAMETERISATIONS`; the paper moves (x, y, w, h),
        ``'cxcywh'``.
    iterations, lr, schedule
        T steps at learning rate ``lr * schedule(t, T)``; the default ``'step'`` is the
        paper's 0.1 / 0.01 / 0.001 with drops at 80 % and 90 % of T.
    iou_weighting : bool
        Multiply each step by (2 - IoU), as the paper does.
    reference_gradient : bool
        Double the width and height components of the gradient, as the authors' MATLAB
        code does (it takes dL/dw as dL/d(right edge) - dL/d(left edge)).
    fused : bool
        Use the fused kernels for IoU, GIoU, DIoU and CIoU; False runs autograd through
        the loss's own operations, slower. Their gradients agree to about 1e-16; over
        many steps a box that keeps crossing a kink can amplify that into differences
        visible in a few cases (see the README).
    chunk_size : int, optional
        Cases per chunk, a multiple of `BLOCK`. By default at most `CHUNK`, and small
        enough that every worker gets at least four chunks, so that they finish together.
    workers : int
        Processes to spread the chunks over; 1 runs in this process.
    progress : callable, optional
        ``progress(done, total)`` after each chunk, in cases.
    gradient : callable, optional
        ``gradient(theta, target) -> (g, iou)`` for parameters theta of shape (4, m) and
        target corners, used instead of autograd's: only to run a published
        implementation's update for comparison (`sandbox.diou_reference`). It must be
        picklable for `workers` > 1; `loss` is then only a label.

    Returns
    -------
    OptimizeResult
        ``errors`` (T + 1,): E(t), the sum over cases of the L1 distance in
        (x, y, w, h) between box and target, t = 0 the start; ``mean_iou`` (T + 1,);
        ``final_boxes`` (n, 4) ``xyxy``; ``final_errors`` and ``final_ious`` (n,);
        ``cases``, ``iterations``, ``seconds``.
    """
    began = time.perf_counter()
    preds = check_boxes(preds, "pred")
    targets = check_boxes(targets, "target", positive_size=True)
    if preds.ndim != 2:
        raise ValueError(f"preds must have shape (n, 4); got shape {preds.shape}")
    targets = np.ascontiguousarray(np.broadcast_to(targets, preds.shape))
    settings = _settings(loss, param, iterations, lr, schedule, iou_weighting, reference_gradient, fused)
    if gradient is not None and not callable(gradient):
        raise ValueError(f"gradient must be a function (theta, target) -> (g, iou); got {gradient!r}")
    settings["gradient"] = gradient
    if not (isinstance(workers, (int, np.integer)) and workers >= 1):
        raise ValueError(f"workers must be a whole number >= 1; got {workers!r}")
    n = len(preds)
    if chunk_size is None:
        chunks = max(4 * workers, math.ceil(n / CHUNK))
        chunk_size = max(1, math.ceil(n / chunks / BLOCK)) * BLOCK
    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size > 0 and chunk_size % BLOCK == 0):
        raise ValueError(f"chunk_size must be a positive multiple of {BLOCK}; got {chunk_size!r}")
    get_parameterisation(param).from_box(preds)  # the log parameterisation needs positive sizes
    bounds = [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]
    tasks = [(preds[a:b], targets[a:b], settings) for a, b in bounds]
    result = OptimizeResult(final_boxes=np.empty((n, 4)), final_errors=np.empty(n),
                            final_ious=np.empty(n), cases=n, iterations=iterations)
    error_blocks = np.zeros((iterations + 1, math.ceil(n / BLOCK)))
    iou_blocks = np.zeros_like(error_blocks)
    for (a, b), chunk in zip(bounds, _map(_regress_chunk, tasks, workers)):
        result.final_boxes[a:b], result.final_errors[a:b], result.final_ious[a:b] = chunk[:3]
        error_blocks[:, a // BLOCK:a // BLOCK + chunk[3].shape[1]] = chunk[3]
        iou_blocks[:, a // BLOCK:a // BLOCK + chunk[4].shape[1]] = chunk[4]
        if progress is not None:
            progress(b, n)
    result.errors = np.array([math.fsum(row) for row in error_blocks])
    result.mean_iou = np.array([math.fsum(row) for row in iou_blocks]) / max(n, 1)
    result.seconds = time.perf_counter() - began
    return result


def _settings(loss, param, iterations, lr, schedule, iou_weighting, reference_gradient, fused):
    """Check the run's settings before any work; return them as plain values for the workers."""
    get_loss(loss)
    get_parameterisation(param)
    get_schedule(schedule)
    if not (isinstance(iterations, (int, np.integer)) and iterations >= 0):
        raise ValueError(f"iterations must be a whole number >= 0; got {iterations!r}")
    if not (isinstance(lr, (int, float)) and 0 < lr < np.inf):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if reference_gradient and param not in SIZE_PARAMETERS:
        raise ValueError(f"the reference gradient doubles the width and height components; parameterisation "
                         f"{param!r} has none (use one of {', '.join(SIZE_PARAMETERS)})")
    return dict(loss=loss, param=param, iterations=int(iterations), lr=float(lr), schedule=schedule,
                iou_weighting=bool(iou_weighting), reference_gradient=bool(reference_gradient),
                fused=bool(fused))


def _map(function, tasks, workers):
    """Apply `function` to every task, in order, in this process or in `workers` processes."""
    if workers == 1 or len(tasks) <= 1:
        _tune_malloc()
        yield from map(function, tasks)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(min(workers, len(tasks)), initializer=_tune_malloc) as pool:
        yield from pool.imap(function, tasks)


def _tune_malloc():
    """Keep freed memory in the heap instead of returning it to the system after each array.

    glibc serves allocations above 128 KiB with mmap and frees them with munmap, so
    each of the thousands of temporary arrays of a chunk costs page faults; with a
    higher threshold the batch runs about 1.5 times faster. No effect elsewhere.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD


def _regress_chunk(task):
    """Run one chunk: final boxes, errors and IoUs per case, and per-block sums at every t."""
    preds, targets, s = task
    param, schedule, iterations = get_parameterisation(s["param"]), get_schedule(s["schedule"]), s["iterations"]
    fused = s["fused"] and isinstance(s["loss"], str) and s["loss"] in KINDS and s["gradient"] is None
    loss = fused_total(s["loss"]) if fused else unchecked(get_loss(s["loss"]))
    target = Coordinates(np.ascontiguousarray(targets.T))
    target_centre_size = box_convert(target, "xyxy", "cxcywh")
    terms = target_terms(target) if fused else None
    theta = np.array(param.from_box(Coordinates(preds.T)))  # shape (4, n): one row per parameter
    captured = {}  # the fused kernels leave the IoU they computed here

    def objective(theta):
        box = param.to_box(rows(theta))
        return loss(box, terms, out=captured) if fused else anp.sum(loss(box, target))

    gradient = grad(objective)
    blocks = np.arange(0, len(preds), BLOCK)
    error_blocks, iou_blocks = np.empty((iterations + 1, len(blocks))), np.empty((iterations + 1, len(blocks)))

    def error(theta):
        """L1 distance in (x, y, w, h) to the target: E(t) before summing."""
        centre_size = theta if s["param"] == "cxcywh" else box_convert(param.to_box(Coordinates(theta)),
                                                                        "xyxy", "cxcywh")
        return sum(np.abs(b - g) for b, g in zip(centre_size, target_centre_size))

    def overlap(theta):
        return unchecked(iou)(param.to_box(Coordinates(theta)), target)

    doubled = list(SIZE_PARAMETERS.get(s["param"], ()))
    for t in range(iterations):
        if s["gradient"] is None:
            g = gradient(theta)
            current_iou = captured.pop("iou") if fused else overlap(theta)
        else:
            g, current_iou = s["gradient"](theta, target)
        error_blocks[t] = np.add.reduceat(error(theta), blocks)
        iou_blocks[t] = np.add.reduceat(current_iou, blocks)
        if s["reference_gradient"]:
            g[doubled] *= 2.0
        step = s["lr"] * schedule(t, iterations)
        if s["iou_weighting"]:
            step = step * (2.0 - current_iou)
        theta = theta - step * g
    final_error, final_iou = error(theta), overlap(theta)
    error_blocks[iterations], iou_blocks[iterations] = (np.add.reduceat(final_error, blocks),
                                                        np.add.reduceat(final_iou, blocks))
    box = np.stack(param.to_box(Coordinates(theta)), axis=-1)
    return box, final_error, final_iou, error_blocks, iou_blocks
