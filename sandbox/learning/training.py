"""Train a small box regressor with any loss, fairly, and measure it on held-out images.

`train` fits one network (`sandbox.learning.networks`) to the training split of
`sandbox.learning.synthetic.make_splits` by minibatch Adam or SGD on any loss the sandbox can
name (a registry name with parameters, ``package.module:function``, a weighted sum
such as ``'5*l1+2*giou'``): the loss of each image's predicted box against its
label, averaged over the minibatch. Or, in place of a loss, a detector's head with
its own loss (`sandbox.learning.heads`): ``'gfl'``, edges as distributions over bins
with Distribution Focal Loss, or ``'detr'``, DETR's sigmoid boxes with L1 and GIoU.
Within a seed every loss starts from the same weights and sees the minibatches in
the same order: both come from the seed alone.
A loss that carries state (`sandbox.losses.formulas.LOSS_STATES`: Wise-IoU v2 and v3's
running mean of the IoU loss, over the minibatches, as their authors keep it; Unified-IoU's
scheduled box scale) has one state per run, updated before each minibatch's loss from
that minibatch (the mean of its statistic) and kept in the run's checkpoint, so that a
run stopped after some epochs (``stop_after``) and resumed from its checkpoint
(``resume``) gives the weights, the history and the state of the uninterrupted run, bit
for bit.
After every epoch it measures the validation split (`sandbox.learning.metrics.evaluate`),
and at the end the test split.

Losses differ in scale by orders of magnitude (L2 in square pixels, GIoU in [0, 2]),
so one learning rate for all would pick the winner. `choose_rates` gives each loss
the rate of a shared grid that does best on the validation split, by the same rule
for every loss.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Mapping, Sequence, TypedDict

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from autograd.tracer import getval

from sandbox._types import Array, FloatArray
from sandbox.geometry.names import canonical
from sandbox.geometry.parameterisations import get_parameterisation
from sandbox.learning.heads import RECIPES, Recipe, recipe_for
from sandbox.learning.heads import predict as head_predict
from sandbox.learning.metrics import evaluate
from sandbox.learning.networks import DTYPES, INITS, MODELS, Params, flatten, init_network, outputs
from sandbox.learning.synthetic import Dataset, make_dataset, make_splits, make_stream
from sandbox.losses.formulas import LossState, loss_state
from sandbox.losses.formulas import iou as box_iou
from sandbox.losses.spec import get_loss
from sandbox.optim.rules import SCHEDULES, Rate, Schedule, Transform, apply, first_order
from sandbox.optim.settings import GRADIENTS, Spec, gradient_backend, schedule_name

OPTIMIZERS = ("adam", "sgd")
SELECTION_METRIC = "accuracy_mean"
"""What `choose_rates` maximises on the validation split: the mean accuracy over IoU 0.50:0.95."""


def train(loss: Spec, splits: Mapping[str, Dataset], model: str = "cnn", param: str = "cxcywh",
          optimizer: str = "adam", lr: float = 1e-3, epochs: int = 10, batch_size: int = 64, seed: int = 0,
          init: str = "default", momentum: float = 0.9, schedule: str | Schedule = "cosine",
          progress: Callable[[int, int], object] | None = None, dtype: str = "float32",
          gradient: str = "autograd", stop_after: int | None = None,
          resume: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train one network with `loss`; return its per-epoch validation metrics and its test metrics.

    Parameters
    ----------
    loss : str or callable
        Anything `sandbox.get_loss` takes; applied to (predicted, labelled) ``xyxy``
        boxes in pixels and averaged over each minibatch. Or a head recipe,
        ``'gfl'`` or ``'detr'`` (`sandbox.learning.heads.recipe_for`): the network's
        last layer is as wide as the head needs, and the head's own objective is
        averaged over each minibatch.
    splits : dict
        ``'train'``, ``'val'``, ``'test'``: `sandbox.learning.synthetic.Dataset` s of one image size.
        ``'train'`` may also be a sequence of Datasets, one per epoch (a fresh stream of
        images, `training_stream`), used in turn.
    model, param, init
        As `sandbox.learning.networks.init_network` takes them: ``'mlp'`` or ``'cnn'``; the box
        parameterisation the outputs are read in (by the plain head; a recipe reads them its
        own way); ``'default'`` or ``'apart'`` (every prediction starts as one fixed box that
        overlaps no object; the plain head only).
    optimizer : str
        ``'adam'`` (Kingma and Ba's defaults but the rate) or ``'sgd'`` (with `momentum`).
    lr : float
        Learning rate: the base of `schedule` (a name in `sandbox.SCHEDULES`, over all
        the steps of all the epochs; ``'cosine'`` by default).
    epochs, batch_size : int
        Passes over the training split, and images per step (the last minibatch of an
        epoch may be smaller).
    seed : int
        The initial weights and the order of the minibatches: the same for every loss.
    progress : callable, optional
        ``progress(epoch, epochs)`` after each epoch.
    dtype : {'float32', 'float64'}
        Of the weights and the arithmetic (`init_network`'s).
    gradient : {'autograd', 'fused'}
        How the loss is differentiated (`training_gradient`): ``'autograd'`` (the
        default) through its own operations; ``'fused'``, the fast path an experiment
        names and records: the plain head's loss, where its spec names a registry loss
        (at any parameters), is one autograd primitive whose gradient with respect to the
        decoded boxes comes from the loss's fused kernel
        (`sandbox.losses.fused.fused_loss`), the same gradient to rounding. As in the
        box-fitting engine, any other loss (a weighted sum, a user's loss, the ``'gfl'``
        and ``'detr'`` heads) runs on autograd. The network and the decoding are
        autograd's either way.
    stop_after : int, optional
        Stop after this many epochs of the `epochs` (the schedule still spans all of
        them), to go on later from the result's ``checkpoint``.
    resume : dict, optional
        A ``checkpoint`` of an earlier call with the same arguments: go on from there.

    Returns
    -------
    dict
        ``history``: a dict of metrics per epoch (lists, the validation split's
        `evaluate` keys plus ``train_loss``, the mean minibatch loss, and
        ``seconds``); ``val`` and ``test``: `evaluate` of the final network;
        ``params``: the final weights; ``diverged``: True if the loss or the weights
        became non-finite (training stops there); ``checkpoint``: what `resume`
        takes (the next epoch and step, the weights, the update rule's state, the
        minibatch order's generator, the loss's state, the history so far);
        ``loss_state``: the state of a loss that carries one (else None).
    """
    optimizer = canonical(optimizer, OPTIMIZERS, "optimizer")
    recipe = recipe_for(loss, param, init, training_gradient(gradient))
    stream = [splits["train"]] if isinstance(splits["train"], Dataset) else list(splits["train"])
    image_size = stream[0].images.shape[-1]
    params = init_network(model, image_size, seed, init=init, param=param, outputs=recipe.outputs, dtype=dtype)
    if recipe.bias is not None:
        params["output_bias"] = np.asarray(recipe.bias, dtype=params["output_bias"].dtype)
    flat, unflatten = flatten(params)

    carried = _carried(loss)
    captured: dict[str, Any] = {}

    def objective(vector: Array, images: FloatArray, boxes: FloatArray, before: Any, at: int) -> Array:
        raw = outputs(unflatten(vector), images, model)
        keywords = {}
        if carried is not None:  # the state for this minibatch, from this minibatch, before its loss
            declared = carried[0]
            statistic = None
            if declared.statistic is not None:
                statistic = float(np.mean(declared.statistic(recipe.decode(getval(raw), image_size), boxes)))
            captured["loss_state"] = declared.update(before, statistic, at, steps)
            keywords = {declared.parameter: captured["loss_state"]}
        return anp.mean(recipe.objective(raw, boxes, image_size, **keywords))

    step_value_and_grad = value_and_grad(objective)
    steps, step = sum(math.ceil(len(stream[e % len(stream)].boxes) / batch_size) for e in range(epochs)), 0
    rule = training_rule(optimizer, lr, schedule, steps, momentum)
    order = np.random.default_rng([seed, 1])  # the minibatch order: from the seed alone
    state = rule.init(flat)
    current_loss_state = None if carried is None else carried[1]
    history: dict[str, list[float]] = {}
    diverged = False
    first = 0
    if resume is not None:
        first, step, diverged = resume["epoch"], resume["step"], resume["diverged"]
        flat, state, current_loss_state = np.array(resume["weights"]), resume["rule_state"], resume["loss_state"]
        order.bit_generator.state = resume["order"]
        history = {key: list(values) for key, values in resume["history"].items()}
    last = epochs if stop_after is None else min(epochs, stop_after)
    for epoch in range(first, last if not diverged else first):
        began = time.perf_counter()
        losses: list[float] = []
        train_split = stream[epoch % len(stream)]
        permutation = order.permutation(len(train_split.boxes))
        for start in range(0, len(permutation), batch_size):
            chosen = permutation[start:start + batch_size]
            # the targets in the network's dtype, as outputs casts the images: nothing promotes its arithmetic
            value, gradient = step_value_and_grad(flat, train_split.images[chosen],
                                                  train_split.boxes[chosen].astype(flat.dtype), current_loss_state,
                                                  step)
            if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
                diverged = True
                break
            flat, state = apply(flat, gradient, rule, state, step)
            current_loss_state = captured.get("loss_state", current_loss_state)
            step += 1
            losses.append(float(value))
        metrics = measure(unflatten(flat), splits["val"], model, recipe)
        for key, value in dict(metrics, train_loss=float(np.mean(losses)) if losses else math.nan,
                               seconds=time.perf_counter() - began).items():
            history.setdefault(key, []).append(value)
        if progress is not None:
            progress(epoch + 1, epochs)
        if diverged or not np.all(np.isfinite(flat)):
            diverged = True
            break
    checkpoint = dict(epoch=epochs if diverged else last, step=step, weights=flat.copy(), rule_state=state,
                      order=order.bit_generator.state, loss_state=current_loss_state,
                      history={key: list(values) for key, values in history.items()}, diverged=diverged)
    final = unflatten(flat)
    return dict(history=history, val=measure(final, splits["val"], model, recipe),
                test=measure(final, splits["test"], model, recipe), params=final, diverged=diverged,
                checkpoint=checkpoint, loss_state=current_loss_state)


