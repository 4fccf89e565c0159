"""Every loss over the plane of predicted centres: where it is flat, and where its gradient points.

For a fixed target box and a fixed predicted box size, the script evaluates each
loss at every predicted centre of a grid around the target, with the gradient
with respect to the centre from autograd (one reverse pass per loss for the whole
grid, since the losses are elementwise), and draws one panel per loss: the loss as
a filled contour on its own colour scale (losses differ in range and units, so one
shared scale would flatten most panels), the negative gradient as arrows on a
coarser sub-grid, of unit length and coloured by log |gradient| on one scale shared
by every panel (magnitudes span orders of magnitude), and a dot wherever the gradient is
exactly zero. The IoU loss is flat, gradient exactly zero, wherever the predicted
box does not overlap the target; the panels show at a glance what every other loss
does there. It writes under --out:

- ``loss_gallery.npz``: ``xs`` (n,) and ``ys`` (m,), the centres' coordinates;
  ``specs`` (k,), the loss specs as given; ``values`` (k, m, n) and ``gradients``
  (k, m, n, 2), d loss / d (cx, cy) at centre (xs[j], ys[i]) in ``[:, i, j]``;
  ``target`` and ``size``;
- ``config.json``: the arguments, target, predicted size, seconds per loss and
  package versions;
- ``loss_gallery.png``: the panels, drawn from the two files above only.

Run from the repository root::

    python experiments/loss_gallery.py --out results/loss_gallery
    python experiments/loss_gallery.py --losses iou giou l1:coords=cxcywh --out results/few
    python experiments/loss_gallery.py --replot --out results/loss_gallery
"""
# %%
import json
import math
import textwrap
import time
from pathlib import Path

import autograd.numpy as anp
import numpy as np
from autograd import grad
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

import sandbox
from sandbox.runs.cli import check_out, experiment_parser
from sandbox.losses import unchecked
from sandbox.views.plotting import plot_target
from sandbox.runs.records import atomic_write, provenance, write_json

FIGURE, DATA, CONFIG = "loss_gallery.png", "loss_gallery.npz", "config.json"
# Light greys for the loss, so that arrows of every colour stand out on it; the arrows' map
# stops at orange, since plasma's yellow end vanishes on light grey.
LOSS_COLOURS = ListedColormap(colormaps["Greys"](np.linspace(0.0, 0.5, 256)))
ARROW_COLOURS = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)))
ARROWS_PER_AXIS = 20  # arrows are drawn on every k-th grid point, k chosen for about this many a side


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/loss_gallery"),
                        help="folder for the figure, loss_gallery.npz and config.json")
    parser.add_argument("--losses", nargs="+", default=None,
                        help=f"losses, by name with optional parameters (l1:coords=cxcywh); "
                             f"by default every loss in sandbox.LOSSES, now {', '.join(sandbox.LOSSES)}")
    parser.add_argument("--target", nargs=4, type=float, default=[-1.0, -0.5, 1.0, 0.5],
                        metavar=("X1", "Y1", "X2", "Y2"), help="target box, xyxy")
    parser.add_argument("--size", nargs=2, type=float, default=[1.0, 1.5], metavar=("W", "H"),
                        help="width and height of the predicted box at every centre")
    parser.add_argument("--extent", nargs="+", type=float, default=[4.0], metavar="E",
                        help="half-width of the grid of centres around the target's centre: "
                             "one value for both axes, or two (x, y)")
    parser.add_argument("--resolution", type=int, default=161,
                        help="grid points per axis (odd puts one on the target's centre)")
    parser.add_argument("--columns", type=int, default=None,
                        help="panels per row of the figure (by default 6, or as saved with --replot)")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the figure from what --out holds")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=(DATA, CONFIG))
    if not args.replot:
        check(args, parser)
    return args


def check(args, parser):
    """Resolve and check every argument before any work starts."""
    if args.losses is None:
        args.losses = list(sandbox.LOSSES)  # whatever the registry holds at the time of the run
    try:
        sandbox.check_boxes(args.target, "target", positive_size=True)
        args.losses = [sandbox.canonical_loss(spec) for spec in args.losses]  # checks names, parameters, values
        duplicates = sorted({spec for spec in args.losses if args.losses.count(spec) > 1})
        if duplicates:
            raise ValueError(f"--losses names {', '.join(duplicates)} more than once; give each loss once")
        if not all(s > 0 and math.isfinite(s) for s in args.size):
            raise ValueError(f"--size must be a positive, finite width and height; got {args.size}")
        if len(args.extent) > 2 or not all(e > 0 and math.isfinite(e) for e in args.extent):
            raise ValueError(f"--extent takes one or two positive numbers (x, y); got {args.extent}")
        if args.resolution < 2:
            raise ValueError(f"--resolution must be at least 2 points per axis; got {args.resolution}")
        if args.columns is not None and args.columns < 1:
            raise ValueError(f"--columns must be at least 1; got {args.columns}")
    except (ValueError, TypeError) as error:
        parser.error(str(error))


