"""Parameterisations: the four numbers an optimiser moves, and the box they stand for.

Each maps parameters of shape ``(..., 4)`` to ``xyxy`` boxes (differentiably, with
autograd) and back. The box formats are parameterisations as they are; ``'log'``
moves (cx, cy, log w, log h), so that width and height stay positive.
"""
from collections import namedtuple

import autograd.numpy as np

from sandbox.geometry.boxes import FORMATS, box_convert, check_boxes, order_corners, restack, unstack
from sandbox.geometry.names import canonical

Parameterisation = namedtuple("Parameterisation", "name to_box from_box")


def _format(fmt):
    return Parameterisation(
        fmt,
        lambda params: box_convert(params, fmt, "xyxy"),
        lambda boxes: box_convert(order_corners(boxes), "xyxy", fmt),
    )


def _log_to_box(params):
    cx, cy, log_w, log_h = unstack(params)
    return box_convert(restack(params, [cx, cy, np.exp(log_w), np.exp(log_h)]), "cxcywh", "xyxy")


def _log_from_box(boxes):
    check_boxes(boxes, "log-parameterised", positive_size=True)
    cx, cy, w, h = unstack(box_convert(boxes, "xyxy", "cxcywh"))
    return restack(boxes, [cx, cy, np.log(w), np.log(h)])


PARAMETERISATIONS = {fmt: _format(fmt) for fmt in FORMATS}
PARAMETERISATIONS["log"] = Parameterisation("log", _log_to_box, _log_from_box)  # sizes stay positive


def get_parameterisation(name):
    """The `Parameterisation` called `name` (any case); ValueError listing the valid ones otherwise."""
    return PARAMETERISATIONS[canonical(name, PARAMETERISATIONS, "parameterisation")]
