"""Learning: a small box regressor trained with each loss, fairly; the runner resumes and refuses bad input."""
import re

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, value_and_grad
from autograd.misc import flatten

from helpers import adam_by_hand, load_experiment
from sandbox import get_loss
from sandbox.learning import heads, synthetic, training
from sandbox.losses.fused import fused_loss
from sandbox.optim.rules import apply, first_order
from sandbox.runs import sweep as sweeps
from sandbox.runs.store import Store
from sandbox.learning.networks import init_network, predict
from sandbox.runs.records import read_csv

experiment = load_experiment("train_regressor")


def heavy_ball_by_hand(gradient, x, lr, momentum, steps):
    """Polyak's heavy ball, the textbook form of SGD with momentum at a constant rate:
    x_{t+1} = x_t - lr g_t + momentum (x_t - x_{t-1}), starting at rest (x_0 = x_{-1})."""
    previous, xs = x, [x]
    for t in range(1, steps + 1):
        x, previous = x - lr * gradient(t, x) + momentum * (x - previous), x
        xs.append(x)
    return np.array(xs)


def steps_of_training(optimizer, gradient, x, lrs, **options):
    """The weights after each step of training's rule (`training.training_rule`) from `x`, the rate of
    step t lrs[t], its state threaded through."""
    adam = {key: options.pop(key) for key in ("b1", "b2", "eps") if key in options}
    if adam:  # the shared rule with other moments than training's (the paper's) defaults
        rule = first_order("adam", 1.0, lambda t, steps: lrs[t], len(lrs), options=adam)
    else:
        rule = training.training_rule(optimizer, 1.0, lambda t, steps: lrs[t], len(lrs), **options)
    state, xs = rule.init(x), [x]
    for t in range(len(lrs)):
        x, state = apply(x, gradient(t + 1, x), rule, state, t)
        xs.append(x)
    return np.array(xs)


def varying_gradient(t, x):
    """A gradient that changes sign and scale (1e-3 to 1e2) from step to step, and depends on x."""
    scale = 10.0 ** np.array([-3, 2, 0, 1, -2, 2, -1, 0])[(t - 1) % 8]
    return scale * (np.sin(3 * x + t) + 0.1 * x ** 3)


@pytest.mark.slow
def test_l2_on_easy_data_reaches_a_mean_iou_above_0_8():
    easy = synthetic.make_splits(0, 1500, 200, 200, image_size=32, min_size=10.0, max_size=24.0, noise=0.02,
                                 aspect_range=(0.5, 2.0))
    result = training.train("l2", easy, model="cnn", lr=3e-3, epochs=20, batch_size=32, seed=0)
    assert result["test"]["mean_iou"] > 0.8 and not result["diverged"]


@pytest.mark.slow
@pytest.mark.portable
def test_from_the_apart_start_the_iou_loss_stays_at_iou_0_while_giou_learns():
    # the headline claim in learning form: every prediction starts as one box that overlaps no object
    # at 3e-3 the CoordConv CNN's GIoU boxes overshoot to several times the image within an epoch, where
    # GIoU is IoU and its gradient vanishes (mean IoU 0.001 after 6 epochs); at 1e-3 they learn
    splits = synthetic.make_splits(0, 600, 150, 150, image_size=32, min_size=6.0, noise=0.05)
    iou = training.train("iou", splits, model="cnn", lr=1e-3, epochs=6, batch_size=32, seed=0, init="apart")
    giou = training.train("giou", splits, model="cnn", lr=1e-3, epochs=6, batch_size=32, seed=0, init="apart")
    assert iou["history"]["mean_iou"] == [0.0] * 6 and iou["test"]["mean_iou"] == 0.0
    assert giou["test"]["mean_iou"] > 0.2 and giou["history"]["mean_iou"][-1] > giou["history"]["mean_iou"][0]


@pytest.mark.slow
@pytest.mark.portable
@pytest.mark.parametrize("init", ["default", "apart"])
def test_the_quick_preset_learns_and_from_the_apart_start_iou_stays_at_exactly_0(tmp_path, init):
    # the bar for --quick: GIoU's test mean IoU >= 0.4 (0.53 measured), from the apart
    # start >= 0.2 (0.43) while IoU's is exactly 0; the preset's own data, network and rate
    experiment.main(["--quick", "--losses", "iou", "giou", "--init", init, "--out", str(tmp_path), "--workers", "2"])
    summary = {row["loss"]: float(row["mean_iou"]) for row in read_csv(tmp_path / "summary.csv")}
    if init == "default":
        assert summary["giou"] >= 0.4 and summary["iou"] >= 0.4
    else:
        assert summary["giou"] >= 0.2 and summary["iou"] == 0.0


