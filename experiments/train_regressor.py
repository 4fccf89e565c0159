"""Does the loss matter when a model learns? A small box regressor trained with each loss, fairly.

Synthetic images (`sandbox.learning.synthetic`: one rectangle on a noisy background, sizes
log-uniform from a few pixels to most of the image, aspect 1:4 to 4:1) and a small
network in autograd (`sandbox.learning.networks`) are trained with each loss, for each seed,
at each learning rate of one shared grid (`sandbox.learning.training.train`). Within a seed
every loss starts from the same weights and sees the same minibatches. Each loss
then gets the rate that does best on the validation split, averaged over the seeds
(`sandbox.learning.training.choose_rates`), and is reported on the test split at that rate.
Besides losses, ``--losses`` takes detectors' heads trained with their own losses
(`sandbox.learning.heads`): ``gfl``, each edge a distribution over bins with
Distribution Focal Loss, and ``detr``, DETR's sigmoid boxes with L1 and GIoU.
The grid is a learning sweep (`sandbox.runs.sweep`, ``experiment = "learning"``: a cell
per loss, rate and seed), so --out is a sweep's folder, and ``ablate.py`` runs the
same grid from a sweep file (``experiments/sweeps/learning.toml``). Under --out:

- ``results.csv``: a row per trained network (its validation and test metrics),
  a cell at a time as each finishes, so an interrupted run loses only the runs in
  progress and the same command goes on from there; ``records/<cell>.json``: each
  run's per-epoch validation metrics and a few test predictions; ``histories/``;
  ``sweep.json`` (the settings as used) and ``versions.json``;
- ``epochs.csv``: a row per run and epoch; ``summary.csv``: a row per loss at its
  chosen rate, mean and ``_std`` over seeds;
- ``accuracy.png`` (accuracy against IoU threshold), ``epochs.png`` (validation
  accuracy against epoch), ``by_size.png`` (accuracy by object size),
  ``gallery.png`` (test images with every loss's prediction).

Run from the repository root::

    python experiments/train_regressor.py --quick --out results/train_quick
    python experiments/train_regressor.py --out results/train_regressor
    python experiments/train_regressor.py --init apart --losses iou giou diou l2 --out results/train_apart
    python experiments/train_regressor.py --losses giou gfl detr --out results/train_heads
    python experiments/train_regressor.py --replot --out results/train_regressor
"""
# %%
import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one BLAS thread per process: --workers runs the processes side by side

import argparse
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import sandbox
from sandbox.learning import heads
from sandbox.learning import metrics as box_metrics
from sandbox.learning import networks
from sandbox.runs import evidence
from sandbox.runs import sweep as sweeps
from sandbox.runs.store import finished
from sandbox.learning import synthetic
from sandbox.learning import training
from sandbox.runs.cli import add_workers, check_out, experiment_parser, run_sweep
from sandbox.views.plotting import plot_accuracy_curves, plot_by_size, plot_prediction_gallery
from sandbox.runs.records import atomic_write, read_csv, write_csv
from sandbox.runs.sweep import SweepError
from sandbox.optim.settings import GRADIENTS

