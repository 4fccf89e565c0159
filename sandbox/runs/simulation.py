"""The simulation protocol of the DIoU paper: 1,715,000 anchors regressed toward 7 targets.

Zheng et al., AAAI 2020 (arXiv 1911.08287), section "Simulation Experiment", and
the authors' MATLAB code (github.com/Zzh-tju/DIoU, ``simulation experiment/
test_1715k.m``): 7 targets of area 1 centred at (10, 10) with aspect ratios 1:4
to 4:1; anchor centres uniform over the disk of radius 3 around them; at each
centre, anchors of 7 areas times 7 aspect ratios, each regressed toward each
target. Cases are ordered as in the MATLAB loops: by anchor centre, then target,
then area, then aspect ratio, so the 343 cases of a centre are consecutive.

`oriented_protocol` is its counterpart for oriented boxes (cx, cy, w, h, theta): the
same centres, sizes and order, with the angle of every target and every anchor drawn
uniformly from [-pi/2, pi/2), each case its own.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sandbox._types import FloatArray
from sandbox.optim.batch import regress
from sandbox.optim.settings import GRADIENTS

ASPECTS = np.array([[0.5, 2.0], [3 ** 0.5 / 3, 3 ** 0.5], [2 ** 0.5 / 2, 2 ** 0.5], [1.0, 1.0],
                    [2 ** 0.5, 2 ** 0.5 / 2], [3 ** 0.5, 3 ** 0.5 / 3], [2.0, 0.5]])
"""(width, height) of area 1 for the aspect ratios 1:4, 1:3, 1:2, 1:1, 2:1, 3:1, 4:1."""
AREAS = np.array([0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0])
"""Anchor areas, relative to the target's area of 1."""
CASES_PER_POINT = len(ASPECTS) * len(AREAS) * len(ASPECTS)


class Protocol(NamedTuple):
    """Cases of the protocol: ``anchors`` and ``targets``, ``xyxy``, shape (n, 4) (oriented:
    (cx, cy, w, h, theta), shape (n, 5)); ``points``, the anchor centres, shape (n / 343, 2)."""

    anchors: FloatArray
    targets: FloatArray
    points: FloatArray



def diou_protocol(points: int = 5000, seed: int = 0, centre: tuple[float, float] = (10.0, 10.0),
                  radius: float = 3.0) -> Protocol:
    """The cases of the DIoU simulation, 343 per anchor centre: ``points * 343`` in all.

    Examples
    --------
    >>> protocol = diou_protocol(points=2)
    >>> protocol.anchors.shape, protocol.targets.shape, protocol.points.shape
    ((686, 4), (686, 4), (2, 2))
    """
    if not (isinstance(points, (int, np.integer)) and points >= 1):
        raise ValueError(f"points must be a whole number >= 1; got {points!r}")
    rng = np.random.default_rng(seed)
    r, angle = radius * np.sqrt(rng.uniform(size=points)), 2 * np.pi * rng.uniform(size=points)
    centres = np.stack([centre[0] + r * np.cos(angle), centre[1] + r * np.sin(angle)], axis=-1)
    # per centre: target aspect t, anchor area a, anchor aspect s (the MATLAB loop order)
    t, a, s = (index.ravel() for index in np.indices((len(ASPECTS), len(AREAS), len(ASPECTS))))
    target_size = ASPECTS[t]
    anchor_size = ASPECTS[s] * np.sqrt(AREAS[a])[:, None]  # the target's area is 1
    anchor_centre = np.repeat(centres, CASES_PER_POINT, axis=0)
    anchor_size = np.tile(anchor_size, (points, 1))
    target_size = np.tile(target_size, (points, 1))
    target_centre = np.broadcast_to(np.asarray(centre, dtype=float), target_size.shape)
    return Protocol(np.concatenate([anchor_centre - anchor_size / 2, anchor_centre + anchor_size / 2], axis=-1),
                    np.concatenate([target_centre - target_size / 2, target_centre + target_size / 2], axis=-1),
                    centres)


