"""A sandbox for bounding-box regression losses: IoU stalls where GIoU converges.

Boxes are arrays of shape ``(..., 4)``, ``xyxy`` unless a function says otherwise.

The names below are imported with the package; every submodule (``sandbox.batch``,
``sandbox.plotting``, ``sandbox.sweep``, ...) is imported on first use, so that
``import sandbox`` does not pay for matplotlib or ipywidgets.
"""
# The names re-exported at the top level; a new public name goes here and in __all__.
from .boxes import (FORMATS, box_area, box_convert, check_boxes, enclosing_box,
                    intersection_area, order_corners, union_area)
from .first_order import SCHEDULES
from .losses import LOSSES, canonical_loss, get_loss, giou, giou_loss, iou, iou_loss, l1_loss, l2_loss, register_loss
from .optimize import GRADIENT_METHODS, HOME_IOU, METHODS, OUTCOMES, fit, fit_many
from .parameterisations import PARAMETERISATIONS
from .starts import non_overlapping_starts, overlapping_starts, random_non_overlapping_starts

__version__ = "0.7.0"  # the one place it is written: pyproject.toml reads it, CHANGELOG.md names it
__all__ = ["FORMATS", "box_area", "box_convert", "check_boxes", "enclosing_box", "intersection_area",
           "order_corners", "union_area", "SCHEDULES", "LOSSES", "canonical_loss", "get_loss", "register_loss", "giou", "giou_loss", "iou",
           "iou_loss", "l1_loss", "l2_loss", "GRADIENT_METHODS", "HOME_IOU", "METHODS", "OUTCOMES", "fit", "fit_many",
           "PARAMETERISATIONS", "non_overlapping_starts", "overlapping_starts",
           "random_non_overlapping_starts"]



def _submodules():
    """The names of the package's modules, as its folder holds them."""
    import pkgutil
    return {module.name for module in pkgutil.iter_modules(__path__)}


def __getattr__(name):
    # Called only for a name not bound yet (PEP 562). A submodule is imported on first
    # use and then bound like any attribute, so this runs once per submodule.
    import importlib
    import sys
    if name in _submodules():
        return importlib.import_module(f"{__name__}.{name}")
    # name and obj let the traceback suggest a close name, submodules included (__dir__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}",
                         name=name, obj=sys.modules[__name__])


def __dir__():
    return sorted(set(globals()) | _submodules())