DEFAULTS, QUICK = training.LEARNING_PRESETS["full"], training.LEARNING_PRESETS["quick"]
PRESET_KEYS = ("losses", "seeds", "epochs", "lrs", "model", "batch_size", "grow")


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/train_regressor"),
                        help="folder for the sweep (results.csv, records/, sweep.json), the tables and the figures")
    parser.add_argument("--quick", action="store_true",
                        help=f"the quick preset, under a minute: {', '.join(f'{k} {v}' for k, v in QUICK.items())}; "
                             f"options given explicitly still apply")
    parser.add_argument("--losses", nargs="+", help=f"losses, any spec (giou, 5*l1+2*giou, package.module:function), "
                                                    f"or a detector's head with its loss ({', '.join(heads.RECIPES)}); "
                                                    f"default {' '.join(DEFAULTS['losses'])}")
    parser.add_argument("--seeds", type=int, help=f"seeds 0, 1, ...: initial weights and minibatch order; "
                                                   f"default {DEFAULTS['seeds']}")
    parser.add_argument("--epochs", type=int, help=f"passes over the training split; default {DEFAULTS['epochs']}")
    parser.add_argument("--lrs", nargs="+", type=float,
                        help=f"the learning-rate grid every loss is tuned on; default {DEFAULTS['lrs']}")
    parser.add_argument("--model", help=f"one of {', '.join(networks.MODELS)}; default {DEFAULTS['model']}")
    parser.add_argument("--optimizer", default="adam", help=f"one of {', '.join(training.OPTIMIZERS)}")
    parser.add_argument("--param", default="cxcywh", help="the box parameterisation of the network's outputs")
    parser.add_argument("--init", default="default", choices=["default", "apart"],
                        help="apart: every prediction starts as one box that overlaps no object")
    parser.add_argument("--label-noise", type=float, default=0.0,
                        help="jitter each training box's edges by this share of its size (std)")
    parser.add_argument("--distractors", type=int, default=0, help="other shapes per image")
    parser.add_argument("--image-size", type=int, default=32, help="pixels per side (a multiple of 8 for the cnn)")
    parser.add_argument("--min-size", type=float, default=1.0,
                        help="smallest object, sqrt(w h) in pixels (at 32 pixels, COCO's small class, scaled, is "
                             "below 1.85)")
    parser.add_argument("--batch-size", type=int, help=f"images per step; default {DEFAULTS['batch_size']}")
    parser.add_argument("--images", nargs=3, type=int, metavar=("TRAIN", "VAL", "TEST"),
                        help=f"training images (per epoch, when fresh), validation and test images; default "
                             f"{DEFAULTS['train']} {DEFAULTS['val']} {DEFAULTS['test']}")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the images, the same for every run")
    parser.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=training.LEARNING_DEFAULTS["fresh"],
                        help="a new set of training images every epoch (--no-fresh: one set, reused); default "
                             f"{'--fresh' if training.LEARNING_DEFAULTS['fresh'] else '--no-fresh'}")
    parser.add_argument("--dtype", default=training.LEARNING_DEFAULTS["dtype"], choices=training.DTYPES,
                        help="the networks' float type (float64 is for gradient checks)")
    parser.add_argument("--gradient", default=training.LEARNING_DEFAULTS["gradient"], choices=GRADIENTS,
                        help="how the loss is differentiated: autograd through its own operations, or fused: its "
                             "fused kernel as one step of autograd (a registry loss; others run on autograd), the "
                             "same gradient to rounding, faster")
    parser.add_argument("--tune-seeds", type=int, default=training.LEARNING_DEFAULTS["tune_seeds"],
                        help="seeds each loss's rate is chosen on; the other seeds train at the chosen rate only "
                             "(0: every seed at every rate)")
    parser.add_argument("--grow", type=int, help=f"times the rate grid may grow at each end where a loss's chosen "
                                                 f"rate lies; default {DEFAULTS['grow']}")
    add_workers(parser, "runs at once, in worker processes", scheduler="runs")
    parser.add_argument("--replot", action="store_true", help="only redraw the figures and tables from --out")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=("results.csv", "sweep.json"), earlier="runs")
    if not args.replot:
        try:
            resolve(args)
            args.sweep = make_sweep(args)
        except ValueError as error:
            parser.error(str(error))
    return args, parser


