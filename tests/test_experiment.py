import csv
import json

import numpy as np
import pytest

from helpers import load_experiment
from sandbox import fit
from sandbox.runs import sweep as sweeps
from sandbox.runs.store import Store, load_boxes

experiment = load_experiment("stall_vs_converge")


def read_rows(out):
    with open(out / "results.csv", newline="") as file:
        return list(csv.DictReader(file))


def without_time(rows):
    """The rows as a sorted list, less the seconds each run took (which no two runs share)."""
    return sorted(tuple((k, v) for k, v in row.items() if k != "seconds") for row in rows)


@pytest.mark.slow
def test_headline_experiment_writes_its_files_and_shows_the_finding(tmp_path, capsys):
    experiment.main(["--out", str(tmp_path)])
    for name in ("stall_vs_converge.png", "results.csv", "sweep.json", "versions.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = read_rows(tmp_path)
    assert len(rows) == 4 * 8 and rows[0].keys() == set(sweeps.RESULT_COLUMNS)
    for row in rows:
        if row["loss"] == "iou":
            assert row["outcome"] == "stalled" and float(row["final_iou"]) == 0 and row["stalled"] == "True"
        else:
            assert float(row["final_iou"]) >= 0.99 and row["lr"] == "0.3"  # the default rate, as used
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert sweep["axes"]["method"] == ["gd"] and sweep["record_boxes"] and not sweep["iou_weighting"]
    starts, labels = sweeps.make_starts(sweep["starts"]["ring"], sweep["target"], seed=0)
    giou = [row for row in rows if row["loss"] == "giou"]
    assert [row["start"] for row in giou] == labels
    for start, boxes in zip(starts, load_boxes(tmp_path, giou[0]["cell"])):
        again = fit(start, sweep["target"], loss="giou", method="gd")
        np.testing.assert_array_equal(boxes, again.boxes)  # every step kept, exactly as fit takes them
    printed = capsys.readouterr().out
    assert "iou          gd              0/8" in printed and "8 stalled" in printed
    assert "stall_vs_converge.png" in printed


def test_the_default_grid_is_the_headline_sweeps(tmp_path):
    # experiments/sweeps/headline.toml runs the same cells: same ids, so the same rows
    args, _ = experiment.parse_args(["--out", str(tmp_path / "out")])
    headline = sweeps.load(sweeps.Path(experiment.__file__).parent / "sweeps" / "headline.toml")
    assert [sweeps.cell_id(c) for c in sweeps.cells(args.sweep)] == [sweeps.cell_id(c) for c in sweeps.cells(headline)]


@pytest.mark.slow
def test_several_methods_add_the_outcome_table_and_replot_reads_saved_data(tmp_path, capsys):
    losses = ["iou", "l1:coords=cxcywh", "alpha_ciou:alpha=3", "inner_giou:ratio=0.8"]
    experiment.main(["--out", str(tmp_path), "--method", "gd", "bfgs", "--losses", *losses,
                     "--starts", "3", "--random-starts", "2", "--maxiter", "20", "--param", "log"])
    rows = read_rows(tmp_path)
    assert len(rows) == 4 * 2 * 5 and {r["method"] for r in rows} == {"gd", "BFGS"}
    assert {r["loss"] for r in rows} == set(losses)
    assert {r["start"] for r in rows} == {"E", "120deg", "240deg", "random0", "random1"}
    # every loss and method starts from the same random boxes: the comparison is paired
    assert len({(r["start"], r["start_box"]) for r in rows}) == 5
    (tmp_path / "outcomes.png").unlink()
    experiment.main(["--out", str(tmp_path), "--replot"])
    assert (tmp_path / "outcomes.png").exists() and read_rows(tmp_path) == rows


@pytest.mark.parametrize("arguments, words", [
    (["--losses", "xiou"], "unknown loss 'xiou'"),
    (["--method", "newton"], "unknown method 'newton'"),
    (["--param", "polar"], "unknown parameterisation 'polar'"),
    (["--gap", "0"], "--gap must be a positive number; got 0.0"),
    (["--start-size", "1", "-1"], "--start-size must be a positive number; got 1.0 -1.0"),
    (["--target", "0", "0", "0", "1"], "non-positive width"),
    (["--starts", "0"], "no starts"),
])
def test_bad_arguments_stop_before_any_run(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert words in error[-1] and ": error: " in error[-1]  # one line, after the usage
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_a_replot_of_nothing_or_an_old_layout_stops_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "file")])
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "empty"), "--replot"])
    assert "--replot needs results.csv, sweep.json" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "summary.csv").write_text("loss,method\n")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "old")])
    assert "holds a run of an earlier version of this script" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["summary.csv"]


