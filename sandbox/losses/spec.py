"""The loss-name language: how a loss is named, in code, a sweep file or on a command line.

A *spec* names a loss: a name in `sandbox.LOSSES`, `ORIENTED_LOSSES` or `REGISTERED`
with parameters (``'alpha_ciou:alpha=3'``), a function in an importable module
(``'package.module:function'``), a weighted sum of those (``'5*l1+2*giou'``), or a
preset's name, which stands for a weighted sum detectors ship (`PRESETS`: ``'detr'``).
`get_loss` turns a spec into a function, `canonical_loss` into the one spelling
every record uses, `loss_kind` into the kind of box it measures
(`sandbox.losses.kinds`: a spec naming an oriented loss is oriented, every other is
axis-aligned, and a sum may not mix them), `register_loss` adds a name, and
`travelling` and `adopt` carry registered losses to worker processes.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import pickle
import re
from typing import Any, Callable, TypeVar, overload

import autograd.numpy as np

from sandbox._types import Boxes, Loss, Values
from sandbox.geometry.boxes import Coordinates, traced
from sandbox.geometry.names import canonical
from sandbox.losses.formulas import LOSSES, unchecked
from sandbox.losses.kinds import ALIGNED, ORIENTED, BoxKind
from sandbox.losses.oriented import ORIENTED_LOSSES

_FunctionT = TypeVar("_FunctionT", bound=Callable[..., Any])

PRESETS: dict[str, str] = {"detr": "5*l1:coords=cxcywh+2*giou"}
"""Named weighted sums, by name: a spec names one as it names a loss, and records keep the name.

``'detr'``: DETR's box losses, L1 between (cx, cy, w, h) boxes times 5 plus GIoU times 2
(Carion et al., ECCV 2020, arXiv 2005.12872; its set criterion's ``bbox_loss_coef=5``,
``giou_loss_coef=2``), as the learning experiment's ``'detr'`` head trains with
(`sandbox.learning.heads.detr_recipe`, on boxes in units of the image side).
"""

REGISTERED: dict[str, Loss] = {}
"""Losses added by `register_loss`, by name; every spec can name them as it names `LOSSES`."""


def register_loss(name: str, function: _FunctionT) -> _FunctionT:
    """Make `function` a loss that every spec names as `name`: `fit`, sweeps, the command lines.

    For code that defines a loss where it runs, a notebook say. ``function(pred,
    target, **params)`` takes ``xyxy`` boxes of shape ``(..., 4)`` and returns one
    value per pair, written with ``autograd.numpy``. Registering a name again
    replaces its function (a notebook cell run twice); the built-in names cannot
    be taken. Returns `function`.

    Worker processes get the loss as they get any other: forked ones inherit it,
    and spawned ones and a Dask cluster import it by its module and name, so a
    function defined in a notebook or a script's ``__main__`` runs in this process
    and forked workers only; anything else is refused before any work. Name a loss
    in an importable module as ``module:function`` to send it anywhere.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> def half_l1(pred, target):
    ...     return 0.5 * np.sum(np.abs(pred - target), axis=-1)
    >>> _ = register_loss("half_l1", half_l1)
    >>> float(get_loss("Half_L1")([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]))
    1.0
    >>> del REGISTERED["half_l1"]  # as this example leaves the registry
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"a loss name must be a Python identifier such as 'my_loss'; got {name!r}")
    key = name.lower()
    if key in LOSSES or key in ORIENTED_LOSSES or key in PRESETS:
        raise ValueError(f"{key!r} is a built-in loss; register yours under another name")
    if not callable(function):
        raise ValueError(f"register_loss takes a function loss(pred, target); got {function!r}")
    REGISTERED[key] = function
    return function


def _loss_names():
    return [*LOSSES, *ORIENTED_LOSSES, *REGISTERED]


