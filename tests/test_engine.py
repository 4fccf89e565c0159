"""The first-order engine: a box's run does not depend on the batch it ran in; fit is the engine at n = 1."""
import numpy as np
import pytest

import sandbox
import sandbox.losses
from sandbox.optim import engine
from sandbox.optim.fitting import fit_many
from sandbox.optim.settings import resolve

TARGET = np.array([-1.0, -0.5, 1.0, 0.5])
STARTS = np.array([
    [1.5, -0.75, 2.5, 0.75],     # right of the target, apart: IoU stalls at once
    [-0.5, -2.0, 0.5, -1.0],     # below it, apart
    [-0.5, -0.25, 1.5, 0.75],    # overlapping
    [0.8, 0.4, -1.3, -0.3],      # overlapping, inverted
    [-3.0, -1.0, -2.0, 2.0],     # left, apart, tall
    [-1.0, -0.5, 1.0, 0.5],      # on the target: the gradient is zero for the coordinate losses
])
RATES = np.array([0.3, 0.1, 0.2, 1e300, 0.01, 0.3])  # the fourth box's steps overflow
PER_BOX = ("x", "box", "nit", "nfev", "status", "gradient_max", "boxes", "losses", "ious", "gious", "grad_norms")


def descend(starts, targets, record="history", callback=None, chunk_size=None, workers=1, **settings):
    """The engine with the settings resolved here, as an entry point would."""
    return engine.descend(starts, targets, resolve(**settings), record=record, callback=callback,
                          chunk_size=chunk_size, workers=workers)


def one_at_a_time(starts, lr, **settings):
    with np.errstate(all="ignore"):  # the fourth box's overflow
        runs = [descend(start[None], TARGET, lr=rate, **settings) for start, rate in zip(starts, lr)]
    return {key: np.concatenate([run[key] for run in runs]) for key in PER_BOX}


@pytest.mark.portable
@pytest.mark.parametrize("method, param, options", [
    ("gd", "xyxy", {}),
    ("gd", "log", {"schedule": "cosine", "iou_weighting": True}),
    ("momentum", "xyxy", {"iou_weighting": True}),
    ("momentum", "cxcywh", {"schedule": "constant"}),
    ("adam", "log", {}),
    ("adam", "xyxy", {"schedule": "cosine"}),
])
@pytest.mark.parametrize("loss, gradient", [("iou", "fused"), ("giou", "fused"), ("giou", "autograd"),
                                            ("l2", "autograd")])
def test_a_box_runs_the_same_alone_or_in_any_batch_bit_for_bit(method, param, options, loss, gradient):
    settings = dict(loss=loss, method=method, param=param, maxiter=60, gradient=gradient, **options)
    chosen = [0, 1, 2, 4, 5] if param == "log" else list(range(6))  # log needs positive sizes: not the inverted
    starts, rates = STARTS[chosen], RATES[chosen] if param != "log" else np.array([0.3, 0.1, 1e300, 0.01, 0.3])
    alone = one_at_a_time(starts, rates, **settings)
    with np.errstate(all="ignore"):
        batches = [descend(starts, TARGET, lr=rates, **settings),
                   descend(starts, TARGET, lr=rates, chunk_size=2, **settings),
                   descend(starts[::-1], TARGET, lr=rates[::-1], **settings)]
    for key in PER_BOX:
        for batch, order in zip(batches, [slice(None), slice(None), slice(None, None, -1)]):
            np.testing.assert_array_equal(batch[key][order], alone[key], err_msg=key)
    # the boxes ended in different ways at different steps, and each stopped box kept still
    if method == "gd" and param == "xyxy" and loss in ("iou", "l2"):
        assert {0, 1, 3 if loss == "l2" else 0} <= set(alone["status"].tolist())
        assert len(set(alone["nit"].tolist())) >= 3
    for i, steps in enumerate(alone["nit"]):
        assert np.isnan(alone["boxes"][i, steps + 1:]).all() and not np.isnan(alone["boxes"][i, :steps + 1]).any()



@pytest.mark.parametrize("loss, gradient, method", [("wiou_v3", "fused", "adam"), ("wiou_v3", "autograd", "gd"),
                                                    ("wiou_v2", "fused", "momentum"), ("uiou", "fused", "gd"),
                                                    ("uiou", "autograd", "adam")])
