import csv
import importlib.util
import json
import math

import numpy as np
import pytest

from helpers import load_experiment

benchmark = load_experiment("benchmark_training")
TINY = ["--images", "12", "--epochs", "2", "--batch-size", "8", "--repeats", "1"]


def test_benchmark_times_training_per_model_and_writes_its_table(tmp_path, capsys):
    benchmark.main([*TINY, "--out", str(tmp_path)])
    with open(tmp_path / "benchmark.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    sandbox_rows = {row["model"]: row for row in rows if row["engine"] == "sandbox (autograd)"}
    assert set(sandbox_rows) == {"mlp", "cnn"}
    for row in sandbox_rows.values():
        assert row["dtype"] == "float64" and int(row["images"]) == 24 and int(row["steps"]) == 4  # 2 x ceil(12 / 8)
        assert float(row["images_per_s"]) > 0 and float(row["ratio_to_sandbox"]) == 1
        assert math.isfinite(float(row["last_epoch_loss"])) and 0 <= float(row["last_epoch_loss"]) < 2  # GIoU's range
    if importlib.util.find_spec("torch") is None:
        assert len(rows) == 2
        assert "PyTorch is not installed" in capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["batch_size"] == 8 and config["loss"] == "giou" and config["models"] == ["mlp", "cnn"]


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
        params = init_network(model, 32, seed=2)
        expected = predict(params, data.images, model)
        boxes = benchmark.torch_predict(benchmark.torch_params(params, torch.float64), torch.as_tensor(data.images))
        np.testing.assert_allclose(boxes.detach().numpy(), expected, atol=1e-10)
        loss = benchmark.torch_giou_loss(boxes, torch.as_tensor(data.boxes)).detach().numpy()
        np.testing.assert_allclose(loss, sandbox.giou_loss(expected, data.boxes), atol=1e-6)  # torchvision's eps 1e-7
