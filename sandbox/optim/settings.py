"""A run's settings, resolved once at its entry point into one frozen, checked object.

`fit`, `fit_many`, `regress` and the sweeps each call `resolve` (or, for a sweep
file, the per-field rules below, through `resolve` too) before any work. What they
get is a `Settings`: the loss spec in its canonical spelling, the method, the
parameterisation, the update rule's options, the schedule, the rate, the iteration
budget, the gradient backend and the stopping thresholds, each checked and each
default applied. Everything below the entry point (`sandbox.optim.engine.descend`,
the workers) takes the object as it is: no name is parsed and no default applied
again. `Settings.record` is what a run writes to its records.

The gradient backend is one option everywhere, ``gradient``: ``'autograd'`` (the
default: autograd through the loss's own operations) or ``'fused'`` (the
hand-derived kernels of `sandbox.losses.fused`, about three times faster per step,
for the registry losses; other specs, the oriented losses among them, run through
autograd). An experiment that
needs the speed names ``'fused'`` and records it. A function
``gradient(theta, target) -> (g, iou)`` replaces the gradient altogether: only to
replay a published implementation (`sandbox.losses.diou_reference`).

The loss decides the kind of box a run moves (`sandbox.losses.kinds`): an oriented
loss (`sandbox.losses.oriented.ORIENTED_LOSSES`) moves oriented boxes (cx, cy, w, h,
theta) by the parameterisation ``'xywha'``, its default; every other loss moves
``xyxy`` boxes. A parameterisation of the other kind is refused here.
"""
import dataclasses
import functools
from typing import Any, Callable, Optional, TypeAlias, Union, cast, overload

import numpy as np

from sandbox._types import FloatArray, Loss, Values
from sandbox.geometry.boxes import Coordinates
from sandbox.geometry.names import canonical
from sandbox.geometry.parameterisations import EVERY_PARAMETERISATION, Parameterisation
from sandbox.losses.kinds import BoxKind
from sandbox.losses.spec import canonical_loss, function_kind, get_loss, parse_loss
from sandbox.optim.rules import DEFAULT_LEARNING_RATES, RULES, SCHEDULES, Rate, Schedule, rule_parameters

GRADIENTS = ("autograd", "fused")
"""The gradient backends: autograd op by op (the default everywhere), or the fused kernels."""
HOME_IOU = 0.99
"""A box with at least this IoU with the target is home: a run is called converged only there."""
SCIPY_METHODS = {
    # method: what autograd supplies to it
    "Nelder-Mead": (), "Powell": (), "COBYLA": (), "COBYQA": (),
    "CG": ("jac",), "BFGS": ("jac",), "L-BFGS-B": ("jac",), "TNC": ("jac",), "SLSQP": ("jac",),
    "Newton-CG": ("jac", "hessp"), "trust-ncg": ("jac", "hessp"), "trust-krylov": ("jac", "hessp"),
    "trust-exact": ("jac", "hess"), "dogleg": ("jac", "hess"), "trust-constr": ("jac", "hess"),
}
"""The `scipy.optimize.minimize` methods that run without bounds or constraints, and what autograd gives them."""
METHODS = (*RULES, *SCIPY_METHODS)
FIRST_ORDER_OPTIONS = ("lr", "schedule", "iou_weighting", "gtol", "gradient", "reference_gradient")
"""The options every first-order rule takes; each rule adds its own (``beta``; ``b1``, ``b2``, ``eps``)."""
SIZE_PARAMETERS = {"cxcywh": (2, 3), "xywh": (2, 3), "log": (2, 3)}
"""The parameters that are a width and a height, which the DIoU authors' reference gradient doubles."""

