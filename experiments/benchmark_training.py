"""Training throughput (images/s) of the sandbox's box regressors, beside PyTorch eager on the same network.

For each --model (``cnn``, ``mlp``), the sandbox's training is timed as it runs in
the experiments: `sandbox.learning.training.train` whole, with each of its gradients
(``'autograd'``, its default, and ``'fused'``, the GIoU loss's fused kernel as one
autograd primitive), in float32 (its default) and in float64, on --images 32 x 32
training images from `sandbox.learning.synthetic.make_splits`, for --epochs epochs
of minibatch Adam (rate 1e-3, cosine schedule) on the GIoU loss of `predict`'s boxes
(``cxcywh`` outputs), averaged over minibatches of --batch-size. Its validation after each
epoch is on a split of one image, so the time is the training steps', plus the
weights' initialisation.

When PyTorch happens to be importable (it is not a dependency), the same
training written in PyTorch eager is timed beside it, in float32 and float64:
the same network (for the CNN: the grey image and its two coordinate channels,
three 3 x 3 convolutions of stride 2 with zero padding 1, ReLU, dense layers),
started from the sandbox's initial weights, on the same minibatches in `train`'s
order, the outputs read as ``cxcywh`` in image units times the image side to
``xyxy``, torchvision's GIoU loss written out, ``torch.optim.Adam`` with the same
schedule. In float64 every engine's last-epoch mean loss must agree with
PyTorch's to rounding: the script prints the check, which shows that they train
the same network.

Both engines compute on one thread: the script sets ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` to 1 before numpy is imported (unless
already set) and calls ``torch.set_num_threads(1)``. After one untimed run each
(one-time costs), the engines take turns, --repeats rounds, so that a change in
the machine's load falls on all of them alike, in an order that rotates each round;
each figure is the median of its runs. The script prints images/s per engine, the ratio of each sandbox engine's
to PyTorch's in each dtype ("sandbox (fused) is 1.23x PyTorch eager float32": above
1, the sandbox is faster), and writes ``benchmark.csv`` and ``config.json`` under --out.

    python experiments/benchmark_training.py --out results/benchmark_training
"""
# %%
import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one thread for numpy's products, as torch gets below

import importlib.util
import math
import statistics
import time
from pathlib import Path

import numpy as np

from sandbox.runs.cli import check_out, experiment_parser, positive_int
from sandbox.optim.rules import SCHEDULES
from sandbox.learning.networks import COORDINATES, DTYPES, MODELS, coordinate_channels, init_network
from sandbox.runs.records import provenance, write_csv, write_json
from sandbox.learning.synthetic import make_splits
from sandbox.learning.training import train
from sandbox.optim.settings import GRADIENTS

IMAGE_SIZE = 32
LEARNING_RATE = 1e-3
SCHEDULE = "cosine"
AGREEMENT = 1e-9
"""How far apart an engine's float64 last-epoch loss and PyTorch's may be: rounding, compounded over the steps."""
COLUMNS = ["model", "engine", "dtype", "images", "steps", "seconds", "images_per_s", "ratio_to_torch",
           "last_epoch_loss"]
SANDBOX = {gradient: f"sandbox ({gradient})" for gradient in GRADIENTS}
"""The sandbox's engines: `train` with each of its gradients."""
TORCH = "torch eager"


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--model", nargs="+", choices=MODELS, default=["cnn", "mlp"], help="networks to time")
    parser.add_argument("--images", type=positive_int, default=1024, help="training images per epoch")
    parser.add_argument("--epochs", type=positive_int, default=2, help="passes over the training images per run")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per training step")
    parser.add_argument("--repeats", type=positive_int, default=5, help="runs per figure; the median is reported")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images, the weights and the minibatch order")
    parser.add_argument("--out", type=Path, default=Path("results/benchmark_training"),
                        help="folder for benchmark.csv and config.json")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    return args


def sandbox_run(model, splits, epochs, batch_size, seed, dtype, gradient="autograd"):
    """A run of `train`, in `dtype`, with `gradient`: returns (steps, last epoch's mean loss)."""
    def run():
        result = train("giou", splits, model=model, param="cxcywh", optimizer="adam", lr=LEARNING_RATE,
                       epochs=epochs, batch_size=batch_size, seed=seed, schedule=SCHEDULE, dtype=dtype,
                       gradient=gradient)
        if result["diverged"]:
            raise RuntimeError(f"the sandbox's {model} diverged; the timing would not be of full training")
        return epochs * math.ceil(len(splits["train"].boxes) / batch_size), result["history"]["train_loss"][-1]
    return run


