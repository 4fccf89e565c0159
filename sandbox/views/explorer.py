"""An interactive explorer of the losses: move the predicted box, watch every value and the gradient.

``loss_explorer(target, losses)`` returns a `LossExplorer`; the last expression of a
notebook cell, it displays

- sliders for the predicted box's centre x, centre y, width and height;
- a list picking the losses to show (any spec `sandbox.get_loss` takes, every name in
  `sandbox.LOSSES` offered) and a dropdown picking the loss whose gradient is drawn;
- a table of the chosen losses' values and gradient norms, with the box's IoU and GIoU,
  updated on every change;
- a figure of the target and the predicted box with that loss's negative gradient drawn
  on the box's edges, redrawn on every change.

The arrows are the negative gradient with respect to the corners ``(x1, y1, x2, y2)``,
from autograd: at the middle of each edge, perpendicular to it, the arrow is
``-dL/dx1`` (left edge), ``-dL/dx2`` (right), ``-dL/dy1`` (bottom) or ``-dL/dy2`` (top),
the way one step of gradient descent moves that edge. Two opposite arrows pointing the
same way move the box (the derivative with respect to the centre is their sum); pointing
apart or together they grow or shrink it. The longest arrow is drawn at a fixed length, so
the figure shows directions and relative sizes; the table gives the norm. A gradient that
is exactly zero, as the IoU loss's while the boxes are apart, is written on the box.

The figure is a PNG in an ``ipywidgets.Image``, so only ipywidgets is needed in the
front end (no ipympl). Where no widget front end is present, as when a notebook runs
headless or is read on GitHub, the explorer shows a static figure instead: its
``_repr_mimebundle_`` returns the widget's view (``application/vnd.jupyter.widget-view+json``)
together with a PNG of `static_figure` and a plain-text note, in one output. A front end
renders the richest type it can: JupyterLab's widget manager registers its renderer at rank
-10, ahead of the built-in image renderer (lower ranks win), so JupyterLab shows the live
widget; viewers without widget support show the PNG. Without ipywidgets installed the
explorer is the static figure alone.

The state behind the display is computed by plain functions, `explorer_state`,
`plot_explorer_state` and `values_table_html`, usable and testable without a browser.

    >>> state = explorer_state(2.0, 0.0, 1.0, 1.5, [-1, -0.5, 1, 0.5], ["iou", "giou"])
    >>> state.values
    {'iou': 1.0, 'giou': 1.3333333333333333}
    >>> state.gradients["iou"]                    # apart: the IoU loss is flat
    array([0., 0., 0., 0.])
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from autograd import value_and_grad
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from sandbox.geometry.boxes import box_convert, check_boxes
from sandbox.losses.formulas import LOSSES, giou, iou
from sandbox.losses.spec import get_loss
from sandbox._types import FloatArray, Loss
from sandbox.views.plotting import plot_box, plot_target

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

Limits = tuple[tuple[float, float], tuple[float, float]]
"""A figure's ``(xlim, ylim)``."""

DEFAULT_TARGET = (-1.0, -0.5, 1.0, 0.5)
DEFAULT_LOSSES = ("giou", "iou", "diou", "l1", "l2")
SLIDERS = {"cx": "centre x", "cy": "centre y", "width": "width", "height": "height"}
CSS_CLASS = "loss-explorer"  # the widget; its parts add a suffix: -values, -cx, -cy, -width, -height
ARROW_COLOUR, BOX_COLOUR = "C3", "C0"
# Static views: predicted boxes as (centre offset, size) in units of the target's width and
# height, beside the explorer's starting box.
STATIC_BOXES = {"overlapping": (0.45, 0.3, 1.0, 1.0), "inside": (0.15, 0.0, 0.5, 0.5),
                "enclosing": (-0.1, 0.1, 1.6, 1.8)}


@dataclass(frozen=True)
class ExplorerState:
    """The predicted box and what each loss says about it.

    Attributes
    ----------
    box : ndarray, shape (4,)
        The predicted box, ``xyxy``.
    target : ndarray, shape (4,)
        ``xyxy``.
    values : dict
        Loss spec -> value, a float.
    gradients : dict
        Loss spec -> gradient with respect to the box's ``xyxy`` corners, shape (4,).
    iou, giou : float
        Of the box with the target.
    """
    box: FloatArray
    target: FloatArray
    values: dict[str, float]
    gradients: dict[str, FloatArray]
    iou: float
    giou: float


