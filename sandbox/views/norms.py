"""Why L1 and L2 on box coordinates do not track IoU: the GIoU paper's Figure 1 and its general form.

Step 1 of the GIoU argument (Rezatofighi et al., CVPR 2019, arXiv 1902.09630,
Figure 1): boxes at exactly the same L1 or L2 distance from the target, measured
on their four coordinates, can have very different IoU. This module holds

- the Figure 1 reproduction: `PAPER_FIGURE1` (the printed values), `FIGURE1`
  (boxes that reproduce them) and `solve_figure1_box`, which finds such boxes with
  the sandbox's own optimiser;
- the IoU band: `band_extreme` and `iou_band`, the smallest and largest IoU and
  GIoU over every box at exactly a given distance from a target, by a certified
  branch-and-bound search;
- `rank_correlations`: how well each loss in `sandbox.LOSSES` orders random
  pairs by 1 - IoU (Spearman);
- drawing helpers that take an ``ax`` and return the artists.

Distances are between the 4-vectors of the predicted and target box in one
format, ``'xyxy'`` (x1, y1, x2, y2) or ``'cxcywh'`` (xc, yc, w, h), without
ordering the prediction's corners (`coordinate_distance`).

How the Figure 1 boxes were found
---------------------------------
The paper does not publish its boxes. For each printed triple (distance, IoU,
GIoU), `solve_figure1_box` minimises, with ``sandbox.fit(..., method='Nelder-Mead')``
and a callable loss, the squared mismatch ``((d - d*) / d*)^2 + (IoU - IoU*)^2 +
(GIoU - GIoU*)^2`` from a deterministic start (the target moved and resized by
the fractions stored in `FIGURE1`), then rounds the solution to one decimal, or
failing that two, tries the rounded box and its neighbours one step away in any of
the four coordinates, and keeps, among those whose three values lie strictly within
0.005 of the printed ones, the one closest to them; if none does, Nelder-Mead starts
again from where it stopped. Panel (a) uses the target (0, 0, 16, 16), panel (b)
(0, 0, 12, 12).

Why Nelder-Mead and not BFGS: the L1 distance of panel (b) has a kink wherever a
coordinate (xc, yc, w, h) equals the target's. BFGS, which assumes a smooth
function, was drawn to boxes with the target's centre x and width and ended there
on a precision loss, at a point that depends on the last bits of its BLAS dot
products, so on the CPU: under different OpenBLAS kernels it found different
boxes, or none.
Nelder-Mead takes no gradient and makes no BLAS call, and the mismatch is built of
operations that IEEE 754 rounds exactly (+, -, *, /, sqrt, abs, min, max). The one
step of its path a CPU can still change is the order NumPy's sort gives two exactly
equal values of the simplex (its AVX-512 sort orders ties otherwise than its
baseline sort). Under every CPU ``make test-portable`` emulates it finds the
boxes of `FIGURE1`; on any machine it finds boxes whose values round to the
paper's, which is what the tests assert.
"""
from __future__ import annotations

import itertools
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import autograd.numpy as anp
import numpy as np
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike
from scipy.stats import spearmanr

from sandbox.geometry.boxes import box_convert, check_boxes, traced
from sandbox.losses.formulas import LOSSES, giou, iou, unchecked
from sandbox.losses.spec import get_loss
from sandbox._types import Array, BoolArray, Boxes, FloatArray, Loss, Values
from sandbox.optim.fitting import fit

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.typing import ColorType

NORMS = ("l1", "l2")
BAND_COORDS = ("xyxy", "cxcywh")
MEASURES = ("iou", "giou")

PAPER_FIGURE1: dict[str, dict[str, Any]] = {
    "a": dict(norm="l2", coords="xyxy", distance=8.41, values=[(0.26, 0.23), (0.49, 0.41), (0.65, 0.65)]),
    "b": dict(norm="l1", coords="cxcywh", distance=9.07, values=[(0.27, 0.24), (0.59, 0.59), (0.66, 0.62)]),
}
"""The GIoU paper's Figure 1 as printed: per panel, the norm, the coordinates, the shared
distance and each predicted box's (IoU, GIoU)."""

