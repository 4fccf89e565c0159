"""Which loss should I trust? Every loss through three settings, one evidence table, ranks with ties.

Each setting is a sweep (`sandbox.runs.sweep`) in its own folder under --out, so it
resumes cell by cell, refuses other settings and a second runner, and runs on a
Dask cluster with --scheduler:

- ``single_box/``: one box fitted from random non-overlapping and overlapping starts
  around the target (``--starts`` of each per seed, ``--seeds`` seeds; within a seed every
  loss, optimiser and rate starts from the same boxes), under gd with the step schedule
  and under Adam, at every learning rate of one shared grid (``--lrs``).
  Each optimiser is reported at its best rate: the most starts brought home (final IoU
  0.99), then the fewer median iterations to IoU 0.9, then the smaller rate;
- ``simulation/``: the DIoU paper's simulation (``--points`` anchor centres, 343 cases each:
  1,715,000 by default, 200 iterations), one cell per loss;
- ``learning/``: the learning experiment of ``train_regressor.py`` at its quick (or
  full) preset over ``--seeds`` seeds, each loss at the rate that does best on the
  validation split of seed 0, its grid grown by the default experiment's rule (up to twice
  beyond the end where the best rate lies).

``--oriented`` ranks the oriented losses (`sandbox.losses.oriented.ORIENTED_LOSSES`) by the
same rules in two settings, ``single_box/`` around an oriented target (2 x 1 turned by 0.4
rad; the random starts at their own uniform angles, apart by the separating-axis gap or
overlapping by rotated IoU, `sandbox.optim.starts`; "home" is rotated IoU 0.99) and
``simulation/``, the oriented protocol (`sandbox.runs.simulation.oriented_protocol`,
``--points`` centres, 20 by default: 6,860 cases, through autograd, which every oriented
loss runs on). There is no oriented learning setting: the learning experiment's network and
images place axis-aligned boxes.

The rule is the same for every loss, and nothing is tuned per loss. Under --out, from
the three folders alone (``--replot`` redraws them):

- ``evidence.csv``: a row per loss x setting x measure (`sandbox.runs.evidence.MEASURES`):
  ``loss``, ``setting``, ``measure``, ``value``, ``spread`` (std over seeds; empty without seeds);
- ``pairs.csv``: a row per pair of losses x measure of the single-box shares and the learning
  measures (`sandbox.runs.evidence.PAIR_COLUMNS`): the paired difference, item by item (a start
  box, a test image), its 95 % interval and half-width, and whether the interval contains 0;
- ``ranking.csv``: ``loss``, ``setting``, ``rank``, ``failed``, ``reason``: each setting
  ranked by its headline measure (`sandbox.runs.evidence.HEADLINES`), tied losses sharing a
  rank (single box and learning: the paired interval contains 0; the simulation, which has no
  paired items: within the rounding), losses that fail outright said so, not ranked;
- ``rates.csv``: the learning rate each loss was reported at, per setting and optimiser;
- ``summary.txt``: for each setting, which differences are real; ``table.md``: every loss's
  rank and headline value per setting, as the README shows it; ``ranks.png``: the same as a figure;
- ``config.json``: the arguments as used, with the package versions.

Run from the repository root::

    python experiments/which_loss.py --quick --out results/which_loss_quick
    python experiments/which_loss.py --out results/which_loss
    python experiments/which_loss.py --replot --out results/which_loss
    python experiments/which_loss.py --oriented --out results/which_loss_oriented
"""
# %%
import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one BLAS thread per process: the learning numbers depend on it

import json
import math
import time
from pathlib import Path

from matplotlib.figure import Figure

import sandbox
from sandbox.losses.oriented import ORIENTED_LOSSES
from sandbox.losses.spec import loss_kind
from sandbox.runs import evidence
from sandbox.runs import sweep as sweeps
from sandbox.runs.store import finished
from sandbox.learning import training
from sandbox.runs.cli import add_workers, check_out, experiment_parser, refuse_other_settings, run_sweep
from sandbox.views.plotting import plot_ranks
from sandbox.runs.records import atomic_write, provenance, write_csv, write_json
from sandbox.runs.sweep import SweepError