@pytest.mark.portable
def test_within_a_seed_every_loss_starts_from_the_same_weights_and_sees_the_same_minibatches(monkeypatch):
    splits = synthetic.make_splits(0, 40, 8, 8, image_size=16, min_size=3.0)
    seen = {}

    def spy(loss):
        calls = seen.setdefault(loss, [])

        def recording(params, images, model):
            calls.append((float(np.sum(getattr(params["output_weights"], "_value", params["output_weights"]))),
                          float(np.sum(getattr(images, "_value", images)))))
            return outputs(params, images, model)
        return recording

    outputs = training.outputs  # the network's raw outputs, as each training step reads them
    for loss in ("l2", "giou"):
        monkeypatch.setattr(training, "outputs", spy(loss))
        training.train(loss, splits, model="mlp", lr=1e-3, epochs=2, batch_size=8, seed=3)
    l2, giou = seen["l2"], seen["giou"]
    assert l2[0] == giou[0]  # the same first weights, on the same first minibatch
    assert [images for _, images in l2] == [images for _, images in giou]  # every minibatch, in the same order
    assert l2[1][0] != giou[1][0]  # and then each loss moves the weights its own way


@pytest.mark.portable
@pytest.mark.parametrize("options", [{}, {"b1": 0.5, "b2": 0.9, "eps": 1e-3}])
def test_training_adam_follows_kingma_and_ba_step_after_step(options):
    # Eight steps, not one, with a rate that changes per step as a schedule's does: the first step is
    # about g / |g| whatever Adam keeps as its state, so only the later ones tell the raw moments from
    # their bias-corrected copies; b1 far from b2 tells the two corrections apart. {}: the defaults,
    # which train uses, must be the paper's (0.9, 0.999, 1e-8).
    x = np.array([1.5, -0.75, 2.5, 0.0, -3.0])
    lrs = [0.1, 0.08, 0.05, 0.1, 0.02, 0.07, 0.03, 0.01]
    expected = adam_by_hand(varying_gradient, x, lrs, **options)
    found = steps_of_training("adam", varying_gradient, x, lrs, momentum=0.9, **options)
    np.testing.assert_allclose(found, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.portable
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_training_sgd_with_momentum_is_the_heavy_ball_step_after_step(momentum):
    # momentum 0 is plain gradient descent: the velocity must not keep a memory of its own
    x = np.array([1.5, -0.75, 2.5, 0.0, -3.0])
    expected = heavy_ball_by_hand(varying_gradient, x, lr=0.01, momentum=momentum, steps=8)
    found = steps_of_training("sgd", varying_gradient, x, [0.01] * 8, momentum=momentum)
    np.testing.assert_allclose(found, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.portable
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_train_moves_the_weights_by_its_optimiser_written_out(optimizer):
    # One training image and one image per step: epoch e is step e, on the same image, so the
    # weights train returns are five steps of the optimiser written out from the seed's weights,
    # with the state carried from epoch to epoch, the constant schedule's rate every step and train's
    # defaults (Kingma and Ba's b1, b2, eps; momentum 0.9).
    splits = synthetic.make_splits(0, 1, 4, 4, image_size=8, min_size=2.0)
    images, boxes = splits["train"].images, splits["train"].boxes
    start, unflatten = flatten(init_network("mlp", 8, 2, dtype="float64"))  # float64, to compare at 1e-12
    loss = get_loss("giou")
    gradient = grad(lambda weights: anp.mean(loss(predict(unflatten(weights), images, "mlp"), boxes)))
    if optimizer == "adam":
        expected = adam_by_hand(lambda t, x: gradient(x), start, [0.01] * 5)[-1]
    else:
        expected = heavy_ball_by_hand(lambda t, x: gradient(x), start, lr=0.01, momentum=0.9, steps=5)[-1]
    result = training.train("giou", splits, model="mlp", optimizer=optimizer, lr=0.01, epochs=5, batch_size=1,
                            seed=2, schedule="constant", dtype="float64")
    assert not result["diverged"] and len(result["history"]["train_loss"]) == 5
    assert not np.allclose(expected, start)
    np.testing.assert_allclose(flatten(result["params"])[0], expected, rtol=1e-12, atol=1e-12)


AGREEING = ["giou", "diou", "ciou", "l1", "smooth_l1", "l2", "iou"]
"""Losses that train with either gradient: registry losses with a fused kernel."""


@pytest.fixture(scope="module")
def tiny_splits():
    # the CNN's first boxes overlap most objects (7 of the first 8 at seed 2): IoU too has a gradient to agree on
    return synthetic.make_splits(0, 24, 4, 4, image_size=16, min_size=3.0)


def kernel_calls(monkeypatch):
    """The losses `heads.fused_loss` is asked for from now on: the fused gradient's one way into training."""
    calls = []

    def spy(function):
        calls.append(function)
        return fused_loss(function)
    monkeypatch.setattr(heads, "fused_loss", spy)
    return calls


@pytest.mark.portable
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])  # sgd's steps, unlike Adam's, scale with the gradient
@pytest.mark.parametrize("loss", AGREEING)
def test_in_float64_training_with_the_fused_gradient_ends_at_autograds_weights(loss, optimizer, tiny_splits,
                                                                                  monkeypatch):
    # six steps; the two gradients of the loss differ by rounding (1e-16 relative), which the steps
    # leave at about 1e-12 relative on any weight (1e-9: room for other CPUs' rounding)
    calls = kernel_calls(monkeypatch)
    results = {gradient: training.train(loss, tiny_splits, model="cnn", optimizer=optimizer,
                                        lr=3e-3 if optimizer == "adam" else 1e-4,  # sgd's: L2 diverges at 1e-3
                                        epochs=2, batch_size=8, seed=2, dtype="float64", gradient=gradient)
               for gradient in ("autograd", "fused")}
    assert len(calls) == 1  # once, for the fused run: autograd's takes the loss's own operations
    assert not any(result["diverged"] for result in results.values())
    weights = {gradient: flatten(result["params"])[0] for gradient, result in results.items()}
    start = flatten(init_network("cnn", 16, 2, dtype="float64"))[0]
    assert np.max(np.abs(weights["autograd"] - start)) > 1e-4  # the loss moved the weights
    np.testing.assert_allclose(weights["fused"], weights["autograd"], rtol=1e-9, atol=1e-12)


