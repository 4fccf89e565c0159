import gc
import warnings

import numpy as np
import pytest
from PIL import Image, ImageSequence

from helpers import load_experiment
from sandbox import fit, iou
from sandbox.views.plotting import animate_trajectories

experiment = load_experiment("stall_vs_converge")
TARGET = np.array([-1.0, -0.5, 1.0, 0.5])
START = np.array([1.5, 1.0, 2.5, 2.5])


@pytest.fixture(autouse=True)
def collect_unplayed_animations():
    # matplotlib warns when an animation that never played is collected; these need not play
    yield
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Animation was deleted without rendering")
        gc.collect()


def frames(animation):
    return list(animation.new_frame_seq())


def test_one_frame_per_step_and_a_shorter_run_holds_its_last_box():
    long_run = fit(START, TARGET, loss="giou", maxiter=30)
    short_run = fit(START, TARGET, loss="iou", maxiter=30)  # stalls: a single box
    assert len(long_run.boxes) == 31 and len(short_run.boxes) == 1
    animation = animate_trajectories([long_run, short_run], TARGET, labels=["giou", "iou"])
    assert frames(animation) == list(animation.steps) == list(range(31))
    for k in (0, 7, 30):
        animation.update(k)
        giou_box, iou_box = animation.boxes
        np.testing.assert_allclose(giou_box.get_bbox().get_points().ravel(), long_run.boxes[k])
        np.testing.assert_allclose(iou_box.get_bbox().get_points().ravel(), START)
        x, y = animation.curves[0].get_data()
        np.testing.assert_array_equal(x, np.arange(k + 1))
        np.testing.assert_array_equal(y, long_run.ious[:k + 1])


def test_boxes_alone_are_one_run_with_iou_computed_and_frames_can_be_thinned():
    boxes = np.linspace(START, TARGET, 11)
    animation = animate_trajectories(boxes, TARGET, step=4)
    assert frames(animation) == [0, 4, 8, 10]  # the last step always shown
    animation.update(8)
    np.testing.assert_allclose(animation.boxes[0].get_bbox().get_points().ravel(), boxes[8])
    np.testing.assert_allclose(animation.curves[0].get_data()[1], iou(boxes[:9], TARGET))


def test_a_run_must_be_boxes_of_four_coordinates():
    with pytest.raises(ValueError, match=r"shape \(5, 3\)"):
        animate_trajectories([np.zeros((5, 3))], TARGET)


@pytest.mark.slow
def test_animate_writes_a_gif_that_pillow_reads_frame_by_frame(tmp_path):
    experiment.main(["--out", str(tmp_path), "--starts", "2", "--maxiter", "12"])
    assert not (tmp_path / experiment.ANIMATION).exists()
    experiment.main(["--out", str(tmp_path), "--replot", "--animate"])  # drawn from the saved runs
    with Image.open(tmp_path / experiment.ANIMATION) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 13  # 13 steps, fewer than GIF_FRAMES: every step is a frame
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
    assert durations == [round(1000 / experiment.GIF_FPS)] * 12 + [1000 * experiment.GIF_PAUSE]
    assert not list(tmp_path.glob(".*tmp*"))


def test_limits_fix_the_region_every_box_panel_shows():
    far = np.array([[1.5, 1.0, 2.5, 2.5], [900.0, 700.0, 1000.0, 800.0], [-1.0, -0.5, 1.0, 0.5]])
    animation = animate_trajectories([far, far], TARGET, panels=["a", "b"], limits=[-3, -2, 3, 3])
    box_axes = [ax for ax in animation.figure.axes if ax.get_title() in ("a", "b")]
    assert len(box_axes) == 2
    for ax in box_axes:
        assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-2.0, 3.0)
