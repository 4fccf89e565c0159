"""Fused kernels: a registry loss and its partials in one NumPy pass, for the batched engine and training.

Autograd differentiates a loss one primitive at a time, and on a batch each
primitive costs a pass over memory plus autograd's own bookkeeping. For the
1,715,000-case simulation the losses of the registry get one pass each: plain
NumPy computes the loss and its partial derivatives with respect to the four
predicted corners together, and an autograd primitive hands them to the reverse
pass (the losses are elementwise, so the vector-Jacobian product is the upstream
gradient times these partials). The rest of the graph (the parameterisation, the
sum) stays autograd's. `fused_total` is that primitive for the engine (the sum over
boxes); `fused_loss`, one value per pair, is training's (between a network's decoded
boxes and the mean over the minibatch).

One mechanism serves every loss. `Geometry` computes what the losses measure
about a box pair (`sandbox.geometry.pair.Pair`'s quantities, in its order, so the values
agree to the last bit) and collects the gradient reaching each of them; a loss
is a *head*, ``head(geometry, g, **params) -> value``, that reads the quantities
it needs and hands each the upstream gradient `g` times its partial derivative;
`Geometry.partials` then runs the shared reverse pass to the corners. A head joins
`HEADS` where it is written, ``@fused_head(name)`` above it; a loss without one
runs on autograd. Heads compose as the losses of `sandbox.losses` do: alpha-GIoU
adds a power of the GIoU penalty to alpha-IoU, Focal-EIoU weighs EIoU's head, and
the Inner and Focaler variants of every IoU-based loss are its head plus an IoU
term, Inner's read off a second `Geometry` of the scaled boxes.

The partials follow the tie conventions of `sandbox.losses` (``minimum`` and
``maximum`` split the gradient equally at a tie, ``abs`` has gradient 0 at 0,
``clip`` gradient 0 on its bounds, `safe_power` and `safe_divide` their stated
limits, detached factors are constants). The tests check them against
autograd's differentiation of ``sandbox.LOSSES`` and against central
differences. First derivatives only: the kernels carry no Hessians. A spec a
kernel does not cover (a weighted sum, a user's loss, a registry loss without a
head, CIoU with ``trade_off_gradient=True``) has none, and the engine runs
autograd on it.
"""
from __future__ import annotations

import functools
import inspect
from collections import namedtuple
from typing import Any, Callable, Sequence, Union

import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from sandbox._types import Array, Boxes, FloatArray
from sandbox.geometry.boxes import unstack
from sandbox.losses.formulas import IOU_BASED, LOSSES, VARIANTS, unchecked
from sandbox.losses.spec import get_loss

KINDS = ("iou", "giou", "diou", "ciou")
"""The four losses the DIoU paper's simulation compares (and the authors' code has gradients for)."""
_V = 4 / np.pi ** 2


TargetTerms = namedtuple("TargetTerms", "x1 y1 x2 y2 w h area angle")
TargetTerms.__doc__ = "What the kernels use of the targets, computed once for many steps by `target_terms`."

Gradient = Union[FloatArray, float]
"""A gradient reaching a quantity: an array, or the scalar 0.0 (none yet) or 1.0 (the loss itself)."""

Kernel = Callable[..., tuple[FloatArray, list[FloatArray], FloatArray]]
"""A fused kernel: ``kernel(pred, target, **state) -> (value, partials, iou)``, as `value_and_partials` describes;
`state`, a stateful loss's state for the call."""


def target_terms(target: Sequence[FloatArray]) -> TargetTerms:
    """`TargetTerms` of target corners (four arrays); arctan2(w, h) is CIoU's aspect angle."""
    x1, y1, x2, y2 = target
    w, h = x2 - x1, y2 - y1
    return TargetTerms(x1, y1, x2, y2, w, h, w * h, np.arctan2(w, h))


def _order(g_low, g_high, u, v, both=True):
    """Partials, with respect to u (and v), of min(u, v) and max(u, v) with partials g_low and g_high.

    At a tie min and max give each argument half, as autograd's do. Masks multiply
    rather than select: ``np.where`` costs as much as a dozen multiplications. A
    partial that is the scalar 0 is left out.
    """
    below, above = u < v, u > v
    du = _masked(below, g_low) + _masked(above, g_high)
    dv = _masked(below, g_high) + _masked(above, g_low) if both else None
    tie = ~(below | above)
    if tie.any():
        half = tie * (0.5 * (g_low + g_high))
        du = du + half
        dv = dv + half if both else None
    return du, dv


def _zero(g):
    return isinstance(g, float) and g == 0.0


def _masked(mask, g):
    return 0.0 if _zero(g) else mask * g


def _plus(total, g):
    """total + g, where a total that is still the scalar 0 costs no pass."""
    return g if _zero(total) else total + g


def _times(g, x):
    """g * x, where an upstream gradient of exactly 1 or 0 costs no pass."""
    if isinstance(g, float) and g in (0.0, 1.0):
        return 0.0 if g == 0.0 else x
    return g * x


def _where(condition, value, otherwise):
    """np.where, skipped when the condition holds everywhere, as it nearly always does here."""
    return value if condition.all() else np.where(condition, value, otherwise)


