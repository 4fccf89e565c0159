"""What moves with the machine (issue 17, point 5): the comparison, the environments, the command."""
import fcntl
import json

import numpy as np
import pytest

from helpers import load_experiment
from sandbox.runs import emulation
from sandbox.runs.evidence import EVIDENCE_COLUMNS, RANKING_COLUMNS
from sandbox.runs.records import read_csv, write_csv
from sandbox.runs.sweep import RESULT_COLUMNS

experiment = load_experiment("reproducibility")


def headline_rows(**changes):
    """Two runs of a headline-like sweep: results.csv rows as a sweep writes them, with `changes` to the second."""
    rows = []
    for start, final_iou, outcome in (("E", "0.996512", "max_iterations"), ("W", "0.000000", "stalled")):
        rows.append(dict(loss="giou", method="gd", param="xyxy", lr="0.3", schedule="step", starts="ring",
                         maxiter="200", seed="0", start=start, start_box="1.5 -0.75 2.5 0.75", final_iou=final_iou,
                         final_giou="0.99", iterations="200", stalled=str(outcome == "stalled"),
                         converged=str(float(final_iou) >= 0.99), outcome=outcome, seconds="0.01", cell="c0",
                         runs="2", **{"iterations_to_iou_0.5": "", "iterations_to_iou_0.9": ""}))
    rows[1].update(changes)
    return rows


def measured(tmp_path, **runs):
    """Each environment's quantities, read from a sweep folder written with its rows."""
    found = {}
    for environment, rows in runs.items():
        write_csv(tmp_path / environment / "results.csv", RESULT_COLUMNS, rows)
        found[environment] = experiment.read_headline(tmp_path / environment)
    return found


def by_name(changes, environment):
    return {change.name: change for change in changes if change.environment == environment}


# The comparison, on constructed files.
def test_identical_runs_are_bit_for_bit_whatever_their_timings(tmp_path):
    (tmp_path / "own").mkdir(), (tmp_path / "Prescott").mkdir()
    slower = headline_rows(seconds="0.5")
    changes = experiment.compare_figure(measured(tmp_path, own=headline_rows(), Prescott=slower))
    assert changes and all(change.changed == 0 and change.visible == 0 for change in changes)
    assert experiment.classify(changes, ["own", "Prescott"]).startswith("bit for bit under every environment")


def test_a_changed_outcome_is_counted_and_a_numeric_change_measured(tmp_path):
    for name in ("own", "Haswell"):
        (tmp_path / name).mkdir()
    moved = headline_rows(final_iou="0.000100", outcome="max_iterations", stalled="False")
    changes = by_name(experiment.compare_figure(measured(tmp_path, own=headline_rows(), Haswell=moved)), "Haswell")
    outcome, final_iou = changes["outcome"], changes["final_iou"]
    assert (outcome.changed, outcome.items, outcome.visible) == (1, 2, 1)
    assert (outcome.own_value, outcome.value) == ("stalled", "max_iterations")
    assert final_iou.changed == 1 and final_iou.change == pytest.approx(1e-4, abs=1e-12)
    assert final_iou.visible == 1  # 0.0000 against 0.0001 at the README's 4 decimals
    assert changes["iterations"].changed == 0 and changes["start box"].changed == 0
    assert experiment.classify(list(changes.values()), ["own", "Haswell"]).startswith("moves with BLAS kernels")
    assert "outcome 1 of 2" in experiment.how_much(list(changes.values()))


def test_a_change_below_the_printed_precision_is_measured_but_not_visible(tmp_path):
    for name in ("own", "simd-off"):
        (tmp_path / name).mkdir()
    own = headline_rows(final_iou="0.123400")
    nudged = headline_rows(final_iou="0.123401")
    change = by_name(experiment.compare_figure(measured(tmp_path, own=own, **{"simd-off": nudged})),
                     "simd-off")["final_iou"]
    assert change.changed == 1 and change.visible == 0
    assert change.change == pytest.approx(1e-6, rel=1e-6)


def test_changes_under_simd_off_alone_make_a_figure_bit_for_bit_on_one_machine_only(tmp_path):
    for name in ("own", "Prescott", "threads-2", "simd-off"):
        (tmp_path / name).mkdir()
    runs = dict(own=headline_rows(), Prescott=headline_rows(), **{"threads-2": headline_rows()},
                **{"simd-off": headline_rows(final_iou="0.000001")})
    changes = experiment.compare_figure(measured(tmp_path, **runs))
    label = experiment.classify(changes, list(runs))
    assert label.startswith("bit for bit across BLAS kernels and thread counts, moves with NumPy's SIMD: bit for "
                            "bit on one machine only")
    assert "not measured: again, threads-1, Sandybridge, Haswell, SkylakeX" in label
    assert "BLAS kernels: none" in experiment.how_much(changes)


