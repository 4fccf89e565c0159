"""Fused kernels for the four losses of the DIoU simulation: IoU, GIoU, DIoU and CIoU.

Autograd differentiates a loss one primitive at a time, and on a batch each
primitive costs a pass over memory plus autograd's own bookkeeping. For the
1,715,000-case simulation the four losses it compares get one pass each: plain
NumPy computes the loss and its partial derivatives with respect to the four
predicted corners together, and an autograd primitive hands them to the reverse
pass (the losses are elementwise, so the vector-Jacobian product is the upstream
gradient times these partials). The rest of the graph (the parameterisation, the
sum) stays autograd's.

The partials are derived by hand below, step by step in the reverse order of the
forward pass, with the tie conventions of `sandbox.losses` (``minimum`` and
``maximum`` split the gradient equally at a tie). The tests check them against
autograd's differentiation of ``sandbox.LOSSES`` and against central
differences. First derivatives only: the kernels carry no Hessians.
"""
from collections import namedtuple

import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .boxes import unstack

KINDS = ("iou", "giou", "diou", "ciou")
_V = 4 / np.pi ** 2


TargetTerms = namedtuple("TargetTerms", "x1 y1 x2 y2 w h area angle")
TargetTerms.__doc__ = "What the kernels use of the targets, computed once for many steps by `target_terms`."


def target_terms(target):
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


def _masked(mask, g):
    return 0.0 if isinstance(g, float) and g == 0.0 else mask * g


def _where(condition, value, otherwise):
    """np.where, skipped when the condition holds everywhere, as it nearly always does here."""
    return value if condition.all() else np.where(condition, value, otherwise)


def value_and_partials(kind, pred, target):
    """A loss of `KINDS` and its partials with respect to the predicted corners, in NumPy.

    Parameters
    ----------
    kind : str
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
    a, b, c, d = pred
    t = target if isinstance(target, TargetTerms) else target_terms(target)
    tx1, ty1, tx2, ty2 = t.x1, t.y1, t.x2, t.y2
    # Forward, in the order of sandbox.pair.Pair, so the values agree to the last bit.
    x1, x2, y1, y2 = np.minimum(a, c), np.maximum(a, c), np.minimum(b, d), np.maximum(b, d)
    w, h = x2 - x1, y2 - y1
    iw_raw = np.minimum(x2, tx2) - np.maximum(x1, tx1)
    ih_raw = np.minimum(y2, ty2) - np.maximum(y1, ty1)
    iw, ih = np.maximum(iw_raw, 0.0), np.maximum(ih_raw, 0.0)
    intersection = iw * ih
    union = w * h + t.area - intersection
    iou = intersection / union
    value = 1.0 - iou
    # Reverse: g_name is d value / d name.
    g_intersection = -1.0 / union
    g_union = -iou * g_intersection  # from -I/U
    g_cw = g_ch = 0.0
    g_x1 = g_x2 = g_y1 = g_y2 = 0.0
    if kind != "iou":
        cw = np.maximum(x2, tx2) - np.minimum(x1, tx1)
        ch = np.maximum(y2, ty2) - np.minimum(y1, ty1)
    if kind == "giou":
        enclosing = cw * ch
        value = value + (enclosing - union) / enclosing
        inverse = 1.0 / enclosing
        g_union = g_union - inverse  # (C - U) / C = 1 - U / C
        g_enclosing = union * inverse * inverse
        g_cw, g_ch = g_enclosing * ch, g_enclosing * cw
    if kind in ("diou", "ciou"):
        dx = ((tx1 - x1) + (tx2 - x2)) / 2
        dy = ((ty1 - y1) + (ty2 - y2)) / 2
        rho2, c2 = dx ** 2 + dy ** 2, cw ** 2 + ch ** 2
        value = value + rho2 / c2
        g_rho2 = 1.0 / c2
        g_c2 = -rho2 * g_rho2 * g_rho2
        g_cw, g_ch = g_c2 * 2 * cw, g_c2 * 2 * ch
        g_x1 = g_x2 = -g_rho2 * dx  # d rho2 / d x1 = 2 dx * (-1/2)
        g_y1 = g_y2 = -g_rho2 * dy
    g_w, g_h = g_union * h, g_union * w
    if kind == "ciou":
        has_size = (w != 0) | (h != 0)
        safe_w, safe_h = _where(has_size, w, 1.0), _where(has_size, h, 1.0)
        angle = _where(has_size, np.arctan2(safe_w, safe_h), t.angle)
        v = _V * (t.angle - angle) ** 2
        denominator = (1.0 - iou) + v
        nonzero = denominator != 0
        alpha = _where(nonzero, v / _where(nonzero, denominator, 1.0), 0.0)
        value = value + alpha * v  # alpha is a constant in the gradient
        g_angle = _where(has_size, alpha * -2 * _V * (t.angle - angle), 0.0)
        g_angle = g_angle / (safe_w ** 2 + safe_h ** 2)  # d arctan2(w, h) / dw = h / (w^2 + h^2)
        g_w = g_w + g_angle * safe_h
        g_h = g_h - g_angle * safe_w
    g_intersection = g_intersection - g_union  # U = w h + A_t - I
    g_iw_raw = _order(0.0, g_intersection * ih, iw_raw, 0.0, both=False)[0]  # iw = max(iw_raw, 0)
    g_ih_raw = _order(0.0, g_intersection * iw, ih_raw, 0.0, both=False)[0]
    # iw_raw = min(x2, tx2) - max(x1, tx1); cw = max(x2, tx2) - min(x1, tx1); w = x2 - x1
    g_x1 = g_x1 - g_w + _order(-g_cw, -g_iw_raw, x1, tx1, both=False)[0]
    g_x2 = g_x2 + g_w + _order(g_iw_raw, g_cw, x2, tx2, both=False)[0]
    g_y1 = g_y1 - g_h + _order(-g_ch, -g_ih_raw, y1, ty1, both=False)[0]
    g_y2 = g_y2 + g_h + _order(g_ih_raw, g_ch, y2, ty2, both=False)[0]
    # the ordering: x1 = min(a, c), x2 = max(a, c), and the same for b, d
    g_a, g_c = _order(g_x1, g_x2, a, c)
    g_b, g_d = _order(g_y1, g_y2, b, d)
    return value, [g_a, g_b, g_c, g_d], iou


@primitive
def _total(a, b, c, d, value, partials):
    return np.sum(value)


def _total_vjp(i):
    def make(ans, a, b, c, d, value, partials):
        return lambda g: partials[i] if g == 1.0 else g * partials[i]
    return make


defvjp(_total, *(_total_vjp(i) for i in range(4)))


def fused_total(kind):
    """The sum over cases of the loss `kind`, as ``total(pred, target, out=None)``, differentiable once.

    `pred` is `Coordinates`; `target` is `Coordinates` or `TargetTerms`, computed
    once for many calls. When `out` is a dict, the loss and the IoU of every case,
    computed on the way, are left in ``out["value"]`` and ``out["iou"]``.
    """
    if kind not in KINDS:
        raise ValueError(f"no fused kernel for {kind!r}; there are kernels for {', '.join(KINDS)}")

    def total(pred, target, out=None):
        corners = unstack(pred)
        if not isinstance(target, TargetTerms):
            target = [getval(t) for t in unstack(target)]
        value, partials, iou = value_and_partials(kind, [getval(c) for c in corners], target)
        if out is not None:
            out["value"], out["iou"] = value, iou
        return _total(*corners, value=value, partials=partials)
    total.__name__ = f"fused_{kind}_total"
    return total
