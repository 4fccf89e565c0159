"""Scripted ablation runs: a sweep file of losses, methods, parameterisations, rates and starts.

Run from the repository root::

    python experiments/ablate.py experiments/sweeps/headline.toml --out results/headline
    python experiments/ablate.py experiments/sweeps/learning_rates.toml --out results/rates --workers 2
    python experiments/ablate.py experiments/sweeps/headline.toml --out results/headline --scheduler tcp://10.0.0.5:8786
    python experiments/ablate.py --report --out results/rates --x lr --y method --cells method=adam

The sweep file is described in `sandbox.runs.sweep`. Every cell runs in a worker process
(all cores by default) or on a Dask cluster; each finished cell is appended to
``DIR/results.csv``, one row per run, and its IoU histories to ``DIR/histories``.
Running the same command again skips the finished cells, whatever stopped the
last run; a different sweep file under the same DIR is refused, and so is a
second runner on DIR while one runs (Linux and macOS: a lock on ``DIR/.lock``,
released when the runner ends, however it ends). ``DIR`` also
holds the resolved sweep (``sweep.json``) and the package versions
(``versions.json``). ``--report`` redraws ``report.png`` and prints a summary from
those files alone, without running anything. A learning sweep (``experiment =
"learning"``, as ``experiments/sweeps/learning.toml``) trains a network per cell
and reports its test accuracy and validation curves; a simulation sweep (``experiment =
"simulation"``) runs the DIoU paper's simulation per loss and reports its final IoU and
mean IoU against iteration.
"""
# %%
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sandbox.runs import sweep as sweeps
from sandbox.runs.store import load_histories
from sandbox.runs.cli import add_workers, check_out, experiment_parser, run_sweep
from sandbox.views.plotting import plot_heatmap, plot_metric
from sandbox.runs.records import atomic_write, read_csv


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("sweep", nargs="?", type=Path, help="the sweep file (TOML); not needed with --report")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.csv, histories and the report")
    add_workers(parser, "local worker processes", scheduler="cells")
    parser.add_argument("--report", action="store_true", help="only draw report.png and print the summary")
    parser.add_argument("--x", default="loss", choices=sweeps.AXES, help="report: axis across the heatmaps")
    parser.add_argument("--y", choices=sweeps.AXES,
                        help="report: axis down the heatmaps (method; lr for a learning sweep, seed for a "
                             "simulation sweep)")
    parser.add_argument("--cells", nargs="*", default=[], metavar="AXIS=VALUE",
                        help="report: draw IoU against iteration for the cells matching all of these")
    parser.add_argument("--only", nargs="*", default=[], metavar="AXIS=VALUE",
                        help="report: keep only the runs matching all of these, for the heatmaps and the table")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.report, needs=("results.csv", "sweep.json"), flag="--report")
    if not args.report and args.sweep is None:
        parser.error("give a sweep file, or --report to summarise what --out holds")
    return args, parser


MEASURES = {
    "boxes": dict(first=("converged", "share of runs converged", "converged"),
                  second=("final_iou", "mean final IoU", "mean IoU"),
                  history=("iteration", "IoU with the target", "IoU against iteration", "thick: median of the runs;\n"
                           "a run that stopped keeps its last value")),
    "learning": dict(first=("test_accuracy_mean", "test accuracy over IoU 0.50:0.95", "acc[.5:.95]"),
                     second=("test_mean_iou", "test mean IoU", "mean IoU"),
                     history=("epochs trained", "validation accuracy over IoU 0.50:0.95",
                              "validation accuracy against epoch", "one line per network")),
    "simulation": dict(first=("mean_final_iou", "mean final IoU over the cases", "mean IoU"),
                       second=("share_final_iou_above_0.9", "share of cases ending above IoU 0.9", "IoU>0.9"),
                       history=("iteration", "mean IoU over the cases", "mean IoU against iteration",
                                "one line per simulation")),
}
"""What a report draws, per kind of sweep: (column, title, heading) of its two heatmaps, and its histories."""


def measure(text):
    """A results.csv value as a number: True and False as 1 and 0."""
    return {"True": 1.0, "False": 0.0}[text] if text in ("True", "False") else float(text)