Spec: TypeAlias = Union[str, Loss]
"""A loss spec: a name with parameters, a weighted sum, ``package.module:function`` (all str), or a function."""
GradientFunction: TypeAlias = Callable[[FloatArray, Coordinates], tuple[FloatArray, Values]]
"""A replacement gradient ``gradient(theta, target) -> (g, iou)``: parameters theta (4, m), target corners."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, resolved: build it with `resolve`, never by hand.

    Attributes
    ----------
    loss : str or callable
        The loss spec in its canonical spelling (`sandbox.canonical_loss`), or a function.
    method : str
        A first-order rule of `sandbox.optim.rules.RULES` or a scipy method, as spelled in `METHODS`.
    param : str
        The parameterisation the optimiser moves (`sandbox.PARAMETERISATIONS`, or ``'xywha'`` for oriented boxes).
    maxiter : int
        The iteration budget (>= 1), and the length of the schedule.
    lr : float or ndarray or None
        The base learning rate, one or one per box; None for the scipy methods.
    schedule : str or callable
        A name in `sandbox.SCHEDULES` or ``factor(t, maxiter)``.
    options : tuple of (str, value)
        The rule's own options (``beta``; ``b1``, ``b2``, ``eps``), or the scipy method's.
    iou_weighting : bool
        Each step times (2 - IoU), as the DIoU paper does.
    gtol : float or None
        A first-order run stops when max |gradient| <= gtol; None: never.
    home_iou : float
        The IoU with the target at which a run that converged is called ``'converged'``.
    gradient : str or callable
        ``'autograd'`` or ``'fused'`` (`GRADIENTS`), or a function that replaces the gradient.
    reference_gradient : bool
        Double the width and height components of the gradient, as the DIoU authors' code does.
    """
    loss: Spec = "giou"
    method: str = "gd"
    param: str = "xyxy"
    maxiter: int = 200
    lr: Optional[Rate] = None
    schedule: Union[str, Schedule] = "step"
    options: tuple[tuple[str, Any], ...] = ()
    iou_weighting: bool = False
    gtol: Optional[float] = 1e-5
    home_iou: float = HOME_IOU
    gradient: Union[str, GradientFunction] = "autograd"
    reference_gradient: bool = False

    @property
    def first_order(self) -> bool:
        """Whether the method is a first-order rule run by the engine (else a scipy method)."""
        return self.method in RULES

    @functools.cached_property
    def loss_function(self) -> Loss:
        """The loss function, built once per process from the canonical spec."""
        return get_loss(self.loss)

    @property
    def kind(self) -> BoxKind:
        """The kind of box the loss measures and the run moves (`sandbox.losses.kinds`)."""
        return function_kind(self.loss_function)

    @property
    def parameterisation(self) -> Parameterisation:
        return EVERY_PARAMETERISATION[self.param]

    def schedule_factor(self) -> Schedule:
        return self.schedule if callable(self.schedule) else SCHEDULES[self.schedule]

    def record(self) -> dict[str, Any]:
        """The settings as a run's records hold them: plain values, a function by its name."""
        def plain(value: object) -> object:
            if callable(value):
                return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
            if isinstance(value, np.ndarray):
                return value.tolist()
            return value
        return {field.name: (dict(self.options) if field.name == "options" else plain(getattr(self, field.name)))
                for field in dataclasses.fields(self)}

    def __getstate__(self) -> dict[str, Any]:  # the built loss function stays behind: each process builds its own
        return {key: value for key, value in vars(self).items() if key != "loss_function"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)


def resolve(loss: Spec = "giou", method: str = "gd", param: str | None = None, maxiter: int = 200,
            home_iou: float = HOME_IOU, aligned_param: str = "xyxy", **options: Any) -> Settings:
    """Check every setting of a run and apply every default, once; ValueError naming the first bad one.

    Parameters
    ----------
    loss, method, param, maxiter, home_iou
        As `sandbox.fit` takes them; `param` None moves the loss's kind of box by its default
        parameterisation: `aligned_param` for an axis-aligned loss (``'xyxy'``, as `sandbox.fit`;
        `sandbox.regress` gives ``'cxcywh'``), ``'xywha'`` for an oriented one.
    **options
        For a first-order method: `FIRST_ORDER_OPTIONS` and the rule's own; for a scipy
        method, its ``options``.

    Examples
    --------
    >>> settings = resolve("GIoU", "Adam", maxiter=50)
    >>> settings.loss, settings.method, settings.lr, settings.gradient
    ('giou', 'adam', 0.1, 'autograd')
    """
    method = method_name(method)
    loss, function = parse_loss(loss)  # the spec's one reading: its spelling and its function
    kind = function_kind(function)
    if param is None:
        param = aligned_param if kind.name == "aligned" else kind.default_param
    param = param_name(param)
    if EVERY_PARAMETERISATION[param].size != kind.size:
        moves = "oriented" if EVERY_PARAMETERISATION[param].size == 5 else "axis-aligned"
        matching = ", ".join(name for name, p in EVERY_PARAMETERISATION.items() if p.size == kind.size)
        measures = "oriented" if kind.size == 5 else "axis-aligned"
        raise ValueError(f"parameterisation {param!r} moves {moves} boxes, and loss {loss!r} measures {measures} "
                         f"ones: use one of {matching}")
    settings: dict[str, Any] = dict(loss=loss, method=method, param=param,
                                    maxiter=whole(maxiter, "maxiter"), home_iou=_share(home_iou, "home_iou"))
    if method not in RULES:
        if "gradient" in options and options["gradient"] != "autograd":
            raise ValueError(f"gradient={options['gradient']!r} applies to the first-order methods "
                             f"({', '.join(RULES)}) only: scipy's methods get autograd's")
        options.pop("gradient", None)
        return _with_function(Settings(**settings, options=tuple(options.items()), lr=None, gtol=None), function)
    own = {key: options.pop(key) for key in list(options) if key not in FIRST_ORDER_OPTIONS}
    valid = rule_parameters(method)
    unknown = [key for key in own if key not in valid]
    if unknown:
        raise ValueError(f"method {method!r} takes no option(s) {', '.join(unknown)}; "
                         f"its options are {', '.join([*FIRST_ORDER_OPTIONS, *valid])}")
    RULES[method](**own)  # the rule checks its own values
    gtol = options.get("gtol", 1e-5)
    if gtol is not None and not (isinstance(gtol, (int, float)) and not isinstance(gtol, bool) and gtol >= 0):
        raise ValueError(f"gtol must be a number >= 0, or None to never stop on the gradient; got {gtol!r}")
    reference = bool(options.get("reference_gradient", False))
    if reference and settings["param"] not in SIZE_PARAMETERS:
        raise ValueError(f"the reference gradient doubles the width and height components; parameterisation "
                         f"{settings['param']!r} has none (use one of {', '.join(SIZE_PARAMETERS)})")
    return _with_function(Settings(
        **settings, lr=learning_rate(options.get("lr"), method),
        schedule=schedule_name(options.get("schedule", "step")),
        options=tuple(own.items()), iou_weighting=bool(options.get("iou_weighting", False)),
        gtol=None if gtol is None else float(gtol), gradient=gradient_backend(options.get("gradient", "autograd")),
        reference_gradient=reference), function)


