import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.misc import flatten
from autograd.test_util import check_grads

from sandbox import giou_loss, iou, iou_loss, l1_loss
from sandbox.learning.networks import (MODELS, convolve, init_network, mean_pool, neighbourhoods, parameter_count,
                              predict)
from sandbox.geometry.parameterisations import PARAMETERISATIONS
from sandbox.learning.synthetic import make_dataset

# The networks' forward passes and gradients run through BLAS (matmul, tensordot): `make
# test-portable` runs this file under every emulated CPU.
pytestmark = pytest.mark.portable

PARAMS = sorted(PARAMETERISATIONS)


def small_network(model, param, seed=0, init="default"):
    """A narrow network on 12-pixel images, so that finite differences stay cheap."""
    hidden = (3, 4, 6) if model == "cnn" else (10, 6)
    return init_network(model, 12, seed, hidden=hidden, init=init, param=param)


def reference_convolution(features, weights):
    """'Same' 3 x 3 cross-correlation as explicit loops over offsets, zero outside."""
    n, height, width, _ = features.shape
    padded = np.pad(features, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, height, width, weights.shape[-1]))
    for i in range(3):
        for j in range(3):
            for b in range(n):
                out[b] += padded[b, i:i + height, j:j + width] @ weights[i, j]
    return out


