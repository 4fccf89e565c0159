"""Matplotlib helpers: each draws on a given ``Axes`` and returns what it drew.

The helpers that draw boxes (`plot_box`, `plot_target`, `plot_trajectory`,
`animate_trajectories`) take ``xyxy`` boxes, shape ``(..., 4)``, drawn as rectangles, or
oriented boxes (cx, cy, w, h, theta), shape ``(..., 5)``
(`sandbox.geometry.oriented`), drawn as polygons with a tick on the side the box's
first axis points to, so that theta and theta + pi, the same rectangle, differ on screen.

    >>> from matplotlib.figure import Figure
    >>> from sandbox import fit
    >>> ax = Figure().subplots()
    >>> result = fit([2, 0, 3, 1], [0, 0, 1, 1])
    >>> artists = plot_trajectory(ax, result.boxes, target=[0, 0, 1, 1])
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypeVar

import numpy as np
from matplotlib.patches import Patch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path
from numpy.typing import ArrayLike

from sandbox._types import FloatArray
from sandbox.geometry.boxes import box_area, check_boxes, enclosing_box, order_corners, union_area
from sandbox.geometry.oriented import check_oriented_boxes, corners
from sandbox.geometry.polygons import rotated_iou
from sandbox.losses.formulas import giou, iou

if TYPE_CHECKING:
    from matplotlib.animation import FuncAnimation
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.container import BarContainer
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D
    from matplotlib.text import Text
    from matplotlib.typing import ColorType

TARGET_STYLE = dict(facecolor="0.85", edgecolor="black", linewidth=2.0, zorder=1)

_PatchT = TypeVar("_PatchT", bound=Patch)


def _added(ax: Axes, patch: _PatchT) -> _PatchT:
    """`patch`, added to `ax`: ``ax.add_patch`` returns it, typed as any Patch."""
    ax.add_patch(patch)
    return patch


def is_oriented(boxes: ArrayLike) -> bool:
    """Whether `boxes` are oriented, (cx, cy, w, h, theta) on a last axis of 5, rather than ``xyxy``."""
    return bool(np.ndim(boxes) >= 1 and np.shape(boxes)[-1] == 5)


def oriented_outline(box: ArrayLike) -> FloatArray:
    """The vertices, shape (7, 2), that draw one oriented box as a polygon with a tick on its first axis.

    The corners in `sandbox.geometry.oriented.corners`' order, with an inward tick
    from the midpoint of the side at +w/2 (the side the box's first axis, at
    angle theta, points to) toward the centre, of length min(|w| / 2, max(|w|, |h|) / 5).
    The tick encloses no area, so a filled polygon fills exactly the rectangle.

    Examples
    --------
    >>> oriented_outline([0.0, 0.0, 4.0, 2.0, 0.0])[1:5].tolist()   # corner, midpoint, tick's end, midpoint
    [[2.0, -1.0], [2.0, 0.0], [1.2, 0.0], [2.0, 0.0]]
    """
    cx, cy, w, h, _ = np.asarray(box, dtype=float)
    xs, ys = corners(np.asarray(box, dtype=float))
    points = np.stack([xs, ys], axis=-1)
    middle = (points[1] + points[2]) / 2
    reach = min(abs(w) / 2, max(abs(w), abs(h)) / 5)
    tick = middle + (np.array([cx, cy]) - middle) * (reach / (abs(w) / 2) if w != 0 else 0.0)
    return np.array([points[0], points[1], middle, tick, middle, points[2], points[3]])


def plot_box(ax: Axes, box: ArrayLike, **style: Any) -> Patch:
    """Draw one box: ``xyxy`` (4,) as a rectangle (inverted corners are ordered first), or oriented
    (cx, cy, w, h, theta) (5,) as a polygon with a tick marking its first axis (`oriented_outline`).

    Returns the ``Rectangle`` or ``Polygon`` drawn.
    """
    if is_oriented(box):
        outline = oriented_outline(check_oriented_boxes(box, "box"))
        return _added(ax, Polygon(outline, closed=True, **{"fill": False, **style}))
    x1, y1, x2, y2 = order_corners(check_boxes(box, "box"))
    return _added(ax, Rectangle((x1, y1), x2 - x1, y2 - y1, **{"fill": False, **style}))


def plot_target(ax: Axes, target: ArrayLike, label: str = "target", **style: Any) -> Patch:
    """Draw the target box, ``xyxy`` or oriented, grey and outlined in black; `style` overrides (``fill=False``)."""
    return plot_box(ax, target, **{"fill": True, "label": label, **TARGET_STYLE, **style})


def box_centres(boxes: ArrayLike) -> FloatArray:
    """The centres, shape (..., 2), of ``xyxy`` (..., 4) or oriented (..., 5) boxes."""
    boxes = np.asarray(boxes, dtype=float)
    if is_oriented(boxes):
        return boxes[..., :2]
    return (boxes[..., :2] + boxes[..., 2:4]) / 2


def box_bounds(boxes: ArrayLike) -> FloatArray:
    """The ``xyxy`` bounds, shape (..., 4), that hold each ``xyxy`` or oriented box (its corners for the latter)."""
    boxes = np.asarray(boxes, dtype=float)
    if is_oriented(boxes):
        xs, ys = corners(boxes)
        return np.stack([xs.min(axis=-1), ys.min(axis=-1), xs.max(axis=-1), ys.max(axis=-1)], axis=-1)
    return np.asarray(order_corners(boxes))


def plot_trajectory(ax: Axes, boxes: ArrayLike, target: ArrayLike | None = None, color: ColorType = "C0",
                    label: str | None = None, max_boxes: int = 25) -> list[Artist]:
    """Draw the boxes an optimiser visited: earlier steps fainter, the start and end marked.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    boxes : array_like, shape (steps + 1, 4) or (steps + 1, 5)
        ``xyxy`` or oriented (cx, cy, w, h, theta) boxes, the start first, as in
        ``fit(...).boxes``; rows that are not finite (a diverged run) are left out.
    target : array_like, shape (4,) or (5,), optional
        Drawn underneath when given.
    max_boxes : int
        At most this many outlines, evenly spaced over the steps (start and end included).

    Returns
    -------
    list of matplotlib artists
        The outlines, the path of the centres, the start (circle) and end (star) marks.
    """
    boxes = np.asarray(boxes, dtype=float)
    boxes = boxes[np.all(np.isfinite(boxes), axis=-1)]  # a diverged run's last boxes cannot be drawn
    artists: list[Artist] = [] if target is None else [plot_target(ax, target)]
    shown = np.unique(np.linspace(0, len(boxes) - 1, max_boxes).round().astype(int))
    for rank, i in enumerate(shown):
        alpha = 0.12 + 0.88 * rank / max(len(shown) - 1, 1)
        artists.append(plot_box(ax, boxes[i], edgecolor=color, alpha=alpha, linewidth=1.0, zorder=2))
    cx, cy = box_centres(boxes).T
    artists += ax.plot(cx, cy, color=color, linewidth=1.0, alpha=0.8, zorder=3, label=label)
    artists += ax.plot(cx[:1], cy[:1], "o", color=color, markersize=5, zorder=4)
    artists += ax.plot(cx[-1:], cy[-1:], "*", color=color, markeredgecolor="black",
                       markersize=11, zorder=5)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    return artists


def plot_metric(ax: Axes, histories: Sequence[ArrayLike], labels: Sequence[str | None] | None = None,
                colors: Sequence[ColorType] | None = None, ylabel: str = "IoU with the target", hold: bool = True,
                **style: Any) -> list[Line2D]:
    """Draw a metric against the iteration for several runs, one line each.

    Parameters
    ----------
    histories : sequence of array_like
        One 1-D array per run, as ``fit(...).ious``; runs may differ in length.
    labels, colors : sequence, optional
        One per run; repeated labels appear once in the legend.
    hold : bool
        Mark where a run shorter than the longest one stopped (a dot), and carry
        its final value on as a dotted line: a stalled run, which stops at
        iteration 0, still shows as a flat line.

    Returns
    -------
    list of matplotlib.lines.Line2D
        The runs' lines.
    """
    runs = [np.asarray(h, dtype=float) for h in histories]
    end = max(len(h) for h in runs) - 1
    lines: list[Line2D] = []
    seen: set[str | None] = set()
    for i, history in enumerate(runs):
        label = None if labels is None else labels[i]
        line, = ax.plot(np.arange(len(history)), history, label=None if label in seen else label,
                        color=None if colors is None else colors[i], **style)
        if hold and len(history) - 1 < end:
            ax.plot([len(history) - 1], history[-1:], "o", color=line.get_color(), markersize=3)
            ax.plot([len(history) - 1, end], [history[-1]] * 2, ":", color=line.get_color(),
                    linewidth=1.0)
        seen.add(label)
        lines.append(line)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    return lines


def animate_trajectories(runs: Any, target: ArrayLike, labels: Sequence[str] | None = None,
                         colors: Sequence[ColorType] | None = None, panels: Sequence[str] | None = None, step: int = 1,
                         trail: int = 4, limits: ArrayLike | None = None, interval: float = 100,
                         fig: Figure | None = None) -> FuncAnimation:
    """Animate runs step by step: each run's box moving toward the target, beside IoU growing.

    Parameters
    ----------
    runs : sequence of OptimizeResult or array_like
        One per run: a result of ``sandbox.fit`` (its ``boxes`` and ``ious`` are drawn),
        or the boxes a run visited, shape (steps + 1, 4) (``xyxy``; IoU is then computed
        against `target`) or (steps + 1, 5) (oriented, cx, cy, w, h, theta, drawn as
        polygons like `plot_box`; IoU is then `sandbox.geometry.polygons.rotated_iou`), the
        start first. A single result or array is one run.
    target : array_like, shape (4,) or (5,)
        ``xyxy`` or oriented, as the runs' boxes; drawn grey in every box panel.
    labels, colors : sequence, optional
        One per run. Labels go in a legend beside the IoU axes, a repeated label once.
    panels : sequence of str, optional
        One per run: runs with the same name share a box panel titled with it (first
        seen, first drawn). By default every run is in one panel.
    step : int
        Show every `step`-th iteration, the last always included. With 1, one frame per
        iteration of the longest run; runs that ended earlier hold their last box.
    trail : int
        Outlines of this many previous frames behind each current box, fading.
    limits : array_like, shape (4,), optional
        The region ``(x1, y1, x2, y2)`` every box panel shows; by default one that holds
        every box its runs visit. Give it when a run's trial steps fly far out.
    interval : float
        Milliseconds between frames when played.
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw into; by default a new one with constrained layout.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        Also carries ``figure``, ``steps`` (the iteration each frame shows),
        ``update(iteration)`` (draws that iteration, returns the artists), ``boxes`` (one
        rectangle, or polygon for oriented boxes, per run, its current box) and ``curves`` (one IoU line per run).

    Examples
    --------
    >>> from sandbox import fit
    >>> runs = [fit([2, 0, 3, 1], [0, 0, 1, 1], loss=loss) for loss in ("giou", "l2")]
    >>> animation = animate_trajectories(runs, [0, 0, 1, 1], labels=["giou", "l2"], step=20)
    >>> len(animation.steps)  # iterations 0, 20, ..., 200
    11
    >>> html = animation.to_jshtml()  # for IPython.display.HTML; a GIF: animation.save("runs.gif")
    """
    from matplotlib.animation import FuncAnimation
    from matplotlib.figure import Figure

    oriented = is_oriented(target)
    target = (check_oriented_boxes if oriented else check_boxes)(target, "target", positive_size=True)
    coordinates = len(target)
    if hasattr(runs, "boxes") or (isinstance(runs, np.ndarray) and runs.ndim == 2):
        runs = [runs]
    boxes: list[FloatArray] = []
    ious: list[FloatArray] = []
    for run in runs:
        visited = np.asarray(run.boxes if hasattr(run, "boxes") else run, dtype=float)
        if visited.ndim != 2 or visited.shape[1] != coordinates or len(visited) == 0:
            raise ValueError(f"run {len(boxes)} has boxes of shape {visited.shape}; "
                             f"expected (steps + 1, {coordinates}) like the target, the start first")
        with np.errstate(invalid="ignore"):
            history = np.asarray(run.ious if hasattr(run, "ious") else _iou(visited, target), dtype=float)
        boxes.append(_held_over_non_finite(visited))
        ious.append(history)
    n = len(boxes)
    colors = [f"C{i % 10}" for i in range(n)] if colors is None else list(colors)
    panels = [""] * n if panels is None else list(panels)
    if not len(colors) == len(panels) == n or (labels is not None and len(labels) != n):
        raise ValueError(f"{n} runs need one label, colour and panel each")
    names = list(dict.fromkeys(panels))
    longest = max(len(b) for b in boxes)
    steps = np.arange(0, longest, max(int(step), 1))
    if steps[-1] != longest - 1:
        steps = np.append(steps, longest - 1)

    if fig is None:
        size = (3.4 * len(names) + 4.2, 3.6) if len(names) <= 2 else (3.2 * len(names), 6.4)
        fig = Figure(figsize=size, layout="constrained")
    if len(names) <= 2:  # the IoU axes beside the boxes
        grid = fig.add_gridspec(1, len(names) + 1, width_ratios=[1] * len(names) + [1.3])
        box_axes = [fig.add_subplot(grid[0, i]) for i in range(len(names))]
        history_ax = fig.add_subplot(grid[0, -1])
    else:  # below them, as wide as the row
        grid = fig.add_gridspec(2, len(names), height_ratios=[1.2, 1])
        box_axes = [fig.add_subplot(grid[0, i]) for i in range(len(names))]
        history_ax = fig.add_subplot(grid[1, :])

    for name, ax in zip(names, box_axes):
        members = [i for i in range(n) if panels[i] == name]
        if limits is None:
            seen = box_bounds(np.concatenate([boxes[i] for i in members] + [target[None]]))
            seen = seen[np.all(np.isfinite(seen), axis=-1)]
            low, high = seen[:, :2].min(axis=0), seen[:, 2:].max(axis=0)
            margin = 0.06 * (high - low).max()
            low, high = low - margin, high + margin
        else:
            low, high = np.asarray(limits, dtype=float)[:2], np.asarray(limits, dtype=float)[2:]
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_aspect("equal", adjustable="box")  # the limits stay fixed while the boxes move
        plot_target(ax, target)
        if name:
            ax.set_title(name)
    axis_of = {name: ax for name, ax in zip(names, box_axes)}
    current: list[Patch] = []
    ghosts: list[list[Patch]] = []
    paths: list[Line2D] = []
    curves: list[Line2D] = []
    held: list[Line2D] = []
    for i in range(n):
        ax, color = axis_of[panels[i]], colors[i]
        centres = box_centres(boxes[i])
        ax.plot(centres[:1, 0], centres[:1, 1], "o", color=color, markersize=4, zorder=3)
        paths.append(ax.plot([], [], color=color, linewidth=1.0, alpha=0.6, zorder=3)[0])
        ghosts.append([_added(ax, _empty_box(oriented, fill=False, edgecolor=color, linewidth=1.0,
                                             alpha=0.55 * (1 - j / trail), zorder=2))
                       for j in range(trail)])
        current.append(_added(ax, _empty_box(oriented, fill=False, edgecolor=color, linewidth=2.0, zorder=4)))
        label = None if labels is None or labels[i] in labels[:i] else labels[i]
        curves.append(history_ax.plot([], [], color=color, linewidth=1.5, alpha=0.8, label=label)[0])
        # as in plot_metric: a run that has stopped keeps its last IoU, dotted from a dot
        held.append(history_ax.plot([], [], ":o", color=color, linewidth=1.0, markersize=3,
                                    markevery=[0])[0])
    history_ax.set_xlim(0, max(longest - 1, 1))
    history_ax.set_ylim(-0.03, 1.03)
    history_ax.set_xlabel("iteration")
    history_ax.set_ylabel("IoU with the target")
    if labels is not None:
        history_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)

    def update(iteration: int) -> list[Artist]:
        shown = steps[:np.searchsorted(steps, iteration) + 1]  # frames up to this one
        for i in range(n):
            last = len(boxes[i]) - 1
            k = min(iteration, last)
            _set_box(current[i], boxes[i][k])
            for j, ghost in enumerate(ghosts[i]):
                earlier = shown[-2 - j] if len(shown) >= 2 + j else None
                ghost.set_visible(earlier is not None and earlier < k)
                if ghost.get_visible():
                    _set_box(ghost, boxes[i][earlier])
            centres = box_centres(boxes[i][:k + 1])
            paths[i].set_data(centres[:, 0], centres[:, 1])
            curves[i].set_data(np.arange(k + 1), ious[i][:k + 1])
            held[i].set_data(*(([last, iteration], [ious[i][last]] * 2) if iteration > last else ([], [])))
        history_ax.set_title(f"iteration {iteration} of {longest - 1}")
        return [*current, *(g for run in ghosts for g in run), *paths, *curves, *held]

    animation = FuncAnimation(fig, update, frames=list(steps), interval=interval, cache_frame_data=False)
    update(steps[0])
    # what the docstring promises besides FuncAnimation's own attributes
    animation.figure, animation.steps, animation.update = fig, steps, update  # type: ignore[attr-defined]
    animation.boxes, animation.curves = current, curves  # type: ignore[attr-defined]
    return animation


def _held_over_non_finite(boxes: ArrayLike) -> FloatArray:
    """`boxes` (``xyxy`` corner-ordered, or oriented as they are), with each non-finite row (a diverged
    step) replaced by the last finite one."""
    held = np.array(boxes, dtype=float)
    for k in range(len(held)):
        if not np.all(np.isfinite(held[k])):
            held[k] = held[k - 1] if k else np.nan
    return held if is_oriented(held) else np.asarray(order_corners(held))


def _iou(boxes: FloatArray, target: FloatArray) -> FloatArray:
    """IoU of each ``xyxy`` or oriented box with the target; NaN for a non-finite box."""
    if not is_oriented(target):
        return np.asarray(iou(boxes, target), dtype=float)
    finite = np.all(np.isfinite(boxes), axis=-1)
    safe = np.where(finite[:, None], boxes, target)
    return np.where(finite, np.asarray(rotated_iou(safe, target), dtype=float), np.nan)


def _empty_box(oriented: bool, **style: Any) -> Patch:
    """A patch for `_set_box` to move: a Polygon for oriented boxes, a Rectangle for ``xyxy`` ones."""
    return Polygon(np.zeros((7, 2)), closed=True, **style) if oriented else Rectangle((0, 0), 0, 0, **style)


def _set_box(patch: Patch, box: FloatArray) -> None:
    """Move `patch` to `box`: a Rectangle to an ``xyxy`` box, a Polygon to an oriented one."""
    if isinstance(patch, Polygon):
        patch.set_xy(oriented_outline(box) if np.all(np.isfinite(box)) else np.full((7, 2), np.nan))
        return
    assert isinstance(patch, Rectangle)
    x1, y1, x2, y2 = box
    patch.set_bounds(x1, y1, x2 - x1, y2 - y1)


def plot_enclosing_box(ax: Axes, a: ArrayLike, b: ArrayLike, labels: tuple[str, str] = ("A", "B"),
                       colors: tuple[ColorType, ColorType] = ("C0", "C3"), decimals: int = 3) -> list[Artist]:
    """Draw boxes A and B, their enclosing box C, and hatch the part of C that neither covers.

    The hatched region is exactly C minus (A union B), whether the boxes overlap,
    lie apart or one holds the other: the rectangle cut by every edge of A, B
    and C into a grid, and its cells outside both boxes drawn as one patch.
    IoU, (C - U) / C and GIoU = IoU - (C - U) / C (Rezatofighi et al., CVPR 2019,
    arXiv 1902.09630) are written in the axes' top left corner.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    a, b : array_like, shape (4,)
        ``xyxy`` boxes (inverted corners are ordered first); A is taken as the
        prediction and B as the target for the values.
    labels : (str, str)
        Names written inside A and B.
    decimals : int
        Decimals of the written values.

    Returns
    -------
    list of matplotlib artists
        C, the hatched patch, A and B (each a fill and an outline), the names
        of A, B and C and, last, the text of the values.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> artists = plot_enclosing_box(Figure().subplots(), [0, 0, 1, 1], [2, 0, 3, 1])
    >>> artists[-1].get_text().splitlines()[0]
    'IoU = 0.000'
    """
    a, b = (order_corners(check_boxes(box, name)) for box, name in ((a, "a"), (b, "b")))
    if a.shape != (4,) or b.shape != (4,):
        raise ValueError(f"plot_enclosing_box draws one pair of boxes of shape (4,); got {a.shape}, {b.shape}")
    c = np.asarray(enclosing_box(a, b))
    enclosing, union = float(box_area(c)), float(union_area(a, b))
    penalty = (enclosing - union) / enclosing
    artists: list[Artist] = [plot_box(ax, c, edgecolor="black", linestyle="--", linewidth=1.5, zorder=3)]
    artists.append(ax.add_patch(PathPatch(uncovered_path(a, b), facecolor="0.93", edgecolor="0.45",
                                          hatch="///", linewidth=0, zorder=1)))
    for box, color in zip((a, b), colors):
        artists.append(plot_box(ax, box, fill=True, facecolor=color, alpha=0.3, zorder=2))
        artists.append(plot_box(ax, box, edgecolor=color, linewidth=2.0, zorder=4))
    span = max(c[2] - c[0], c[3] - c[1])
    inset = 0.03 * span
    for box, label, color, corner in zip((a, b), labels, colors, ("top left", "bottom right")):
        x, y = (box[0] + inset, box[3] - inset) if corner == "top left" else (box[2] - inset, box[1] + inset)
        artists.append(ax.text(x, y, label, color=color, fontsize=12, fontweight="bold", zorder=5,
                               ha="left" if corner == "top left" else "right",
                               va="top" if corner == "top left" else "bottom"))
    artists.append(ax.text(c[2], c[3] + inset, "C", fontsize=12, ha="right", va="bottom", zorder=5))
    ax.set_xlim(c[0] - 0.1 * span, c[2] + 0.1 * span)
    ax.set_ylim(c[1] - 0.1 * span, c[3] + 0.55 * span)  # room above C for the values
    ax.set_aspect("equal", adjustable="box")
    f = f".{decimals}f"
    artists.append(ax.text(0.03, 0.97, f"IoU = {float(iou(a, b)):{f}}\n(C − U) / C = {penalty:{f}}\n"
                                       f"GIoU = {float(giou(a, b)):{f}}",
                           transform=ax.transAxes, ha="left", va="top", fontsize=11, zorder=6,
                           bbox=dict(facecolor="white", edgecolor="0.7", boxstyle="round")))
    return artists


def uncovered_path(a: ArrayLike, b: ArrayLike) -> Path:
    """The part of the enclosing box of `a` and `b` (ordered ``xyxy``) that neither covers, as a Path.

    Every edge of the boxes cuts the enclosing box into a grid of cells, each
    either inside one of the boxes or outside both; the path is the disjoint
    union of the cells outside both, so its area is exactly C - U.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    xs = np.unique([a[0], a[2], b[0], b[2]])
    ys = np.unique([a[1], a[3], b[1], b[3]])
    cells = []
    for x1, x2 in zip(xs[:-1], xs[1:]):
        for y1, y2 in zip(ys[:-1], ys[1:]):
            x, y = (x1 + x2) / 2, (y1 + y2) / 2
            covered = any(box[0] <= x <= box[2] and box[1] <= y <= box[3] for box in (a, b))
            if not covered:
                cells.append([(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)])
    if not cells:
        return Path(np.empty((0, 2)))
    codes = [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY] * len(cells)
    return Path(np.concatenate(cells), codes)


