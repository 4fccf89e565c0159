"""GIoU never exceeds IoU, equals it exactly where the enclosing box is the union, and moves while IoU is 0.

GIoU = IoU - (C - U) / C, with C the area of the smallest box enclosing both
boxes and U the area of their union (Rezatofighi et al., CVPR 2019, arXiv
1902.09630). Since C >= U, GIoU <= IoU, with equality exactly where C = U; and
for boxes apart IoU is 0 while GIoU = -(C - U) / C lies in (-1, 0], growing as
the boxes approach. The script samples random (predicted, target) pairs with
``sandbox.optim.starts.random_box_pairs`` (targets centred at the origin, width and
height log-uniform in [0.5, 2]; a prediction's centre uniform in the square of
half-side ``--spread`` target sizes around it, its width and height the target's
times factors log-uniform in [0.25, 4]; with the default spread, half of the
pairs overlap), and writes under --out:

- ``pairs.npz``: ``pred`` and ``target`` (n, 4), ``xyxy``; ``iou``, ``giou``,
  ``c`` (the enclosing box's area) and ``u`` (the union's area), each (n,);
  ``examples`` (k, 2, 4), the pairs of the diagram, and ``example_names`` (k,);
- ``config.json``: the arguments, the counts behind the figure and package versions;
- ``giou_vs_iou.png``: GIoU against IoU for every pair, coloured by (C - U) / C,
  with the pairs where C = U in red and a histogram of GIoU for the pairs apart;
- ``enclosing_box.png``: the diagram, boxes A and B, their enclosing box C and
  the part of C that neither covers, for a pair apart, overlapping, crossing
  and nested.

Both figures are drawn from the two data files only.

Run from the repository root::

    python experiments/giou_vs_iou.py --out results/giou_vs_iou
    python experiments/giou_vs_iou.py --replot --out results/giou_vs_iou
"""
# %%
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import sandbox
from sandbox.runs.cli import check_out, experiment_parser, run_interruptible
from sandbox.views.plotting import plot_enclosing_box, plot_giou_against_iou
from sandbox.runs.records import atomic_write, provenance, write_json
from sandbox.optim.starts import random_box_pairs

DATA, CONFIG = "pairs.npz", "config.json"
SCATTER, DIAGRAM = "giou_vs_iou.png", "enclosing_box.png"
# The diagram's pairs (A, B), xyxy: one per way two boxes can lie.
EXAMPLES = {
    "apart": ([0.0, 0.0, 2.0, 1.5], [3.0, 1.0, 4.5, 3.0]),
    "overlapping": ([0.0, 0.0, 3.0, 2.0], [1.5, 1.0, 4.0, 3.0]),
    "crossing": ([0.0, 1.0, 4.0, 2.0], [1.5, 0.0, 2.5, 3.0]),
    "nested": ([1.0, 0.5, 2.5, 1.5], [0.0, 0.0, 4.0, 2.5]),
}
CAPTIONS = {"apart": "apart: IoU = 0, GIoU < 0", "overlapping": "overlapping: GIoU < IoU",
            "crossing": "crossing: overlapping, C > U", "nested": "nested: C = U, so GIoU = IoU"}
EQUAL_BELOW = 1e-9  # (C - U) / C at most this counts as C = U: rounding leaves ~1e-16 where they are equal


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/giou_vs_iou"),
                        help=f"folder for {SCATTER}, {DIAGRAM}, {DATA} and {CONFIG}")
    parser.add_argument("--pairs", type=int, default=10_000, help="random (predicted, target) pairs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pairs")
    parser.add_argument("--spread", type=float, default=1.5,
                        help="half-side of the square of predicted centres, in target sizes; "
                             "larger puts more pairs apart and further apart")
    parser.add_argument("--replot", action="store_true", help="only redraw the figures from what --out holds")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=(DATA, CONFIG))
    if not args.replot:
        if args.pairs < 1:
            parser.error(f"--pairs must be at least 1; got {args.pairs}")
        if args.seed < 0:
            parser.error(f"--seed must be a whole number >= 0; got {args.seed}")
        if not (np.isfinite(args.spread) and args.spread > 0):
            parser.error(f"--spread must be a positive number; got {args.spread}")
    return args


# %% Sample the pairs and measure them.
def measure(pred, target):
    """IoU, GIoU, enclosing area C and union area U of each pair, each shape (n,)."""
    enclosing = sandbox.box_area(sandbox.enclosing_box(pred, target))
    return dict(iou=sandbox.iou(pred, target), giou=sandbox.giou(pred, target),
                c=enclosing, u=sandbox.union_area(pred, target))


