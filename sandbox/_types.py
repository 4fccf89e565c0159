"""The types the annotations share: arrays as NumPy and autograd make them, boxes, losses.

Differentiable code runs on ``autograd.numpy``: on plain input it returns NumPy's arrays
(a NumPy float for a single value), and while autograd traces it, autograd's
``ArrayBox``. autograd ships no type information, so a type checker sees an ``ArrayBox``
as ``Any``; the aliases below name it all the same, so that a signature says what
really comes back.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeAlias, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from sandbox.geometry.boxes import Coordinates

FloatArray: TypeAlias = NDArray[np.float64]
"""A float array, as NumPy makes it."""

BoolArray: TypeAlias = NDArray[np.bool_]
"""A mask."""

ArrayBox: TypeAlias = Any
"""autograd's traced array (``autograd.numpy.numpy_boxes.ArrayBox``): ``Any``, as autograd has no types."""

Array: TypeAlias = Union[FloatArray, ArrayBox]
"""An array from ``autograd.numpy``: NumPy's on plain input, an `ArrayBox` while autograd traces."""

Values: TypeAlias = Union[FloatArray, np.float64, ArrayBox]
"""One value per box or pair, shape ``(...,)``: an array, a NumPy float for a single box, or an
`ArrayBox` while autograd traces."""

Boxes: TypeAlias = Union[ArrayLike, "Coordinates"]
"""Boxes as a function takes them: array_like of shape ``(..., 4)`` (traced by autograd or not),
or `sandbox.geometry.boxes.Coordinates`, four coordinate arrays."""

StrPath: TypeAlias = Union[str, os.PathLike[str]]
"""A path: a str or a `pathlib.Path`."""

Loss: TypeAlias = Callable[..., Values]
"""A loss: ``loss(pred, target, **params)`` on ``xyxy`` boxes, one value per pair, unreduced."""


class BoxPairFunction(Protocol):
    """A loss or measure made by `sandbox.losses.box_pair_function`: ``pred`` and ``target``, then
    any parameters by keyword."""

    def __call__(self, pred: Boxes, target: Boxes, **params: Any) -> Values: ...