def check_target(target: ArrayLike) -> FloatArray:
    """`target` as a float array after checking it is one ``xyxy`` box of positive size."""
    target = check_boxes(target, "target", positive_size=True)
    if target.shape != (4,):
        raise ValueError(f"the explorer takes one target box, shape (4,); got shape {target.shape}")
    return target


def explorer_state(cx: float, cy: float, width: float, height: float, target: ArrayLike = DEFAULT_TARGET,
                   losses: Sequence[str | Loss] = DEFAULT_LOSSES) -> ExplorerState:
    """Values and gradients of `losses` at the predicted box with this centre and size.

    Parameters
    ----------
    cx, cy, width, height : float
        The predicted box, centre and size; width and height must be positive.
    target : array_like, shape (4,)
        ``xyxy``, of positive width and height.
    losses : sequence of str or callable
        Specs for `sandbox.get_loss`: ``'giou'``, ``'l1:coords=cxcywh'``.

    Returns
    -------
    ExplorerState
        The gradients come from autograd, with respect to the box's corners.
    """
    target = check_target(target)
    box = box_convert(np.array([cx, cy, width, height], dtype=float), "cxcywh", "xyxy")
    check_boxes(box, "predicted box", positive_size=True)
    functions = {str(spec) if not callable(spec) else getattr(spec, "__name__", repr(spec)):
                 get_loss(spec) for spec in losses}
    values, gradients = {}, {}
    for name, loss in functions.items():
        value, gradient = value_and_grad(loss)(box, target)
        values[name], gradients[name] = float(value), np.asarray(gradient, dtype=float)
    return ExplorerState(box, target, values, gradients, float(iou(box, target)),
                         float(giou(box, target)))


def slider_ranges(target: ArrayLike) -> dict[str, tuple[float, float, float]]:
    """``{'cx': (min, max, step), ...}`` for the sliders: around the target, in its units.

    The centre moves up to 1.25 times the target's longer side from the target's centre;
    the width and height run from a tenth of that side to 1.5 times it.
    """
    target = check_target(target)
    cx, cy, _, _ = (float(v) for v in box_convert(target, "xyxy", "cxcywh"))
    side = float(max(target[2] - target[0], target[3] - target[1]))
    step = 10.0 ** np.floor(np.log10(side / 40))  # a round step, about 1/40 of the side or less
    step = float(step * 5 if side / 40 >= 5 * step else step)
    return {"cx": (cx - 1.25 * side, cx + 1.25 * side, step),
            "cy": (cy - 1.25 * side, cy + 1.25 * side, step),
            "width": (side / 10, 1.5 * side, step), "height": (side / 10, 1.5 * side, step)}


def view_limits(target: ArrayLike) -> Limits:
    """The fixed ``(xlim, ylim)`` of the explorer's figure: every box the sliders make fits."""
    ranges = slider_ranges(target)
    half = ranges["width"][1] / 2
    return ((ranges["cx"][0] - half, ranges["cx"][1] + half),
            (ranges["cy"][0] - half, ranges["cy"][1] + half))


def plot_explorer_state(ax: Axes, state: ExplorerState, loss: str | None = None, limits: Limits | None = None
                        ) -> list[Artist]:
    """Draw the target, the predicted box and `loss`'s negative gradient on the box's edges.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    state : ExplorerState
    loss : str, optional
        Whose gradient to draw, a key of ``state.gradients``; by default the first.
        With no losses in the state, no arrows.
    limits : (xlim, ylim), optional
        By default `view_limits` of the state's target.

    Returns
    -------
    list of matplotlib artists
        The target, the box, then the arrows (or the note that the gradient is zero).
    """
    artists: list[Artist] = [plot_target(ax, state.target),
                             plot_box(ax, state.box, edgecolor=BOX_COLOUR, linewidth=2.0, label="predicted", zorder=2)]
    if loss is None and state.gradients:
        loss = next(iter(state.gradients))
    if loss is not None:
        artists += _plot_negative_gradient(ax, state.box, state.gradients[loss],
                                           length=0.8 * float(min(state.target[2:] - state.target[:2])))
    xlim, ylim = limits if limits is not None else view_limits(state.target)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    return artists


