"""Training throughput (images/s) of the sandbox's box regressors, beside PyTorch eager when it is installed.

For each --model (``mlp``, ``cnn``), the sandbox's training is timed as it runs in
the experiments: `sandbox.learning.training.train` whole (autograd, float64), on --images
32 x 32 training images from `sandbox.learning.synthetic.make_splits`, for --epochs epochs
of minibatch Adam (rate 1e-3, cosine schedule) on the GIoU loss of `predict`'s
boxes (``cxcywh`` outputs), averaged over minibatches of --batch-size. Its
validation after each epoch is on a split of one image, so the time is the
training steps', plus the weights' initialisation. When PyTorch happens to be
importable (it is not a dependency), the same network written in PyTorch eager is
timed on the same images, in float64 and in float32, on one thread
(``torch.set_num_threads(1)``): the same layer shapes ('same'-padded 3 x 3
convolutions, 2 x 2 average pools, ReLU, dense layers), the outputs read as
``cxcywh`` in image units times the image size to ``xyxy``, torchvision's GIoU
loss written out, ``torch.optim.Adam`` with the same schedule. It starts from the
sandbox's initial weights and draws the minibatches in `train`'s order, so in
float64 its last epoch's mean loss must match the sandbox's: the printed losses
check that the two engines train the same network.

The script sets ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` to 1 before numpy is imported (unless already set), so that
both engines compute on one thread. Each figure is the median of --repeats runs,
after one untimed run per engine that pays its one-time costs;
the script prints images/s per engine and its ratio to the sandbox's (above 1:
faster than the sandbox), and writes ``benchmark.csv`` and ``config.json`` under
--out.

    python experiments/benchmark_training.py --out results/benchmark_training
"""
# %%
import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one thread for numpy's products, as torch gets below

import importlib.util
import math
from pathlib import Path

import numpy as np

from sandbox.runs.cli import check_out, experiment_parser, median_run, positive_int
from sandbox.optim.rules import SCHEDULES
from sandbox.learning.networks import MODELS, init_network
from sandbox.runs.records import provenance, write_csv, write_json
from sandbox.learning.synthetic import make_splits
from sandbox.learning.training import train

IMAGE_SIZE = 32
LEARNING_RATE = 1e-3
SCHEDULE = "cosine"
COLUMNS = ["model", "engine", "dtype", "images", "steps", "seconds", "images_per_s", "ratio_to_sandbox",
           "last_epoch_loss"]


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS), help="networks to time")
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


def sandbox_run(model, splits, epochs, batch_size, seed):
    def run():
        result = train("giou", splits, model=model, param="cxcywh", optimizer="adam", lr=LEARNING_RATE,
                       epochs=epochs, batch_size=batch_size, seed=seed, schedule=SCHEDULE)
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
        params = torch_params(init_network(model, image_size, seed), dtype)
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
    image_size = images.shape[-1]
    features = images[:, None]  # (n, channels, height, width)
    number = 1
    while f"conv{number}_weights" in params:
        features = F.avg_pool2d(torch.relu(F.conv2d(features, params[f"conv{number}_weights"],
                                                    params[f"conv{number}_bias"], padding=1)), 2)
        number += 1
    features = features.flatten(1)
    number = 1
    while f"dense{number}_weights" in params:
        features = torch.relu(torch.addmm(params[f"dense{number}_bias"], features, params[f"dense{number}_weights"]))
        number += 1
    cx, cy, w, h = torch.addmm(params["output_bias"], features, params["output_weights"]).unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * image_size


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


def main(argv=None):
    args = parse_args(argv)
    splits = make_splits(args.seed, train=args.images, val=1, test=1, image_size=IMAGE_SIZE)
    has_torch = importlib.util.find_spec("torch") is not None
    if not has_torch:
        print("PyTorch is not installed: timing the sandbox alone")
    rows = []
    for model in args.model:
        engines = [("sandbox (autograd)", "float64",
                    sandbox_run(model, splits, args.epochs, args.batch_size, args.seed))]
        if has_torch:
            engines += [("torch eager", dtype, torch_run(model, splits, args.epochs, args.batch_size, args.seed, dtype))
                        for dtype in ("float64", "float32")]
        for engine, dtype, run in engines:
            seconds, (steps, loss) = median_run(run, args.repeats, warm_up=True)  # PyTorch's lazy set-up
            rows.append(dict(model=model, engine=engine, dtype=dtype, images=args.epochs * args.images, steps=steps,
                             seconds=seconds, images_per_s=args.epochs * args.images / seconds, last_epoch_loss=loss))
    print(f"{'model':<5} {'engine':<18} {'dtype':<7} {'images/s':>9} {'vs sandbox':>10} {'last-epoch loss':>16}")
    for row in rows:
        sandbox_speed = next(r["images_per_s"] for r in rows
                             if r["model"] == row["model"] and r["engine"].startswith("sandbox"))
        row["ratio_to_sandbox"] = row["images_per_s"] / sandbox_speed
        print(f"{row['model']:<5} {row['engine']:<18} {row['dtype']:<7} {row['images_per_s']:>9.0f} "
              f"{row['ratio_to_sandbox']:>9.2f}x {row['last_epoch_loss']:>16.10f}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "benchmark.csv", COLUMNS,
              [{k: (f"{v:.6g}" if isinstance(v, float) and k != "last_epoch_loss" else v) for k, v in row.items()}
               for row in rows])
    threads = {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    write_json(args.out / "config.json", dict(models=args.model, images=args.images, epochs=args.epochs,
                                              batch_size=args.batch_size, repeats=args.repeats, seed=args.seed,
                                              image_size=IMAGE_SIZE, loss="giou", param="cxcywh", optimizer="adam",
                                              lr=LEARNING_RATE, schedule=SCHEDULE, threads=threads,
                                              torch=_torch_version(), **provenance()))


def _torch_version():
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return torch.__version__


if __name__ == "__main__":
    main()