FIGURE1: dict[str, dict[str, Any]] = {
    "a": dict(target=[0.0, 0.0, 16.0, 16.0],
              boxes=[[4.4, -0.8, 9.0, 14.7], [-0.02, -1.56, 22.79, 11.29], [-0.01, -8.41, 16.04, 16.11]],
              starts=[(0.0, -0.3, 0.7, 1.0), (0.0, -0.3, 1.0, 1.0), (0.0, -0.3, 1.0, 1.0)]),
    "b": dict(target=[0.0, 0.0, 12.0, 12.0],
              boxes=[[0.0, -5.74, 12.99, 5.03], [0.0, -2.24, 13.61, 15.69], [0.01, -4.5, 10.46, 12.01]],
              starts=[(0.0, -0.3, 1.0, 1.0), (0.0, 0.0, 1.0, 1.4), (0.0, -0.3, 1.0, 1.4)]),
}
"""Boxes (``xyxy``) that reproduce `PAPER_FIGURE1` to two decimals, with the target of each
panel and the start `solve_figure1_box` found each from: (dx, dy, sw, sh), the target's
centre moved by (dx w, dy h) and its width and height scaled by (sw, sh)."""


def coordinate_distance(pred: ArrayLike, target: ArrayLike, norm: str = "l2", coords: str = "xyxy") -> Values:
    """L1 or L2 distance between boxes' 4-vectors in format `coords`, shape ``(...,)``.

    `pred` and `target` are ``xyxy`` arrays ``(..., 4)``; the prediction's corners are
    taken as given (not ordered). Differentiable with autograd.

    >>> float(coordinate_distance([0, 0, 2, 2], [1, 0, 3, 2], "l1", "cxcywh"))
    1.0
    >>> float(coordinate_distance([0, 0, 2, 2], [1, 0, 3, 2], "l1", "xyxy"))
    2.0
    """
    # box_convert gives boxes already in `coords` back as they came, and lists do not subtract
    pred_array: Array = pred if traced(pred) else np.asarray(pred, dtype=float)
    target_array: Array = target if traced(target) else np.asarray(target, dtype=float)
    difference = box_convert(pred_array, "xyxy", coords) - box_convert(target_array, "xyxy", coords)
    if norm == "l2":
        return anp.sqrt(anp.sum(difference ** 2, axis=-1))
    return anp.sum(anp.abs(difference), axis=-1)


def figure1_values(target: ArrayLike, boxes: ArrayLike, norm: str, coords: str) -> FloatArray:
    """(distance, IoU, GIoU) of each box against the target, shape (n, 3), unrounded."""
    boxes = np.asarray(boxes, dtype=float)
    target = np.asarray(target, dtype=float)
    return np.stack([coordinate_distance(boxes, target, norm, coords), iou(boxes, target),
                     giou(boxes, target)], axis=-1)


def matches(values: ArrayLike, printed: ArrayLike) -> bool:
    """True if (distance, IoU, GIoU) round to the printed two decimals, clear of any tie.

    Each value must lie strictly within 0.005 of the printed one (by 1e-9), so that
    no rounding convention can turn it into a neighbouring number.
    """
    return bool(np.all(np.abs(np.asarray(values, dtype=float) - np.asarray(printed, dtype=float))
                       < 0.005 - 1e-9))


def start_box(target: ArrayLike, fractions: Sequence[float]) -> FloatArray:
    """The target's centre moved by (dx w, dy h), its size scaled by (sw, sh): an ``xyxy`` start."""
    cx, cy, w, h = box_convert(np.asarray(target, dtype=float), "xyxy", "cxcywh")
    dx, dy, sw, sh = fractions
    return box_convert(np.array([cx + dx * w, cy + dy * h, sw * w, sh * h]), "cxcywh", "xyxy")


def solve_figure1_box(target: ArrayLike, norm: str, coords: str, distance: float, iou_value: float, giou_value: float,
                      start: ArrayLike, decimals: Iterable[int] = (1, 2), restarts: int = 3) -> FloatArray | None:
    """A box at `distance` from `target` with the given IoU and GIoU, all to two decimals.

    Minimises the squared relative mismatch of (distance, IoU, GIoU) with
    ``sandbox.fit(method='Nelder-Mead')`` from `start` (``xyxy``), then rounds the box
    to each number of `decimals` in turn, trying it and its 80 neighbours one step
    away. Returns the one whose values are closest to the wanted ones among those
    that `matches` them; if there is none, starts Nelder-Mead again from where it
    stopped, up to `restarts` times, and returns None if there is still none.
    """
    target = check_boxes(target, "target", positive_size=True)
    wanted = (distance, iou_value, giou_value)
    core_iou, core_giou = unchecked(iou), unchecked(giou)

    def mismatch(pred: Boxes, target: Boxes) -> Values:
        return (((coordinate_distance(pred, target, norm, coords) - distance) / distance) ** 2
                + (core_iou(pred, target) - iou_value) ** 2 + (core_giou(pred, target) - giou_value) ** 2)

    solution = np.asarray(start, dtype=float)
    moves = np.array(list(itertools.product((-1, 0, 1), repeat=4)))
    for _ in range(1 + restarts):
        solution = fit(solution, target, loss=mismatch, method="Nelder-Mead", maxiter=2000).box
        for places in decimals:
            boxes = np.round(np.round(solution, places) + moves * 10.0 ** -places, places)
            boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
            values = figure1_values(target, boxes, norm, coords)
            good = [k for k in range(len(boxes)) if matches(values[k], wanted)]
            if good:
                return boxes[min(good, key=lambda k: np.max(np.abs(values[k] - wanted)))]
    return None