def _plot_negative_gradient(ax: Axes, box: FloatArray, gradient: FloatArray, length: float) -> list[Artist]:
    x1, y1, x2, y2 = box
    if not np.any(gradient):
        return [ax.text((x1 + x2) / 2, (y1 + y2) / 2, "gradient\nexactly 0", ha="center",
                        va="center", color=ARROW_COLOUR, fontsize=9, zorder=3,
                        bbox=dict(facecolor="white", edgecolor="none", alpha=0.8))]
    scale = length / np.max(np.abs(gradient))
    middle_x, middle_y = (x1 + x2) / 2, (y1 + y2) / 2
    # Edge midpoints and the direction each coordinate moves its edge in.
    anchors = [((x1, middle_y), (1, 0)), ((middle_x, y1), (0, 1)),
               ((x2, middle_y), (1, 0)), ((middle_x, y2), (0, 1))]
    artists: list[Artist] = []
    for ((x, y), (ux, uy)), component in zip(anchors, -gradient):
        if component == 0:
            continue
        end = (x + ux * component * scale, y + uy * component * scale)
        artists.append(ax.annotate("", xy=end, xytext=(x, y), zorder=3, arrowprops=dict(
            arrowstyle="-|>", color=ARROW_COLOUR, linewidth=2.0, shrinkA=0, shrinkB=0,
            mutation_scale=14)))
    return artists


def values_table_html(state: ExplorerState, arrows: str | None = None) -> str:
    """The state as an HTML table: loss, value, gradient norm; `arrows` marks the drawn loss.

    The table has the CSS class ``loss-explorer-table``, and each loss's value cell the
    class ``loss-value`` inside a row ``loss-row-<spec>``, for tests and styling.
    """
    rows = "".join(
        f'<tr class="loss-row loss-row-{_css_name(name)}"><td>{name}{" &larr; arrows" * (name == arrows)}'
        f'</td><td class="loss-value" style="text-align:right">{value:.4f}</td>'
        f'<td style="text-align:right">{np.linalg.norm(state.gradients[name]):.4g}</td></tr>'
        for name, value in state.values.items())
    if not rows:
        rows = '<tr><td colspan="3">pick at least one loss</td></tr>'
    return (f'<div>IoU <b>{state.iou:.4f}</b>, GIoU <b>{state.giou:.4f}</b></div>'
            '<table class="loss-explorer-table"'
            ' style="font-family:monospace;border-spacing:12px 2px;line-height:1.4">'
            '<tr><th style="text-align:left">loss</th><th>value</th><th>|gradient|</th></tr>'
            f'{rows}</table>')


def _css_name(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in spec)


