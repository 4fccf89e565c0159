import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sandbox import fit
import pytest

from sandbox.views.plotting import plot_box, plot_metric, plot_target, plot_trajectory

TARGET = [0.0, 0.0, 2.0, 1.0]


def test_trajectory_fades_in_and_marks_start_and_end():
    ax = Figure().subplots()
    result = fit([3.0, 2.0, 4.0, 3.0], TARGET, loss="giou", maxiter=50)
    artists = plot_trajectory(ax, result.boxes, target=TARGET, max_boxes=10)
    outlines = [a for a in artists if isinstance(a, Rectangle) and not a.get_fill()]
    assert len(outlines) == 10
    alphas = [a.get_alpha() for a in outlines]
    assert alphas == sorted(alphas) and alphas[0] < 0.2 and alphas[-1] == 1.0
    start, end = artists[-2], artists[-1]
    centre = lambda box: ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)  # noqa: E731
    np.testing.assert_allclose(np.ravel(start.get_data()), centre(result.boxes[0]))
    np.testing.assert_allclose(np.ravel(end.get_data()), centre(result.boxes[-1]))


def test_trajectory_draws_inverted_boxes_and_skips_non_finite_ones():
    ax = Figure().subplots()
    artists = plot_trajectory(ax, [[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [np.inf, 0, 1, 1]])
    outlines = [a for a in artists if isinstance(a, Rectangle)]
    assert len(outlines) == 2 and outlines[0].get_xy() == (0.0, 0.0) and outlines[0].get_width() == 2.0


def test_metric_lines_hold_the_final_value_of_runs_that_stopped_early():
    ax = Figure().subplots()
    lines = plot_metric(ax, [np.zeros(1), np.linspace(0, 1, 11)], labels=["iou", "giou"])
    assert len(lines) == 2
    held = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert len(held) == 1 and list(held[0].get_xdata()) == [0, 10] and list(held[0].get_ydata()) == [0, 0]


# Oriented boxes (cx, cy, w, h, theta): polygons with a tick on the first axis.
ORIENTED_TARGET = np.array([0.0, 0.0, 4.0, 2.0, 0.5])


def test_an_oriented_box_is_drawn_as_its_corners_with_a_tick_that_tells_theta_from_theta_plus_pi():
    from matplotlib.patches import Polygon

    from sandbox.geometry.oriented import corners
    ax = Figure().subplots()
    turned = ORIENTED_TARGET + [0, 0, 0, 0, np.pi]  # the same rectangle
    patches = [plot_box(ax, box) for box in (ORIENTED_TARGET, turned)]
    assert all(isinstance(p, Polygon) for p in patches)
    xs, ys = corners(ORIENTED_TARGET)
    for patch in patches:
        vertices = patch.get_xy()
        # every corner of the rectangle is a vertex: the outline is the rectangle
        for corner in zip(xs, ys):
            assert np.min(np.hypot(*(vertices - corner).T)) < 1e-12
    ticks = [p.get_xy()[3] for p in patches]
    axis = np.array([np.cos(0.5), np.sin(0.5)])
    # the tick ends inside the box, on the side the first axis points to: opposite for theta + pi
    assert ticks[0] @ axis == pytest.approx(2.0 - 0.8) and ticks[1] @ axis == pytest.approx(-(2.0 - 0.8))


def test_a_filled_oriented_target_covers_exactly_its_rectangle():
    ax = Figure().subplots()
    patch = plot_target(ax, ORIENTED_TARGET)
    x, y = patch.get_xy()[:-1].T if np.allclose(patch.get_xy()[0], patch.get_xy()[-1]) else patch.get_xy().T
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # the shoelace formula
    assert area == pytest.approx(4.0 * 2.0) and patch.get_fill()


def test_an_oriented_trajectory_draws_polygons_and_marks_the_centres():
    from matplotlib.patches import Polygon
    ax = Figure().subplots()
    boxes = np.linspace([3.0, 2.0, 1.0, 1.0, -1.0], ORIENTED_TARGET, 12)
    artists = plot_trajectory(ax, boxes, target=ORIENTED_TARGET, max_boxes=5)
    outlines = [a for a in artists if isinstance(a, Polygon) and not a.get_fill()]
    assert len(outlines) == 5 and not [a for a in artists if isinstance(a, Rectangle)]
    start, end = artists[-2], artists[-1]
    np.testing.assert_allclose(np.ravel(start.get_data()), boxes[0, :2])
    np.testing.assert_allclose(np.ravel(end.get_data()), boxes[-1, :2])


def test_an_oriented_animation_moves_each_polygon_to_the_box_of_its_iteration():
    from types import SimpleNamespace

    from sandbox.views.plotting import animate_trajectories, oriented_outline
    boxes = np.linspace([3.0, 2.0, 1.0, 1.0, -1.0], ORIENTED_TARGET, 9)
    run = SimpleNamespace(boxes=boxes, ious=np.linspace(0.0, 1.0, 9))
    animation = animate_trajectories([run], ORIENTED_TARGET, step=2)
    animation.update(4)
    np.testing.assert_allclose(animation.boxes[0].get_xy()[:7], oriented_outline(boxes[4]))
    np.testing.assert_allclose(animation.curves[0].get_data()[1], run.ious[:5])
    low, high = animation.figure.axes[0].get_xlim()
    assert low < -2.0 and high > 3.0  # the panel holds every corner, not only the centres
    alone = animate_trajectories(boxes, ORIENTED_TARGET)  # boxes alone: IoU is rotated IoU
    from sandbox.geometry.polygons import rotated_iou
    np.testing.assert_allclose(alone.curves[0].get_data()[1], rotated_iou(boxes[:1], ORIENTED_TARGET))
    alone._draw_was_started = True
    with pytest.raises(ValueError, match=r"expected \(steps \+ 1, 5\) like the target"):
        animate_trajectories([np.zeros((3, 4))], ORIENTED_TARGET)
    animation._draw_was_started = True  # not played, on purpose: no warning when collected
