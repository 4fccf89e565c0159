"""IoU stalls where it starts, GIoU converges: one box fitted from non-overlapping starts.

From the same starts around a target, at a gap in several directions, the script
fits the predicted box with each loss and each method, then writes under --out:

- ``summary.csv``: one row per run (loss, method, start, final IoU, outcome, ...),
  written as each run finishes, so an interrupted run keeps what it finished;
- ``runs.npz``: every run's boxes and per-step IoU, GIoU, loss and gradient norm;
- ``config.json``: the arguments, target, starts and package versions;
- ``stall_vs_converge.png``: a trajectory panel per loss and IoU against iteration,
  for the first method; with several methods also ``outcomes.png``, the loss x
  method table of how many starts each brings home (IoU >= 0.99);
- ``stall_vs_converge.gif`` with --animate: the first method's runs step by step, one
  panel per loss, beside IoU against iteration.

Run from the repository root::

    python experiments/stall_vs_converge.py --out results/stall_vs_converge
    python experiments/stall_vs_converge.py --method all --out results/all_methods
    python experiments/stall_vs_converge.py --replot --out results/stall_vs_converge
    python experiments/stall_vs_converge.py --animate --out results/stall_vs_converge
"""
# %%
import csv
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.figure import Figure

import sandbox
from sandbox.cli import check_out, experiment_parser, refuse_other_settings, run_interruptible
from sandbox.first_order import DEFAULT_LEARNING_RATES, RULES, get_schedule, not_applicable
from sandbox.optimize import get_method
from sandbox.parameterisations import get_parameterisation
from sandbox.plotting import animate_trajectories, plot_heatmap, plot_metric, plot_target, plot_trajectory
from sandbox.results import atomic_write, provenance, read_csv, write_json
from sandbox.starts import direction_name

HOME = sandbox.HOME_IOU  # a run brings the box home when its final IoU reaches this
COLUMNS = ["loss", "method", "param", "start", "start_box", "final_box", "final_iou",
           "final_giou", "final_loss", "iterations", "nfev", "njev", "stalled", "outcome",
           "seconds", "message"]
FIGURE = "stall_vs_converge.png"
ANIMATION = "stall_vs_converge.gif"
GIF_FRAMES, GIF_FPS, GIF_PAUSE, GIF_DPI = 50, 10, 2.0, 72  # about 50 frames, then 2 s on the last


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/stall_vs_converge"),
                        help="folder for the figure, summary.csv, runs.npz and config.json")
    parser.add_argument("--losses", nargs="+", default=["iou", "giou", "l1", "l2"],
                        help=f"losses, by name with optional parameters (l1:coords=cxcywh); "
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
                        help="add this many random non-overlapping starts, drawn with --seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    parser.add_argument("--target", nargs=4, type=float, default=[-1.0, -0.5, 1.0, 0.5],
                        metavar=("X1", "Y1", "X2", "Y2"), help="target box, xyxy")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the figures from what --out holds")
    parser.add_argument("--animate", action="store_true",
                        help=f"also write {ANIMATION}: the first method's runs step by step")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=("summary.csv", "runs.npz", "config.json"))
    if not args.replot:
        check(args, parser)
    return args


def check(args, parser):
    """Resolve and check every argument before any run starts."""
    try:
        args.method = list(sandbox.METHODS) if args.method == ["all"] else [get_method(m) for m in args.method]
        for loss in args.losses:
            sandbox.get_loss(loss)
        get_parameterisation(args.param)
        get_schedule(args.schedule)
        sandbox.check_boxes(args.target, "target", positive_size=True)
        if args.lr is not None and not args.lr > 0:
            raise ValueError(f"--lr must be positive; got {args.lr}")
        if args.maxiter < 1 or args.starts < 0 or args.random_starts < 0:
            raise ValueError("--maxiter must be at least 1, --starts and --random-starts at least 0")
        if args.starts + args.random_starts == 0:
            raise ValueError("no starts: give --starts or --random-starts a positive count")
        make_starts(args)
        refuse_other_settings(args.out, settings(args))
    except ValueError as error:
        parser.error(str(error))
    given = [flag for flag, used in [("--lr", args.lr is not None), ("--schedule", args.schedule != "step"),
                                     ("--iou-weighting", args.iou_weighting)] if used]
    if not_applicable(given, args.method):
        print(f"note: {not_applicable(given, args.method)}")


