"""IoU stalls where it starts, GIoU converges: one box fitted from non-overlapping starts.

From the same starts around a target, at a gap in several directions, the script
fits the predicted box with each loss and each method. It builds that grid as a
sweep (`sandbox.runs.sweep`: a cell per loss and method, the same starts in every cell)
and runs it into --out, so it writes what any sweep writes:

- ``results.csv``: one row per run (loss, method, start, final IoU, outcome, ...),
  a cell at a time, as each cell finishes;
- ``histories/`` and ``boxes/``: each cell's IoU and box at every step;
- ``sweep.json``: the grid, target and starts; ``versions.json``: package versions;

and draws from those files alone:

- ``stall_vs_converge.png``: a trajectory panel per loss and IoU against iteration,
  for the first method; with several methods also ``outcomes.png``, the loss x
  method table of how many starts each brings home (IoU >= 0.99);
- ``stall_vs_converge.gif`` with --animate: the first method's runs step by step, one
  panel per loss, beside IoU against iteration.

An interrupted run keeps every finished cell, and the same command goes on from
there; a run with other settings under the same --out is refused.

Run from the repository root::

    python experiments/stall_vs_converge.py --out results/stall_vs_converge
    python experiments/stall_vs_converge.py --method all --out results/all_methods
    python experiments/stall_vs_converge.py --replot --out results/stall_vs_converge
    python experiments/stall_vs_converge.py --animate --out results/stall_vs_converge
"""
# %%
from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.figure import Figure
from PIL import Image, ImageSequence

import sandbox
from sandbox.runs import sweep as sweeps
from sandbox.runs.store import finished, load_boxes, load_histories
from sandbox.runs.cli import add_workers, check_out, experiment_parser, run_sweep
from sandbox.optim.rules import DEFAULT_LEARNING_RATES
from sandbox.optim.settings import method_name, schedule_name
from sandbox.geometry.parameterisations import get_parameterisation
from sandbox.views.plotting import animate_trajectories, plot_heatmap, plot_metric, plot_target, plot_trajectory
from sandbox.runs.records import atomic_write

HOME = sandbox.HOME_IOU  # a run brings the box home when its final IoU reaches this
FIGURE = "stall_vs_converge.png"
ANIMATION = "stall_vs_converge.gif"
GIF_FRAMES, GIF_FPS, GIF_PAUSE, GIF_DPI = 50, 10, 2.0, 72  # about 50 frames, then 2 s on the last


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/stall_vs_converge"),
                        help="folder for results.csv, the histories and boxes, sweep.json and the figures")
    parser.add_argument("--losses", nargs="+", default=["iou", "giou", "l1", "l2"],
                        help=f"losses: names with optional parameters (l1:coords=cxcywh), "
                             f"package.module:function, or weighted sums (5*l1+2*giou); "
                             f"valid names: {', '.join(sandbox.LOSSES)}")
    parser.add_argument("--method", nargs="+", default=["gd"],
                        help=f"one or more of {', '.join(sandbox.METHODS)}, or 'all'")
    parser.add_argument("--param", default="xyxy", help=f"one of {', '.join(sandbox.PARAMETERISATIONS)}")
    parser.add_argument("--schedule", default="step",
                        help=f"learning-rate schedule of gd, momentum, adam: {', '.join(sandbox.SCHEDULES)}")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of gd, momentum, adam (by default each method's own, "
                             f"{', '.join(f'{m} {lr}' for m, lr in DEFAULT_LEARNING_RATES.items())})")
    parser.add_argument("--iou-weighting", action="store_true",
                        help="scale first-order steps by (2 - IoU), as the DIoU paper does")
    parser.add_argument("--maxiter", type=int, default=200, help="iteration limit of every run")
    parser.add_argument("--starts", type=int, default=8, help="directions around the target")
    parser.add_argument("--gap", type=float, default=0.5, help="free space between start and target")
    parser.add_argument("--start-size", nargs=2, type=float, default=[1.0, 1.5],
                        metavar=("W", "H"), help="width and height of the starts")
    parser.add_argument("--random-starts", type=int, default=0,
                        help="add this many random non-overlapping starts, drawn with --seed, the same for "
                             "every loss and method")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    parser.add_argument("--target", nargs=4, type=float, default=[-1.0, -0.5, 1.0, 0.5],
                        metavar=("X1", "Y1", "X2", "Y2"), help="target box, xyxy")
    add_workers(parser, "local worker processes", scheduler="cells")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the figures from what --out holds")
    parser.add_argument("--animate", action="store_true",
                        help=f"also write {ANIMATION}: the first method's runs step by step")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=("results.csv", "sweep.json"), earlier="summary.csv")
    if not args.replot:
        try:
            args.sweep = make_sweep(args)
        except ValueError as error:
            parser.error(str(error))
    return args, parser