def _split(spec):
    """A spec's weighted terms, [(weight, term)], or None if it is a single loss.

    ``'5*l1+2*giou'``, ``'l1*5 + giou*2'``: terms joined by ``+``, each with an
    optional factor on either side of ``*``. A ``+`` in a number's exponent
    (``alpha=1e+3``) does not split.
    """
    if "+" not in spec and "*" not in spec:
        return None
    terms = []
    for term in re.split(r"(?<![0-9][eE])\+", spec):
        factors = [factor.strip() for factor in term.split("*")]
        if len(factors) == 1:
            weight, loss = 1.0, factors[0]
        elif len(factors) == 2 and _number(factors[0]) is not None:
            weight, loss = _number(factors[0]), factors[1]
        elif len(factors) == 2 and _number(factors[1]) is not None:
            weight, loss = _number(factors[1]), factors[0]
        else:
            raise ValueError(f"loss {spec!r}: each term of a weighted sum is a loss with at most one factor, "
                             f"as '5*l1+2*giou'; got {term.strip()!r}")
        if not loss:
            raise ValueError(f"loss {spec!r}: a term has no loss; write it as '5*l1+2*giou'")
        terms.append((weight, loss))
    return terms


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _parts(spec):
    """(kind, function name, parameters text) of a single-loss spec.

    kind is ``'name'`` for `LOSSES` and `REGISTERED` (``'giou'``,
    ``'alpha_ciou:alpha=3'``) or ``'module'`` for ``'package.module:function'``
    (``'package.module:function:key=value'``): the part after the first ``:``
    names a function when it holds no ``=``.
    """
    head, _, rest = spec.strip().partition(":")
    function, _, params = rest.partition(":")
    if function and "=" not in function and head.lower() not in _loss_names():
        return "module", f"{head}:{function}", params
    return "name", head, rest


@overload
def canonical_loss(spec: str) -> str: ...
@overload
def canonical_loss(spec: _FunctionT) -> _FunctionT: ...
def canonical_loss(spec: str | Loss) -> str | Loss:
    """The spelling of a loss spec that every record of it uses; ValueError for a bad one.

    Names in lower case, factors first, no spaces; a callable stays itself.

    >>> canonical_loss("L1*5 + GIoU*2")
    '5*l1+2*giou'
    >>> canonical_loss("Alpha_CIoU:Alpha=3")
    'alpha_ciou:alpha=3'
    """
    return parse_loss(spec)[0]


def parse_loss(spec: str | Loss) -> tuple[str | Loss, Loss]:
    """``(canonical spelling, function)`` of a loss spec, from one reading of it; ValueError for a bad one.

    What `canonical_loss` and `get_loss` give, at once: a run's settings read the
    spec here, once (`sandbox.optim.settings.resolve`), and keep both.
    """
    if callable(spec):
        return spec, spec
    text = str(spec)
    if text.strip().lower() in PRESETS:  # recorded by its name, built from its sum
        return text.strip().lower(), parse_loss(PRESETS[text.strip().lower()])[1]
    terms = _split(text)
    if terms is None:
        return _read(text, {})
    parts = [(weight, parse_loss(term)) for weight, term in terms]
    kinds = {function_kind(function).name: name for _, (name, function) in parts}
    if len(kinds) > 1:
        raise ValueError(f"loss {text!r} mixes the oriented loss {kinds['oriented']!r} with the axis-aligned "
                         f"{kinds['aligned']!r}: a weighted sum adds losses of one kind of box")
    return ("+".join(str(name) if weight == 1 else f"{weight:g}*{name}" for weight, (name, _) in parts),
            WeightedSum([(weight, function) for weight, (_, function) in parts]))


def _function(name):
    return LOSSES[name] if name in LOSSES else ORIENTED_LOSSES[name] if name in ORIENTED_LOSSES else REGISTERED[name]


def function_kind(function: Loss) -> BoxKind:
    """The kind of box a loss function measures: oriented for a loss of `ORIENTED_LOSSES` (or a partial
    of one, or a weighted sum of them), axis-aligned for any other function."""
    if isinstance(function, functools.partial):
        return function_kind(function.func)
    if isinstance(function, WeightedSum):
        return function_kind(function.terms[0][1]) if function.terms else ALIGNED
    return ORIENTED if any(function is oriented for oriented in ORIENTED_LOSSES.values()) else ALIGNED


