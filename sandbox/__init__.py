"""A sandbox for bounding-box regression losses: IoU stalls where GIoU converges.

Boxes are arrays of shape ``(..., 4)``, ``xyxy`` unless a function says otherwise.
"""
from .boxes import (FORMATS, box_area, box_convert, check_boxes, enclosing_box,
                    intersection_area, order_corners, union_area)
from .first_order import SCHEDULES
from .losses import LOSSES, get_loss, giou, giou_loss, iou, iou_loss, l1_loss, l2_loss
from .optimize import GRADIENT_METHODS, HOME_IOU, METHODS, OUTCOMES, fit, fit_many
from .parameterisations import PARAMETERISATIONS
from .starts import non_overlapping_starts, overlapping_starts, random_non_overlapping_starts

__version__ = "0.4.0"  # the one place it is written: pyproject.toml reads it, CHANGELOG.md names it
__all__ = ["FORMATS", "box_area", "box_convert", "check_boxes", "enclosing_box", "intersection_area",
           "order_corners", "union_area", "SCHEDULES", "LOSSES", "get_loss", "giou", "giou_loss", "iou",
           "iou_loss", "l1_loss", "l2_loss", "GRADIENT_METHODS", "HOME_IOU", "METHODS", "OUTCOMES", "fit", "fit_many",
           "PARAMETERISATIONS", "non_overlapping_starts", "overlapping_starts",
           "random_non_overlapping_starts"]