def oriented_protocol(points: int = 20, seed: int = 0, centre: tuple[float, float] = (10.0, 10.0),
                      radius: float = 3.0) -> Protocol:
    """The DIoU simulation's cases as oriented boxes, each target and anchor at its own random angle.

    The anchor centres, sizes and order of `diou_protocol` with the same arguments;
    then, from the same random stream, an angle uniform in [-pi/2, pi/2) for each
    case's target and one for its anchor. ``points * 343`` cases.

    Examples
    --------
    >>> protocol = oriented_protocol(points=2)
    >>> protocol.anchors.shape, protocol.targets.shape
    ((686, 5), (686, 5))
    """
    aligned = diou_protocol(points, seed, centre, radius)
    rng = np.random.default_rng(seed)
    rng.uniform(size=2 * points)  # the draws of the centres, as diou_protocol made them
    target_angle, anchor_angle = (rng.uniform(-np.pi / 2, np.pi / 2, size=len(aligned.anchors)) for _ in range(2))

    def oriented(boxes: FloatArray, angle: FloatArray) -> FloatArray:
        return np.column_stack([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2], angle])
    return Protocol(oriented(aligned.anchors, anchor_angle), oriented(aligned.targets, target_angle), aligned.points)


MOVED = 1e-6
"""A case's final IoU that moves by more than this has had its last bit amplified: the gradients of
the two backends, and of anchors one ulp apart, differ by about 1e-16 at each step."""


def rounding_sensitivity(protocol: Protocol, loss: str, gradient: str = "fused", iterations: int = 200,
                         workers: int = 1) -> dict[str, float | int]:
    """How far the mean final IoU of `loss` on `protocol` moves with the last bit, on one backend.

    Runs `sandbox.optim.batch.regress` three times: on the protocol's anchors with `gradient`;
    on the anchors moved by one ulp (``np.nextafter(anchors, inf)``, every coordinate) with
    the same `gradient`; and, for the record, on the anchors with the other backend. A run
    that oscillates across a kink amplifies the last bit, so a few cases end visibly apart.

    Parameters
    ----------
    protocol : Protocol
        The cases, as `diou_protocol` gives them.
    loss : str
        A loss with a fused kernel (`sandbox.losses.fused.kernel`), so that both backends exist.
    gradient : str
        The backend measured, ``'fused'`` (what which_loss's simulation runs) or ``'autograd'``.
    iterations, workers
        As for `regress`.

    Returns
    -------
    dict
        ``mean_final_iou``, ``mean_final_iou_shifted`` (anchors one ulp up) and
        ``mean_final_iou_other`` (the other backend); ``ulp_change`` and
        ``backend_difference``, the absolute differences from ``mean_final_iou``;
        ``cases_moved_by_ulp`` and ``cases_moved_by_backend``, the cases whose final IoU
        moved by more than `MOVED`.
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)}; got {gradient!r}")
    other = next(backend for backend in GRADIENTS if backend != gradient)

    def run(anchors: FloatArray, backend: str) -> Any:  # regress's OptimizeResult (scipy has no types)
        return regress(anchors, protocol.targets, loss=loss, iterations=iterations, gradient=backend,
                       workers=workers)

    # the mean final IoU as the simulation sweep records it, regress's mean_iou[-1]
    base = run(protocol.anchors, gradient)
    shifted = run(np.nextafter(protocol.anchors, np.inf), gradient)
    other_run = run(protocol.anchors, other)
    mean, mean_shifted, mean_other = (float(result.mean_iou[-1]) for result in (base, shifted, other_run))
    return dict(mean_final_iou=mean, mean_final_iou_shifted=mean_shifted, mean_final_iou_other=mean_other,
                ulp_change=abs(mean_shifted - mean), backend_difference=abs(mean_other - mean),
                cases_moved_by_ulp=int(np.sum(np.abs(shifted.final_ious - base.final_ious) > MOVED)),
                cases_moved_by_backend=int(np.sum(np.abs(other_run.final_ious - base.final_ious) > MOVED)))
