"""Train a small box regressor with any loss, fairly, and measure it on held-out images.

`train` fits one network (`sandbox.learning.networks`) to the training split of
`sandbox.learning.synthetic.make_splits` by minibatch Adam or SGD on any loss the sandbox can
name (a registry name with parameters, ``package.module:function``, a weighted sum
such as ``'5*l1+2*giou'``): the loss of each image's predicted box against its
label, averaged over the minibatch. Within a seed every loss starts from the same
weights and sees the minibatches in the same order: both come from the seed alone.
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
from typing import Any, Callable, Iterable, Mapping, TypedDict

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from autograd.misc import flatten

from sandbox._types import Array, FloatArray
from sandbox.geometry.names import canonical
from sandbox.geometry.parameterisations import get_parameterisation
from sandbox.learning.metrics import evaluate
from sandbox.learning.networks import INITS, MODELS, Params, init_network, predict
from sandbox.learning.synthetic import Dataset, make_dataset, make_splits
from sandbox.losses.spec import get_loss
from sandbox.optim.rules import SCHEDULES, Rate, Schedule, Transform, apply, first_order
from sandbox.optim.settings import Spec, schedule_name

OPTIMIZERS = ("adam", "sgd")
SELECTION_METRIC = "accuracy_mean"
"""What `choose_rates` maximises on the validation split: the mean accuracy over IoU 0.50:0.95."""


def train(loss: Spec, splits: Mapping[str, Dataset], model: str = "cnn", param: str = "cxcywh",
          optimizer: str = "adam", lr: float = 1e-3, epochs: int = 10, batch_size: int = 64, seed: int = 0,
          init: str = "default", momentum: float = 0.9, schedule: str | Schedule = "cosine",
          progress: Callable[[int, int], object] | None = None) -> dict[str, Any]:
    """Train one network with `loss`; return its per-epoch validation metrics and its test metrics.

    Parameters
    ----------
    loss : str or callable
        Anything `sandbox.get_loss` takes; applied to (predicted, labelled) ``xyxy``
        boxes in pixels and averaged over each minibatch.
    splits : dict
        ``'train'``, ``'val'``, ``'test'``: `sandbox.learning.synthetic.Dataset` s of one image size.
    model, param, init
        As `sandbox.learning.networks.init_network` takes them: ``'mlp'`` or ``'cnn'``; the box
        parameterisation the outputs are read in; ``'default'`` or ``'apart'`` (every
        prediction starts as one fixed box that overlaps no object).
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

    Returns
    -------
    dict
        ``history``: a dict of metrics per epoch (lists, the validation split's
        `evaluate` keys plus ``train_loss``, the mean minibatch loss, and
        ``seconds``); ``val`` and ``test``: `evaluate` of the final network;
        ``params``: the final weights; ``diverged``: True if the loss or the weights
        became non-finite (training stops there).
    """
    optimizer = canonical(optimizer, OPTIMIZERS, "optimizer")
    function = get_loss(loss)
    train_split = splits["train"]
    image_size = train_split.images.shape[-1]
    params = init_network(model, image_size, seed, init=init, param=param)
    flat, unflatten = flatten(params)

    def objective(vector: Array, images: FloatArray, boxes: FloatArray) -> Array:
        return anp.mean(function(predict(unflatten(vector), images, model, param=param), boxes))

    step_value_and_grad = value_and_grad(objective)
    steps, step = epochs * math.ceil(len(train_split.boxes) / batch_size), 0
    rule = training_rule(optimizer, lr, schedule, steps, momentum)
    order = np.random.default_rng([seed, 1])  # the minibatch order: from the seed alone
    state = rule.init(flat)
    history: dict[str, list[float]] = {}
    diverged = False
    for epoch in range(epochs):
        began = time.perf_counter()
        losses: list[float] = []
        permutation = order.permutation(len(train_split.boxes))
        for start in range(0, len(permutation), batch_size):
            chosen = permutation[start:start + batch_size]
            value, gradient = step_value_and_grad(flat, train_split.images[chosen], train_split.boxes[chosen])
            if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
                diverged = True
                break
            flat, state = apply(flat, gradient, rule, state, step)
            step += 1
            losses.append(float(value))
        metrics = measure(unflatten(flat), splits["val"], model, param)
        for key, value in dict(metrics, train_loss=float(np.mean(losses)) if losses else math.nan,
                               seconds=time.perf_counter() - began).items():
            history.setdefault(key, []).append(value)
        if progress is not None:
            progress(epoch + 1, epochs)
        if diverged or not np.all(np.isfinite(flat)):
            diverged = True
            break
    final = unflatten(flat)
    return dict(history=history, val=measure(final, splits["val"], model, param),
                test=measure(final, splits["test"], model, param), params=final, diverged=diverged)


def measure(params: Params, split: Dataset, model: str, param: str, batch_size: int = 512) -> dict[str, int | float]:
    """`sandbox.learning.metrics.evaluate` of the network's predictions on a split (non-finite boxes count as misses)."""
    image_size = split.images.shape[-1]
    pred = np.concatenate([predict(params, split.images[i:i + batch_size], model, param=param)
                           for i in range(0, len(split.boxes), batch_size)])
    pred = np.where(np.isfinite(pred), pred, -10.0 * image_size)  # a non-finite box is a box nowhere near
    return evaluate(pred, split.boxes, image_size)


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