def test_a_stateful_loss_keeps_one_state_per_box_and_a_box_runs_the_same_alone_or_in_any_batch(loss, gradient,
                                                                                                 method):
    settings = dict(loss=loss, method=method, maxiter=40, gradient=gradient)
    starts, rates = STARTS, RATES
    keys = (*PER_BOX, "loss_state")
    with np.errstate(all="ignore"):
        runs = [descend(start[None], TARGET, lr=rate, **settings) for start, rate in zip(starts, rates)]
        alone = {key: np.concatenate([run[key] for run in runs]) for key in keys}
        batches = [descend(starts, TARGET, lr=rates, **settings),
                   descend(starts, TARGET, lr=rates, chunk_size=2, **settings),
                   descend(starts[::-1], TARGET, lr=rates[::-1], **settings)]
    for key in keys:
        for batch, order in zip(batches, [slice(None), slice(None), slice(None, None, -1)]):
            np.testing.assert_array_equal(batch[key][order], alone[key], err_msg=key)
    if loss.startswith("wiou"):  # each box's running mean is over its own steps: replay it from its history
        momentum = 1 - 0.05 ** (1 / 40)
        for i in (0, 2, 4):
            mean = 1.0
            for t in range(alone["nit"][i]):
                mean = (1 - momentum) * mean + momentum * (1 - alone["ious"][i, t])
                assert alone["losses"][i, t] == pytest.approx(
                    sandbox.LOSSES[loss](alone["boxes"][i, t], TARGET, iou_mean=mean), rel=1e-12)
            assert alone["loss_state"][i] == pytest.approx(mean, rel=1e-12)
        assert len(set(alone["loss_state"].tolist())) == len(starts)  # every box its own mean
    else:  # Unified-IoU's scale follows the schedule: 2 at the start, toward 0.5 at the end
        assert alone["loss_state"][0] == pytest.approx(sandbox.losses.unified_iou_ratio(39 / 40))
        assert alone["losses"][0, 0] == sandbox.LOSSES["uiou"](STARTS[0], TARGET, ratio=2.0)


@pytest.mark.portable
def test_the_boxes_stop_each_for_its_own_reason():
    with np.errstate(all="ignore"):
        run = descend(STARTS, TARGET, loss="l2", method="gd", lr=RATES, maxiter=200, gtol=1e-5)
    assert run.status.tolist() == [0, 0, 0, 3, 1, 0]
    assert run.nit[0] < run.nit[1] < 200 and run.nit[5] == 0  # at different steps; the one home at once
    assert run.nit[3] <= 3 and not np.all(np.isfinite(run.losses[3, run.nit[3]]))
    np.testing.assert_array_equal(run.box[5], TARGET)
    assert np.all(run.gradient_max[[0, 1, 2, 5]] <= 1e-5) and np.isnan(run.gradient_max[4])
    np.testing.assert_array_equal(run.nfev, np.where(run.status == 1, run.nit, run.nit + 1))


