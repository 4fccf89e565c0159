import csv
import json

import numpy as np
import pytest

from helpers import load_experiment

experiment = load_experiment("stall_vs_converge")


def read_rows(out):
    with open(out / "summary.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_headline_experiment_writes_its_files_and_shows_the_finding(tmp_path, capsys):
    experiment.main(["--out", str(tmp_path)])
    for name in ("stall_vs_converge.png", "summary.csv", "runs.npz", "config.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = read_rows(tmp_path)
    assert len(rows) == 4 * 8
    assert {"loss", "method", "param", "start", "final_iou", "final_giou", "iterations", "stalled",
            "outcome", "message"} <= set(rows[0])
    for row in rows:
        if row["loss"] == "iou":
            assert row["outcome"] == "stalled" and float(row["final_iou"]) == 0 and row["stalled"] == "True"
        else:
            assert float(row["final_iou"]) >= 0.99
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"] == ["gd"] and len(config["start_boxes"]) == 8 and "scipy" in config["versions"]
    saved = np.load(tmp_path / "runs.npz")
    i = next(i for i, r in enumerate(rows) if r["loss"] == "giou")
    assert saved["ious"][i, saved["steps"][i] - 1] == pytest.approx(float(rows[i]["final_iou"]), abs=1e-6)
    printed = capsys.readouterr().out
    assert "iou          gd              0/8" in printed and "8 stalled" in printed
    assert "stall_vs_converge.png" in printed


@pytest.mark.slow
def test_several_methods_add_the_outcome_table_and_replot_reads_saved_data(tmp_path, capsys):
    losses = ["iou", "l1:coords=cxcywh", "alpha_ciou:alpha=3", "inner_giou:ratio=0.8"]
    experiment.main(["--out", str(tmp_path), "--method", "gd", "bfgs", "--losses", *losses,
                     "--starts", "3", "--random-starts", "2", "--maxiter", "20", "--param", "log"])
    rows = read_rows(tmp_path)
    assert len(rows) == 4 * 2 * 5 and {r["method"] for r in rows} == {"gd", "BFGS"}
    assert [r["loss"] for r in rows[::5]][:4] == losses
    assert {r["start"] for r in rows} == {"E", "120deg", "240deg", "random0", "random1"}
    (tmp_path / "outcomes.png").unlink()
    experiment.main(["--out", str(tmp_path), "--replot"])
    assert (tmp_path / "outcomes.png").exists() and read_rows(tmp_path) == rows


@pytest.mark.parametrize("arguments, words", [
    (["--losses", "xiou"], "unknown loss 'xiou'"),
    (["--method", "newton"], "unknown method 'newton'"),
    (["--param", "polar"], "unknown parameterisation 'polar'"),
    (["--gap", "0"], "gap must be a positive number"),
    (["--target", "0", "0", "0", "1"], "non-positive width"),
])
def test_bad_arguments_stop_before_any_run(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), *arguments])
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_or_a_replot_of_nothing_stops_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "file")])
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "empty"), "--replot"])
    assert "--replot needs summary.csv, runs.npz, config.json" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def test_a_setting_a_method_cannot_use_is_reported_once(tmp_path, capsys):
    experiment.main(["--out", str(tmp_path), "--method", "gd", "BFGS", "--lr", "0.1", "--losses", "giou",
                     "--starts", "1", "--maxiter", "3"])
    assert capsys.readouterr().out.count("note: --lr applies to gd, momentum, adam only: BFGS runs without it") == 1


def test_other_settings_are_refused_and_an_interrupted_rerun_leaves_no_figure_of_the_old_run(tmp_path, capsys,
                                                                                           monkeypatch):
    small = ["--out", str(tmp_path), "--losses", "giou", "--starts", "2", "--maxiter", "5"]
    experiment.main(small)
    with pytest.raises(SystemExit):
        experiment.main([*small, "--maxiter", "6"])
    assert "holds a run with other settings (maxiter was 5, is now 6)" in capsys.readouterr().err
    fit, calls = experiment.sandbox.fit, []

    def interrupted_fit(*arguments, **options):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fit(*arguments, **options)

    monkeypatch.setattr(experiment.sandbox, "fit", interrupted_fit)
    with pytest.raises(SystemExit) as stopped:
        experiment.main(small)
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip().startswith("interrupted: the finished runs' rows of summary.csv in")
    assert len(read_rows(tmp_path)) == 1 and not (tmp_path / "stall_vs_converge.png").exists()
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path), "--replot"])
    assert "--replot needs runs.npz" in capsys.readouterr().err