class Figure1NotFound(RuntimeError):
    """`solve_figure1` found no box with a panel's printed values."""


def solve_figure1(panel: str) -> dict[str, Any]:
    """Re-derive one panel's boxes from the starts in `FIGURE1`; the figure1.json entry.

    Returns ``{"target", "boxes", "norm", "coords"}``, every box ``xyxy``.
    """
    paper, stored = PAPER_FIGURE1[panel], FIGURE1[panel]
    boxes = []
    for (iou_value, giou_value), fractions in zip(paper["values"], stored["starts"]):
        box = solve_figure1_box(stored["target"], paper["norm"], paper["coords"], paper["distance"],
                                iou_value, giou_value, start_box(stored["target"], fractions))
        if box is None:
            raise Figure1NotFound(f"Figure 1 panel {panel}: no two-decimal box found at {paper['norm']} distance "
                                  f"{paper['distance']} with IoU {iou_value}, GIoU {giou_value}; "
                                  f"Nelder-Mead ended away from every match")
        boxes.append([float(v) for v in box])
    return dict(target=list(stored["target"]), boxes=boxes, norm=paper["norm"], coords=paper["coords"])


FIGURE1_COLOURS = ("tab:green", "tab:blue", "tab:red")


def plot_figure1_panel(ax: Axes, panel: Mapping[str, Any], title: str | None = None) -> list[Artist]:
    """Draw one Figure 1 panel: the target in black, the boxes in colour, values in the legend.

    `panel` is a figure1.json entry: ``target``, ``boxes`` (``xyxy``), ``norm``, ``coords``.
    Returns the patches; the legend goes below the axes.
    """
    target, boxes = np.asarray(panel["target"], float), np.asarray(panel["boxes"], float)
    values = figure1_values(target, boxes, panel["norm"], panel["coords"])
    name = "$\\ell_2$" if panel["norm"] == "l2" else "$\\ell_1$"
    # matplotlib's stubs type a corner as a tuple; Rectangle takes any pair, an array's too
    artists: list[Artist] = [ax.add_patch(Rectangle(target[:2], *(target[2:] - target[:2]),  # type: ignore[arg-type]
                                                    fill=False, edgecolor="black", linewidth=3, label="target",
                                                    zorder=3))]
    for box, (d, i, g), colour, style in zip(boxes, values, FIGURE1_COLOURS, ("-", "--", "-.")):
        artists.append(ax.add_patch(Rectangle(box[:2], *(box[2:] - box[:2]), fill=False, edgecolor=colour,
                                              linewidth=2.2, linestyle=style, zorder=4,
                                              label=f"{name} = {d:.2f}, IoU = {i:.2f}, GIoU = {g:.2f}")))
    every = np.concatenate([target[None], boxes])
    pad = 1.5
    ax.set_xlim(every[:, 0].min() - pad, every[:, 2].max() + pad)
    ax.set_ylim(every[:, 3].max() + pad, every[:, 1].min() - pad)  # y down, as in an image
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=10, frameon=False)
    coordinates = "(x1, y1, x2, y2)" if panel["coords"] == "xyxy" else "(xc, yc, w, h)"
    ax.set_title(title or f"{name} distance on {coordinates}", fontsize=12)
    return artists