def test_a_figure_that_moves_when_run_again_is_said_to_move_from_run_to_run(tmp_path):
    """Run-to-run noise (trust-krylov on L1) must not be read as moving with the thread count."""
    for name in ("own", "again", "threads-2"):
        (tmp_path / name).mkdir()
    runs = dict(own=headline_rows(), again=headline_rows(final_iou="0.500000"),
                **{"threads-2": headline_rows(final_iou="0.600000")})
    changes = experiment.compare_figure(measured(tmp_path, **runs))
    assert experiment.classify(changes, list(runs)).startswith(
        "moves from one run to the next on this machine, so its other changes may be that too")
    assert "the same command again (again): final_iou up to 0.5 (1 of 2)" in experiment.how_much(changes)
    assert experiment.environment_variables("again") == {}


def test_values_only_one_run_wrote_are_changes():
    own = experiment.Quantity("", "E(t)", {"giou 0": 1.0, "giou 1": 0.5}, ".0f")
    other = experiment.Quantity("", "E(t)", {"giou 0": 1.0}, ".0f")
    change = experiment.compare(own, other, "Prescott")
    assert (change.changed, change.visible, change.item) == (1, 1, "giou 1")
    assert np.isnan(change.change)  # nothing to subtract
    nan_both = experiment.Quantity("", "x", {"a": float("nan")})
    assert experiment.compare(nan_both, nan_both, "Prescott").changed == 0


def test_which_loss_files_are_read_per_setting_with_ranks_and_rates_as_categories(tmp_path):
    write_csv(tmp_path / "evidence.csv", EVIDENCE_COLUMNS,
              [dict(loss="giou", setting="learning", measure="accuracy_mean", value="0.132", spread="0.001"),
               dict(loss="giou", setting="simulation", measure="mean_final_iou", value="0.989", spread="")])
    write_csv(tmp_path / "ranking.csv", RANKING_COLUMNS,
              [dict(loss="giou", setting="learning", rank="1", failed="False", reason="")])
    write_csv(tmp_path / "rates.csv", ["loss", "setting", "optimizer", "lr"],
              [dict(loss="giou", setting="learning", optimizer="adam", lr="0.003")])
    quantities = {(q.part, q.name): q for q in experiment.read_which_loss(tmp_path)}
    assert quantities["learning", "accuracy_mean"].values == {"giou": 0.132}
    assert np.isnan(quantities["simulation", "mean_final_iou spread"].values["giou"])
    assert not quantities["learning", "rank"].numeric and quantities["learning", "rank"].values == {"giou": "1"}
    assert quantities["learning", "rate chosen"].values == {"giou adam": "0.003"}


# Environments.
def test_simd_off_names_every_dispatch_target_of_this_numpy():
    from numpy._core._multiarray_umath import __cpu_dispatch__
    variables = experiment.environment_variables("simd-off")
    assert variables == {"NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)} and __cpu_dispatch__


def test_each_environment_sets_only_its_own_variable_over_a_clean_inherited_environment(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    assert experiment.environment_variables("threads-2") == {"OPENBLAS_NUM_THREADS": "2"}
    assert experiment.environment_variables("Sandybridge") == {"OPENBLAS_CORETYPE": "Sandybridge"}
    own = emulation.environment(experiment.environment_variables("own"))
    assert not set(emulation.VARIABLES) & set(own) and own["PATH"]
    threads = emulation.environment(experiment.environment_variables("threads-1"))
    assert threads["OPENBLAS_NUM_THREADS"] == "1" and "OPENBLAS_CORETYPE" not in threads


def test_an_environment_whose_variable_did_not_take_is_refused_by_name():
    with pytest.raises(ValueError, match="^OPENBLAS_CORETYPE=Haswell did not take: .*: leave Haswell out of "
                                         "--environments$"):
        experiment.check_probe("Haswell", dict(blas=["SkylakeX"], threads=[2], simd=[]))
    experiment.check_probe("Prescott", dict(blas=["Katmai"], threads=[2], simd=["X86_V3"]))


def test_the_optimisers_figure_runs_one_command_per_parameterisation_and_quick_only_the_first():
    figure = experiment.FIGURES["optimisers"]
    assert [part for part, _ in figure.runs(False)] == ["xyxy", "xywh", "cxcywh", "log"]
    assert figure.runs(True) == [("xyxy", ("--method", "all", "--param", "xyxy"))]
    assert figure.command(False) == ("python experiments/stall_vs_converge.py --method all --param "
                                     "xyxy|xywh|cxcywh|log")


# Arguments.
@pytest.mark.parametrize("arguments, words", [
    (["--environments", "own", "prescot"], "unknown environment 'prescot'; valid: own, again, threads-1"),
    (["--environments", "Prescott"], "--environments must include own"),
    (["--environments", "own", "Haswell", "haswell"], "--environments names Haswell more than once"),
    (["--figures", "headlines"], "unknown figure 'headlines'; valid: figure1, headline"),
])
def test_bad_arguments_stop_before_any_work_with_one_line(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err
    assert words in error and error.count("error:") == 1
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_or_holds_the_other_protocol_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "file")])
    assert "is a file; give a folder" in capsys.readouterr().err
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "config.json").write_text(json.dumps(dict(quick=True)))
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "quick"), "--figures", "headline"])
    assert "holds a run with other settings (quick was true, is now false)" in capsys.readouterr().err


