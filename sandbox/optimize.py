"""`fit`: move one predicted box toward one target box, and say honestly how the run ended.

Methods are the first-order rules of `sandbox.first_order` (``gd``, ``momentum``,
``adam``), run by the engine `sandbox.engine.descend`, and every
`scipy.optimize.minimize` method that runs without bounds or constraints.
Gradients, Hessians and Hessian-vector products all come from autograd, never
from finite differences. `fit_many` fits many starts at once with a first-order
method: one call, one result whose fields gain a leading axis.
"""
import warnings

import autograd.numpy as anp
import numpy as np
from autograd import grad, hessian, hessian_vector_product, value_and_grad
from scipy.optimize import OptimizeResult, OptimizeWarning, minimize

from .boxes import check_boxes
from .engine import descend
from .first_order import DEFAULT_LEARNING_RATES, OPTIONS, RULES  # noqa: F401 (stall_vs_converge imports the defaults from here)
from .losses import get_loss, giou, iou, unchecked
from .parameterisations import get_parameterisation

SCIPY_METHODS = {
    # method: what autograd supplies to it
    "Nelder-Mead": (), "Powell": (), "COBYLA": (), "COBYQA": (),
    "CG": ("jac",), "BFGS": ("jac",), "L-BFGS-B": ("jac",), "TNC": ("jac",), "SLSQP": ("jac",),
    "Newton-CG": ("jac", "hessp"), "trust-ncg": ("jac", "hessp"), "trust-krylov": ("jac", "hessp"),
    "trust-exact": ("jac", "hess"), "dogleg": ("jac", "hess"), "trust-constr": ("jac", "hess"),
}
METHODS = (*RULES, *SCIPY_METHODS)
GRADIENT_METHODS = tuple(m for m in METHODS if m in RULES or "jac" in SCIPY_METHODS[m])

HOME_IOU = 0.99
"""A box with at least this IoU with the target is home: `fit` calls a run converged only there."""

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
_MESSAGE_OUTCOMES = [  # words in a method's message (lower case) -> outcome
    (("line search", "linear search", "linesearch", "lnsrch", "abnormal", "stp = stp",
      "precision loss", "directional derivative"), "line_search_failed"),
    (("maximum number", "max. number", "iteration limit", "iterations reached", "exceed", "maxfun"),
     "max_iterations"),
]


def get_method(name):
    """The canonical spelling of a method name (any case); ValueError listing the valid ones."""
    for method in METHODS:
        if method.lower() == str(name).lower():
            return method
    raise ValueError(f"unknown method {name!r}; valid methods are {', '.join(METHODS)}")


def fit(start, target, loss="giou", method="gd", param="xyxy", maxiter=200, callback=None,
        home_iou=HOME_IOU, **options):
    """Fit one predicted box to one target box by minimising `loss`.

    Parameters
    ----------
    start, target : array_like, shape (4,)
        ``xyxy`` boxes. The start may be inverted or empty; the target needs
        positive width and height.
    loss : str or callable
        A name in `sandbox.LOSSES`, optionally with parameters
        (``'l1:coords=cxcywh'``), or a function ``loss(pred, target)``.
    method : str
        ``'gd'``, ``'momentum'``, ``'adam'`` or a `scipy.optimize.minimize` method.
    param : str
        What the optimiser moves: a name in `sandbox.PARAMETERISATIONS`.
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
        max |gradient| <= gtol; default 1e-5), ``fused`` (for iou, giou, diou and
        ciou, the hand-derived kernels of `sandbox.fused`, about three times
        faster per step; their gradients agree with autograd's to about 1e-16,
        which a box zigzagging across a kink can amplify over many steps;
        default False), and the rule's own: ``beta`` for momentum, ``b1``,
        ``b2``, ``eps`` for Adam. For scipy methods, the method's ``options``.
        The first-order methods run on the engine `sandbox.engine.descend`,
        exactly as the same start would in a batch of `fit_many`.

    Returns
    -------
    OptimizeResult
        scipy's fields ``x`` (final parameters), ``fun``, ``nit``, ``nfev``,
        ``njev``, ``status``, ``message`` (the method's own) and ``success``,
        which is True only for the outcome ``'converged'``: the method's own
        test passed and the box is home; then

        - ``boxes`` : ndarray, shape (steps + 1, 4), ``xyxy``, the start first;
        - ``losses``, ``ious``, ``gious``, ``grad_norms`` : ndarray, shape
          (steps + 1,), at each box (the gradient's Euclidean norm with respect
          to the parameters);
        - ``box`` : the final box, ``boxes[-1]``;
        - ``outcome`` : one of `OUTCOMES`; ``stalled`` : bool.

    Examples
    --------
    >>> result = fit([2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0], loss="iou")
    >>> result.outcome, float(result.ious[-1])
    ('stalled', 0.0)
    """
    start = check_boxes(start, "start")
    target = check_boxes(target, "target", positive_size=True)
    for name, box in [("start", start), ("target", target)]:
        if box.shape != (4,):
            raise ValueError(f"fit takes one {name} box of shape (4,); got shape {box.shape}")
    if not (isinstance(maxiter, (int, np.integer)) and maxiter >= 1):
        raise ValueError(f"maxiter must be a whole number >= 1; got {maxiter!r}")
    loss_function = unchecked(get_loss(loss))
    parameterisation = get_parameterisation(param)
    method = get_method(method)
    x0 = parameterisation.from_box(start)

    if method in RULES:
        run = _first_order(start[None], target, loss, method, param, maxiter, callback, home_iou, options, one=True)
        return _one(run, 0)

    def objective(x):
        return loss_function(parameterisation.to_box(x), target)

    if not np.isfinite(objective(x0)):
        raise ValueError(f"loss {loss!r} is not finite at the start box {start.tolist()}")
    xs = [x0]

    def record(intermediate_result):
        x = np.array(getattr(intermediate_result, "x", intermediate_result), dtype=float)
        xs.append(x)
        if callback is not None:
            callback(OptimizeResult(x=x, box=parameterisation.to_box(x), nit=len(xs) - 1))

    with np.errstate(all="ignore"):  # a wild trial step may overflow; the outcome will say so
        result = _scipy(method, objective, x0, maxiter, record, options)
        if not np.array_equal(result.x, xs[-1]):
            xs.append(np.asarray(result.x, dtype=float))
        return _with_trajectory(result, np.array(xs), target, parameterisation, loss_function, home_iou)


