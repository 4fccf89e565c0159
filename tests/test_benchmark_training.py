import csv
import importlib.util
import json
import math

import numpy as np
import pytest

from helpers import load_experiment

benchmark = load_experiment("benchmark_training")
TINY = ["--images", "12", "--epochs", "2", "--batch-size", "8", "--repeats", "1"]


def test_benchmark_times_training_per_model_gradient_and_dtype_and_writes_its_table(tmp_path, capsys):
    benchmark.main([*TINY, "--model", "mlp", "cnn", "--out", str(tmp_path)])
    with open(tmp_path / "benchmark.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    engines = ("sandbox (autograd)", "sandbox (fused)")
    sandbox_rows = {(row["model"], row["engine"], row["dtype"]): row for row in rows if row["engine"] in engines}
    assert set(sandbox_rows) == {(model, engine, dtype) for model in ("mlp", "cnn") for engine in engines
                                 for dtype in ("float32", "float64")}
    for row in sandbox_rows.values():
        assert int(row["images"]) == 24 and int(row["steps"]) == 4  # 2 x ceil(12 / 8)
        assert float(row["images_per_s"]) > 0
        assert math.isfinite(float(row["last_epoch_loss"])) and 0 <= float(row["last_epoch_loss"]) < 2  # GIoU's range
    for model in ("mlp", "cnn"):  # both dtypes train the same network from the same weights, to float32's rounding
        for engine in engines:
            losses = [float(sandbox_rows[model, engine, dtype]["last_epoch_loss"]) for dtype in ("float32", "float64")]
            assert abs(losses[0] - losses[1]) < 1e-4
        # and both gradients the same network, in float64 to rounding
        losses = [float(sandbox_rows[model, engine, "float64"]["last_epoch_loss"]) for engine in engines]
        assert abs(losses[0] - losses[1]) < 1e-12
    out = capsys.readouterr().out
    if importlib.util.find_spec("torch") is None:
        assert len(rows) == 8 and all(row["ratio_to_torch"] == "" for row in rows)
        assert "PyTorch was not found" in out
    else:
        for engine in engines:
            assert f"cnn: {engine} is " in out and "x PyTorch eager float32 (" in out
            assert f"cnn: float64 last-epoch losses of {engine} and PyTorch differ by" in out
        assert "DISAGREE" not in out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["batch_size"] == 8 and config["loss"] == "giou" and config["models"] == ["mlp", "cnn"]
    assert config["gradients"] == ["autograd", "fused"]


def test_the_report_prints_each_sandbox_engine_as_a_multiple_of_pytorch_and_checks_the_float64_losses(capsys):
    def row(engine, dtype, speed, loss):
        return dict(model="cnn", engine=engine, dtype=dtype, images_per_s=speed, last_epoch_loss=loss)
    rows = [row("sandbox (autograd)", "float32", 300.0, 0.5), row("sandbox (autograd)", "float64", 100.0, 0.25),
            row("sandbox (fused)", "float32", 500.0, 0.5), row("sandbox (fused)", "float64", 120.0, 0.25 + 1e-12),
            row("torch eager", "float32", 200.0, 0.5), row("torch eager", "float64", 400.0, 0.25 + 1e-6)]
    benchmark.report(rows)
    out = capsys.readouterr().out
    assert "cnn: sandbox (autograd) is 1.50x PyTorch eager float32 (300 vs 200 images/s)" in out
    assert "cnn: sandbox (fused) is 2.50x PyTorch eager float32 (500 vs 200 images/s)" in out
    assert "cnn: sandbox (autograd) is 0.25x PyTorch eager float64 (100 vs 400 images/s)" in out
    assert "cnn: sandbox (fused) is 0.30x PyTorch eager float64 (120 vs 400 images/s)" in out
    assert "of sandbox (autograd) and PyTorch differ by 1.0e-06 (at most 1e-09): DISAGREE" in out
    assert "of sandbox (fused) and PyTorch differ by 1.0e-06 (at most 1e-09): DISAGREE" in out
    assert [r["ratio_to_torch"] for r in rows] == [1.5, 0.25, 2.5, 0.3, 1.0, 1.0]


def test_the_engines_take_turns_in_an_order_that_rotates_each_round():
    calls = []
    runs = {key: (lambda key=key: calls.append(key) or key) for key in "abc"}
    timed = benchmark.time_in_turns(runs, 4)
    assert calls == list("abc" "abc" "bca" "cab" "abc")  # the untimed calls, then four rounds
    assert {key: returned for key, (seconds, returned) in timed.items()} == {"a": "a", "b": "b", "c": "c"}


@pytest.mark.parametrize("arguments, words", [
    (["--batch-size", "0"], "--batch-size: must be a whole number >= 1; got '0'"),
    (["--model", "rnn"], "invalid choice: 'rnn'"),
])
def test_bad_arguments_stop_before_any_run(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        benchmark.main(["--out", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert words in error[-1] and ": error: " in error[-1]
    assert not (tmp_path / "out").exists()


def test_the_pytorch_network_computes_the_sandbox_networks_boxes_and_loss():
    torch = pytest.importorskip("torch")
    import sandbox
    from sandbox.learning.networks import init_network, predict
    from sandbox.learning.synthetic import make_dataset
    data = make_dataset(16, seed=1)
    for model in ("mlp", "cnn"):
        params = init_network(model, 32, seed=2, dtype="float64")
        expected = predict(params, data.images, model)
        boxes = benchmark.torch_predict(benchmark.torch_params(params, torch.float64), torch.as_tensor(data.images))
        np.testing.assert_allclose(boxes.detach().numpy(), expected, atol=1e-10)
        loss = benchmark.torch_giou_loss(boxes, torch.as_tensor(data.boxes)).detach().numpy()
        np.testing.assert_allclose(loss, sandbox.giou_loss(expected, data.boxes), atol=1e-6)  # torchvision's eps 1e-7
