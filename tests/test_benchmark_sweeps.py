import csv

import pytest

from helpers import load_experiment

benchmark = load_experiment("benchmark_sweeps")


@pytest.mark.slow
def test_benchmark_runs_a_sweep_both_ways_and_finds_the_same_rows(tmp_path, capsys):
    (tmp_path / "small.toml").write_text('[axes]\nloss = ["giou", "l2"]\nmethod = ["gd", "adam", "BFGS"]\n'
                                         'maxiter = [20]\nstarts = ["r"]\n[starts.r]\nkind = "random"\ncount = 3\n')
    benchmark.main(["--sweeps", str(tmp_path / "small.toml"), "--repeats", "1", "--workers", "1",
                    "--out", str(tmp_path / "out")])
    assert "small.toml: 18 runs; 18 rows identical both ways" in capsys.readouterr().out
    with open(tmp_path / "out" / "benchmark.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["what"] for row in rows] == ["small.toml, 1 workers", "headline, 8 starts x 4 losses, gd"]
    assert all(float(row["ratio"]) > 0 for row in rows)