def test_a_setting_a_method_cannot_use_is_reported_once(tmp_path, capsys):
    experiment.main(["--out", str(tmp_path), "--method", "gd", "BFGS", "--lr", "0.1", "--iou-weighting",
                     "--losses", "giou", "--starts", "1", "--maxiter", "3", "--workers", "1"])
    note = "note: lr and iou_weighting apply to gd, momentum, adam only: BFGS runs without them"
    assert capsys.readouterr().out.count(note) == 1
    lrs = {row["method"]: row["lr"] for row in read_rows(tmp_path)}
    assert lrs == {"gd": "0.1", "BFGS": ""}


def test_iou_weighting_scales_the_steps_as_fit_does(tmp_path):
    experiment.main(["--out", str(tmp_path), "--losses", "giou", "--starts", "2", "--maxiter", "30",
                     "--iou-weighting", "--workers", "1"])
    args, _ = experiment.parse_args(["--out", str(tmp_path / "other"), "--losses", "giou", "--starts", "2",
                                     "--maxiter", "30", "--iou-weighting"])
    starts, _ = experiment.make_starts(args)
    boxes = load_boxes(tmp_path, read_rows(tmp_path)[0]["cell"])
    for start, kept in zip(starts, boxes):
        weighted = fit(start, args.target, loss="giou", maxiter=30, iou_weighting=True)
        np.testing.assert_array_equal(kept, weighted.boxes)
        assert not np.array_equal(kept, fit(start, args.target, loss="giou", maxiter=30).boxes)


def small(out, *more):
    return ["--out", str(out), "--losses", "iou", "giou", "l1", "--method", "gd", "adam", "--starts", "3",
            "--random-starts", "1", "--maxiter", "15", *more]


@pytest.mark.slow
def test_a_run_killed_part_way_then_rerun_gives_the_rows_and_figures_of_an_uninterrupted_run(tmp_path, capsys,
                                                                                             monkeypatch):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    experiment.main(small(whole, "--workers", "1"))
    append, calls = Store.append, []

    def interrupted_append(store, *arguments):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(store, *arguments)

    monkeypatch.setattr(Store, "append", interrupted_append)
    with pytest.raises(SystemExit) as stopped:
        experiment.main(small(broken, "--workers", "1"))
    assert stopped.value.code == 130
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said.startswith("interrupted: the finished cells' rows and histories in") and "goes on" in said
    assert len(read_rows(broken)) == 3 + 1 and not (broken / "stall_vs_converge.png").exists()
    with pytest.raises(SystemExit):  # --replot draws nothing from part of a run
        experiment.main(["--out", str(broken), "--replot"])
    assert "holds 2 of the run's 12 cells; run the same command without --replot" in capsys.readouterr().err
    monkeypatch.setattr(Store, "append", append)
    with open(broken / "results.csv", "a") as file:  # and a row cut short, as kill -9 mid-write leaves
        file.write("giou,gd,xy")
    experiment.main(small(broken, "--workers", "2"))
    assert without_time(read_rows(broken)) == without_time(read_rows(whole))
    for name in ("stall_vs_converge.png", "outcomes.png"):
        assert (broken / name).read_bytes() == (whole / name).read_bytes(), name


def test_other_settings_are_refused_and_replot_draws_only_the_saved_run(tmp_path, capsys):
    run = ["--out", str(tmp_path), "--losses", "giou", "--starts", "2", "--maxiter", "5", "--workers", "1"]
    experiment.main(run)
    figure = (tmp_path / "stall_vs_converge.png").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        experiment.main([*run, "--maxiter", "6"])
    error = capsys.readouterr().err.strip()
    assert "holds the results of a different sweep (axes.maxiter was [5], is now [6])" in error
    assert len(error.splitlines()) == 1
    (tmp_path / "stall_vs_converge.png").unlink()
    experiment.main(["--out", str(tmp_path), "--replot"])
    assert (tmp_path / "stall_vs_converge.png").read_bytes() == figure