@pytest.mark.portable
@pytest.mark.parametrize("loss", AGREEING)
def test_in_float32_the_fused_first_gradient_is_autograds_to_float32_rounding(loss, tiny_splits):
    # train's objective on its first minibatch: the mean loss of the decoded boxes, the targets in float32
    images, boxes = tiny_splits["train"].images[:8], tiny_splits["train"].boxes[:8].astype(np.float32)
    start, unflatten = flatten(init_network("cnn", 16, 2))
    found = {}
    for gradient in ("autograd", "fused"):
        recipe = heads.recipe_for(loss, gradient=gradient)
        found[gradient] = value_and_grad(lambda weights: anp.mean(recipe.objective(
            training.outputs(unflatten(weights), images, "cnn"), boxes, 16)))(start)
    (value, expected), (fused_value, fused_gradient) = found["autograd"], found["fused"]
    assert fused_value.dtype == fused_gradient.dtype == expected.dtype == np.float32
    assert np.any(expected != 0)
    # float32's unit roundoff is 6e-8; the two differ by about one unit in the last place
    np.testing.assert_allclose(fused_value, value, rtol=1e-6)
    assert np.linalg.norm(fused_gradient - expected) <= 1e-6 * np.linalg.norm(expected)


@pytest.mark.parametrize("loss", ["5*l1+2*giou", "gfl", "detr", get_loss("giou")])
def test_a_loss_without_a_kernel_trains_on_autograd_with_the_fused_gradient_as_the_engine_does(loss, monkeypatch):
    # the engine's rule (sandbox.optim.engine): a weighted sum, a user's function and the heads' own
    # objectives have no kernel, and gradient='fused' runs them through autograd, to the same weights
    splits = synthetic.make_splits(0, 16, 4, 4, image_size=16, min_size=3.0)
    calls = kernel_calls(monkeypatch)
    results = [training.train(loss, splits, model="mlp", lr=1e-3, epochs=1, batch_size=8, seed=0, dtype="float64",
                              gradient=gradient)["params"] for gradient in ("autograd", "fused")]
    assert calls == []
    np.testing.assert_array_equal(flatten(results[1])[0], flatten(results[0])[0])