_SPLITS: dict[tuple[str, ...], dict[str, Dataset]] = {}
DATA_KEYS = ("data_seed", "images", "label_noise", "image_size", "min_size", "distractors")
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
    """How many images in the train, val and test splits."""
    image_size: int
    min_size: float
    label_noise: float
    distractors: int
    data_seed: int


LEARNING_DEFAULTS: LearningConfig = dict(model="cnn", param="cxcywh", optimizer="adam", epochs=15, batch_size=64,
                                         init="default", images=[2000, 500, 1000], image_size=32, min_size=1.0,
                                         label_noise=0.0, distractors=0, data_seed=0)
"""The settings of an experiment that every run shares (`run`), as `experiments/train_regressor.py` has them."""

LEARNING_PRESETS = {
    "full": dict(losses=["l2", "l1", "smooth_l1", "iou", "giou", "diou", "ciou"], seeds=3, lrs=[1e-3, 3e-3, 1e-2],
                 **{key: LEARNING_DEFAULTS[key] for key in ("epochs", "model", "batch_size")},
                 **dict(zip(("train", "val", "test"), LEARNING_DEFAULTS["images"]))),
    "quick": dict(losses=["l2", "iou", "giou", "diou"], seeds=1, epochs=10, lrs=[1e-3, 3e-3], train=1000, val=200,
                  test=300, model="cnn", batch_size=32),
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
    for key, low in [("epochs", 1), ("batch_size", 1), ("distractors", 0), ("data_seed", 0)]:
        if not (isinstance(config[key], int) and not isinstance(config[key], bool) and config[key] >= low):
            raise ValueError(f"{key} must be a whole number >= {low}; got {config[key]!r}")
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


def splits_for(config: Mapping[str, Any]) -> dict[str, Dataset]:
    """The data splits an experiment's `config` describes (`DATA_KEYS`), made once per process."""
    key = tuple(str(config[k]) for k in DATA_KEYS)
    if key not in _SPLITS:
        # "images" holds three counts, train, val, test (check_config): more than a list's type tells
        _SPLITS[key] = make_splits(config["data_seed"], *config["images"],  # type: ignore[misc]
                                   label_noise=config["label_noise"], image_size=config["image_size"],
                                   min_size=config["min_size"], distractors=config["distractors"])
    return _SPLITS[key]


def run(task: tuple[Mapping[str, Any], Spec, int, float], keep: int = 8) -> dict[str, Any]:
    """One run of an experiment: ``task`` is (config, loss, seed, lr); a plain dict to save as JSON.

    `config` holds `DATA_KEYS` and ``model``, ``param``, ``optimizer``, ``epochs``,
    ``batch_size``, ``init``. The result has the run's ``loss``, ``seed``, ``lr``,
    ``diverged``, ``val`` and ``test`` metrics, the per-epoch ``history``, and
    ``gallery``: the predicted boxes of the first `keep` test images.
    """
    config, loss, seed, lr = task
    splits = splits_for(config)
    result = train(loss, splits, model=config["model"], param=config["param"], optimizer=config["optimizer"],
                   lr=lr, epochs=config["epochs"], batch_size=config["batch_size"], seed=seed, init=config["init"])
    shown = predict(result["params"], splits["test"].images[:keep], config["model"], param=config["param"])
    return dict(loss=loss, seed=seed, lr=lr, diverged=result["diverged"], val=result["val"], test=result["test"],
                history=result["history"], gallery=np.asarray(shown).tolist())