def explorer_figure(state: ExplorerState, loss: str | None = None, dpi: float = 80) -> Figure:
    """The explorer's figure for `state`: one axes, a title naming the loss drawn."""
    fig = Figure(figsize=(5.2, 4.8), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    plot_explorer_state(ax, state, loss)
    drawn = loss if loss is not None else next(iter(state.gradients), None)
    ax.set_title("arrows: negative gradient of " + drawn if drawn else "no loss chosen", fontsize=11)
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    return fig


def static_figure(target: ArrayLike = DEFAULT_TARGET, losses: Sequence[str] = DEFAULT_LOSSES,
                  box: Sequence[float] | None = None, dpi: float = 80) -> Figure:
    """The explorer as small multiples: the start box and three others, each loss's value below.

    Parameters
    ----------
    target : array_like, shape (4,)
        ``xyxy``.
    losses : sequence of str
        The arrows show the first one's negative gradient.
    box : array_like, shape (4,), optional
        The first panel's predicted box, ``cxcywh``; by default the explorer's start.
    """
    target = check_target(target)
    tx, ty, tw, th = box_convert(target, "xyxy", "cxcywh")
    boxes = {"start": default_box(target) if box is None else box}
    boxes.update({name: (tx + dx * tw, ty + dy * th, w * tw, h * th)
                  for name, (dx, dy, w, h) in STATIC_BOXES.items()})
    states = {name: explorer_state(cx, cy, width, height, target=target, losses=losses)
              for name, (cx, cy, width, height) in boxes.items()}
    limits = _static_limits(target, [s.box for s in states.values()])
    aspect = (limits[1][1] - limits[1][0]) / (limits[0][1] - limits[0][0])
    text_height = 0.17 * len(losses) + 0.1
    # The panels at equal aspect with their titles and ticks, and below them a row for the values
    # (constrained layout centres an equal-aspect axes in its cell, so an x label would overflow).
    fig = Figure(figsize=(3.3 * len(states), 3.0 * aspect + 0.8 + text_height), dpi=dpi,
                 layout="constrained")
    axes = fig.subplots(2, len(states), height_ratios=[3.0 * aspect + 0.35, text_height])
    width = max([4] + [len(name) for name in next(iter(states.values())).values])
    for ax, text_ax, (name, state) in zip(axes[0], axes[1], states.items()):
        plot_explorer_state(ax, state, limits=limits)
        ax.set_title(f"{name}: IoU {state.iou:.2f}, GIoU {state.giou:.2f}", fontsize=10)
        ax.tick_params(labelsize=8)
        text_ax.axis("off")
        values = "\n".join(f"{loss:<{width}} {value:8.4f}" for loss, value in state.values.items())
        text_ax.text(0.0, 1.0, values, transform=text_ax.transAxes, va="top", ha="left",
                     family="monospace", fontsize=9)
    first = next(iter(next(iter(states.values())).values), None)
    fig.suptitle(f"Loss explorer, static view: each loss's value below the box; arrows, the negative "
                 f"gradient of {first} (interactive in JupyterLab)", fontsize=11)
    return fig


def _static_limits(target: FloatArray, boxes: Sequence[FloatArray]) -> Limits:
    corners = np.vstack([target, *boxes])
    low, high = corners[:, :2].min(axis=0), corners[:, 2:].max(axis=0)
    margin = 0.15 * float(max(high - low))
    return (low[0] - margin, high[0] + margin), (low[1] - margin, high[1] + margin)


def default_box(target: ArrayLike) -> tuple[float, float, float, float]:
    """The explorer's starting box, ``cxcywh``: beside the target, apart, half a side away."""
    target = check_target(target)
    tx, ty, tw, th = box_convert(target, "xyxy", "cxcywh")
    return (float(tx + tw), float(ty), float(tw / 2), float(th * 1.5))


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi if dpi is not None else fig.dpi)
    return buffer.getvalue()


