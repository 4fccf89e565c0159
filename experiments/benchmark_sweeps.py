"""How much faster a sweep runs with its first-order cells batched: the same cells, both ways, in one run.

Each sweep file runs end to end, as ablate.py runs it on --workers processes, twice
over: with one `fit` per start, as sandbox 0.3 ran a cell, and with one `fit_many`
call per first-order cell, as sweeps run now; the rows are compared. Then the headline's arithmetic (8 starts x 4 losses):
one `fit` per start against one `fit_many` per loss. Each figure is the median of
--repeats runs; the script prints seconds and ratios and writes them to
``benchmark.csv`` under --out with ``config.json``.

Run from the repository root::

    python experiments/benchmark_sweeps.py --out results/benchmark_sweeps
"""
# %%
import os
import tempfile
from pathlib import Path

import sandbox
from sandbox.runs import sweep as sweeps
from sandbox.runs.store import Store
from sandbox.runs.cli import add_workers, check_out, experiment_parser, median_run, positive_int
from sandbox.runs.records import provenance, read_csv, write_csv, write_json

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["what", "one_at_a_time_s", "batched_s", "ratio", "runs"]


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--sweeps", nargs="+", type=Path, default=[ROOT / "experiments/sweeps/learning_rates.toml"],
                        help="sweep files whose cells are timed")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per figure; the median is reported")
    add_workers(parser)
    parser.add_argument("--out", type=Path, default=Path("results/benchmark_sweeps"),
                        help="folder for benchmark.csv and config.json")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    try:
        args.loaded = [sweeps.load(path) for path in args.sweeps]
    except sweeps.SweepError as error:
        parser.error(str(error))
    return args


def run_sweep(sweep, workers, batched):
    """Run every cell of `sweep` into a new temporary folder, as ablate.py does; return the rows, seconds aside."""
    with tempfile.TemporaryDirectory() as folder, Store(folder, sweep) as store:
        sweeps.run(sweep, store, workers=workers, batch=batched)
        return sorted(tuple(v for k, v in row.items() if k != "seconds")
                      for row in read_csv(Path(folder) / "results.csv"))


def sweep_figures(path, sweep, workers, repeats):
    one_at_a_time, alone = median_run(lambda: run_sweep(sweep, workers, batched=False), repeats)
    batched_time, batched = median_run(lambda: run_sweep(sweep, workers, batched=True), repeats)
    same = len(set(alone) & set(batched))
    print(f"{path.name}: {len(batched)} runs; {same} rows identical both ways", flush=True)
    return dict(what=f"{path.name}, {workers} workers", runs=len(batched), one_at_a_time_s=one_at_a_time,
                batched_s=batched_time)


def headline_figures(repeats):
    target = [-1.0, -0.5, 1.0, 0.5]
    starts = sandbox.non_overlapping_starts(target, 0.5, 8, [1.0, 1.5])
    losses = ["iou", "giou", "l1", "l2"]
    return dict(what="headline, 8 starts x 4 losses, gd", runs=len(starts) * len(losses),
                one_at_a_time_s=median_run(lambda: [sandbox.fit(s, target, loss=loss) for loss in losses
                                               for s in starts], repeats)[0],
                batched_s=median_run(lambda: [sandbox.fit_many(starts, target, loss=loss) for loss in losses],
                                repeats)[0])


def main(argv=None):
    args = parse_args(argv)
    figures = [sweep_figures(path, sweep, args.workers, args.repeats) for path, sweep in zip(args.sweeps, args.loaded)]
    figures.append(headline_figures(args.repeats))
    print(f"{'what':<36} {'one at a time':>14} {'batched':>9} {'ratio':>6}")
    for row in figures:
        row["ratio"] = row["one_at_a_time_s"] / row["batched_s"]
        print(f"{row['what']:<36} {row['one_at_a_time_s']:>12.2f} s {row['batched_s']:>7.2f} s "
              f"{row['ratio']:>5.1f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "benchmark.csv", COLUMNS, [{k: (f"{v:.4g}" if isinstance(v, float) else v)
                                                     for k, v in row.items()} for row in figures])
    write_json(args.out / "config.json", dict(sweeps=[str(p) for p in args.sweeps], repeats=args.repeats,
                                              workers=args.workers,
                                              cores=os.cpu_count(), **provenance()))


if __name__ == "__main__":
    main()