def resolve(args):
    """Fill the preset's values into the options left out, then check every one; ValueError naming a bad one."""
    preset = QUICK if args.quick else DEFAULTS
    for key in PRESET_KEYS:
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.images is None:
        args.images = [preset["train"], preset["val"], preset["test"]]
    args.losses = [heads.loss_name(loss) for loss in args.losses]
    if len(set(args.losses)) < len(args.losses):
        raise ValueError("--losses names a loss more than once")
    args.model = sandbox.geometry.names.canonical(args.model, networks.MODELS, "model")
    args.optimizer = sandbox.geometry.names.canonical(args.optimizer, training.OPTIMIZERS, "optimizer")
    args.param = sandbox.geometry.parameterisations.get_parameterisation(args.param).name
    if not args.lrs or not all(lr > 0 and math.isfinite(lr) for lr in args.lrs):
        raise ValueError(f"--lrs must be one or more positive learning rates; got {args.lrs}")
    args.lrs = sorted(set(args.lrs))
    for flag, value, low in [("--seeds", args.seeds, 1), ("--epochs", args.epochs, 1),
                             ("--batch-size", args.batch_size, 1), ("--distractors", args.distractors, 0),
                             ("--tune-seeds", args.tune_seeds, 0), ("--grow", args.grow, 0)]:
        if value < low:
            raise ValueError(f"{flag} must be at least {low}; got {value}")
    if min(args.images) < 1:
        raise ValueError(f"--images needs at least one image in each split; got {args.images}")
    if not 0 <= args.label_noise < 1:
        raise ValueError(f"--label-noise must be a share of the box size in [0, 1); got {args.label_noise}")
    if not 0 < args.min_size <= 0.9 * args.image_size:  # objects span min_size to 0.9 of the image
        raise ValueError(f"--image-size {args.image_size} is too small for the size range: objects from --min-size "
                         f"{args.min_size:g} px up to 0.9 of the image need at least "
                         f"{math.ceil(args.min_size / 0.9)} px" if args.min_size > 0 else
                         f"--min-size must be positive; got {args.min_size:g}")
    synthetic.make_dataset(1, 0, image_size=args.image_size, min_size=args.min_size)  # checks the rest
    networks.init_network(args.model, args.image_size, 0, param=args.param)


def make_sweep(args):
    """The experiment as a learning sweep (`sandbox.runs.sweep`): a cell per loss, rate and seed."""
    learning = {key: getattr(args, key) for key in training.LEARNING_DEFAULTS}
    return sweeps.resolve(dict(experiment="learning", learning=learning,
                               axes=dict(loss=args.losses, lr=args.lrs, seed=list(range(args.seeds)))), "arguments")


# %% Tables and figures, from the saved runs only.
def load_runs(out):
    """The sweep under `out` as this script's settings, and every finished cell's record; SweepError
    if some cell has not finished, so that nothing is drawn from part of a run."""
    if json.loads((out / "sweep.json").read_text()).get("experiment") != "learning":
        raise SweepError(f"{out} holds another kind of sweep, not a learning experiment")
    sweep, rows = finished(out)
    config = dict(sweep["learning"], losses=sweep["axes"]["loss"], lrs=sweep["axes"]["lr"],
                  seeds=len(sweep["axes"]["seed"]), sweep=sweep)
    return config, [json.loads((out / "records" / f"{cell}.json").read_text()) for cell in rows]


def tables(out, config, runs):
    """Write epochs.csv and summary.csv; return the summary rows and the chosen rates."""
    run_rows = [dict(loss=r["loss"], seed=r["seed"], lr=r["lr"], val_accuracy_mean=r["val"]["accuracy_mean"])
                for r in runs]
    epoch_columns = ["loss", "seed", "lr", "epoch", *runs[0]["history"]]
    epoch_rows = [dict(loss=r["loss"], seed=r["seed"], lr=r["lr"], epoch=e + 1,
                       **{k: values[e] for k, values in r["history"].items()})
                  for r in runs for e in range(len(r["history"]["seconds"]))]
    write_csv(out / "epochs.csv", epoch_columns, epoch_rows)
    chosen = training.chosen_rates(config["sweep"], run_rows)
    reported = {"mean_iou": "mean_iou", "accuracy_50": "accuracy_50", "accuracy_75": "accuracy_75",
                "accuracy_mean": "accuracy_mean", "l1_error": "l1_pixels",
                **{f"{size}_{m}": f"{size}_{m}" for size in box_metrics.SIZE_CLASSES
                   for m in ("mean_iou", "accuracy_50", "accuracy_75", "accuracy_mean")}}
    summary = []
    for loss in config["losses"]:
        at_rate = [r for r in runs if r["loss"] == loss and r["lr"] == chosen[loss]]
        tried = sorted({r["lr"] for r in runs if r["loss"] == loss})
        row = dict(loss=loss, lr=chosen[loss], rates_tried=" ".join(f"{rate:g}" for rate in tried),
                   grown=" ".join(f"{rate:g}" for rate in tried if rate not in config["lrs"]), seeds=len(at_rate),
                   diverged=sum(r["diverged"] for r in at_rate),
                   not_converged=sum(not r["converged"] for r in at_rate))
        for name, key in reported.items():
            values = np.array([r["test"][key] for r in at_rate], dtype=float)
            row[name], row[f"{name}_std"] = _mean(values), _std(values)
        summary.append(row)
    write_csv(out / "summary.csv", list(summary[0]), summary)
    write_csv(out / "pairs.csv", evidence.PAIR_COLUMNS, pair_rows(config, runs, chosen))
    return summary, chosen


