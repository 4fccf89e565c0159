"""Reference values of the bounding-box regression losses, transcribed from their papers.

This module is written independently of ``sandbox``: it never imports it, and it uses plain
scalar Python with the ``math`` module only, except for the oriented losses at the end, which use
numpy and scipy's 2 x 2 matrices as their papers and reference code do. Each function takes two boxes ``(x1, y1, x2, y2)``
and returns the LOSS (not the similarity) as a float, so the tests can compare the package's
values against these on a few box pairs.

Conventions, shared by every function:

* ``pred`` and ``target`` are 4-sequences ``(x1, y1, x2, y2)``. The target has ``x2 > x1`` and
  ``y2 > y1``. The predicted box may be inverted; its corners are first sorted
  (``x1, x2 = min, max``, the same for ``y``), as in Algorithm 2 of the GIoU paper
  (arXiv 1902.09630) and Algorithm 1 of the MPDIoU paper (arXiv 2307.07662).
* No epsilon is added anywhere unless the formula itself has one (only ``log_iou``'s clamp,
  the mmdetection convention). The official code bases add small constants (``eps`` in unions,
  heights, diagonals, powers); those are left out here, so on generic boxes the values below
  are the exact formulas.
* Where the paper and its official code disagree, the paper is followed and the disagreement
  is written in the function's docstring (and collected in ``DISAGREEMENTS`` below).

Each transcription is registered where it is written, by ``@transcription(name)`` above it,
under the name of its loss in ``sandbox.LOSSES``. ``variants=True`` adds its Inner-IoU and
Focaler-IoU variants (``inner_<name>``, ``focaler_<name>``), written once for every base below;
``checked_at`` names parameter values, away from the defaults, at which the tests compare too.

Each loss's own formula is written out in its function; ``_Pair`` only holds the shared
geometry of the two boxes (sorted corners, sizes, centres, intersection, union, IoU and the
smallest enclosing box).
"""
import math

__all__ = ["REFERENCE_LOSSES", "PARAMETER_CASES", "DISAGREEMENTS", "REFERENCE_ORIENTED_LOSSES",
           "ORIENTED_PARAMETER_CASES", "gwd_mmrotate"]


def _with_note(note):
    """Append a note shared by several losses (for instance on their official code) to the
    docstring of each."""
    def decorate(function):
        function.__doc__ = (function.__doc__ or "") + note
        return function
    return decorate


