"""Which loss: every loss x setting x measure in evidence.csv, failures said not ranked, reruns reuse every part."""
import contextlib
import io
import json
import re
import shutil

import numpy as np
import pytest

from helpers import load_experiment
from sandbox.runs import evidence
from sandbox.learning import training
from sandbox.runs.records import read_csv

experiment = load_experiment("which_loss")

TINY = dict(losses=[], seeds=1, epochs=1, lrs=[1e-3, 3e-3], train=48, val=16, test=16, model="mlp", batch_size=16)
LOSSES = ["iou", "giou", "l1"]


def reduced(out, *more):
    return ["--losses", *LOSSES, "--seeds", "2", "--starts", "3", "--lrs", "0.1", "0.3", "--points", "2",
            "--learning", "tiny", "--workers", "1", "--out", str(out), *more]


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(training.LEARNING_PRESETS, "tiny", TINY)


@pytest.fixture(scope="module")
def ran_once(tmp_path_factory):
    """The reduced protocol, run once for the module: (folder, what it printed)."""
    out = tmp_path_factory.mktemp("which") / "which"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setitem(training.LEARNING_PRESETS, "tiny", TINY)
        experiment.main(reduced(out))
    return out, printed.getvalue()


@pytest.fixture
def ran(ran_once, tmp_path, tiny_preset):
    """A copy of the reduced run of the module, which a test may change."""
    out, printed = ran_once
    shutil.copytree(out, tmp_path / "which")
    return tmp_path / "which", printed


@pytest.mark.slow
def test_the_evidence_has_every_loss_setting_and_measure_once(ran):
    out, _ = ran
    rows = read_csv(out / "evidence.csv")
    assert list(rows[0]) == evidence.EVIDENCE_COLUMNS
    keys = [(r["loss"], r["setting"], r["measure"]) for r in rows]
    assert sorted(keys) == sorted((loss, setting, measure) for loss in LOSSES
                                  for setting, measures in evidence.SETTING_MEASURES.items() for measure in measures)
    ranking = read_csv(out / "ranking.csv")
    assert sorted((r["loss"], r["setting"]) for r in ranking) == sorted((loss, s) for loss in LOSSES
                                                                        for s in evidence.SETTINGS)
    assert (out / "ranks.png").stat().st_size > 10_000 and (out / "summary.txt").read_text().count("ranked by") == 3
    # within a seed, every loss, optimiser and rate starts from the same boxes
    starts = {}
    for row in read_csv(out / "single_box" / "results.csv"):
        starts.setdefault((row["starts"], row["seed"]), {}).setdefault((row["loss"], row["method"], row["lr"]),
                                                                       []).append(row["start_box"])
    assert len(starts) == 4 and all(len({tuple(sorted(b)) for b in by_cell.values()}) == 1
                                    for by_cell in starts.values())
    learning = [r for r in rows if r["setting"] == "learning"]
    assert all(r["spread"] != "" for r in learning)  # two seeds: a spread
    assert all(r["spread"] == "" for r in rows if r["setting"] == "simulation")  # one protocol: none
    # every pair of losses, once per measure with a per-item score, paired on the same items
    pairs = read_csv(out / "pairs.csv")
    assert list(pairs[0]) == evidence.PAIR_COLUMNS
    measures = {"single_box": {m for m in evidence.SETTING_MEASURES["single_box"] if m.startswith("share")},
                "learning": set(evidence.SETTING_MEASURES["learning"])}
    assert sorted((p["setting"], p["measure"], p["loss_a"], p["loss_b"]) for p in pairs) == sorted(
        (setting, measure, a, b) for setting, chosen in measures.items() for measure in chosen
        for n, a in enumerate(LOSSES) for b in LOSSES[n + 1:])
    assert {(p["setting"], p["method"], p["items"]) for p in pairs} == {
        ("single_box", "stratified_bootstrap", "12"), ("single_box", "stratified_bootstrap", "6"),
        ("learning", "two_way_bootstrap", str(2 * TINY["test"]))}


@pytest.mark.slow
def test_iou_is_reported_failing_from_non_overlapping_single_starts_not_ranked(ran):
    out, printed = ran
    by_key = {(r["loss"], r["setting"]): r for r in read_csv(out / "ranking.csv")}
    iou = by_key["iou", "single_box"]
    assert iou["failed"] == "True" and iou["rank"] == "" and "gradient there is exactly zero" in iou["reason"]
    assert by_key["iou", "simulation"]["failed"] == "True"
    assert by_key["giou", "single_box"]["failed"] == "False" and by_key["giou", "single_box"]["rank"] in ("1", "2")
    assert "| `iou` | fails | fails |" in printed and "| `iou` | fails | fails |" in (out / "table.md").read_text()
    assert "fails  iou   never moves from a non-overlapping start" in (out / "summary.txt").read_text()
    values = {(r["loss"], r["measure"]): float(r["value"]) for r in read_csv(out / "evidence.csv")
              if r["setting"] == "single_box"}
    assert values["iou", "share_home_apart_gd"] == 0 and values["giou", "share_home_apart_gd"] > 0


