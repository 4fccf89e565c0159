import csv

from helpers import load_experiment

benchmark = load_experiment("benchmark_fit")


def test_benchmark_times_fit_per_step_and_writes_its_table(tmp_path, capsys):
    benchmark.main(["--repeats", "1", "--maxiter", "5", "--out", str(tmp_path)])
    with open(tmp_path / "benchmark.csv", newline="") as file:
        rows = {row["engine"]: row for row in csv.DictReader(file)}
    assert {"sandbox (autograd)", "sandbox (fused)"} <= set(rows)
    assert all(int(row["steps"]) == 5 and float(row["ms_per_step"]) > 0 for row in rows.values())
    assert "ms/step" in capsys.readouterr().out