def make_starts(args):
    """The start boxes, shape (n, 4), and a label for each."""
    starts = [np.empty((0, 4))]
    labels = []
    if args.starts:
        angles = np.arange(args.starts) * 360.0 / args.starts
        starts.append(sandbox.non_overlapping_starts(args.target, args.gap, angles, args.start_size))
        labels += [direction_name(a) for a in angles]
    if args.random_starts:
        starts.append(sandbox.random_non_overlapping_starts(args.target, args.random_starts, args.seed))
        labels += [f"random{i}" for i in range(args.random_starts)]
    return np.concatenate(starts), labels


# %% Run every loss and method from every start, saving each run as it finishes.
def run(args):
    starts, labels = make_starts(args)
    target = np.array(args.target)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in (FIGURE, "outcomes.png", ANIMATION, "runs.npz"):  # drawn from the run this one replaces
        (args.out / stale).unlink(missing_ok=True)
    write_json(args.out / "config.json", config(args, starts, labels))
    first_order = {"schedule": args.schedule, "iou_weighting": args.iou_weighting,
                   **({} if args.lr is None else {"lr": args.lr})}
    runs = []
    with open(args.out / "summary.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        for method in args.method:
            began = time.perf_counter()
            for loss in args.losses:
                for label, start in zip(labels, starts):
                    clock = time.perf_counter()
                    result = sandbox.fit(start, target, loss=loss, method=method, param=args.param,
                                         maxiter=args.maxiter, **(first_order if method in RULES else {}))
                    writer.writerow(row(loss, method, args.param, label, start, result,
                                        time.perf_counter() - clock))
                    file.flush()
                    runs.append(result)
            print(f"{method:>13}: {len(args.losses) * len(starts)} runs in "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
    save_runs(args.out / "runs.npz", runs)


def row(loss, method, param, label, start, result, seconds):
    return dict(loss=loss, method=method, param=param, start=label,
                start_box=" ".join(f"{v:.6g}" for v in start),
                final_box=" ".join(f"{v:.6g}" for v in result.box),
                final_iou=f"{result.ious[-1]:.6f}", final_giou=f"{result.gious[-1]:.6f}",
                final_loss=f"{result.fun:.6g}", iterations=result.nit, nfev=result.nfev,
                njev=result.njev, stalled=result.stalled, outcome=result.outcome,
                seconds=f"{seconds:.4f}", message=" ".join(str(result.message).split()))


def save_runs(path, runs):
    """Every run's per-step record, NaN-padded to the longest run."""
    steps = np.array([len(r.boxes) for r in runs])

    def padded(key, width=()):
        array = np.full((len(runs), steps.max(), *width), np.nan)
        for i, r in enumerate(runs):
            array[i, :steps[i]] = r[key]
        return array

    arrays = dict(steps=steps, boxes=padded("boxes", (4,)), ious=padded("ious"),
                  gious=padded("gious"), losses=padded("losses"), grad_norms=padded("grad_norms"))
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def settings(args):
    """What the runs depend on: every argument but where they go and what is drawn."""
    return {k: v for k, v in vars(args).items() if k not in ("out", "replot", "animate")}


def config(args, starts, labels):
    return dict(settings(args), out=str(args.out), start_boxes=starts.tolist(), start_labels=labels, home_iou=HOME,
                **provenance())


# %% Summarise and draw, from the saved files only.
def summary_table(rows):
    """Per loss and method: runs, runs brought home, mean and lowest final IoU, outcomes."""
    groups = {}
    for r in rows:
        groups.setdefault((r["loss"], r["method"]), []).append(r)
    lines = [f"{'loss':<12} {'method':<13} {'home':>6} {'mean IoU':>9} {'min IoU':>8}  outcomes"]
    for (loss, method), group in groups.items():
        ious = np.array([float(r["final_iou"]) for r in group])
        outcomes = Counter(r["outcome"] for r in group)
        lines.append(f"{loss:<12} {method:<13} {np.sum(ious >= HOME):>3}/{len(ious):<2} "
                     f"{ious.mean():>9.4f} {ious.min():>8.4f}  "
                     + ", ".join(f"{n} {o}" for o, n in outcomes.most_common()))
    return "\n".join(lines)


def plot(out):
    """Draw the figures from summary.csv, runs.npz and config.json under `out`."""
    rows, settings = read_csv(out / "summary.csv"), json.loads((out / "config.json").read_text())
    saved = np.load(out / "runs.npz")
    losses, methods = list(dict.fromkeys(r["loss"] for r in rows)), list(dict.fromkeys(r["method"] for r in rows))
    labels = settings["start_labels"]
    start_colors = [f"C{i % 10}" for i in range(len(labels))]
    fig = Figure(figsize=(4.0 * len(losses), 7.5), layout="constrained")
    axes = fig.subplot_mosaic([losses, ["history"] * len(losses)], height_ratios=[1.3, 1])
    for i, r in enumerate(rows):
        if r["method"] != methods[0]:
            continue
        boxes = saved["boxes"][i, :saved["steps"][i]]
        plot_trajectory(axes[r["loss"]], boxes, color=start_colors[labels.index(r["start"])])
    for loss in losses:
        plot_target(axes[loss], settings["target"])
        axes[loss].set_title(panel_title(rows, loss, methods[0]))
    chosen = [i for i, r in enumerate(rows) if r["method"] == methods[0]]
    plot_metric(axes["history"], [saved["ious"][i, :saved["steps"][i]] for i in chosen],
                labels=[rows[i]["loss"] for i in chosen],
                colors=[f"C{losses.index(rows[i]['loss']) % 10}" for i in chosen], alpha=0.7)
    axes["history"].axhline(HOME, color="0.5", linestyle=":", linewidth=1)
    axes["history"].legend(title="loss", loc="center right")
    axes["history"].set_ylim(-0.03, 1.03)
    fig.suptitle(f"{methods[0]}, {settings['param']} parameters, from {len(labels)} non-overlapping "
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


def animate(out):
    """Write the first method's runs as a GIF, from summary.csv, runs.npz and config.json."""
    rows, settings = read_csv(out / "summary.csv"), json.loads((out / "config.json").read_text())
    saved = np.load(out / "runs.npz")
    method = rows[0]["method"]
    chosen = [i for i, r in enumerate(rows) if r["method"] == method]
    losses = list(dict.fromkeys(rows[i]["loss"] for i in chosen))
    longest = int(saved["steps"][chosen].max())
    animation = animate_trajectories(
        [saved["boxes"][i, :saved["steps"][i]] for i in chosen], settings["target"],
        labels=[rows[i]["loss"] for i in chosen], colors=[f"C{losses.index(rows[i]['loss']) % 10}" for i in chosen],
        panels=[panel_title(rows, rows[i]["loss"], method).replace("; ", "\n") for i in chosen],
        step=max(1, -(-(longest - 1) // GIF_FRAMES)), interval=1000 / GIF_FPS)
    animation.figure.suptitle(f"{method}, {settings['param']} parameters, from "
                              f"{len(settings['start_labels'])} non-overlapping starts (grey: target)")
    atomic_write(out / ANIMATION, lambda tmp: animation.save(tmp, writer=PausingGifWriter(GIF_FPS, GIF_PAUSE),
                                                             dpi=GIF_DPI))


class PausingGifWriter(PillowWriter):
    """Matplotlib's Pillow writer, showing the last frame `pause` seconds before the GIF loops."""

    def __init__(self, fps, pause):
        super().__init__(fps=fps)
        self.pause = pause

    def finish(self):
        durations = [round(1000 / self.fps)] * (len(self._frames) - 1) + [round(1000 * self.pause)]
        self._frames[0].save(self.outfile, save_all=True, append_images=self._frames[1:],
                             duration=durations, loop=0)


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
    args = parse_args(argv)
    if not args.replot:
        run_interruptible(lambda: run(args), args.out, kept="the finished runs' rows of summary.csv")
    plot(args.out)
    if args.animate:
        animate(args.out)
        print(f"animation: {args.out / ANIMATION}")
    print(summary_table(read_csv(args.out / "summary.csv")))
    print(f"figure: {args.out / FIGURE}; per-run rows: {args.out / 'summary.csv'}")


if __name__ == "__main__":
    main()
