import numpy as np
import pytest

from sandbox import iou, non_overlapping_starts, overlapping_starts, random_non_overlapping_starts
from sandbox.geometry.boxes import box_convert
from sandbox.optim.starts import direction_name

TARGET = np.array([-1.0, -0.5, 1.0, 0.5])


def free_space(boxes, target):
    """Gap between each box and the target along the axis that separates them most."""
    x = np.maximum(boxes[:, 0] - target[2], target[0] - boxes[:, 2])
    y = np.maximum(boxes[:, 1] - target[3], target[1] - boxes[:, 3])
    return np.maximum(x, y)


@pytest.mark.parametrize("gap", [1e-3, 0.5, 3.0])
@pytest.mark.parametrize("size", [None, (1.0, 1.5), (0.2, 4.0)])
def test_non_overlapping_starts_sit_at_the_gap_in_each_direction(gap, size):
    starts = non_overlapping_starts(TARGET, gap=gap, directions=8, size=size)
    assert starts.shape == (8, 4)
    assert np.all(iou(starts, TARGET) == 0)
    np.testing.assert_allclose(free_space(starts, TARGET), gap, rtol=1e-12)
    centres = box_convert(starts, "xyxy", "cxcywh")[:, :2]
    angles = np.degrees(np.arctan2(centres[:, 1], centres[:, 0])) % 360
    np.testing.assert_allclose(angles, np.arange(8) * 45.0, atol=1e-9)
    if size is not None:
        np.testing.assert_allclose(box_convert(starts, "xyxy", "cxcywh")[:, 2:], np.tile(size, (8, 1)))


def test_directions_may_be_angles():
    east, north = non_overlapping_starts([0, 0, 2, 1], gap=0.5, directions=[0, 90])
    np.testing.assert_allclose(east, [2.5, 0, 4.5, 1])
    np.testing.assert_allclose(north, [0, 1.5, 2, 2.5])
    assert [direction_name(a) for a in (0, 45, 90, 315, 10, 22.5)] == ["E", "NE", "N", "SE", "10deg", "22.5deg"]


def test_random_starts_are_apart_seeded_and_reproducible():
    starts = random_non_overlapping_starts(TARGET, 50, seed=3, min_gap=0.1)
    assert starts.shape == (50, 4)
    assert np.all(iou(starts, TARGET) == 0) and np.all(free_space(starts, TARGET) >= 0.1)
    np.testing.assert_array_equal(starts, random_non_overlapping_starts(TARGET, 50, seed=3, min_gap=0.1))
    assert not np.array_equal(starts, random_non_overlapping_starts(TARGET, 50, seed=4, min_gap=0.1))


def test_overlapping_starts_have_iou_in_range():
    starts = overlapping_starts(TARGET, 40, seed=1, iou_range=(0.2, 0.6))
    values = iou(starts, TARGET)
    assert starts.shape == (40, 4) and np.all((values >= 0.2) & (values <= 0.6))


@pytest.mark.parametrize("call, words", [
    (lambda: non_overlapping_starts(TARGET, gap=0), "gap must be a positive number"),
    (lambda: non_overlapping_starts(TARGET, directions=0), "directions must be a positive count"),
    (lambda: non_overlapping_starts(TARGET, size=(1, -1)), "expected two positive numbers"),
    (lambda: non_overlapping_starts([0, 0, 0, 1]), "non-positive width"),
    (lambda: random_non_overlapping_starts(TARGET, -1), "count must be a whole number"),
    (lambda: random_non_overlapping_starts(TARGET, 5, radius=0.1), "found only 0 of 5"),
    (lambda: overlapping_starts(TARGET, 5, iou_range=(0.5, 0.2)), "iou_range must satisfy"),
])
def test_bad_arguments_are_named(call, words):
    with pytest.raises(ValueError) as error:
        call()
    assert words in str(error.value)