PARTS = ("single_box", "simulation", "learning")
ORIENTED_PARTS = ("single_box", "simulation")
DEFAULTS = dict(losses=list(sandbox.LOSSES), seeds=3, starts=16, lrs=[0.01, 0.03, 0.1, 0.3, 1.0], points=5000,
                learning="quick")
QUICK = dict(losses=["iou", "giou", "diou", "ciou", "l1", "focal_eiou"], seeds=2, starts=8, lrs=[0.03, 0.1, 0.3],
             points=20, learning="quick")
ORIENTED_DEFAULTS = dict(losses=list(ORIENTED_LOSSES), seeds=3, starts=16, lrs=[0.01, 0.03, 0.1, 0.3, 1.0], points=20,
                         learning=None)
ORIENTED_QUICK = dict(ORIENTED_DEFAULTS, seeds=2, starts=8, lrs=[0.03, 0.1, 0.3], points=2)
TARGET = [-1.0, -0.5, 1.0, 0.5]
ORIENTED_TARGET = [0.0, 0.0, 2.0, 1.0, 0.4]
"""The single-box target of --oriented: TARGET's 2 x 1 box, turned by 0.4 rad."""


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/which_loss"),
                        help="folder for the three settings' sweeps, evidence.csv, ranking.csv and ranks.png")
    parser.add_argument("--quick", action="store_true",
                        help=f"a reduced protocol, under two minutes: {', '.join(f'{k} {v}' for k, v in QUICK.items())}"
                             f"; options given explicitly still apply")
    parser.add_argument("--oriented", action="store_true",
                        help=f"rank the oriented losses in the single-box and simulation settings; defaults "
                             f"{', '.join(f'{k} {v}' for k, v in ORIENTED_DEFAULTS.items() if k != 'learning')}, with "
                             f"--quick {', '.join(f'{k} {v}' for k, v in ORIENTED_QUICK.items() if k in ('seeds', 'starts', 'lrs', 'points'))}")
    parser.add_argument("--losses", nargs="+", help="losses, any spec (giou, 5*l1+2*giou, package.module:function); "
                                                    "default every loss of the registry (with --oriented, every "
                                                    "oriented loss)")
    parser.add_argument("--seeds", type=int, help=f"seeds of the single-box starts and of the networks' weights; "
                                                   f"default {DEFAULTS['seeds']}")
    parser.add_argument("--starts", type=int, help=f"single box: non-overlapping and as many overlapping starts per "
                                                    f"seed; default {DEFAULTS['starts']}")
    parser.add_argument("--lrs", nargs="+", type=float,
                        help=f"single box: the learning-rate grid of both optimisers; default {DEFAULTS['lrs']}")
    parser.add_argument("--points", type=int, help=f"simulation: anchor centres, 343 cases each; default "
                                                    f"{DEFAULTS['points']} (1,715,000 cases)")
    parser.add_argument("--learning", choices=sorted(training.LEARNING_PRESETS),
                        help=f"learning: the preset of train_regressor.py (its --seeds replaced by ours); default "
                             f"{DEFAULTS['learning']}")
    add_workers(parser, "worker processes", scheduler="cells")
    parser.add_argument("--replot", action="store_true", help="only redraw the tables and the figure from --out")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=("config.json",))
    if not args.replot:
        try:
            resolve(args)
            args.sweeps = make_sweeps(args)
            refuse_other_settings(args.out, settings(args))
        except ValueError as error:
            parser.error(str(error))
    return args, parser