# The IoU band ------------------------------------------------------------------------------
def lipschitz_constant(target: ArrayLike, measure: str = "iou", coords: str = "xyxy") -> float:
    """A Lipschitz constant of IoU or GIoU in the prediction's coordinates (Euclidean norm).

    Proof sketch, for a target of width W and height H and any prediction with
    w, h >= 0. IoU = I / U with I = ix iy and U = w h + W H - I. For x1,
    dI/dx1 = -s iy (s = 1 where x1 is the intersection's left edge, else 0) and
    d(w h)/dx1 = -h, so dIoU/dx1 = -s iy (U + I) / U^2 + I h / U^2: two terms of
    opposite sign, the first at most 2 iy / U <= 2 H / (W H) = 2 / W since U >= W H,
    the second at most (ix / w) iy / U <= 1 / W since U >= w h. So |dIoU/dx1| <= 2 / W,
    the same for x2, and 2 / H for y1, y2. GIoU = IoU - 1 + U / C: dU/dx1 = -h + s iy
    and dC/dx1 = -t ch (t in {0, 1}) again give terms of opposite sign, each at most
    1 / cw <= 1 / W (C = cw ch >= U, ch >= h), so |dGIoU/dx1| <= 3 / W. Both are
    continuous and piecewise smooth, so the gradient bound c_x, c_y per coordinate
    gives the constant sqrt(2 c_x^2 + 2 c_y^2) in ``xyxy``. In ``cxcywh``,
    d/dxc = d/dx1 + d/dx2 and d/dw = (d/dx2 - d/dx1) / 2, whose squares sum to at
    most 4 c_x^2, giving 2 sqrt(c_x^2 + c_y^2).
    """
    x1, y1, x2, y2 = np.asarray(target, dtype=float)
    per = {"iou": 2.0, "giou": 3.0}[measure]
    cx, cy = per / (x2 - x1), per / (y2 - y1)
    if coords == "xyxy":
        return float(np.sqrt(2 * cx ** 2 + 2 * cy ** 2))
    return float(2 * np.sqrt(cx ** 2 + cy ** 2))


def degenerate_radius(target: ArrayLike, norm: str, coords: str) -> float:
    """The smallest distance at which some box has zero width or height.

    In ``xyxy`` the width x2 - x1 changes by at most sqrt(2) (L2) or 1 (L1) per unit
    of distance, so the nearest zero-width box is at W / sqrt(2) (L2; both x edges
    moved W / 2 toward each other) or W (L1); in ``cxcywh`` w itself is a coordinate,
    so it is W for both norms. The same for the height.
    """
    x1, y1, x2, y2 = np.asarray(target, dtype=float)
    side = min(x2 - x1, y2 - y1)
    return float(side / np.sqrt(2) if (coords == "xyxy" and norm == "l2") else side)


_DIAMOND = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])


def _unit_curve(u: FloatArray, norm: str) -> FloatArray:
    """Points on the unit L2 circle or L1 diamond of the plane, by a parameter u in [0, 1)."""
    if norm == "l2":
        return np.stack([np.cos(2 * np.pi * u), np.sin(2 * np.pi * u)], axis=-1)
    s = 4.0 * np.mod(u, 1.0)
    edge = np.minimum(np.floor(s).astype(int), 3)
    f = (s - edge)[..., None]
    return _DIAMOND[edge] * (1 - f) + _DIAMOND[edge + 1] * f


# Reflecting a box about the target's vertical (or horizontal) centre line keeps its IoU, its
# GIoU and its distance: (dx1, dx2) -> (-dx2, -dx1) in xyxy, (dxc, dw) -> (-dxc, dw) in cxcywh, both
# isometries for L1 and L2. So each part's curve need only be searched on the half where
# dx1 + dx2 >= 0 (xyxy) or dxc >= 0 (cxcywh): u in [first, first + 1/2].
HALF_CURVE_START = {"xyxy": -1 / 8, "cxcywh": -1 / 4}


def sphere_offsets(params: FloatArray, radius: float, norm: str, coords: str = "xyxy") -> FloatArray:
    """Offsets (..., 4) of norm exactly `radius`, from parameters (..., 3) in [0, 1]^3.

    The 4-vector splits into an x part (x1, x2 or xc, w) and a y part (y1, y2 or yc, h),
    with norms (r cos(pi t / 2), r sin(pi t / 2)) for L2 and (r t, r (1 - t)) for L1,
    each placed on its plane's circle (L2) or diamond (L1) at u = start + u_x / 2 (and
    u_y): the half of the curve that, up to the reflections above, holds every box.
    """
    t, ux, uy = params[..., 0], params[..., 1], params[..., 2]
    if norm == "l2":
        ax, ay = radius * np.cos(np.pi * t / 2), radius * np.sin(np.pi * t / 2)
    else:
        ax, ay = radius * t, radius * (1 - t)
    start = HALF_CURVE_START[coords]
    x = ax[..., None] * _unit_curve(start + ux / 2, norm)
    y = ay[..., None] * _unit_curve(start + uy / 2, norm)
    return np.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], axis=-1)


