import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra.numpy import arrays

from helpers import finite_floats
from sandbox import (FORMATS, box_area, box_convert, check_boxes, enclosing_box,
                     intersection_area, order_corners, union_area)


def test_box_convert_known_values():
    xyxy = np.array([1.0, 2.0, 4.0, 6.0])  # width 3, height 4, centre (2.5, 4)
    np.testing.assert_allclose(box_convert(xyxy, "xyxy", "xywh"), [1, 2, 3, 4])
    np.testing.assert_allclose(box_convert(xyxy, "xyxy", "cxcywh"), [2.5, 4, 3, 4])
    np.testing.assert_allclose(box_convert([2.5, 4, 3, 4], "cxcywh", "xywh"), [1, 2, 3, 4])


@given(arrays(float, (3, 2, 4), elements=finite_floats))
def test_box_convert_round_trips_through_every_format(boxes):
    for fmt in FORMATS:
        back = box_convert(box_convert(boxes, "xyxy", fmt), fmt, "xyxy")
        np.testing.assert_allclose(back, boxes, rtol=1e-9, atol=1e-9)


def test_geometry_by_hand():
    a = np.array([0.0, 0.0, 2.0, 2.0])
    b = np.array([1.0, 1.0, 4.0, 3.0])  # overlap [1, 2] x [1, 2]
    assert box_area(a) == 4 and box_area(b) == 6
    assert intersection_area(a, b) == 1
    assert union_area(a, b) == 9
    np.testing.assert_array_equal(enclosing_box(a, b), [0, 0, 4, 3])
    assert intersection_area(a, [3.0, 0.0, 4.0, 1.0]) == 0  # apart


def test_geometry_broadcasts_over_leading_axes():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 3.0]])
    assert box_area(boxes).shape == (2,)
    assert intersection_area(boxes[:, None], boxes[None]).shape == (2, 2)


def test_order_corners_sorts_inverted_boxes():
    np.testing.assert_array_equal(order_corners(np.array([3.0, 4.0, 1.0, 2.0])), [1, 2, 3, 4])


@pytest.mark.parametrize("boxes, words", [
    (np.zeros(3), "shape (..., 4)"),
    (np.zeros((2, 5)), "got shape (2, 5)"),
    (np.float64(1.0), "shape (..., 4)"),
    ([0.0, np.nan, 1.0, 1.0], "non-finite"),
    ([[0, 0, 1, 1], [0, 0, np.inf, 1]], "box 1 [0.0, 0.0, inf, 1.0] has non-finite"),
    (["a", "b", "c", "d"], "array of numbers"),
])
def test_check_boxes_names_the_problem(boxes, words):
    with pytest.raises(ValueError) as error:
        check_boxes(boxes, "pred")
    assert words in str(error.value) and "pred" in str(error.value)


@pytest.mark.parametrize("target, words", [
    ([0.0, 0.0, 0.0, 1.0], "non-positive width 0.0"),
    ([0.0, 1.0, 1.0, 0.5], "non-positive height -0.5"),
    ([[0, 0, 1, 1], [0, 0, 1, 1], [2, 0, 1.5, 1]], "target box 2 [2.0, 0.0, 1.5, 1.0] has non-positive width -0.5; target boxes must have x2 > x1"),
])
def test_check_boxes_rejects_targets_without_positive_size(target, words):
    with pytest.raises(ValueError) as error:
        check_boxes(target, "target", positive_size=True)
    assert words in str(error.value)


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="unknown box format 'yxyx'; valid formats are xyxy, xywh, cxcywh"):
        box_convert(np.zeros(4), "yxyx", "xyxy")
