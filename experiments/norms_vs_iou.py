"""L1 and L2 on box coordinates do not track IoU: the GIoU paper's Figure 1, the IoU band, scale, ranks.

Step 1 of the GIoU argument (Rezatofighi et al., CVPR 2019, arXiv 1902.09630).
The script

1. reproduces Figure 1: boxes found with the sandbox's optimiser (``sandbox.fit``
   with Nelder-Mead and a callable loss, see ``sandbox.views.norms``) at the same L2 distance 8.41 on
   (x1, y1, x2, y2) and the same L1 distance 9.07 on (xc, yc, w, h) with the
   paper's IoU and GIoU to two decimals;
2. computes the IoU band: for each distance r on a grid, the smallest and largest
   IoU and GIoU over every box at exactly that L1 or L2 distance from the target,
   in both coordinate forms, for each --targets box, with a certified error
   (``sandbox.views.norms.band_extreme``); r is given in units of the target's size
   sqrt(w h);
3. shows scale: the same absolute L2 error on a small and a large target;
4. measures how well each loss orders random pairs by IoU: Spearman's rank
   correlation between the loss and 1 - IoU over --pairs pairs from
   ``sandbox.optim.starts.random_box_pairs``, among the overlapping pairs and among all.

It writes under --out:

- ``figure1.json``: per panel the target, the boxes (``xyxy``), the norm and coords;
- ``band.npz``: ``targets`` (k, 4), ``relative_radii`` (m,), and for each target
  index i, norm and coords the arrays ``{i}_{norm}_{coords}_{measure}_{min|max}``
  and their certified errors ``..._gap``;
- ``spearman.csv``: one row per loss;
- ``config.json``: the arguments and package versions;
- ``figure1.png``, ``iou_band.png``, ``giou_band.png``, ``scale.png``: drawn from the files above only.

Run from the repository root::

    python experiments/norms_vs_iou.py --out results/norms_vs_iou
    python experiments/norms_vs_iou.py --replot --out results/norms_vs_iou
"""
# %%
import json
import math
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import sandbox
from sandbox.views import norms
from sandbox.runs.cli import check_out, experiment_parser, run_interruptible
from sandbox.runs.records import atomic_write, provenance, read_csv, write_csv, write_json
from sandbox.optim.starts import random_box_pairs

FIGURE1, BAND, SPEARMAN, CONFIG = "figure1.json", "band.npz", "spearman.csv", "config.json"
FIGURES = ("figure1.png", "iou_band.png", "giou_band.png", "scale.png")
SCALE_ERROR = 8.41  # the paper's L2 distance, as the absolute error of the scale figure
SCALE_SIZES = (16.0, 160.0)  # the small and large square targets of the scale figure
NORM_COLOURS = {"l2": "tab:blue", "l1": "tab:orange"}
COLUMNS = ["loss", "spearman_overlapping", "spearman_all", "constant_overlapping", "constant_all",
           "pairs_overlapping", "pairs_all"]


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/norms_vs_iou"),
                        help=f"folder for the figures, {FIGURE1}, {BAND}, {SPEARMAN} and {CONFIG}")
    parser.add_argument("--targets", nargs="+", type=float, default=[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.5],
                        metavar="X", help="targets of the IoU band, xyxy, four numbers each: by default "
                                          "a square and a 4:1 box of the same area")
    parser.add_argument("--radii", type=int, default=9, help="distances r on the band's grid, from 0")
    parser.add_argument("--max-radius", type=float, default=1.2,
                        help="largest distance of the band, in units of the target's size sqrt(w h)")
    parser.add_argument("--tol", type=float, default=2e-3,
                        help="the band search stops refining a cell that cannot beat the best by more")
    parser.add_argument("--cells", type=int, default=150_000,
                        help="the band search's largest number of cells in one round; more tightens the "
                             "certified error of the band (printed per band) and takes longer")
    parser.add_argument("--pairs", type=int, default=10_000, help="random pairs for the rank correlation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pairs")
    parser.add_argument("--losses", nargs="+", default=None,
                        help="losses for the rank correlation: names in sandbox.LOSSES, with parameters "
                             "(l1:coords=cxcywh), package.module:function, or weighted sums (5*l1+2*giou); "
                             f"default every name in sandbox.LOSSES, now {len(sandbox.LOSSES)}")
    parser.add_argument("--replot", action="store_true", help="only redraw the figures from what --out holds")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=(FIGURE1, BAND, SPEARMAN, CONFIG))
    if not args.replot:
        check(args, parser)
    return args