def fit_many(starts, targets, loss="giou", method="gd", param="xyxy", maxiter=200, callback=None,
             home_iou=HOME_IOU, workers=1, **options):
    """Fit many start boxes, each to its own target, at once with a first-order method.

    The batched `fit`: the same arguments and options, each box run exactly as `fit`
    runs it alone (bit for bit: no box's result depends on the others), and one
    result whose fields gain a leading axis. The scipy methods move one box at a
    time: call `fit` for each start.

    Parameters
    ----------
    starts : array_like, shape (n, 4)
        ``xyxy`` start boxes.
    targets : array_like, shape (n, 4) or (4,)
        ``xyxy`` targets with positive width and height; one of shape (4,) serves every start.
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
        ``message``, ``outcome``, ``stalled`` (n,); ``boxes`` (n, maxiter + 1, 4)
        and ``losses``, ``ious``, ``gious``, ``grad_norms`` (n, maxiter + 1), each
        box's steps first and NaN after its last step ``nit``.

    Examples
    --------
    >>> result = fit_many([[2.0, 0.0, 3.0, 1.0], [0.5, 0.0, 1.5, 1.0]], [0.0, 0.0, 1.0, 1.0], loss="iou")
    >>> result.outcome.tolist(), result.nit.tolist()
    (['stalled', 'max_iterations'], [0, 200])
    """
    starts = check_boxes(starts, "start")
    if starts.ndim != 2:
        raise ValueError(f"fit_many takes starts of shape (n, 4); got shape {starts.shape}")
    targets = check_boxes(targets, "target", positive_size=True)
    if targets.shape not in ((4,), starts.shape):
        raise ValueError(f"targets must have shape (4,) or the starts' shape {starts.shape}; "
                         f"got shape {targets.shape}")
    method = get_method(method)
    if method not in RULES:
        raise ValueError(f"fit_many runs the first-order methods ({', '.join(RULES)}) on many boxes at once; "
                         f"{method!r} moves one box at a time: call fit(start, target, method={method!r}) "
                         f"for each start")
    return _first_order(starts, targets, loss, method, param, maxiter, callback, home_iou, options, workers)