@pytest.mark.slow
def test_a_rerun_reuses_every_finished_part_and_writes_the_same_tables(ran, capsys):
    out, _ = ran
    before = {path: path.read_bytes() for part in experiment.PARTS for path in (out / part).glob("results.csv")}
    tables = {name: (out / name).read_bytes() for name in ("evidence.csv", "pairs.csv", "ranking.csv", "rates.csv")}
    experiment.main(reduced(out))
    printed = capsys.readouterr().out
    # learning: as many cells as its results called for (the rate grid grows where a loss's best rate is at an end)
    learning = len(read_csv(out / "learning" / "results.csv"))
    assert printed.count(" to run,") == 3 and all(f"{n}, 0 to run" in printed
                                                  for n in ("48 cells", "3 cells", f"{learning} cells so far"))
    assert {path: path.read_bytes() for path in before} == before
    assert {name: (out / name).read_bytes() for name in tables} == tables


@pytest.mark.slow
def test_an_interrupted_part_runs_only_its_missing_cells(ran, capsys):
    out, _ = ran
    results = out / "learning" / "results.csv"
    whole = read_csv(results)
    lines = results.read_text().splitlines(keepends=True)
    cells = len(lines) - 1
    results.write_text("".join(lines[:-2]) + lines[-2][:10])  # one cell gone, one torn mid-row
    with pytest.raises(SystemExit):  # nothing is drawn from part of a run
        experiment.main(["--replot", "--out", str(out)])
    said = re.search(r"holds (\d+) of the (\d+) cells its results so far call for; run the same command without "
                     r"--replot", capsys.readouterr().err)
    assert said and int(said[1]) == cells - 2 and int(said[2]) > cells - 2
    experiment.main(reduced(out))
    # the two cells run again, in as many rounds as the rows left call for (a missing cell may be one the
    # rate grid grew to, which the first round does not know of yet); every other row is kept as it was
    assert "cells so far, " in capsys.readouterr().out
    strip = lambda rows: sorted(tuple((k, v) for k, v in r.items() if k != "seconds") for r in rows)  # noqa: E731
    assert strip(read_csv(results)) == strip(whole) and results.read_text().startswith("".join(lines[:-2]))


@pytest.mark.slow
def test_other_settings_under_the_same_folder_are_refused_in_one_line(ran, capsys):
    out, _ = ran
    with pytest.raises(SystemExit) as stop:
        experiment.main(reduced(out, "--points", "3"))
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "holds a run with other settings" in error and "points" in error
    assert json.loads((out / "config.json").read_text())["points"] == 2


@pytest.mark.parametrize("arguments, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--lrs", "0.1", "-1"], "--lrs must be positive"),
    (["--losses", "giou", "GIoU"], "more than once"),
    (["--losses", "gioo"], "did you mean"),
    (["--learning", "huge"], "invalid choice"),
])
def test_bad_arguments_stop_before_any_work_naming_the_problem(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as stop:
        experiment.main(["--out", str(tmp_path / "which"), *arguments])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "which").exists()


def test_the_simulation_runs_on_the_fused_backend_whose_rounding_it_is_ranked_with(tmp_path):
    # sandbox.runs.evidence.ROUNDING_MEASURED is the fused kernels' own rounding: every loss of the
    # simulation must run on them, named in the sweep (the default backend is autograd)
    args, _ = experiment.parse_args(["--quick", "--out", str(tmp_path / "which")])
    assert args.sweeps["simulation"]["simulation"]["gradient"] == "fused"


def test_replot_without_a_finished_run_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        experiment.main(["--replot", "--out", str(tmp_path / "nothing")])
    assert "config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_on_a_dask_cluster_the_tables_are_the_same_as_with_local_workers(ran, tmp_path):
    distributed = pytest.importorskip("distributed")
    local, _ = ran
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        experiment.main(reduced(tmp_path / "dask", "--scheduler", cluster.scheduler_address))
    for name in ("evidence.csv", "pairs.csv", "ranking.csv", "rates.csv", "summary.txt"):
        assert (tmp_path / "dask" / name).read_text() == (local / name).read_text()


@pytest.mark.slow
def test_the_tables_do_not_depend_on_the_order_the_cells_finished_in(ran):
    out, _ = ran
    tables = {name: (out / name).read_bytes() for name in ("evidence.csv", "pairs.csv", "ranking.csv", "summary.txt",
                                                           "table.md")}
    for part in experiment.PARTS:
        header, *lines = (out / part / "results.csv").read_text().splitlines(keepends=True)
        (out / part / "results.csv").write_text(header + "".join(reversed(lines)))
    experiment.main(["--replot", "--out", str(out)])
    assert {name: (out / name).read_bytes() for name in tables} == tables


