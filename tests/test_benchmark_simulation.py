import csv

import pytest

from helpers import load_experiment

benchmark = load_experiment("benchmark_simulation")


@pytest.mark.slow
def test_benchmark_times_the_engines_and_writes_its_table(tmp_path, capsys):
    benchmark.main(["--points", "2", "--iterations", "5", "--repeats", "2", "--workers", "1",
                    "--engines", "sandbox", "sandbox-autograd", "--out", str(tmp_path)])
    with open(tmp_path / "benchmark.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["engine"] for r in rows] == ["sandbox", "sandbox-autograd"]
    for row in rows:
        assert row["cases"] == "686" and float(row["median_seconds"]) > 0
        assert float(row["box_iterations_per_second"]) > 0 and float(row["peak_memory_mib"]) > 0
        assert len(row["runs"].split()) == 2
    assert rows[0]["ratio_to_sandbox"] == "1.0"
    # the two engines run the same update: the same final error, to rounding
    assert abs(float(rows[0]["error_final"]) / float(rows[1]["error_final"]) - 1) < 1e-6
    assert "box-iterations/s" in capsys.readouterr().out
    assert (tmp_path / "benchmark.json").exists()


@pytest.mark.slow
def test_every_loss_with_a_kernel_is_timed_both_ways_with_its_speedup(tmp_path, capsys):
    benchmark.main(["--losses", "focaler_giou:d=0.1", "5*l1+2*giou", "--points", "1", "--iterations", "5",
                    "--repeats", "1", "--workers", "1", "--engines", "sandbox-autograd", "sandbox",
                    "--out", str(tmp_path)])
    with open(tmp_path / "benchmark.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["loss"], r["engine"]) for r in rows] == [
        ("focaler_giou:d=0.1", "sandbox"), ("focaler_giou:d=0.1", "sandbox-autograd"),
        ("5*l1+2*giou", "sandbox-autograd")]
    speedup = float(rows[1]["fused_speedup"])
    fused, generic = float(rows[0]["median_seconds"]), float(rows[1]["median_seconds"])  # rounded to 1 ms
    assert (generic - 0.0005) / (fused + 0.0005) - 0.005 <= speedup <= (generic + 0.0005) / (fused - 0.0005) + 0.005
    assert rows[0]["fused_speedup"] == rows[2]["fused_speedup"] == ""
    assert abs(float(rows[0]["error_final"]) / float(rows[1]["error_final"]) - 1) < 1e-6
    out = capsys.readouterr().out
    assert "5*l1+2*giou: no fused kernel, so the sandbox engine is not timed" in out
    assert f"focaler_giou:d=0.1 the fused kernel is {speedup:.2f}x as fast as autograd op by op" in out


@pytest.mark.slow
def test_the_oriented_benchmark_times_every_oriented_loss_on_autograd_and_prints_its_size(tmp_path, capsys):
    from sandbox.losses.oriented import ORIENTED_LOSSES
    benchmark.main(["--oriented", "--points", "1", "--iterations", "3", "--repeats", "1", "--workers", "1",
                    "--out", str(tmp_path)])
    with open(tmp_path / "benchmark.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["loss"], r["engine"]) for r in rows] == [(loss, "sandbox-autograd") for loss in ORIENTED_LOSSES]
    assert {r["cases"] for r in rows} == {"343"} and all(float(r["median_seconds"]) > 0 for r in rows)
    printed = capsys.readouterr().out
    assert "oriented simulation: 343 cases x 3 iterations, 1 workers" in printed
    assert "every loss: " in printed and f"for {len(ORIENTED_LOSSES)} losses x 343 cases" in printed