def make_sweep(args):
    """The grid of runs as a resolved sweep, after checking every argument; ValueError naming a bad one."""
    args.method = list(sandbox.METHODS) if args.method == ["all"] else [method_name(m) for m in args.method]
    args.losses = [sandbox.canonical_loss(loss) for loss in args.losses]
    get_parameterisation(args.param)
    schedule_name(args.schedule)
    sandbox.check_boxes(args.target, "target", positive_size=True)
    for flag, values in [("--lr", [] if args.lr is None else [args.lr]), ("--gap", [args.gap]),
                         ("--start-size", args.start_size)]:
        if not all(value > 0 for value in values):
            raise ValueError(f"{flag} must be a positive number; got {' '.join(map(str, values))}")
    if args.maxiter < 1 or args.starts < 0 or args.random_starts < 0:
        raise ValueError("--maxiter must be at least 1, --starts and --random-starts at least 0")
    if args.starts + args.random_starts == 0:
        raise ValueError("no starts: give --starts or --random-starts a positive count")
    starts = {}
    if args.starts:  # as experiments/sweeps/headline.toml names them: its cells are this grid's
        starts["ring"] = dict(kind="non_overlapping", gap=args.gap, directions=args.starts, size=args.start_size)
    if args.random_starts:  # drawn here, once, so that every loss and method starts from the same boxes
        boxes = sandbox.random_non_overlapping_starts(args.target, args.random_starts, args.seed)
        starts["random"] = dict(kind="boxes", boxes=boxes.tolist(),
                                labels=[f"random{i}" for i in range(args.random_starts)])
    axes = dict(loss=args.losses, method=args.method, param=[args.param], schedule=[args.schedule],
                maxiter=[args.maxiter], starts=list(starts), **({} if args.lr is None else {"lr": [args.lr]}))
    return sweeps.resolve(dict(threshold=HOME, target=args.target, iou_weighting=args.iou_weighting,
                               record_boxes=True, starts=starts, axes=axes), "arguments")


def make_starts(args):
    """The start boxes of every cell, shape (n, 4), and a label for each."""
    sweep = make_sweep(args)
    made = [sweeps.make_starts(sweep["starts"][name], sweep["target"], seed=0) for name in sweep["axes"]["starts"]]
    return np.concatenate([boxes for boxes, _ in made]), [label for _, labels in made for label in labels]


def saved_runs(out):
    """The sweep under `out` and its runs, in the sweep's order: (row, boxes, IoU history) each.

    A run's boxes have shape (steps, 4) and its IoU history (steps,). SweepError if
    some cell has not finished, so that nothing is drawn from part of a run.
    """
    sweep, rows = finished(out)
    runs = []
    for cell, cell_rows in rows.items():
        histories = load_histories(out, cell, hold=False)
        for row, boxes, ious in zip(cell_rows, load_boxes(out, cell), histories):
            steps = np.sum(~np.isnan(ious))
            runs.append((row, boxes[:steps], ious[:steps]))
    return sweep, runs


# %% Summarise and draw, from the saved files only.
def summary_table(rows):
    """Per loss and method: runs, runs brought home, mean and lowest final IoU, outcomes."""
    groups = {}
    for r in rows:
        groups.setdefault((r["loss"], r["method"]), []).append(r)
    width = max(12, *(len(loss) for loss, _ in groups))
    lines = [f"{'loss':<{width}} {'method':<13} {'home':>6} {'mean IoU':>9} {'min IoU':>8}  outcomes"]
    for (loss, method), group in groups.items():
        ious = np.array([float(r["final_iou"]) for r in group])
        outcomes = Counter(r["outcome"] for r in group)
        lines.append(f"{loss:<{width}} {method:<13} {np.sum(ious >= HOME):>3}/{len(ious):<2} "
                     f"{ious.mean():>9.4f} {ious.min():>8.4f}  "
                     + ", ".join(f"{n} {o}" for o, n in outcomes.most_common()))
    return "\n".join(lines)