def centre_grid(target, extent, resolution):
    """Predicted centres on a grid around the target's centre: xs (n,), ys (n,), centres (n, n, 2).

    ``centres[i, j] = (xs[j], ys[i])``: rows run along y, as an image with origin lower.
    """
    x1, y1, x2, y2 = target
    ex, ey = extent if len(extent) == 2 else (extent[0], extent[0])
    xs = (x1 + x2) / 2 + np.linspace(-ex, ex, resolution)
    ys = (y1 + y2) / 2 + np.linspace(-ey, ey, resolution)
    return xs, ys, np.stack(np.meshgrid(xs, ys), axis=-1)


def box_grid(centres, size):
    """``xyxy`` boxes of the fixed `size` (w, h) at `centres`, shape (..., 2) -> (..., 4); differentiable."""
    cx, cy = centres[..., 0], centres[..., 1]
    w, h = np.full(np.shape(cx), size[0]), np.full(np.shape(cx), size[1])
    return sandbox.box_convert(anp.stack([cx, cy, w, h], axis=-1), "cxcywh", "xyxy")


# %% Every loss and its gradient with respect to the centre, at every grid point.
def evaluate(spec, centres, size, target):
    """Loss values, shape (n, n), and gradients with respect to the centres, shape (n, n, 2).

    The loss is elementwise, so the gradient of its sum over the grid holds each
    point's own gradient: one reverse pass for the whole grid.
    """
    loss = unchecked(sandbox.get_loss(spec))  # the arguments were checked once, in check()
    target = np.asarray(target, dtype=float)
    values = loss(box_grid(centres, size), target)
    gradient = grad(lambda c: anp.sum(loss(box_grid(c, size), target)))(centres)
    return np.asarray(values, dtype=float), np.asarray(gradient, dtype=float)


def run(args):
    xs, ys, centres = centre_grid(args.target, args.extent, args.resolution)
    args.out.mkdir(parents=True, exist_ok=True)
    values, gradients, seconds = [], [], {}
    began = time.perf_counter()
    for spec in args.losses:
        clock = time.perf_counter()
        value, gradient = evaluate(spec, centres, args.size, args.target)
        seconds[spec] = round(time.perf_counter() - clock, 4)
        values.append(value)
        gradients.append(gradient)
        print(progress(spec, value, gradient, seconds[spec]), flush=True)
    print(f"{len(args.losses)} losses on {args.resolution} x {args.resolution} centres in "
          f"{time.perf_counter() - began:.2f} s", flush=True)
    arrays = dict(xs=xs, ys=ys, specs=np.array(args.losses), values=np.stack(values),
                  gradients=np.stack(gradients), target=np.array(args.target), size=np.array(args.size))
    atomic_write(args.out / DATA, lambda tmp: np.savez_compressed(tmp, **arrays))
    write_json(args.out / CONFIG, config(args, seconds))


def progress(spec, value, gradient, seconds):
    magnitude = np.hypot(gradient[..., 0], gradient[..., 1])
    finite = np.isfinite(value).all() and np.isfinite(gradient).all()
    line = (f"{spec:>24}: {seconds:6.3f} s, loss {np.nanmin(value):.3g} to {np.nanmax(value):.3g}, "
            f"|gradient| up to {np.nanmax(magnitude):.3g}, exactly 0 at {np.sum(magnitude == 0)} "
            f"of {magnitude.size} centres")
    return line if finite else line + "; WARNING: NOT FINITE at some centres"


def config(args, seconds):
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return dict(settings, seconds=seconds, **provenance())


