"""The gradients of the DIoU authors' MATLAB simulation, transcribed: to compare, not to use.

Zheng et al. (AAAI 2020, arXiv 1911.08287) ran their simulation with hand-written
gradients: github.com/Zzh-tju/DIoU, folder ``simulation experiment``, files
``dIOU.m``, ``dGIOU.m``, ``dDIOU.m``, ``dCIOU.m`` and their helpers ``In.m``,
``cover.m``, ``dIbox.m``, ``dUbox.m``, ``dXbox.m``, ``dCbox.m``, ``iou.m``,
``to_tblr.m``, ``to_xywh.m``. This module transcribes them line by line,
vectorised over cases, so that the sandbox can run the paper's protocol with
exactly the authors' update and say which of their choices its own results
(autograd's true gradient) differ by. It departs from their code in nothing,
including what looks like slips; each is marked ``MATLAB:``. The sandbox's own
runs never use these gradients.

Boxes are (x, y, w, h) with centre (x, y); the MATLAB functions return the
direction of *ascent* of the similarity (IoU, GIoU, DIoU or CIoU), and
`authors_gradient` returns its negative, a descent direction for the loss.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Collection, Sequence

import numpy as np

from sandbox._types import BoolArray, FloatArray

Edges = namedtuple("Edges", "t b l r")


def _tblr(x: FloatArray, y: FloatArray, w: FloatArray, h: FloatArray) -> Edges:
    """to_tblr.m: top, bottom, left, right edges (y grows downward: t < b)."""
    return Edges(y - h / 2, y + h / 2, x - w / 2, x + w / 2)


def _inside(p: Edges, g: Edges) -> Edges:
    """In.m: the intersection's edges, possibly crossed when the boxes are apart."""
    return Edges(np.maximum(p.t, g.t), np.minimum(p.b, g.b), np.maximum(p.l, g.l), np.minimum(p.r, g.r))


def _cover(p: Edges, g: Edges) -> Edges:
    """cover.m: the enclosing box's edges."""
    return Edges(np.minimum(p.t, g.t), np.maximum(p.b, g.b), np.minimum(p.l, g.l), np.maximum(p.r, g.r))


REPAIRS = {
    "intersection": "clamp the intersection at 0 for boxes apart, and its derivative with it",
    "distance": "the exact derivative of the distance term rho^2 / c^2 in place of dDIOU.m's",
}
"""Corrections of the transcription, one at a time, to find which slip makes which difference."""


def _intersection_union(p: Edges, g: Edges, repairs: Collection[str] = ()
                        ) -> tuple[Edges, FloatArray, FloatArray]:
    """I and U as dIOU.m and dGIOU.m compute them. MATLAB: I is not clamped at 0, so boxes
    apart along both axes get a positive 'intersection' (the product of two negative extents)."""
    i = _inside(p, g)
    if "intersection" in repairs:
        intersection = np.maximum(i.b - i.t, 0.0) * np.maximum(i.r - i.l, 0.0)
    else:
        intersection = (i.b - i.t) * (i.r - i.l)
    return i, intersection, (p.b - p.t) * (p.r - p.l) + (g.b - g.t) * (g.r - g.l) - intersection


def _overlap(i: Edges) -> BoolArray:
    return (i.t < i.b) & (i.l < i.r)


def matlab_iou(p: Edges, g: Edges) -> FloatArray:
    """iou.m: I / U where the boxes overlap, else 0."""
    i, intersection, union = _intersection_union(p, g)
    return np.where(_overlap(i), intersection / np.where(union != 0, union, 1.0), 0.0)


def _d_intersection(p: Edges, g: Edges, i: Edges, repairs: Collection[str] = ()) -> Edges:
    """dIbox.m: dI / d(t, b, l, r), with the intersection's extents as they are (crossed or not)."""
    d = Edges(np.where(p.t > g.t, -(i.r - i.l), 0.0), np.where(p.b < g.b, i.r - i.l, 0.0),
              np.where(p.l > g.l, -(i.b - i.t), 0.0), np.where(p.r < g.r, i.b - i.t, 0.0))
    if "intersection" in repairs:
        return Edges(*(np.where(_overlap(i), x, 0.0) for x in d))
    return d


