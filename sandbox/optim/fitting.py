"""`fit`: move one predicted box toward one target box, and say honestly how the run ended.

Methods are the first-order rules of `sandbox.optim.rules` (``gd``, ``momentum``,
``adam``), run by the engine `sandbox.optim.engine.descend`, and every
`scipy.optimize.minimize` method that runs without bounds or constraints.
Gradients, Hessians and Hessian-vector products all come from autograd, never
from finite differences. `fit_many` fits many starts at once with a first-order
method: one call, one result whose fields gain a leading axis.

Both take oriented boxes (cx, cy, w, h, theta), shape ``(5,)`` or ``(n, 5)``, with an
oriented loss (`sandbox.losses.oriented.ORIENTED_LOSSES`): the loss decides the kind
(`sandbox.losses.kinds`), whose rotated IoU and GIoU the record and the outcome use.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, cast

import autograd.numpy as anp
import numpy as np
from autograd import grad, hessian, hessian_vector_product, value_and_grad
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult, OptimizeWarning, minimize

from sandbox._types import Array, FloatArray, Loss, Values
from sandbox.geometry.parameterisations import Parameterisation
from sandbox.losses.formulas import unchecked
from sandbox.losses.kinds import BoxKind
from sandbox.optim.engine import Callback, descend
from sandbox.optim.rules import RULES, Status
from sandbox.optim.settings import HOME_IOU, METHODS, SCIPY_METHODS, Settings, Spec, resolve

__all__ = ["fit", "fit_many", "fit_resolved", "run_first_order", "GRADIENT_METHODS", "HOME_IOU", "METHODS", "OUTCOMES"]
GRADIENT_METHODS = tuple(m for m in METHODS if m in RULES or "jac" in SCIPY_METHODS[m])


OUTCOMES = {
    "converged": "the method's own convergence test passed with the box home (IoU >= home_iou)",
    "stalled": "ended no better than it started, because the gradient at the start was zero",
    "stuck": "the method's convergence test passed, but away from the target: at a kink, on a "
             "plateau, or no better than the start",
    "line_search_failed": "a line search found no acceptable step",
    "max_iterations": "the iteration (or evaluation) limit was reached first",
    "diverged": "the run ended on an infinite or NaN box or loss",
    "failed": "the method stopped for another reason; see message",
    "stopped": "the callback raised StopIteration",
}
_STATUS_OUTCOMES: dict[str, dict[int, str | None]] = {
    # method: {status: outcome}, read in scipy 1.17's source (scipy/optimize/, file and function
    # named below). "converged" means the method's own test passed: `fit` says "stuck" unless the
    # box is home. None: the status covers several endings, which only the message tells apart.
    # Every method: 99, set by `minimize` (_minimize.py) when the callback raised StopIteration.
    # Before any of these, a run ending on a non-finite box or loss is "diverged".
    **dict.fromkeys(RULES, {  # sandbox.optim.engine.descend, per box
        0: "converged",       # max |gradient| <= gtol
        1: "max_iterations",
        3: "failed"}),        # non-finite loss or gradient
    "Nelder-Mead": {          # _optimize.py, _minimize_neldermead
        0: "converged", 1: "max_iterations", 2: "max_iterations"},  # 1: maxfev, 2: maxiter
    "Powell": {               # _optimize.py, _minimize_powell
        0: "converged", 1: "max_iterations", 2: "max_iterations",   # 1: maxfev, 2: maxiter
        3: "failed",          # NaN result
        4: "failed"},         # outside the bounds
    **dict.fromkeys(["CG", "BFGS"], {  # _optimize.py, _minimize_cg and _minimize_bfgs
        0: "converged", 1: "max_iterations",
        2: "line_search_failed",  # "precision loss": the Wolfe line search failed
        3: "failed"}),            # NaN result
    "Newton-CG": {            # _optimize.py, _minimize_newtoncg
        0: "converged", 1: "max_iterations",
        2: "line_search_failed",  # "precision loss": the Wolfe line search failed
        3: "failed",              # NaN result, or inner CG not converging (Hessian not positive definite)
        5: "stopped"},            # callback halt (minimize then sets 99)
    "L-BFGS-B": {             # _lbfgsb_py.py, _minimize_lbfgsb
        0: "converged",       # CONVERGENCE: projected gradient or relative reduction of f
        1: "max_iterations",  # iteration or evaluation limit
        2: None},             # any other task: ABNORMAL (line search), WARNING (rounding errors,
                              # STP = STPMAX or STPMIN, XTOL), ERROR, callback halt
    "TNC": {                  # _tnc.py, RCSTRINGS
        -1: "failed",         # infeasible bounds
        0: "converged", 1: "converged", 2: "converged",  # |pg|, |f_n - f_(n-1)|, |x_n - x_(n-1)| ~= 0
        3: "max_iterations",  # maxfun
        4: "line_search_failed",
        5: "failed",          # all lower bounds equal the upper bounds
        6: "failed",          # unable to progress
        7: "stopped"},        # user requested end
    "SLSQP": {                # _slsqp_py.py, exit_modes
        0: "converged",
        **dict.fromkeys(range(2, 8), "failed"),  # LSQ subproblem: too many iterations, singular,
                                                 # incompatible or rank-deficient constraints
        8: "line_search_failed",  # positive directional derivative for linesearch
        9: "max_iterations"},
    "COBYLA": {               # _cobyla_py.py; codes from scipy/_lib/pyprima/common/infos.py
        0: "converged",       # SMALL_TR_RADIUS
        1: "converged",       # FTARGET_ACHIEVED
        2: "failed",          # TRSUBP_FAILED
        3: "max_iterations",  # MAXFUN_REACHED
        20: "max_iterations",  # MAXTR_REACHED, the trust-region iteration limit
        -1: "failed", -2: "failed", -3: "failed",  # NaN or Inf in x, f or the models
        7: "failed",          # DAMAGING_ROUNDING
        30: "stopped"},       # CALLBACK_TERMINATE
    "COBYQA": {               # _cobyqa_py.py; codes from scipy/_lib/cobyqa/settings.py, ExitStatus
        0: "converged", 1: "converged", 2: "converged", 4: "converged",  # radius, target, fixed,
                                                                          # feasible
        3: "stopped",         # CALLBACK_SUCCESS: scipy's success is True, but the callback ended it
        5: "max_iterations", 6: "max_iterations",  # MAX_EVAL, MAX_ITER
        -1: "failed", -2: "failed"},  # infeasible, linear algebra error
    **dict.fromkeys(["trust-ncg", "trust-krylov", "trust-exact", "dogleg"], {
        0: "converged",       # _trustregion.py, _minimize_trust_region, status_messages
        1: "max_iterations",
        2: "failed",          # the model failed to predict an improvement
        3: "failed"}),        # linear algebra error, such as a Hessian not positive definite
    "trust-constr": {         # _trustregion_constr/minimize_trustregion_constr.py
        0: "max_iterations",  # TERMINATION_MESSAGES[0]: maxiter reached
        1: "converged", 2: "converged",  # gtol, xtol
        3: "stopped",         # the callback raised StopIteration
        4: "failed"},         # constraint violation exceeds gtol
}
_MESSAGE_OUTCOMES = [  # the fallback, for a status the table leaves open: words in the message
    (("line search", "linear search", "linesearch", "lnsrch", "abnormal", "stp = stp",
      "precision loss", "directional derivative"), "line_search_failed"),
    (("maximum number", "max. number", "iteration limit", "iterations reached", "exceed", "maxfun"),
     "max_iterations"),
]


def fit(start: ArrayLike, target: ArrayLike, loss: Spec = "giou", method: str = "gd", param: str | None = None,
        maxiter: int = 200, callback: Callback | None = None, home_iou: float = HOME_IOU,
        **options: Any) -> OptimizeResult:
    """Fit one predicted box to one target box by minimising `loss`.

    Parameters
    ----------
    start, target : array_like, shape (4,) or (5,)
        ``xyxy`` boxes, or oriented boxes (cx, cy, w, h, theta) for an oriented loss.
        The start may be inverted or empty; the target needs positive width and height.
    loss : str or callable
        A name in `sandbox.LOSSES` or `sandbox.losses.oriented.ORIENTED_LOSSES`, optionally
        with parameters (``'l1:coords=cxcywh'``), or a function ``loss(pred, target)``.
    method : str
        ``'gd'``, ``'momentum'``, ``'adam'`` or a `scipy.optimize.minimize` method.
    param : str, optional
        What the optimiser moves: a name in `sandbox.PARAMETERISATIONS` (default
        ``'xyxy'``), or ``'xywha'`` for oriented boxes (their default).
    maxiter : int
        Iteration limit; for the first-order methods also the length of the
        learning-rate schedule. TNC has no iteration limit: it gets ``maxfun``.
    callback : callable, optional
        ``callback(intermediate_result)`` after each iteration, with ``x`` (the
        parameters), ``box`` and ``nit``; raise StopIteration to end the run.
    home_iou : float
        The IoU with the target at which a run whose method reports convergence
        is called ``'converged'``; below it, the run is ``'stuck'``.
    **options
        For ``gd``, ``momentum`` and ``adam``: ``lr`` (default 0.3, 0.03, 0.1),
        ``schedule`` (``'step'``, the default: the DIoU paper's 1 / 0.1 / 0.01 at
        80 % and 90 % of `maxiter`; ``'constant'``; ``'cosine'``; or a callable
        ``factor(t, maxiter)``), ``iou_weighting`` (multiply each step by
        2 - IoU, as the DIoU paper does; default False), ``gtol`` (stop when
        max |gradient| <= gtol; default 1e-5), ``gradient`` (``'autograd'``, the
        default: autograd through the loss's own operations; or ``'fused'``: the
        hand-derived kernels of `sandbox.losses.fused`, for every registry loss, about
        three times faster per step; their gradients agree with autograd's to about
        1e-16, which a box zigzagging across a kink can amplify over many steps),
        and the rule's own: ``beta`` for momentum, ``b1``,
        ``b2``, ``eps`` for Adam. For scipy methods, the method's ``options``.
        The first-order methods run on the engine `sandbox.optim.engine.descend`,
        exactly as the same start would in a batch of `fit_many`.

    Returns
    -------
    OptimizeResult
        scipy's fields ``x`` (final parameters), ``fun``, ``nit``, ``nfev``,
        ``njev``, ``status`` (the method's code; for gd, momentum and adam a
        `sandbox.optim.rules.Status`, an int shown by its name), ``message``
        (the method's own) and ``success``,
        which is True only for the outcome ``'converged'``: the method's own
        test passed and the box is home; then

        - ``boxes`` : ndarray, shape (steps + 1, 4), ``xyxy``, the start first (or
          (steps + 1, 5), oriented);
        - ``losses``, ``ious``, ``gious``, ``grad_norms`` : ndarray, shape
          (steps + 1,), at each box (the gradient's Euclidean norm with respect
          to the parameters);
        - ``box`` : the final box, ``boxes[-1]``;
        - ``outcome`` : one of `OUTCOMES`; ``stalled`` : bool;
        - ``settings`` : the run's `sandbox.optim.settings.Settings`, resolved
          (its ``record()`` is what a record of the run holds).

    Examples
    --------
    >>> result = fit([2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0], loss="iou")
    >>> result.outcome, float(result.ious[-1])
    ('stalled', 0.0)
    """
    settings = resolve(loss, method, param, maxiter, home_iou, **options)
    kind = settings.kind
    start = kind.check(start, "start")
    target = kind.check(target, "target", positive_size=True)
    for name, box in [("start", start), ("target", target)]:
        if box.shape != (kind.size,):
            raise ValueError(f"fit takes one {name} box of shape ({kind.size},); "
                             f"got shape {box.shape}")
    return fit_resolved(start, target, settings, callback)


def fit_resolved(start: FloatArray, target: FloatArray, settings: Settings, callback: Callback | None = None
                 ) -> OptimizeResult:
    """`fit` from a checked start and target and resolved `settings` (`sandbox.optim.settings.resolve`)."""
    settings.parameterisation.from_box(start)  # the log parameterisation needs positive sizes
    if settings.first_order:
        return _one(run_first_order(start[None], target, settings, callback, one=True), 0)
    loss_function = unchecked(settings.loss_function)
    parameterisation, method = settings.parameterisation, settings.method
    x0 = parameterisation.from_box(start)
    if not np.isfinite(loss_function(parameterisation.to_box(x0), target)):
        raise ValueError(f"loss {settings.loss!r} is not finite at the start box {start.tolist()}")
    xs: list[Array] = [x0]
    evaluations: list[int] = []

    def objective(x: Array) -> Values:
        evaluations.append(1)
        return loss_function(parameterisation.to_box(x), target)

    def record(intermediate_result: OptimizeResult | FloatArray) -> None:  # or x alone, from TNC
        x = np.array(getattr(intermediate_result, "x", intermediate_result), dtype=float)
        xs.append(x)
        if callback is not None:
            callback(OptimizeResult(x=x, box=parameterisation.to_box(x), nit=len(xs) - 1))

    with np.errstate(all="ignore"):  # a wild trial step may overflow; the outcome will say so
        try:
            result = _scipy(method, objective, x0, settings.maxiter, record, dict(settings.options))
        except StopIteration:  # TNC calls the callback itself, outside minimize's halting
            result = OptimizeResult(x=xs[-1], fun=objective(xs[-1]), nit=len(xs) - 1,
                                    nfev=len(evaluations) - 1, njev=len(evaluations) - 1, status=99,
                                    success=False, message=Status.STOPPED.message)
        if not np.array_equal(result.x, xs[-1]):
            xs.append(np.asarray(result.x, dtype=float))
        result.settings = settings
        return _with_trajectory(method, result, np.array(xs), target, parameterisation,
                                loss_function, settings.home_iou, settings.kind)


def fit_many(starts: ArrayLike, targets: ArrayLike, loss: Spec = "giou", method: str = "gd", param: str | None = None,
             maxiter: int = 200, callback: Callback | None = None, home_iou: float = HOME_IOU, workers: int = 1,
             **options: Any) -> OptimizeResult:
    """Fit many start boxes, each to its own target, at once with a first-order method.

    The batched `fit`: the same arguments and options, each box run exactly as `fit`
    runs it alone (bit for bit: no box's result depends on the others), and one
    result whose fields gain a leading axis. The scipy methods move one box at a
    time: call `fit` for each start.

    Parameters
    ----------
    starts : array_like, shape (n, 4) or (n, 5)
        ``xyxy`` start boxes, or oriented ones for an oriented loss.
    targets : array_like, shape (n, 4) or (4,), or (n, 5) or (5,)
        Targets of the same kind with positive width and height; one serves every start.
    loss, method, param, maxiter, home_iou, **options
        As for `fit`, with ``method`` one of ``'gd'``, ``'momentum'``, ``'adam'``;
        ``lr`` may also be an array of one rate per start, shape (n,).
    callback : callable, optional
        ``callback(intermediate_result)`` after each step, with ``x`` and ``box``
        (n, 4), ``nit``, and ``running`` (n,), the boxes still moving; raise
        StopIteration to end the run of every box still running.
    workers : int
        Processes to spread the starts over; results do not depend on it.

    Returns
    -------
    OptimizeResult
        The fields of `fit`, each with a leading axis of length n: ``x``, ``box``
        (n, 4); ``fun``, ``nit``, ``nfev``, ``njev``, ``status``, ``success``,
        ``message``, ``outcome``, ``stalled`` (n,); ``settings``, as `fit` gives
        it; ``boxes`` (n, maxiter + 1, 4) and ``losses``, ``ious``, ``gious``, ``grad_norms`` (n, maxiter + 1), each
        box's steps first and NaN after its last step ``nit``: a box's final IoU is
        ``ious[i, nit[i]]``, all of them ``ious[np.arange(n), nit]``.

    Examples
    --------
    >>> result = fit_many([[2.0, 0.0, 3.0, 1.0], [0.5, 0.0, 1.5, 1.0]], [0.0, 0.0, 1.0, 1.0], loss="iou")
    >>> result.outcome.tolist(), result.nit.tolist()
    (['stalled', 'max_iterations'], [0, 200])
    """
    settings = resolve(loss, method, param, maxiter, home_iou, **options)
    kind = settings.kind
    starts = kind.check(starts, "start")
    if starts.ndim != 2:
        raise ValueError(f"fit_many takes starts of shape (n, {kind.size}); "
                         f"got shape {starts.shape}")
    targets = kind.check(targets, "target", positive_size=True)
    if targets.shape not in ((kind.size,), starts.shape):
        raise ValueError(f"targets must have shape ({kind.size},) or the starts' shape {starts.shape}; "
                         f"got shape {targets.shape}")
    if not settings.first_order:
        raise ValueError(f"fit_many runs the first-order methods ({', '.join(RULES)}) on many boxes at once; "
                         f"{settings.method!r} moves one box at a time: call fit(start, target, "
                         f"method={settings.method!r}) for each start")
    return run_first_order(starts, targets, settings, callback, workers)


def run_first_order(starts: FloatArray, targets: FloatArray, settings: Settings, callback: Callback | None = None,
                    workers: int = 1, one: bool = False) -> OptimizeResult:
    """`fit_many` from checked boxes and resolved `settings`: `descend`, then each box's message and outcome.

    The entry points (`fit`, `fit_many`, a sweep's cells) resolve the settings; this
    takes them as they are.
    """
    parameterisation, maxiter, gtol = settings.parameterisation, settings.maxiter, settings.gtol
    with np.errstate(all="ignore"):
        values = unchecked(settings.loss_function)(parameterisation.to_box(parameterisation.from_box(starts)),
                                                   targets)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = "" if len(starts) == 1 else f" {bad[0]}"
        raise ValueError(f"loss {settings.loss!r} is not finite at the start box{where} {starts[bad[0]].tolist()}")

    def engine_callback(intermediate_result: OptimizeResult) -> None:
        x = intermediate_result.x[0] if one else intermediate_result.x
        extra = {} if one else {"running": intermediate_result.running}
        # passed to the engine only when there is a callback
        cast(Callback, callback)(OptimizeResult(x=x, box=parameterisation.to_box(x), nit=intermediate_result.nit,
                                                **extra))

    with np.errstate(all="ignore"):  # a wild step may overflow; the outcome will say so
        run = descend(starts, targets, settings, record="history",
                      callback=None if callback is None else engine_callback, workers=workers,
                      chunk_size=len(starts) if callback is not None else None)
    last = run.nit
    index = np.arange(len(starts))
    final_loss = run.losses[index, last]
    run.stalled = (final_loss >= run.losses[:, 0]) & (run.grad_norms[:, 0] == 0.0)
    finite = np.isfinite(run.box).all(axis=-1) & np.isfinite(final_loss)
    home = run.ious[index, last] >= settings.home_iou
    run.message = np.array([_message(status, nit, gtol, largest, maxiter)
                            for status, nit, largest in zip(run.status, last, run.gradient_max)])
    run.outcome = np.array([
        _outcome(settings.method, OptimizeResult(status=status, success=status == 0, message=message), stalled, ok,
                 at_home)
        for status, message, stalled, ok, at_home in zip(run.status, run.message, run.stalled, finite, home)])
    run.update(fun=final_loss, njev=run.nfev, success=run.outcome == "converged")
    del run["gradient_max"], run["seconds"]
    run.settings = settings
    return run


def _message(status: int, nit: int, gtol: float | None, largest: float, maxiter: int) -> str:
    """The message of a first-order run, as scipy's methods word theirs."""
    if status == Status.CONVERGED:
        return f"Gradient below gtol={gtol}: max |g| = {largest:.3g}."
    if status == Status.MAX_ITERATIONS:
        return f"Maximum number of iterations ({maxiter}) reached."
    if status == Status.NON_FINITE:
        return f"Non-finite loss or gradient at iteration {nit}."
    return Status.STOPPED.message


def _one(run: OptimizeResult, i: int) -> OptimizeResult:
    """Box `i` of a `fit_many` result, as `fit` returns it: its steps only, scalars as Python's."""
    steps = int(run.nit[i]) + 1
    result = OptimizeResult()
    for key, value in run.items():
        if key == "settings":
            result[key] = value
            continue
        value = value[i]
        if key in ("boxes", "losses", "ious", "gious", "grad_norms"):
            value = value[:steps]
        elif np.ndim(value) == 0:
            value = value.item()
        result[key] = value
    result.status = Status(result.status)  # an int, as scipy's, shown by its name
    return result


def _scipy(method: str, objective: Callable[[Array], Values], x0: Array, maxiter: int,
           record: Callable[[Any], None], options: dict[str, Any]) -> OptimizeResult:
    needs = SCIPY_METHODS[method]
    supplied = {"jac": True} if "jac" in needs else {}
    if "hess" in needs:
        supplied["hess"] = hessian(objective)
    if "hessp" in needs:
        supplied["hessp"] = hessian_vector_product(objective)
    fun = value_and_grad(objective) if "jac" in needs else objective
    limit = {"maxfun": maxiter} if method == "TNC" else {"maxiter": maxiter}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Unknown solver options", category=OptimizeWarning)
        try:
            return minimize(fun, x0, method=method, callback=record, options={**limit, **options},
                            **supplied)
        except OptimizeWarning as warning:
            raise ValueError(f"method {method!r}: {warning}; see scipy.optimize.show_options"
                             f"('minimize', {method!r})") from None


def _with_trajectory(method: str, result: OptimizeResult, xs: FloatArray, target: FloatArray,
                     parameterisation: Parameterisation, loss_function: Loss, home_iou: float, kind: BoxKind
                     ) -> OptimizeResult:
    """Add the per-step record and the outcome to a run's result."""
    boxes = parameterisation.to_box(xs)

    def total_loss(xs: Array) -> Array:
        return anp.sum(loss_function(parameterisation.to_box(xs), target))

    losses: Array = loss_function(boxes, target)
    grad_norms = np.linalg.norm(grad(total_loss)(xs), axis=-1)  # rows are independent
    ious: Array = kind.iou(boxes, target)
    stalled = bool(losses[-1] >= losses[0] and grad_norms[0] == 0.0)
    finite = bool(np.all(np.isfinite(boxes[-1])) and np.isfinite(losses[-1]))
    result.update(
        boxes=boxes, losses=losses, ious=ious, gious=kind.giou(boxes, target),
        grad_norms=grad_norms, box=boxes[-1], fun=float(losses[-1]),
        nit=result.get("nit", len(xs) - 1), njev=result.get("njev", 0), stalled=stalled,
        outcome=_outcome(method, result, stalled, finite, home=ious[-1] >= home_iou))
    result.success = result.outcome == "converged"
    return result


def _outcome(method: str, result: OptimizeResult, stalled: bool, finite: bool, home: bool) -> str:
    """How a run ended, from the method's status code (`_STATUS_OUTCOMES`), else its message."""
    if stalled:
        return "stalled"
    if not finite:
        return "diverged"
    if result.status == 99:
        return "stopped"
    outcome = _STATUS_OUTCOMES.get(method, {}).get(result.status)
    if outcome is None and result.success:
        outcome = "converged"
    if outcome == "converged":
        return "converged" if home else "stuck"
    if outcome is not None:
        return outcome
    message = str(result.message).lower()
    for words, outcome in _MESSAGE_OUTCOMES:
        if any(word in message for word in words):
            return outcome
    return "failed"