def pair_rows(config, runs, chosen):
    """Every pair of losses' paired difference on the test images, each loss at its chosen rate, for each
    measure (mean IoU, accuracy at each threshold and over 0.50:0.95), over all images and by size class
    (`sandbox.runs.evidence.learning_pair_rows`: a bootstrap over the test images and the seeds)."""
    seeds = sorted({r["seed"] for r in runs if r["lr"] == chosen[r["loss"]]})
    by_seed = {(r["loss"], r["seed"]): r["test_ious"] for r in runs if r["lr"] == chosen[r["loss"]]}
    ious = {loss: [by_seed[loss, seed] for seed in seeds] for loss in config["losses"]}
    test = training.test_split(config)
    return evidence.learning_pair_rows(ious, classes=box_metrics.size_class(test.boxes, config["image_size"]))


def findings(pairs, losses):
    """The real differences (a paired interval that excludes 0) at each threshold and over 0.50:0.95, over all
    sizes and by size class, a line per measure; and which pairs are tied."""
    lines = []
    for size in ("", *(f"{name}_" for name in box_metrics.SIZE_CLASSES)):
        for measure in ("mean_iou", *box_metrics.ACCURACY_KEYS, "accuracy_mean"):
            rows = [r for r in pairs if r["measure"] == size + measure]
            if not rows:
                continue
            real = [f"{r['loss_a'] if r['difference'] > 0 else r['loss_b']} > "
                    f"{r['loss_b'] if r['difference'] > 0 else r['loss_a']} by {abs(r['difference']):.3f} "
                    f"[{min(abs(r['low']), abs(r['high'])):.3f}, {max(abs(r['low']), abs(r['high'])):.3f}]"
                    for r in rows if not r["tied"]]
            lines.append(f"{size + measure}: " + ("; ".join(real) if real else "every pair tied"))
    return "\n".join(lines)


def pairs_table(pairs, measure="accuracy_mean"):
    """Every pair's paired difference in `measure`, its 95 % interval and half-width, a line each."""
    rows = [r for r in pairs if r["measure"] == measure]
    width = max(len(f"{r['loss_a']} - {r['loss_b']}") for r in rows)
    return "\n".join(f"  {r['loss_a'] + ' - ' + r['loss_b']:<{width}} {r['difference']:+.3f} "
                     f"[{r['low']:+.3f}, {r['high']:+.3f}]  half-width {r['half_width']:.3f}"
                     f"{'  tie' if r['tied'] else ''}" for r in rows)