def torch_run(model, splits, epochs, batch_size, seed, dtype):
    """A run of the same training in PyTorch eager, one thread, in `dtype` (``'float64'`` or ``'float32'``)."""
    import torch
    torch.set_num_threads(1)
    dtype = getattr(torch, dtype)
    images = torch.as_tensor(splits["train"].images, dtype=dtype)
    boxes = torch.as_tensor(splits["train"].boxes, dtype=dtype)
    count, image_size = len(boxes), images.shape[-1]
    steps = epochs * math.ceil(count / batch_size)
    factor = SCHEDULES[SCHEDULE]

    def run():
        # the sandbox's float64 weights: its float32 ones are these, rounded, as torch rounds them
        params = torch_params(init_network(model, image_size, seed, dtype="float64"), dtype)
        optimizer = torch.optim.Adam(params.values(), lr=LEARNING_RATE)  # Kingma and Ba's defaults, as train's
        order = np.random.default_rng([seed, 1])  # train's minibatch order
        step = 0
        for _ in range(epochs):
            permutation, losses = order.permutation(count), []
            for start in range(0, count, batch_size):
                chosen = torch.as_tensor(permutation[start:start + batch_size])
                for group in optimizer.param_groups:
                    group["lr"] = LEARNING_RATE * factor(step, steps)
                optimizer.zero_grad()
                loss = torch_giou_loss(torch_predict(params, images[chosen]), boxes[chosen]).mean()
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(loss.item())
        return steps, float(np.mean(losses))
    return run