def test_the_tables_rank_single_boxes_and_learning_by_paired_differences(tmp_path):
    # the three settings' saved rows, made up: a beats b on every start and every test image by a little,
    # less than the seeds' spreads added; the simulation, without paired items, by the rounding
    def single_box(loss, seed, start, home):
        return dict(loss=loss, method=method, lr="0.1", seed=str(seed), starts=kind, start=f"{kind}{start}",
                    start_box=f"{seed} {start} 1 1", converged=str(home), stalled="False",
                    **{"iterations_to_iou_0.5": "5", "iterations_to_iou_0.9": "9"})

    rows = {"single_box": [], "simulation": [], "learning": []}
    for method in evidence.METHODS:
        for kind in (evidence.APART, evidence.OVERLAPPING):
            for seed in range(3):
                for start in range(16):
                    # a seed whose starts are hard for both losses; b misses 2 of each seed's 16 apart starts
                    easy = seed != 0 or start < 4
                    rows["single_box"].append(single_box("a", seed, start, easy))
                    rows["single_box"].append(single_box("b", seed, start, easy and not (kind == evidence.APART
                                                                                          and start in (1, 2))))
    for loss, mean in (("a", "0.9900"), ("b", "0.9895")):
        rows["simulation"].append(dict(loss=loss, seed="0", cases="1715000", error_final="30", mean_final_iou=mean,
                                       **{"share_final_iou_above_0.5": "1", "share_final_iou_above_0.9": "1"},
                                       iterations_to_tenth_error="90", cases_apart="10", share_apart_moved="1"))
    hardness = np.linspace(0.3, 0.95, 50)
    for loss, gain in (("a", 0.03), ("b", 0.0)):
        for seed, shift in enumerate((0.0, -0.2, 0.1)):  # seeds good or bad for both losses
            ious = np.clip(hardness + shift + gain, 0, 1)
            rows["learning"].append(dict(loss=loss, seed=seed, lr=1e-3, diverged=False, val=dict(accuracy_mean=0.5),
                                         test={m: float(np.mean(evidence.image_scores(ious, m)))
                                               for m in evidence.SETTING_MEASURES["learning"]},
                                         test_ious=ious.tolist()))
    table, ranking, _ = experiment.tables(tmp_path, rows)
    ranks = {(r["setting"], r["loss"]): r["rank"] for r in ranking}
    assert ranks == {("single_box", "a"): 1, ("single_box", "b"): 2, ("simulation", "a"): 1,
                     ("simulation", "b"): 1, ("learning", "a"): 1, ("learning", "b"): 2}
    # the seeds' spreads added would have tied both settings
    assert {(r["setting"], r["loss"]): r["rank"] for r in evidence.rank_settings(table, {})} == {
        (setting, loss): 1 for setting in evidence.SETTINGS for loss in "ab"}
    pairs = read_csv(tmp_path / "pairs.csv")
    assert {p["setting"] for p in pairs} == {"single_box", "learning"} and all(p["tied"] in ("True", "False")
                                                                                for p in pairs)
    again = evidence.rank_settings(read_csv(tmp_path / "evidence.csv"), {}, pairs=pairs)  # read back, as text
    assert [(r["setting"], r["loss"], r["rank"]) for r in again] == [(r["setting"], r["loss"], r["rank"])
                                                                     for r in ranking]
    text = (tmp_path / "summary.txt").read_text()
    assert ("single_box: ranked by share_home (higher is better); tied when the 95 % interval of the paired "
            "difference contains 0 (a bootstrap over the starts within each seed and start set)") in text
    assert "simulation: ranked by mean_final_iou (higher is better); tied within the seeds' spreads added, or 0.001" in text


@pytest.mark.slow
def test_the_oriented_setting_ranks_the_oriented_losses_in_two_settings_and_says_rotated_iou_fails(tmp_path):
    out = tmp_path / "oriented"
    experiment.main(["--oriented", "--losses", "rotated_iou", "rotated_giou", "gwd", "--seeds", "1", "--starts", "3",
                     "--lrs", "0.1", "--points", "1", "--workers", "1", "--out", str(out)])
    ranking = read_csv(out / "ranking.csv")
    assert sorted({r["setting"] for r in ranking}) == ["simulation", "single_box"]
    failed = {(r["loss"], r["setting"]) for r in ranking if r["failed"] == "True"}
    assert failed == {("rotated_iou", "single_box"), ("rotated_iou", "simulation")}
    config = json.loads((out / "config.json").read_text())
    assert config["oriented"] is True and "learning" not in config and config["points"] == 1
    starts = [row["start_box"] for row in read_csv(out / "single_box" / "results.csv")]
    assert all(len(box.split()) == 5 for box in starts)
    assert (out / "summary.txt").read_text().count("ranked by") == 2
    experiment.main(["--replot", "--out", str(out)])  # redrawn from the two settings alone


@pytest.mark.parametrize("arguments, words", [
    (["--oriented", "--losses", "giou"], "loss 'giou' is axis-aligned: --oriented ranks the oriented losses"),
    (["--losses", "gwd"], "loss 'gwd' is oriented: give --oriented"),
    (["--oriented", "--learning", "quick"], "--oriented has no learning part"),
])
def test_the_oriented_setting_refuses_what_it_cannot_rank(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main([*arguments, "--out", str(tmp_path / "out")])
    assert words in capsys.readouterr().err