def _carried(loss: Spec) -> tuple[LossState, Any] | None:
    """The loss state of a plain head's loss (`sandbox.losses.formulas.loss_state`) and where it starts, or None
    (a stateless loss, a weighted sum, a head recipe)."""
    if isinstance(loss, str) and loss.strip().lower() in RECIPES:
        return None
    return loss_state(get_loss(loss))


def training_gradient(gradient: object) -> str:
    """``'autograd'`` or ``'fused'`` (any case), the engine's rule (`sandbox.optim.settings.gradient_backend`) less
    its replacement functions, which take a box's parameters and not a network's; ValueError otherwise."""
    backend = gradient_backend(gradient)
    if callable(backend):
        raise ValueError(f"training's gradient is one of {', '.join(GRADIENTS)}; got the function {backend!r} "
                         f"(a replacement gradient(theta, target) is for the box-fitting engine only)")
    return backend


def measure(params: Params, split: Dataset, model: str, head: str | Recipe,
            batch_size: int = 512) -> dict[str, int | float]:
    """`sandbox.learning.metrics.evaluate` of the network's predictions on a split (`predictions`)."""
    return evaluate(predictions(params, split, model, head, batch_size), split.boxes, split.images.shape[-1])


def predictions(params: Params, split: Dataset, model: str, head: str | Recipe, batch_size: int = 512) -> FloatArray:
    """The network's box for every image of a split, (n, 4) ``xyxy`` in pixels, float64; a non-finite box is
    replaced by one far outside the image, so that it counts as a miss.

    `head` is the `sandbox.learning.heads.Recipe` that decodes the outputs, or the
    parameterisation of a plain head's four.
    """
    image_size = split.images.shape[-1]
    pred = np.concatenate([np.asarray(head_predict(params, split.images[i:i + batch_size], model, head), dtype=float)
                           for i in range(0, len(split.boxes), batch_size)])
    return np.where(np.isfinite(pred), pred, -10.0 * image_size)


