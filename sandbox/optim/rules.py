"""The one update rule: small composable pieces in the manner of optax, and the run status.

A piece is a `Transform`: ``init(params)`` makes its state, and
``update(step, state, t, iou)`` returns ``(step, new_state)``. A `Step` is the
update a piece hands on: a ``direction`` and a ``scale``; the parameters then move
``params - step.scale * step.direction``. The direction pieces (`gd`, `momentum`,
`adam`) turn the gradient into a direction; the scaling pieces (`scale`,
`scale_by_schedule`, `scale_by_iou`, the DIoU paper's 2 - IoU) multiply the scale.
`chain` runs pieces in order, as ``optax.chain`` does. Keeping the scale apart from
the direction until the end makes a step ``params - (lr * schedule * weight) *
direction``, one rounding of the factors, whatever pieces make it.

Everything is elementwise and pure, so that params may hold one box's parameters, a
(4, n) array of n boxes' (`sandbox.optim.engine`), or a network's flattened weights
(`sandbox.learning.training`): both build their rule with `first_order`, so Adam is
written once. `stops` is the per-box stopping test the engine applies after every
gradient, and `Status` names how each box's run ended.
"""
from __future__ import annotations

import enum
import inspect
import math
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Protocol, Sequence, TypeAlias, Union, cast

import numpy as np

from sandbox._types import Array, BoolArray, FloatArray, Values

Schedule: TypeAlias = Callable[[int, int], float]
"""A schedule: ``factor(t, maxiter)``, the factor of the base rate at step t of maxiter."""
Rate: TypeAlias = Union[float, FloatArray]
"""A base learning rate: one, or one per box."""
State: TypeAlias = Any
"""A piece's state: None, an array like the parameters, or a tuple of them (a chain's, Adam's)."""


class Step(NamedTuple):
    """The update so far: the parameters move by ``-scale * direction``."""

    direction: Array
    scale: Union[float, Array]


class Update(Protocol):
    """A piece's ``update(step, state, t, iou=None) -> (step, state)``; `iou` is each box's IoU, or None."""

    def __call__(self, step: Step, state: State, t: int, iou: Values | None = None, /) -> tuple[Step, State]: ...


class Transform(NamedTuple):
    """A piece of an update rule: ``init(params) -> state``, ``update(step, state, t, iou) -> (step, state)``."""

    init: Callable[[Array], State]
    update: Update




def gd() -> Transform:
    """Gradient descent: the direction is the gradient."""
    return Transform(lambda params: None, lambda step, state, t, iou=None: (step, state))


def momentum(beta: float = 0.9) -> Transform:
    """Heavy-ball momentum: v <- beta v + g, direction v."""
    if not 0 <= beta < 1:
        raise ValueError(f"momentum needs beta in [0, 1); got {beta!r}")

    def update(step: Step, velocity: Array, t: int, iou: Values | None = None) -> tuple[Step, Array]:
        velocity = beta * velocity + step.direction
        return step._replace(direction=velocity), velocity
    return Transform(np.zeros_like, update)


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    """Adam (Kingma and Ba, 2015, Algorithm 1) with bias correction; t counts from 0."""
    def update(step: Step, state: tuple[Array, Array], t: int, iou: Values | None = None
               ) -> tuple[Step, tuple[Array, Array]]:
        m, v = state
        g = step.direction
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        return step._replace(direction=m_hat / (np.sqrt(v_hat) + eps)), (m, v)
    return Transform(lambda params: (np.zeros_like(params), np.zeros_like(params)), update)


def scale(rate: Rate) -> Transform:
    """Times the base learning rate `rate` (a number, or one per box)."""
    return Transform(lambda params: None, lambda step, state, t, iou=None: (step._replace(scale=step.scale * rate),
                                                                              state))


def scale_by_schedule(schedule: Schedule, maxiter: int) -> Transform:
    """Times ``schedule(t, maxiter)``: a factor of `SCHEDULES` over `maxiter` steps."""
    def update(step: Step, state: None, t: int, iou: Values | None = None) -> tuple[Step, None]:
        return step._replace(scale=step.scale * schedule(t, maxiter)), state
    return Transform(lambda params: None, update)


def scale_by_iou() -> Transform:
    """Times (2 - IoU) of each box, as the DIoU paper's simulation weights its steps."""
    def update(step: Step, state: None, t: int, iou: Values | None = None) -> tuple[Step, None]:
        # the caller passes the IoU whenever this piece is in its rule (iou_weighting)
        return step._replace(scale=step.scale * (2.0 - cast(Values, iou))), state
    return Transform(lambda params: None, update)


