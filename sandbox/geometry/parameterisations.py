"""Parameterisations: the numbers an optimiser moves, and the box they stand for.

Each maps parameters of shape ``(..., 4)`` to ``xyxy`` boxes (differentiably, with
autograd) and back. The box formats are parameterisations as they are; ``'log'``
moves (cx, cy, log w, log h), so that width and height stay positive.

``'xywha'`` is the one parameterisation of oriented boxes (`sandbox.geometry.oriented`):
the five raw numbers (cx, cy, w, h, theta) themselves, shape ``(..., 5)``, as rotated
detectors regress them, in `ORIENTED_PARAMETERISATIONS`. A parameterisation's `size`
says which kind of box it moves.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import autograd.numpy as np

from sandbox._types import Array, Boxes
from sandbox.geometry.boxes import FORMATS, Coordinates, box_convert, check_boxes, order_corners, restack, unstack
from sandbox.geometry.names import canonical


class Parameterisation(NamedTuple):
    """A parameterisation: its name, parameters -> boxes, and back, and the numbers per box.

    Both maps take arrays of shape ``(..., size)`` (traced or not) and return them, or
    `Coordinates` and return `Coordinates`; boxes are ``xyxy`` for size 4 and oriented
    (cx, cy, w, h, theta) for size 5.
    """

    name: str
    to_box: Callable[[Boxes], Coordinates | Array]
    from_box: Callable[[Boxes], Coordinates | Array]
    size: int = 4


def _format(fmt: str) -> Parameterisation:
    return Parameterisation(
        fmt,
        lambda params: box_convert(params, fmt, "xyxy"),
        lambda boxes: box_convert(order_corners(boxes), "xyxy", fmt),
    )


def _log_to_box(params: Boxes) -> Coordinates | Array:
    cx, cy, log_w, log_h = unstack(params)
    return box_convert(restack(params, [cx, cy, np.exp(log_w), np.exp(log_h)]), "cxcywh", "xyxy")


def _log_from_box(boxes: Boxes) -> Coordinates | Array:
    check_boxes(boxes, "log-parameterised", positive_size=True)
    cx, cy, w, h = unstack(box_convert(boxes, "xyxy", "cxcywh"))
    return restack(boxes, [cx, cy, np.log(w), np.log(h)])


PARAMETERISATIONS = {fmt: _format(fmt) for fmt in FORMATS}
PARAMETERISATIONS["log"] = Parameterisation("log", _log_to_box, _log_from_box)  # sizes stay positive


def _raw(boxes: Boxes) -> Coordinates | Array:
    return boxes


ORIENTED_PARAMETERISATIONS = {"xywha": Parameterisation("xywha", _raw, _raw, size=5)}
"""The parameterisations of oriented boxes, apart from `PARAMETERISATIONS` (axis-aligned), as the losses are."""
EVERY_PARAMETERISATION = {**PARAMETERISATIONS, **ORIENTED_PARAMETERISATIONS}


def get_parameterisation(name: str) -> Parameterisation:
    """The `Parameterisation` called `name` (any case), of either kind; ValueError listing the valid ones otherwise."""
    return EVERY_PARAMETERISATION[canonical(name, EVERY_PARAMETERISATION, "parameterisation")]