# The command.
def fake_probe(name):
    """What a process of each environment reports on a SkylakeX machine, without starting one."""
    kernels = dict(Prescott="Katmai").get(name, name if name in experiment.KERNELS else "SkylakeX")
    return dict(blas=[kernels], threads=[2], simd=[] if name == "simd-off" else ["X86_V3"])


def test_finished_sub_runs_are_kept_and_compared_without_running_again(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiment, "probe", fake_probe)
    for environment, outcome in (("own", "stalled"), ("Prescott", "max_iterations")):
        folder = tmp_path / environment / "headline"
        folder.mkdir(parents=True)
        write_csv(folder / "results.csv", RESULT_COLUMNS, headline_rows(outcome=outcome))
        (tmp_path / environment / "headline.finished.json").write_text("{}")
    assert experiment.main(["--out", str(tmp_path), "--figures", "headline", "--environments", "own",
                            "Prescott"]) == 0
    printed = capsys.readouterr().out
    assert "2 finished before, 0 to run" in printed and "running" not in printed
    table = (tmp_path / "table.md").read_text()
    assert "| headline | `python experiments/stall_vs_converge.py` | moves with BLAS kernels" in table
    rows = {(row["quantity"], row["environment"]): row for row in read_csv(tmp_path / "changes.csv")}
    assert rows["outcome", "Prescott"]["changed"] == "1" and rows["final_iou", "Prescott"]["change"] == "0"
    assert json.loads((tmp_path / "config.json").read_text())["probes"]["Prescott"]["blas"] == ["Katmai"]


@pytest.mark.slow
def test_a_failing_sub_run_is_one_line_and_the_others_go_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiment, "probe", fake_probe)
    broken = experiment.Figure("giou_vs_iou", ("--pairs", "0"), experiment.read_giou_vs_iou)
    monkeypatch.setitem(experiment.FIGURES, "giou_vs_iou", broken)
    folder = tmp_path / "own" / "headline"
    folder.mkdir(parents=True)
    write_csv(folder / "results.csv", RESULT_COLUMNS, headline_rows())
    (tmp_path / "own" / "headline.finished.json").write_text("{}")
    status = experiment.main(["--out", str(tmp_path), "--figures", "giou_vs_iou", "headline",
                              "--environments", "own"])
    captured = capsys.readouterr()
    assert status == 1
    assert ("own giou_vs_iou: FAILED after" in captured.out and "--pairs 0" in captured.out
            and "--pairs must be at least 1; got 0" in captured.out)
    assert not (tmp_path / "own" / "giou_vs_iou.finished.json").exists()
    assert "| giou_vs_iou | `python experiments/giou_vs_iou.py --pairs 0` | not measured" in captured.out
    assert "| headline |" in captured.out