@pytest.mark.parametrize("gradient, words", [
    ("authors", "unknown gradient backend 'authors'; valid: autograd, fused"),
    (lambda theta, target: (theta, None), "training's gradient is one of autograd, fused; got the function"),
    (None, "gradient must be one of autograd, fused or a function"),
])
def test_a_gradient_training_does_not_have_is_a_one_line_error_before_any_work(gradient, words, monkeypatch):
    monkeypatch.setattr(training, "init_network", lambda *args, **kwargs: pytest.fail("training began"))
    splits = synthetic.make_splits(0, 8, 4, 4, image_size=16, min_size=3.0)
    with pytest.raises(ValueError, match=re.escape(words)):
        training.train("giou", splits, model="mlp", epochs=1, gradient=gradient)
    with pytest.raises(ValueError, match=re.escape(words)):
        training.check_config(dict(training.LEARNING_DEFAULTS, gradient=gradient))


def test_the_gradient_is_recorded_in_a_learning_sweep_and_reaches_every_run(tmp_path, monkeypatch):
    sweep = sweeps.resolve(dict(experiment="learning", learning=dict(gradient="Fused"), axes=dict(loss=["giou"])),
                           "test")
    assert sweep["learning"]["gradient"] == "fused"
    assert sweeps.resolve(sweep, "again") == sweep  # what a sweep folder saves reads back as itself
    assert sweeps.resolve(dict(experiment="learning", axes=dict(loss=["giou"])), "test")["learning"]["gradient"] \
        == training.LEARNING_DEFAULTS["gradient"] == "autograd"
    with pytest.raises(sweeps.SweepError, match=r"\[learning\]: unknown gradient backend 'authors'"):
        sweeps.resolve(dict(experiment="learning", learning=dict(gradient="authors")), "test")
    given = []
    train = training.train
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: given.append(kwargs["gradient"]) or train(
        *args, **kwargs))
    config = dict(sweep["learning"], model="mlp", epochs=1, images=[8, 4, 4], image_size=16, min_size=3.0)
    training.run((config, "giou", 0, 1e-3))
    assert given == ["fused"]
    args, _ = experiment.parse_args(["--out", str(tmp_path / "out"), "--quick", "--gradient", "fused"])
    assert args.sweep["learning"]["gradient"] == "fused"


def test_each_loss_gets_the_rate_that_does_best_on_validation_averaged_over_seeds():
    runs = [dict(loss="l2", seed=s, lr=lr, val_accuracy_mean=v)
            for s, lr, v in [(0, 0.1, 0.5), (1, 0.1, 0.1), (0, 0.01, 0.3), (1, 0.01, 0.35)]]
    runs += [dict(loss="giou", seed=0, lr=lr, val_accuracy_mean=v) for lr, v in [(0.1, float("nan")), (0.01, 0.2),
                                                                                 (0.001, 0.2)]]
    assert training.choose_rates(runs) == {"l2": 0.01, "giou": 0.001}  # means 0.3 < 0.325; a tie goes to the smaller


SMALL = ["--losses", "l2", "giou", "--seeds", "2", "--epochs", "2", "--lrs", "1e-3", "3e-3", "--images", "48", "16",
         "16", "--image-size", "16", "--min-size", "3", "--model", "mlp", "--batch-size", "16", "--grow", "2"]


def protocol(rows, seeds=(0, 1, 2), tune_seeds=1, grow=2, lrs=(1e-3, 3e-3, 1e-2), losses=("l2", "giou")):
    sweep = dict(experiment="learning", learning=dict(training.LEARNING_DEFAULTS, tune_seeds=tune_seeds, grow=grow),
                 axes=dict(loss=list(losses), lr=list(lrs), seed=list(seeds)), tie=[], exclude=[])
    return [(c["loss"], c["lr"], c["seed"]) for c in sweeps.cells(sweep, rows)]


def scores(loss, by_rate, seeds=(0,)):
    return [dict(loss=loss, lr=str(lr), seed=str(seed), val_accuracy_mean=str(value))
            for lr, value in by_rate.items() for seed in seeds]


def test_rates_are_tuned_on_the_first_seed_and_the_other_seeds_train_at_the_chosen_rate_only():
    grid = [(loss, lr, 0) for loss in ("l2", "giou") for lr in (1e-3, 3e-3, 1e-2)]
    assert protocol([]) == grid  # before any result: the grid on the tuning seed
    l2 = scores("l2", {1e-3: 0.2, 3e-3: 0.4, 1e-2: 0.3})  # best inside the grid
    assert protocol(l2) == grid + [("l2", 3e-3, 1), ("l2", 3e-3, 2)]
    assert protocol([], tune_seeds=0, grow=0) == [(loss, lr, seed) for loss in ("l2", "giou")
                                                  for lr in (1e-3, 3e-3, 1e-2) for seed in (0, 1, 2)]