@pytest.mark.portable
@pytest.mark.parametrize("method", ["gd", "momentum", "adam"])
def test_running_sums_move_the_boxes_as_histories_do(method):
    # what is recorded changes nothing of the run: the same boxes, stops and sums of the history
    settings = dict(loss="diou", method=method, param="cxcywh", maxiter=50, gtol=None, iou_weighting=True)
    history = descend(STARTS, TARGET, record="history", **settings)
    sums = descend(STARTS, TARGET, record="sums", **settings)
    for key in ("box", "nit", "status"):
        np.testing.assert_array_equal(sums[key], history[key], err_msg=key)
    np.testing.assert_allclose(sums.mean_iou, history.ious.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(sums.final_ious, history.ious[:, -1])


@pytest.mark.portable
def test_batched_runs_do_not_depend_on_workers():
    settings = dict(loss="giou", method="adam", param="xyxy", maxiter=40, lr=RATES[[0, 1, 2, 4, 5, 0]])
    one = descend(STARTS, TARGET, **settings)
    two = descend(STARTS, TARGET, workers=2, chunk_size=3, **settings)
    for key in PER_BOX:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("method, options", [
    ("gd", {}), ("gd", {"iou_weighting": True, "schedule": "cosine", "lr": 0.1}), ("momentum", {"beta": 0.5}),
    ("adam", {"lr": 0.05, "b1": 0.8}), ("gd", {"gradient": "fused"}),
])
@pytest.mark.parametrize("loss", ["iou", "giou", "l2", "ciou"])
def test_fit_and_fit_many_are_the_engine_at_n_equals_one(method, options, loss):
    starts = STARTS[:5]
    many = fit_many(starts, TARGET, loss=loss, method=method, maxiter=80, **options)
    for i, start in enumerate(starts):
        alone = sandbox.fit(start, TARGET, loss=loss, method=method, maxiter=80, **options)
        engine = descend(start[None], TARGET, loss=loss, method=method, maxiter=80,
                         **{"gradient": "autograd", "lr": sandbox.optim.rules.DEFAULT_LEARNING_RATES[method], **options})
        steps = alone.nit + 1
        assert alone.nit == many.nit[i] == engine.nit[0] and alone.status == many.status[i] == engine.status[0]
        assert alone.outcome == many.outcome[i] and alone.message == many.message[i]
        for key in ("boxes", "losses", "ious", "gious", "grad_norms"):
            np.testing.assert_array_equal(alone[key], engine[key][0, :steps], err_msg=key)
            np.testing.assert_array_equal(alone[key], many[key][i, :steps], err_msg=key)
            assert np.isnan(many[key][i, steps:]).all()
        np.testing.assert_array_equal(alone.x, engine.x[0])
        assert alone.fun == many.fun[i] and alone.success == many.success[i] and alone.stalled == many.stalled[i]


@pytest.mark.portable
def test_fit_many_takes_one_learning_rate_per_start_and_reports_each_outcome():
    result = fit_many(STARTS[:3], TARGET, loss="iou", method="gd", lr=[0.3, 0.3, 0.05], maxiter=100)
    assert result.outcome.tolist() == ["stalled", "stalled", "max_iterations"]
    assert result.boxes.shape == (3, 101, 4) and result.x.shape == (3, 4) and result.nit.tolist() == [0, 0, 100]
    alone = sandbox.fit(STARTS[2], TARGET, loss="iou", lr=0.05, maxiter=100)
    np.testing.assert_array_equal(result.boxes[2], alone.boxes)


@pytest.mark.portable
def test_a_callback_sees_every_box_and_can_stop_the_run():
    seen = []

    def callback(intermediate):
        seen.append(intermediate.running.copy())
        if intermediate.nit == 5:
            raise StopIteration

    result = fit_many(STARTS, TARGET, loss="l2", method="gd", callback=callback)
    assert result.status.tolist() == [99, 99, 99, 99, 99, 0] and result.nit.tolist() == [5] * 5 + [0]
    assert set(result.outcome.tolist()) == {"stopped", "stalled"} and len(seen) == 5
    assert seen[0].tolist() == [True] * 5 + [False]


@pytest.mark.parametrize("call, words", [
    (lambda: fit_many(STARTS, TARGET, method="BFGS"),
     "fit_many runs the first-order methods (gd, momentum, adam) on many boxes at once; 'BFGS' moves one box "
     "at a time: call fit(start, target, method='BFGS') for each start"),
    (lambda: fit_many(STARTS[0], TARGET), "fit_many takes starts of shape (n, 4); got shape (4,)"),
    (lambda: fit_many(STARTS, STARTS[:2]), "targets must have shape (4,) or the starts' shape (6, 4)"),
    (lambda: fit_many(STARTS, TARGET, lr=[0.1, 0.2]), "one rate per box, shape (6,); got shape (2,)"),
    (lambda: fit_many(STARTS, TARGET, lr=[0.1] * 5 + [0.0]), "lr must be positive; box 5 has lr 0.0"),
    (lambda: fit_many(STARTS, TARGET, method="adam", beta=0.5), "method 'adam' takes no option(s) beta"),
    (lambda: descend(STARTS, TARGET, record="everything"), "unknown record 'everything'; valid: history, sums"),
    (lambda: descend(STARTS, TARGET, gtol=-1), "gtol must be a number >= 0, or None"),
    (lambda: descend(STARTS, TARGET, callback=print, chunk_size=2), "run with one worker and one chunk"),
])
def test_bad_arguments_are_named_before_any_work(call, words):
    with pytest.raises(ValueError) as error:
        call()
    assert words in str(error.value)
