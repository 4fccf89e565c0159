import json
import shutil

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from matplotlib.quiver import Quiver

import sandbox
from helpers import central_differences, load_experiment

gallery = load_experiment("loss_gallery")

SPECS = ["iou", "giou", "l2", "l1:coords=cxcywh"]
TARGET = np.array([-1.0, -0.5, 1.0, 0.5])  # the script's default; centre (0, 0), 2 x 1
SIZE = (1.0, 1.5)                          # the script's default predicted size
# 41 points over [-4, 4]: spacing 0.2, so no grid centre puts the boxes exactly edge to edge
# (that happens at |cx| = 1.5 or |cy| = 1.25, where the IoU gradient is half-weighted, not 0).
RESOLUTION = 41


def box_at(centre):
    """The predicted xyxy box at `centre`, written out here rather than with box_convert."""
    cx, cy = centre[0], centre[1]
    w, h = SIZE
    return anp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def overlap_masks(xs, ys):
    """Grid centres (rows along y) where the boxes are strictly apart, and where they strictly overlap."""
    cx, cy = np.meshgrid(xs, ys)
    gap_x = np.abs(cx) - (TARGET[2] - TARGET[0] + SIZE[0]) / 2
    gap_y = np.abs(cy) - (TARGET[3] - TARGET[1] + SIZE[1]) / 2
    apart = (gap_x > 1e-9) | (gap_y > 1e-9)
    overlapping = (gap_x < -1e-9) & (gap_y < -1e-9)
    assert np.all(apart | overlapping), "a grid centre puts the boxes edge to edge; change RESOLUTION"
    return apart, overlapping


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    gallery.main(["--out", str(out), "--resolution", str(RESOLUTION), "--losses", *SPECS])
    with np.load(out / gallery.DATA) as saved:
        return out, dict(saved)


def stored(saved, spec):
    k = list(saved["specs"]).index(spec)
    return saved["values"][k], saved["gradients"][k]


def test_gallery_writes_figure_data_and_config_with_finite_arrays_of_the_grid_shape(run):
    out, saved = run
    for name in ("loss_gallery.png", "loss_gallery.npz", "config.json"):
        assert (out / name).stat().st_size > 0, name
    assert list(saved["specs"]) == SPECS
    np.testing.assert_allclose(saved["xs"], np.linspace(-4, 4, RESOLUTION))
    np.testing.assert_allclose(saved["ys"], np.linspace(-4, 4, RESOLUTION))
    assert saved["values"].shape == (len(SPECS), RESOLUTION, RESOLUTION)
    assert saved["gradients"].shape == (len(SPECS), RESOLUTION, RESOLUTION, 2)
    assert np.all(np.isfinite(saved["values"])) and np.all(np.isfinite(saved["gradients"]))
    np.testing.assert_array_equal(saved["target"], TARGET)
    np.testing.assert_array_equal(saved["size"], SIZE)
    config = json.loads((out / "config.json").read_text())
    assert config["losses"] == SPECS and config["target"] == TARGET.tolist() and config["size"] == list(SIZE)
    assert {"numpy", "autograd", "matplotlib", "sandbox"} <= set(config["versions"])
    assert set(config["seconds"]) == set(SPECS)


def test_iou_loss_is_flat_with_gradient_exactly_zero_wherever_the_boxes_do_not_overlap(run):
    _, saved = run
    apart, overlapping = overlap_masks(saved["xs"], saved["ys"])
    value, gradient = stored(saved, "iou")
    assert apart.sum() > 1000 and overlapping.sum() > 100
    assert np.all(value[apart] == 1.0)
    assert np.all(gradient[apart] == 0.0)
    assert np.any(np.abs(gradient[overlapping]) > 0.01)


def test_giou_gradient_pulls_toward_the_target_at_every_centre_where_the_boxes_do_not_overlap(run):
    _, saved = run
    apart, _ = overlap_masks(saved["xs"], saved["ys"])
    _, gradient = stored(saved, "giou")
    centres = np.stack(np.meshgrid(saved["xs"], saved["ys"]), axis=-1)
    assert np.all(np.hypot(gradient[apart, 0], gradient[apart, 1]) > 0)
    # The descent direction -gradient has a positive component toward the target's centre (0, 0).
    assert np.all(np.sum(-gradient[apart] * -centres[apart], axis=-1) > 0)
    # Not everywhere off the centre: where the predicted box's x-range lies inside the target's
    # and its y-range covers the target's (|cx| <= 0.5, |cy| <= 0.25), moving it changes neither
    # the intersection nor the enclosing box, and GIoU is flat there too.
    plateau = (np.abs(centres[..., 0]) < 0.5 - 1e-9) & (np.abs(centres[..., 1]) < 0.25 - 1e-9)
    assert plateau.sum() >= 3 and np.all(gradient[plateau] == 0.0)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("centre", [(2.4, 1.6), (0.8, 0.4), (-3.2, -0.2)])