def resolve(args):
    """Fill the preset's values into the options left out, then check every one; ValueError naming a bad one."""
    if args.oriented and args.learning is not None:
        raise ValueError("--learning: the learning setting places axis-aligned boxes; --oriented has no learning part")
    presets = (ORIENTED_QUICK, ORIENTED_DEFAULTS) if args.oriented else (QUICK, DEFAULTS)
    preset = presets[0] if args.quick else presets[1]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.losses = [sandbox.canonical_loss(loss) for loss in args.losses]
    for loss in args.losses:
        if (loss_kind(loss).size == 5) != args.oriented:
            raise ValueError(f"loss {loss!r} is axis-aligned: --oriented ranks the oriented losses" if args.oriented
                             else f"loss {loss!r} is oriented: give --oriented to rank the oriented losses")
    if len(set(args.losses)) < len(args.losses):
        raise ValueError("--losses names a loss more than once")
    for flag, value in (("--seeds", args.seeds), ("--starts", args.starts), ("--points", args.points)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1; got {value}")
    if not all(lr > 0 and math.isfinite(lr) for lr in args.lrs):
        raise ValueError(f"--lrs must be positive learning rates; got {args.lrs}")
    args.lrs = sorted(set(args.lrs))


def settings(args):
    chosen = {key: getattr(args, key) for key in DEFAULTS}
    if args.oriented:  # recorded only when given, so that folders from before still match
        del chosen["learning"]
        chosen["oriented"] = True
    return chosen


def parts_of(config):
    """The settings a run has (its arguments or its config.json): all three, or the oriented two."""
    return ORIENTED_PARTS if config.get("oriented") else PARTS


def make_sweeps(args):
    """The three settings as sweeps, resolved (checked) before any work."""
    losses, seeds = args.losses, list(range(args.seeds))
    single_box = dict(threshold=0.99, target=ORIENTED_TARGET if args.oriented else TARGET,
                      starts={evidence.APART: dict(kind="random", count=args.starts, shared=True),
                              evidence.OVERLAPPING: dict(kind="overlapping", count=args.starts, shared=True)},
                      axes=dict(loss=losses, method=list(evidence.METHODS), lr=args.lrs, schedule=["step"],
                                starts=[evidence.APART, evidence.OVERLAPPING], seed=seeds))
    # the fused kernels: the fast path, named here and recorded in the sweep (sandbox.optim.settings)
    # the oriented losses have no kernels: autograd, named as such
    simulation = dict(experiment="simulation", simulation=dict(points=args.points, gradient="autograd", oriented=True)
                      if args.oriented else dict(points=args.points, gradient="fused"), axes=dict(loss=losses))
    if args.oriented:
        return {part: sweeps.resolve(raw, f"the {part} setting")
                for part, raw in zip(ORIENTED_PARTS, (single_box, simulation))}
    preset = training.LEARNING_PRESETS[args.learning]
    # the preset's data, network and budget; its rate grid grows by the default experiment's rule (up to twice
    # at each end, the rate chosen on seed 0), whatever the preset says, since 34 losses of every scale share it
    learning = dict(experiment="learning",
                    learning=dict(epochs=preset["epochs"], model=preset["model"], batch_size=preset["batch_size"],
                                  images=[preset["train"], preset["val"], preset["test"]],
                                  grow=training.LEARNING_DEFAULTS["grow"]),
                    axes=dict(loss=losses, lr=preset["lrs"], seed=seeds))
    return {part: sweeps.resolve(raw, f"the {part} setting")
            for part, raw in zip(PARTS, (single_box, simulation, learning))}


def run(args):
    """Run (or finish) each setting's sweep in turn, saying how long each took."""
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "config.json", dict(settings(args), versions=provenance()))
    for part in parts_of(vars(args)):
        print(f"{part}:")
        if part == "learning":
            training.splits_for(args.sweeps[part]["learning"])  # made once, before the workers fork
        began = time.perf_counter()
        run_sweep(args.sweeps[part], args.out / part, args.workers, args.scheduler)
        print(f"{part}: {time.perf_counter() - began:.0f} s")


# %% Tables and figure, from the saved sweeps only.
def load(out):
    """Each setting's rows in its sweep's order, once every setting has finished (`sandbox.runs.store.finished`);
    for learning, each cell's record (`sandbox.learning.training.run`), which holds its per-image test IoUs."""
    parts = parts_of(json.loads((out / "config.json").read_text()))
    rows = {part: [row for rows in finished(out / part)[1].values() for row in rows] for part in parts}
    if "learning" in rows:
        rows["learning"] = [json.loads((out / "learning" / "records" / f"{row['cell']}.json").read_text())
                            for row in rows["learning"]]
    return rows