def loss_kind(spec: str | Loss) -> BoxKind:
    """The kind of box (`sandbox.losses.kinds`) the loss of `spec` measures; ValueError for a bad spec.

    >>> loss_kind("giou").name, loss_kind("2*rotated_l1").name
    ('aligned', 'oriented')
    """
    return function_kind(parse_loss(spec)[1])


def get_loss(spec: str | Loss, **params: Any) -> Loss:
    """The loss function named by `spec`, with its parameters bound.

    `spec` is one of:

    - a callable ``loss(pred, target)``, returned as it is;
    - a name in `LOSSES` or `REGISTERED`, in any case, with parameters as on the
      command line: ``'l1:coords=cxcywh'``, several separated by commas;
    - a function in an importable module, ``'package.module:function'``, with
      parameters the same way: ``'package.module:function:scale=2'``;
    - a weighted sum of those, ``'5*l1+2*giou'`` (a factor may also follow its
      loss, ``'l1*5+giou*2'``);
    - a preset of `PRESETS`, ``'detr'`` (DETR's ``'5*l1:coords=cxcywh+2*giou'``).

    Keyword arguments add parameters (not to a sum). Every name, parameter and value
    is checked here, with one call on a pair of boxes, before any work.

    Examples
    --------
    >>> float(get_loss("l1:coords=cxcywh")([0, 0, 2, 2], [1, 0, 3, 2]))
    1.0
    >>> float(get_loss("5*l1+2*giou")([0, 0, 2, 2], [1, 0, 3, 2]))  # 5 * 2 + 2 * (1 - 1/3)
    11.333333333333334
    """
    if callable(spec):
        return functools.partial(spec, **params) if params else spec
    if not params:
        return parse_loss(spec)[1]
    text = str(spec)
    if _split(text) is not None or text.strip().lower() in PRESETS:
        raise ValueError(f"loss {text!r}: give a weighted sum's parameters with each term, as '5*l1:coords=cxcywh+giou'")
    return _read(text, params)[1]


def _read(text: str, params: dict[str, Any]) -> tuple[str, Loss]:
    """``(canonical spelling, function)`` of a single loss's spec, with `params` added."""
    kind, name, text_params = _parts(text)
    if kind == "module":
        function = _import(name)
    else:
        name = canonical(name, _loss_names(), "loss", "valid losses are")
        function = _function(name)
    valid = list(inspect.signature(unchecked(function)).parameters.values())[2:]  # after pred, target
    names = [p.name for p in valid if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in valid)
    params, written = dict(params), []
    for item in filter(None, text_params.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"loss parameter {item!r} in {text!r} must be written key=value")
        key = next((k for k in names if k.lower() == key.strip().lower()), key.strip())
        params.setdefault(key, _parse_value(value.strip()))
        written.append(f"{key}={value.strip()}")
    for key in params:
        if key not in names and not takes_any:
            allowed = ", ".join(names) if names else "none"
            raise ValueError(f"loss {name!r} has no parameter {key!r}; its parameters: {allowed}")
    loss = functools.partial(function, **params) if params else function
    if kind == "module" or name in REGISTERED:
        loss = on_arrays(loss)
    if params or kind == "module" or name in REGISTERED:
        _try(loss, text, function_kind(loss))
    if kind == "module":  # a module's parameters as written
        return (f"{name}:{text_params}" if text_params else name), loss
    return (":".join([name, ",".join(written)]) if written else name), loss


def on_arrays(function: Callable[..., Any]) -> Loss:
    """`function` of stacked ``(..., 4)`` arrays, also callable on the corner arrays the engine passes.

    The built-in losses take either; a user's function need only take arrays.
    """
    def as_array(boxes):
        if isinstance(boxes, Coordinates):
            return np.stack(list(boxes), axis=-1)
        return boxes if traced(boxes) else np.asarray(boxes, dtype=float)

    def loss_on_arrays(pred, target):
        return function(as_array(pred), as_array(target))
    loss_on_arrays.__name__ = loss_on_arrays.__qualname__ = getattr(function, "__name__", "loss")
    return loss_on_arrays