def _part_radii(t: FloatArray, half: FloatArray, radius: float, norm: str) -> tuple[FloatArray, FloatArray]:
    """How far the x part and the y part of an offset can move within cells of half-widths `half`.

    Changing t by dt moves each part by at most r (pi / 2) dt (L2, an arc) or r dt (L1);
    changing u_x by du moves the x part along its circle or diamond of radius a_x by at
    most pi a_x du (L2) or 2 sqrt(2) a_x du (L1), half a turn per unit of u_x, with a_x
    its largest value in the cell.
    """
    speed_t, speed_u = (np.pi / 2, np.pi) if norm == "l2" else (1.0, 2 * np.sqrt(2))  # u = start + u_x / 2
    along_t = radius * speed_t * half[0]
    if norm == "l2":
        part_x, part_y = radius * np.cos(np.pi * t / 2), radius * np.sin(np.pi * t / 2)
    else:
        part_x, part_y = radius * t, radius * (1 - t)
    largest_x, largest_y = np.minimum(part_x + along_t, radius), np.minimum(part_y + along_t, radius)
    return along_t + speed_u * largest_x * half[1], along_t + speed_u * largest_y * half[2]


def _coordinate_intervals(moved: FloatArray, rho_x: FloatArray, rho_y: FloatArray, coords: str
                          ) -> tuple[FloatArray, FloatArray]:
    """Bounds (lower, upper), each (n, 6): x1, y1, x2, y2, w, h of boxes near `moved`.

    `moved` holds the cells' centre boxes in `coords`; each box of a cell has its x part
    within Euclidean distance rho_x of the centre's and its y part within rho_y.
    """
    rho = np.stack([rho_x, rho_y], axis=-1)
    a, b = moved[:, :2], moved[:, 2:]
    if coords == "xyxy":  # a = (x1, y1), b = (x2, y2), w = x2 - x1
        low = np.concatenate([a - rho, b - rho, b - a - np.sqrt(2) * rho], axis=-1)
        high = np.concatenate([a + rho, b + rho, b - a + np.sqrt(2) * rho], axis=-1)
    else:  # a = (xc, yc), b = (w, h), x1 = xc - w / 2
        spread = np.sqrt(1.25) * rho
        low = np.concatenate([a - b / 2 - spread, a + b / 2 - spread, b - rho], axis=-1)
        high = np.concatenate([a - b / 2 + spread, a + b / 2 + spread, b + rho], axis=-1)
    low[:, 4:] = np.maximum(low[:, 4:], 0.0)  # only real boxes count
    return low, high


def _interval_bound(low: FloatArray, high: FloatArray, target: ArrayLike, measure: str, sign: float) -> FloatArray:
    """An upper bound of sign * measure over every real box within the intervals.

    IoU = I / (A_p + A_t - I) grows with I and falls with A_p, and I <= A_p; GIoU =
    IoU - 1 + U / C, bounded term by term, with U <= C.
    """
    tx1, ty1, tx2, ty2 = np.asarray(target, dtype=float)
    area = (tx2 - tx1) * (ty2 - ty1)

    def overlap(first_low: FloatArray, first_high: FloatArray, last_low: FloatArray, last_high: FloatArray, t1: float,
                t2: float, size_low: FloatArray, size_high: FloatArray, most: bool) -> FloatArray:
        if most:
            return np.clip(np.minimum(last_high, t2) - np.maximum(first_low, t1), 0.0,
                           np.minimum(size_high, t2 - t1))
        return np.maximum(np.minimum(last_low, t2) - np.maximum(first_high, t1), 0.0)

    (x1l, y1l, x2l, y2l, wl, hl), (x1h, y1h, x2h, y2h, wh, hh) = low.T, high.T
    inter_high = (overlap(x1l, x1h, x2l, x2h, tx1, tx2, wl, wh, True)
                  * overlap(y1l, y1h, y2l, y2h, ty1, ty2, hl, hh, True))
    inter_low = (overlap(x1l, x1h, x2l, x2h, tx1, tx2, wl, wh, False)
                 * overlap(y1l, y1h, y2l, y2h, ty1, ty2, hl, hh, False))
    pred_low, pred_high = wl * hl, wh * hh
    iou_high = inter_high / (np.maximum(pred_low, inter_high) + area - inter_high)
    iou_low = inter_low / (pred_high + area - inter_low)
    if measure == "giou":
        union_low = np.maximum(np.maximum(pred_low, area), pred_low + area - inter_high)
        union_high = pred_high + area - inter_low
        width_low = np.maximum(np.maximum(x2l, tx2) - np.minimum(x1h, tx1), np.maximum(wl, tx2 - tx1))
        height_low = np.maximum(np.maximum(y2l, ty2) - np.minimum(y1h, ty1), np.maximum(hl, ty2 - ty1))
        enclosing_high = ((np.maximum(x2h, tx2) - np.minimum(x1l, tx1))
                          * (np.maximum(y2h, ty2) - np.minimum(y1l, ty1)))
        iou_high = iou_high - 1.0 + np.minimum(union_high / (width_low * height_low), 1.0)
        iou_low = iou_low - 1.0 + union_low / enclosing_high
    return iou_high if sign > 0 else -iou_low