# %% Draw, from the saved files only.
def plot(out, columns=None):
    """Draw the gallery from loss_gallery.npz and config.json under `out`; save it and return the Figure."""
    settings = json.loads((out / CONFIG).read_text())
    with np.load(out / DATA) as saved:
        saved = dict(saved)
    specs, xs, ys = [str(s) for s in saved["specs"]], saved["xs"], saved["ys"]
    target, (w, h) = saved["target"], saved["size"]
    columns = min(columns or settings.get("columns") or 6, len(specs))
    rows = math.ceil(len(specs) / columns)
    magnitudes = np.hypot(saved["gradients"][..., 0], saved["gradients"][..., 1])
    arrows = arrow_norm(magnitudes)
    step = max(1, (len(xs) - 1) // ARROWS_PER_AXIS)

    # The shared colour bar gets a row of its own: constrained layout misplaces the panels'
    # labels when one colour bar spans axes that carry colour bars of their own.
    fig = Figure(figsize=(3.6 * columns + 1.0, 3.3 * rows + 1.6), layout="constrained")
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[1.0] * rows + [0.07])
    for k, (spec, value, gradient, magnitude) in enumerate(zip(specs, saved["values"], saved["gradients"],
                                                              magnitudes)):
        row, column = divmod(k, columns)
        ax = fig.add_subplot(grid[row, column])
        quiver = draw_panel(ax, spec, xs, ys, value, gradient, magnitude, target, (w, h), arrows, step)
        if k + columns >= len(specs):  # the lowest panel of its column
            ax.set_xlabel("predicted centre x")
        else:
            ax.tick_params(labelbottom=False)
        if column == 0:
            ax.set_ylabel("predicted centre y")
        else:
            ax.tick_params(labelleft=False)
    margin = columns // 4
    fig.colorbar(quiver, cax=fig.add_subplot(grid[rows, margin:columns - margin]), orientation="horizontal",
                 extend="both", label="|gradient| with respect to the centre, the arrows' colour "
                                      "(log scale, shared by every panel)")
    lines = [f"Each loss over the predicted centre: {w:g} x {h:g} predicted box, target "
             f"{fmt_box(target)} (outlined); dashed: centres where the boxes overlap.",
             "Filled contour: loss value (own colour scale per panel). Arrows: direction of the "
             "negative gradient, unit length, coloured by log |gradient|. Black dot: gradient "
             "exactly zero (no arrow).",
             "The gradient is autograd's, the one training follows: where a loss holds a factor "
             "constant (detached, as CIoU, WIoU and Focal-EIoU do), it is not the slope of the contour."]
    width = int(fig.get_figwidth() * 12)  # characters of 11 pt text per line
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in lines), fontsize=11)
    atomic_write(out / FIGURE, fig.savefig, dpi=90)
    return fig


def draw_panel(ax, spec, xs, ys, value, gradient, magnitude, target, size, arrows, step):
    """One loss: contour of its value, target, overlap zone, arrows and zero-gradient dots."""
    finite = np.isfinite(value)
    low, high = (np.min(value[finite]), np.max(value[finite])) if finite.any() else (0.0, 1.0)
    levels = MaxNLocator(nbins=14).tick_values(low, high) if high > low else [low - 0.5, low + 0.5]
    shown = np.where(finite, value, np.nan)
    filled = ax.contourf(xs, ys, shown, levels=levels, cmap=LOSS_COLOURS)
    ax.contour(xs, ys, shown, levels=levels, colors="white", linewidths=0.4)
    ax.figure.colorbar(filled, ax=ax, shrink=0.85, pad=0.01, aspect=25, format="%.3g")
    plot_target(ax, target, fill=False, zorder=3)  # an outline: the loss under it stays visible
    x1, y1, x2, y2 = target
    w, h = size
    ax.add_patch(Rectangle((x1 - w / 2, y1 - h / 2), x2 - x1 + w, y2 - y1 + h, fill=False,
                           linestyle="--", linewidth=1.2, edgecolor="black", zorder=3))
    sub = np.s_[::step, ::step]
    gx, gy, m = gradient[sub][..., 0], gradient[sub][..., 1], magnitude[sub]
    X, Y = np.meshgrid(xs[::step], ys[::step])
    moving, zero = np.isfinite(m) & (m > 0), m == 0
    unit = np.where(moving, m, 1.0)
    quiver = ax.quiver(X[moving], Y[moving], -gx[moving] / unit[moving], -gy[moving] / unit[moving],
                       m[moving], cmap=ARROW_COLOURS, norm=arrows, pivot="mid", angles="xy",
                       scale_units="xy", scale=1.0 / (0.8 * step * (xs[1] - xs[0])),
                       width=0.007, headwidth=3.5, headlength=4, headaxislength=3.5, zorder=4)
    ax.plot(X[zero], Y[zero], ".", color="black", markersize=2.5, zorder=5)
    ax.plot(X[~np.isfinite(m)], Y[~np.isfinite(m)], "x", color="red", markersize=4, zorder=5)
    broken = ~(finite & np.isfinite(magnitude))
    if broken.any():
        spec = f"{spec} (red x: not finite at {np.sum(broken)} centres)"
    ax.set_title(spec, fontsize=11)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    return quiver


def arrow_norm(magnitudes):
    """Log colour scale for |gradient| shared by all panels: 1st to 99th percentile of the non-zero values."""
    nonzero = magnitudes[np.isfinite(magnitudes) & (magnitudes > 0)]
    if nonzero.size == 0:
        return LogNorm(1e-3, 1.0)
    low, high = np.percentile(nonzero, [1, 99])
    return LogNorm(low, max(high, low * 10))


def fmt_box(box):
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def main(argv=None):
    args = parse_args(argv)
    if not args.replot:
        run(args)
    plot(args.out, args.columns)
    print(f"figure: {args.out / FIGURE}; data: {args.out / DATA}")


if __name__ == "__main__":
    main()