def torch_params(params, dtype):
    """`init_network`'s weights as PyTorch leaf tensors in PyTorch's layouts.

    Convolution weights go from (3, 3, in, out) to (out, in, 3, 3). The first dense
    layer after the convolutions has its rows reordered from the sandbox's
    (row, column, channel) flattening to PyTorch's (channel, row, column), so the
    two networks compute the same function.
    """
    import torch
    converted = {}
    for name, value in params.items():
        if name.startswith("conv") and name.endswith("_weights"):
            value = np.transpose(value, (3, 2, 0, 1))
        if name == "dense1_weights" and "conv1_weights" in params:
            channels = len(params[f"conv{_count_convolutions(params)}_bias"])
            side = math.isqrt(len(value) // channels)
            value = np.reshape(np.transpose(np.reshape(value, (side, side, channels, -1)), (2, 0, 1, 3)),
                               (len(value), -1))
        converted[name] = torch.tensor(np.ascontiguousarray(value), dtype=dtype, requires_grad=True)
    return converted


def _count_convolutions(params):
    number = 0
    while f"conv{number + 1}_weights" in params:
        number += 1
    return number


def torch_predict(params, images):
    """`sandbox.learning.networks.predict` with ``param='cxcywh'`` in PyTorch: (n, s, s) images -> (n, 4) xyxy pixels."""
    import torch
    import torch.nn.functional as F
    n, image_size = images.shape[0], images.shape[-1]
    if "conv1_weights" in params:
        # the sandbox's coordinate channels (x, then y), made once per image size and dtype
        coordinates = _coordinates(image_size, images.dtype)
        features = torch.cat([images[:, None], coordinates.expand(n, COORDINATES, image_size, image_size)], dim=1)
    else:
        features = images
    number = 1
    while f"conv{number}_weights" in params:
        features = torch.relu(F.conv2d(features, params[f"conv{number}_weights"], params[f"conv{number}_bias"],
                                       stride=2, padding=1))
        number += 1
    features = features.flatten(1)
    number = 1
    while f"dense{number}_weights" in params:
        features = torch.relu(torch.addmm(params[f"dense{number}_bias"], features, params[f"dense{number}_weights"]))
        number += 1
    cx, cy, w, h = torch.addmm(params["output_bias"], features, params["output_weights"]).unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * image_size


_COORDINATES = {}


def _coordinates(image_size, dtype):
    """The two coordinate channels of `coordinate_channels`, as a (1, 2, s, s) tensor."""
    import torch
    if (image_size, dtype) not in _COORDINATES:
        channels = coordinate_channels(np.zeros((1, image_size, image_size)))[..., 1:]  # (1, s, s, 2)
        _COORDINATES[image_size, dtype] = torch.as_tensor(np.transpose(channels, (0, 3, 1, 2)).copy(), dtype=dtype)
    return _COORDINATES[image_size, dtype]


def torch_giou_loss(boxes1, boxes2, eps=1e-7):
    """torchvision 0.28's ops.generalized_box_iou_loss (BSD-3-Clause), op for op, unreduced, on ordered corners.

    torchvision's loss takes x2 >= x1 and y2 >= y1 for granted; a network's raw
    outputs break that (a third of the MLP's first boxes are inverted). The
    predicted corners are therefore put in order first, as `sandbox.giou_loss`
    reads a prediction, so that both engines train on the same loss.
    """
    import torch
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1, x2 = torch.minimum(x1, x2), torch.maximum(x1, x2)
    y1, y2 = torch.minimum(y1, y2), torch.maximum(y1, y2)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    iouk = intsctk / (unionk + eps)
    area_c = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return 1 - (iouk - ((area_c - unionk) / (area_c + eps)))


def time_in_turns(runs, repeats):
    """The median seconds of `repeats` calls of each run, and what each run's last call returned.

    One untimed call of each first (a library's lazy set-up); then the runs take
    turns, so that a change in the machine's load falls on all of them alike, in an
    order that rotates by one each round, so that no run always comes first or always
    follows the same other (on a loaded machine, a run's time depends on its place).
    """
    returned = {key: run() for key, run in runs.items()}
    times = {key: [] for key in runs}
    keys = list(runs)
    for round_number in range(repeats):
        shift = round_number % len(keys)
        for key in keys[shift:] + keys[:shift]:
            run = runs[key]
            began = time.perf_counter()
            returned[key] = run()
            times[key].append(time.perf_counter() - began)
    return {key: (statistics.median(times[key]), returned[key]) for key in runs}


def main(argv=None):
    args = parse_args(argv)
    splits = make_splits(args.seed, train=args.images, val=1, test=1, image_size=IMAGE_SIZE)
    has_torch = importlib.util.find_spec("torch") is not None
    if not has_torch:
        print("PyTorch was not found (it is not a dependency): timing the sandbox alone")
    settings = (splits, args.epochs, args.batch_size, args.seed)
    rows = []
    for model in args.model:
        runs = {(SANDBOX[gradient], dtype): sandbox_run(model, *settings, dtype, gradient)
                for gradient in GRADIENTS for dtype in DTYPES}
        if has_torch:
            runs.update({(TORCH, dtype): torch_run(model, *settings, dtype) for dtype in DTYPES})
        for (engine, dtype), (seconds, (steps, loss)) in time_in_turns(runs, args.repeats).items():
            rows.append(dict(model=model, engine=engine, dtype=dtype, images=args.epochs * args.images, steps=steps,
                             seconds=seconds, images_per_s=args.epochs * args.images / seconds, last_epoch_loss=loss))
    report(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "benchmark.csv", COLUMNS,
              [{k: (f"{v:.6g}" if isinstance(v, float) and k != "last_epoch_loss" else v) for k, v in row.items()}
               for row in rows])
    threads = {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    write_json(args.out / "config.json", dict(models=args.model, images=args.images, epochs=args.epochs,
                                              batch_size=args.batch_size, repeats=args.repeats, seed=args.seed,
                                              image_size=IMAGE_SIZE, loss="giou", param="cxcywh", optimizer="adam",
                                              lr=LEARNING_RATE, schedule=SCHEDULE, dtypes=list(DTYPES),
                                              gradients=list(GRADIENTS),
                                              threads=threads, torch=_torch_version(), **provenance()))


def report(rows):
    """Print the table, each sandbox engine's speed as a multiple of PyTorch's, and the float64 agreement
    check; fill each row's ``ratio_to_torch`` (images/s over PyTorch eager's in the same model and dtype)."""
    find = {(row["model"], row["engine"], row["dtype"]): row for row in rows}
    for row in rows:
        torch_row = find.get((row["model"], TORCH, row["dtype"]))
        row["ratio_to_torch"] = row["images_per_s"] / torch_row["images_per_s"] if torch_row else ""
    print(f"{'model':<5} {'engine':<18} {'dtype':<7} {'images/s':>9} {'last-epoch loss':>16}")
    for row in rows:
        print(f"{row['model']:<5} {row['engine']:<18} {row['dtype']:<7} {row['images_per_s']:>9.0f} "
              f"{row['last_epoch_loss']:>16.10f}")
    for model in dict.fromkeys(row["model"] for row in rows):
        for dtype in DTYPES:
            if (model, TORCH, dtype) not in find:
                continue
            torch = find[model, TORCH, dtype]
            for engine in SANDBOX.values():
                if (model, engine, dtype) in find:
                    sandbox = find[model, engine, dtype]
                    print(f"{model}: {engine} is {sandbox['ratio_to_torch']:.2f}x PyTorch eager {dtype} "
                          f"({sandbox['images_per_s']:.0f} vs {torch['images_per_s']:.0f} images/s)")
        for engine in SANDBOX.values():
            if (model, TORCH, "float64") in find and (model, engine, "float64") in find:
                gap = abs(find[model, engine, "float64"]["last_epoch_loss"]
                          - find[model, TORCH, "float64"]["last_epoch_loss"])
                verdict = "agree" if gap <= AGREEMENT else "DISAGREE: the engines do not train the same network"
                print(f"{model}: float64 last-epoch losses of {engine} and PyTorch differ by {gap:.1e} "
                      f"(at most {AGREEMENT:.0e}): {verdict}")


def _torch_version():
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return torch.__version__


if __name__ == "__main__":
    main()
