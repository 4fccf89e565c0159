import csv
import json

import numpy as np
import pytest

from helpers import load_experiment

simulation = load_experiment("regression_simulation")
SMALL = ["--points", "3", "--iterations", "20", "--workers", "2", "--chunk-size", "1024"]


@pytest.mark.slow
def test_experiment_writes_every_file_and_resumes_without_recomputing(tmp_path, capsys):
    simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "iou", "giou", "alpha_ciou:alpha=2"])
    for name in ("iou.npz", "giou.npz", "alpha_ciou_alpha-2.npz", "points.npz", "config.json",
                 "summary.csv", "error_curves.png", "final_error_maps.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    with open(tmp_path / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["loss"] for r in rows] == ["iou", "giou", "alpha_ciou:alpha=2"]
    assert {"loss", "cases", "iterations", "error_first", "error_final", "mean_final_iou",
            "share_iou_above_0.5", "share_iou_above_0.9", "seconds"} <= set(rows[0])
    for row in rows:
        shares = [float(row[f"share_error_{r}"]) for r in ("apart_at_start", "beyond_2", "near_axes")]
        assert all(0 <= share <= 1 for share in shares) and shares[0] > 0.5
    assert rows[0]["cases"] == "1029" and rows[0]["iterations"] == "20"
    saved = np.load(tmp_path / "giou.npz")
    assert saved["errors"].shape == (21,) and saved["final_boxes"].shape == (1029, 4)
    assert float(rows[1]["error_final"]) == pytest.approx(saved["errors"][-1], rel=1e-5)
    assert float(rows[1]["error_final"]) < float(rows[0]["error_final"])  # GIoU moves what IoU leaves
    printed = capsys.readouterr().out
    assert "giou: 1,029 cases x 20 iterations on 2 workers" in printed
    simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "iou", "giou"])
    assert "giou: already done with these settings" in capsys.readouterr().out
    simulation.main(["--out", str(tmp_path), "--replot"])
    assert json.loads((tmp_path / "config.json").read_text())["losses"] == ["iou", "giou", "alpha_ciou:alpha=2"]
    with open(tmp_path / "summary.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 3


def test_results_of_other_settings_are_refused_not_overwritten(tmp_path, capsys):
    simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "giou"])
    before = (tmp_path / "giou.npz").read_bytes()
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "giou", "--reference-gradient"])
    assert "holds a run with other settings (reference_gradient was false, is now true)" in capsys.readouterr().err
    assert (tmp_path / "giou.npz").read_bytes() == before


def test_authors_gradient_and_repairs_are_labelled(tmp_path):
    simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "giou", "--gradient", "authors",
                     "--repairs", "intersection"])
    with open(tmp_path / "summary.csv", newline="") as file:
        assert next(csv.DictReader(file))["gradient"] == "authors + intersection repaired"


@pytest.mark.parametrize("arguments, words", [
    (["--losses", "xiou"], "unknown loss 'xiou'"),
    (["--points", "0"], "--points must be at least 1"),
    (["--chunk-size", "1000"], "--chunk-size must be a positive multiple of 1024"),
    (["--gradient", "authors", "--losses", "siou"], "the authors' code has gradients for iou, giou, diou, ciou"),
    (["--repairs", "distance"], "--repairs corrects the authors' gradients"),
    (["--gradient", "authors", "--reference-gradient"],
     "--gradient authors runs that code, doubling already: give one or the other"),
])
def test_bad_arguments_stop_before_any_work(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(tmp_path / "out"), *arguments])
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_or_a_replot_of_nothing_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(tmp_path / "file"), *SMALL])
    assert "is a file; give a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(tmp_path / "empty"), "--replot"])
    assert "--replot needs config.json, points.npz" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists() and (tmp_path / "file").read_text() == "keep me"


@pytest.mark.slow
def test_a_dask_cluster_on_the_loopback_gives_the_same_errors_as_local_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    simulation.main(["--out", str(tmp_path / "local"), *SMALL, "--losses", "giou"])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        simulation.main(["--out", str(tmp_path / "dask"), *SMALL, "--losses", "giou", "--scheduler",
                         cluster.scheduler_address])
    local, dask = np.load(tmp_path / "local" / "giou.npz"), np.load(tmp_path / "dask" / "giou.npz")
    assert np.array_equal(local["errors"], dask["errors"]) and np.array_equal(local["mean_iou"], dask["mean_iou"])


