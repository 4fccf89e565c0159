"""A sandbox for bounding-box regression losses: IoU stalls where GIoU converges.

Boxes are arrays of shape ``(..., 4)``, ``xyxy`` unless a function says otherwise.

The names below are imported with the package. The sub-packages show the architecture, each
importing only from those before it:

- `sandbox.geometry`: boxes, the geometry of a pair, parameterisations, names;
- `sandbox.losses`: the formulas, the spec language that names them, the fused kernels;
- `sandbox.workers`: local worker processes and Dask, the one dispatcher;
- `sandbox.optim`: update rules, the engine, `fit`, `fit_many`, `regress`, start boxes;
- `sandbox.learning`: synthetic images, networks, training, box metrics;
- `sandbox.runs`: sweeps and their store, the simulation, evidence, records, the CLI helpers;
- `sandbox.views`: plots, animations, the loss explorer, the norms figures.

Each is imported on first use (``sandbox.views.plotting``, say), so that ``import sandbox``
does not pay for matplotlib, ipywidgets or Dask.
"""
# The names re-exported at the top level; a new public name goes here and in __all__.
from sandbox._lazy import attach
from sandbox.geometry.boxes import (
                                    FORMATS,
                                    box_area,
                                    box_convert,
                                    check_boxes,
                                    enclosing_box,
                                    intersection_area,
                                    order_corners,
                                    union_area,
)
from sandbox.geometry.parameterisations import PARAMETERISATIONS
from sandbox.losses import (
                                    LOSSES,
                                    canonical_loss,
                                    get_loss,
                                    giou,
                                    giou_loss,
                                    iou,
                                    iou_loss,
                                    l1_loss,
                                    l2_loss,
                                    register_loss,
)
from sandbox.optim.batch import regress
from sandbox.optim.fitting import GRADIENT_METHODS, HOME_IOU, METHODS, OUTCOMES, fit, fit_many
from sandbox.optim.rules import SCHEDULES
from sandbox.optim.starts import non_overlapping_starts, overlapping_starts, random_non_overlapping_starts

__version__ = "0.10.0"  # the one place it is written: pyproject.toml reads it, CHANGELOG.md names it
__all__ = ["FORMATS", "box_area", "box_convert", "check_boxes", "enclosing_box", "intersection_area",
           "order_corners", "union_area", "PARAMETERISATIONS", "LOSSES", "canonical_loss", "get_loss",
           "register_loss", "giou", "giou_loss", "iou", "iou_loss", "l1_loss", "l2_loss", "regress",
           "GRADIENT_METHODS", "HOME_IOU", "METHODS", "OUTCOMES", "fit", "fit_many", "SCHEDULES",
           "non_overlapping_starts", "overlapping_starts", "random_non_overlapping_starts"]

__getattr__, __dir__ = attach(__name__, __path__)