def check(args, parser):
    """Check every argument before any work starts; errors are one line."""
    if args.losses is None:
        args.losses = list(sandbox.LOSSES)
    try:
        if len(args.targets) % 4:
            raise ValueError(f"--targets takes four numbers per box (x1 y1 x2 y2); got {len(args.targets)}")
        sandbox.check_boxes(np.reshape(args.targets, (-1, 4)), "target", positive_size=True)
        args.losses = [sandbox.canonical_loss(spec) for spec in args.losses]
        if len(set(args.losses)) != len(args.losses):
            raise ValueError("--losses names a loss more than once; give each loss once")
        if args.radii < 2:
            raise ValueError(f"--radii must be at least 2; got {args.radii}")
        if not (math.isfinite(args.max_radius) and args.max_radius > 0):
            raise ValueError(f"--max-radius must be a positive number; got {args.max_radius}")
        if not (math.isfinite(args.tol) and args.tol > 0):
            raise ValueError(f"--tol must be a positive number; got {args.tol}")
        if args.cells < 10_000:
            raise ValueError(f"--cells must be at least 10000 (the first grid has 8192); got {args.cells}")
        if args.pairs < 10:
            raise ValueError(f"--pairs must be at least 10; got {args.pairs}")
        if args.seed < 0:
            raise ValueError(f"--seed must be a whole number >= 0; got {args.seed}")
    except ValueError as error:
        parser.error(str(error))


# %% Compute and save.
def run(args):
    began = time.perf_counter()
    try:
        figure1 = {panel: norms.solve_figure1(panel) for panel in norms.PAPER_FIGURE1}
    except norms.Figure1NotFound as error:
        raise SystemExit(f"norms_vs_iou.py: {error}; nothing was written") from None
    print(f"Figure 1: boxes solved in {time.perf_counter() - began:.1f} s", flush=True)
    targets = np.reshape(args.targets, (-1, 4))
    relative = np.linspace(0.0, args.max_radius, args.radii)
    arrays = dict(targets=targets, relative_radii=relative)
    for i, target in enumerate(targets):
        radii = relative * norms.target_size(target)
        for norm in norms.NORMS:
            for coords in norms.BAND_COORDS:
                clock = time.perf_counter()
                band = norms.iou_band(target, radii, norm, coords, tol=args.tol, max_cells=args.cells)
                arrays.update({f"{i}_{norm}_{coords}_{k}": v for k, v in band.items()})
                gaps = [max(band[f"{m}_{s}_gap"].max() for s in ("min", "max")) for m in norms.MEASURES]
                print(f"band: target {i} {fmt_box(target)}, {norm} on {coords}: {len(radii)} radii in "
                      f"{time.perf_counter() - clock:.1f} s; certified error at most {gaps[0]:.3f} (IoU), "
                      f"{gaps[1]:.3f} (GIoU)", flush=True)
    clock = time.perf_counter()
    pred, target = random_box_pairs(args.pairs, args.seed)
    rows = norms.rank_correlations(pred, target, args.losses)
    print(f"rank correlations: {len(rows)} losses on {args.pairs:,} pairs in "
          f"{time.perf_counter() - clock:.1f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / FIGURE1, figure1)
    atomic_write(args.out / BAND, lambda tmp: np.savez_compressed(tmp, **arrays))
    write_csv(args.out / SPEARMAN, COLUMNS, rows)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.out / CONFIG, dict(settings, seconds=round(time.perf_counter() - began, 2), **provenance()))


def fmt_box(box):
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


# %% Read and draw, from the saved files only.
def load(out):
    figure1 = json.loads((out / FIGURE1).read_text())
    with np.load(out / BAND) as saved:
        band = {k: saved[k] for k in saved.files}
    return figure1, band, read_csv(out / SPEARMAN)


def spearman_table(rows):
    """The rank correlations as aligned text, highest among overlapping pairs first."""
    def value(text):
        return float(text) if text not in ("", "nan") else float("nan")
    ordered = sorted(rows, key=lambda r: -np.nan_to_num(value(r["spearman_overlapping"]), nan=-2))
    n_over, n_all = rows[0]["pairs_overlapping"], rows[0]["pairs_all"]
    lines = [f"{'loss':<18} {'overlapping (' + n_over + ')':>18} {'all (' + n_all + ')':>14}"]
    for row in ordered:
        cells = [("constant" if row[f"constant_{s}"] == "True" else f"{value(row[f'spearman_{s}']):.3f}")
                 for s in ("overlapping", "all")]
        lines.append(f"{row['loss']:<18} {cells[0]:>18} {cells[1]:>14}")
    return "\n".join(lines)


def plot(out):
    """Draw every figure from the files under `out`; save them and return them."""
    figure1, band, rows = load(out)
    figures = [figure1_figure(figure1), band_figure(band, "iou"), band_figure(band, "giou"), scale_figure(band)]
    for name, fig in zip(FIGURES, figures):
        atomic_write(out / name, fig.savefig, dpi=100)
    return figures


def figure1_figure(figure1):
    fig = Figure(figsize=(11, 6.2), layout="constrained")
    titles = {"a": "(a) same $\\ell_2$ distance on (x1, y1, x2, y2)",
              "b": "(b) same $\\ell_1$ distance on (xc, yc, w, h)"}
    for ax, panel in zip(fig.subplots(1, 2), ("a", "b")):
        norms.plot_figure1_panel(ax, figure1[panel], title=titles[panel])
    fig.suptitle("The GIoU paper's Figure 1 reproduced: the same coordinate error, very different IoU and GIoU "
                 "(y down, as in an image)", fontsize=12)
    return fig