def boxes_at(target: ArrayLike, offsets: FloatArray, coords: str) -> tuple[FloatArray, BoolArray]:
    """``xyxy`` boxes: the target plus `offsets` in `coords`; and whether each has w, h >= 0.

    A box whose offsets invert it is replaced by its projection onto the valid boxes
    (x1 = x2 at their middle, or w = 0), so the measures are defined, and
    Lipschitz, on every offset; the mask says which offsets are real boxes.
    """
    target = np.asarray(target, dtype=float)
    moved = box_convert(target, "xyxy", coords) + offsets
    if coords == "xyxy":
        x1, y1, x2, y2 = np.moveaxis(moved, -1, 0)
        valid = (x2 >= x1) & (y2 >= y1)
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        boxes = np.stack([np.minimum(x1, mx), np.minimum(y1, my), np.maximum(x2, mx), np.maximum(y2, my)], -1)
        return boxes, valid
    valid = (moved[..., 2] >= 0) & (moved[..., 3] >= 0)
    moved = np.concatenate([moved[..., :2], np.maximum(moved[..., 2:], 0.0)], axis=-1)
    return box_convert(moved, "cxcywh", "xyxy"), valid


def measure_values(boxes: FloatArray, target: ArrayLike, measure: str) -> FloatArray:
    """IoU or GIoU of ordered ``xyxy`` boxes (w, h >= 0) against the target, plain NumPy.

    The band search measures millions of boxes; this is `sandbox.iou` and `sandbox.giou`
    without autograd's wrapping and the corner ordering (GIoU about 3.6 times faster),
    and a test checks that it gives their values.
    """
    bx1, by1, bx2, by2 = np.moveaxis(boxes, -1, 0)
    tx1, ty1, tx2, ty2 = np.asarray(target, dtype=float)
    inter = (np.maximum(np.minimum(bx2, tx2) - np.maximum(bx1, tx1), 0.0)
             * np.maximum(np.minimum(by2, ty2) - np.maximum(by1, ty1), 0.0))
    union = (bx2 - bx1) * (by2 - by1) + (tx2 - tx1) * (ty2 - ty1) - inter
    value = inter / union
    if measure == "iou":
        return value
    enclosing = (np.maximum(bx2, tx2) - np.minimum(bx1, tx1)) * (np.maximum(by2, ty2) - np.minimum(by1, ty1))
    return value - (enclosing - union) / enclosing