def plot_giou_against_iou(ax: Axes, ious: ArrayLike, gious: ArrayLike, penalties: ArrayLike,
                          hist_ax: Axes | None = None, equal_below: float = 1e-9, cmap: str = "viridis") -> list[Any]:
    """Scatter GIoU against IoU for many box pairs, coloured by (C - U) / C.

    Draws the line GIoU = IoU, the range (-1, 1] of GIoU, the empty half-plane
    GIoU > IoU, and in red the pairs whose enclosing box is their union (C = U,
    so GIoU = IoU; in practice one box inside the other). With `hist_ax`, a
    histogram there, sharing the GIoU axis, of GIoU for the pairs apart (IoU = 0),
    which the scatter piles onto the single column IoU = 0.

    Parameters
    ----------
    ious, gious, penalties : array_like, shape (n,)
        IoU, GIoU and (C - U) / C of each pair.
    hist_ax : matplotlib.axes.Axes, optional
    equal_below : float
        Pairs with (C - U) / C at most this are drawn as C = U: rounding leaves
        a few units of 1e-16 where C equals U exactly.

    Returns
    -------
    list of matplotlib artists
        The points with C > U (a PathCollection whose array is (C - U) / C; give it
        to ``colorbar``) first, then the C = U points, the line GIoU = IoU, the
        shading, the texts and lines at GIoU = 1 and -1 and, with `hist_ax`,
        last the histogram's bars.
    """
    ious, gious, penalties = (np.asarray(v, dtype=float).ravel() for v in (ious, gious, penalties))
    equal = penalties <= equal_below
    order = np.argsort(-penalties[~equal])  # the small penalties, near the line, drawn last, on top
    points = ax.scatter(ious[~equal][order], gious[~equal][order], c=penalties[~equal][order], s=3,
                        cmap=cmap, vmin=0, vmax=1, linewidths=0, rasterized=True, zorder=2,
                        label="C > U: GIoU < IoU (colour: (C − U) / C)")
    same = ax.scatter(ious[equal], gious[equal], s=9, color="red", linewidths=0, zorder=3,
                      label=f"C = U ({np.sum(equal)} pairs, one box inside the other): GIoU = IoU")
    artists: list[Any] = [points, same]  # artists, and last the histogram's BarContainer
    artists += ax.plot([0, 1], [0, 1], color="black", linewidth=1.0, zorder=4, label="GIoU = IoU")
    artists.append(ax.fill_between([0, 1], [0, 1], [1, 1], facecolor="none", edgecolor="0.75",
                                   hatch="\\\\", linewidth=0, zorder=1))
    artists.append(ax.text(0.04, 0.93, f"GIoU > IoU: no pair beyond rounding\n"
                                       f"(largest GIoU − IoU: {np.max(gious - ious):.1g})",
                           fontsize=10, va="top", ha="left", zorder=5,
                           bbox=dict(facecolor="white", edgecolor="none", alpha=0.85)))
    for level, text in ((1.0, "GIoU = 1 only for identical boxes"), (-1.0, "GIoU → −1, never reached")):
        artists.append(ax.axhline(level, color="0.4", linestyle="--", linewidth=1.0, zorder=1))
        artists.append(ax.text(0.5, level * 1.012, text, fontsize=9, ha="center",
                               va="bottom" if level > 0 else "top", color="0.3"))
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-1.1, 1.1)
    ax.set_xlabel("IoU")
    ax.set_ylabel("GIoU")
    if hist_ax is not None:
        apart = ious == 0
        # matplotlib's stubs type bins as a Sequence, which an array is not; hist takes arrays
        _, _, bars = hist_ax.hist(gious[apart], bins=np.linspace(-1, 1, 81),  # type: ignore[arg-type]
                                  orientation="horizontal", color="C1", label=f"IoU = 0: {np.sum(apart)} pairs apart")
        artists.append(bars)
        hist_ax.set_ylim(ax.get_ylim())
        hist_ax.set_xlabel("pairs apart (IoU = 0)")
        hist_ax.axhline(0, color="0.4", linewidth=0.8)
        hist_ax.axhline(-1, color="0.4", linestyle="--", linewidth=1.0)
    return artists


