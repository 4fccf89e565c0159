"""The first-order engine: n boxes, each moved toward its own target, one box or a million.

Every first-order run of the sandbox goes through `descend`: `sandbox.fit` with
gd, momentum or Adam (n = 1), `sandbox.fit_many` (one box per start) and the DIoU
paper's simulation, `sandbox.optim.batch.regress` (millions of boxes). Each step is::

    theta_t = theta_{t-1} - lr * schedule(t, maxiter) * weight * direction_t

for parameters theta of shape (k, n) (one row per parameter, one column per box;
k = 4 for ``xyxy`` boxes, 5 for oriented ones, as the loss's kind says:
`sandbox.losses.kinds`),
the direction of a rule of `sandbox.optim.rules` (gd, momentum, Adam) applied
elementwise to the gradient, and the weight 1 or the DIoU paper's (2 - IoU): the
chain `sandbox.optim.rules.first_order` builds, the one update rule that training
uses too. The run's settings arrive resolved (`sandbox.optim.settings.Settings`).
The gradient is autograd's (``gradient='autograd'``, the default everywhere), of
the sum over boxes of the independent per-box losses; with ``gradient='fused'``, a
registry loss (at any parameters; not a weighted sum or a user's loss) goes
through the fused kernels of `sandbox.losses.fused` (the oriented losses have none and
run through autograd, as every spec without a kernel does); or a function replaces it
(the authors' MATLAB transcription, `sandbox.losses.diou_reference`).

Each box stops on its own (`sandbox.optim.rules.stops`): when its max |gradient|
<= `gtol` (`Status.CONVERGED`), or when its loss or gradient is not finite
(`Status.NON_FINITE`); otherwise it runs `maxiter` steps (`Status.MAX_ITERATIONS`).
A stopped box's parameters and rule state stay as they were while the others go on.

A loss that carries state (`sandbox.losses.formulas.LOSS_STATES`: Wise-IoU v2 and v3's
running mean of the IoU loss, Unified-IoU's scheduled box scale) gets one state per
box: before each step's loss the box's state is updated from its own boxes
(``update(state, statistic(box, target), t, maxiter)``) and passed to the loss as its
parameter; a stopped box keeps its state, and the result returns each box's final
state as ``loss_state``. So a box's running mean is over its own steps alone.

Every operation of a step is elementwise over boxes (the sum's reverse pass hands
each box its own partials), so a box's result does not depend on the batch it
ran in: bit for bit, whatever n, the chunk size or the number of workers (a
single box runs as a batch of two copies of itself, see `_one_box`). The
only sums across boxes are the running sums of E(t) and of the IoU, added up
from partial sums over fixed blocks of `BLOCK` boxes with `math.fsum`, which
rounds once, whatever the order.

The IoU, GIoU, the (2 - IoU) weight, "home" and E(t) are the box kind's: for oriented
boxes the rotated IoU and GIoU of `sandbox.geometry.polygons`, and E(t) the distance
of `sandbox.losses.kinds.oriented_error`.

The speed devices live here and in `sandbox.losses.fused`: parameters held as one
(k, n) array read through `sandbox.geometry.boxes.rows`, the losses called `unchecked`,
chunks sized for the cache and spread over processes (`sandbox.workers`), and its `_tune_malloc`.
"""
from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Optional, Sequence, TypeAlias, cast

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from autograd.tracer import getval
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult

from sandbox._types import Array, BoolArray, FloatArray
from sandbox.geometry.boxes import Coordinates, box_convert, rows
from sandbox.losses.formulas import LossState, loss_state, unchecked
from sandbox.losses.fused import built_kernel, fused_total, target_terms
from sandbox.losses.spec import adopt, on_arrays, travelling
from sandbox.optim.rules import RULES, Rate, State, Status, apply, first_order, stops
from sandbox.optim.settings import SIZE_PARAMETERS, GradientFunction, Settings
from sandbox.workers import forks, map_tasks, prepare_worker

