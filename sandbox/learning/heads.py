"""The heads detectors put on a network, each with the loss it is trained with: a *recipe*.

A network (`sandbox.learning.networks`) ends in a dense layer; a head says how that
layer's raw outputs are read as a box and what they are trained with. A `Recipe`
gives the width of the last layer, its initial bias, ``decode`` (raw outputs ->
``xyxy`` boxes in pixels, differentiable) and ``objective`` (raw outputs and the
labelled boxes -> one loss value per image, unreduced). `recipe_for` makes one from
what the learning experiment's ``loss`` axis holds: a loss spec, or a recipe name.

- **Plain** (any loss spec, `plain_recipe`): 4 outputs read through a box
  parameterisation (`sandbox.geometry.parameterisations`, ``'cxcywh'`` by default) in
  units of the image side, times ``image_size`` = pixels, trained with the loss on
  (predicted, labelled) pixel boxes. This is the experiment's head from the start.
- ``'gfl'``, **a distribution head with Distribution Focal Loss** (`distribution_recipe`),
  as in GFL (Li et al., "Generalized Focal Loss", NeurIPS 2020, arXiv 2006.04388) and
  YOLOv8: each of the four edges is a softmax over ``reg_max + 1`` bins (17; reg_max =
  16, GFL's default), and the edge is its expectation. Trained with GIoU on the
  expected box times 2.0 plus DFL times 0.25, mmdetection's GFL config
  (``configs/gfl/gfl_r50_fpn_1x_coco.py``: ``loss_bbox`` GIoULoss loss_weight=2.0,
  ``loss_dfl`` DistributionFocalLoss loss_weight=0.25), with DFL averaged over the four
  edges as there (``avg_factor=4.0``). GFL weights both terms by the predicted class
  score, and YOLOv8 by its task-aligned score; with one object and no classifier, the
  weight here is 1.
- ``'detr'``, **DETR's box head and its pair of losses** (`detr_recipe`; Carion et al.,
  "End-to-End Object Detection with Transformers", ECCV 2020, arXiv 2005.12872): the
  sigmoid of 4 outputs is the box as normalised (cx, cy, w, h), as DETR's ``bbox_embed``
  MLP followed by ``.sigmoid()``; trained with L1 between normalised cxcywh boxes times
  5 plus GIoU times 2 (DETR's set criterion, ``bbox_loss_coef=5``,
  ``giou_loss_coef=2``).

**The distribution head, adapted.** GFL and YOLOv8 predict, at each anchor point, the
distances (l, t, r, b) from the point to the four edges, in units of the feature map's
stride, on bins 0, 1, ..., reg_max. Here each image holds one object and the network
has no anchor points, so each head predicts the edge *coordinates* x1, y1, x2, y2
themselves, each on bins spanning [0, 1] of the image side: bin k stands at
k / reg_max. The target edge, in bin units, is clipped to [0, reg_max - 0.01] before
DFL, as ultralytics' ``bbox2dist`` does (mmdetection's ``bbox2distance`` clips at
reg_max - 0.1). As with the plain ``'xyxy'`` parameterisation, the four edges are free,
so a prediction may be inverted (x2 < x1); the losses read it ordered
(`sandbox.geometry.boxes.order_corners`), and no box can leave the image.

**YOLOv8, the alternative.** ultralytics trains the same kind of head with CIoU times
7.5 plus DFL times 1.5 (its ``box`` and ``dfl`` gains) on 16 bins (its ``reg_max=16`` is
the number of bins: values 0 to 15); that is
``distribution_recipe(reg_max=15, iou="ciou", iou_weight=7.5, dfl_weight=1.5, name="yolov8")``,
not registered here.

**Initial bias.** The plain head starts as the network does (`networks.init_network`):
a zero last layer stands for the centred box of half the image side,
`networks.CENTRED_BOX`. The other heads start there too. DETR's: the logit of the
centred box's normalised cxcywh, (0.5, 0.5, 0.5, 0.5), which is 0. The distribution
head's cannot be zero: a uniform softmax puts every edge at 0.5, a box of no size.
Its bias gives each edge the logits beta * k over the bins k, with beta chosen so
that the expectation is the centred box's edge (bin 4 for x1 and y1, bin 12 for x2
and y2): of all distributions over the bins with that expectation, this is the one
of maximum entropy, as broad as the uniform start it replaces.

``init='apart'`` (every prediction starts as one box left of and above the image,
`networks.init_network`) is for the plain head only: the distribution head's edges are
expectations over bins that span the image, and DETR's sigmoid keeps a box's centre
inside the image (its width and height below the image's side, so that a box may
still reach past the image's edge by up to half its size).

    >>> gfl = recipe_for("gfl")
    >>> gfl.outputs
    68
    >>> gfl.decode(gfl.bias[None], 32).round(9)
    array([[ 8.,  8., 24., 24.]])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeGuard

import autograd.numpy as np
import numpy
from autograd.tracer import isbox

from sandbox._types import Array, FloatArray
from sandbox.geometry.boxes import box_convert
from sandbox.geometry.names import canonical
from sandbox.geometry.parameterisations import get_parameterisation
from sandbox.learning.networks import CENTRED_BOX, INITS, Params, outputs
from sandbox.losses.fused import built_kernel, fused_loss
from sandbox.losses.spec import PRESETS, canonical_loss, get_loss
from sandbox.optim.settings import GRADIENTS, Spec

REG_MAX = 16
"""GFL's default: each edge's distribution has reg_max + 1 = 17 bins."""
TARGET_MARGIN = 0.01
"""A target edge is clipped to [0, reg_max - TARGET_MARGIN] bins before DFL (ultralytics' ``bbox2dist``)."""
GFL_WEIGHTS = {"iou": 2.0, "dfl": 0.25}
"""mmdetection's ``gfl_r50_fpn_1x_coco``: GIoU loss_weight 2.0, DFL loss_weight 0.25."""
DETR_LOSS = PRESETS["detr"]
"""DETR's set criterion for a matched box: L1 on normalised (cx, cy, w, h) times 5, GIoU times 2."""


@dataclass(frozen=True, eq=False)
class Recipe:
    """A head and its loss: how a network's last layer is read as a box, and trained.

    Attributes
    ----------
    name : str
        ``'gfl'``, ``'detr'``, or the canonical spelling of a plain head's loss spec.
    outputs : int
        The width of the network's last layer.
    bias : ndarray, shape (outputs,), or None
        The last layer's initial bias; None for the plain head, which keeps the one
        `networks.init_network` gives (it follows ``init`` and the parameterisation).
    decode : callable
        ``decode(raw, image_size)``: raw outputs, shape (n, outputs), to ``xyxy`` boxes
        in pixels, shape (n, 4); differentiable with autograd.
    objective : callable
        ``objective(raw, target, image_size)``: raw outputs, shape (n, outputs), and the
        labelled ``xyxy`` boxes in pixels, shape (n, 4), to one loss value per image,
        shape (n,), unreduced; differentiable with autograd in `raw`.
    confinement : str
        Why the head cannot start at ``init='apart'``'s box outside the image; empty
        if it can (the plain head).
    """

    name: str
    outputs: int
    bias: FloatArray | None
    decode: Callable[[Array, int], Array]
    objective: Callable[[Array, Array, int], Array]
    confinement: str = ""


def plain_recipe(loss: Spec, param: str = "cxcywh", gradient: str = "autograd") -> Recipe:
    """The plain head: 4 outputs read through `param` in image units, trained with `loss` on pixel boxes.

    Parameters
    ----------
    loss : str or callable
        Anything `sandbox.get_loss` takes.
    param : str
        A name in `sandbox.PARAMETERISATIONS`.
    gradient : {'autograd', 'fused'}
        How the loss is differentiated: by autograd through its own operations, or,
        ``'fused'``, as one primitive whose gradient with respect to the decoded boxes is
        the loss's fused kernel (`sandbox.losses.fused.fused_loss`), where the spec names
        a registry loss with one; any other spec (a weighted sum, a user's loss) runs on
        autograd, as in the engine (`sandbox.optim.engine`). The decoding stays autograd's.
    """
    function = get_loss(loss)
    if canonical(gradient, GRADIENTS, "gradient backend") == "fused" and isinstance(loss, str) \
            and built_kernel(function) is not None:
        function = fused_loss(function)
    decode = plain_decoder(param)

    def objective(raw: Array, target: Array, image_size: int, **state: Any) -> Array:
        # state: a stateful loss's state for this step (sandbox.losses.formulas.LOSS_STATES), given by train
        return function(decode(raw, image_size), target, **state)

    return Recipe(canonical_loss(loss) if isinstance(loss, str) else getattr(loss, "__name__", "loss"), 4, None,
                  decode, objective)


def plain_decoder(param: str = "cxcywh") -> Callable[[Array, int], Array]:
    """The plain head's ``decode(raw, image_size)``: 4 outputs through `param`, in image units, times ``image_size``."""
    parameterisation = get_parameterisation(param)

    def decode(raw: Array, image_size: int) -> Array:
        _check_width(raw, 4, "the plain head")
        return parameterisation.to_box(raw) * image_size

    return decode


def distribution_recipe(reg_max: int = REG_MAX, iou: Spec = "giou", iou_weight: float = GFL_WEIGHTS["iou"],
                        dfl_weight: float = GFL_WEIGHTS["dfl"], name: str = "gfl") -> Recipe:
    """A distribution head: each edge a softmax over ``reg_max + 1`` bins on [0, 1] of the image side.

    Trained with ``iou_weight * iou(expected box, target) + dfl_weight * DFL``, DFL
    the mean of `distribution_focal_loss` over the four edges; the defaults are GFL's
    (Li et al., NeurIPS 2020, arXiv 2006.04388; mmdetection's config). The module's
    docstring says how the head is adapted to one object without anchor points, and
    how its bias is chosen.

    Parameters
    ----------
    reg_max : int
        The last bin: bin k stands at k / reg_max of the image side; at least 2.
    iou : str or callable
        The box loss on the expected box, anything `sandbox.get_loss` takes.
    iou_weight, dfl_weight : float
    name : str
    """
    if isinstance(reg_max, bool) or not isinstance(reg_max, (int, numpy.integer)) or reg_max < 2:
        raise ValueError(f"reg_max must be a whole number >= 2 (bins 0, ..., reg_max); got {reg_max!r}")
    reg_max = int(reg_max)
    box_loss = get_loss(iou)
    width = 4 * (reg_max + 1)
    where = np.arange(reg_max + 1) / reg_max  # each bin's place, in image units

    def logits_of(raw: Array) -> Array:
        _check_width(raw, width, f"the {name} head (4 edges x {reg_max + 1} bins)")
        return np.reshape(raw, tuple(np.shape(raw)[:-1]) + (4, reg_max + 1))

    def decode(raw: Array, image_size: int) -> Array:
        return np.sum(np.exp(log_softmax(logits_of(raw))) * where, axis=-1) * image_size

    def objective(raw: Array, target: Array, image_size: int) -> Array:
        edges = np.clip(target / image_size * reg_max, 0.0, reg_max - TARGET_MARGIN)  # in bins
        dfl = np.mean(distribution_focal_loss(logits_of(raw), edges), axis=-1)
        return iou_weight * box_loss(decode(raw, image_size), target) + dfl_weight * dfl

    start = numpy.asarray(CENTRED_BOX, dtype=float) * reg_max
    bias = numpy.concatenate([maximum_entropy_logits(edge, reg_max) for edge in start])
    return Recipe(name, width, bias, decode, objective, "its edges are expectations over bins that span the image")


def detr_recipe() -> Recipe:
    """DETR's head and losses: sigmoid of 4 outputs as normalised cxcywh; L1 x 5 + GIoU x 2 on normalised boxes.

    Carion et al., ECCV 2020, arXiv 2005.12872: ``bbox_embed(...).sigmoid()`` gives
    (cx, cy, w, h) in units of the image side; the set criterion's box terms are L1
    between normalised cxcywh boxes (``bbox_loss_coef`` 5) and GIoU (``giou_loss_coef``
    2), here `DETR_LOSS` on the boxes divided by ``image_size``. The bias starts at the
    logit of the centred box, which is 0.
    """
    box_loss = get_loss(DETR_LOSS)

    def normalised(raw: Array) -> Array:
        _check_width(raw, 4, "the detr head")
        return box_convert(sigmoid(raw), "cxcywh", "xyxy")

    def decode(raw: Array, image_size: int) -> Array:
        return normalised(raw) * image_size

    def objective(raw: Array, target: Array, image_size: int) -> Array:
        return box_loss(normalised(raw), target / image_size)

    centre = numpy.asarray(box_convert(numpy.asarray(CENTRED_BOX), "xyxy", "cxcywh"), dtype=float)
    return Recipe("detr", 4, numpy.log(centre / (1.0 - centre)), decode, objective,
                  "its sigmoid keeps each box's centre inside the image")


RECIPES: dict[str, Callable[[], Recipe]] = {"gfl": distribution_recipe, "detr": detr_recipe}
"""The recipes by name, as the learning experiment's ``loss`` axis names them (besides loss specs)."""


def recipe_for(loss: Spec, param: str = "cxcywh", init: str = "default", gradient: str = "autograd") -> Recipe:
    """The `Recipe` a loss axis value names: a recipe in `RECIPES` (any case), else the plain head with `loss`.

    Parameters
    ----------
    loss : str or callable
        ``'gfl'``, ``'detr'``, or anything `sandbox.get_loss` takes.
    param : str
        The plain head's parameterisation; the other heads read their outputs their own way.
    init : {'default', 'apart'}
        Checked against the head: ``'apart'`` is for the plain head only.
    gradient : {'autograd', 'fused'}
        The plain head's (`plain_recipe`); the other heads' objectives have no fused
        kernel and run on autograd whatever it says.

    Raises
    ------
    ValueError
        In one line, naming both kinds of value, if `loss` is neither; or if `init`
        is ``'apart'`` with a head that cannot stand for its box outside the image.
    """
    gradient = canonical(gradient, GRADIENTS, "gradient backend")
    recipe = (RECIPES[loss.strip().lower()]() if is_recipe(loss)
              else plain_recipe(_checked_spec(loss), param, gradient))
    if canonical(init, INITS, "init") == "apart" and recipe.confinement:
        raise ValueError(f"init='apart' starts every box left of and above the image, which the {recipe.name} head "
                         f"cannot stand for ({recipe.confinement}); use init='default', or a loss spec for the "
                         f"plain head")
    return recipe


def loss_name(loss: Spec) -> Spec:
    """The canonical spelling of a loss axis value: a recipe name, or a loss spec (`sandbox.canonical_loss`).

    ValueError in one line, naming both kinds, for anything else.
    """
    return loss.strip().lower() if is_recipe(loss) else canonical_loss(_checked_spec(loss))


def is_recipe(loss: object) -> TypeGuard[str]:
    """Whether `loss` names a recipe in `RECIPES` (any case)."""
    return isinstance(loss, str) and loss.strip().lower() in RECIPES


def predict(params: Params, images: Array, model: str, head: Recipe | str = "cxcywh") -> Array:
    """One ``xyxy`` box in pixels per image: the network's raw outputs, decoded by `head`.

    Parameters
    ----------
    params : dict of str -> ndarray
        A network made with ``outputs=head.outputs``.
    images : ndarray, shape (n, image_size, image_size)
    model : str
    head : Recipe or str
        A `Recipe`, or the parameterisation of a plain head (as `networks.predict`).

    Returns
    -------
    ndarray, shape (n, 4)
    """
    decode = head.decode if isinstance(head, Recipe) else plain_decoder(head)
    return decode(outputs(params, images, model), np.shape(images)[-1])


def distribution_focal_loss(logits: Array, target: Array) -> Array:
    """Distribution Focal Loss (Li et al., GFL, NeurIPS 2020, arXiv 2006.04388).

    For a target y between bins l = floor(y) and r = l + 1, with S the softmax of
    the logits, DFL = -((r - y) log S_l + (y - l) log S_r): the cross-entropy with the
    distribution that puts r - y on bin l and y - l on bin r, whose expectation is y.
    That distribution's weight on bin k is max(0, 1 - |k - y|), written so here. Its
    entropy, -((r - y) log(r - y) + (y - l) log(y - l)), is the loss's infimum, which
    the softmax approaches as it approaches that distribution (Gibbs' inequality).

    Parameters
    ----------
    logits : ndarray, shape (..., bins)
        Unnormalised log-probabilities of bins 0, 1, ..., bins - 1.
    target : ndarray, shape (...)
        In bin units, in [0, bins - 1]; a label, not differentiated.

    Returns
    -------
    ndarray, shape (...)
    """
    bins = np.shape(logits)[-1]
    if not isbox(target):
        target = numpy.asarray(target, dtype=float)
        if not numpy.all((target >= 0) & (target <= bins - 1)):
            raise ValueError(f"DFL targets must lie in [0, {bins - 1}] bins (clip them first); got values from "
                             f"{target.min():g} to {target.max():g}")
    weights = np.maximum(1.0 - np.abs(np.arange(bins) - target[..., None]), 0.0)
    return -np.sum(weights * log_softmax(logits), axis=-1)


def log_softmax(logits: Array) -> Array:
    """log softmax over the last axis, stable: the maximum is subtracted before exp (log-sum-exp)."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)  # every exp is at most 1: no overflow
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def sigmoid(x: Array) -> Array:
    """1 / (1 + exp(-x)), written with tanh so that no exp overflows."""
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def maximum_entropy_logits(mean: float, reg_max: int) -> FloatArray:
    """Logits beta * k over bins k = 0, ..., reg_max whose softmax has expectation `mean` (in bins).

    Of all distributions over the bins with that expectation, this one has the
    greatest entropy. The expectation grows with beta (its derivative is the
    variance), from 0 towards reg_max, so bisection finds beta to rounding.

    Parameters
    ----------
    mean : float
        Strictly between 0 and reg_max.
    reg_max : int

    Returns
    -------
    ndarray, shape (reg_max + 1,)
    """
    if not 0 < mean < reg_max:
        raise ValueError(f"the expectation must lie strictly between bins 0 and {reg_max}; got {mean!r}")
    k = numpy.arange(reg_max + 1, dtype=float)

    def expectation(beta: float) -> float:
        weights = numpy.exp(beta * k - max(beta * k[0], beta * k[-1]))
        return float(weights @ k / weights.sum())

    low, high = -1.0, 1.0
    while expectation(low) > mean:
        low *= 2.0
    while expectation(high) < mean:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        low, high = (middle, high) if expectation(middle) < mean else (low, middle)
    return 0.5 * (low + high) * k


def _checked_spec(loss: Spec) -> Spec:
    """`loss` if `sandbox.get_loss` takes it; else ValueError naming both kinds of loss axis value."""
    try:
        get_loss(loss)
    except ValueError as error:
        raise ValueError(f"{loss!r} is neither a head recipe ({', '.join(RECIPES)}) nor a loss spec: "
                         f"{error}") from None
    return loss


def _check_width(raw: Array, width: int, what: str) -> None:
    if np.shape(raw)[-1:] != (width,):
        raise ValueError(f"{what} reads {width} outputs per image; got raw outputs of shape {np.shape(raw)}: "
                         f"make the network with outputs={width}")