def test_the_grid_grows_by_one_rate_beyond_the_end_where_the_chosen_rate_lies_as_often_as_allowed():
    grid = [(loss, lr, 0) for loss in ("l2", "giou") for lr in (1e-3, 3e-3, 1e-2)]
    rising = scores("giou", {1e-3: 0.1, 3e-3: 0.2, 1e-2: 0.3})
    assert protocol(rising) == grid + [("giou", 0.033, 0)]  # half a decade beyond the top, as the grid steps
    rising += scores("giou", {0.033: 0.4})
    assert protocol(rising) == grid + [("giou", 0.033, 0), ("giou", 0.11, 0)]
    rising += scores("giou", {0.11: 0.5})  # best at the top again, but the grid has grown twice there
    assert protocol(rising)[-2:] == [("giou", 0.11, 1), ("giou", 0.11, 2)]
    falling = scores("l2", {1e-3: 0.3, 3e-3: 0.2, 1e-2: 0.1})
    assert protocol(falling, grow=1) == grid + [("l2", 0.00033, 0)]
    assert protocol(falling + scores("l2", {0.00033: 0.2}), grow=1)[-2:] == [("l2", 1e-3, 1), ("l2", 1e-3, 2)]
    assert protocol(rising, grow=0) == grid + [("giou", 1e-2, 1), ("giou", 1e-2, 2)]


def test_a_fresh_stream_draws_new_images_each_epoch_apart_from_validation_and_test():
    stream = synthetic.make_stream(0, 6, 3, image_size=16, min_size=3.0)
    splits = synthetic.make_splits(0, 6, 6, 6, image_size=16, min_size=3.0)
    boxes = [d.boxes for d in stream] + [splits[name].boxes for name in ("train", "val", "test")]
    assert all(not np.array_equal(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    longer = synthetic.make_stream(0, 6, 5, image_size=16, min_size=3.0)
    assert all(np.array_equal(a.images, b.images) for a, b in zip(stream, longer))


@pytest.mark.slow
def test_a_run_killed_part_way_resumes_to_identical_rows(tmp_path, monkeypatch, capsys):
    experiment.main(["--out", str(tmp_path / "whole"), *SMALL, "--workers", "1"])
    append, calls = Store.append, []

    def interrupted(store, *arguments):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(store, *arguments)

    monkeypatch.setattr(Store, "append", interrupted)
    with pytest.raises(SystemExit) as stopped:
        experiment.main(["--out", str(tmp_path / "broken"), *SMALL, "--workers", "1"])
    assert stopped.value.code == 130 and len(read_csv(tmp_path / "broken" / "results.csv")) == 2
    assert "the same command goes on from there" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "broken"), "--replot"])
    # l2 has trained at both rates of seed 0, and the best of two is at an end: the grid grows
    assert "holds 2 of the 5 cells its results so far call for" in capsys.readouterr().err
    monkeypatch.setattr(Store, "append", append)
    experiment.main(["--out", str(tmp_path / "broken"), *SMALL, "--workers", "2"])
    for name in ("results.csv", "epochs.csv", "summary.csv", "pairs.csv"):
        whole, broken = read_csv(tmp_path / "whole" / name), read_csv(tmp_path / "broken" / name)
        strip = lambda rows: sorted(tuple((k, v) for k, v in r.items() if k != "seconds") for r in rows)  # noqa: E731
        assert strip(whole) == strip(broken), name
    summary = read_csv(tmp_path / "whole" / "summary.csv")
    assert [row["loss"] for row in summary] == ["l2", "giou"] and {row["seeds"] for row in summary} == {"2"}
    for column in ("lr", "mean_iou", "mean_iou_std", "accuracy_50", "accuracy_75", "accuracy_mean", "l1_error",
                   "l1_error_std", "small_accuracy_mean", "large_accuracy_50"):
        assert column in summary[0]
    for figure in ("accuracy.png", "epochs.png", "by_size.png", "gallery.png"):
        assert (tmp_path / "whole" / figure).stat().st_size > 0
    pairs = read_csv(tmp_path / "whole" / "pairs.csv")  # one pair, each measure, over all images and by size
    assert {(r["loss_a"], r["loss_b"]) for r in pairs} == {("l2", "giou")}
    assert {"accuracy_mean", "accuracy_75", "mean_iou", "large_accuracy_75"} <= {r["measure"] for r in pairs}
    assert "accuracy_mean: " in (tmp_path / "whole" / "findings.txt").read_text()