def tables(out, rows):
    """Write evidence.csv, pairs.csv, ranking.csv, rates.csv, summary.txt and table.md; return the evidence,
    the ranking and the table."""
    single, single_rates, single_failed, single_pairs = evidence.single_box_evidence(rows["single_box"])
    simulation, simulation_failed, resolution = evidence.simulation_evidence(rows["simulation"])
    learning, learning_rates, learning_failed, learning_pairs = (evidence.learning_evidence(rows["learning"])
                                                                 if "learning" in rows else ([], {}, {}, []))
    table = single + simulation + learning
    pairs = single_pairs + learning_pairs
    failed = dict(single_box=single_failed, simulation=simulation_failed, learning=learning_failed)
    resolutions = dict(simulation=resolution)
    ranking = evidence.rank_settings(table, failed, resolutions, pairs)
    write_csv(out / "evidence.csv", evidence.EVIDENCE_COLUMNS, table)
    write_csv(out / "pairs.csv", evidence.PAIR_COLUMNS, pairs)
    write_csv(out / "ranking.csv", evidence.RANKING_COLUMNS, ranking)
    rates = [dict(loss=loss, setting="single_box", optimizer=method, lr=lr)
             for (loss, method), lr in single_rates.items()]
    rates += [dict(loss=loss, setting="learning", optimizer="adam", lr=lr) for loss, lr in learning_rates.items()]
    write_csv(out / "rates.csv", ["loss", "setting", "optimizer", "lr"], rates)
    text = evidence.summary(table, failed, resolutions, pairs)
    atomic_write(out / "summary.txt", lambda tmp: Path(tmp).write_text(text + "\n"))
    markdown = evidence.rank_table(table, ranking)
    atomic_write(out / "table.md", lambda tmp: Path(tmp).write_text(markdown + "\n"))
    return table, ranking, markdown


def plot(out, table, ranking, config):
    losses = len({r["loss"] for r in ranking})
    notes = {(r["loss"], r["setting"]): evidence.format_value(r["value"], r["spread"]) for r in table
             if r["measure"] == evidence.HEADLINES[r["setting"]][0]}
    fig = Figure(figsize=(9, 1.8 + 0.26 * losses), layout="constrained")
    ax = fig.subplots()
    image, _ = plot_ranks(ax, ranking, notes=notes)
    bar = fig.colorbar(image, ax=ax, shrink=min(1.0, 6 / losses + 0.2), ticks=[0, 1], label="place within the setting")
    bar.ax.set_ylim(0, 1)
    bar.ax.set_yticklabels(["last", "first"])
    simulation = f"{config['points'] * 343:,} cases"
    parts = parts_of(config)
    headlines = ", ".join(f"{setting}: {measure}" for setting, (measure, _) in evidence.HEADLINES.items()
                          if setting in parts)
    learning = (f"; learning: {config['learning']} preset, {config['seeds']} seeds" if "learning" in parts
                else " (oriented boxes, rotated IoU)")
    ax.set_title(f"rank of each loss in each setting and its headline value, mean ± std over seeds\n(=: a shared "
                 f"rank: the paired 95 % interval holds 0, or in the simulation within the rounding)\n{headlines}"
                 f"\nsingle box: {config['seeds']} seeds x {2 * config['starts']} starts; simulation: "
                 f"{simulation}{learning}", fontsize=9)
    atomic_write(out / "ranks.png", fig.savefig, dpi=100)


def main(argv=None):
    args, parser = parse_args(argv)
    try:
        if not args.replot:
            run(args)
        rows = load(args.out)
    except SweepError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    table, ranking, markdown = tables(args.out, rows)
    plot(args.out, table, ranking, json.loads((args.out / "config.json").read_text()))
    print(markdown)
    print(f"which differences are real: {args.out / 'summary.txt'}; tables: evidence.csv, pairs.csv, ranking.csv, "
          f"rates.csv, table.md; figure: ranks.png")


if __name__ == "__main__":
    main()