# ---------------------------------------------------------------------------------------------
# Shared geometry
# ---------------------------------------------------------------------------------------------
class _Pair:
    """The geometry of a predicted box and a target box, in the papers' notation.

    Attributes: the sorted predicted corners ``x1, y1, x2, y2`` and the target's ``x1_gt, ...``;
    sizes ``w, h, w_gt, h_gt``; centres ``cx, cy, cx_gt, cy_gt``; ``inter`` (|B ∩ B_gt|),
    ``union`` (|B ∪ B_gt|), ``iou``; the smallest enclosing box's width ``C_w`` and height
    ``C_h`` and its area ``C``.
    """

    def __init__(self, pred, target):
        px1, py1, px2, py2 = (float(v) for v in pred)
        # Algorithm 2 of the GIoU paper: x^p_1 = min(x^p_1, x^p_2), x^p_2 = max(x^p_1, x^p_2), ...
        self.x1, self.x2 = min(px1, px2), max(px1, px2)
        self.y1, self.y2 = min(py1, py2), max(py1, py2)
        self.x1_gt, self.y1_gt, self.x2_gt, self.y2_gt = (float(v) for v in target)

        self.w, self.h = self.x2 - self.x1, self.y2 - self.y1
        self.w_gt, self.h_gt = self.x2_gt - self.x1_gt, self.y2_gt - self.y1_gt
        self.cx, self.cy = (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2
        self.cx_gt, self.cy_gt = (self.x1_gt + self.x2_gt) / 2, (self.y1_gt + self.y2_gt) / 2

        inter_w = max(0.0, min(self.x2, self.x2_gt) - max(self.x1, self.x1_gt))
        inter_h = max(0.0, min(self.y2, self.y2_gt) - max(self.y1, self.y1_gt))
        self.inter = inter_w * inter_h
        self.union = self.w * self.h + self.w_gt * self.h_gt - self.inter
        self.iou = self.inter / self.union

        self.C_w = max(self.x2, self.x2_gt) - min(self.x1, self.x1_gt)
        self.C_h = max(self.y2, self.y2_gt) - min(self.y1, self.y1_gt)
        self.C = self.C_w * self.C_h


def _inner_iou(g, ratio):
    """IoU^inner of Inner-IoU (arXiv 2311.02877): the IoU of auxiliary boxes with the same
    centres and widths/heights scaled by ``ratio``.

        b_l^gt = x_c^gt - w^gt*ratio/2,  b_r^gt = x_c^gt + w^gt*ratio/2
        b_t^gt = y_c^gt - h^gt*ratio/2,  b_b^gt = y_c^gt + h^gt*ratio/2   (same for b_l, ... of B)
        inter = (min(b_r^gt, b_r) - max(b_l^gt, b_l)) * (min(b_b^gt, b_b) - max(b_t^gt, b_t))
        union = (w^gt * h^gt) * ratio^2 + (w * h) * ratio^2 - inter
        IoU^inner = inter / union

    Each extent of ``inter`` is clamped at 0, as in malagoutou/Inner-IoU ``innerciou.py`` and
    ``innersiou.py`` (``.clamp(0)``). The paper's equation for ``inter``, as recalled here, is
    printed without an explicit max(0, .) (its text could not be retrieved to confirm); the clamp
    is kept because IoU^inner is defined as the IoU of the auxiliary boxes, and an unclamped
    product of two negative extents would be a positive "intersection" of disjoint boxes. The
    clamp matters only when the auxiliary boxes do not overlap.
    """
    b_l, b_r = g.cx - g.w * ratio / 2, g.cx + g.w * ratio / 2
    b_t, b_b = g.cy - g.h * ratio / 2, g.cy + g.h * ratio / 2
    b_l_gt, b_r_gt = g.cx_gt - g.w_gt * ratio / 2, g.cx_gt + g.w_gt * ratio / 2
    b_t_gt, b_b_gt = g.cy_gt - g.h_gt * ratio / 2, g.cy_gt + g.h_gt * ratio / 2
    inter = (max(0.0, min(b_r_gt, b_r) - max(b_l_gt, b_l))
             * max(0.0, min(b_b_gt, b_b) - max(b_t_gt, b_t)))
    union = (g.w_gt * g.h_gt) * ratio ** 2 + (g.w * g.h) * ratio ** 2 - inter
    return inter / union


def _focaler_iou(iou_value, d, u):
    """IoU^focaler of Focaler-IoU (arXiv 2401.10525), the linear interval mapping:

        IoU^focaler = 0                    if IoU < d
                      (IoU - d) / (u - d)  if d <= IoU <= u
                      1                    if IoU > u

    (malagoutou/Focaler-IoU ``focaleriou.py``: ``((iou - d) / (u - d)).clamp(0, 1)``, the same.)
    """
    if iou_value < d:
        return 0.0
    if iou_value > u:
        return 1.0
    return (iou_value - d) / (u - d)


# ---------------------------------------------------------------------------------------------
# The registry of transcriptions, and the Inner-IoU and Focaler-IoU variants of a base loss
# ---------------------------------------------------------------------------------------------
REFERENCE_LOSSES = {}
"""Every transcription, by the name of its loss in ``sandbox.LOSSES``."""

PARAMETER_CASES = []
"""Specs with parameters away from the defaults (``'siou:theta=2'``), at which the tests compare
the package with the transcriptions too."""


def transcription(name, *, variants=False, checked_at=()):
    """Register the function below as the transcription of the loss ``name``.

    ``variants``: the loss is IoU-based, and ``inner_<name>`` and ``focaler_<name>`` are
    transcribed too, by ``_inner_variant`` and ``_focaler_variant``. ``checked_at``: parameter
    settings such as ``'theta=2'`` or ``'scale=1.5,theta=2'`` for ``PARAMETER_CASES``.
    """
    def register(function):
        REFERENCE_LOSSES[name] = function
        PARAMETER_CASES.extend(f"{name}:{parameters}" for parameters in checked_at)
        if variants:
            REFERENCE_LOSSES[f"inner_{name}"] = _inner_variant(function)
            REFERENCE_LOSSES[f"focaler_{name}"] = _focaler_variant(function)
        return function
    return register


_INNER_NOTE = """
    Inner-IoU (Zhang, Xu and Zhang, arXiv 2311.02877): L_Inner-X = L_X + IoU - IoU^inner, IoU^inner
    the IoU of auxiliary boxes with the same centres and sizes scaled by ``ratio`` (see
    ``_inner_iou``). malagoutou/Inner-IoU ``innerciou.py`` / ``innersiou.py`` compute the same
    thing as ``inner_iou - penalty`` (their default ratio is 1.0; the package's is 0.7). The
    other base parameters are passed to the base loss.
"""


def _inner_variant(base):
    """L_Inner-X = L_X + IoU - IoU^inner (Zhang, Xu and Zhang, arXiv 2311.02877), X = ``base``."""
    @_with_note(_INNER_NOTE)
    def inner(pred, target, ratio=0.7, **base_parameters):
        """Inner-IoU on the base loss: L_X + IoU - IoU^inner."""
        g = _Pair(pred, target)
        return base(pred, target, **base_parameters) + g.iou - _inner_iou(g, ratio)
    inner.__name__ = f"inner_{base.__name__}"
    return inner


_FOCALER_NOTE = """
    Focaler-IoU (Zhang and Zhang, arXiv 2401.10525): L_Focaler-X = L_X + IoU - IoU^focaler, with
    IoU^focaler = 0 for IoU < d, (IoU - d)/(u - d) for d <= IoU <= u, 1 for IoU > u (see
    ``_focaler_iou``; malagoutou/Focaler-IoU ``focaleriou.py`` writes it as a clamp, the same).
    The other base parameters are passed to the base loss.
"""


def _focaler_variant(base):
    """L_Focaler-X = L_X + IoU - IoU^focaler (Zhang and Zhang, arXiv 2401.10525), X = ``base``."""
    @_with_note(_FOCALER_NOTE)
    def focaler(pred, target, d=0.0, u=0.95, **base_parameters):
        """Focaler-IoU on the base loss: L_X + IoU - IoU^focaler."""
        g = _Pair(pred, target)
        return base(pred, target, **base_parameters) + g.iou - _focaler_iou(g.iou, d, u)
    focaler.__name__ = f"focaler_{base.__name__}"
    return focaler


# The variants' own parameters, on a few bases.
PARAMETER_CASES.extend(["inner_ciou:ratio=1.3", "inner_mpdiou:ratio=0.5,frame_width=4",
                        "focaler_giou:d=0.1,u=0.6", "focaler_siou:d=0.2,u=0.9,theta=3"])


# ---------------------------------------------------------------------------------------------
# IoU, GIoU, log-IoU
# ---------------------------------------------------------------------------------------------
@transcription("iou", variants=True)
def iou(pred, target):
    """IoU loss, 1 - IoU, IoU = |B ∩ B_gt| / |B ∪ B_gt| (Yu et al., UnitBox, arXiv 1608.01471;
    Rezatofighi et al., arXiv 1902.09630, Algorithm 2, L_IoU = 1 - IoU)."""
    g = _Pair(pred, target)
    return 1.0 - g.inter / g.union


@transcription("giou", variants=True)
def giou(pred, target):
    """GIoU loss (Rezatofighi et al., CVPR 2019, arXiv 1902.09630, Algorithm 2):

        GIoU = IoU - (C - U) / C,   L_GIoU = 1 - GIoU,

    C the area of the smallest enclosing box, U the union."""
    g = _Pair(pred, target)
    IoU = g.inter / g.union
    GIoU = IoU - (g.C - g.union) / g.C
    return 1.0 - GIoU


@transcription("log_iou", checked_at=["eps=0.01"])
def log_iou(pred, target, eps=1e-6):
    """UnitBox's IoU loss, -ln(IoU) (Yu et al., ACM MM 2016, arXiv 1608.01471), with IoU clamped
    below at ``eps`` as in mmdetection ``mmdet/models/losses/iou_loss.py`` (``iou_loss``:
    ``ious.clamp(min=eps)``, ``loss = -ious.log()``; default eps 1e-6):

        L = -ln(max(IoU, eps))"""
    g = _Pair(pred, target)
    return -math.log(max(g.iou, eps))


# ---------------------------------------------------------------------------------------------
# DIoU, CIoU
# ---------------------------------------------------------------------------------------------
@transcription("diou", variants=True)
def diou(pred, target):
    """DIoU loss (Zheng et al., AAAI 2020, arXiv 1911.08287, Eq. 6):

        L_DIoU = 1 - IoU + rho^2(b, b_gt) / c^2,

    rho the Euclidean distance between the centres b and b_gt, c the diagonal of the smallest
    enclosing box.

    Official code: Zzh-tju/DIoU-darknet ``src/box.c`` computes the DIoU loss gradient with
    rho^2/c^2 (matching the paper), but its ``box_diou`` metric returns IoU - (rho^2/c^2)^0.6 (the
    DIoU-NMS form with beta = 0.6). The paper's exponent 1 is used here.
    """
    g = _Pair(pred, target)
    rho2 = (g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
    c2 = g.C_w ** 2 + g.C_h ** 2
    return 1.0 - g.iou + rho2 / c2


def _ciou_alpha_v(g):
    """CIoU's v and alpha (arXiv 1911.08287, Eqs. 9 and 11), on the plain IoU:

        v = 4/pi^2 * (arctan(w_gt/h_gt) - arctan(w/h))^2,   alpha = v / ((1 - IoU) + v).

    For identical aspect ratios v = 0 and the term alpha*v is 0 (this avoids 0/0 only when also
    IoU = 1, i.e. identical boxes)."""
    v = 4 / math.pi ** 2 * (math.atan(g.w_gt / g.h_gt) - math.atan(g.w / g.h)) ** 2
    alpha = v / ((1 - g.iou) + v) if v > 0 else 0.0
    return alpha, v


@transcription("ciou", variants=True)
def ciou(pred, target, trade_off_gradient=False):
    """CIoU loss (Zheng et al., AAAI 2020, arXiv 1911.08287, Eqs. 9-11):

        L_CIoU = 1 - IoU + rho^2(b, b_gt)/c^2 + alpha*v,
        v = 4/pi^2 (arctan(w_gt/h_gt) - arctan(w/h))^2,   alpha = v / ((1 - IoU) + v).

    ``trade_off_gradient`` only changes gradients (alpha treated as a constant, and the paper's
    1/(w^2+h^2) dropped); it does not change the value, so it is accepted and ignored.

    Official code, and where it differs from this paper:
    * Zzh-tju/DIoU-darknet ``src/box.c`` ``box_ciou``: alpha = v / (1 - IoU + v + 1e-6), the paper
      up to the constant.
    * Zzh-tju/CIoU ``layers/modules/multibox_loss.py`` (``ciou``) follows the journal version
      (arXiv 2005.03572): alpha = 0 unless IoU > 0.5 (``S = (iou > 0.5)``), and it returns
      ``iou - u + alpha * v``, i.e. the alpha*v term with the opposite sign to the paper, then
      clamps to [-1, 1]. Neither the gate nor that sign is used here; the AAAI paper's formula is.
    * YOLOv5/YOLOv8 ``bbox_iou`` (and Jacobi93/Alpha-IoU ``bbox_iou``):
      alpha = v/(v - iou + 1 + eps) under ``torch.no_grad()``, the paper's value; they also add
      eps to the heights.
    """
    g = _Pair(pred, target)
    rho2 = (g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
    c2 = g.C_w ** 2 + g.C_h ** 2
    alpha, v = _ciou_alpha_v(g)
    return 1.0 - g.iou + rho2 / c2 + alpha * v


# ---------------------------------------------------------------------------------------------
# EIoU, Focal-EIoU
# ---------------------------------------------------------------------------------------------
@transcription("eiou", variants=True)
def eiou(pred, target):
    """EIoU loss (Zhang et al., "Focal and Efficient IOU Loss", arXiv 2101.08158, Eq. for L_EIOU):

        L_EIoU = 1 - IoU + rho^2(b, b_gt)/c^2 + rho^2(w, w_gt)/C_w^2 + rho^2(h, h_gt)/C_h^2,

    c the diagonal (c^2 = C_w^2 + C_h^2), C_w and C_h the width and height of the smallest
    enclosing box; rho(w, w_gt) = |w - w_gt|.

    (Instinct323/wiou ``iou.py`` ``_EIoU`` uses ((x - x_gt)/C_w)^2 + ((y - y_gt)/C_h)^2, centre
    offsets, in place of the width and height terms; that is not the EIoU paper's formula.)
    """
    g = _Pair(pred, target)
    rho2 = (g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
    c2 = g.C_w ** 2 + g.C_h ** 2
    return (1.0 - g.iou + rho2 / c2
            + (g.w - g.w_gt) ** 2 / g.C_w ** 2
            + (g.h - g.h_gt) ** 2 / g.C_h ** 2)


@transcription("focal_eiou", checked_at=["gamma=1.5"])
def focal_eiou(pred, target, gamma=0.5):
    """Focal-EIoU loss (Zhang et al., arXiv 2101.08158): L_Focal-EIoU = IoU^gamma * L_EIoU,
    gamma = 0.5 in the paper."""
    g = _Pair(pred, target)
    return g.iou ** gamma * eiou(pred, target)


# ---------------------------------------------------------------------------------------------
# SIoU
# ---------------------------------------------------------------------------------------------
@transcription("siou", variants=True, checked_at=["theta=2"])
def siou(pred, target, theta=4.0):
    """SIoU loss (Gevorgyan, arXiv 2205.12740):

    Angle cost   Lambda = 1 - 2 sin^2(arcsin(x) - pi/4),  x = c_h / sigma = sin(alpha),
                 sigma = sqrt((b_cx^gt - b_cx)^2 + (b_cy^gt - b_cy)^2),
                 c_h = max(b_cy^gt, b_cy) - min(b_cy^gt, b_cy)      (here c_h is the vertical
                 offset of the CENTRES, and c_w = max(b_cx^gt, b_cx) - min(b_cx^gt, b_cx)).
                 The paper minimises alpha if alpha <= pi/4 and otherwise beta = pi/2 - alpha, so
                 x = sin(beta) = c_w/sigma then. Public implementations (meituan/YOLOv6
                 ``yolov6/utils/figure_iou.py``, malagoutou/Inner-IoU ``innersiou.py``) do the
                 same: ``sin_alpha = where(sin_alpha_1 > sqrt(2)/2, sin_alpha_2, sin_alpha_1)``,
                 and write Lambda as cos(2 arcsin(x) - pi/2). Since Lambda = sin(2 alpha) =
                 sin(2 beta), the choice of angle does not change the value.
    Distance cost  Delta = sum_{t=x,y} (1 - e^{-gamma rho_t}),  gamma = 2 - Lambda,
                 rho_x = ((b_cx^gt - b_cx)/c_w)^2,  rho_y = ((b_cy^gt - b_cy)/c_h)^2, where now
                 c_w, c_h are the width and height of the smallest ENCLOSING box (as in the
                 paper's Fig. 3 and in YOLOv6's ``rho_x = (s_cw / cw) ** 2`` with ``cw`` the
                 convex width).
    Shape cost   Omega = sum_{t=w,h} (1 - e^{-omega_t})^theta,
                 omega_w = |w - w_gt| / max(w, w_gt),  omega_h = |h - h_gt| / max(h, h_gt).
    Loss         L_SIoU = 1 - IoU + (Delta + Omega) / 2.

    (Public code hard-codes theta = 4 and adds eps to the centre offsets and heights.)
    """
    g = _Pair(pred, target)
    # angle cost
    sigma = math.sqrt((g.cx_gt - g.cx) ** 2 + (g.cy_gt - g.cy) ** 2)
    c_h = max(g.cy_gt, g.cy) - min(g.cy_gt, g.cy)
    c_w = max(g.cx_gt, g.cx) - min(g.cx_gt, g.cx)
    x = c_h / sigma                      # sin(alpha)
    if math.asin(x) > math.pi / 4:       # minimise beta = pi/2 - alpha instead
        x = c_w / sigma                  # sin(beta)
    Lambda = 1 - 2 * math.sin(math.asin(x) - math.pi / 4) ** 2
    # distance cost, normalised by the enclosing box
    rho_x = ((g.cx_gt - g.cx) / g.C_w) ** 2
    rho_y = ((g.cy_gt - g.cy) / g.C_h) ** 2
    gamma = 2 - Lambda
    Delta = (1 - math.exp(-gamma * rho_x)) + (1 - math.exp(-gamma * rho_y))
    # shape cost
    omega_w = abs(g.w - g.w_gt) / max(g.w, g.w_gt)
    omega_h = abs(g.h - g.h_gt) / max(g.h, g.h_gt)
    Omega = (1 - math.exp(-omega_w)) ** theta + (1 - math.exp(-omega_h)) ** theta
    return 1.0 - g.iou + (Delta + Omega) / 2


# ---------------------------------------------------------------------------------------------
# alpha-IoU family
# ---------------------------------------------------------------------------------------------
_ALPHA_IOU_CODE_NOTE = """
    Jacobi93/Alpha-IoU ``utils/general.py`` (``bbox_alpha_iou``, called with alpha=3, CIoU=True
    from ``utils/loss.py``) differs from the paper as follows; the paper is followed here:
    * The distance term of alpha-DIoU/alpha-CIoU is computed as
      (|dx|^{2a} + |dy|^{2a}) / 2^{2a}  /  (C_w^{2a} + C_h^{2a})
      (dx, dy twice the centre offsets),
      not (rho^2/c^2)^a = ((dx^2 + dy^2)/4)^a / (C_w^2 + C_h^2)^a; the two agree only at a = 1.
    * It raises (IoU + eps), ((C - U)/C + eps) and (beta*v + eps) to the power, adds eps to the
      heights and the union, and takes C = max(C_w*C_h, U) (no effect on valid boxes).
    * beta = v / ((1 + eps) - IoU + v) uses the plain IoU (inter/union), not IoU^a, under
      ``torch.no_grad()``; the same plain-IoU beta is used here.
"""


@transcription("alpha_iou", checked_at=["alpha=0.5"])
@_with_note(_ALPHA_IOU_CODE_NOTE)
def alpha_iou(pred, target, alpha=3.0):
    """alpha-IoU loss (He et al., NeurIPS 2021, arXiv 2110.13675, Table 1): 1 - IoU^alpha.
    """
    g = _Pair(pred, target)
    return 1.0 - g.iou ** alpha


@transcription("alpha_giou", checked_at=["alpha=2"])
@_with_note(_ALPHA_IOU_CODE_NOTE)
def alpha_giou(pred, target, alpha=3.0):
    """alpha-GIoU loss (He et al., arXiv 2110.13675, Table 1):
    1 - IoU^alpha + (|C \\ (B ∪ B_gt)| / |C|)^alpha = 1 - IoU^alpha + ((C - U)/C)^alpha.
    """
    g = _Pair(pred, target)
    return 1.0 - g.iou ** alpha + ((g.C - g.union) / g.C) ** alpha


@transcription("alpha_diou", checked_at=["alpha=0.5"])
@_with_note(_ALPHA_IOU_CODE_NOTE)
def alpha_diou(pred, target, alpha=3.0):
    """alpha-DIoU loss (He et al., arXiv 2110.13675, Table 1):
    1 - IoU^alpha + rho^{2 alpha}(b, b_gt) / c^{2 alpha}  (= (rho^2/c^2)^alpha).
    """
    g = _Pair(pred, target)
    rho2 = (g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
    c2 = g.C_w ** 2 + g.C_h ** 2
    return 1.0 - g.iou ** alpha + rho2 ** alpha / c2 ** alpha


@transcription("alpha_ciou", checked_at=["alpha=2"])
@_with_note(_ALPHA_IOU_CODE_NOTE)
def alpha_ciou(pred, target, alpha=3.0, trade_off_gradient=False):
    """alpha-CIoU loss (He et al., arXiv 2110.13675, Table 1):
    1 - IoU^alpha + rho^{2 alpha}(b, b_gt) / c^{2 alpha} + (beta v)^alpha,
    v = 4/pi^2 (arctan(w_gt/h_gt) - arctan(w/h))^2, beta = v / ((1 - IoU) + v) (CIoU's trade-off
    parameter, on the plain IoU). ``trade_off_gradient`` affects gradients only; ignored.
    """
    g = _Pair(pred, target)
    rho2 = (g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
    c2 = g.C_w ** 2 + g.C_h ** 2
    beta, v = _ciou_alpha_v(g)
    return 1.0 - g.iou ** alpha + rho2 ** alpha / c2 ** alpha + (beta * v) ** alpha


# ---------------------------------------------------------------------------------------------
# Wise-IoU v1, MPDIoU, Shape-IoU
# ---------------------------------------------------------------------------------------------
@transcription("wiou")
def wiou(pred, target):
    """Wise-IoU v1 (Tong et al., arXiv 2301.10051, Eqs. for L_WIoUv1 and R_WIoU):

        L_WIoUv1 = R_WIoU * L_IoU,
        R_WIoU = exp( ((x - x_gt)^2 + (y - y_gt)^2) / (W_g^2 + H_g^2)^* ),

    (x, y) the centres, W_g, H_g the size of the smallest enclosing box; the * (detached
    denominator) affects gradients only. Same as Instinct323/wiou ``iou.py`` ``_WIoU``:
    ``torch.exp(l2_center / l2_box.detach()) * (1 - IoU)``.
    """
    g = _Pair(pred, target)
    R_WIoU = math.exp(((g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2) / (g.C_w ** 2 + g.C_h ** 2))
    return R_WIoU * (1.0 - g.iou)


@transcription("mpdiou", variants=True, checked_at=["frame_width=4,frame_height=3"])
def mpdiou(pred, target, frame_width=10.0, frame_height=10.0):
    """MPDIoU loss (Ma and Xu, arXiv 2307.07662, Algorithm 1):

        d1^2 = (x1^prd - x1^gt)^2 + (y1^prd - y1^gt)^2     (top-left corners)
        d2^2 = (x2^prd - x2^gt)^2 + (y2^prd - y2^gt)^2     (bottom-right corners)
        MPDIoU = IoU - d1^2/(w^2 + h^2) - d2^2/(w^2 + h^2),   L_MPDIoU = 1 - MPDIoU,

    w, h the width and height of the input image (``frame_width``, ``frame_height``). The
    algorithm itself first orders the predicted corners, as here."""
    g = _Pair(pred, target)
    w, h = frame_width, frame_height
    d1_2 = (g.x1 - g.x1_gt) ** 2 + (g.y1 - g.y1_gt) ** 2
    d2_2 = (g.x2 - g.x2_gt) ** 2 + (g.y2 - g.y2_gt) ** 2
    MPDIoU = g.iou - d1_2 / (w ** 2 + h ** 2) - d2_2 / (w ** 2 + h ** 2)
    return 1.0 - MPDIoU


@transcription("shape_iou", variants=True, checked_at=["scale=1.5,theta=2"])
def shape_iou(pred, target, scale=0.0, theta=4.0):
    """Shape-IoU loss (Zhang and Zhang, arXiv 2312.17663), as in malagoutou/Shape-IoU
    ``shapeiou.py``:

        ww = 2 (w_gt)^scale / ((w_gt)^scale + (h_gt)^scale)
        hh = 2 (h_gt)^scale / ((w_gt)^scale + (h_gt)^scale)
        distance^shape = hh (x_c - x_c^gt)^2 / c^2 + ww (y_c - y_c^gt)^2 / c^2
        omega_w = hh |w - w_gt| / max(w, w_gt),   omega_h = ww |h - h_gt| / max(h, h_gt)
        Omega^shape = sum_{t=w,h} (1 - e^{-omega_t})^theta
        L_Shape-IoU = 1 - IoU + distance^shape + 0.5 Omega^shape,

    c the diagonal of the smallest enclosing box; ww, hh from the target's size. The official
    code hard-codes theta = 4 (here the ``theta`` parameter), adds eps to the union and to c^2,
    and returns the similarity IoU - distance - 0.5*shape_cost (the loss is 1 minus it). The
    stored version of ``shapeiou.py`` also has a syntax slip in its signature
    (``scale=0  eps=1e-7``, a missing comma), which does not bear on the formula.
    """
    g = _Pair(pred, target)
    ww = 2 * g.w_gt ** scale / (g.w_gt ** scale + g.h_gt ** scale)
    hh = 2 * g.h_gt ** scale / (g.w_gt ** scale + g.h_gt ** scale)
    c2 = g.C_w ** 2 + g.C_h ** 2
    distance_shape = hh * (g.cx - g.cx_gt) ** 2 / c2 + ww * (g.cy - g.cy_gt) ** 2 / c2
    omega_w = hh * abs(g.w - g.w_gt) / max(g.w, g.w_gt)
    omega_h = ww * abs(g.h - g.h_gt) / max(g.h, g.h_gt)
    Omega_shape = (1 - math.exp(-omega_w)) ** theta + (1 - math.exp(-omega_h)) ** theta
    return 1.0 - g.iou + distance_shape + 0.5 * Omega_shape


# ---------------------------------------------------------------------------------------------
# NWD
# ---------------------------------------------------------------------------------------------
@transcription("nwd", checked_at=["constant=12.8"])
def nwd(pred, target, constant=1.0):
    """Normalized Gaussian Wasserstein Distance (Wang et al., arXiv 2110.13389, Eqs. 4-6): each box
    is the Gaussian N([cx, cy], diag(w^2/4, h^2/4)), and between two such

        W_2^2(N_a, N_b) = || ([cx_a, cy_a, w_a/2, h_a/2]) - ([cx_b, cy_b, w_b/2, h_b/2]) ||_2^2
        NWD = exp(-sqrt(W_2^2) / C),   loss = 1 - NWD.

    C is a constant, the dataset's mean absolute size in the paper (12.8 for AI-TOD)."""
    g = _Pair(pred, target)
    w2 = ((g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
          + (g.w / 2 - g.w_gt / 2) ** 2 + (g.h / 2 - g.h_gt / 2) ** 2)
    return 1.0 - math.exp(-math.sqrt(w2) / constant)


# ---------------------------------------------------------------------------------------------
# Coordinate losses
# ---------------------------------------------------------------------------------------------
def _coordinates(box, coords):
    """The four numbers a coordinate loss compares: ``xyxy`` (x1, y1, x2, y2), ``cxcywh``
    (centre x, centre y, width, height) or ``xywh`` (x1, y1, width, height)."""
    x1, y1, x2, y2 = box
    if coords == "xyxy":
        return (x1, y1, x2, y2)
    if coords == "cxcywh":
        return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    if coords == "xywh":
        return (x1, y1, x2 - x1, y2 - y1)
    raise ValueError(f"unknown coords {coords!r}; expected 'xyxy', 'cxcywh' or 'xywh'")


def _differences(pred, target, coords):
    g = _Pair(pred, target)
    p = _coordinates((g.x1, g.y1, g.x2, g.y2), coords)
    t = _coordinates((g.x1_gt, g.y1_gt, g.x2_gt, g.y2_gt), coords)
    return [pi - ti for pi, ti in zip(p, t)]


@transcription("smooth_l1", checked_at=["beta=0.5", "beta=2,coords=cxcywh"])
def smooth_l1(pred, target, beta=1.0, coords="xyxy"):
    """Smooth L1 (Girshick, Fast R-CNN, ICCV 2015, arXiv 1504.08083, Eq. 3), summed over the four
    coordinate differences x:

        smooth_L1(x) = 0.5 x^2 / beta   if |x| < beta,   |x| - 0.5 beta   otherwise.

    The paper has beta = 1 and applies it to its (t_x, t_y, t_w, t_h) regression targets; the
    ``beta`` transition point is the Detectron / PyTorch generalisation, and here the differences
    are of the plain coordinates in ``coords``."""
    total = 0.0
    for x in _differences(pred, target, coords):
        total += 0.5 * x ** 2 / beta if abs(x) < beta else abs(x) - 0.5 * beta
    return total


@transcription("l1", checked_at=["coords=cxcywh"])
def l1(pred, target, coords="xyxy"):
    """L1 loss: the sum of the absolute coordinate differences (in ``coords``)."""
    return sum(abs(x) for x in _differences(pred, target, coords))


@transcription("l2", checked_at=["coords=xywh"])
def l2(pred, target, coords="xyxy"):
    """L2 loss: the sum of the squared coordinate differences (in ``coords``)."""
    return sum(x ** 2 for x in _differences(pred, target, coords))


# ---------------------------------------------------------------------------------------------
# The losses detectors ship: mmdetection's CIoU, Wise-IoU v2 and v3, PIoU, Bounded IoU, UIoU,
# Balanced L1 (issue 20), each in its reference code's own form, in scalar Python
# ---------------------------------------------------------------------------------------------
@transcription("ciou_mmdet")
def ciou_mmdet(pred, target):
    """mmdetection ``mmdet/models/losses/iou_loss.py`` ``ciou_loss``, line by line, with eps = 0:

        ious = overlap / union
        c2 = cw**2 + ch**2;  rho2 = left + right  (squared centre offsets, via sums / 4)
        v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2
        with torch.no_grad(): alpha = (ious > 0.5).float() * v / (1 - ious + v)
        cious = ious - (rho2 / c2 + alpha * v);  loss = 1 - cious.clamp(min=-1.0, max=1.0)

    (the journal version of the DIoU paper, arXiv 2005.03572). 0/0 in alpha (identical boxes)
    is taken as 0."""
    g = _Pair(pred, target)
    b1_x1, b1_y1, b1_x2, b1_y2 = g.x1, g.y1, g.x2, g.y2
    b2_x1, b2_y1, b2_x2, b2_y2 = g.x1_gt, g.y1_gt, g.x2_gt, g.y2_gt
    ious = g.inter / g.union
    c2 = g.C_w ** 2 + g.C_h ** 2
    left = ((b2_x1 + b2_x2) - (b1_x1 + b1_x2)) ** 2 / 4
    right = ((b2_y1 + b2_y2) - (b1_y1 + b1_y2)) ** 2 / 4
    rho2 = left + right
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1
    v = 4 / math.pi ** 2 * (math.atan(w2 / h2) - math.atan(w1 / h1)) ** 2
    S = 1.0 if ious > 0.5 else 0.0
    alpha = S * v / (1 - ious + v) if v > 0 else 0.0
    cious = ious - (rho2 / c2 + alpha * v)
    return 1 - min(max(cious, -1.0), 1.0)


def _wise_iou_v1_parts(g):
    """Instinct323/wiou ``iou.py``: ``iou`` (there the IoU LOSS, 1 - s_inter / s_union) and
    ``dist = exp(l2_center / l2_box)``, the v1 factor R_WIoU."""
    l_iou = 1 - g.inter / g.union
    l2_center = (g.cx - g.cx_gt) ** 2 + (g.cy - g.cy_gt) ** 2
    l2_box = g.C_w ** 2 + g.C_h ** 2
    return l_iou, math.exp(l2_center / l2_box)


@transcription("wiou_v2", checked_at=["iou_mean=0.4", "iou_mean=0.7,gamma=1"])
def wiou_v2(pred, target, iou_mean=1.0, gamma=0.5):
    """Wise-IoU v2 (Tong et al., arXiv 2301.10051): L_WIoUv2 = (L_IoU* / mean(L_IoU))^gamma L_WIoUv1,
    gamma = 0.5. Instinct323/wiou ``iou.py`` ``_scaled_loss`` with ``monotonous=True``:
    ``beta = self.iou.detach() / self.iou_mean; loss *= beta.sqrt()`` (gamma fixed at 0.5 there).
    The running mean ``iou_mean`` is given (the state the runners carry)."""
    g = _Pair(pred, target)
    l_iou, dist = _wise_iou_v1_parts(g)
    beta = l_iou / iou_mean
    return beta ** gamma * dist * l_iou


@transcription("wiou_v3", checked_at=["iou_mean=0.3", "iou_mean=0.8,alpha=1.7,delta=2.7"])
def wiou_v3(pred, target, iou_mean=1.0, alpha=1.9, delta=3.0):
    """Wise-IoU v3 (Tong et al., arXiv 2301.10051): L_WIoUv3 = r L_WIoUv1,
    r = beta / (delta alpha^(beta - delta)), beta = L_IoU* / mean(L_IoU). Instinct323/wiou ``iou.py``
    ``_scaled_loss`` with ``monotonous=False``: ``divisor = self.delta * torch.pow(self.alpha, beta -
    self.delta); loss *= beta / divisor`` (alpha 1.9, delta 3 in its v1 branch; 1.7, 2.7 in master)."""
    g = _Pair(pred, target)
    l_iou, dist = _wise_iou_v1_parts(g)
    beta = l_iou / iou_mean
    divisor = delta * alpha ** (beta - delta)
    return beta / divisor * dist * l_iou


def _piou_P(g):
    """fppccc/Powerful-IoU ``YOLOv8/piou.py``:

        dw1 = |min(b1_x2, b1_x1) - min(b2_x2, b2_x1)|,  dw2 = |max(b1_x2, b1_x1) - max(b2_x2, b2_x1)|
        dh1, dh2 the same in y;  P = ((dw1 + dw2) / |w2| + (dh1 + dh2) / |h2|) / 4   (box2 the target)"""
    dw1 = abs(min(g.x2, g.x1) - min(g.x2_gt, g.x1_gt))
    dw2 = abs(max(g.x2, g.x1) - max(g.x2_gt, g.x1_gt))
    dh1 = abs(min(g.y2, g.y1) - min(g.y2_gt, g.y1_gt))
    dh2 = abs(max(g.y2, g.y1) - max(g.y2_gt, g.y1_gt))
    return ((dw1 + dw2) / abs(g.w_gt) + (dh1 + dh2) / abs(g.h_gt)) / 4


@transcription("piou")
def piou(pred, target):
    """PIoU (Liu et al., Powerful-IoU, Neural Networks 2024), as fppccc/Powerful-IoU ``piou.py``
    (``PIoU=True``) without its eps: ``L_v1 = 1 - iou - torch.exp(-P ** 2) + 1``."""
    g = _Pair(pred, target)
    P = _piou_P(g)
    return 1 - g.iou - math.exp(-P ** 2) + 1


@transcription("piou_v2", checked_at=["lambda_=0.8"])
def piou_v2(pred, target, lambda_=1.3):
    """PIoU v2, as ``piou.py`` (``PIoU2=True``, ``Lambda=1.3``): ``q = torch.exp(-P); x = q * Lambda;
    return 3 * x * torch.exp(-x ** 2) * L_v1``."""
    g = _Pair(pred, target)
    P = _piou_P(g)
    L_v1 = 1 - g.iou - math.exp(-P ** 2) + 1
    q = math.exp(-P)
    x = q * lambda_
    return 3 * x * math.exp(-x ** 2) * L_v1


@transcription("bounded_iou", checked_at=["beta=0.5,eps=0"])
def bounded_iou(pred, target, beta=0.2, eps=1e-3):
    """Bounded IoU (Tychsen-Smith and Petersson, CVPR 2018, arXiv 1711.00164), as mmdetection
    ``mmdet/models/losses/iou_loss.py`` ``bounded_iou_loss``:

        dx = target_ctrx - pred_ctrx;  dy likewise
        loss_dx = 1 - max((target_w - 2|dx|) / (target_w + 2|dx| + eps), 0);  loss_dy likewise
        loss_dw = 1 - min(target_w / (pred_w + eps), pred_w / (target_w + eps));  loss_dh likewise
        loss = where(loss_comb < beta, 0.5 loss_comb^2 / beta, loss_comb - 0.5 beta)

    summed over the four here (mmdetection's reduction then averages over them). A zero-width
    prediction with eps = 0 (target_w / 0) is taken as +inf, so the min is 0."""
    g = _Pair(pred, target)
    dx, dy = g.cx_gt - g.cx, g.cy_gt - g.cy
    loss_dx = 1 - max((g.w_gt - 2 * abs(dx)) / (g.w_gt + 2 * abs(dx) + eps), 0.0)
    loss_dy = 1 - max((g.h_gt - 2 * abs(dy)) / (g.h_gt + 2 * abs(dy) + eps), 0.0)
    ratio_w = g.w_gt / (g.w + eps) if g.w + eps > 0 else math.inf
    ratio_h = g.h_gt / (g.h + eps) if g.h + eps > 0 else math.inf
    loss_dw = 1 - min(ratio_w, g.w / (g.w_gt + eps))
    loss_dh = 1 - min(ratio_h, g.h / (g.h_gt + eps))
    total = 0.0
    for x in (loss_dx, loss_dy, loss_dw, loss_dh):
        total += 0.5 * x * x / beta if x < beta else x - 0.5 * beta
    return total


@transcription("uiou", checked_at=["ratio=2", "ratio=0.5"])
def uiou(pred, target, ratio=1.0):
    """Unified-IoU (Luo et al., arXiv 2408.06636) on the IoU loss, as the authors' ``bbox_iou`` with
    ``UIoU=True``: both boxes scaled about their centres,

        ww1, hh1, ww2, hh2 = w1 * ratio, h1 * ratio, w2 * ratio, h2 * ratio
        bb1_x1, bb1_x2 = bb1_xc - ww1 / 2, bb1_xc + ww1 / 2   (and y, and box 2)

    then the IoU of the scaled boxes; loss 1 - IoU. (``ratio`` moves from 2 to 0.5 over training
    there: ``-0.005 * epoch + 2`` over 300 epochs.)"""
    g = _Pair(pred, target)
    ww1, hh1, ww2, hh2 = g.w * ratio, g.h * ratio, g.w_gt * ratio, g.h_gt * ratio
    bb1_x1, bb1_x2, bb1_y1, bb1_y2 = g.cx - ww1 / 2, g.cx + ww1 / 2, g.cy - hh1 / 2, g.cy + hh1 / 2
    bb2_x1, bb2_x2 = g.cx_gt - ww2 / 2, g.cx_gt + ww2 / 2
    bb2_y1, bb2_y2 = g.cy_gt - hh2 / 2, g.cy_gt + hh2 / 2
    inter = (max(0.0, min(bb1_x2, bb2_x2) - max(bb1_x1, bb2_x1))
             * max(0.0, min(bb1_y2, bb2_y2) - max(bb1_y1, bb2_y1)))
    union = ww1 * hh1 + ww2 * hh2 - inter
    return 1 - inter / union


@transcription("balanced_l1", checked_at=["alpha=1,gamma=2,beta=0.5", "coords=cxcywh"])
def balanced_l1(pred, target, alpha=0.5, gamma=1.5, beta=1.0, coords="xyxy"):
    """Balanced L1 (Pang et al., Libra R-CNN, CVPR 2019, arXiv 1904.02701), as mmdetection
    ``mmdet/models/losses/balanced_l1_loss.py`` ``balanced_l1_loss``, summed over the four
    coordinate differences (in ``coords``):

        diff = |pred - target|;  b = e^(gamma / alpha) - 1
        loss = alpha / b * (b * diff + 1) * log(b * diff / beta + 1) - alpha * diff   if diff < beta
               gamma * diff + gamma / b - alpha * beta                              otherwise"""
    b = math.e ** (gamma / alpha) - 1
    total = 0.0
    for x in _differences(pred, target, coords):
        diff = abs(x)
        if diff < beta:
            total += alpha / b * (b * diff + 1) * math.log(b * diff / beta + 1) - alpha * diff
        else:
            total += gamma * diff + gamma / b - alpha * beta
    return total


# Where the official code differs from the paper (the paper is followed in every case).
DISAGREEMENTS = {
    "diou": "Zzh-tju/DIoU-darknet src/box.c box_diou returns IoU - (rho^2/c^2)^0.6 "
            "(DIoU-NMS form); its DIoU loss gradient and the paper use exponent 1.",
    "ciou": "Zzh-tju/CIoU layers/modules/multibox_loss.py gates alpha with IoU > 0.5 (journal "
            "version, arXiv 2005.03572) and adds alpha*v with the opposite sign "
            "(iou - u + alpha*v), then clamps to [-1, 1].",
    "alpha_diou": "Jacobi93/Alpha-IoU bbox_alpha_iou uses (|dx|^2a + |dy|^2a)/2^2a / "
                  "(C_w^2a + C_h^2a) instead of (rho^2/c^2)^a; equal only for a = 1.",
    "alpha_ciou": "Same distance-term difference as alpha_diou; eps inside every power.",
    "inner_*": "Official code clamps each extent of the auxiliary intersection at 0; the paper's "
               "inter equation appears without max(0, .) (not confirmed). The clamp is kept, since "
               "IoU^inner is the IoU of the auxiliary boxes. Default ratio is 1.0 in the code.",
    "shape_iou": "Official code hard-codes the shape-cost exponent 4 (theta here) and adds eps.",
    "wiou_v2": "Instinct323/wiou fixes gamma at 0.5 (beta.sqrt()); its master branch updates the running "
               "mean with momentum 1e-2, its v1 branch with 1 - 0.05^(1/(n t)), the paper's rule.",
    "wiou_v3": "Instinct323/wiou master uses alpha 1.7, delta 2.7; its v1 branch and the paper 1.9 and 3.",
    "bounded_iou": "mmdetection adds eps = 1e-3 to the denominators (kept as the default) and averages the "
                   "four terms; the sum is taken here.",
}


# =============================================================================================
# Oriented losses, on boxes (cx, cy, w, h, theta)
# =============================================================================================
# The Gaussian losses are written as their papers and reference code write them: 2 x 2 matrices,
# with numpy.linalg (inverse, determinant) and scipy.linalg.sqrtm (the matrix square root), rather
# than the package's closed forms in the boxes' eigen-frames. Each function takes two 5-sequences
# (cx, cy, w, h, theta), theta in radians, and returns the loss as a float; registered by
# ``@oriented_transcription(name)`` under the name of its loss in
# ``sandbox.losses.oriented.ORIENTED_LOSSES``, with parameter settings away from the defaults in
# ``ORIENTED_PARAMETER_CASES``.
import numpy  # noqa: E402  (the oriented section alone uses matrices)
import scipy.linalg  # noqa: E402

REFERENCE_ORIENTED_LOSSES = {}
"""Every transcription of an oriented loss, by its name in ``ORIENTED_LOSSES``."""

ORIENTED_PARAMETER_CASES = []
"""(name, parameters) away from the defaults, at which the tests compare too."""


def oriented_transcription(name, checked_at=()):
    """Register the function below as the transcription of the oriented loss ``name``;
    ``checked_at``: dicts of parameters for ``ORIENTED_PARAMETER_CASES``."""
    def register(function):
        REFERENCE_ORIENTED_LOSSES[name] = function
        ORIENTED_PARAMETER_CASES.extend((name, dict(parameters)) for parameters in checked_at)
        return function
    return register


def _mean_and_sigma(box, scale):
    """mmrotate's ``xy_wh_r_2_xy_sigma`` (scale 1/4: S = diag(w, h) / 2, Sigma = R S^2 R^T) and
    ultralytics' ``_get_covariance_matrix`` (scale 1/12), as matrices: mu, Sigma = R diag(s w^2, s h^2) R^T.
    mmrotate clamps w and h to [1e-7, 1e7]; not here."""
    cx, cy, w, h, theta = (float(v) for v in box)
    rotation = numpy.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return numpy.array([cx, cy]), rotation @ numpy.diag([scale * w * w, scale * h * h]) @ rotation.T


_SCALES = {"mmrotate": 1 / 4, "probiou": 1 / 12}


def _postprocess(distance, fun, tau):
    """mmrotate's ``postprocess``: log1p, sqrt or nothing, then 1 - 1 / (tau + .) if tau >= 1."""
    distance = {"log1p": math.log1p, "sqrt": math.sqrt, "none": lambda d: d}[fun](distance)
    return 1 - 1 / (tau + distance) if tau >= 1.0 else distance


@oriented_transcription("rotated_l1")
def rotated_l1(pred, target):
    """L1 on the five raw parameters: |cx - cx_gt| + |cy - cy_gt| + |w - w_gt| + |h - h_gt| + |theta - theta_gt|."""
    return sum(abs(float(p) - float(t)) for p, t in zip(pred, target))


@oriented_transcription("gwd", checked_at=[{"fun": "sqrt", "tau": 2.0}, {"fun": "none", "tau": 0.0},
                                           {"normalize": True}, {"convention": "probiou"}])
def gwd(pred, target, fun="log1p", tau=1.0, normalize=False, convention="mmrotate"):
    """GWD (Yang et al., ICML 2021, arXiv 2101.11952, Eqs. 4 and 9): the squared 2-Wasserstein
    distance between N(mu_p, Sigma_p) and N(mu_t, Sigma_t),

        d^2 = ||mu_p - mu_t||_2^2 + Tr(Sigma_p + Sigma_t - 2 (Sigma_p^1/2 Sigma_t Sigma_p^1/2)^1/2),

    with explicit matrix square roots, and the loss 1 - 1 / (tau + f(d^2)). ``normalize``:
    mmrotate's ``gwd_loss`` divides d by 2 (det Sigma_p det Sigma_t)^(1/8), so d^2 by its square.
    """
    mu_p, sigma_p = _mean_and_sigma(pred, _SCALES[convention])
    mu_t, sigma_t = _mean_and_sigma(target, _SCALES[convention])
    root_p = scipy.linalg.sqrtm(sigma_p).real
    coupling = scipy.linalg.sqrtm(root_p @ sigma_t @ root_p).real
    d2 = float((mu_p - mu_t) @ (mu_p - mu_t) + numpy.trace(sigma_p + sigma_t - 2 * coupling))
    d2 = max(d2, 0.0)
    if normalize:
        d2 = d2 / (2 * (numpy.linalg.det(sigma_p) * numpy.linalg.det(sigma_t)) ** (1 / 8)) ** 2
    return _postprocess(d2, fun, tau)


def gwd_mmrotate(pred, target, fun="log1p", tau=1.0, alpha=1.0, normalize=True):
    """mmrotate's ``gwd_loss`` as it stands (mmrotate/models/losses/gaussian_dist_loss.py), translated
    from torch line by line, for one pair and without its clamps' floors at 1e-7. Not the paper's form:
    f is applied to d, not d^2, so it equals ``gwd`` with f = sqrt where mmrotate has fun='none'."""
    xy_p, sigma_p = _mean_and_sigma(pred, 1 / 4)
    xy_t, sigma_t = _mean_and_sigma(target, 1 / 4)
    xy_distance = float(((xy_p - xy_t) ** 2).sum())
    whr_distance = numpy.trace(sigma_p) + numpy.trace(sigma_t)
    _t_tr = numpy.trace(sigma_p @ sigma_t)
    _t_det_sqrt = math.sqrt(max(numpy.linalg.det(sigma_p) * numpy.linalg.det(sigma_t), 0.0))
    whr_distance = whr_distance + (-2) * math.sqrt(max(_t_tr + 2 * _t_det_sqrt, 0.0))
    distance = math.sqrt(max(xy_distance + alpha * alpha * whr_distance, 0.0))
    if normalize:
        scale = 2 * max(math.sqrt(math.sqrt(_t_det_sqrt)), 1e-7)
        distance = distance / scale
    return _postprocess(distance, fun, tau)


def _kl(mu_0, sigma_0, mu_1, sigma_1):
    """D_KL(N_0 || N_1) = 1/2 (Tr(Sigma_1^-1 Sigma_0) + (mu_1 - mu_0)^T Sigma_1^-1 (mu_1 - mu_0) - 2
    + ln(det Sigma_1 / det Sigma_0)), the textbook form the KLD paper uses."""
    inverse = numpy.linalg.inv(sigma_1)
    d = mu_1 - mu_0
    return 0.5 * float(numpy.trace(inverse @ sigma_0) + d @ inverse @ d - 2
                       + math.log(numpy.linalg.det(sigma_1) / numpy.linalg.det(sigma_0)))


@oriented_transcription("kld", checked_at=[{"direction": "pred_target"}, {"direction": "symmetric"},
                                           {"fun": "sqrt", "tau": 2.0}, {"sqrt": False, "tau": 0.0, "fun": "none"},
                                           {"direction": "symmetric", "sqrt": False}])
def kld(pred, target, direction="target_pred", fun="log1p", tau=1.0, sqrt=True, convention="mmrotate"):
    """KLD (Yang et al., NeurIPS 2021, arXiv 2106.01883): D_KL between the boxes' Gaussians, then
    mmrotate's ``kld_loss`` / ``jd_loss`` post-processing: sqrt (if ``sqrt``), f, 1 - 1 / (tau + f).
    ``target_pred`` is D_KL(N_t || N_p), which mmrotate's ``kld_loss`` computes (it inverts Sigma_p);
    ``symmetric`` is mmrotate's ``jd_loss``, the mean of both directions."""
    mu_p, sigma_p = _mean_and_sigma(pred, _SCALES[convention])
    mu_t, sigma_t = _mean_and_sigma(target, _SCALES[convention])
    divergence = {"target_pred": lambda: _kl(mu_t, sigma_t, mu_p, sigma_p),
                  "pred_target": lambda: _kl(mu_p, sigma_p, mu_t, sigma_t),
                  "symmetric": lambda: 0.5 * (_kl(mu_p, sigma_p, mu_t, sigma_t) + _kl(mu_t, sigma_t, mu_p, sigma_p)),
                  }[direction]()
    divergence = max(divergence, 0.0)
    return _postprocess(math.sqrt(divergence) if sqrt else divergence, fun, tau)


@oriented_transcription("kfiou", checked_at=[{"fun": "ln"}, {"fun": "exp"}, {"centre": False},
                                             {"beta": 0.5}])
def kfiou(pred, target, fun="none", centre=True, beta=1.0 / 9.0, convention="mmrotate"):
    """KFIoU (Yang et al., ICLR 2023, arXiv 2201.12558) as mmrotate's ``kfiou_loss`` writes it
    (mmrotate/models/losses/kf_iou_loss.py), from torch to numpy line by line:

        Vb_p = 4 sqrt(det Sigma_p),  Vb_t = 4 sqrt(det Sigma_t)
        K = Sigma_p (Sigma_p + Sigma_t)^-1,  Sigma = Sigma_p - K Sigma_p,  Vb = 4 sqrt(det Sigma)
        KFIoU = Vb / (Vb_p + Vb_t - Vb)
        loss = smooth_L1_beta(centre offsets) + (1 - KFIoU | -ln(KFIoU + 1e-6) | exp(1 - KFIoU) - 1)

    mmrotate adds eps = 1e-6 to the denominator of KFIoU (left out) and takes the smooth L1 on
    the encoded deltas of prediction and target against one anchor; with the target as the anchor
    (DeltaXYWHAOBBoxCoder, proj_xy=True, stds 1) those are the centre offset turned into the
    target's frame and divided by its w and h, as written here."""
    xy_p, sigma_p = _mean_and_sigma(pred, _SCALES[convention])
    xy_t, sigma_t = _mean_and_sigma(target, _SCALES[convention])
    _, _, w_t, h_t, theta_t = (float(v) for v in target)
    offset = xy_p - xy_t
    delta = numpy.array([(math.cos(theta_t) * offset[0] + math.sin(theta_t) * offset[1]) / w_t,
                         (-math.sin(theta_t) * offset[0] + math.cos(theta_t) * offset[1]) / h_t])
    diff = numpy.abs(delta)
    xy_loss = float(numpy.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).sum())
    vb_p = 4 * math.sqrt(numpy.linalg.det(sigma_p))
    vb_t = 4 * math.sqrt(numpy.linalg.det(sigma_t))
    gain = sigma_p @ numpy.linalg.inv(sigma_p + sigma_t)
    sigma = sigma_p - gain @ sigma_p
    vb = 4 * math.sqrt(max(numpy.linalg.det(sigma), 0.0))
    overlap = vb / (vb_p + vb_t - vb)
    if fun == "ln":
        kf_loss = -math.log(overlap + 1e-6)
    elif fun == "exp":
        kf_loss = math.exp(1 - overlap) - 1
    else:
        kf_loss = 1 - overlap
    return (xy_loss if centre else 0.0) + kf_loss


@oriented_transcription("probiou", checked_at=[{"form": "bhattacharyya"}, {"convention": "mmrotate"}])
def probiou(pred, target, form="hellinger", convention="probiou", eps=0.0):
    """ProbIoU (Llerena et al., arXiv 2106.06072) as ultralytics' ``probiou`` writes it
    (ultralytics/utils/metrics.py), obb1 the target and obb2 the prediction:

        t1 = ((a1 + a2) (y1 - y2)^2 + (b1 + b2) (x1 - x2)^2) / ((a1 + a2)(b1 + b2) - (c1 + c2)^2) / 4
        t2 = (c1 + c2)(x2 - x1)(y1 - y2) / ((a1 + a2)(b1 + b2) - (c1 + c2)^2) / 2
        t3 = ln(((a1 + a2)(b1 + b2) - (c1 + c2)^2) / (4 sqrt((a1 b1 - c1^2)(a2 b2 - c2^2)))) / 2
        B = t1 + t2 + t3,  H = sqrt(1 - exp(-B)),  ultralytics' loss 1 - ProbIoU = H.

    ``form='bhattacharyya'`` returns B (the paper's L2 = -ln(1 - L1^2)). ultralytics adds ``eps``
    = 1e-7 in the two denominators, inside the log and under the root, and clamps B to
    [eps, 100]; ``eps=0`` (the default here) leaves them out, as the paper has none."""
    x1, y1 = float(target[0]), float(target[1])
    x2, y2 = float(pred[0]), float(pred[1])
    (_, s1), (_, s2) = _mean_and_sigma(target, _SCALES[convention]), _mean_and_sigma(pred, _SCALES[convention])
    a1, b1, c1 = s1[0, 0], s1[1, 1], s1[0, 1]
    a2, b2, c2 = s2[0, 0], s2[1, 1], s2[0, 1]
    t1 = (((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2)
          / ((a1 + a2) * (b1 + b2) - (c1 + c2) ** 2 + eps)) * 0.25
    t2 = (((c1 + c2) * (x2 - x1) * (y1 - y2)) / ((a1 + a2) * (b1 + b2) - (c1 + c2) ** 2 + eps)) * 0.5
    t3 = math.log(((a1 + a2) * (b1 + b2) - (c1 + c2) ** 2)
                  / (4 * math.sqrt(max(a1 * b1 - c1 ** 2, 0.0) * max(a2 * b2 - c2 ** 2, 0.0)) + eps) + eps) * 0.5
    bd = t1 + t2 + t3
    bd = min(max(bd, eps), 100.0) if eps else max(bd, 0.0)
    if form == "bhattacharyya":
        return bd
    return math.sqrt(1.0 - math.exp(-bd) + eps)


def _rectangle(box, origin):
    """The corners of an oriented box, counter-clockwise, relative to ``origin`` (the target's centre,
    so that coordinates near 1e6 do not cost their digits), sizes read as |w|, |h|."""
    cx, cy, w, h, theta = (float(v) for v in box)
    cos, sin = math.cos(theta), math.sin(theta)
    corners = [(-abs(w) / 2, -abs(h) / 2), (abs(w) / 2, -abs(h) / 2), (abs(w) / 2, abs(h) / 2), (-abs(w) / 2, abs(h) / 2)]
    return [(cx - origin[0] + cos * u - sin * v, cy - origin[1] + sin * u + cos * v) for u, v in corners]


def _shoelace(points):
    """Area of a simple polygon (counter-clockwise: positive)."""
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))


def _clip(subject, clip):
    """Sutherland-Hodgman (1974): the part of the convex polygon ``subject`` inside the counter-clockwise
    convex polygon ``clip``, clipped against one edge of it at a time."""
    output = subject
    for (ax, ay), (bx, by) in zip(clip, clip[1:] + clip[:1]):
        points, output = output, []
        if not points:
            break

        def side(p):  # > 0 left of the edge a -> b, inside
            return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)
        for current, following in zip(points, points[1:] + points[:1]):
            s_current, s_following = side(current), side(following)
            if s_current >= 0:
                output.append(current)
            if (s_current >= 0) != (s_following >= 0):
                t = s_current / (s_current - s_following)
                output.append((current[0] + t * (following[0] - current[0]),
                               current[1] + t * (following[1] - current[1])))
    return output


def _hull(points):
    """Andrew's monotone chain: the convex hull, counter-clockwise."""
    points = sorted(set(points))

    def half(sequence):
        chain = []
        for p in sequence:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain
    lower, upper = half(points), half(reversed(points))
    return lower[:-1] + upper[:-1]


def _rotated_areas(pred, target):
    origin = (float(target[0]), float(target[1]))
    p, t = _rectangle(pred, origin), _rectangle(target, origin)
    inter = abs(_shoelace(_clip(p, t))) if abs(float(pred[2]) * float(pred[3])) > 0 else 0.0
    union = abs(_shoelace(p)) + abs(_shoelace(t)) - inter
    return p, t, inter, union


@oriented_transcription("rotated_iou")
def rotated_iou(pred, target):
    """Rotated IoU loss, 1 - |P ∩ T| / |P ∪ T|, the intersection by Sutherland-Hodgman clipping of one
    rectangle by the other and the shoelace formula (Zhou et al., arXiv 1908.03851)."""
    _, _, inter, union = _rotated_areas(pred, target)
    return 1.0 - inter / union


@oriented_transcription("rotated_giou", checked_at=[{"enclosing": "axis_aligned_box"}])
def rotated_giou(pred, target, enclosing="convex_hull"):
    """Rotated GIoU loss, 1 - IoU + (C - U) / C (Rezatofighi et al., arXiv 1902.09630), C the area of the
    convex hull of the eight corners (mmrotate's ConvexGIoULoss), by Andrew's monotone chain, or of the
    smallest axis-aligned box around them (``enclosing='axis_aligned_box'``)."""
    p, t, inter, union = _rotated_areas(pred, target)
    if enclosing == "convex_hull":
        c = _shoelace(_hull(p + t))
    else:
        xs, ys = [x for x, _ in p + t], [y for _, y in p + t]
        c = (max(xs) - min(xs)) * (max(ys) - min(ys))
    return 1.0 - inter / union + (c - union) / c