def _import(reference):
    """The function at ``'package.module:function'``; ValueError saying what to fix."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"loss {reference!r}: cannot import module {module_name!r} ({error}); put its folder "
                         f"on the Python path (PYTHONPATH) or install it") from None
    function = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        raise ValueError(f"loss {reference!r}: module {module_name!r} has no function {attribute!r}")
    return function


_TRIAL_PAIRS = {"aligned": ([[0.0, 0.0, 1.0, 2.0]], [[0.5, 0.5, 2.0, 1.5]]),
                "oriented": ([[0.0, 0.0, 1.0, 2.0, 0.3]], [[0.5, 0.5, 2.0, 1.5, -0.2]])}


def _try(loss, spec, kind=ALIGNED):
    """One call on a pair of boxes of `kind`, so that a bad parameter or function shows before any work."""
    pred, target = _TRIAL_PAIRS[kind.name]
    try:
        value = loss(np.array(pred), np.array(target))
    except (TypeError, ValueError) as error:
        raise ValueError(f"loss {spec!r}: {error}") from None
    except Exception as error:
        raise ValueError(f"loss {spec!r} fails on a pair of boxes: {type(error).__name__}: {error}") from None
    if np.shape(value) not in ((1,), ()):
        raise ValueError(f"loss {spec!r} must return one value per pair of boxes, shape (...,); on boxes of "
                         f"shape (1, {kind.size}) it returned shape {np.shape(value)}")


class WeightedSum:
    """``sum(weight * loss(pred, target))`` over the terms of a spec such as ``'5*l1+2*giou'``."""

    def __init__(self, terms: list[tuple[float, Loss]]) -> None:
        self.terms = terms

    def __call__(self, pred: Boxes, target: Boxes) -> Values:
        return sum(weight * loss(pred, target) for weight, loss in self.terms)

    def __repr__(self) -> str:
        return " + ".join(f"{weight:g} * {getattr(loss, '__name__', loss)!s}" for weight, loss in self.terms)


def travelling(spec: str | Loss, forked: bool) -> dict[str, str]:
    """What worker processes need to rebuild the loss `spec`; ValueError if it cannot travel.

    Returns a dict, name -> ``'module:function'``, for the `REGISTERED` losses the
    spec uses, which workers register again (`adopt`) unless `forked` (they
    inherited them). A callable travels by pickling, as a reference to its module
    and name, so it must be defined at the top level of an importable module, not
    (unless `forked`) in ``__main__``.
    """
    fix = "define it in an importable module and name it as module:function"
    if callable(spec):
        if not forked and getattr(spec, "__module__", None) == "__main__":
            raise ValueError(f"loss {_name(spec)} is defined in __main__ (a notebook or a script), which spawned "
                             f"workers and Dask workers cannot import: {fix}")
        try:
            pickle.dumps(spec)
        except Exception as error:
            raise ValueError(f"loss {_name(spec)} cannot be sent to worker processes ({type(error).__name__}: "
                             f"{error}): {fix}") from None
        return {}
    needed = {}
    for name in _named(str(spec)):
        if name not in REGISTERED:
            continue
        function = REGISTERED[name]
        reference = _reference(function)
        if reference is not None:
            needed[name] = reference
        elif not forked:
            raise ValueError(f"registered loss {name!r} ({_name(function)}) cannot reach spawned workers or a Dask "
                             f"cluster, which import it by module and name: {fix}")
    return needed


def _named(spec):
    """The `LOSSES` and `REGISTERED` names a spec uses."""
    if spec.strip().lower() in PRESETS:
        return _named(PRESETS[spec.strip().lower()])
    terms = _split(spec) or [(1.0, spec)]
    return [canonical(name, _loss_names(), "loss") for kind, name, _ in (_parts(t) for _, t in terms) if kind == "name"]


def _reference(function):
    """``'module:qualified.name'`` that imports `function` itself, or None."""
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if module in (None, "__main__") or "<" in name:
        return None
    try:
        return f"{module}:{name}" if _import(f"{module}:{name}") is function else None
    except ValueError:
        return None


def _name(function):
    return repr(getattr(function, "__qualname__", function))


def adopt(registered: dict[str, str]) -> None:
    """Register, in a worker, the losses `travelling` said it needs."""
    for name, reference in registered.items():
        if name not in REGISTERED:
            register_loss(name, _import(reference))


def _parse_value(text):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