@pytest.mark.slow
def test_elementwise_figures_are_bit_for_bit_under_other_blas_kernels(tmp_path, capsys):
    """The headline's gd runs and GIoU against IoU are elementwise NumPy: no BLAS call, so Prescott's
    kernels cannot move them (OPENBLAS_CORETYPE really switched, the probe checks)."""
    arguments = ["--out", str(tmp_path), "--figures", "giou_vs_iou", "headline", "--environments", "own", "Prescott"]
    assert experiment.main(arguments) == 0
    table = (tmp_path / "table.md").read_text()
    for figure in ("giou_vs_iou", "headline"):
        assert f"| {figure} | `python experiments/" in table
    assert table.count("| bit for bit under every environment measured") == 2
    rows = read_csv(tmp_path / "changes.csv")
    quantities = {row["quantity"] for row in rows}
    assert {"final_iou", "outcome", "final box", "IoU at every step", "giou", "c"} <= quantities
    assert all(row["changed"] == "0" for row in rows)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["probes"]["Prescott"]["blas"] == ["Katmai"] and config["variables"]["own"] == {}
    capsys.readouterr()
    assert experiment.main(arguments) == 0  # a rerun keeps every finished sub-run
    assert "4 finished before, 0 to run" in capsys.readouterr().out


def test_ctrl_c_says_how_many_sub_runs_were_kept_and_that_the_command_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiment, "probe", fake_probe)
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "headline.finished.json").write_text("{}")

    def interrupted(sub):
        raise KeyboardInterrupt
    monkeypatch.setattr(experiment, "run_sub_run", interrupted)
    with pytest.raises(SystemExit) as stopped:
        experiment.main(["--out", str(tmp_path), "--figures", "headline", "--environments", "own", "Prescott"])
    assert stopped.value.code == 130
    error = capsys.readouterr().err
    assert "1 of 2 sub-runs are finished and kept" in error and "the same command goes on from there" in error
    assert not (tmp_path / "table.md").exists()


def test_a_zero_that_changes_sign_is_a_change_and_nan_against_nan_is_not():
    assert not experiment.same(0.0, -0.0) and experiment.same(float("nan"), float("nan"))
    assert experiment.same("stalled", "stalled") and not experiment.same("stalled", "stuck")


def test_a_sub_run_whose_code_changed_while_it_ran_is_not_kept(tmp_path, monkeypatch):
    digests = iter(["before", "after"])
    monkeypatch.setattr(experiment, "source_digest", lambda: next(digests))
    monkeypatch.setattr(experiment.subprocess, "run",
                        lambda *args, **kwargs: experiment.subprocess.CompletedProcess(args, 0, None, ""))
    sub = experiment.sub_runs(tmp_path, ["headline"], ["own"], False)[0]
    status, _, reason = experiment.run_sub_run(sub)
    assert status == 1 and "changed while it ran" in reason and not sub.marker.exists()


def test_an_environment_that_ran_on_other_code_than_own_is_not_compared(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "probe", fake_probe)
    for environment, source in (("own", "a"), ("Prescott", "b"), ("Haswell", "a")):
        folder = tmp_path / environment / "headline"
        folder.mkdir(parents=True)
        write_csv(folder / "results.csv", RESULT_COLUMNS, headline_rows())
        (tmp_path / environment / "headline.finished.json").write_text(json.dumps(dict(source=source)))
    args = experiment.parse_args(["--out", str(tmp_path), "--figures", "headline", "--environments", "own",
                                  "Prescott", "Haswell"])
    measured, problems = experiment.read_measured(args)
    assert set(measured["headline"]) == {"own", "Haswell"}
    assert problems == ["Prescott headline ran on other code than own's (sandbox/ or experiments/ changed between "
                        "their sub-runs), so it is not compared: delete the .finished.json of whichever is out of "
                        "date and run the same command again"]


def test_an_unfinished_sub_run_starts_over_from_an_empty_folder(tmp_path, monkeypatch):
    sub = experiment.sub_runs(tmp_path, ["headline"], ["own"], False)[0]
    sub.folder.mkdir(parents=True)
    (sub.folder / "results.csv").write_text("left by an interrupted run")
    seen = []

    def run(*args, **kwargs):
        seen.append(sub.folder.exists())
        return experiment.subprocess.CompletedProcess(args, 0, None, "")
    monkeypatch.setattr(experiment.subprocess, "run", run)
    assert experiment.run_sub_run(sub)[0] == 0
    assert seen == [False] and json.loads(sub.marker.read_text())["source"] == experiment.source_digest()


def test_a_second_runner_on_the_same_out_is_refused_in_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "probe", fake_probe)
    with open(tmp_path / ".lock", "w") as other:  # the lock another runner holds
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match=r"^reproducibility.py: another runner \(.*\) is running on "):
            experiment.main(["--out", str(tmp_path), "--figures", "headline", "--environments", "own"])
    assert not (tmp_path / "config.json").exists()