def band_figure(band, measure):
    targets, relative = band["targets"], band["relative_radii"]
    fig = Figure(figsize=(11, 4.2 * len(targets) + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(targets), 2, sharex=True, sharey=True))
    name = {"iou": "IoU", "giou": "GIoU"}[measure]
    for i, target in enumerate(targets):
        w, h = target[2] - target[0], target[3] - target[1]
        for ax, coords in zip(axes[i], norms.BAND_COORDS):
            for norm in ("l2", "l1"):  # l1 thinner, on top: where the two coincide both stay visible
                key = f"{i}_{norm}_{coords}"
                extremes = {k: band[f"{key}_{k}"] for k in (f"{measure}_min", f"{measure}_max")}
                norms.plot_band(ax, relative, extremes, measure, NORM_COLOURS[norm],
                                label=f"$\\ell_{norm[1]}$ = r", linewidth=3.0 if norm == "l2" else 1.5)
            vector = "(x1, y1, x2, y2)" if coords == "xyxy" else "(xc, yc, w, h)"
            ax.set_title(f"target {w:g} x {h:g}, distance on {vector}", fontsize=11)
            ax.grid(alpha=0.3)
            ax.set_ylabel(f"{name} of boxes at distance r")
        axes[i, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=10, frameon=False,
                           title="largest (solid)\nsmallest (dashed)\nover boxes at")
    for ax in axes[-1]:
        ax.set_xlabel("r / sqrt(w h), the distance in units of the target's size")
    gap = max(float(band[k].max()) for k in band if k.endswith("_gap") and f"_{measure}_" in k)
    fig.suptitle(f"The {name} band: every box at the same coordinate distance r has {name} between the dashed "
                 f"and the solid line\n(each line is attained by a box; the true extreme lies within {gap:.3f} "
                 f"of it, certified by sandbox.views.norms.band_extreme)", fontsize=12)
    return fig


def scale_figure(band):
    """Left: one L2 error on a small and a large target. Right: the IoU band at that error against size."""
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.5])
    shift = SCALE_ERROR / np.sqrt(2)  # x1 and x2 both moved: L2 = sqrt(2) shift
    for ax, size in zip(axes[:2], SCALE_SIZES):
        target = np.array([0.0, 0.0, size, size])
        pred = target + np.array([shift, 0.0, shift, 0.0])
        ax.add_patch(Rectangle((0, 0), size, size, fill=False, edgecolor="black", linewidth=3, label="target"))
        value = float(sandbox.iou(pred, target))
        ax.add_patch(Rectangle(pred[:2], size, size, fill=False, edgecolor="tab:red", linewidth=2, linestyle="--",
                               label=f"$\\ell_2$ = {SCALE_ERROR}, IoU = {value:.2f}"))
        ax.set_xlim(-0.1 * size, 1.5 * size)
        ax.set_ylim(1.25 * size, -0.1 * size)
        ax.set_aspect("equal")
        ax.set_title(f"{size:g} x {size:g} target", fontsize=11)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=10, frameon=False)
    ax = axes[2]
    sizes = np.geomspace(SCALE_ERROR / band["relative_radii"][-1], 40 * SCALE_ERROR, 200)
    relative = band["relative_radii"]
    low = np.interp(SCALE_ERROR / sizes, relative, band["0_l2_xyxy_iou_min"])
    high = np.interp(SCALE_ERROR / sizes, relative, band["0_l2_xyxy_iou_max"])
    ax.fill_between(sizes, low, high, color="tab:blue", alpha=0.25, linewidth=0)
    ax.plot(sizes, high, color="tab:blue", linewidth=2, label="largest IoU")
    ax.plot(sizes, low, color="tab:blue", linewidth=2, linestyle="--", label="smallest IoU")
    for size in SCALE_SIZES:
        ax.axvline(size, color="0.5", linewidth=1, linestyle=":")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    w, h = band["targets"][0][2:] - band["targets"][0][:2]
    ax.set_xlabel(f"size sqrt(w h) of a {w / h:g}:1 target (log scale)")
    ax.set_ylabel(f"IoU of boxes at $\\ell_2$ = {SCALE_ERROR}")
    ax.set_title(f"all boxes at $\\ell_2$ = {SCALE_ERROR} on (x1, y1, x2, y2), by target size", fontsize=11)
    ax.legend(loc="lower right", fontsize=10, frameon=False)
    ax.grid(alpha=0.3)
    fig.suptitle("Scale: the same $\\ell_2$ error of 8.41 (both x edges moved by 5.95) is a poor box on a small "
                 "target and a good one on a large target;\nIoU and GIoU are scale invariant, L1 and L2 are not",
                 fontsize=12)
    return fig


def main(argv=None):
    args = parse_args(argv)

    def work():
        if not args.replot:
            run(args)
        plot(args.out)
        _, _, rows = load(args.out)
        print("Spearman rank correlation with 1 - IoU\n" + spearman_table(rows))
        print(f"figures: {', '.join(str(args.out / name) for name in FIGURES)}")
    run_interruptible(work, args.out)


if __name__ == "__main__":
    main()