def _d_union(p: Edges, g: Edges, i: Edges, repairs: Collection[str] = ()) -> Edges:
    """dUbox.m = dXbox.m - dIbox.m."""
    area = Edges(-(p.r - p.l), p.r - p.l, -(p.b - p.t), p.b - p.t)
    inter = _d_intersection(p, g, i, repairs)
    return Edges(*(a - b for a, b in zip(area, inter)))


def _d_iou(p: Edges, g: Edges) -> Edges:
    """dIOU.m: dIoU / d(t, b, l, r), 0 where the boxes do not overlap."""
    i, intersection, union = _intersection_union(p, g)
    d_i, d_u = _d_intersection(p, g, i), _d_union(p, g, i)
    inside = _overlap(i) & (union > 0)
    safe = np.where(inside, union, 1.0) ** 2
    t, b, l, r = (np.where(inside, (union * di - intersection * du) / safe, 0.0) for di, du in zip(d_i, d_u))
    # MATLAB: meant to swap dt, db (and dl, dr) for an inverted box, it writes s.dt = s.db and
    # then s.db = s.dt, so both end equal to the old db.
    t = np.where(p.t < p.b, t, b)
    l = np.where(p.l < p.r, l, r)
    return Edges(t, b, l, r)


def _d_giou(p: Edges, g: Edges, repairs: Collection[str] = ()) -> Edges:
    """dGIOU.m: dIOU plus d(U / C) where the boxes overlap; only d(U / C) where they do not.

    MATLAB: U and dU use the unclamped intersection of dIOU.m, also for boxes apart.
    """
    i, _, union = _intersection_union(p, g, repairs)
    d_u = _d_union(p, g, i, repairs)
    c = _cover(p, g)
    d_c = Edges(np.where(p.t < g.t, -(c.r - c.l), 0.0), np.where(p.b > g.b, c.r - c.l, 0.0),
                np.where(p.l < g.l, -(c.b - c.t), 0.0), np.where(p.r > g.r, c.b - c.t, 0.0))  # dCbox.m
    area = (c.b - c.t) * (c.r - c.l)
    penalty = Edges(*((area * du - union * dc) / area ** 2 for du, dc in zip(d_u, d_c)))
    d_iou = _d_iou(p, g)
    overlap = _overlap(i)
    return Edges(*(np.where(overlap, di + pe, pe) for di, pe in zip(d_iou, penalty)))


def _to_xywh(d: Edges) -> FloatArray:
    """to_xywh.m. MATLAB: dw = dr - dl and dh = db - dt, twice the chain rule's (dr - dl) / 2."""
    return np.stack([d.l + d.r, d.t + d.b, d.r - d.l, d.b - d.t])