def _sign(x):
    """autograd's derivative of abs: the sign, 0 at 0."""
    return np.sign(x)


def _power(base, exponent):
    """`sandbox.geometry.pair.safe_power` and its derivative: 0 at base 0 for exponent < 1."""
    if exponent >= 1:
        return base ** exponent, exponent * base ** (exponent - 1)
    positive = base > 0
    safe = _where(positive, base, 1.0)
    return (_where(positive, safe ** exponent, 0.0),
            _where(positive, exponent * safe ** (exponent - 1), 0.0))


class Geometry:
    """A predicted and a target box, as `sandbox.geometry.pair.Pair` reads them, with a reverse pass.

    `pred` is four arrays (a, b, c, d), possibly inverted; `target` is
    `TargetTerms`. Quantities are computed on first use. A head adds the gradient
    reaching a quantity with ``add(name, g)`` (for `GRADIENTS`) or with the
    ``add_*`` methods of the composite terms; `partials` returns d loss / d (a, b,
    c, d).
    """

    GRADIENTS = ("iou", "intersection", "union", "w", "h", "cw", "ch", "x1", "y1", "x2", "y2")

    def __init__(self, pred: Sequence[FloatArray], target: TargetTerms) -> None:
        self.pred, self.t = pred, target
        a, b, c, d = pred
        t = target
        # Forward, in the order of sandbox.geometry.pair.Pair, so the values agree to the last bit.
        self.x1, self.x2, self.y1, self.y2 = np.minimum(a, c), np.maximum(a, c), np.minimum(b, d), np.maximum(b, d)
        self.w, self.h = self.x2 - self.x1, self.y2 - self.y1
        self.iw_raw = np.minimum(self.x2, t.x2) - np.maximum(self.x1, t.x1)
        self.ih_raw = np.minimum(self.y2, t.y2) - np.maximum(self.y1, t.y1)
        self.iw, self.ih = np.maximum(self.iw_raw, 0.0), np.maximum(self.ih_raw, 0.0)
        self.intersection = self.iw * self.ih
        self.union = self.w * self.h + t.area - self.intersection
        self.iou = self.intersection / self.union
        self.g = dict.fromkeys(self.GRADIENTS, 0.0)

    def add(self, name: str, g: Gradient) -> None:
        self.g[name] = _plus(self.g[name], g)

    @functools.cached_property
    def cw(self) -> FloatArray:
        """The enclosing box's width."""
        return np.maximum(self.x2, self.t.x2) - np.minimum(self.x1, self.t.x1)

    @functools.cached_property
    def ch(self) -> FloatArray:
        return np.maximum(self.y2, self.t.y2) - np.minimum(self.y1, self.t.y1)

    @functools.cached_property
    def dx(self) -> FloatArray:
        return ((self.t.x1 - self.x1) + (self.t.x2 - self.x2)) / 2

    @functools.cached_property
    def dy(self) -> FloatArray:
        return ((self.t.y1 - self.y1) + (self.t.y2 - self.y2)) / 2

    @functools.cached_property
    def rho2(self) -> FloatArray:
        return self.dx ** 2 + self.dy ** 2

    @functools.cached_property
    def c2(self) -> FloatArray:
        return self.cw ** 2 + self.ch ** 2

    @functools.cached_property
    def enclosing(self) -> FloatArray:
        return self.cw * self.ch

    @functools.cached_property
    def penalty(self) -> FloatArray:
        """GIoU's (C - U) / C."""
        return (self.enclosing - self.union) / self.enclosing

    @functools.cached_property
    def distance(self) -> FloatArray:
        """DIoU's rho^2 / c^2."""
        return self.rho2 / self.c2

    @functools.cached_property
    def _aspect(self):
        has_size = (self.w != 0) | (self.h != 0)
        safe_w, safe_h = _where(has_size, self.w, 1.0), _where(has_size, self.h, 1.0)
        angle = _where(has_size, np.arctan2(safe_w, safe_h), self.t.angle)
        return has_size, safe_w, safe_h, angle

    @functools.cached_property
    def aspect_v(self) -> FloatArray:
        """CIoU's v; a point takes the target's aspect (`Pair.aspect_v`)."""
        return _V * (self.t.angle - self._aspect[3]) ** 2

    @functools.cached_property
    def trade_off(self) -> FloatArray:
        """CIoU's alpha = v / ((1 - IoU) + v), 0 where both vanish; a constant in the gradient."""
        denominator = (1.0 - self.iou) + self.aspect_v
        nonzero = denominator != 0
        return _where(nonzero, self.aspect_v / _where(nonzero, denominator, 1.0), 0.0)

    # The composite terms: each hands g times its partials to the quantities it is made of.
    def add_penalty(self, g: Gradient) -> None:
        inverse = 1.0 / self.enclosing  # (C - U) / C = 1 - U / C
        self.add("union", -_times(g, inverse))
        g_enclosing = _times(g, self.union * inverse * inverse)
        self.add("cw", g_enclosing * self.ch)
        self.add("ch", g_enclosing * self.cw)

    def add_rho2(self, g: Gradient) -> None:
        self.add_dx(2 * _times(g, self.dx))
        self.add_dy(2 * _times(g, self.dy))

    def add_dx(self, g: Gradient) -> None:
        self.add("x1", -g / 2)  # dx = ((tx1 - x1) + (tx2 - x2)) / 2
        self.add("x2", -g / 2)

    def add_dy(self, g: Gradient) -> None:
        self.add("y1", -g / 2)
        self.add("y2", -g / 2)

    def add_c2(self, g: Gradient) -> None:
        self.add("cw", _times(g, 2 * self.cw))
        self.add("ch", _times(g, 2 * self.ch))

    def add_distance(self, g: Gradient) -> None:
        inverse = 1.0 / self.c2
        g_rho2 = _times(g, inverse)
        self.add_rho2(g_rho2)
        self.add_c2(-self.rho2 * g_rho2 * inverse)

    def add_aspect_v(self, g: Gradient) -> None:
        has_size, safe_w, safe_h, angle = self._aspect
        g_angle = _where(has_size, g * -2 * _V * (self.t.angle - angle), 0.0)
        g_angle = g_angle / (safe_w ** 2 + safe_h ** 2)  # d arctan2(w, h) / dw = h / (w^2 + h^2)
        self.add("w", g_angle * safe_h)
        self.add("h", -g_angle * safe_w)

    def scaled(self, ratio: float) -> tuple[Geometry, Callable[[], None]]:
        """The `Geometry` of Inner-IoU's auxiliary boxes (`Pair.scaled`), and a function giving its
        partials back to these corners."""
        def scale(x1: FloatArray, y1: FloatArray, x2: FloatArray, y2: FloatArray
                  ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            half_w, half_h = w * ratio / 2, h * ratio / 2
            return cx - half_w, cy - half_h, cx + half_w, cy + half_h
        tx1, ty1, tx2, ty2 = scale(self.t.x1, self.t.y1, self.t.x2, self.t.y2)
        tw, th = tx2 - tx1, ty2 - ty1
        inner = Geometry(scale(self.x1, self.y1, self.x2, self.y2),
                         TargetTerms(tx1, ty1, tx2, ty2, tw, th, tw * th, None))  # IoU only: no angle

        def give_back() -> None:
            g_sx1, g_sy1, g_sx2, g_sy2 = inner.partials()
            for low, high, g_low, g_high in (("x1", "x2", g_sx1, g_sx2), ("y1", "y2", g_sy1, g_sy2)):
                g_centre, g_size = (g_low + g_high) / 2, (g_high - g_low) * ratio / 2
                self.add(low, g_centre - g_size)
                self.add(high, g_centre + g_size)
        return inner, give_back

    def partials(self) -> list[FloatArray]:
        """d loss / d (a, b, c, d), from the gradients the heads added: the shared reverse pass."""
        g, t = self.g, self.t
        g_union = g["union"]
        g_intersection = g["intersection"]
        if not _zero(g["iou"]):
            g_from_iou = g["iou"] / self.union
            g_intersection = _plus(g_intersection, g_from_iou)
            g_union = _plus(g_union, -self.iou * g_from_iou)
        g_w = _plus(g["w"], _times(g_union, self.h))  # U = w h + A_t - I
        g_h = _plus(g["h"], _times(g_union, self.w))
        g_intersection = g_intersection - g_union if not _zero(g_union) else g_intersection
        g_iw_raw = g_ih_raw = 0.0
        if not _zero(g_intersection):  # iw = max(iw_raw, 0)
            g_iw_raw = _order(0.0, g_intersection * self.ih, self.iw_raw, 0.0, both=False)[0]
            g_ih_raw = _order(0.0, g_intersection * self.iw, self.ih_raw, 0.0, both=False)[0]
        g_cw, g_ch = g["cw"], g["ch"]
        # iw_raw = min(x2, tx2) - max(x1, tx1); cw = max(x2, tx2) - min(x1, tx1); w = x2 - x1
        g_x1 = g["x1"] - g_w + _order(-g_cw, -g_iw_raw, self.x1, t.x1, both=False)[0]
        g_x2 = g["x2"] + g_w + _order(g_iw_raw, g_cw, self.x2, t.x2, both=False)[0]
        g_y1 = g["y1"] - g_h + _order(-g_ch, -g_ih_raw, self.y1, t.y1, both=False)[0]
        g_y2 = g["y2"] + g_h + _order(g_ih_raw, g_ch, self.y2, t.y2, both=False)[0]
        # the ordering: x1 = min(a, c), x2 = max(a, c), and the same for b, d
        a, b, c, d = self.pred
        g_a, g_c = _order(g_x1, g_x2, a, c)
        g_b, g_d = _order(g_y1, g_y2, b, d)
        return [_full(p, a) for p in (g_a, g_b, g_c, g_d)]


def _full(partial, like):
    return np.zeros_like(like) if isinstance(partial, float) else partial


# Heads: head(geometry, g, **params) -> the loss, each as `sandbox.losses.formulas` writes it.
class NoKernel(Exception):
    """A head's parameters it has no kernel for; the engine falls back to autograd."""


Head = Callable[..., FloatArray]
"""A head: ``head(geometry, g, **params) -> value``, handing each quantity `g` times its partial."""

HEADS: dict[str, Head] = {}
"""The head of every registry loss that has one, by name (`fused_head`); the others run on autograd."""


def fused_head(name: str) -> Callable[[Head], Head]:
    """Decorate ``head(G, g, **params)`` to make it the fused head of the registry loss `name`.

    The head takes the loss's parameters, with the same defaults. An IoU-based loss
    (`sandbox.losses.formulas.IOU_BASED`) brings the heads of its Inner and Focaler
    variants too, made of its own.
    """
    def register(head: Head) -> Head:
        if name not in LOSSES:
            raise ValueError(f"a fused head for {name!r}, which sandbox.LOSSES does not have: register the loss "
                             f"first (sandbox.losses.formulas.registered)")
        if name in HEADS:
            raise ValueError(f"loss {name!r} has a fused head already")
        HEADS[name] = head
        if name in IOU_BASED:
            HEADS.update({f"{kind}_{name}": _variant_head(kind, head) for kind in VARIANTS})
        return head
    return register


# The Inner and Focaler variants: the base's head plus IoU - IoU', IoU' a head of its own.
def _inner_iou_term(G, g, ratio=0.7):
    inner, give_back = G.scaled(ratio)
    inner.add("iou", g)
    give_back()
    return inner.iou


def _focaler_iou_term(G, g, d=0.0, u=0.95):
    remapped = np.clip((G.iou - d) / (u - d), 0.0, 1.0)
    G.add("iou", _times(g, ((remapped != 0.0) & (remapped != 1.0)) / (u - d)))
    return remapped


TERMS = {"inner": _inner_iou_term, "focaler": _focaler_iou_term}
"""The IoU' of each of `sandbox.losses.VARIANTS`, as a head of IoU'."""


def _variant_head(kind, base):
    own = list(inspect.signature(VARIANTS[kind].remap).parameters)[1:]

    def head(G, g, **params):
        remap = {k: params.pop(k) for k in own if k in params}
        value = base(G, g, **params)
        G.add("iou", g)
        return value + G.iou - TERMS[kind](G, -g, **remap)
    return head


# The registry's losses.
@fused_head("iou")
def _iou_head(G, g):
    G.add("iou", -g)
    return 1.0 - G.iou


@fused_head("giou")
def _giou_head(G, g):
    G.add("iou", -g)
    G.add_penalty(g)
    return 1.0 - G.iou + G.penalty


@fused_head("diou")
def _diou_head(G, g):
    G.add("iou", -g)
    G.add_distance(g)
    return 1.0 - G.iou + G.distance


@fused_head("ciou")
def _ciou_head(G, g, trade_off_gradient=False):
    if trade_off_gradient:
        raise NoKernel("CIoU's trade-off in the gradient")
    value = _diou_head(G, g)
    G.add_aspect_v(_times(g, G.trade_off))
    return value + G.trade_off * G.aspect_v


@fused_head("ciou_mmdet")
def _ciou_mmdet_head(G, g):
    value = _diou_head(G, g)
    gated = _where(G.iou > 0.5, G.trade_off, 0.0)  # mmdetection's alpha, 0 where IoU <= 0.5; a constant
    G.add_aspect_v(_times(g, gated))
    return value + gated * G.aspect_v


@fused_head("eiou")
def _eiou_head(G, g):
    value = _diou_head(G, g)
    for size, target_size, enclosing in (("w", G.t.w, "cw"), ("h", G.t.h, "ch")):
        difference, enclosing_size = getattr(G, size) - target_size, getattr(G, enclosing)
        enclosing2 = enclosing_size ** 2
        term = difference ** 2 / enclosing2
        g_term = _times(g, 1.0 / enclosing2)
        G.add(size, 2 * difference * g_term)
        G.add(enclosing, -2 * enclosing_size * term * g_term)
        value = value + term
    return value


@fused_head("focal_eiou")
def _focal_eiou_head(G, g, gamma=0.5, weight_gradient=False):
    weight, slope = _power(G.iou, gamma)
    eiou = _eiou_head(G, _times(g, weight))
    if weight_gradient:
        G.add("iou", _times(g, eiou * slope))
    return weight * eiou


def _shape_cost_head(G, g, theta, weight_w=1.0, weight_h=1.0):
    """SIoU's Omega, as `sandbox.losses.formulas._shape_cost`."""
    value = 0.0
    for size, target_size, weight in (("w", G.t.w, weight_w), ("h", G.t.h, weight_h)):
        s = getattr(G, size)
        difference, larger = s - target_size, np.maximum(s, target_size)
        omega = weight * np.abs(difference) / larger
        decay = np.exp(-omega)
        term, slope = _power(1.0 - decay, theta)
        g_omega = _times(g, slope * decay)
        g_larger = -g_omega * omega / larger
        G.add(size, g_omega * weight / larger * _sign(difference)
              + _order(0.0, g_larger, s, target_size, both=False)[0])
        value = value + term
    return value


@fused_head("siou")
def _siou_head(G, g, theta=4.0):
    G.add("iou", -g)
    dx, dy, rho2 = G.dx, G.dy, G.rho2
    product = dx * dy
    nonzero = rho2 != 0
    safe_rho2 = _where(nonzero, rho2, 1.0)
    angle = _where(nonzero, 2 * np.abs(product) / safe_rho2, 0.0)
    gamma = 2.0 - angle
    half = _times(g, 0.5)
    distance, g_gamma = 2.0, 0.0
    for offset, enclosing, add_offset in ((dx, "cw", G.add_dx), (dy, "ch", G.add_dy)):
        size = getattr(G, enclosing)
        ratio = offset / size
        decay = np.exp(-gamma * ratio ** 2)
        distance = distance - decay
        g_exponent = -half * decay  # d/d(-gamma r^2) of -exp(.)
        g_gamma = g_gamma - g_exponent * ratio ** 2
        g_ratio = -g_exponent * gamma * 2 * ratio
        add_offset(g_ratio / size)
        G.add(enclosing, -g_ratio * ratio / size)
    g_angle = -g_gamma
    g_numerator = _where(nonzero, g_angle / safe_rho2, 0.0)
    G.add_rho2(_where(nonzero, -g_angle * angle / safe_rho2, 0.0))
    g_product = 2 * g_numerator * _sign(product)
    G.add_dx(g_product * dy)
    G.add_dy(g_product * dx)
    shape = _shape_cost_head(G, half, theta)
    return 1.0 - G.iou + (distance + shape) / 2


@fused_head("alpha_iou")
def _alpha_iou_head(G, g, alpha=3.0):
    power, slope = _power(G.iou, alpha)
    G.add("iou", -_times(g, slope))
    return 1.0 - power


@fused_head("alpha_giou")
def _alpha_giou_head(G, g, alpha=3.0):
    value = _alpha_iou_head(G, g, alpha)
    power, slope = _power(G.penalty, alpha)
    G.add_penalty(_times(g, slope))
    return value + power


@fused_head("alpha_diou")
def _alpha_diou_head(G, g, alpha=3.0):
    value = _alpha_iou_head(G, g, alpha)
    power, slope = _power(G.distance, alpha)
    G.add_distance(_times(g, slope))
    return value + power


@fused_head("alpha_ciou")
def _alpha_ciou_head(G, g, alpha=3.0, trade_off_gradient=False):
    if trade_off_gradient:
        raise NoKernel("CIoU's trade-off in the gradient")
    value = _alpha_diou_head(G, g, alpha)
    power, slope = _power(G.trade_off * G.aspect_v, alpha)
    G.add_aspect_v(_times(g, slope * G.trade_off))
    return value + power


@fused_head("wiou")
def _wiou_head(G, g):
    factor = np.exp(G.rho2 / G.c2)  # the enclosing box is a constant in the gradient
    G.add_rho2(_times(g, factor * (1.0 - G.iou) / G.c2))
    G.add("iou", -_times(g, factor))
    return factor * (1.0 - G.iou)


def _outlier_degree(G, iou_mean):
    """Wise-IoU's beta = (1 - IoU) / iou_mean, 0 where the mean is 0; a constant in the gradient."""
    iou_mean = np.asarray(iou_mean, dtype=float)
    nonzero = iou_mean != 0
    return _where(nonzero, (1.0 - G.iou) / _where(nonzero, iou_mean, 1.0), 0.0)


@fused_head("wiou_v2")
def _wiou_v2_head(G, g, iou_mean=1.0, gamma=0.5):
    factor = _power(_outlier_degree(G, iou_mean), gamma)[0]
    return factor * _wiou_head(G, _times(g, factor))


@fused_head("wiou_v3")
def _wiou_v3_head(G, g, iou_mean=1.0, alpha=1.9, delta=3.0):
    beta = _outlier_degree(G, iou_mean)
    factor = beta / (delta * alpha ** (beta - delta))
    return factor * _wiou_head(G, _times(g, factor))


@fused_head("mpdiou")
def _mpdiou_head(G, g, frame_width=10.0, frame_height=10.0):
    G.add("iou", -g)
    scale = 1.0 / (frame_width ** 2 + frame_height ** 2)
    corners = 0.0
    for name in ("x1", "y1", "x2", "y2"):
        difference = getattr(G, name) - getattr(G.t, name)
        corners = corners + difference ** 2
        G.add(name, _times(g, 2 * difference * scale))
    return 1.0 - G.iou + corners / (frame_width ** 2 + frame_height ** 2)


@fused_head("shape_iou")
def _shape_iou_head(G, g, scale=0.0, theta=4.0):
    G.add("iou", -g)
    tw, th = G.t.w, G.t.h
    ww = 2 * tw ** scale / (tw ** scale + th ** scale)
    hh = 2 * th ** scale / (tw ** scale + th ** scale)
    numerator = hh * G.dx ** 2 + ww * G.dy ** 2
    distance = numerator / G.c2
    g_numerator = _times(g, 1.0 / G.c2)
    G.add_dx(g_numerator * hh * 2 * G.dx)
    G.add_dy(g_numerator * ww * 2 * G.dy)
    G.add_c2(-distance * g_numerator)
    shape = _shape_cost_head(G, _times(g, 0.5), theta, weight_w=hh, weight_h=ww)
    return 1.0 - G.iou + distance + 0.5 * shape


def _piou_penalty(G):
    """PIoU's P, as `sandbox.losses.formulas._piou_penalty`, and ``give(g_P)``, which hands the gradient
    reaching P on to the corners."""
    t = G.t
    differences = [(name, getattr(G, name) - getattr(t, name), size)
                   for name, size in (("x1", t.w), ("x2", t.w), ("y1", t.h), ("y2", t.h))]
    (_, dx1, _), (_, dx2, _), (_, dy1, _), (_, dy2, _) = differences

    def give(g_P: Gradient) -> None:
        for name, difference, size in differences:
            G.add(name, _times(g_P, _sign(difference) / (4 * size)))
    return ((np.abs(dx1) + np.abs(dx2)) / t.w + (np.abs(dy1) + np.abs(dy2)) / t.h) / 4, give


@fused_head("piou")
def _piou_head(G, g):
    P, give = _piou_penalty(G)
    decay = np.exp(-P ** 2)
    G.add("iou", -g)
    give(_times(g, 2 * P * decay))
    return 1.0 - G.iou + 1.0 - decay


@fused_head("piou_v2")
def _piou_v2_head(G, g, lambda_=1.3):
    P, give = _piou_penalty(G)
    decay = np.exp(-P ** 2)
    x = lambda_ * np.exp(-P)
    attention = 3 * x * np.exp(-x ** 2)
    piou = 1.0 - G.iou + 1.0 - decay
    G.add("iou", -_times(g, attention))
    # d/dP of u(x) L: u 2P exp(-P^2) + L u'(x) dx/dP, with u'(x) = 3 exp(-x^2) (1 - 2x^2) and dx/dP = -x
    give(_times(g, attention * 2 * P * decay - piou * 3 * np.exp(-x ** 2) * (1 - 2 * x ** 2) * x))
    return attention * piou


def _smooth(x, beta):
    """Smooth L1 of x >= 0 at beta > 0 and its slope."""
    small = x < beta
    return np.where(small, 0.5 * x * x / beta, x - 0.5 * beta), np.where(small, x / beta, 1.0)


@fused_head("bounded_iou")
def _bounded_iou_head(G, g, beta=0.2, eps=1e-3):
    value = 0.0
    for offset, target_size, add_offset in ((G.dx, G.t.w, G.add_dx), (G.dy, G.t.h, G.add_dy)):
        spread = 2 * np.abs(offset)
        denominator = target_size + spread + eps
        bound = (target_size - spread) / denominator
        term, slope = _smooth(1.0 - np.maximum(bound, 0.0), beta)
        value = value + term
        g_bound = _order(0.0, -_times(g, slope), bound, 0.0, both=False)[0]
        g_spread = g_bound * -(2 * target_size + eps) / denominator ** 2
        add_offset(g_spread * 2 * _sign(offset))
    for size, target_size in (("w", G.t.w), ("h", G.t.h)):
        s = getattr(G, size)
        shifted = s + eps
        nonzero = shifted != 0
        safe = _where(nonzero, shifted, 1.0)
        over = _where(nonzero, target_size / safe, 0.0)
        under = s / (target_size + eps)
        term, slope = _smooth(1.0 - np.minimum(over, under), beta)
        value = value + term
        g_over, g_under = _order(-_times(g, slope), 0.0, over, under)
        G.add(size, g_over * _where(nonzero, -target_size / safe ** 2, 0.0) + g_under / (target_size + eps))
    return value


@fused_head("nwd")
def _nwd_head(G, g, constant=1.0):
    distance2 = G.rho2 + ((G.w - G.t.w) ** 2 + (G.h - G.t.h) ** 2) / 4
    distance, slope = _power(distance2, 0.5)
    decay = np.exp(-distance / constant)
    g_distance2 = _times(g, decay / constant * slope)
    G.add_rho2(g_distance2)
    G.add("w", g_distance2 * (G.w - G.t.w) / 2)
    G.add("h", g_distance2 * (G.h - G.t.h) / 2)
    return 1.0 - decay


@fused_head("log_iou")
def _log_iou_head(G, g, eps=1e-6):
    clamped = np.maximum(G.iou, eps)
    G.add("iou", _order(0.0, -_times(g, 1.0 / clamped), G.iou, eps, both=False)[0])
    return -np.log(clamped)


@fused_head("uiou")
def _uiou_head(G, g, ratio=1.0):
    scaled, give_back = G.scaled(ratio)
    scaled.add("iou", -g)
    give_back()
    return 1.0 - scaled.iou


def _coordinates(G, coords):
    """The four differences of `sandbox.losses.formulas._coordinate_differences` and their partials'
    routing: rows of (pred - target difference, {corner: d difference / d corner})."""
    t = G.t
    if coords == "xyxy":
        return [(G.x1 - t.x1, {"x1": 1.0}), (G.y1 - t.y1, {"y1": 1.0}),
                (G.x2 - t.x2, {"x2": 1.0}), (G.y2 - t.y2, {"y2": 1.0})]
    sizes = [(G.x2 - G.x1 - (t.x2 - t.x1), {"x1": -1.0, "x2": 1.0}),
             (G.y2 - G.y1 - (t.y2 - t.y1), {"y1": -1.0, "y2": 1.0})]
    if coords == "xywh":
        return [(G.x1 - t.x1, {"x1": 1.0}), (G.y1 - t.y1, {"y1": 1.0}), *sizes]
    if coords == "cxcywh":
        return [((G.x1 + G.x2) / 2 - (t.x1 + t.x2) / 2, {"x1": 0.5, "x2": 0.5}),
                ((G.y1 + G.y2) / 2 - (t.y1 + t.y2) / 2, {"y1": 0.5, "y2": 0.5}), *sizes]
    raise NoKernel(f"coords {coords!r}")


def _coordinate_head(slope_of):
    """The head of a sum over the coordinate differences of elementwise terms: slope_of(difference)
    gives (term, d term / d difference)."""
    def head(G, g, coords="xyxy", **params):
        value = 0
        for difference, routes in _coordinates(G, coords):
            term, slope = slope_of(difference, **params)
            value = value + term
            g_difference = _times(g, slope)
            for corner, factor in routes.items():
                G.add(corner, g_difference * factor if factor != 1.0 else g_difference)
        return value
    return head


@fused_head("l1")
@_coordinate_head
def _l1_term(difference):
    return np.abs(difference), _sign(difference)


@fused_head("l2")
@_coordinate_head
def _l2_term(difference):
    return difference ** 2, 2 * difference


@fused_head("smooth_l1")
@_coordinate_head
def _smooth_l1_term(difference, beta=1.0):
    x = np.abs(difference)
    if beta == 0:
        return x, _sign(difference)
    small = x < beta
    return (np.where(small, 0.5 * x ** 2 / beta, x - 0.5 * beta),
            np.where(small, x / beta, 1.0) * _sign(difference))


@fused_head("balanced_l1")
@_coordinate_head
def _balanced_l1_term(difference, alpha=0.5, gamma=1.5, beta=1.0):
    b = np.exp(gamma / alpha) - 1
    x = np.abs(difference)
    small = x < beta
    logarithm = np.log(b * x / beta + 1)
    value = np.where(small, alpha / b * (b * x + 1) * logarithm - alpha * x, gamma * x + gamma / b - alpha * beta)
    # d/dx: alpha ln(b x / beta + 1) + alpha (b x + 1) / (b x + beta) - alpha below beta, gamma above
    slope = np.where(small, alpha * logarithm + alpha * (b * x + 1) / (b * x + beta) - alpha, gamma)
    return value, slope * _sign(difference)


def _fused_losses():
    """The registry losses with a fused kernel (at any parameters, except those `kernel` lists), in its order."""
    return tuple(name for name in LOSSES if name in HEADS)


def __getattr__(name):
    # FUSED_LOSSES is computed when asked, so that it follows every head, wherever it is written
    if name == "FUSED_LOSSES":
        return _fused_losses()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kernel(spec: object) -> Kernel | None:
    """The fused kernel of a loss spec, ``kernel(pred, target) -> (value, partials, iou)``, or None.

    `spec` is a spec of `sandbox.get_loss` naming one loss of `FUSED_LOSSES`, with
    any parameters (``'focaler_giou:d=0.1,u=0.9'``); its parameters are read as the
    registry reads them. None for anything else: a weighted sum, a user's loss or a
    function, or parameters without a kernel (CIoU's and alpha-CIoU's
    ``trade_off_gradient=True``). `built_kernel` does the same for the function
    `sandbox.get_loss` built from a spec.
    """
    return _kernel_of_spec(spec) if isinstance(spec, str) else None


@functools.lru_cache(maxsize=None)
def _kernel_of_spec(spec: str) -> Kernel | None:
    try:
        function = get_loss(spec)
    except ValueError:
        return None
    return built_kernel(function)


kernel.cache_clear = _kernel_of_spec.cache_clear  # type: ignore[attr-defined]  # as before: tests reset it


def built_kernel(function: Callable[..., Any]) -> Kernel | None:
    """The fused kernel of the function `sandbox.get_loss` built from a spec (a registry loss, or a
    partial of one with its parameters), or None: what `kernel` gives for the spec, without reading
    it again. A run's `sandbox.optim.settings.Settings` holds that function.
    """
    bound = {}
    if isinstance(function, functools.partial):
        bound = function.keywords
        function = function.func
    name = next((name for name, registered in LOSSES.items() if registered is function), None)
    if name not in HEADS:
        return None
    signature = inspect.signature(unchecked(function)).parameters.values()
    params = {p.name: p.default for p in list(signature)[2:]}
    params.update(bound)
    head = HEADS[name]
    try:  # refused parameters show on a pair of boxes
        head(Geometry([np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([2.0])],
                      target_terms([np.array([0.5]), np.array([0.5]), np.array([2.0]), np.array([1.5])])),
             1.0, **params)
    except NoKernel:
        return None

    def value_and_partials_of(pred, target, **state):
        """`state`: a stateful loss's state (`sandbox.losses.formulas.LOSS_STATES`), given at each call."""
        target = target if isinstance(target, TargetTerms) else target_terms(target)
        geometry = Geometry(pred, target)
        value = head(geometry, 1.0, **(dict(params, **state) if state else params))
        return value, geometry.partials(), geometry.iou
    value_and_partials_of.__name__ = f"fused_{name}"
    return value_and_partials_of


def value_and_partials(loss: str, pred: Sequence[FloatArray], target: Sequence[FloatArray] | TargetTerms
                       ) -> tuple[FloatArray, list[FloatArray], FloatArray]:
    """A loss with a kernel and its partials with respect to the predicted corners, in NumPy.

    Parameters
    ----------
    loss : str
        A spec `kernel` has a kernel for: a name of `FUSED_LOSSES`, with parameters.
    pred : four arrays, shape (n,)
        Predicted corners (a, b, c, d) as given, possibly inverted.
    target : four arrays, shape (n,), or `TargetTerms`
        Target corners.

    Returns
    -------
    value : ndarray, shape (n,)
    partials : list of four ndarrays, d value / d a, b, c, d
    iou : ndarray, shape (n,)
        The IoU on the way, which the batched update weighs its steps with.
    """
    return _kernel_of(loss)(pred, target)


def _kernel_of(loss):
    found = kernel(loss) if isinstance(loss, str) else built_kernel(loss)
    if found is None:
        raise ValueError(f"no fused kernel for {loss!r}; there are kernels for {', '.join(_fused_losses())} "
                         f"(CIoU and alpha-CIoU with trade_off_gradient=False)")
    return found


@primitive
def _total(a, b, c, d, value, partials):
    return np.sum(value)


def _total_vjp(i):
    def make(ans, a, b, c, d, value, partials):
        return lambda g: partials[i] if g == 1.0 else g * partials[i]
    return make


defvjp(_total, *(_total_vjp(i) for i in range(4)))


def fused_total(loss: str | Callable[..., Any]) -> Callable[..., Array]:
    """The sum over cases of the loss `loss` (a spec with a `kernel`, or the function built from
    it, with a `built_kernel`), as ``total(pred, target, out=None)``, differentiable once.

    `pred` is `Coordinates`; `target` is `Coordinates` or `TargetTerms`, computed
    once for many calls. When `out` is a dict, the loss and the IoU of every case,
    computed on the way, are left in ``out["value"]`` and ``out["iou"]``. Keywords
    give a stateful loss its state for this call (`sandbox.losses.formulas.LOSS_STATES`).
    """
    value_and_partials_of = _kernel_of(loss)

    def total(pred: Boxes, target: Boxes | TargetTerms, out: dict[str, FloatArray] | None = None,
              **state: Any) -> Array:
        corners = unstack(pred)
        if not isinstance(target, TargetTerms):
            target = [getval(t) for t in unstack(target)]
        value, partials, iou = value_and_partials_of([getval(c) for c in corners], target, **state)
        if out is not None:
            out["value"], out["iou"] = value, iou
        return _total(*corners, value=value, partials=partials)
    total.__name__ = f"{value_and_partials_of.__name__}_total"
    return total


@primitive
def _values(pred, value, partials):
    return value


# elementwise: each case's value depends on its own box alone, so the product is g times its four partials;
# in the boxes' dtype, where autograd's mean would hand a float32 network a float64 gradient
defvjp(_values, lambda ans, pred, value, partials: lambda g: (g[..., None] * partials).astype(partials.dtype,
                                                                                              copy=False))


def fused_loss(loss: str | Callable[..., Any]) -> Callable[[Array, Boxes], Array]:
    """The loss `loss` per pair, as ``values(pred, target)``, differentiable once in `pred`.

    One kernel call gives each pair's value and its partials with respect to the four
    predicted corners; the reverse pass multiplies them by the upstream gradient, so
    autograd sees one node where the loss's own operations are dozens (training's fast
    path, `sandbox.learning.training.train` with ``gradient='fused'``). The values and
    the gradient are in `pred`'s dtype, so that a float32 network stays float32.

    Parameters
    ----------
    loss : str or callable
        A spec with a `kernel`, or the function `sandbox.get_loss` built from one (with a
        `built_kernel`); ValueError for anything else.

    Returns
    -------
    callable
        ``values(pred, target)``: `pred`, shape (..., 4), predicted ``xyxy`` boxes,
        possibly inverted, traced by autograd or not; `target`, shape (..., 4) or (4,),
        target ``xyxy`` boxes, not differentiated. One value per pair, shape (...,), as
        the registry loss gives.
    """
    value_and_partials_of = _kernel_of(loss)

    def values(pred: Array, target: Boxes, **state: Any) -> Array:
        boxes = getval(pred)
        target_corners = [getval(t) for t in unstack(target)]
        value, partials, _ = value_and_partials_of(unstack(boxes), target_corners, **state)
        if np.shape(value) != np.shape(boxes)[:-1]:
            raise ValueError(f"fused_loss takes one target per predicted box, or one for all; got predictions of "
                             f"shape {np.shape(boxes)} and targets of shape {np.shape(target)}")
        dtype = boxes.dtype
        return _values(pred, np.asarray(value, dtype=dtype), np.stack(partials, axis=-1).astype(dtype, copy=False))
    values.__name__ = value_and_partials_of.__name__
    return values