def read_rows(out, without=("seconds",)):
    with open(out / "summary.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key not in without} for row in csv.DictReader(file)]


@pytest.mark.slow
def test_keeping_summaries_only_gives_the_same_summary_and_figures_from_far_smaller_files(tmp_path, capsys):
    full, lean = tmp_path / "full", tmp_path / "lean"
    simulation.main(["--out", str(full), *SMALL, "--losses", "iou", "giou"])
    simulation.main(["--out", str(lean), *SMALL, "--losses", "iou", "giou", "--keep", "summaries"])
    assert json.loads((lean / "config.json").read_text())["keep"] == "summaries"
    assert json.loads((full / "config.json").read_text())["keep"] == "all"
    with np.load(lean / "giou.npz") as saved:
        assert not set(simulation.PER_CASE) & set(saved.files)
        assert saved["final_error_per_centre"].shape == (3,)
    assert (lean / "giou.npz").stat().st_size * 5 < (full / "giou.npz").stat().st_size
    assert read_rows(lean) == read_rows(full) and len(read_rows(full)) == 2
    figures = ("error_curves.png", "final_error_maps.png")
    for name in figures:
        assert (lean / name).read_bytes() == (full / name).read_bytes(), name
        (lean / name).unlink()
    (lean / "summary.csv").unlink()
    simulation.main(["--out", str(lean), "--replot"])
    for name in figures:
        assert (lean / name).read_bytes() == (full / name).read_bytes(), name

    # a folder of summaries is not completed with per-case arrays unasked: refused before any work
    before = (lean / "giou.npz").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(lean), *SMALL, "--losses", "iou", "giou", "diou"])
    assert ("holds iou.npz, giou.npz without per-case arrays (--keep summaries): give --keep summaries to add "
            "to this folder, or delete iou.npz giou.npz") in capsys.readouterr().err
    assert (lean / "giou.npz").read_bytes() == before and not (lean / "diou.npz").exists()
    # losses saved with their arrays hold the summaries too: a --keep summaries rerun reuses them
    simulation.main(["--out", str(full), *SMALL, "--losses", "iou", "giou", "diou", "--keep", "summaries"])
    assert "giou: already done with these settings" in capsys.readouterr().out
    with np.load(full / "giou.npz") as saved, np.load(full / "diou.npz") as added:
        assert "final_boxes" in saved.files and "final_boxes" not in added.files
    assert [row["loss"] for row in read_rows(full)] == ["iou", "giou", "diou"]


def test_a_loss_saved_before_the_summaries_existed_is_summarised_from_its_arrays(tmp_path):
    simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "giou"])
    expected = {name: (tmp_path / name).read_bytes() for name in ("summary.csv", "final_error_maps.png")}
    with np.load(tmp_path / "giou.npz") as saved:  # the layout of sandbox 0.x: no summaries
        old = {key: saved[key] for key in ("errors", "mean_iou", "final_boxes", "final_errors", "final_ious",
                                           "seconds", "settings")}
    np.savez_compressed(tmp_path / "giou.npz", **old)
    simulation.main(["--out", str(tmp_path), "--replot"])
    assert (tmp_path / "final_error_maps.png").read_bytes() == expected["final_error_maps.png"]
    simulation.main(["--out", str(tmp_path), *SMALL, "--losses", "giou"])  # reused, summarised as before
    assert (tmp_path / "summary.csv").read_bytes() == expected["summary.csv"]


@pytest.mark.slow
def test_the_oriented_simulation_runs_every_oriented_loss_and_resumes(tmp_path, capsys):
    from sandbox.losses.oriented import ORIENTED_LOSSES
    simulation.main(["--out", str(tmp_path), "--oriented", "--points", "2", "--iterations", "30", "--workers", "1"])
    with open(tmp_path / "summary.csv", newline="") as file:
        rows = {row["loss"]: row for row in csv.DictReader(file)}
    assert list(rows) == list(ORIENTED_LOSSES)
    assert {row["cases"] for row in rows.values()} == {"686"} and {row["gradient"] for row in rows.values()} == {"autograd"}
    saved = np.load(tmp_path / "gwd.npz")
    assert saved["final_boxes"].shape == (686, 5)
    # rotated IoU leaves the cases that start apart where they are; rotated GIoU moves them
    assert float(rows["rotated_giou"]["error_final"]) < float(rows["rotated_iou"]["error_final"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["oriented"] is True and config["points"] == 2 and config["gradient"] == "autograd"
    simulation.main(["--out", str(tmp_path), "--oriented", "--points", "2", "--iterations", "30", "--losses", "gwd"])
    assert "gwd: already done with these settings" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(tmp_path), "--points", "2", "--iterations", "30", "--losses", "giou"])
    assert "holds a run with other settings" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, words", [
    (["--oriented", "--losses", "giou"], "loss 'giou' is axis-aligned; --oriented takes the oriented losses"),
    (["--losses", "gwd"], "loss 'gwd' is oriented: give --oriented"),
    (["--oriented", "--gradient", "fused"], "--gradient fused has no oriented losses"),
])
def test_the_oriented_simulation_refuses_losses_of_the_other_kind(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        simulation.main(["--out", str(tmp_path), *arguments])
    assert words in capsys.readouterr().err
