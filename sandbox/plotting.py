"""Matplotlib helpers: each draws on a given ``Axes`` and returns what it drew.

    >>> from matplotlib.figure import Figure
    >>> from sandbox import fit
    >>> ax = Figure().subplots()
    >>> result = fit([2, 0, 3, 1], [0, 0, 1, 1])
    >>> artists = plot_trajectory(ax, result.boxes, target=[0, 0, 1, 1])
"""
import numpy as np
from matplotlib.patches import Rectangle

from .boxes import check_boxes, order_corners

TARGET_STYLE = dict(facecolor="0.85", edgecolor="black", linewidth=2.0, zorder=1)


def plot_box(ax, box, **style):
    """Draw one ``xyxy`` box as a rectangle (inverted corners are ordered first)."""
    x1, y1, x2, y2 = order_corners(check_boxes(box, "box"))
    return ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, **{"fill": False, **style}))


def plot_target(ax, target, label="target", **style):
    """Draw the target box, grey and outlined in black; `style` overrides (``fill=False``)."""
    return plot_box(ax, target, **{"fill": True, "label": label, **TARGET_STYLE, **style})


def plot_trajectory(ax, boxes, target=None, color="C0", label=None, max_boxes=25):
    """Draw the boxes an optimiser visited: earlier steps fainter, the start and end marked.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    boxes : array_like, shape (steps + 1, 4)
        ``xyxy`` boxes, the start first, as in ``fit(...).boxes``; rows that are
        not finite (a diverged run) are left out.
    target : array_like, shape (4,), optional
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
    artists = [] if target is None else [plot_target(ax, target)]
    shown = np.unique(np.linspace(0, len(boxes) - 1, max_boxes).round().astype(int))
    for rank, i in enumerate(shown):
        alpha = 0.12 + 0.88 * rank / max(len(shown) - 1, 1)
        artists.append(plot_box(ax, boxes[i], edgecolor=color, alpha=alpha, linewidth=1.0, zorder=2))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    artists += ax.plot(cx, cy, color=color, linewidth=1.0, alpha=0.8, zorder=3, label=label)
    artists += ax.plot(cx[:1], cy[:1], "o", color=color, markersize=5, zorder=4)
    artists += ax.plot(cx[-1:], cy[-1:], "*", color=color, markeredgecolor="black",
                       markersize=11, zorder=5)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    return artists


def plot_metric(ax, histories, labels=None, colors=None, ylabel="IoU with the target",
                hold=True, **style):
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
    histories = [np.asarray(h, dtype=float) for h in histories]
    end = max(len(h) for h in histories) - 1
    lines, seen = [], set()
    for i, history in enumerate(histories):
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