def report(args):
    sweep = json.loads((args.out / "sweep.json").read_text())
    kind = sweep.get("experiment", "boxes")
    measures = MEASURES[kind]
    args.y = args.y or {"learning": "lr", "simulation": "seed"}.get(kind, "method")
    names = sweeps.axis_names(sweep)
    for flag, axis in (("--x", args.x), ("--y", args.y)):
        if axis not in names:
            raise sweeps.SweepError(f"{flag} {axis} is not an axis of this {kind} sweep; its axes: {', '.join(names)}")
    rows = [row for row in read_csv(args.out / "results.csv") if matches(row, filters(args.only, "--only", kind), kind)]
    if not rows:
        raise sweeps.SweepError(f"{args.out} holds no finished runs{' that match --only' if args.only else ''}")
    groups = defaultdict(list)
    for row in rows:
        groups[row[args.x], row[args.y]].append(row)
    xs, ys = (axis_order(args.out, axis, {k[n] for k in groups}) for n, axis in enumerate((args.x, args.y)))
    rate, mean_iou = np.full((len(ys), len(xs)), np.nan), np.full((len(ys), len(xs)), np.nan)
    wy, wx = (max(14, *(len(k[n]) for k in groups)) for n in (1, 0))  # the widest value of each axis
    (first, first_title, first_heading), (second, second_title, second_heading) = measures["first"], measures["second"]
    lines = [f"{args.y:>{wy}} {args.x:>{wx}} {'runs':>5} {first_heading:>11} {second_heading:>9}"]
    for (x, y), group in sorted(groups.items(), key=lambda item: (ys.index(item[0][1]), xs.index(item[0][0]))):
        i, j = ys.index(y), xs.index(x)
        rate[i, j] = np.mean([measure(r[first]) for r in group])
        mean_iou[i, j] = np.mean([measure(r[second]) for r in group])
        shown = f"{rate[i, j]:>11.0%}" if first == "converged" else f"{rate[i, j]:>11.4f}"
        lines.append(f"{y or '-':>{wy}} {x or '-':>{wx}} {len(group):>5} {shown} {mean_iou[i, j]:>9.4f}")
    chosen, matching = choose_cells(rows, args.cells, kind=kind)
    fig = Figure(figsize=(max(12, 1.3 * len(xs) * 2 + 6), 0.5 * len(ys) + 4.5), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.2])
    for ax, values, title in [(axes[0], rate, first_title), (axes[1], mean_iou, second_title)]:
        image, _ = plot_heatmap(ax, values, [y or "-" for y in ys], [x or "-" for x in xs])
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right")
        ax.set_xlabel(args.x)
        ax.set_ylabel(args.y)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8)
    ax = axes[2]
    histories = {cell: load_histories(args.out, cell) for cell, _ in chosen}
    if kind == "learning":  # column e is after e + 1 epochs: draw it at e + 1
        histories = {cell: np.pad(h, [(0, 0), (1, 0)], constant_values=np.nan) for cell, h in histories.items()}
    horizon = max((h.shape[1] for h in histories.values()), default=1)
    for k, (cell, label) in enumerate(chosen):
        color = f"C{k % 10}"
        held = np.pad(histories[cell], [(0, 0), (0, horizon - histories[cell].shape[1])], mode="edge")
        plot_metric(ax, held, colors=[color] * len(held), alpha=0.3, linewidth=0.8)
        ax.plot(np.median(held, axis=0), color=color, linewidth=2, label=label)
    xlabel, ylabel, what, note = measures["history"]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.03, 1.03)
    shown = f"{len(chosen)} of {matching} cells{' matching --cells' if args.cells else ''}"
    ax.set_title(f"{what}, {shown} ({note})")
    if chosen:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    atomic_write(args.out / "report.png", fig.savefig, dpi=110)
    print("\n".join(lines))
    if len(chosen) < matching:
        print(f"histories drawn for {len(chosen)} of the {matching} cells{' matching --cells' if args.cells else ''}, "
              f"the first in sweep order; name more axis values with --cells to choose")
    print(f"{len(rows)} runs in {len({r['cell'] for r in rows})} cells; figure: {args.out / 'report.png'}")


def axis_order(out, axis, values):
    """The values of `axis` in the order the sweep file gives them (as the CSV writes them)."""
    order = [("" if v is None else str(v)) for v in json.loads((out / "sweep.json").read_text())["axes"][axis]]
    return sorted(values, key=lambda v: order.index(v) if v in order else len(order))


def filters(items, option, kind="boxes"):
    """AXIS=VALUE items as a dict; SweepError naming `option` for a malformed one."""
    wanted = {}
    for item in items:
        axis, equals, value = item.partition("=")
        if not equals or axis not in sweeps.AXES:
            raise sweeps.SweepError(f"{option} takes AXIS=VALUE with AXIS one of {', '.join(sweeps.AXES)}; "
                                    f"got {item!r}")
        wanted[axis] = sweeps.axis_value(axis, value, f"{option} {item}", kind)
    return wanted


def matches(row, wanted, kind="boxes"):
    """Whether a results.csv row has every wanted axis value, read by the sweep file's rules (any case)."""
    return all(row.get(axis) not in (None, "") and sweeps.axis_value(axis, row[axis], experiment=kind) == value
               for axis, value in wanted.items())


def choose_cells(rows, items, most=8, kind="boxes"):
    """Cells whose axis values match every AXIS=VALUE item (at most `most`), with a label each,
    and how many cells match.

    The label names the axes that vary among the cells chosen.
    """
    wanted, matching = filters(items, "--cells", kind), {}
    for row in rows:
        if matches(row, wanted, kind):
            matching.setdefault(row["cell"], row)
    if items and not matching:
        raise sweeps.SweepError(f"no finished cell matches {' '.join(items)}")
    picked = list(matching.items())[:most]
    varying = [a for a in sweeps.AXES if len({row.get(a) for _, row in picked}) > 1]
    return [(cell, ", ".join(f"{a}={row[a] or '-'}" for a in varying) or cell) for cell, row in picked], len(matching)


def main(argv=None):
    args, parser = parse_args(argv)
    try:
        if args.report:
            report(args)
            return
        run_sweep(sweeps.load(args.sweep), args.out, args.workers, args.scheduler)
    except sweeps.SweepError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"done: {args.out / 'results.csv'}; "
          f"python experiments/ablate.py --report --out {args.out} draws the report")


if __name__ == "__main__":
    main()