def _first_order(starts, targets, loss, method, param, maxiter, callback, home_iou, options, workers=1, one=False):
    """Run `descend` on checked boxes with `fit`'s options; add messages and outcomes per box."""
    if not (isinstance(maxiter, (int, np.integer)) and maxiter >= 1):
        raise ValueError(f"maxiter must be a whole number >= 1; got {maxiter!r}")
    parameterisation = get_parameterisation(param)
    loss_function = get_loss(loss)
    with np.errstate(all="ignore"):
        values = unchecked(loss_function)(parameterisation.to_box(parameterisation.from_box(starts)), targets)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = "" if len(starts) == 1 else f" {bad[0]}"
        raise ValueError(f"loss {loss!r} is not finite at the start box{where} {starts[bad[0]].tolist()}")
    settings = {key: options[key] for key in OPTIONS if key in options}
    rule_options = {key: value for key, value in options.items() if key not in OPTIONS}
    gtol, fused = settings.pop("gtol", 1e-5), settings.pop("fused", False)

    def engine_callback(intermediate_result):
        x = intermediate_result.x[0] if one else intermediate_result.x
        extra = {} if one else {"running": intermediate_result.running}
        callback(OptimizeResult(x=x, box=parameterisation.to_box(x), nit=intermediate_result.nit, **extra))

    with np.errstate(all="ignore"):  # a wild step may overflow; the outcome will say so
        run = descend(starts, targets, loss=loss, method=method, param=param, maxiter=maxiter, gtol=gtol,
                      fused=fused, record="history", callback=None if callback is None else engine_callback,
                      workers=workers,
                      chunk_size=len(starts) if callback is not None else None, **settings, **rule_options)
    last = run.nit
    index = np.arange(len(starts))
    final_loss = run.losses[index, last]
    run.stalled = (final_loss >= run.losses[:, 0]) & (run.grad_norms[:, 0] == 0.0)
    finite = np.isfinite(run.box).all(axis=-1) & np.isfinite(final_loss)
    home = run.ious[index, last] >= home_iou
    run.message = np.array([_message(status, nit, gtol, largest, maxiter)
                            for status, nit, largest in zip(run.status, last, run.gradient_max)])
    run.outcome = np.array([_outcome(status, status == 0, message, stalled, ok, at_home) for
                            status, message, stalled, ok, at_home in
                            zip(run.status, run.message, run.stalled, finite, home)])
    run.update(fun=final_loss, njev=run.nfev, success=run.outcome == "converged")
    del run["gradient_max"], run["seconds"]
    return run


def _message(status, nit, gtol, largest, maxiter):
    """The message of a first-order run, as scipy's methods word theirs."""
    if status == 0:
        return f"Gradient below gtol={gtol}: max |g| = {largest:.3g}."
    if status == 1:
        return f"Maximum number of iterations ({maxiter}) reached."
    if status == 3:
        return f"Non-finite loss or gradient at iteration {nit}."
    return "`callback` raised `StopIteration`."


def _one(run, i):
    """Box `i` of a `fit_many` result, as `fit` returns it: its steps only, scalars as Python's."""
    steps = int(run.nit[i]) + 1
    result = OptimizeResult()
    for key, value in run.items():
        value = value[i]
        if key in ("boxes", "losses", "ious", "gious", "grad_norms"):
            value = value[:steps]
        elif np.ndim(value) == 0:
            value = value.item()
        result[key] = value
    return result


def _scipy(method, objective, x0, maxiter, record, options):
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


def _with_trajectory(result, xs, target, parameterisation, loss_function, home_iou):
    """Add the per-step record and the outcome to a run's result."""
    boxes = parameterisation.to_box(xs)

    def total_loss(xs):
        return anp.sum(loss_function(parameterisation.to_box(xs), target))

    losses = loss_function(boxes, target)
    grad_norms = np.linalg.norm(grad(total_loss)(xs), axis=-1)  # rows are independent
    ious = unchecked(iou)(boxes, target)
    stalled = bool(losses[-1] >= losses[0] and grad_norms[0] == 0.0)
    finite = bool(np.all(np.isfinite(boxes[-1])) and np.isfinite(losses[-1]))
    result.update(
        boxes=boxes, losses=losses, ious=ious, gious=unchecked(giou)(boxes, target),
        grad_norms=grad_norms, box=boxes[-1], fun=float(losses[-1]),
        nit=result.get("nit", len(xs) - 1), njev=result.get("njev", 0), stalled=stalled,
        outcome=_outcome(result.status, result.success, result.message, stalled, finite,
                         home=ious[-1] >= home_iou))
    result.success = result.outcome == "converged"
    return result


def _outcome(status, success, message, stalled, finite, home):
    """One of `OUTCOMES`, from the method's status, success and message and the run's record."""
    if stalled:
        return "stalled"
    if not finite:
        return "diverged"
    if status == 99:
        return "stopped"
    if success:
        return "converged" if home else "stuck"
    message = str(message).lower()
    for words, outcome in _MESSAGE_OUTCOMES:
        if any(word in message for word in words):
            return outcome
    return "failed"