BLOCK = 1024
"""Boxes per partial sum of E(t) and of the mean IoU; with running sums, chunks hold whole blocks."""
CHUNK = 32 * BLOCK
"""The largest chunk by default: its temporaries stay within a few MiB of cache per worker."""
RECORDS = ("history", "sums")

Callback: TypeAlias = Callable[[OptimizeResult], object]
"""``callback(intermediate_result)``; raising StopIteration ends the run."""
Progress: TypeAlias = Callable[[int, int], object]
"""``progress(done, total)``."""
_Evaluate: TypeAlias = Callable[..., tuple[Optional[Array], FloatArray, Optional[Array], bool]]
"""``evaluate(theta, want_iou, state=None) -> (loss (m,) or None, g (k, m), iou (m,) or None, finite)``, made by
`_evaluator`; `state`, a stateful loss's keyword and its values per box."""
_Task: TypeAlias = tuple[FloatArray, FloatArray, Rate, Settings, str, dict[str, str], Optional[Callback]]
"""A chunk's work, for `_descend_chunk`: starts and targets (m, k), the rate(s), the settings, the record, the
losses a worker registers (`sandbox.losses.spec.travelling`) and the callback."""
_Fields: TypeAlias = dict[str, Array]
"""A run's fields by name (`_fields`), or a chunk's, the box axis last (`_descend_chunk`)."""