def _with_function(settings: Settings, function: Loss) -> Settings:
    """`settings` with its `loss_function` the one its spec was read into, so no one reads it again."""
    vars(settings)["loss_function"] = function  # fills the cached property
    return settings


# The rule for each field, one place each: `resolve` uses them, and so does a sweep file's check.

def loss_spec(loss: Spec) -> Spec:
    """The canonical spelling of a loss spec, or the function itself."""
    return canonical_loss(loss)


def method_name(method: str) -> str:
    """The spelling of a method name in `METHODS` (any case)."""
    return canonical(method, METHODS, "method", "valid methods are")


def param_name(param: str) -> str:
    return canonical(param, EVERY_PARAMETERISATION, "parameterisation")


@overload
def schedule_name(schedule: str) -> str: ...
@overload
def schedule_name(schedule: Schedule) -> Schedule: ...
def schedule_name(schedule: Union[str, Schedule]) -> Union[str, Schedule]:
    """A schedule name in its own spelling, or a callable ``factor(t, maxiter)`` as it is."""
    return schedule if callable(schedule) else canonical(schedule, SCHEDULES, "schedule", "valid schedules are")


def gradient_backend(gradient: object) -> Union[str, GradientFunction]:
    """``'autograd'`` or ``'fused'`` (any case), or a replacement function ``gradient(theta, target)``."""
    if callable(gradient):
        return gradient
    if not isinstance(gradient, str):
        raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)} or a function (theta, target) -> (g, iou); "
                         f"got {gradient!r}")
    return canonical(gradient, GRADIENTS, "gradient backend")


def whole(value: object, name: str, low: int = 1) -> int:
    """`value` if it is a whole number >= `low`; ValueError naming `name` otherwise."""
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low):
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


def learning_rate(lr: object, method: Optional[str]) -> Rate:
    """The base rate: `method`'s default (`DEFAULT_LEARNING_RATES`) for None, a positive float, or
    an array of them (one per box). `method` may be None only where `lr` is given."""
    if lr is None:
        return DEFAULT_LEARNING_RATES[cast(str, method)]
    if isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool):
        if not 0 < lr < np.inf:
            raise ValueError(f"lr must be a positive number; got {lr!r}")
        return float(lr)
    try:
        rates = np.array(lr, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a positive number or one per box; got {lr!r}") from None
    if rates.ndim != 1:
        raise ValueError(f"lr must be a number or an array of one rate per box; got shape {rates.shape}")
    bad = np.flatnonzero(~((rates > 0) & (rates < np.inf)))
    if bad.size:
        raise ValueError(f"lr must be positive; box {bad[0]} has lr {float(rates[bad[0]])!r}")
    rates.flags.writeable = False
    return rates


def _share(value: object, name: str) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")
    return float(value)