class LossExplorer:
    """The explorer: its widget (``None`` without ipywidgets), its state, and a static fallback.

    Made by `loss_explorer`. ``sliders`` maps ``'cx', 'cy', 'width', 'height'`` to the
    sliders; setting a slider's ``value`` updates the display, as dragging it does.
    """

    widget: Any  # an ipywidgets.HBox (ipywidgets has no types), or None
    sliders: dict[str, Any] | None  # ipywidgets.FloatSlider by key of SLIDERS, or None

    def __init__(self, target: ArrayLike, losses: Sequence[str], box: Sequence[float] | None) -> None:
        self.target = check_target(target)
        self.losses = tuple(losses)
        if not self.losses:
            raise ValueError(f"loss_explorer needs at least one loss; valid losses are {', '.join(LOSSES)}")
        box = default_box(self.target) if box is None else tuple(float(v) for v in box)
        if len(box) != 4 or not box[2] > 0 or not box[3] > 0:
            raise ValueError(f"box must be (cx, cy, width, height) with positive width and height; got {box}")
        # One evaluation checks the target's shape and every loss spec, before any widget is made.
        explorer_state(*box, target=self.target, losses=self.losses)
        self.start = box
        self.widget = self.sliders = None
        try:
            import ipywidgets
        except ImportError:
            return
        self._build(ipywidgets)

    def _build(self, widgets: Any) -> None:
        ranges = slider_ranges(self.target)
        self.sliders = {}
        for (key, label), value in zip(SLIDERS.items(), self.start):
            low, high, step = ranges[key]
            slider = widgets.FloatSlider(value=min(max(value, low), high), min=low, max=high, step=step,
                                         description=label, readout_format=".2f", continuous_update=True)
            slider.add_class(f"{CSS_CLASS}-{key}")
            self.sliders[key] = slider
        options = list(dict.fromkeys([*self.losses, *LOSSES]))
        self.picker = widgets.SelectMultiple(options=options, value=self.losses, rows=8,
                                             description="losses")
        self.arrows = widgets.Dropdown(options=self.losses, value=self.losses[0], description="arrows of")
        self.table = widgets.HTML()
        self.table.add_class(f"{CSS_CLASS}-values")
        # Shown at its own size: stretched to the controls' height it would lose the equal aspect.
        self.image = widgets.Image(format="png", layout=widgets.Layout(flex="0 0 auto"))
        self.image.add_class(f"{CSS_CLASS}-figure")
        help_text = widgets.HTML("<small>Ctrl- or Shift-click to pick several losses; "
                                 "click a slider and use the arrow keys for fine steps.</small>")
        controls = widgets.VBox([*self.sliders.values(), self.picker, help_text, self.arrows, self.table])
        self.widget = widgets.HBox([self.image, controls], layout=widgets.Layout(align_items="flex-start"))
        self.widget.add_class(CSS_CLASS)
        for slider in self.sliders.values():
            slider.observe(self._update, names="value")
        self.picker.observe(self._pick, names="value")
        self.arrows.observe(self._update, names="value")
        self._update()

    @property
    def box(self) -> tuple[float, ...]:
        """The predicted box, ``cxcywh``, as the sliders set it (the start without widgets)."""
        if self.sliders is None:
            return self.start
        return tuple(self.sliders[key].value for key in SLIDERS)

    @property
    def chosen(self) -> tuple[str, ...]:
        """The losses shown, in the list's order (the given ones without widgets)."""
        return tuple(self.picker.value) if self.sliders is not None else self.losses

    @property
    def state(self) -> ExplorerState:
        """`explorer_state` of the current box and chosen losses."""
        cx, cy, width, height = self.box
        return explorer_state(cx, cy, width, height, target=self.target, losses=self.chosen)

    def _pick(self, change: object = None) -> None:
        chosen = self.chosen
        drawn = self.arrows.value
        with self.arrows.hold_trait_notifications():
            self.arrows.options = chosen
            self.arrows.value = drawn if drawn in chosen else (chosen[0] if chosen else None)
        if self.arrows.value == drawn:  # otherwise the dropdown's own change has redrawn everything
            self._update()

    def _update(self, change: object = None) -> None:
        state = self.state
        # The figure first: once the table shows a state, its figure has been sent too.
        self.image.value = figure_png(explorer_figure(state, loss=self.arrows.value))
        self.table.value = values_table_html(state, arrows=self.arrows.value)

    def static_png(self) -> bytes:
        """PNG bytes of `static_figure` for the current box and losses."""
        return figure_png(static_figure(self.target, self.chosen or self.losses, box=self.box))

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, Any]:
        note = ("Loss explorer: interactive in JupyterLab with ipywidgets; this is its static view "
                f"(losses {', '.join(self.chosen or self.losses)}).")
        bundle = {"text/plain": note, "image/png": base64.b64encode(self.static_png()).decode("ascii")}
        if self.widget is not None:
            view = self.widget._repr_mimebundle_()
            bundle["application/vnd.jupyter.widget-view+json"] = \
                view["application/vnd.jupyter.widget-view+json"]
        return bundle


def loss_explorer(target: ArrayLike = DEFAULT_TARGET, losses: Sequence[str] = DEFAULT_LOSSES,
                  box: Sequence[float] | None = None) -> LossExplorer:
    """An interactive explorer of `losses` around `target`, with a static fallback.

    Parameters
    ----------
    target : array_like, shape (4,)
        ``xyxy``, of positive width and height.
    losses : sequence of str
        Specs for `sandbox.get_loss`, shown first; every other name in `sandbox.LOSSES`
        can be picked in the list. The first is the one whose gradient is drawn.
    box : (cx, cy, width, height), optional
        The predicted box to start from; by default `default_box(target)`, beside the
        target, not overlapping it. The sliders hold it within `slider_ranges`.

    Returns
    -------
    LossExplorer
        Display it (the last expression of a cell): JupyterLab shows the widget; a
        front end without widgets shows `static_figure`.

    Raises
    ------
    ValueError
        For an unknown loss or bad parameter, no loss, a target that is not one box of
        positive size, or a box without positive size, before any widget is made.
    """
    return LossExplorer(target, losses, box)