def plot_heatmap(ax: Axes, values: ArrayLike, rows: Sequence[str], columns: Sequence[str], texts: Any = None,
                 decimals: int = 2, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "RdYlGn"
                 ) -> tuple[AxesImage, list[Text]]:
    """Draw a table of shares or scores as coloured cells, each annotated; NaN cells stay blank.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    values : array_like, shape (len(rows), len(columns))
    rows, columns : sequence of str
        Tick labels, rows top to bottom.
    texts : array_like of str, same shape as `values`, optional
        What each cell says; by default its value to `decimals` places.

    Returns
    -------
    image, texts : matplotlib.image.AxesImage, list of matplotlib.text.Text
        Give `image` to ``fig.colorbar``.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> image, texts = plot_heatmap(Figure().subplots(), [[0.5, 1.0]], ["gd"], ["giou", "l1"])
    >>> [t.get_text() for t in texts]
    ['0.50', '1.00']
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(rows), len(columns)):
        raise ValueError(f"values of shape {values.shape} do not fit {len(rows)} rows x {len(columns)} columns")
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    written = []
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            text = f"{value:.{decimals}f}" if texts is None else texts[i][j]
            written.append(ax.text(j, i, text, ha="center", va="center", fontsize=8))
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    return image, written


# Box regression (sandbox.learning.metrics, experiments/train_regressor.py) ----------------------
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def _colours(colors: Sequence[ColorType] | None, n: int) -> list[ColorType]:
    colors = [f"C{i % 10}" for i in range(n)] if colors is None else list(colors)
    if len(colors) != n:
        raise ValueError(f"{n} series need {n} colours; got {len(colors)}")
    return colors


def _true_box_style() -> dict[str, Any]:
    """White edged in black: the true box shows on bright and dark pixels alike."""
    from matplotlib import patheffects
    return dict(edgecolor="white", linewidth=2.0, zorder=3,
                path_effects=[patheffects.withStroke(linewidth=4.0, foreground="black")])


def plot_accuracy_curves(ax: Axes, thresholds: ArrayLike, curves: ArrayLike, labels: Sequence[str],
                         spreads: ArrayLike | None = None, colors: Sequence[ColorType] | None = None,
                         legend: bool = True) -> list[Artist]:
    """Draw the share of images reaching each IoU threshold, one line per loss.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    thresholds : array_like, shape (t,)
        IoU thresholds, as `sandbox.learning.metrics.THRESHOLDS`.
    curves : array_like, shape (len(labels), t)
        Accuracy at each threshold, one row per loss (`box_metrics.accuracy_curve`).
    labels : sequence of str
        One per row: the losses' names.
    spreads : array_like, shape (len(labels), t), optional
        Drawn as a band of ± spread around each line (the standard deviation over
        seeds), clipped to [0, 1] where a share lives. NaN draws no band.
    colors : sequence, optional
        One per loss; by default the colour cycle, ``C0``, ``C1``, ...
    legend : bool
        Put a legend outside the axes, to their right (with constrained layout the
        figure makes room). False leaves it to the caller.

    Returns
    -------
    list of matplotlib artists
        Each loss's line, followed by its band when `spreads` is given; the legend last.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> artists = plot_accuracy_curves(Figure().subplots(), [0.5, 0.75], [[0.9, 0.4], [0.8, 0.6]],
    ...                                ["l2", "giou"], spreads=[[0.02, 0.05], [0.03, 0.04]])
    >>> len(artists)   # two lines, two bands, the legend
    5
    """
    thresholds = np.asarray(thresholds, dtype=float)
    curves = _table(curves, spreads, "curves", (len(labels), "label"), (len(thresholds), "threshold"))
    colors = _colours(colors, len(labels))
    artists: list[Artist] = []
    for i, (curve, label) in enumerate(zip(curves, labels)):
        line, = ax.plot(thresholds, curve, marker=_MARKERS[i % len(_MARKERS)], markersize=5,
                        linewidth=1.6, color=colors[i], label=label, zorder=3)
        artists.append(line)
        if spreads is not None:
            spread = np.asarray(spreads, dtype=float)[i]
            artists.append(ax.fill_between(thresholds, np.clip(curve - spread, 0, 1),
                                           np.clip(curve + spread, 0, 1), color=colors[i],
                                           alpha=0.18, linewidth=0, zorder=2))
    margin = 0.03 * (thresholds[-1] - thresholds[0]) if len(thresholds) > 1 else 0.05
    ax.set_xlim(thresholds[0] - margin, thresholds[-1] + margin)
    ax.set_xticks(thresholds, [f"{t:.2f}" for t in thresholds])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("IoU threshold t")
    ax.set_ylabel("share of images with IoU ≥ t")
    ax.grid(alpha=0.3)
    if legend:
        title = "loss" if spreads is None else "loss (band: ± std)"
        artists.append(ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                                 title=title))
    return artists


def plot_prediction_gallery(axes: Any, images: ArrayLike, true_boxes: ArrayLike, predictions: Mapping[str, ArrayLike],
                            labels: Sequence[str] | None = None, colors: Sequence[ColorType] | None = None,
                            titles: Sequence[str] | None = None, legend: bool = True) -> list[Artist]:
    """Draw test images in grey with the true box and every loss's predicted box on each.

    Coordinates are pixel units with the origin at the image's top-left corner and
    pixel (row i, column j) the square [j, j + 1] x [i, i + 1], as `sandbox.learning.synthetic`
    makes them. Each axes shows its whole image and nothing beyond, so a predicted box
    that leaves the image is cut at its edge; an inverted box is drawn as the box it spans.

    Parameters
    ----------
    axes : sequence of matplotlib.axes.Axes
        One per image (an array of axes is flattened).
    images : array_like, shape (n, height, width)
    true_boxes : array_like, shape (n, 4)
        ``xyxy``, drawn white edged in black.
    predictions : dict of str to array_like of shape (n, 4)
        Each loss's predicted ``xyxy`` boxes for the same images.
    labels : sequence of str, optional
        Which predictions to draw, in this order; by default all, in the dict's order.
    colors : sequence, optional
        One per label; by default ``C0``, ``C1``, ...
    titles : sequence of str, optional
        One per image; by default the object's COCO size class and its size in pixels.
    legend : bool
        One legend for the whole figure, below the images (``fig.legend`` at
        ``"outside lower center"``: give the figure constrained layout).

    Returns
    -------
    list of matplotlib artists
        Per image, the image, the true box and the predicted boxes (a box with a
        non-finite coordinate is left out); the legend last.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> axes = Figure(layout="constrained").subplots(1, 2)
    >>> images = np.zeros((2, 16, 16))
    >>> true = [[2, 2, 8, 10], [4, 4, 14, 6]]
    >>> artists = plot_prediction_gallery(axes, images, true, {"l2": true, "giou": true})
    >>> len(artists)   # per image: image, true box, 2 predictions; then the legend
    9
    """
    from sandbox.learning.metrics import size_class

    axes = list(np.ravel(axes))
    images = np.asarray(images, dtype=float)
    true_boxes = check_boxes(true_boxes, "true box", positive_size=True)
    labels = list(predictions) if labels is None else list(labels)
    n = len(images)
    if images.ndim != 3 or true_boxes.shape != (n, 4) or len(axes) != n:
        raise ValueError(f"need n images of shape (n, height, width), true boxes (n, 4) and n axes; "
                         f"got images {images.shape}, boxes {true_boxes.shape} and {len(axes)} axes")
    missing = [label for label in labels if label not in predictions]
    if missing:
        raise ValueError(f"no predictions for {missing}; predictions has {list(predictions)}")
    boxes = {label: np.asarray(predictions[label], dtype=float) for label in labels}
    for label, predicted in boxes.items():
        if predicted.shape != (n, 4):
            raise ValueError(f"predictions[{label!r}] has shape {predicted.shape}; expected ({n}, 4)")
    colors = _colours(colors, len(labels))
    height, width = images.shape[1:]
    if titles is None:
        sizes = size_class(true_boxes, (height, width))
        titles = [f"{size}, {x2 - x1:.3g} × {y2 - y1:.3g} px"
                  for size, (x1, y1, x2, y2) in zip(sizes, true_boxes)]
    artists: list[Artist] = []
    for k, ax in enumerate(axes):
        artists.append(ax.imshow(images[k], cmap="gray", extent=(0, width, height, 0),
                                 interpolation="nearest", alpha=0.8))
        artists.append(plot_box(ax, true_boxes[k], label="true box", **_true_box_style()))
        for label, color in zip(labels, colors):
            box = boxes[label][k]
            if np.all(np.isfinite(box)):
                artists.append(plot_box(ax, box, edgecolor=color, linewidth=1.6, label=label, zorder=4))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[k], fontsize=9)
    if legend:
        from matplotlib.lines import Line2D
        style = _true_box_style()
        handles = [Line2D([], [], color="white", linewidth=style["linewidth"],
                          path_effects=style["path_effects"])]
        handles += [Line2D([], [], color=color, linewidth=2.0) for color in colors]
        artists.append(axes[0].figure.legend(handles, ["true box", *labels], loc="outside lower center",
                                             ncols=min(len(labels) + 1, 6), facecolor="0.85"))
    return artists


def plot_by_size(ax: Axes, values: ArrayLike, losses: Sequence[str], size_classes: Sequence[str],
                 spreads: ArrayLike | None = None, colors: Sequence[ColorType] | None = None,
                 counts: Sequence[int] | None = None, ylabel: str = "accuracy, mean over IoU 0.50 to 0.95",
                 legend: bool = True) -> list[Artist | BarContainer]:
    """Draw a metric by object size as grouped bars: one group per size class, one bar per loss.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    values : array_like, shape (len(losses), len(size_classes))
        The metric, e.g. ``small_accuracy_mean`` ... per loss. NaN (a size class
        without images) draws no bar.
    losses, size_classes : sequence of str
    spreads : array_like, same shape as `values`, optional
        Error bars of ± spread (the standard deviation over seeds).
    colors : sequence, optional
        One per loss; by default ``C0``, ``C1``, ...
    counts : sequence of int, optional
        Images in each size class, written under its name.
    legend : bool
        Put a legend outside the axes, to their right.

    Returns
    -------
    list of matplotlib artists
        One ``BarContainer`` per loss, a text "no images" in each size class whose
        values are all NaN, then the legend.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> artists = plot_by_size(Figure().subplots(), [[0.2, 0.5, 0.7], [0.3, 0.5, 0.6]],
    ...                        ["l2", "giou"], ["small", "medium", "large"])
    >>> [len(bars) for bars in artists[:2]]
    [3, 3]
    """
    values = _table(values, spreads, "values", (len(losses), "loss"), (len(size_classes), "size class"))
    colors = _colours(colors, len(losses))
    groups = np.arange(len(size_classes))
    width = 0.8 / len(losses)
    artists: list[Artist | BarContainer] = []
    for i, loss in enumerate(losses):
        offsets = groups - 0.4 + width * (i + 0.5)
        shown = np.isfinite(values[i])
        bars = ax.bar(offsets[shown], values[i][shown], width=width * 0.92, color=colors[i], label=loss,
                      yerr=None if spreads is None else np.asarray(spreads, dtype=float)[i][shown],
                      error_kw=dict(elinewidth=1.0, capsize=2, ecolor="0.2"), zorder=3)
        artists.append(bars)
    for j in groups[np.all(~np.isfinite(values), axis=0)]:
        artists.append(ax.text(j, 0.02, "no images", transform=ax.get_xaxis_transform(),
                               ha="center", va="bottom", color="0.35", fontsize=9))
    names = list(size_classes) if counts is None else [f"{name}\n({count} images)"
                                                      for name, count in zip(size_classes, counts)]
    ax.set_xticks(groups, names)
    ax.set_xlim(-0.5, len(size_classes) - 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("object size (COCO's classes, scaled to the image)")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    if legend:
        title = "loss" if spreads is None else "loss (bars: ± std)"
        artists.append(ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                                 title=title))
    return artists


def _table(values: ArrayLike, spreads: ArrayLike | None, name: str, rows: tuple[int, str], columns: tuple[int, str]
           ) -> FloatArray:
    """`values` as a float array of shape (rows, columns), each given as (count, what one is); ValueError
    naming the shape expected if it, or `spreads` when given, has another."""
    values, shape = np.asarray(values, dtype=float), (rows[0], columns[0])
    if values.shape != shape or (spreads is not None and np.shape(spreads) != shape):
        raise ValueError(f"{name} (and spreads) must have shape {shape}, one row per {rows[1]} and one "
                         f"column per {columns[1]}; got {values.shape}"
                         + ("" if spreads is None else f" and {np.shape(spreads)}"))
    return values


# Which loss (sandbox.runs.evidence, experiments/which_loss.py) -----------------------------------
def plot_ranks(ax: Axes, ranking: Sequence[Mapping[str, Any]], settings: Sequence[str] | None = None,
               notes: Mapping[tuple[str, str], str] | None = None) -> tuple[AxesImage, list[Text]]:
    """Draw each loss's rank in each setting as a heatmap, best at the top, ties and failures marked.

    A rank shared with another loss (tied within the spread or the rounding,
    `sandbox.runs.evidence.rank_with_ties`) reads "=3"; a loss that fails a setting outright
    is a hatched grey cell reading "fails"; a setting a loss has no rank in is left blank.
    Colour runs from green (rank 1) to red (the last place of that setting, its number of
    ranked losses), in soft shades that keep the text readable. Losses are ordered by
    their mean rank over the settings (`sandbox.runs.evidence.order_losses`).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    ranking : list of dict
        `sandbox.runs.evidence.RANKING_COLUMNS` rows (``rank`` None or '' when unranked;
        ``failed`` a bool or "True"/"False" as read from ranking.csv).
    settings : sequence of str, optional
        The columns, in order; default those present, in `sandbox.runs.evidence.SETTINGS` order.
    notes : dict, optional
        (loss, setting) -> text written after the rank, such as the headline value.

    Returns
    -------
    image, texts : matplotlib.image.AxesImage, list of matplotlib.text.Text

    >>> from matplotlib.figure import Figure
    >>> rows = [dict(loss="giou", setting="simulation", rank=1, failed=False),
    ...         dict(loss="diou", setting="simulation", rank=1, failed=False),
    ...         dict(loss="iou", setting="simulation", rank=None, failed=True)]
    >>> image, texts = plot_ranks(Figure().subplots(), rows, notes={("giou", "simulation"): "0.989"})
    >>> [t.get_text() for t in texts]
    ['=1  0.989', '=1', 'fails']
    """
    from sandbox.runs.evidence import SETTINGS, is_failed, order_losses, rank_of, shared
    present = {r["setting"] for r in ranking}
    settings = [s for s in SETTINGS if s in present] if settings is None else list(settings)
    cells = {(r["loss"], r["setting"]): r for r in ranking}
    ranked = {s: sum(r["setting"] == s and np.isfinite(rank_of(r)) for r in ranking) for s in settings}
    losses = order_losses(ranking, settings)
    values = np.full((len(losses), len(settings)), np.nan)
    texts = np.full(values.shape, "", dtype=object)
    for i, loss in enumerate(losses):
        for j, setting in enumerate(settings):
            row = cells.get((loss, setting))
            if row is None or not np.isfinite(rank_of(row)):
                continue
            values[i, j] = 1.0 - (rank_of(row) - 1) / max(ranked[setting] - 1, 1)
            note = (notes or {}).get((loss, setting))
            texts[i, j] = f"{'=' if shared(ranking, row) else ''}{rank_of(row):.0f}" + (f"  {note}" if note else "")
    image, written = plot_heatmap(ax, values, losses, settings, texts=texts, vmin=-0.35, vmax=1.35)
    for i, loss in enumerate(losses):
        for j, setting in enumerate(settings):
            if (loss, setting) in cells and is_failed(cells[loss, setting]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.8", hatch="///", edgecolor="0.55",
                                       linewidth=0))
                written.append(ax.text(j, i, "fails", ha="center", va="center", fontsize=8, style="italic"))
    ax.xaxis.tick_top()
    return image, written