@pytest.mark.parametrize("param", ["xyxy", "cxcywh", "log"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("loss", [giou_loss, l1_loss])
def test_gradient_matches_finite_differences(model, param, loss):
    data = make_dataset(4, 1, image_size=12, min_size=2.0)
    vector, unflatten = flatten(small_network(model, param))

    def total_loss(vector):
        return anp.sum(loss(predict(unflatten(vector), data.images, model, param=param), data.boxes))
    np.random.seed(0)  # check_grads draws its random directions from numpy's global generator
    check_grads(total_loss, modes=["rev"], order=1)(vector)


@pytest.mark.parametrize("model", MODELS)
def test_gradient_matches_central_differences_coordinate_by_coordinate(model):
    data = make_dataset(3, 2, image_size=12)
    vector, unflatten = flatten(small_network(model, "cxcywh", seed=3))

    def total_loss(vector):
        return anp.sum(giou_loss(predict(unflatten(vector), data.images, model), data.boxes))
    exact = grad(total_loss)(vector)
    step = 1e-6
    for k in np.random.default_rng(0).choice(len(vector), size=25, replace=False):
        shift = np.zeros_like(vector)
        shift[k] = step
        numeric = (total_loss(vector + shift) - total_loss(vector - shift)) / (2 * step)
        np.testing.assert_allclose(exact[k], numeric, rtol=1e-5, atol=1e-7)


def test_convolution_matches_explicit_loops_and_its_gradient_is_exact():
    rng = np.random.default_rng(0)
    features, weights = rng.standard_normal((2, 6, 8, 3)), rng.standard_normal((3, 3, 3, 5))
    np.testing.assert_allclose(convolve(features, weights), reference_convolution(features, weights), rtol=1e-12)
    np.random.seed(1)
    check_grads(convolve, modes=["fwd", "rev"], order=2)(features, weights)
    check_grads(neighbourhoods, modes=["fwd", "rev"], order=1)(features)
    pooled = mean_pool(features[:, :, :, :])
    np.testing.assert_allclose(pooled[0, 1, 2], features[0, 2:4, 4:6].mean(axis=(0, 1)))


@pytest.mark.parametrize("model", MODELS)
def test_initialisation_is_seeded_and_he_normal(model):
    params = init_network(model, 32, seed=5)
    again, other = init_network(model, 32, seed=5), init_network(model, 32, seed=6)
    assert list(params) == list(again)
    for name in params:
        np.testing.assert_array_equal(params[name], again[name])
        assert params[name].dtype == np.float64
    assert not np.array_equal(params["output_weights"], other["output_weights"])
    weights = params["dense1_weights"]
    np.testing.assert_allclose(weights.std(), np.sqrt(2 / weights.shape[0]), rtol=0.05)
    assert np.all(params["dense1_bias"] == 0)


@pytest.mark.parametrize("model, image_size, count", [("mlp", 32, 139_716), ("cnn", 32, 67_108),
                                                      ("mlp", 64, 532_932), ("cnn", 64, 263_716)])
def test_output_shapes_and_parameter_counts(model, image_size, count):
    # mlp: S*S*128 + 128 + 128*64 + 64 + 64*4 + 4
    # cnn: 9*8 + 8 + 9*8*16 + 16 + (S/4)**2*16*64 + 64 + 64*4 + 4
    params = init_network(model, image_size, seed=0)
    assert parameter_count(params) == count
    for n in (1, 5):
        boxes = predict(params, np.zeros((n, image_size, image_size)), model)
        assert boxes.shape == (n, 4) and boxes.dtype == np.float64 and np.all(np.isfinite(boxes))


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("model", MODELS)
def test_apart_init_predicts_the_apart_box_for_any_image_and_it_overlaps_no_object(model, param):
    data = make_dataset(50, 3, distractors=1)
    params = init_network(model, 32, seed=1, init="apart", param=param)
    apart = np.array([-0.45, -0.45, -0.05, -0.05]) * 32
    for images in (data.images, np.random.default_rng(0).uniform(-5, 5, size=(7, 32, 32))):
        boxes = predict(params, images, model, param=param)
        assert np.all(boxes == boxes[0])  # the same box, bit for bit, whatever the image
        np.testing.assert_allclose(boxes[0], apart, rtol=0, atol=1e-12)  # to rounding through the parameters
    assert np.all(iou(predict(params, data.images, model, param=param), data.boxes) == 0)
    chosen = [3.0, 4.0, 9.0, 6.5]
    params = init_network(model, 32, seed=1, init="apart", apart_box=chosen, param=param)
    np.testing.assert_allclose(predict(params, data.images[:3], model, param=param), [chosen] * 3, atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_from_the_apart_start_the_iou_loss_has_zero_gradient_and_giou_does_not(model):
    data = make_dataset(16, 4)
    vector, unflatten = flatten(init_network(model, 32, seed=2, init="apart"))

    def gradient(loss):
        return grad(lambda v: anp.sum(loss(predict(unflatten(v), data.images, model), data.boxes)))(vector)
    assert np.all(gradient(iou_loss) == 0)
    assert np.linalg.norm(gradient(giou_loss)) > 0.1


def test_default_start_is_the_centred_box_through_every_parameterisation():
    for param in PARAMS:
        params = init_network("mlp", 16, seed=0, param=param)
        params["output_weights"] = np.zeros_like(params["output_weights"])
        np.testing.assert_allclose(predict(params, np.ones((2, 16, 16)), "mlp", param=param),
                                   [[4, 4, 12, 12]] * 2, atol=1e-12)


def test_hidden_sizes_can_be_chosen():
    params = init_network("mlp", 16, seed=0, hidden=(7,))
    assert params["dense1_weights"].shape == (256, 7) and params["output_weights"].shape == (7, 4)
    params = init_network("cnn", 16, seed=0, hidden=(2, 3, 5, 4))
    assert params["conv2_weights"].shape == (3, 3, 2, 3) and params["dense1_weights"].shape == (48, 5)
    assert params["dense2_weights"].shape == (5, 4) and predict(params, np.zeros((2, 16, 16)), "cnn").shape == (2, 4)


@pytest.mark.parametrize("call, words", [
    (lambda: init_network("resnet", 32, 0), "unknown model 'resnet'"),
    (lambda: init_network("cnn", 30, 0), "multiple of 4; got 30"),
    (lambda: init_network("mlp", 32, 0, init="zeros"), "unknown init 'zeros'"),
    (lambda: init_network("mlp", 32, 0, param="polar"), "unknown parameterisation 'polar'"),
    (lambda: init_network("mlp", 32, 0, apart_box=[0, 0, 1, 1]), "apart_box is used only with init='apart'"),
    (lambda: init_network("mlp", 32, 0, init="apart", apart_box=[0, 0, -1, 1]), "apart_box must be one xyxy box"),
    (lambda: init_network("cnn", 32, 0, hidden=(8,)), "hidden for the cnn must be two convolution"),
    (lambda: init_network("mlp", 32, 0, hidden=(8, 0)), "hidden for the mlp must be layer widths"),
    (lambda: predict(init_network("mlp", 16, 0), np.zeros((2, 16)), "mlp"), "images must have shape"),
    (lambda: predict(init_network("mlp", 16, 0), np.zeros((2, 16, 16)), "cnn"), "belong to a mlp, not a cnn"),
    (lambda: predict(init_network("cnn", 16, 0), np.zeros((2, 32, 32)), "cnn"), "images of side 32 give"),
])
def test_bad_arguments_are_clear_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()