def chain(*pieces: Transform) -> Transform:
    """One `Transform` that runs `pieces` in order; its state is theirs, as a tuple."""
    def init(params: Array) -> tuple[State, ...]:
        return tuple(piece.init(params) for piece in pieces)

    def update(step: Step, states: tuple[State, ...], t: int, iou: Values | None = None
               ) -> tuple[Step, tuple[State, ...]]:
        new_states: list[State] = []
        for piece, state in zip(pieces, states):
            step, state = piece.update(step, state, t, iou)
            new_states.append(state)
        return step, tuple(new_states)
    return Transform(init, update)


def apply(params: Array, gradient: Array, rule: Transform, state: State, t: int, iou: Values | None = None
          ) -> tuple[Array, State]:
    """One step of `rule` from the gradient: ``(new params, new state)``."""
    step, state = rule.update(Step(gradient, 1.0), state, t, iou)
    return params - step.scale * step.direction, state


RULES = {"gd": gd, "momentum": momentum, "adam": adam}
DEFAULT_LEARNING_RATES = {"gd": 0.3, "momentum": 0.03, "adam": 0.1}
"""Each rule's base rate when none is given: tuned on the README's single-box runs."""


def rule_parameters(method: str) -> list[str]:
    """The options of the rule `method` (a name in `RULES`): ``beta``; ``b1``, ``b2``, ``eps``."""
    return list(inspect.signature(RULES[method]).parameters)


def first_order(method: str, lr: Rate, schedule: Schedule, maxiter: int, iou_weighting: bool = False,
                options: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> Transform:
    """The whole rule of a first-order run: `method`'s direction, then lr, the schedule and (2 - IoU).

    `method` is a name in `RULES` in its own spelling and `schedule` a factor
    ``schedule(t, maxiter)``: both resolved by the caller (`sandbox.optim.settings`).
    """
    pieces = [RULES[method](**dict(options)), scale(lr), scale_by_schedule(schedule, maxiter)]
    if iou_weighting:
        pieces.append(scale_by_iou())
    return chain(*pieces)


def not_applicable(settings: Sequence[str], methods: Iterable[str]) -> str | None:
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


def step_decay(t: int, maxiter: int, milestones: Sequence[float] = (0.8, 0.9), gamma: float = 0.1) -> float:
    """Factor 1, then times `gamma` at each milestone (a share of `maxiter`).

    The defaults are the DIoU paper's: 0.1 / 0.01 / 0.001 of a base rate 0.1, with
    the drops at 80 % and 90 % of the iterations.
    """
    return gamma ** sum(t >= m * maxiter for m in milestones)


def cosine_decay(t: int, maxiter: int) -> float:
    """Factor falling from 1 toward 0 along half a cosine over `maxiter` steps."""
    return 0.5 * (1 + math.cos(math.pi * t / maxiter))


def constant(t: int, maxiter: int) -> float:
    """Factor 1 at every step."""
    return 1.0


SCHEDULES = {"constant": constant, "step": step_decay, "cosine": cosine_decay}


class Status(enum.IntEnum):
    """How a box's first-order run ended; the codes are scipy's where scipy has one."""
    CONVERGED = 0
    """max |gradient| <= gtol."""
    MAX_ITERATIONS = 1
    """The iteration budget ran out."""
    NON_FINITE = 3
    """The loss or the gradient was not finite."""
    STOPPED = 99
    """The callback raised StopIteration."""

    @property
    def message(self) -> str:
        return {0: "Gradient below gtol.", 1: "Maximum number of iterations reached.",
                3: "Non-finite loss or gradient.", 99: "`callback` raised `StopIteration`."}[self.value]


def stops(value: Values | None, g: Array, gtol: float | None, finite: bool
          ) -> tuple[BoolArray, BoolArray, FloatArray] | tuple[None, None, None]:
    """Which boxes stop at this gradient, which of them because of a non-finite value, and max |g|.

    `g` has one column per box; `value` is each box's loss (or None). Returns
    (None, None, None) when none stops: without `gtol`, where the caller knows
    every value is `finite`, that costs nothing.
    """
    if gtol is None and finite:
        return None, None, None
    largest = np.abs(g).max(axis=0)  # NaN or infinite where the gradient is
    failed = ~np.isfinite(largest)
    if value is not None:
        failed = failed | ~np.isfinite(value)
    stopping = failed if gtol is None else failed | (largest <= gtol)
    return (stopping, failed, largest) if stopping.any() else (None, None, None)