def training_rule(optimizer: str, lr: Rate, schedule: str | Schedule, steps: int, momentum: float = 0.9) -> Transform:
    """The update rule of training: the engine's (`sandbox.optim.rules.first_order`), Adam or SGD as
    heavy-ball momentum, times `lr` and `schedule` over all `steps`."""
    factor = schedule if callable(schedule) else SCHEDULES[schedule_name(schedule)]
    return first_order("adam" if optimizer == "adam" else "momentum", lr, factor, steps,
                       options={} if optimizer == "adam" else {"beta": momentum})


def choose_rates(runs: Iterable[Mapping[str, Any]], metric: str = SELECTION_METRIC) -> dict[str, float]:
    """The learning rate per loss that does best on the validation split, averaged over seeds.

    Parameters
    ----------
    runs : iterable of dict
        One per (loss, seed, lr): ``loss``, ``seed``, ``lr`` and ``val_<metric>``.

    Returns
    -------
    dict
        loss -> the chosen rate. Ties go to the smaller rate; a rate whose runs are
        not all finite ranks last.
    """
    scores: dict[str, dict[float, list[float]]] = {}
    for run in runs:
        scores.setdefault(run["loss"], {}).setdefault(float(run["lr"]), []).append(float(run[f"val_{metric}"]))
    chosen: dict[str, float] = {}
    for loss, by_rate in scores.items():
        def score(rate: float) -> tuple[float, float]:
            values = np.array(by_rate[rate])
            return (np.mean(values) if np.all(np.isfinite(values)) else -np.inf, -rate)
        chosen[loss] = max(by_rate, key=score)
    return chosen


