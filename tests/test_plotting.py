import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sandbox import fit
from sandbox.views.plotting import plot_metric, plot_trajectory

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
