"""Scripted ablation runs: a sweep file of losses, methods, parameterisations, rates and starts.

Run from the repository root::

    python experiments/ablate.py experiments/sweeps/headline.toml --out results/headline
    python experiments/ablate.py experiments/sweeps/learning_rates.toml --out results/rates --workers 2
    python experiments/ablate.py experiments/sweeps/headline.toml --out results/headline --scheduler tcp://10.0.0.5:8786
    python experiments/ablate.py --report --out results/rates --x lr --y method --cells method=adam

The sweep file is described in `sandbox.sweep`. Every cell runs in a worker process
(all cores by default) or on a Dask cluster; each finished cell is appended to
``DIR/results.csv``, one row per run, and its IoU histories to ``DIR/histories``.
Running the same command again skips the finished cells, whatever stopped the
last run; a different sweep file under the same DIR is refused, and so is a
second runner on DIR while one runs (Linux and macOS: a lock on ``DIR/.lock``,
released when the runner ends, however it ends). ``DIR`` also
holds the resolved sweep (``sweep.json``) and the package versions
(``versions.json``). ``--report`` redraws ``report.png`` and prints a summary from
those files alone, without running anything.
"""
# %%
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sandbox import sweep as sweeps
from sandbox.cli import add_workers, check_out, experiment_parser, run_sweep
from sandbox.plotting import plot_heatmap, plot_metric
from sandbox.results import atomic_write, read_csv


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("sweep", nargs="?", type=Path, help="the sweep file (TOML); not needed with --report")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.csv, histories and the report")
    add_workers(parser, "local worker processes", scheduler="cells")
    parser.add_argument("--report", action="store_true", help="only draw report.png and print the summary")
    parser.add_argument("--x", default="loss", choices=sweeps.AXES, help="report: axis across the heatmaps")
    parser.add_argument("--y", default="method", choices=sweeps.AXES, help="report: axis down the heatmaps")
    parser.add_argument("--cells", nargs="*", default=[], metavar="AXIS=VALUE",
                        help="report: draw IoU against iteration for the cells matching all of these")
    parser.add_argument("--only", nargs="*", default=[], metavar="AXIS=VALUE",
                        help="report: keep only the runs matching all of these, for the heatmaps and the table")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.report, needs=("results.csv", "sweep.json"), flag="--report")
    if not args.report and args.sweep is None:
        parser.error("give a sweep file, or --report to summarise what --out holds")
    return args, parser


def report(args):
    rows = [row for row in read_csv(args.out / "results.csv") if matches(row, filters(args.only, "--only"))]
    if not rows:
        raise sweeps.SweepError(f"{args.out} holds no finished runs{' that match --only' if args.only else ''}")
    groups = defaultdict(list)
    for row in rows:
        groups[row[args.x], row[args.y]].append(row)
    xs, ys = (axis_order(args.out, axis, {k[n] for k in groups}) for n, axis in enumerate((args.x, args.y)))
    rate, mean_iou = np.full((len(ys), len(xs)), np.nan), np.full((len(ys), len(xs)), np.nan)
    wy, wx = (max(14, *(len(k[n]) for k in groups)) for n in (1, 0))  # the widest value of each axis
    lines = [f"{args.y:>{wy}} {args.x:>{wx}} {'runs':>5} {'converged':>9} {'mean IoU':>9}"]
    for (x, y), group in sorted(groups.items(), key=lambda item: (ys.index(item[0][1]), xs.index(item[0][0]))):
        i, j = ys.index(y), xs.index(x)
        rate[i, j] = np.mean([r["converged"] == "True" for r in group])
        mean_iou[i, j] = np.mean([float(r["final_iou"]) for r in group])
        lines.append(f"{y or '-':>{wy}} {x or '-':>{wx}} {len(group):>5} {rate[i, j]:>9.0%} {mean_iou[i, j]:>9.4f}")
    chosen, matching = choose_cells(rows, args.cells)
    fig = Figure(figsize=(max(12, 1.3 * len(xs) * 2 + 6), 0.5 * len(ys) + 4.5), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.2])
    for ax, values, title in [(axes[0], rate, "share of runs converged"), (axes[1], mean_iou, "mean final IoU")]:
        image, _ = plot_heatmap(ax, values, [y or "-" for y in ys], [x or "-" for x in xs])
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right")
        ax.set_xlabel(args.x)
        ax.set_ylabel(args.y)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8)
    ax = axes[2]
    histories = {cell: sweeps.load_histories(args.out, cell) for cell, _ in chosen}
    horizon = max((h.shape[1] for h in histories.values()), default=1)
    for k, (cell, label) in enumerate(chosen):
        color = f"C{k % 10}"
        held = np.pad(histories[cell], [(0, 0), (0, horizon - histories[cell].shape[1])], mode="edge")
        plot_metric(ax, held, colors=[color] * len(held), alpha=0.3, linewidth=0.8)
        ax.plot(np.median(held, axis=0), color=color, linewidth=2, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("IoU with the target")
    ax.set_ylim(-0.03, 1.03)
    shown = f"{len(chosen)} of {matching} cells{' matching --cells' if args.cells else ''}"
    ax.set_title(f"IoU against iteration, {shown} (thick: median of the runs;\n"
                 f"a run that stopped keeps its last value)")
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


def filters(items, option):
    """AXIS=VALUE items as a dict; SweepError naming `option` for a malformed one."""
    wanted = {}
    for item in items:
        axis, equals, value = item.partition("=")
        if not equals or axis not in sweeps.AXES:
            raise sweeps.SweepError(f"{option} takes AXIS=VALUE with AXIS one of {', '.join(sweeps.AXES)}; "
                                    f"got {item!r}")
        wanted[axis] = value
    return wanted


def matches(row, wanted):
    return all(row[axis] == value for axis, value in wanted.items())


def choose_cells(rows, items, most=8):
    """Cells whose axis values match every AXIS=VALUE item (at most `most`), with a label each,
    and how many cells match.

    The label names the axes that vary among the cells chosen.
    """
    wanted, matching = filters(items, "--cells"), {}
    for row in rows:
        if matches(row, wanted):
            matching.setdefault(row["cell"], row)
    if items and not matching:
        raise sweeps.SweepError(f"no finished cell matches {' '.join(items)}")
    picked = list(matching.items())[:most]
    varying = [a for a in sweeps.AXES if len({row[a] for _, row in picked}) > 1]
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
