"""simulation_rounding.py: per loss, the mean final IoU's change under a one-ulp shift and between backends."""
import json

import pytest

from helpers import load_experiment
from sandbox.runs.records import read_csv
from sandbox.runs.simulation import diou_protocol, rounding_sensitivity

experiment = load_experiment("simulation_rounding")


def test_each_loss_gets_its_ulp_change_and_backend_difference_and_the_largest_are_named(tmp_path, capsys):
    experiment.main(["--losses", "giou", "alpha_ciou", "--points", "2", "--iterations", "50", "--workers", "1",
                     "--out", str(tmp_path)])
    rows = read_csv(tmp_path / "rounding.csv")
    assert list(rows[0]) == experiment.COLUMNS
    assert [(r["loss"], r["gradient"], r["other_gradient"], r["cases"]) for r in rows] == [
        ("giou", "fused", "autograd", "686"), ("alpha_ciou", "fused", "autograd", "686")]
    for row in rows:
        # the changes are the differences of the means the row holds
        base = float(row["mean_final_iou"])
        assert float(row["ulp_change"]) == pytest.approx(abs(float(row["mean_final_iou_shifted"]) - base), abs=1e-15)
        assert float(row["backend_difference"]) == pytest.approx(abs(float(row["mean_final_iou_other"]) - base),
                                                                 abs=1e-15)
    config = json.loads((tmp_path / "config.json").read_text())
    largest = max(rows, key=lambda r: float(r["ulp_change"]))
    assert config["measured"]["largest_ulp_change"] == dict(value=float(largest["ulp_change"]), loss=largest["loss"])
    assert config["cases"] == 686 and config["gradient"] == "fused"
    out = capsys.readouterr().out
    assert f"largest change under a one-ulp shift on fused: {float(largest['ulp_change']):.2e} ({largest['loss']})" in out
    # the folder holds these settings' results: other settings are refused, not written over
    with pytest.raises(SystemExit):
        experiment.main(["--losses", "giou", "alpha_ciou", "--points", "2", "--iterations", "40", "--out",
                         str(tmp_path)])
    assert "holds a run with other settings (iterations was 50, is now 40)" in capsys.readouterr().err


def test_the_measurement_is_the_runs_on_one_backend():
    # the same anchors on the same backend give the same mean; so the ulp change is the shift's alone
    protocol = diou_protocol(1, seed=3)
    found = rounding_sensitivity(protocol, "diou", gradient="autograd", iterations=20)
    again = rounding_sensitivity(protocol, "diou", gradient="autograd", iterations=20)
    assert found == again
    swapped = rounding_sensitivity(protocol, "diou", gradient="fused", iterations=20)
    assert swapped["mean_final_iou"] == found["mean_final_iou_other"]
    assert swapped["backend_difference"] == found["backend_difference"]
    with pytest.raises(ValueError, match="gradient must be one of autograd, fused; got 'authors'"):
        rounding_sensitivity(protocol, "diou", gradient="authors")


def test_mistakes_are_one_line_errors_before_any_work(tmp_path, capsys):
    for argv, message in [
        (["--losses", "5*l1+2*giou"], "5*l1+2*giou: no fused kernel, so no two backends to compare"),
        (["--losses", "giou", "GIoU"], "--losses names a loss more than once"),
        (["--points", "0"], "argument --points: must be a whole number >= 1; got '0'"),
        (["--gradient", "authors"], "argument --gradient: invalid choice: 'authors'"),
    ]:
        with pytest.raises(SystemExit):
            experiment.main([*argv, "--out", str(tmp_path / "none")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "file")])
    assert "is a file; give a folder" in capsys.readouterr().err