@pytest.mark.slow
def test_the_same_grid_as_a_sweep_file_runs_through_ablate_locally_and_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    ablate = load_experiment("ablate")
    experiment.main(["--out", str(tmp_path / "script"), *SMALL, "--workers", "1"])
    (tmp_path / "grid.toml").write_text(LEARNING_SWEEP)
    ablate.main([str(tmp_path / "grid.toml"), "--out", str(tmp_path / "ablate"), "--workers", "2"])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        ablate.main([str(tmp_path / "grid.toml"), "--out", str(tmp_path / "dask"), "--scheduler",
                     cluster.scheduler_address])
    rows = {name: sorted(tuple((k, v) for k, v in row.items() if k != "seconds")
                         for row in read_csv(tmp_path / name / "results.csv")) for name in ("script", "ablate", "dask")}
    assert rows["script"] == rows["ablate"] == rows["dask"] and len(rows["script"]) >= 6  # grid, grown, seed 1
    ablate.main(["--report", "--out", str(tmp_path / "ablate")])
    assert (tmp_path / "ablate" / "report.png").exists()


LEARNING_SWEEP = """
experiment = "learning"
[learning]
model = "mlp"
epochs = 2
images = [48, 16, 16]
image_size = 16
min_size = 3.0
batch_size = 16
grow = 2
[axes]
loss = ["l2", "giou"]
lr = [1e-3, 3e-3]
seed = [0, 1]
"""


@pytest.mark.parametrize("arguments, words", [
    (["--losses", "xiou"], "unknown loss 'xiou'"),
    (["--losses", "5*l1*2"], "each term of a weighted sum is a loss with at most one factor"),
    (["--lrs", "-0.001"], "--lrs must be one or more positive learning rates"),
    (["--lrs", "0.001", "0"], "--lrs must be one or more positive learning rates"),
    (["--lrs"], "expected at least one argument"),
    (["--image-size", "8", "--min-size", "9"], "too small for the size range"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--label-noise", "1.5"], "--label-noise must be a share"),
    (["--gradient", "authors"], "argument --gradient: invalid choice: 'authors'"),
])
def test_bad_input_stops_before_any_work_with_one_line(tmp_path, capsys, arguments, words):
    with pytest.raises(SystemExit):
        experiment.main(["--out", str(tmp_path / "out"), "--quick", *arguments])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert words in error and ": error: " in error
    assert not (tmp_path / "out").exists()


def test_the_example_sweep_file_is_the_default_experiment(tmp_path):
    from helpers import ROOT
    args, _ = experiment.parse_args(["--out", str(tmp_path / "out")])
    example = sweeps.load(ROOT / "experiments" / "sweeps" / "learning.toml")
    assert example == args.sweep


@pytest.mark.parametrize("loss, gradient", [("wiou_v3", "fused"), ("wiou_v3", "autograd"), ("uiou", "fused")])
def test_a_training_run_resumed_from_its_checkpoint_is_the_uninterrupted_run_bit_for_bit(loss, gradient,
                                                                                         tiny_splits):
    # Wise-IoU v3's running mean of the IoU loss (over minibatches) and Unified-IoU's scheduled scale are
    # state: the checkpoint keeps them with the weights, the rule's state and the minibatch order
    options = dict(model="cnn", lr=3e-3, epochs=3, batch_size=8, seed=2, dtype="float64", gradient=gradient)
    whole = training.train(loss, tiny_splits, **options)
    first = training.train(loss, tiny_splits, stop_after=1, **options)
    assert first["checkpoint"]["epoch"] == 1 and len(first["history"]["train_loss"]) == 1
    resumed = training.train(loss, tiny_splits, resume=first["checkpoint"], **options)
    np.testing.assert_array_equal(flatten(resumed["params"])[0], flatten(whole["params"])[0])
    assert resumed["loss_state"] == whole["loss_state"] != first["loss_state"]
    for key, values in whole["history"].items():
        if key != "seconds":
            assert resumed["history"][key] == values, key
    if loss == "wiou_v3":  # the running mean: the minibatch means of 1 - IoU, with the run's momentum
        assert 0 < whole["loss_state"] < 1
    else:  # the schedule's scale at the last of the 9 steps
        from sandbox.losses import unified_iou_ratio
        assert whole["loss_state"] == unified_iou_ratio(8 / 9)
