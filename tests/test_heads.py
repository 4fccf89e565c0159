"""The detector heads of the learning experiment (`sandbox.learning.heads`): DFL against a transcription
of the reference code, the decoders' gradients, the starting boxes, training, and the names."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from helpers import central_differences
from reference_losses import REFERENCE_LOSSES
from sandbox.learning import heads, synthetic, training
from sandbox.learning.networks import CENTRED_BOX, init_network, outputs, predict
from sandbox.runs import sweep as sweeps

IMAGE_SIZE = 32


def dfl_transcribed(logits, target):
    """DFL as mmdetection's ``distribution_focal_loss`` and ultralytics' ``DFLoss`` write it, in plain numpy.

    mmdet/models/losses/gfocal_loss.py: ``dis_left = label.long(); dis_right = dis_left + 1;
    weight_left = dis_right.float() - label; weight_right = label - dis_left.float(); loss =
    F.cross_entropy(pred, dis_left) * weight_left + F.cross_entropy(pred, dis_right) * weight_right``;
    ultralytics/utils/loss.py ``DFLoss``, the same with ``wr = 1 - wl``. Cross-entropy of bin k is
    -log(exp(x_k) / sum_j exp(x_j)), written here row by row with math.log, for logits of moderate
    size (no shift).
    """
    losses = []
    for row, y in zip(np.reshape(logits, (-1, logits.shape[-1])), np.ravel(target)):
        left = int(math.floor(y))  # .long() truncates; the targets are >= 0
        right = left + 1
        total = sum(math.exp(x) for x in row)

        def cross_entropy(k):
            return -math.log(math.exp(row[k]) / total)
        losses.append(cross_entropy(left) * (right - y) + cross_entropy(right) * (y - left))
    return np.reshape(losses, np.shape(target))


def test_dfl_matches_a_transcription_of_mmdetection_and_ultralytics():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(6, 4, 17))
    target = rng.uniform(0.0, 16 - 0.01, size=(6, 4))
    target[0] = [0.0, 3.0, 15.99, 7.5]  # the lowest bin, a whole bin, the clip's top, a half
    np.testing.assert_allclose(heads.distribution_focal_loss(logits, target), dfl_transcribed(logits, target),
                               rtol=1e-12)


@pytest.mark.parametrize("y", [0.0, 0.3, 4.0, 7.5, 12.25, 15.99, 16.0])
def test_dfl_is_least_at_the_two_bin_distribution_whose_expectation_is_y(y):
    bins = np.arange(17)
    two_bin = np.maximum(1.0 - np.abs(bins - y), 0.0)  # r - y on bin l, y - l on bin r
    assert math.isclose(two_bin @ bins, y) and math.isclose(two_bin.sum(), 1.0)
    entropy = -sum(p * math.log(p) for p in two_bin if p > 0)
    at_least = np.log(two_bin + 1e-300)  # its softmax is the two-bin distribution, to rounding
    assert heads.distribution_focal_loss(at_least, np.array(y)) == pytest.approx(entropy, abs=1e-12)
    gradient = grad(lambda logits: heads.distribution_focal_loss(logits, np.array(y)))(at_least)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-12)  # softmax - two_bin: a minimum
    rng = np.random.default_rng(1)
    others = [heads.distribution_focal_loss(np.log((1 - t) * two_bin + t * rng.dirichlet(np.ones(17))), np.array(y))
              for t in (0.01, 0.3, 0.9) for _ in range(20)]
    assert min(others) > entropy + 1e-6  # Gibbs' inequality: any other distribution costs more


def test_dfl_refuses_targets_outside_the_bins():
    with pytest.raises(ValueError, match=r"DFL targets must lie in \[0, 16\] bins"):
        heads.distribution_focal_loss(np.zeros((2, 17)), np.array([3.0, 16.5]))


def test_softmax_and_sigmoid_stay_finite_on_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]])
    np.testing.assert_allclose(np.exp(heads.log_softmax(logits)), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-15)
    gradient = grad(lambda x: anp.sum(heads.log_softmax(x)[:, 0]))(logits)
    assert np.all(np.isfinite(gradient))
    np.testing.assert_array_equal(heads.sigmoid(np.array([-1e4, 0.0, 1e4])), [0.0, 0.5, 1.0])


def test_the_expected_box_is_the_expectation_of_each_edge():
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(3, 68))
    probabilities = np.exp(raw.reshape(3, 4, 17))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    expected = probabilities @ (np.arange(17) / 16) * IMAGE_SIZE  # bin k at k / reg_max of the side
    np.testing.assert_allclose(heads.recipe_for("gfl").decode(raw, IMAGE_SIZE), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["gfl", "detr"])
def test_decode_and_objective_gradients_match_central_differences(name):
    recipe = heads.recipe_for(name)
    rng = np.random.default_rng(3)
    raw = recipe.bias + rng.normal(size=(3, recipe.outputs))
    target = np.array([[2.0, 3.0, 20.0, 30.0], [0.0, 0.0, 32.0, 32.0], [10.0, 5.0, 11.5, 6.0]])
    weights = rng.normal(size=(3, 4))

    def decoded(raw):
        return anp.sum(recipe.decode(raw, IMAGE_SIZE) * weights)

    def objective(raw):
        return anp.sum(recipe.objective(raw, target, IMAGE_SIZE))
    for function in (decoded, objective):
        np.testing.assert_allclose(grad(function)(raw), central_differences(function, raw), rtol=1e-6, atol=1e-8)


def test_the_gfl_objective_is_giou_times_2_plus_dfl_times_a_quarter():
    recipe = heads.recipe_for("gfl")
    rng = np.random.default_rng(4)
    raw = recipe.bias + rng.normal(size=(2, 68))
    target = np.array([[2.0, 3.0, 20.0, 30.0], [0.0, 1.0, 32.0, 9.0]])
    pred = recipe.decode(raw, IMAGE_SIZE)
    edges = np.minimum(target / IMAGE_SIZE * 16, 15.99)  # x2 = 32 is the image's edge: clipped to 15.99 bins
    dfl = dfl_transcribed(raw.reshape(2, 4, 17), edges).mean(axis=-1)  # mmdetection's avg_factor=4.0
    giou = [REFERENCE_LOSSES["giou"](p, t) for p, t in zip(pred, target)]
    np.testing.assert_allclose(recipe.objective(raw, target, IMAGE_SIZE), 2.0 * np.array(giou) + 0.25 * dfl,
                               rtol=1e-12)


def test_the_detr_objective_is_l1_on_normalised_cxcywh_times_5_plus_giou_times_2():
    recipe = heads.recipe_for("detr")
    raw = np.array([[0.3, -0.2, 1.0, -1.5], [2.0, 0.0, -0.5, 0.5]])
    target = np.array([[2.0, 3.0, 20.0, 30.0], [0.0, 1.0, 32.0, 9.0]])
    cxcywh = 1.0 / (1.0 + np.exp(-raw))  # DETR's bbox_embed(...).sigmoid()
    pred = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
    normalised = target / IMAGE_SIZE
    target_cxcywh = np.concatenate([(normalised[:, :2] + normalised[:, 2:]) / 2,
                                    normalised[:, 2:] - normalised[:, :2]], axis=1)
    l1 = np.abs(cxcywh - target_cxcywh).sum(axis=1)
    giou = [REFERENCE_LOSSES["giou"](p, t) for p, t in zip(pred, normalised)]
    np.testing.assert_allclose(recipe.objective(raw, target, IMAGE_SIZE), 5.0 * l1 + 2.0 * np.array(giou),
                               rtol=1e-12)
    np.testing.assert_allclose(recipe.decode(raw, IMAGE_SIZE), pred * IMAGE_SIZE, rtol=1e-12)


@pytest.mark.parametrize("name", ["gfl", "detr"])
def test_the_initial_bias_stands_for_the_centred_box(name):
    recipe = heads.recipe_for(name)
    assert recipe.bias.shape == (recipe.outputs,)
    np.testing.assert_allclose(recipe.decode(recipe.bias[None], IMAGE_SIZE), [np.array(CENTRED_BOX) * IMAGE_SIZE],
                               atol=1e-12)


def test_the_distribution_head_starts_each_edge_at_maximum_entropy_and_the_plain_head_as_before():
    bias = heads.recipe_for("gfl").bias.reshape(4, 17)
    slopes = np.diff(bias, axis=1)
    np.testing.assert_allclose(slopes, slopes[:, :1] * np.ones(16), atol=1e-12)  # beta * k: maximum entropy
    assert slopes[0, 0] < 0 < slopes[2, 0] and slopes[0, 0] == pytest.approx(-slopes[2, 0], abs=1e-12)
    plain = init_network("mlp", 16, 0)  # the plain head's own start, through its parameterisation
    np.testing.assert_allclose(predict(dict(plain, output_weights=0 * plain["output_weights"]),
                                       np.zeros((1, 16, 16)), "mlp"), [np.array(CENTRED_BOX) * 16], atol=1e-12)


def test_a_network_for_a_head_has_its_width_and_a_zero_bias_for_the_head_to_set():
    params = init_network("cnn", 16, 0, hidden=((2, 3), (5,)), outputs=68)
    assert params["output_weights"].shape == (5, 68) and np.all(params["output_bias"] == 0)
    with pytest.raises(ValueError, match="with outputs=68 use init='default'"):
        init_network("mlp", 16, 0, init="apart", outputs=68)
    with pytest.raises(ValueError, match="reads 68 outputs per image; got raw outputs of shape"):
        heads.recipe_for("gfl").decode(np.zeros((2, 4)), 16)


@pytest.mark.portable  # trains a network: BLAS
@pytest.mark.parametrize("loss", ["giou", "gfl", "detr"])
def test_each_recipe_trains_a_tiny_network_and_its_loss_goes_down(loss):
    splits = synthetic.make_splits(0, 96, 16, 16, image_size=16, min_size=3.0)
    result = training.train(loss, splits, model="mlp", lr=3e-3, epochs=8, batch_size=16, seed=0)
    recipe = heads.recipe_for(loss)
    start = init_network("mlp", 16, 0, outputs=recipe.outputs)  # where train starts (the next test checks)
    if recipe.bias is not None:
        start["output_bias"] = recipe.bias

    def mean_objective(params):
        return np.mean(recipe.objective(outputs(params, splits["train"].images, "mlp"), splits["train"].boxes, 16))
    assert not result["diverged"] and result["params"]["output_bias"].shape == (recipe.outputs,)
    # on 48 steps of 16 images: giou 0.91 -> 0.61, gfl 2.45 -> 1.96, detr 5.35 -> 3.39
    assert mean_objective(result["params"]) < 0.85 * mean_objective(start)
    losses = result["history"]["train_loss"]
    assert losses[-1] < losses[0] and result["test"]["count"] == 16


@pytest.mark.portable  # trains a network: BLAS
def test_train_starts_a_head_at_its_bias():
    splits = synthetic.make_splits(0, 16, 4, 4, image_size=16, min_size=3.0)
    result = training.train("gfl", splits, model="mlp", lr=1e-12, epochs=1, batch_size=16, seed=0)
    # to float32's rounding, should the network be float32 (Adam moves it by about 1e-12 here)
    np.testing.assert_allclose(result["params"]["output_bias"], heads.recipe_for("gfl").bias, rtol=1e-6, atol=1e-6)


@pytest.mark.portable  # trains a network: BLAS
def test_a_run_records_the_heads_decoded_boxes():
    config = dict(training.LEARNING_DEFAULTS, model="mlp", epochs=1, images=[32, 8, 8], image_size=16, min_size=3.0)
    record = training.run((config, "detr", 0, 1e-3), keep=3)
    gallery = np.array(record["gallery"])
    assert record["loss"] == "detr" and gallery.shape == (3, 4)
    centres, sizes = (gallery[:, :2] + gallery[:, 2:]) / 2, gallery[:, 2:] - gallery[:, :2]
    assert np.all((centres > 0) & (centres < 16) & (sizes > 0) & (sizes < 16))  # sigmoid cxcywh, times 16


@pytest.mark.parametrize("name", ["gfl", "GFL", " detr "])
def test_recipe_names_match_in_any_case(name):
    assert heads.recipe_for(name).name == name.strip().lower() == heads.loss_name(name)
    assert heads.loss_name("5*L1 + 2*GIoU") == "5*l1+2*giou" and heads.recipe_for("giou").outputs == 4


@pytest.mark.parametrize("bad", ["nope", "gfl+giou", "alpha_ciou:alpha=-1"])
def test_a_value_that_is_neither_kind_is_refused_in_one_line_naming_both(bad):
    for check in (heads.recipe_for, heads.loss_name):
        with pytest.raises(ValueError, match=r"is neither a head recipe \(gfl, detr\) nor a loss spec") as error:
            check(bad)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["gfl", "detr"])
def test_apart_is_for_the_plain_head_only(name):
    with pytest.raises(ValueError, match=f"the {name} head cannot stand for"):
        heads.recipe_for(name, init="apart")
    splits = synthetic.make_splits(0, 8, 4, 4, image_size=16, min_size=3.0)
    with pytest.raises(ValueError, match="init='apart' starts every box left of and above the image"):
        training.train(name, splits, model="mlp", epochs=1, init="Apart")
    assert heads.recipe_for("giou", init="apart").confinement == ""


def test_a_learning_sweep_takes_recipes_on_its_loss_axis():
    sweep = sweeps.resolve(dict(experiment="learning", axes=dict(loss=["GFL", "detr", "GIoU"]),
                                exclude=[dict(loss="Detr")]))
    assert sweep["axes"]["loss"] == ["gfl", "detr", "giou"] and [c["loss"] for c in sweeps.cells(sweep)] == ["gfl",
                                                                                                         "giou"]
    assert sweeps.axis_value("loss", "GFL", experiment="learning") == "gfl"


@pytest.mark.parametrize("experiment", ["boxes", "simulation"])
def test_other_sweeps_refuse_recipes_saying_which_sweep_takes_them(experiment):
    with pytest.raises(sweeps.SweepError, match=r"item 2: 'gfl' is a head recipe, which only a learning sweep"):
        sweeps.resolve(dict(experiment=experiment, axes=dict(loss=["giou", "gfl"])))
    with pytest.raises(sweeps.SweepError, match="only a learning sweep"):
        sweeps.axis_value("loss", "detr", experiment=experiment)


def test_a_learning_sweep_refuses_a_loss_of_neither_kind_and_a_head_that_cannot_start_apart():
    with pytest.raises(sweeps.SweepError, match=r"'nope' is neither a head recipe \(gfl, detr\) nor a loss spec"):
        sweeps.resolve(dict(experiment="learning", axes=dict(loss=["nope"])))
    with pytest.raises(sweeps.SweepError, match=r"item 2: init='apart' .* the detr head"):
        sweeps.resolve(dict(experiment="learning", learning=dict(init="apart"), axes=dict(loss=["giou", "detr"])))
