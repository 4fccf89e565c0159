"""experiments/oriented_boxes.py: its files, its refusals, and the claims its figures make, read from its saved data."""
import json

import numpy as np
import pytest

from helpers import ROOT, load_experiment
from sandbox.runs.records import read_csv

experiment = load_experiment("oriented_boxes")
COMMITTED = ROOT / "docs" / "data" / "oriented_boxes"
DATA = ["config.json", "results.csv", "theta.npz", "gallery.npz", "kfiou_centre.npz"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick preset, run once for the tests of this module that read it."""
    out = tmp_path_factory.mktemp("oriented") / "quick"
    experiment.main(["--quick", "--out", str(out)])
    return out


def rows_of(out, part):
    return [row for row in read_csv(out / "results.csv") if row["part"] == part]


@pytest.mark.slow
def test_the_quick_preset_writes_its_data_and_every_figure_and_replot_redraws_them_alike(quick_run, capsys):
    names = [*experiment.FIGURES.values(), experiment.ANIMATION, *DATA]
    for name in names:
        assert (quick_run / name).stat().st_size > 0, name
    config = json.loads((quick_run / "config.json").read_text())
    assert config["starts"] == experiment.QUICK["starts"] and config["maxiter"] == 300 and config["method"] == "adam"
    assert "numpy" in json.dumps(config)  # the package versions, recorded
    figures = {name: (quick_run / name).read_bytes() for name in experiment.FIGURES.values()}
    for name in figures:
        (quick_run / name).unlink()
    experiment.main(["--replot", "--no-animation", "--out", str(quick_run)])
    for name, drawn in figures.items():
        assert (quick_run / name).read_bytes() == drawn, name
    assert "rotated_iou" in capsys.readouterr().out


def check_stall(rows):
    """Rotated IoU never moves from IoU 0; every other loss brings every start to IoU >= 0.99."""
    assert {row["loss"] for row in rows} == {"rotated_iou", "rotated_giou", "gwd", "kld", "kfiou", "probiou"}
    for row in rows:
        if row["loss"] == "rotated_iou":
            assert row["outcome"] == "stalled" and float(row["final_iou"]) == 0 and row["nit"] == "0", row
        else:
            assert float(row["final_iou"]) >= 0.99, row


def check_boundary(rows, config):
    """Raw L1 turns the box the long way round the angle boundary; the Gaussian losses the short way."""
    target, start = config["boundary_target"][4], config["boundary_start"][4]
    long_way, short_way = abs(start - target), np.pi - abs(start - target)  # the same rectangle either way
    turned = {row["loss"]: float(row["turned"]) for row in rows}
    assert abs(turned["rotated_l1"]) == pytest.approx(long_way, abs=0.05)
    for loss in ("gwd", "kld", "kfiou", "probiou"):
        assert abs(turned[loss]) == pytest.approx(short_way, abs=0.05), loss


def check_kfiou_runs(rows):
    """KFIoU's overlap term alone leaves the centre where it started; with its centre term the box comes home."""
    runs = {row["loss"]: row for row in rows}
    alone = runs["kfiou:centre=False"]
    assert json.loads(alone["final_box"])[:2] == pytest.approx(json.loads(alone["start_box"])[:2], abs=1e-12)
    assert float(alone["final_iou"]) == 0 and float(runs["kfiou"]["final_iou"]) >= 0.99


@pytest.mark.slow
def test_the_quick_run_shows_each_claim_of_the_figures(quick_run):
    config = json.loads((quick_run / "config.json").read_text())
    check_stall(rows_of(quick_run, "stall"))
    check_boundary(rows_of(quick_run, "boundary"), config)
    check_kfiou_runs(rows_of(quick_run, "kfiou"))
    with np.load(quick_run / "kfiou_centre.npz") as saved:
        pulls = dict(zip(saved["specs"], saved["pulls"]))
        apart = saved["ious"] == 0
    assert apart.any() and np.all(pulls["kfiou:centre=False"] == 0)  # no pull at all, apart or not
    assert np.all(pulls["kfiou"][apart] > 0)


def test_the_committed_run_is_the_default_command_and_shows_each_claim_of_the_figures(tmp_path):
    # docs/results/oriented-boxes.md shows its figures and quotes its numbers
    config = json.loads((COMMITTED / "config.json").read_text())
    args = experiment.parse_args(["--out", str(tmp_path / "out")])
    defaults = json.loads(json.dumps(experiment.settings(args)))
    assert {key: config[key] for key in defaults} == defaults, (
        "docs/data/oriented_boxes/ is not a run of the default command: run python experiments/oriented_boxes.py "
        "--out results/oriented_boxes, copy its config.json and results.csv there and its figures to docs/figures/")
    rows = read_csv(COMMITTED / "results.csv")
    check_stall([row for row in rows if row["part"] == "stall"])
    check_boundary([row for row in rows if row["part"] == "boundary"], config)
    check_kfiou_runs([row for row in rows if row["part"] == "kfiou"])
    for name in [*experiment.FIGURES.values(), experiment.ANIMATION]:
        assert (ROOT / "docs" / "figures" / name).stat().st_size > 0, name


@pytest.mark.parametrize("arguments, words", [
    (["--stall-losses", "rotated_xiou"], "rotated_xiou"),
    (["--method", "BFGS"], "--method must be one of gd, momentum, adam"),
    (["--target", "0", "0", "-1", "1", "0"], "non-positive width"),
    (["--starts", "0"], "--starts must be at least 1"),
    (["--gap", "0"], "--gap must be a positive number"),
])
def test_bad_arguments_stop_before_any_run(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert words in error[-1] and ": error: " in error[-1]
    assert not (tmp_path / "out").exists()


def test_a_run_with_other_settings_is_refused_and_replot_needs_a_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"maxiter": 5, "method": "adam"}))
    with pytest.raises(SystemExit):
        experiment.main(["--quick", "--out", str(tmp_path)])
    assert "holds a run with other settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiment.main(["--replot", "--out", str(tmp_path / "empty")])
    assert "--replot needs config.json, results.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_an_interrupted_run_keeps_its_finished_parts_and_the_same_command_finishes_it_alike(quick_run, tmp_path,
                                                                                            monkeypatch, capsys):
    fit_all, calls = experiment.fit_all, []

    def interrupted(*arguments):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fit_all(*arguments)

    monkeypatch.setattr(experiment, "fit_all", interrupted)
    command = ["--quick", "--no-animation", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as stopped:
        experiment.main(command)
    assert stopped.value.code == 130 and "the same command goes on from there" in capsys.readouterr().err
    assert len(list((tmp_path / "runs").glob("*.npz"))) == 2 and not (tmp_path / "results.csv").exists()
    monkeypatch.setattr(experiment, "fit_all", fit_all)
    experiment.main(command)
    assert read_csv(tmp_path / "results.csv") == read_csv(quick_run / "results.csv")
