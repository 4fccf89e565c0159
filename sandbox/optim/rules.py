"""First-order rules, gradient descent, momentum and Adam, and learning-rate schedules.

A rule turns gradients into a direction, in the style of optax: ``init(x)`` makes
its state and ``update(g, state, t)`` returns ``(direction, new_state)``, elementwise,
so that x may hold one box's parameters or a (4, n) array of n boxes'. The engine,
`sandbox.optim.engine.descend`, steps ``x <- x - lr * schedule(t, maxiter) * weight * direction``,
the weight 1 or the DIoU paper's (2 - IoU). Everything is pure: arrays are never
modified in place.
"""
import inspect
import math
from collections import namedtuple

import numpy as np

from sandbox.geometry.names import canonical

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
OPTIONS = ("lr", "schedule", "iou_weighting", "gtol", "fused")
"""The options every rule takes in `sandbox.fit`; each rule adds its own (``beta``; ``b1``, ``b2``, ``eps``)."""


def get_rule(method, options=None):
    """The `Rule` of `method` (a name in `RULES`) with its own `options`; ValueError naming a bad one."""
    method = canonical(method, RULES, "first-order method")
    options = options or {}
    valid = list(inspect.signature(RULES[method]).parameters)
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise ValueError(f"method {method!r} takes no option(s) {', '.join(unknown)}; "
                         f"its options are {', '.join([*OPTIONS, *valid])}")
    return RULES[method](**options)


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
    """A schedule ``factor(t, maxiter)``: a callable, or a name in `SCHEDULES` (any case)."""
    if callable(schedule):
        return schedule
    return SCHEDULES[canonical(schedule, SCHEDULES, "schedule", "valid schedules are")]