def run(args):
    pred, target = random_box_pairs(args.pairs, args.seed, spread=args.spread)
    values = measure(pred, target)
    examples = np.array(list(EXAMPLES.values()), dtype=float)
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = dict(pred=pred, target=target, **values, examples=examples,
                  example_names=np.array(list(EXAMPLES)))
    atomic_write(args.out / DATA, lambda tmp: np.savez_compressed(tmp, **arrays))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.out / CONFIG, dict(settings, equal_below=EQUAL_BELOW, measured=summary(values),
                                       **provenance()))


def summary(values):
    """The counts behind the figure's claims, from the saved per-pair values."""
    iou, giou, c, u = (np.asarray(values[k]) for k in ("iou", "giou", "c", "u"))
    penalty, apart = (c - u) / c, iou == 0
    return dict(pairs=int(iou.size), apart=int(apart.sum()), overlapping=int((~apart).sum()),
                c_equals_u=int(np.sum(penalty <= EQUAL_BELOW)),
                largest_giou_minus_iou=float(np.max(giou - iou)),
                largest_giou_minus_iou_where_c_exceeds_u=float(np.max(giou - iou, initial=-np.inf,
                                                                      where=penalty > EQUAL_BELOW)),
                giou_range_apart=[float(giou[apart].min()), float(giou[apart].max())] if apart.any() else None)


# %% Draw, from the saved files only.
def load(out):
    with np.load(out / DATA) as saved:
        return {k: saved[k] for k in saved.files}


def plot(out):
    """Draw both figures from pairs.npz and config.json under `out`, save them and return them."""
    settings, saved = json.loads((out / CONFIG).read_text()), load(out)
    facts = summary(saved)
    return scatter_figure(saved, settings, facts, out), diagram_figure(saved, out)


def scatter_figure(saved, settings, facts, out):
    fig = Figure(figsize=(10.5, 7.5), layout="constrained")
    ax, hist_ax = fig.subplots(1, 2, sharey=True, width_ratios=[4, 1])
    artists = plot_giou_against_iou(ax, saved["iou"], saved["giou"], (saved["c"] - saved["u"]) / saved["c"],
                                    hist_ax=hist_ax, equal_below=settings["equal_below"])
    fig.colorbar(artists[0], ax=hist_ax, label="(C − U) / C, the share of C that neither box covers")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.1), fontsize=9, markerscale=2.5, framealpha=0.95)
    low, high = facts["giou_range_apart"] or (np.nan, np.nan)
    hist_ax.set_title(f"GIoU of the {facts['apart']:,}\npairs apart: {low:.2f} to {high:.2f}", fontsize=10)
    fig.suptitle(f"GIoU against IoU for {facts['pairs']:,} random pairs ({facts['overlapping']:,} overlapping, "
                 f"{facts['apart']:,} apart; seed {settings['seed']})\nGIoU ≤ IoU everywhere, equal exactly "
                 f"where C = U; while the boxes are apart, IoU is 0 and GIoU spreads below 0", fontsize=12)
    fig.supxlabel(f"Pairs from sandbox.optim.starts.random_box_pairs: target centred at 0, width and height "
                  f"log-uniform in [0.5, 2];\npredicted centre uniform within ±{settings['spread']:g} "
                  f"target sizes of it, width and height the target's times factors log-uniform in [0.25, 4].",
                  fontsize=9, color="0.3", x=0.01, ha="left")
    atomic_write(out / SCATTER, fig.savefig, dpi=100)
    return fig


def diagram_figure(saved, out):
    names = [str(n) for n in saved["example_names"]]
    fig = Figure(figsize=(3.3 * len(names), 4.0), layout="constrained")
    for ax, name, (a, b) in zip(np.atleast_1d(fig.subplots(1, len(names))), names, saved["examples"]):
        plot_enclosing_box(ax, a, b)
        ax.set_title(CAPTIONS.get(name, name), fontsize=11)
    fig.suptitle("GIoU = IoU − (C − U) / C: A and B, their enclosing box C (dashed), "
                 "and the part of C that neither covers (hatched)", fontsize=12)
    atomic_write(out / DIAGRAM, fig.savefig, dpi=100)
    return fig


def main(argv=None):
    args = parse_args(argv)

    def work():
        if not args.replot:
            run(args)
        plot(args.out)
        facts = json.loads((args.out / CONFIG).read_text())["measured"]
        print(f"{facts['pairs']} pairs, {facts['apart']} apart, {facts['c_equals_u']} with C = U; "
              f"largest GIoU - IoU {facts['largest_giou_minus_iou']:.2g}")
        print(f"figures: {args.out / SCATTER}, {args.out / DIAGRAM}; data: {args.out / DATA}")

    run_interruptible(work, args.out)


if __name__ == "__main__":
    main()