def tuning_seeds(seeds: Sequence[int], config: Mapping[str, Any]) -> list[int]:
    """The seeds a rate is chosen on: the first ``config['tune_seeds']`` of the seed axis, or all of them (0)."""
    count = config.get("tune_seeds", 0)
    return list(seeds[:count] if count else seeds)


def grown_rate(rates: Sequence[float], end: int) -> float:
    """The next rate beyond one end of a grid (``end`` 0: below its smallest, -1: above its largest).

    The step is the ratio of the two rates at that end, so a grid of half decades grows by half a
    decade; a grid of one rate grows by a factor of 3.
    """
    rates = sorted(rates)
    step = rates[end] / rates[end + 1 if end == 0 else end - 1] if len(rates) > 1 else (1 / 3 if end == 0 else 3.0)
    return float(f"{rates[end] * step:.2g}")


def protocol_cells(sweep: Mapping[str, Any], grid: Sequence[dict[str, Any]], rows: Iterable[Mapping[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Every cell a learning sweep needs, given the rows of the cells that have finished.

    The rule, the same for every loss:

    1. each loss trains at every rate of the grid on the tuning seeds (`tuning_seeds`);
    2. once those have finished, the rate that does best on validation (`choose_rates`) is
       chosen; if it is at an end of the grid, and the grid has grown at that end fewer
       than ``config['grow']`` times, the grid grows by one rate beyond it (`grown_rate`)
       and the loss trains there on the tuning seeds too, and step 2 is taken again;
    3. when the chosen rate is inside the grid (or the grid may grow no more), the loss
       trains at that rate on the other seeds.

    So the cells depend on results: `sandbox.runs.sweep.run` runs them in rounds until
    none is missing. `grid` is the sweep's own grid (`sandbox.runs.sweep.cells` without
    rows), loss x lr x seed with any exclusions; the result is in a fixed order: the
    grid's cells on the tuning seeds, then each loss's grown rates, then its other seeds.
    """
    config = sweep["learning"]
    tuning = tuning_seeds(sweep["axes"]["seed"], config)
    others = [seed for seed in sweep["axes"]["seed"] if seed not in tuning]
    scores: dict[tuple[str, float, int], Mapping[str, Any]] = {
        (row["loss"], float(row["lr"]), int(float(row["seed"]))): row for row in rows}
    result = [cell for cell in grid if cell["seed"] in tuning]
    for loss in dict.fromkeys(cell["loss"] for cell in grid):
        rates = sorted({cell["lr"] for cell in grid if cell["loss"] == loss})
        original = list(rates)
        while True:
            needed = [(loss, rate, seed) for rate in rates for seed in tuning]
            if not all(key in scores for key in needed):
                break
            chosen = choose_rates([dict(scores[key], lr=key[1]) for key in needed])[loss]
            ends = [end for end in (0, -1) if chosen == rates[end]
                    and sum(rate < original[0] if end == 0 else rate > original[-1] for rate in rates)
                    < config.get("grow", 0)]
            if ends:
                rate = grown_rate(rates, ends[0])
                rates = sorted([*rates, rate])
                result += [dict(loss=loss, lr=rate, seed=seed) for seed in tuning]
                continue
            result += [dict(loss=loss, lr=chosen, seed=seed) for seed in others]
            break
    return result


def chosen_rates(sweep: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The rate chosen for each loss of a learning sweep (`protocol_cells`' rule), from its rows:
    the best on validation over the tuning seeds, the grown rates included."""
    tuning = tuning_seeds(sweep["axes"]["seed"], sweep["learning"])
    return choose_rates([row for row in rows if int(float(row["seed"])) in tuning])


def still_improving(history: Sequence[float], share: float = 0.2, tolerance: float = 0.01) -> bool:
    """Whether a validation curve still rose by more than `tolerance` (relative) over its last `share`
    of epochs: the value after the last epoch against the value before the last fifth began.

    A run for which this holds has not converged: more epochs would have changed it.
    A curve of fewer than two epochs has no last fifth to judge and counts as not converged.

        >>> still_improving([0.1, 0.3, 0.40, 0.41, 0.4])     # 0.41 -> 0.4: flat
        False
        >>> still_improving([0.1, 0.2, 0.3, 0.40, 0.45])     # 0.40 -> 0.45: 12 % better
        True
    """
    values = np.asarray(history, dtype=float)
    if len(values) < 2:
        return True
    last = max(1, round(share * len(values)))
    before = values[-last - 1]
    return bool(values[-1] - before > tolerance * abs(before))


_SPLITS: dict[tuple[str, ...], dict[str, Any]] = {}
DATA_KEYS = ("data_seed", "images", "fresh", "epochs", "label_noise", "image_size", "min_size", "distractors")
"""The settings of an experiment (`run`) that decide its images."""


class LearningConfig(TypedDict):
    """An experiment's settings that every run shares (`LEARNING_DEFAULTS`, `check_config`)."""

    model: str
    param: str
    optimizer: str
    epochs: int
    batch_size: int
    init: str
    images: list[int]
    """How many images in the train (per epoch, when ``fresh``), val and test splits."""
    fresh: bool
    """A new training set every epoch (`sandbox.learning.synthetic.make_stream`), rather than one set reused."""
    image_size: int
    min_size: float
    label_noise: float
    distractors: int
    data_seed: int
    dtype: str
    """The networks' float type: ``'float32'`` to train, ``'float64'`` for gradient checks."""
    gradient: str
    """How the loss is differentiated (`train`): ``'autograd'``, or ``'fused'``, its fused kernel where it has one."""
    tune_seeds: int
    """Seeds a loss's rate is chosen on (the first of the seed axis); the others train at the chosen rate only.
    0: every seed trains at every rate."""
    grow: int
    """Times the rate grid may grow at each end when a loss's chosen rate is there (`protocol_cells`)."""


LEARNING_DEFAULTS: LearningConfig = dict(model="cnn", param="cxcywh", optimizer="adam", epochs=20, batch_size=64,
                                         init="default", images=[4000, 1000, 5000], fresh=True, image_size=32,
                                         min_size=1.0, label_noise=0.0, distractors=0, data_seed=0, dtype="float32",
                                         gradient="autograd", tune_seeds=1, grow=2)
"""The settings of an experiment that every run shares (`run`), as `experiments/train_regressor.py` has them."""

LEARNING_PRESETS = {
    "full": dict(losses=["l2", "l1", "smooth_l1", "iou", "giou", "diou", "ciou", "gfl", "detr"], seeds=8, lrs=[1e-3, 3e-3, 1e-2],
                 **{key: LEARNING_DEFAULTS[key] for key in ("epochs", "model", "batch_size", "grow")},
                 **dict(zip(("train", "val", "test"), LEARNING_DEFAULTS["images"]))),
    "quick": dict(losses=["l2", "iou", "giou", "diou"], seeds=1, epochs=12, lrs=[3e-3], train=4000, val=500,
                  test=2000, model="cnn", batch_size=64, grow=0),
}
"""The learning experiment's two presets (`experiments/train_regressor.py`, its ``--quick``): the losses, seeds,
rate grid and the settings that differ from `LEARNING_DEFAULTS`."""


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """An experiment's settings (`LEARNING_DEFAULTS`' keys) with names in their own spelling; ValueError
    naming the first bad one."""
    config = dict(config)
    config["model"] = canonical(config["model"], MODELS, "model")
    config["optimizer"] = canonical(config["optimizer"], OPTIMIZERS, "optimizer")
    config["param"] = get_parameterisation(config["param"]).name
    config["init"] = canonical(config["init"], INITS, "init")
    config["dtype"] = canonical(config["dtype"], DTYPES, "dtype")
    config["gradient"] = training_gradient(config["gradient"])
    for key, low in [("epochs", 1), ("batch_size", 1), ("distractors", 0), ("data_seed", 0), ("tune_seeds", 0),
                     ("grow", 0)]:
        if not (isinstance(config[key], int) and not isinstance(config[key], bool) and config[key] >= low):
            raise ValueError(f"{key} must be a whole number >= {low}; got {config[key]!r}")
    if not isinstance(config["fresh"], bool):
        raise ValueError(f"fresh must be true or false; got {config['fresh']!r}")
    images = config["images"]
    if not (isinstance(images, (list, tuple)) and len(images) == 3 and all(isinstance(n, int) and n >= 1
                                                                           for n in images)):
        raise ValueError(f"images must be three counts >= 1 (train, val, test); got {images!r}")
    config["images"] = list(images)
    if not 0 <= config["label_noise"] < 1:
        raise ValueError(f"label_noise must be a share of the box size in [0, 1); got {config['label_noise']!r}")
    make_dataset(1, 0, image_size=config["image_size"], min_size=config["min_size"])  # the image and object sizes
    init_network(config["model"], config["image_size"], 0, param=config["param"])  # the model fits the image
    return config


def splits_for(config: Mapping[str, Any]) -> dict[str, Any]:
    """The data an experiment's `config` describes (`DATA_KEYS`), made once per process: ``'val'`` and
    ``'test'`` Datasets, and ``'train'``, a Dataset or, when ``fresh``, a list of one per epoch."""
    key = tuple(str(config.get(k)) for k in DATA_KEYS)
    if key not in _SPLITS:
        train, val, test = config["images"]
        options = dict(image_size=config["image_size"], min_size=config["min_size"],
                       distractors=config["distractors"])
        splits: dict[str, Any] = make_splits(config["data_seed"], train, val, test, label_noise=config["label_noise"],
                                             **options)
        if config.get("fresh"):  # kept in the networks' dtype, half the memory in float32; the networks cast
            splits["train"] = [Dataset(epoch.images.astype(config.get("dtype", "float64")), epoch.boxes)  # to it
                               for epoch in make_stream(config["data_seed"], train, config["epochs"],
                                                        label_noise=config["label_noise"], **options)]
        _SPLITS[key] = splits
    return _SPLITS[key]


def test_split(config: Mapping[str, Any]) -> Dataset:
    """The test images of an experiment's `config`, without making its training images (`splits_for`'s, to
    the bit: each split has its own stream of the data seed)."""
    key = tuple(str(config.get(k)) for k in DATA_KEYS)
    if key in _SPLITS:
        return _SPLITS[key]["test"]
    return make_splits(config["data_seed"], 1, 1, config["images"][2], image_size=config["image_size"],
                       min_size=config["min_size"], distractors=config["distractors"])["test"]


def run(task: tuple[Mapping[str, Any], Spec, int, float], keep: int = 8) -> dict[str, Any]:
    """One run of an experiment: ``task`` is (config, loss, seed, lr); a plain dict to save as JSON.

    `config` holds `DATA_KEYS` and ``model``, ``param``, ``optimizer``, ``epochs``,
    ``batch_size``, ``init``, ``dtype``, ``gradient``. The result has the run's ``loss``, ``seed``, ``lr``,
    ``diverged``, ``converged`` (not `still_improving` on validation accuracy), ``val`` and
    ``test`` metrics, ``test_ious`` (each test image's IoU, in order: what paired comparisons
    between losses read), the per-epoch ``history``, and ``gallery``: the predicted boxes of the
    first `keep` test images. `loss` may be a head recipe's name (`sandbox.learning.heads`).
    """
    config, loss, seed, lr = task
    splits = splits_for(config)
    result = train(loss, splits, model=config["model"], param=config["param"], optimizer=config["optimizer"],
                   lr=lr, epochs=config["epochs"], batch_size=config["batch_size"], seed=seed, init=config["init"],
                   dtype=config["dtype"], gradient=config["gradient"])
    pred = predictions(result["params"], splits["test"], config["model"],
                       recipe_for(loss, config["param"], config["init"]))
    ious = box_iou(pred, splits["test"].boxes)  # the same predictions as result["test"], image by image
    return dict(loss=loss, seed=seed, lr=lr, diverged=result["diverged"],
                converged=not still_improving(result["history"]["accuracy_mean"]), val=result["val"],
                test=result["test"], test_ious=[float(v) for v in np.ravel(ious)], history=result["history"],
                gallery=pred[:keep].tolist())