def test_stored_gradient_matches_autograd_and_differences_at_single_centres(run, spec, centre):
    _, saved = run
    j, i = np.argmin(np.abs(saved["xs"] - centre[0])), np.argmin(np.abs(saved["ys"] - centre[1]))
    point = np.array([saved["xs"][j], saved["ys"][i]])
    np.testing.assert_allclose(point, centre, atol=1e-12)  # the centre is on the grid
    loss = sandbox.get_loss(spec)  # the checked public loss on one box, not the script's grid pass
    value, gradient = stored(saved, spec)
    assert value[i, j] == pytest.approx(float(loss(box_at(point), TARGET)), rel=1e-12)
    np.testing.assert_allclose(gradient[i, j], autograd.grad(lambda c: loss(box_at(c), TARGET))(point),
                               rtol=1e-12, atol=1e-15)
    # None of these centres sits on a kink of these losses, so differences must agree too.
    np.testing.assert_allclose(gradient[i, j], central_differences(lambda c: loss(box_at(c), TARGET), point),
                               rtol=1e-6, atol=1e-8)


def test_figure_draws_no_arrow_where_the_gradient_is_zero_and_a_dot_instead(run):
    out, saved = run
    figure = gallery.plot(out)
    ax = next(a for a in figure.axes if a.get_title() == "iou")
    step = max(1, (RESOLUTION - 1) // gallery.ARROWS_PER_AXIS)
    _, gradient = stored(saved, "iou")
    zero = np.all(gradient[::step, ::step] == 0, axis=-1)
    quiver, = [c for c in ax.collections if isinstance(c, Quiver)]
    assert 0 < quiver.N == np.sum(~zero)
    dots, = [line for line in ax.lines if line.get_marker() == "."]
    assert len(dots.get_xdata()) == np.sum(zero) > 0
    assert "exactly zero" in figure.get_suptitle()


def test_replot_redraws_from_the_saved_files_alone(run, tmp_path, monkeypatch, capsys):
    out, _ = run
    for name in ("loss_gallery.npz", "config.json"):
        shutil.copy(out / name, tmp_path / name)

    def no_computing(*args, **kwargs):
        raise AssertionError("--replot computed a loss")

    monkeypatch.setattr(gallery, "evaluate", no_computing)
    monkeypatch.setattr(sandbox, "get_loss", no_computing)
    gallery.main(["--out", str(tmp_path), "--replot"])
    assert (tmp_path / "loss_gallery.png").stat().st_size > 0
    assert str(tmp_path / "loss_gallery.png") in capsys.readouterr().out


def test_replot_without_saved_data_says_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gallery.main(["--out", str(tmp_path / "empty"), "--replot"])
    assert "--replot needs loss_gallery.npz, config.json" in capsys.readouterr().err


def test_default_losses_are_whatever_the_registry_holds_when_it_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(sandbox.LOSSES, "shifted_l2", lambda pred, target: sandbox.l2_loss(pred, target) + 1.0)
    args = gallery.parse_args(["--out", str(tmp_path)])
    assert args.losses == list(sandbox.LOSSES) and "shifted_l2" in args.losses and "giou" in args.losses


@pytest.mark.parametrize("arguments, words", [
    (["--losses", "iou", "no_such_loss"], "unknown loss 'no_such_loss'"),
    (["--losses", "l1:cords=xyxy"], "has no parameter 'cords'"),
    (["--losses", "l1:coords=polar"], "unknown coords 'polar'"),
    (["--losses", "giou", "giou"], "more than once"),
    (["--resolution", "1"], "--resolution must be at least 2"),
    (["--extent", "0"], "--extent takes one or two positive numbers"),
    (["--size", "1", "-1"], "--size must be a positive"),
    (["--target", "0", "0", "1", "0"], "non-positive height"),
])
def test_bad_arguments_stop_before_anything_is_written(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        gallery.main(["--out", str(tmp_path / "out"), "--resolution", "5", *arguments])
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()



def test_an_out_that_is_a_file_stops_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(SystemExit):
        gallery.main(["--out", str(tmp_path / "file"), "--resolution", "5"])
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"
