"""Plain first-order loops: gradient descent, momentum and Adam, with learning-rate schedules.

A rule turns gradients into a direction, in the style of optax: ``init(x)`` makes
its state and ``update(g, state, t)`` returns ``(direction, new_state)``; the loop
`minimize_first_order` steps ``x <- x - lr * schedule(t, maxiter) * weight(x) * direction``.
The weight is 1, or (2 - IoU) for the DIoU paper's step weighting. Everything is
pure: arrays are never modified in place.
"""
import math
from collections import namedtuple

import numpy as np
from scipy.optimize import OptimizeResult

Rule = namedtuple("Rule", "init update")


def gd():
    """Gradient descent: the direction is the gradient."""
    return Rule(lambda x: None, lambda g, state, t: (g, state))


def momentum(beta=0.9):
    """Heavy-ball momentum: v <- beta v + g, direction v."""
    def update(g, velocity, t):
        velocity = beta * velocity + g
        return velocity, velocity
    return Rule(np.zeros_like, update)


def adam(b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Kingma and Ba, 2015) with bias correction."""
    def update(g, state, t):
        m, v = state
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        return m_hat / (np.sqrt(v_hat) + eps), (m, v)
    return Rule(lambda x: (np.zeros_like(x), np.zeros_like(x)), update)


RULES = {"gd": gd, "momentum": momentum, "adam": adam}
DEFAULT_LEARNING_RATES = {"gd": 0.3, "momentum": 0.03, "adam": 0.1}


def not_applicable(settings, methods):
    """A note that the first-order `settings` given do not apply to some of `methods`, or None.

    >>> not_applicable(["lr"], ["gd", "BFGS"])
    'lr applies to gd, momentum, adam only: BFGS runs without it'
    """
    others = [method for method in methods if method not in RULES]
    if not (settings and others):
        return None
    several = len(settings) > 1
    return (f"{' and '.join(settings)} appl{'y' if several else 'ies'} to {', '.join(RULES)} only: "
            f"{', '.join(others)} run{'' if len(others) > 1 else 's'} without {'them' if several else 'it'}")


def step_decay(t, maxiter, milestones=(0.8, 0.9), gamma=0.1):
    """Factor 1, then times `gamma` at each milestone (a share of `maxiter`).

    The defaults are the DIoU paper's: 0.1 / 0.01 / 0.001 of a base rate 0.1, with
    the drops at 80 % and 90 % of the iterations.
    """
    return gamma ** sum(t >= m * maxiter for m in milestones)


def cosine_decay(t, maxiter):
    """Factor falling from 1 toward 0 along half a cosine over `maxiter` steps."""
    return 0.5 * (1 + math.cos(math.pi * t / maxiter))


SCHEDULES = {"constant": lambda t, maxiter: 1.0, "step": step_decay, "cosine": cosine_decay}


def get_schedule(schedule):
    """A schedule ``factor(t, maxiter)``: a callable, or a name in `SCHEDULES`."""
    if callable(schedule):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid schedules are {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule]


def minimize_first_order(value_and_grad, x0, rule, lr, schedule="step", maxiter=200,
                         weight=None, gtol=1e-5, callback=None):
    """Minimise with a first-order rule; stop when max |gradient| <= `gtol` or after `maxiter` steps.

    Parameters
    ----------
    value_and_grad : callable
        ``x -> (f, g)``, for instance ``autograd.value_and_grad(f)``.
    x0 : ndarray, shape (n,)
    rule : Rule
    lr : float
        Base learning rate, multiplied by ``schedule(t, maxiter)`` at step t.
    weight : callable, optional
        ``x -> factor`` for the step at x, as the DIoU paper's (2 - IoU).
    callback : callable, optional
        Called as ``callback(intermediate_result)`` after each step with an
        `OptimizeResult` holding the new ``x``, ``fun`` at the point stepped
        from, and ``nit``; raising StopIteration ends the run.

    Returns
    -------
    OptimizeResult
        ``x, nit, nfev, njev, success, status, message`` and ``xs``, every
        iterate from `x0` on, shape ``(nit + 1, n)``. Status 0: gradient below
        `gtol`; 1: `maxiter` reached; 3: non-finite loss or gradient; 99: the
        callback raised StopIteration.
    """
    schedule = get_schedule(schedule)
    x = np.asarray(x0, dtype=float)
    state, xs, evaluations = rule.init(x), [x], 0
    status, message = 1, f"Maximum number of iterations ({maxiter}) reached."
    for t in range(maxiter):
        f, g = value_and_grad(x)
        evaluations += 1
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            status, message = 3, f"Non-finite loss or gradient at iteration {t}."
            break
        if np.max(np.abs(g)) <= gtol:
            status, message = 0, f"Gradient below gtol={gtol}: max |g| = {np.max(np.abs(g)):.3g}."
            break
        direction, state = rule.update(g, state, t)
        factor = lr * schedule(t, maxiter) * (1.0 if weight is None else weight(x))
        x = x - factor * direction
        xs.append(x)
        if callback is not None:
            try:
                callback(OptimizeResult(x=x, fun=f, nit=t + 1))
            except StopIteration:
                status, message = 99, "`callback` raised `StopIteration`."
                break
    return OptimizeResult(x=x, nit=len(xs) - 1, nfev=evaluations, njev=evaluations,
                          status=status, success=status == 0, message=message, xs=np.array(xs))