def descend(starts: ArrayLike, targets: ArrayLike, settings: Settings, record: str = "history",
            callback: Callback | None = None, chunk_size: int | None = None, workers: int = 1,
            scheduler: str | None = None, progress: Progress | None = None) -> OptimizeResult:
    """Move every start box toward its target by a first-order rule; one result whose fields have a box axis.

    Parameters
    ----------
    starts : array_like, shape (n, 4) or (n, 5)
        ``xyxy`` start boxes, possibly inverted or empty; or oriented ones (cx, cy, w, h,
        theta) for an oriented loss (`Settings.kind`).
    targets : array_like, shape (n, 4) or (4,), or (n, 5) or (5,)
        Targets of the same kind with positive width and height; one serves every box.
    settings : Settings
        The run's settings, resolved by `sandbox.optim.settings.resolve` at the entry
        point (`sandbox.fit`, `sandbox.fit_many`, `sandbox.regress`, a sweep): the loss,
        the rule (``gd``, ``momentum``, ``adam`` and its options), the parameterisation,
        ``maxiter`` steps, the base rate ``lr`` (one, or one per box), the schedule,
        the (2 - IoU) weight, ``gtol``, and the gradient backend: ``'autograd'``,
        ``'fused'`` (the kernels of `sandbox.losses.fused` where the loss has one;
        other specs, the oriented losses among them, run through autograd) or a function ``gradient(theta, target)
        -> (g, iou)`` for theta (4, m) and target corners, used instead (`loss` is
        then only a label; picklable when `workers` > 1).
    record : str
        ``'history'``: every step of every box; ``'sums'``: only the running sums,
        for millions of boxes.
    callback : callable, optional
        ``callback(intermediate_result)`` after each step, with ``x`` (n, k) the
        parameters, ``fun`` (n,) the losses at the points stepped from, ``nit`` and
        ``running`` (n,) the boxes that moved; raising StopIteration ends the run
        (`Status.STOPPED` for the boxes still running). In this process only.
    chunk_size : int, optional
        Boxes per chunk (with ``'sums'``, a multiple of `BLOCK`); by default at most
        `CHUNK`, and with several workers small enough for each to get four chunks,
        so that they finish together.
    workers : int
        Processes to spread the chunks over; 1 runs in this process.
    scheduler : str, optional
        The address of a Dask scheduler (``tcp://host:8786``) whose cluster runs the
        chunks instead (``dask.distributed`` must be installed); the results are the
        same bit for bit.
    progress : callable, optional
        ``progress(done, total)`` after each chunk, in boxes.

    Returns
    -------
    OptimizeResult
        Per box: ``box`` (n, k) the final box (``xyxy``, or oriented), ``nit`` and ``status`` (n,),
        a `sandbox.optim.rules.Status` code; then

        - with ``'history'``: ``x`` (n, k) the final parameters, ``nfev`` (n,),
          ``gradient_max`` (n,), max |gradient| where a box stopped (NaN unless it
          stopped by `gtol` or a non-finite value), ``boxes`` (n, maxiter + 1, k),
          ``losses``, ``ious``, ``gious``, ``grad_norms`` (n, maxiter + 1), step 0
          the start, NaN after the box's last step ``nit``;
        - for a loss that carries state, ``loss_state`` (n,): each box's state as its
          last step used it;
        - with ``'sums'``: ``errors`` (maxiter + 1,), E(t), the sum over boxes of
          the box kind's distance between box and target (for ``xyxy`` boxes the L1
          distance in (x, y, w, h); `sandbox.losses.kinds`); ``mean_iou``
          (maxiter + 1,); ``final_errors`` and ``final_ious`` (n,).
    """
    began = time.perf_counter()
    kind = settings.kind
    starts = kind.check(starts, "start")
    if starts.ndim != 2:
        raise ValueError(f"starts must have shape (n, {kind.size}); got shape {starts.shape}")
    targets = kind.check(targets, "target", positive_size=True)
    targets = np.ascontiguousarray(np.broadcast_to(targets, starts.shape))
    n = len(starts)
    if not settings.first_order:
        raise ValueError(f"the engine runs the first-order rules ({', '.join(RULES)}); got {settings.method!r}")
    if record not in RECORDS:
        raise ValueError(f"unknown record {record!r}; valid: {', '.join(RECORDS)}")
    lr: Any = settings.lr  # a number or one per box, as np.ndim tells; not None in a first-order run
    if np.ndim(lr) and np.shape(lr) != (n,):
        raise ValueError(f"lr must be a number or an array of one rate per box, shape ({n},); got shape {np.shape(lr)}")
    if not (isinstance(workers, (int, np.integer)) and workers >= 1):
        raise ValueError(f"workers must be a whole number >= 1; got {workers!r}")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function of the intermediate result; got {callback!r}")
    multiple = BLOCK if record == "sums" else 1
    if chunk_size is None:
        chunks = max(4 * workers if workers > 1 else 1, math.ceil(n / CHUNK))
        chunk_size = max(1, math.ceil(n / chunks / multiple)) * multiple
    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size > 0 and chunk_size % multiple == 0):
        raise ValueError(f"chunk_size must be a positive multiple of {multiple}; got {chunk_size!r}")
    if callback is not None and (workers > 1 or chunk_size < n or scheduler is not None):
        raise ValueError("a callback sees every box at every step: run with one worker and one chunk")
    settings.parameterisation.from_box(starts)  # the log parameterisation needs positive sizes
    bounds = [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]
    registered: dict[str, str] = {}
    if scheduler is not None or (workers > 1 and len(bounds) > 1):  # refused here, or it travels
        registered = travelling(settings.loss, forked=scheduler is None and forks())
    tasks: list[_Task] = [(starts[a:b], targets[a:b], lr if np.ndim(lr) == 0 else lr[a:b], settings, record,
                           registered, callback) for a, b in bounds]
    result = OptimizeResult(_fields(settings.maxiter, record, n, kind.size, _carried(settings) is not None))
    prepare = functools.partial(prepare_worker, [settings.loss], registered)
    for (a, b), part in zip(bounds, map_tasks(_descend_chunk, tasks, workers, scheduler, prepare)):
        for key, value in part.items():
            if key.endswith("_blocks"):  # per block of boxes: chunks hold whole blocks
                result[key][..., a // BLOCK:a // BLOCK + value.shape[-1]] = value
            elif key in ("x", "box"):
                result[key][a:b] = value.T
            else:
                result[key][..., a:b] = value
        if progress is not None:
            progress(b, n)
    if record == "sums":
        result.errors = np.array([math.fsum(row) for row in result.pop("error_blocks")])
        result.mean_iou = np.array([math.fsum(row) for row in result.pop("iou_blocks")]) / max(n, 1)
    else:
        for key in ("boxes", "losses", "ious", "gious", "grad_norms"):
            result[key] = np.moveaxis(result[key], -1, 0)  # the box axis first: (n, maxiter + 1[, k])
    result.seconds = time.perf_counter() - began
    return result


def _fields(maxiter: int, record: str, n: int, size: int, stateful: bool = False) -> _Fields:
    """Empty arrays for the fields of a run of n boxes of `size` numbers: x and box (n, size), the others with
    the box axis last."""
    steps = maxiter + 1
    shapes = {"box": (n, size), "nit": (n,), "status": (n,), **({"loss_state": (n,)} if stateful else {})}
    if record == "sums":
        blocks = math.ceil(n / BLOCK)
        shapes |= {"final_errors": (n,), "final_ious": (n,), "error_blocks": (steps, blocks),
                   "iou_blocks": (steps, blocks)}
    else:
        shapes |= {"x": (n, size), "nfev": (n,), "gradient_max": (n,), "boxes": (steps, size, n), **{key: (steps, n) for key in ("losses", "ious", "gious", "grad_norms")}}
    dtypes = {"nit": np.int32, "nfev": np.int32, "status": np.int8}
    return {key: np.empty(shape, dtype=dtypes.get(key, float)) for key, shape in shapes.items()}


def _evaluator(settings: Settings, target: Coordinates) -> _Evaluate:
    """``evaluate(theta, want_iou) -> (loss (m,) or None, g (k, m), iou (m,) or None, finite)`` at theta.

    The fused kernels give the IoU on the way; otherwise it is computed only when
    wanted. A `gradient` override gives no loss. `finite` True says that every
    loss and gradient is finite; False, that some may not be. It comes from the
    total the reverse pass starts from and the sum of the gradient: a finite sum
    has only finite terms (a NaN or an infinity makes it NaN or infinite).
    """
    if np.shape(target[0]) == (1,):
        return _one_box(_evaluator(settings, Coordinates(np.repeat(t, 2) for t in target)))
    loss, param, kind = settings.loss, settings.parameterisation, settings.kind
    if callable(settings.gradient):
        def evaluate_override(theta: FloatArray, want_iou: bool, state: dict[str, FloatArray] | None = None
                              ) -> tuple[None, FloatArray, Array, bool]:
            g, current_iou = cast(GradientFunction, settings.gradient)(theta, target)
            return None, g, current_iou, bool(np.isfinite(g.sum()))
        return evaluate_override
    captured: dict[str, Any] = {}  # the loss per box, and the IoU where the kernel computes it, left by the objective
    if (settings.gradient == "fused" and kind.fused and not callable(loss)
            and built_kernel(settings.loss_function) is not None):
        total, terms = fused_total(settings.loss_function), target_terms(cast(Sequence[FloatArray], target))

        def objective(theta: Array, state: dict[str, FloatArray]) -> Array:
            return total(param.to_box(rows(theta)), terms, out=captured, **state)
    else:
        function = unchecked(settings.loss_function)
        if callable(loss):  # a user's function takes stacked boxes (..., k)
            function = on_arrays(function)

        def objective(theta: Array, state: dict[str, FloatArray]) -> Array:
            values = function(param.to_box(rows(theta)), target, **state)
            captured["value"] = getval(values)
            return values if np.ndim(values) == 0 else anp.sum(values)
    total_and_gradient = value_and_grad(objective)

    def evaluate(theta: FloatArray, want_iou: bool, state: dict[str, FloatArray] | None = None
                 ) -> tuple[Array | None, FloatArray, Array | None, bool]:
        total, g = total_and_gradient(theta, state or {})
        current_iou = captured.pop("iou", None)
        if current_iou is None and want_iou:
            current_iou = kind.iou(param.to_box(Coordinates(theta)), target)
        return captured.pop("value"), g, current_iou, bool(np.isfinite(total + g.sum()))
    return evaluate


def _one_box(evaluate: _Evaluate) -> _Evaluate:
    """An evaluator for one box, from one that runs it twice over: the same numbers, faster.

    On arrays of length 1 autograd sums every gradient over the length-1 axis (it
    cannot tell it from a broadcast one), which makes one box's step about 15 %
    slower; 0-d arrays would be fast but are not the same arithmetic (NumPy's
    scalar ``x ** 2`` calls ``pow``, its arrays multiply), so a box would not run
    alone exactly as it runs in a batch. Two copies are a batch of two.
    """
    def evaluate_one(theta: FloatArray, want_iou: bool, state: dict[str, FloatArray] | None = None
                     ) -> tuple[Array | None, FloatArray, Array | None, bool]:
        doubled = {key: np.repeat(values, 2) for key, values in state.items()} if state else None
        value, g, current_iou, finite = evaluate(np.repeat(theta, 2, axis=1), want_iou, doubled)
        return (None if value is None else value[:1], g[:, :1], None if current_iou is None else current_iou[:1],
                finite)
    return evaluate_one


def _descend_chunk(task: _Task) -> _Fields:
    """Run one chunk of boxes through every step of the rule; return its fields, the box axis last.

    Each box steps by the chain of `sandbox.optim.rules.first_order` until it stops
    on its own (`sandbox.optim.rules.stops`): its gradient at most `gtol`
    (`Status.CONVERGED`), or a loss or gradient not finite (`Status.NON_FINITE`);
    else it runs `maxiter` steps (`Status.MAX_ITERATIONS`). A stopped box keeps its
    parameters and its rule's state while the others go on. The recorder keeps
    every step (`_History`) or only the running sums (`_Sums`).
    """
    starts, targets, lr, settings, record, registered, callback = task
    adopt(registered)
    param, maxiter, gtol = settings.parameterisation, settings.maxiter, settings.gtol
    rule = first_order(settings.method, lr, settings.schedule_factor(), maxiter, settings.iou_weighting,
                       settings.options)
    target = Coordinates(np.ascontiguousarray(targets.T))
    evaluate = _evaluator(settings, target)
    recorder = (_Sums if record == "sums" else _History)(settings, target)
    want_iou = settings.iou_weighting or recorder.wants_iou
    doubled = SIZE_PARAMETERS.get(settings.param, ()) if settings.reference_gradient else ()
    doubling = np.array([[2.0 if i in doubled else 1.0] for i in range(param.size)])  # exact: times 1 or 2
    theta = np.array(param.from_box(Coordinates(starts.T)))  # shape (k, n): one row per parameter
    n = theta.shape[1]
    state = rule.init(theta)
    running = np.ones(n, dtype=bool)  # not stopped yet
    status, nit, gradient_max = np.full(n, int(Status.MAX_ITERATIONS)), np.full(n, maxiter), np.full(n, np.nan)
    carried = _carried(settings)
    loss_state_values = None if carried is None else np.full(n, carried[1], dtype=float)
    for t in range(maxiter):
        if carried is not None and loss_state_values is not None:  # each box's own, before its step's loss
            loss_state_values = _next_loss_state(carried[0], loss_state_values, theta, target, settings, t, running)
        value, g, current_iou, finite = evaluate(theta, want_iou, _state_keywords(carried, loss_state_values))
        recorder.step(theta, value, g, current_iou, running)
        stopping, failed, largest = stops(value, g, gtol, finite)
        if stopping is not None:
            failed, largest = cast(BoolArray, failed), cast(FloatArray, largest)  # stops gives all three or none
            stopping = stopping & running
            status = np.where(stopping, np.where(failed, Status.NON_FINITE, Status.CONVERGED), status)
            nit = np.where(stopping, t, nit)
            gradient_max = np.where(stopping, largest, gradient_max)
            running = running & ~stopping
            if not (running.any() or recorder.every_step):
                break
        if settings.reference_gradient:
            g = g * doubling
        moved, new_state = apply(theta, g, rule, state, t, current_iou)
        if running.all():
            theta, state = moved, new_state
        else:  # stopped boxes keep their parameters and their rule's state
            theta, state = _select(running, moved, theta), _select(running, new_state, state)
        if callback is not None and running.any():
            try:
                callback(OptimizeResult(x=theta.T, fun=value, nit=t + 1, running=running))
            except StopIteration:
                status, nit = np.where(running, Status.STOPPED, status), np.where(running, t + 1, nit)
                break
    # the boxes still running (maxiter reached, or the callback) have not been evaluated at their last point
    fields = recorder.finish(theta, running, functools.partial(evaluate,
                                                               state=_state_keywords(carried, loss_state_values)))
    fields.update(box=np.stack(cast(Coordinates, param.to_box(Coordinates(theta)))), nit=nit, status=status)
    if loss_state_values is not None:
        fields.update(loss_state=loss_state_values)
    if record == "history":  # with running sums, for millions of boxes, only what regress reports
        evaluated = (status == Status.CONVERGED) | (status == Status.NON_FINITE)
        fields.update(x=theta, nfev=np.where(evaluated, nit + 1, nit), gradient_max=gradient_max)
    return fields


def _carried(settings: Settings) -> tuple[LossState, Any] | None:
    """The run's loss state (`sandbox.losses.formulas.loss_state`) and where it starts, or None: none for a
    stateless loss, nor when a function replaces the gradient."""
    return None if callable(settings.gradient) else loss_state(settings.loss_function)


def _next_loss_state(declared: LossState, values: FloatArray, theta: FloatArray, target: Coordinates,
                     settings: Settings, t: int, running: BoolArray) -> FloatArray:
    """Each box's state for step t, from its state before and its own boxes; a stopped box keeps its state."""
    statistic = None
    if declared.statistic is not None:
        statistic = declared.statistic(settings.parameterisation.to_box(Coordinates(theta)), target)
    updated = np.asarray(declared.update(values, statistic, t, settings.maxiter), dtype=float)
    return cast(FloatArray, np.where(running, updated, values))


def _state_keywords(carried: tuple[LossState, Any] | None, values: FloatArray | None) -> dict[str, FloatArray]:
    """The keyword that gives the loss its state, ``{parameter: values per box}``, or none."""
    return {} if carried is None or values is None else {carried[0].parameter: values}


def _select(mask: BoolArray, new: State, old: State) -> State:
    """`new` where `mask` (per box), else `old`: for arrays (k, n), a rule's state (tuples of them) or None."""
    if new is None:
        return None
    if isinstance(new, tuple):
        return tuple(_select(mask, a, b) for a, b in zip(new, old))
    return np.where(mask, new, old)


class _History:
    """Every step of every box, NaN after its last: parameters, loss, gradient; IoU and GIoU at the end."""
    wants_iou = False
    every_step = False  # a chunk whose boxes have all stopped can end

    def __init__(self, settings: Settings, target: Coordinates) -> None:
        self.param, self.target, self.steps = settings.parameterisation, target, settings.maxiter + 1
        self.kind = settings.kind
        self.thetas: list[FloatArray] = []
        self.losses: list[FloatArray] = []
        self.gradients: list[FloatArray] = []

    def step(self, theta: FloatArray, value: Array | None, g: FloatArray, current_iou: Array | None,
             recorded: BoolArray) -> None:
        value = np.full(recorded.shape, np.nan) if value is None else value
        if not recorded.all():
            theta, value, g = (np.where(recorded, x, np.nan) for x in (theta, value, g))
        self.thetas.append(theta)
        self.losses.append(value)
        self.gradients.append(g)

    def finish(self, theta: FloatArray, running: BoolArray, evaluate: _Evaluate) -> _Fields:
        if running.any():
            value, g, _, _ = evaluate(theta, False)
            self.step(theta, value, g, None, running)
        missing = self.steps - len(self.thetas)
        thetas, g = (_pad(np.stack(x), missing) for x in (self.thetas, self.gradients))  # (steps, k, n)
        boxes = cast(Coordinates, self.param.to_box(Coordinates(thetas[:, i] for i in range(self.param.size))))
        target = Coordinates(t[None] for t in cast(Sequence[FloatArray], self.target))
        with np.errstate(all="ignore"):  # the NaN after a box's last step
            ious, gious = self.kind.iou(boxes, target), self.kind.giou(boxes, target)
        squares = g[:, 0] ** 2 + g[:, 1] ** 2 + g[:, 2] ** 2 + g[:, 3] ** 2  # in this order, as before
        for i in range(4, self.param.size):
            squares = squares + g[:, i] ** 2
        return dict(boxes=np.stack(boxes, axis=1), losses=_pad(np.stack(self.losses), missing), ious=ious,
                    gious=gious, grad_norms=np.sqrt(squares))


class _Sums:
    """Partial sums over blocks of `BLOCK` boxes of E(t) and of the IoU at every step, stopped boxes included."""
    wants_iou = True
    every_step = True  # a stopped box still counts in the sums, as it is

    def __init__(self, settings: Settings, target: Coordinates) -> None:
        self.param, self.target, self.steps = settings.parameterisation, target, settings.maxiter + 1
        self.kind = settings.kind
        self.blocks = np.arange(0, len(cast(FloatArray, target[0])), BLOCK)
        # (x, y, w, h) moved as they are: their error needs no round trip through the corners
        self.moves_centre_size = settings.param == "cxcywh"
        self.target_centre_size = box_convert(target, "xyxy", "cxcywh") if self.moves_centre_size else None
        self.errors: list[FloatArray] = []
        self.ious: list[FloatArray] = []

    def error(self, theta: FloatArray) -> FloatArray:
        """The box kind's distance to the target (for ``xyxy`` boxes, L1 in (x, y, w, h)): E(t) before summing."""
        if self.moves_centre_size:
            return sum(np.abs(b - g) for b, g in zip(theta, cast(Coordinates, self.target_centre_size)))
        return cast(FloatArray, self.kind.error(self.param.to_box(Coordinates(theta)), self.target))

    def step(self, theta: FloatArray, value: Array | None, g: FloatArray | None, current_iou: Array | None,
             running: BoolArray | None) -> None:
        self.errors.append(np.add.reduceat(self.error(theta), self.blocks))
        self.ious.append(np.add.reduceat(cast(Array, current_iou), self.blocks))  # given: wants_iou

    def finish(self, theta: FloatArray, running: BoolArray, evaluate: _Evaluate) -> _Fields:
        final_error = self.error(theta)
        final_iou = self.kind.iou(self.param.to_box(Coordinates(theta)), self.target)
        self.step(theta, None, None, final_iou, None)
        missing = self.steps - len(self.errors)  # after a callback's StopIteration
        return dict(final_errors=final_error, final_ious=final_iou, error_blocks=_pad(np.stack(self.errors), missing),
                    iou_blocks=_pad(np.stack(self.ious), missing))


def _pad(history: FloatArray, missing: int) -> FloatArray:
    """`history` (steps, ...) with `missing` rows of NaN after it."""
    return np.concatenate([history, np.full((missing, *history.shape[1:]), np.nan)]) if missing else history