def _d_distance(box: FloatArray | Sequence[FloatArray], target_box: FloatArray | Sequence[FloatArray],
                p: Edges, g: Edges, repairs: Collection[str] = ()) -> FloatArray:
    """The distance term of dDIOU.m and dCIOU.m, d(-rho^2 / c^2) / d(x, y, w, h), as written."""
    x, y, _, _ = box
    gx, gy, _, _ = target_box
    c = _cover(p, g)
    c2 = (c.b - c.t) ** 2 + (c.r - c.l) ** 2
    ccw, cch = c.r - c.l, c.b - c.t
    zero = np.zeros_like(x)
    d = (x - gx) ** 2 + (y - gy) ** 2
    if "distance" in repairs:
        # d(c^2)/d(x, y, w, h) = 2 C_w dC_w + 2 C_h dC_h, each edge of the cover moved by the
        # prediction's edge while it is the outer one; then d(-d / c^2) = (-d' c^2 + d (c^2)') / c^4
        right, left = (p.r > g.r).astype(float), (p.l < g.l).astype(float)
        bottom, top = (p.b > g.b).astype(float), (p.t < g.t).astype(float)
        dc2 = np.stack([2 * ccw * (right - left), 2 * cch * (bottom - top),
                        2 * ccw * 0.5 * (right + left), 2 * cch * 0.5 * (bottom + top)])
        direct = np.stack([2 * (gx - x), 2 * (gy - y), zero, zero])
        return (direct * c2 + d * dc2) / c2 ** 2
    # d(edge of the cover) / d(x, y, w, h), for the edges the prediction sets
    ct = (zero, np.where(p.t < g.t, 1.0, 0.0), zero, np.where(p.t < g.t, -0.5, 0.0))
    cb = (zero, np.where(p.b > g.b, 1.0, 0.0), zero, np.where(p.b > g.b, 0.5, 0.0))
    cl = (np.where(p.l < g.l, 1.0, 0.0), zero, np.where(p.l < g.l, -0.5, 0.0), zero)
    cr = (np.where(p.r > g.r, 1.0, 0.0), zero, np.where(p.r > g.r, 0.5, 0.0), zero)
    # MATLAB: Cw and Ch are filled alike, each with the width's x and w derivatives and the
    # height's y and h derivatives; then one entry of each is overwritten with -1.
    cw = [cr[0] - cl[0], cb[1] - ct[1], cr[2] - cl[2], cb[3] - ct[3]]
    ch = list(cw)
    cw[2] = np.where((p.l < g.l) & (p.r > g.r), -1.0, cw[2])
    ch[3] = np.where((p.t < g.t) & (p.b > g.b), -1.0, ch[3])
    grow = [2 * ccw * cw[k] + 2 * cch * ch[k] for k in range(4)]
    return np.stack([(2 * (gx - x) * c2 - grow[0] * d) / c2 ** 2, (2 * (gy - y) * c2 - grow[1] * d) / c2 ** 2,
                     grow[2] * d / c2 ** 2, grow[3] * d / c2 ** 2])


def ascent(kind: str, box: FloatArray | Sequence[FloatArray], target_box: FloatArray | Sequence[FloatArray],
           repairs: Collection[str] = ()) -> FloatArray:
    """The MATLAB ascent direction of the similarity `kind`, shape (4, n), in (x, y, w, h).

    `repairs` names corrections from `REPAIRS` to apply; none by default.
    """
    unknown = set(repairs) - set(REPAIRS)
    if unknown:
        raise ValueError(f"unknown repairs {sorted(unknown)}; valid: {', '.join(REPAIRS)}")
    p, g = _tblr(*box), _tblr(*target_box)
    if kind == "iou":
        return _to_xywh(_d_iou(p, g))
    if kind == "giou":
        return _to_xywh(_d_giou(p, g, repairs))
    direction = _d_distance(box, target_box, p, g, repairs) + _to_xywh(_d_iou(p, g))
    if kind == "diou":
        return direction
    if kind == "ciou":
        w, h = box[2], box[3]
        gap = np.arctan(target_box[2] / target_box[3]) - np.arctan(w / h)
        v = 4 / np.pi ** 2 * gap ** 2
        alpha = v / (1 - matlab_iou(p, g) + v + 0.0000001)  # MATLAB: with this constant
        # MATLAB: dv/dw and dv/dh without the factor 1 / (w^2 + h^2), as the paper says
        return direction + np.stack([0 * w, 0 * w, alpha * 8 / np.pi ** 2 * gap * h,
                                     alpha * -8 / np.pi ** 2 * gap * w])
    raise ValueError(f"the authors' code has gradients for iou, giou, diou, ciou; not {kind!r}")


def authors_gradient(kind: str, theta: FloatArray, target: FloatArray | Sequence[FloatArray],
                     repairs: Collection[str] = ()) -> tuple[FloatArray, FloatArray]:
    """Descent direction and IoU by the authors' MATLAB code, for `sandbox.optim.batch.regress`.

    `theta` (4, n) is (x, y, w, h); `target` holds the target corners (x1, y1, x2, y2).
    """
    tx1, ty1, tx2, ty2 = target
    target_box = ((tx1 + tx2) / 2, (ty1 + ty2) / 2, tx2 - tx1, ty2 - ty1)
    return -ascent(kind, theta, target_box, repairs), matlab_iou(_tblr(*theta), _tblr(*target_box))