def band_extreme(target: ArrayLike, radius: float, norm: str = "l2", coords: str = "xyxy", measure: str = "iou",
                 sense: str = "max", tol: float = 2e-3, initial: tuple[int, int, int] = (8, 32, 32),
                 max_cells: int = 150_000, max_levels: int = 14, refine: int = 3
                 ) -> tuple[float, float, FloatArray | None]:
    """The largest (or smallest) IoU or GIoU over every box at exactly `radius` from `target`.

    Branch and bound over the sphere of offsets (`sphere_offsets`; half of each part's
    curve suffices, by reflection, and for a square target half of the t range, by
    swapping x and y), with a certified error. In a cell of the parameter
    cube [0, 1]^3 the x part of the offset stays within Euclidean distance rho_x of the
    centre's and the y part within rho_y (`_part_radii`). Two bounds hold for every
    real box (w, h >= 0, degenerate ones included) of a cell, and the smaller is used:
    the centre's value plus L sqrt(rho_x^2 + rho_y^2), with L from `lipschitz_constant`
    (the measures are taken on inverted offsets after projecting them onto the valid
    boxes, which keeps them L-Lipschitz everywhere); and interval bounds on the
    coordinates, width and height, pushed through IoU = I / (A_p + A_t - I) and
    GIoU = IoU - 1 + U / C (`_interval_bound`). The best real box is first sought by
    a grid and Nelder-Mead from its best few points; then each round evaluates every
    cell's centre, keeps the best real box, drops the cells whose bound cannot beat it
    by more than `tol`, and halves the rest. It stops when no cell is left (``gap`` =
    `tol`), or at `max_levels` rounds or `max_cells` cells; ``gap`` is then the
    largest bound still open above the best value.

    The minimum IoU is 0 exactly from `degenerate_radius` on: a box of zero width
    lies on every such sphere (translate the nearest one), it has IoU 0, and real
    boxes beside it on the sphere have IoU as close to 0 as wanted; below that radius
    every offset is a real box. That case is returned without search.

    Returns
    -------
    value : float
        Attained by a real box (w, h >= 0) at exactly `radius`: the extreme lies in
        [value, value + gap] for ``'max'`` and [value - gap, value] for ``'min'``.
    gap : float
        The certified error: at most `tol` when the search finished.
    box : ndarray, shape (4,)
        ``xyxy``, a box that attains `value` (None for the exact zero minimum).
    """
    target = check_boxes(target, "target", positive_size=True)
    if measure == "iou" and sense == "min" and radius >= degenerate_radius(target, norm, coords):
        return 0.0, 0.0, None
    sign = 1.0 if sense == "max" else -1.0
    lipschitz = lipschitz_constant(target, measure, coords)
    target_coords = box_convert(target, "xyxy", coords)
    # A square target is also symmetric under swapping x and y, which swaps the offset's x and y
    # parts: t -> 1 - t. Then t in [0, 1/2] holds every box up to symmetry.
    width, height = target[2] - target[0], target[3] - target[1]
    t_end = 0.5 if np.isclose(width, height, rtol=1e-12, atol=0.0) else 1.0
    half = np.array([0.5 / n for n in initial]) * np.array([t_end, 1.0, 1.0])
    axes = [np.linspace(h, end - h, n) for h, end, n in zip(half, (t_end, 1.0, 1.0), initial)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    best, best_box, gap = -np.inf, None, np.inf
    # An incumbent first: the best centres of a first grid, refined locally; pruning then starts sharp.
    offsets = sphere_offsets(centres, radius, norm, coords)
    boxes, valid = boxes_at(target, offsets, coords)
    values = sign * measure_values(boxes, target, measure)
    for k in np.argsort(np.where(valid, values, -np.inf))[::-1][:refine]:
        value, box = _refine(target, radius, norm, coords, measure, sign, centres[k])
        if value > best:
            best, best_box = value, box
    for level in range(max_levels + 1):
        if level:  # level 0 is the first grid, measured above
            offsets = sphere_offsets(centres, radius, norm, coords)
            boxes, valid = boxes_at(target, offsets, coords)
            values = sign * measure_values(boxes, target, measure)
        if valid.any():
            k = np.argmax(np.where(valid, values, -np.inf))
            if values[k] > best:
                best, best_box = values[k], boxes[k]
        rho_x, rho_y = _part_radii(centres[:, 0], half, radius, norm)
        lower, upper = _coordinate_intervals(target_coords + offsets, rho_x, rho_y, coords)
        reachable = (upper[:, 2] >= lower[:, 0]) & (upper[:, 3] >= lower[:, 1])  # a real box in the cell
        bound = np.minimum(values + lipschitz * np.hypot(rho_x, rho_y),
                           _interval_bound(lower, upper, target, measure, sign))
        open_cells = reachable & (bound > best + tol)
        if not open_cells.any():
            gap = tol
            break
        gap = float(np.max(bound[open_cells]) - best)
        if level == max_levels or 8 * open_cells.sum() > max_cells:
            break
        half = half / 2
        kept = centres[open_cells]
        shifts = np.array(list(itertools.product((-1, 1), repeat=3))) * half
        centres = (kept[:, None, :] + shifts[None, :, :]).reshape(-1, 3)
    return float(sign * best), float(max(gap, 0.0)), best_box


def _refine(target: FloatArray, radius: float, norm: str, coords: str, measure: str, sign: float, start: FloatArray
            ) -> tuple[float, FloatArray]:
    """Nelder-Mead from `start` over the sphere's parameters: the best real box found, and its value."""
    from scipy.optimize import minimize

    def value_and_box(params: FloatArray) -> tuple[float, FloatArray]:
        params = np.concatenate([np.clip(params[:1], 0.0, 1.0), params[1:]])
        boxes, valid = boxes_at(target, sphere_offsets(params[None], radius, norm, coords), coords)
        return (sign * measure_values(boxes, target, measure)[0] if valid[0] else -np.inf), boxes[0]

    result = minimize(lambda p: -value_and_box(p)[0], start, method="Nelder-Mead",
                      options=dict(xatol=1e-7, fatol=1e-9, maxiter=250, initial_simplex=start + np.vstack(
                          [np.zeros(3), np.eye(3) * 0.02])))
    value, box = value_and_box(result.x)
    return value, box


def iou_band(target: ArrayLike, radii: Iterable[float], norm: str = "l2", coords: str = "xyxy", tol: float = 2e-3,
             max_cells: int = 150_000, progress: Callable[[float], object] | None = None) -> dict[str, FloatArray]:
    """The band of IoU and GIoU over boxes at each distance in `radii` from `target`.

    Returns a dict of arrays, shape (len(radii),): ``iou_min``, ``iou_max``,
    ``giou_min``, ``giou_max``, each with its certified error ``*_gap``
    (`band_extreme`, with `tol` and `max_cells`). `progress`, if given, is called with
    each radius done.
    """
    out: dict[str, list[float]] = {f"{m}_{s}{suffix}": []
                                   for m in MEASURES for s in ("min", "max") for suffix in ("", "_gap")}
    for radius in radii:
        for measure in MEASURES:
            for sense in ("min", "max"):
                value, gap, _ = band_extreme(target, float(radius), norm, coords, measure, sense, tol,
                                             max_cells=max_cells)
                out[f"{measure}_{sense}"].append(value)
                out[f"{measure}_{sense}_gap"].append(gap)
        if progress is not None:
            progress(radius)
    return {k: np.array(v) for k, v in out.items()}


def target_size(target: ArrayLike) -> float:
    """The size by which distances are normalised: sqrt(w h), the side of a square of the same area."""
    x1, y1, x2, y2 = np.asarray(target, dtype=float)
    return float(np.sqrt((x2 - x1) * (y2 - y1)))


def plot_band(ax: Axes, relative_radii: ArrayLike, band: Mapping[str, ArrayLike], measure: str = "iou",
              color: ColorType = "C0", label: str | None = None, linewidth: float = 2.0) -> list[Artist]:
    """Shade the band of `measure` between its minimum and maximum against r / size; return artists."""
    low, high = band[f"{measure}_min"], band[f"{measure}_max"]
    fill = ax.fill_between(relative_radii, low, high, color=color, alpha=0.25, linewidth=0)
    lines = ax.plot(relative_radii, high, color=color, linewidth=linewidth, label=label)
    lines += ax.plot(relative_radii, low, color=color, linewidth=linewidth, linestyle="--")
    return [fill, *lines]


# Rank correlation --------------------------------------------------------------------------
def rank_correlations(pred: ArrayLike, target: ArrayLike, losses: Iterable[str | Loss] | None = None
                      ) -> list[dict[str, Any]]:
    """Spearman's rank correlation between each loss and 1 - IoU over (pred, target) pairs.

    For each loss (any spec `sandbox.get_loss` takes; by default every name in
    `sandbox.LOSSES`, with its default parameters), over all pairs and over the overlapping ones (IoU > 0). A loss
    constant on a subset has no rank correlation there: NaN, with ``constant``
    set. Ties are ranked by their average rank, as `scipy.stats.spearmanr` does;
    the IoU loss ties at 1 on every pair apart.

    Returns
    -------
    list of dict
        ``loss``, ``spearman_overlapping``, ``spearman_all``, ``constant_overlapping``,
        ``constant_all``, ``pairs_overlapping``, ``pairs_all``.
    """
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    distance = 1.0 - np.asarray(iou(pred, target))
    overlapping = distance < 1.0
    rows = []
    for name in (list(LOSSES) if losses is None else losses):
        values = np.asarray(get_loss(name)(pred, target), dtype=float)
        row: dict[str, Any] = dict(loss=name)
        for subset, mask in (("overlapping", overlapping), ("all", np.ones_like(overlapping))):
            constant = bool(np.ptp(values[mask]) == 0) if mask.any() else True
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rho = np.nan if constant else float(spearmanr(values[mask], distance[mask]).statistic)
            row.update({f"spearman_{subset}": rho, f"constant_{subset}": constant,
                        f"pairs_{subset}": int(mask.sum())})
        rows.append(row)
    return rows