def plot(out, sweep, runs):
    """Draw the figures from the sweep and runs that `saved_runs` read from `out`."""
    rows = [row for row, _, _ in runs]
    losses, methods = sweep["axes"]["loss"], sweep["axes"]["method"]
    labels = list(dict.fromkeys(row["start"] for row in rows))
    fig = Figure(figsize=(4.0 * len(losses), 7.5), layout="constrained")
    axes = fig.subplot_mosaic([losses, ["history"] * len(losses)], height_ratios=[1.3, 1])
    first = [(row, boxes, ious) for row, boxes, ious in runs if row["method"] == methods[0]]
    for row, boxes, _ in first:
        plot_trajectory(axes[row["loss"]], boxes, color=f"C{labels.index(row['start']) % 10}")
    for loss in losses:
        plot_target(axes[loss], sweep["target"])
        axes[loss].set_title(panel_title(rows, loss, methods[0]))
    plot_metric(axes["history"], [ious for _, _, ious in first], labels=[row["loss"] for row, _, _ in first],
                colors=[f"C{losses.index(row['loss']) % 10}" for row, _, _ in first], alpha=0.7)
    axes["history"].axhline(HOME, color="0.5", linestyle=":", linewidth=1)
    axes["history"].legend(title="loss", loc="center right")
    axes["history"].set_ylim(-0.03, 1.03)
    fig.suptitle(f"{methods[0]}, {sweep['axes']['param'][0]} parameters, from {len(labels)} non-overlapping "
                 f"starts (o start, * end; grey: target; dotted: value held after a run stopped)")
    atomic_write(out / FIGURE, fig.savefig, dpi=110)
    if len(methods) > 1:
        atomic_write(out / "outcomes.png", outcome_figure(rows, losses, methods).savefig, dpi=110)


def panel_title(rows, loss, method):
    """'giou: 8/8 starts home; 8 max iterations': how one loss's runs with `method` ended."""
    group = [r for r in rows if r["loss"] == loss and r["method"] == method]
    home = sum(float(r["final_iou"]) >= HOME for r in group)
    outcome, count = Counter(r["outcome"] for r in group).most_common(1)[0]
    return f"{loss}: {home}/{len(group)} starts home; {count} {outcome.replace('_', ' ')}"


def animate(out, sweep, runs):
    """Write the first method's runs as a GIF, from the sweep and runs that `saved_runs` read from `out`."""
    rows = [row for row, _, _ in runs]
    method, losses = sweep["axes"]["method"][0], sweep["axes"]["loss"]
    chosen = [(row, boxes) for row, boxes, _ in runs if row["method"] == method]
    longest = max(len(boxes) for _, boxes in chosen)
    animation = animate_trajectories(
        [boxes for _, boxes in chosen], sweep["target"], labels=[row["loss"] for row, _ in chosen],
        colors=[f"C{losses.index(row['loss']) % 10}" for row, _ in chosen],
        panels=[panel_title(rows, row["loss"], method).replace("; ", "\n") for row, _ in chosen],
        step=max(1, -(-(longest - 1) // GIF_FRAMES)), interval=1000 / GIF_FPS)
    animation.figure.suptitle(f"{method}, {sweep['axes']['param'][0]} parameters, from "
                              f"{len(chosen) // len(losses)} non-overlapping starts (grey: target)")
    atomic_write(out / ANIMATION, lambda tmp: save_gif(animation, tmp))


def save_gif(animation, path):
    """Save `animation` as a GIF through matplotlib's Pillow writer, then hold its last frame
    `GIF_PAUSE` seconds before it loops (Pillow takes a duration per frame; the writer, one rate)."""
    animation.save(path, writer=PillowWriter(fps=GIF_FPS), dpi=GIF_DPI)
    with Image.open(path) as gif:
        frames = [frame.copy() for frame in ImageSequence.Iterator(gif)]
    durations = [round(1000 / GIF_FPS)] * (len(frames) - 1) + [round(1000 * GIF_PAUSE)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)


def outcome_figure(rows, losses, methods):
    """Heatmap, method x loss: share of starts brought home, and the most common outcome."""
    share = np.zeros((len(methods), len(losses)))
    texts = [[""] * len(losses) for _ in methods]
    for i, method in enumerate(methods):
        for j, loss in enumerate(losses):
            group = [r for r in rows if r["loss"] == loss and r["method"] == method]
            share[i, j] = np.mean([float(r["final_iou"]) >= HOME for r in group])
            usual = Counter(r["outcome"] for r in group).most_common(1)[0][0]
            texts[i][j] = f"{share[i, j]:.0%} {usual.replace('_', ' ')}"
    fig = Figure(figsize=(1.7 * len(losses) + 2.5, 0.42 * len(methods) + 1.4), layout="constrained")
    ax = fig.subplots()
    image, _ = plot_heatmap(ax, share, methods, losses, texts=texts)
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, label=f"share home (IoU >= {HOME})")
    ax.set_title("which optimiser brings which loss home\n(text: share home, most common outcome)")
    return fig


def main(argv=None):
    args, parser = parse_args(argv)
    try:
        if not args.replot:
            run_sweep(args.sweep, args.out, args.workers, args.scheduler)
        sweep, runs = saved_runs(args.out)
    except sweeps.SweepError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    plot(args.out, sweep, runs)
    if args.animate:
        animate(args.out, sweep, runs)
        print(f"animation: {args.out / ANIMATION}")
    print(summary_table([row for row, _, _ in runs]))
    print(f"figure: {args.out / FIGURE}; per-run rows: {args.out / 'results.csv'}")


if __name__ == "__main__":
    main()