def markdown_table(summary):
    """The summary as a Markdown table (``table.md``), mean ± std over the seeds, as the docs include it."""
    columns = [("mean_iou", "mean IoU"), ("accuracy_50", "acc@0.5"), ("accuracy_75", "acc@0.75"),
               ("accuracy_mean", "acc@[.5:.95]"), ("large_mean_iou", "large: mean IoU"),
               ("large_accuracy_75", "large: acc@0.75"), ("l1_error", "L1 error (px)")]
    def cell(row, key):
        digits = 2 if key == "l1_error" else 3
        spread = f" ± {row[key + '_std']:.{digits}f}" if np.isfinite(row[key + "_std"]) else ""
        return f"{row[key]:.{digits}f}{spread}"
    lines = ["| loss | rate | " + " | ".join(name for _, name in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    lines += [f"| {r['loss']} | {r['lr']:.0e} | " + " | ".join(cell(r, key) for key, _ in columns) + " |"
              for r in summary]
    return "\n".join(lines) + "\n"


def _mean(values):
    values = values[np.isfinite(values)]
    return float(np.mean(values)) if values.size else math.nan


def _std(values):
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if values.size > 1 else math.nan


def summary_table(summary):
    width = max(8, *(len(r["loss"]) for r in summary))
    lines = [f"{'loss':<{width}} {'lr':>7} {'mean IoU':>15} {'acc@0.5':>15} {'acc@0.75':>15} {'acc@[.5:.95]':>15} "
             f"{'L1 px':>13}"]
    for r in summary:
        cells = [f"{r[k]:.3f} ± {r[k + '_std']:.3f}" if np.isfinite(r[k + "_std"]) else f"{r[k]:.3f}"
                 for k in ("mean_iou", "accuracy_50", "accuracy_75", "accuracy_mean")]
        l1 = f"{r['l1_error']:.2f} ± {r['l1_error_std']:.2f}" if np.isfinite(r["l1_error_std"]) else f"{r['l1_error']:.2f}"
        lines.append(f"{r['loss']:<{width}} {r['lr']:>7.0e} " + " ".join(f"{c:>15}" for c in cells) + f" {l1:>13}"
                     + (f"  ({r['diverged']} diverged)" if r["diverged"] else ""))
    return "\n".join(lines)


def plot(out, config, runs, chosen):
    losses, thresholds = config["losses"], box_metrics.THRESHOLDS
    at_rate = {loss: [r for r in runs if r["loss"] == loss and r["lr"] == chosen[loss]] for loss in losses}
    keys = [f"accuracy_{round(100 * t)}" for t in thresholds]
    curves = [np.mean([[r["test"][k] for k in keys] for r in at_rate[loss]], axis=0) for loss in losses]
    spreads = [np.std([[r["test"][k] for k in keys] for r in at_rate[loss]], axis=0, ddof=1)
               if len(at_rate[loss]) > 1 else None for loss in losses]
    title = (f"{config['model']} trained {config['epochs']} epochs with each loss at its chosen rate "
             f"({config['seeds']} seed{'s' * (config['seeds'] > 1)}; init {config['init']}, label noise "
             f"{config['label_noise']:g})")

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    plot_accuracy_curves(ax, thresholds, curves, losses, spreads=spreads if config["seeds"] > 1 else None)
    ax.set_title(f"share of test images whose box reaches each IoU\n{title}", fontsize=10)
    atomic_write(out / "accuracy.png", fig.savefig, dpi=110)

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    for i, loss in enumerate(losses):
        for k, r in enumerate(at_rate[loss]):
            history = r["history"]["accuracy_mean"]
            ax.plot(range(1, len(history) + 1), history, color=f"C{i % 10}", alpha=0.8, label=None if k else loss)
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("validation accuracy, mean over IoU 0.50:0.95")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    ax.set_title(f"validation accuracy after each epoch, one line per seed\n{title}", fontsize=10)
    atomic_write(out / "epochs.png", fig.savefig, dpi=110)

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    values = [[np.mean([r["test"][f"{size}_accuracy_mean"] for r in at_rate[loss]]) for size in
               box_metrics.SIZE_CLASSES] for loss in losses]
    plot_by_size(ax, values, losses, box_metrics.SIZE_CLASSES)
    ax.set_ylabel("test accuracy, mean over IoU 0.50:0.95")
    ax.set_title(f"by object size (COCO's area bounds scaled to the image)\n{title}", fontsize=10)
    atomic_write(out / "by_size.png", fig.savefig, dpi=110)

    test = training.test_split(config)
    shown = min(len(runs[0]["gallery"]), len(test.boxes))  # the test images whose predictions each run kept
    fig = Figure(figsize=(2.4 * shown, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, shown))
    predictions = {loss: np.array(at_rate[loss][0]["gallery"])[:shown] for loss in losses}
    plot_prediction_gallery(axes[:shown], test.images[:shown], test.boxes[:shown], predictions, losses)
    fig.suptitle(f"test images, the labelled box (black) and each loss's prediction (seed 0)\n{title}", fontsize=10)
    atomic_write(out / "gallery.png", fig.savefig, dpi=90)


TARGETS = [("large_mean_iou", "large objects, mean IoU", 0.8), ("large_accuracy_75", "large objects, acc@0.75", 0.8),
           ("accuracy_75", "all sizes, acc@0.75", 0.4)]
"""What the issue behind this experiment asks of its best loss (sandbox's issue 19), shown beside what it reached."""


def chosen_rate(summary, loss):
    return next(r["lr"] for r in summary if r["loss"] == loss)


def report(config, summary, runs):
    """The lines under the table: rates chosen and grown, runs that had not converged, the best loss against
    the targets."""
    tuning = training.tuning_seeds(config["sweep"]["axes"]["seed"], config)
    lines = [f"learning rates chosen on the validation split (seed{'s' * (len(tuning) > 1)} "
             f"{', '.join(map(str, tuning))}): " + ", ".join(f"{r['loss']} {r['lr']:g}" for r in summary)]
    grown = [f"{r['loss']} to {r['grown']}" for r in summary if r["grown"]]
    lines.append(f"rate grid grown (the best rate was at an end): {'; '.join(grown)}" if grown else
                 "rate grid: every chosen rate lies inside the grid, or the grid could grow no more")
    reported = [r for r in runs if r["lr"] == chosen_rate(summary, r["loss"])]
    late = [f"{r['loss']} seed {r['seed']}" for r in reported if not r["converged"]]
    others = sum(not r["converged"] for r in runs if r not in reported)
    lines.append(f"not converged (validation accuracy over 0.50:0.95 still rose by > 1 % over the last fifth of "
                 f"epochs): {len(late)} of the {len(reported)} runs reported{': ' * bool(late)}{', '.join(late)}"
                 f" (and {others} of the {len(runs) - len(reported)} at other rates)")
    for key, what, target in TARGETS:
        best = max(summary, key=lambda r: r[key] if np.isfinite(r[key]) else -np.inf)
        lines.append(f"target, {what} >= {target}: best {best['loss']} {best[key]:.3f} "
                     f"({'met' if best[key] >= target else 'NOT met'})")
    return "\n".join(lines)


def read_pairs(path):
    """pairs.csv as written, its numbers as numbers and ``tied`` as a bool."""
    return [dict(r, **{k: float(r[k]) for k in ("difference", "low", "high", "half_width")}, tied=r["tied"] == "True")
            for r in read_csv(path)]


def main(argv=None):
    args, parser = parse_args(argv)
    try:
        if not args.replot:
            training.splits_for(args.sweep["learning"])  # made once, before the workers fork, so that they share it
            run_sweep(args.sweep, args.out, args.workers, args.scheduler)
        config, runs = load_runs(args.out)
    except SweepError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    summary, chosen = tables(args.out, config, runs)
    plot(args.out, config, runs, chosen)
    pairs = read_pairs(args.out / "pairs.csv")
    atomic_write(args.out / "table.md", lambda tmp: Path(tmp).write_text(markdown_table(summary)))
    atomic_write(args.out / "findings.txt", lambda tmp: Path(tmp).write_text(findings(pairs, config["losses"]) + "\n"))
    print(summary_table(summary))
    print(report(config, summary, runs))
    if len(config["losses"]) > 1:
        widths = [r["half_width"] for r in pairs if r["measure"] == "accuracy_mean"]
        print(f"paired differences in test accuracy over 0.50:0.95, each loss at its chosen rate, with 95 % intervals "
              f"({pairs[0]['method']} over the test images and the seeds; half-widths {min(widths):.3f} to "
              f"{max(widths):.3f}):")
        print(pairs_table(pairs))
    print(f"tables: {args.out / 'summary.csv'}, pairs.csv (every pair, measure and size class), findings.txt, "
          f"table.md, epochs.csv, results.csv; figures: accuracy.png, epochs.png, by_size.png, gallery.png")


if __name__ == "__main__":
    main()
