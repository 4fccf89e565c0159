import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.misc import flatten as autograd_flatten
from autograd.test_util import check_grads

from sandbox import giou_loss, iou, iou_loss, l1_loss
from sandbox.learning.networks import (MODELS, affine, convolve, coordinate_channels, coordinate_convolution, flatten,
                                       init_network, outputs, parameter_count, patches, predict)
from sandbox.learning import networks
from sandbox.geometry.parameterisations import PARAMETERISATIONS
from sandbox.learning.synthetic import make_dataset

# The networks' forward passes and gradients run through BLAS (matmul, tensordot): `make
# test-portable` runs this file under every emulated CPU.
pytestmark = pytest.mark.portable

PARAMS = sorted(PARAMETERISATIONS)


def small_network(model, param, seed=0, init="default"):
    """A narrow float64 network on 12-pixel images, so that finite differences stay cheap and exact enough."""
    hidden = ((3, 4), (6,)) if model == "cnn" else (10, 6)
    return init_network(model, 12, seed, hidden=hidden, init=init, param=param, dtype="float64")


def reference_convolution(features, weights, stride):
    """3 x 3 cross-correlation with zero padding 1 and `stride`, as explicit loops over outputs and offsets."""
    n, height, width, _ = features.shape
    padded = np.pad(features, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows, columns = len(range(0, height, stride)), len(range(0, width, stride))
    out = np.zeros((n, rows, columns, weights.shape[-1]))
    for b in range(n):
        for i in range(rows):
            for j in range(columns):
                for di in range(3):
                    for dj in range(3):
                        out[b, i, j] += padded[b, stride * i + di, stride * j + dj] @ weights[di, dj]
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


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (1, 7, 5, 2), (2, 6, 5, 1)])
def test_convolution_matches_explicit_loops_and_its_gradient_is_exact(shape, stride):
    rng = np.random.default_rng(0)
    features, weights, bias = rng.standard_normal(shape), rng.standard_normal((3, 3, shape[-1], 5)), rng.normal(size=5)
    expected = reference_convolution(features, weights, stride)
    np.testing.assert_allclose(convolve(features, weights, stride=stride), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(convolve(features, weights, bias, stride), np.maximum(expected + bias, 0),
                               rtol=1e-12, atol=1e-12)  # with a bias, then ReLU
    np.random.seed(1)
    check_grads(lambda f, w: convolve(f, w, stride=stride), modes=["fwd", "rev"], order=2)(features, weights)
    check_grads(lambda f: patches(f, stride), modes=["fwd", "rev"], order=2)(features)


def test_the_first_layer_is_the_convolution_of_the_image_and_its_coordinate_channels():
    rng = np.random.default_rng(3)
    images, weights, bias = rng.standard_normal((3, 8, 6)), rng.standard_normal((3, 3, 3, 5)), rng.normal(size=5)
    expected = np.maximum(reference_convolution(coordinate_channels(images), weights, 2) + bias, 0)
    np.testing.assert_allclose(coordinate_convolution(images, weights, bias), expected, rtol=1e-12, atol=1e-12)
    np.random.seed(2)
    check_grads(lambda w, b: coordinate_convolution(images, w, b), modes=["rev"], order=1)(weights, bias)


def test_affine_is_a_product_plus_bias_and_its_gradient_is_exact():
    rng = np.random.default_rng(4)
    inputs, weights, bias = rng.standard_normal((7, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    np.testing.assert_allclose(affine(inputs, weights, bias), inputs @ weights + bias, rtol=1e-12)
    np.testing.assert_array_equal(affine(inputs, weights), inputs @ weights)
    np.random.seed(3)
    check_grads(affine, modes=["fwd", "rev"], order=2)(inputs, weights, bias)
    check_grads(affine, modes=["fwd", "rev"], order=2)(inputs, weights)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(3, 8, 8, 4), (2, 5, 7, 1)])
def test_patches_adjoint_is_exact(shape, stride):
    # <patches(x), y> = <x, adjoint(y)> for every x and y defines the adjoint, the gradient of a linear map
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    y = rng.standard_normal(patches(x, stride).shape)
    left, right = np.sum(patches(x, stride) * y), np.sum(x * networks._patches_adjoint(y, shape, stride))
    assert abs(left - right) <= 1e-12 * np.sum(np.abs(patches(x, stride) * y))


def test_coordinate_channels_are_the_image_then_x_then_y_of_the_pixel_centres():
    images = np.random.default_rng(0).random((2, 4, 4))
    channels = coordinate_channels(images)
    assert channels.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(channels[..., 0], images)
    np.testing.assert_allclose(channels[1, 2, :, 1], [-1, -1 / 3, 1 / 3, 1])  # x along a row
    np.testing.assert_allclose(channels[0, :, 3, 2], [-1, -1 / 3, 1 / 3, 1])  # y down a column
    assert coordinate_channels(images.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("model", MODELS)
def test_float32_params_give_float32_outputs_and_gradients_and_float64_still_works(model):
    data = make_dataset(5, 1)
    for dtype in (np.float32, np.float64):
        params = init_network(model, 32, seed=0, dtype=dtype.__name__)
        assert all(value.dtype == dtype for value in params.values())
        assert outputs(params, data.images, model).dtype == dtype  # float64 images are cast, not promoting
        assert predict(params, data.images, model).dtype == dtype
        vector, unflatten = flatten(params)
        boxes = data.boxes.astype(dtype)
        gradient = grad(lambda v: anp.mean(giou_loss(predict(unflatten(v), data.images, model), boxes)))(vector)
        assert vector.dtype == dtype and gradient.dtype == dtype and np.all(np.isfinite(gradient))
    low, high = (init_network(model, 32, seed=0, dtype=d) for d in ("float32", "float64"))
    for name in low:  # the same draws, rounded
        np.testing.assert_array_equal(low[name], high[name].astype(np.float32))
    np.testing.assert_allclose(predict(low, data.images, model), predict(high, data.images, model), atol=1e-3)


def test_flatten_orders_like_autograds_and_its_unflatten_differentiates_the_same():
    params = small_network("cnn", "cxcywh")
    vector, unflatten = flatten(params)
    expected, autograd_unflatten = autograd_flatten(params)
    np.testing.assert_array_equal(vector, expected)
    assert all(np.array_equal(unflatten(vector)[name], params[name]) for name in params)
    images = make_dataset(3, 0, image_size=12).images

    def loss(unflatten):
        return lambda v: anp.sum(predict(unflatten(v), images, "cnn") ** 2) + anp.sum(unflatten(v)["conv1_bias"])
    np.testing.assert_allclose(grad(loss(unflatten))(vector), grad(loss(autograd_unflatten))(vector), rtol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_initialisation_is_seeded_with_pytorchs_default_variance(model):
    params = init_network(model, 32, seed=5)
    again, other = init_network(model, 32, seed=5), init_network(model, 32, seed=6)
    assert list(params) == list(again)
    for name in params:
        np.testing.assert_array_equal(params[name], again[name])
        assert params[name].dtype == np.float32
    assert not np.array_equal(params["output_weights"], other["output_weights"])
    weights = params["dense1_weights"]
    np.testing.assert_allclose(weights.std(), np.sqrt(1 / (3 * weights.shape[0])), rtol=0.05)
    assert np.all(params["dense1_bias"] == 0)


@pytest.mark.parametrize("model, image_size, count", [("mlp", 32, 139_716), ("cnn", 32, 155_300),
                                                      ("mlp", 64, 532_932), ("cnn", 64, 548_516)])
def test_output_shapes_and_parameter_counts(model, image_size, count):
    # mlp: S*S*128 + 128 + 128*64 + 64 + 64*4 + 4
    # cnn: 9*3*16 + 16 + 9*16*32 + 32 + 9*32*64 + 64 + (S/8)**2*64*128 + 128 + 128*4 + 4
    params = init_network(model, image_size, seed=0)
    assert parameter_count(params) == count
    for n in (1, 5):
        boxes = predict(params, np.zeros((n, image_size, image_size)), model)
        assert boxes.shape == (n, 4) and boxes.dtype == np.float32 and np.all(np.isfinite(boxes))


def test_the_cnn_halves_the_side_at_each_convolution():
    params = init_network("cnn", 32, seed=0)
    assert [params[f"conv{k}_weights"].shape for k in (1, 2, 3)] == [(3, 3, 3, 16), (3, 3, 16, 32), (3, 3, 32, 64)]
    assert params["dense1_weights"].shape == (4 * 4 * 64, 128) and params["output_weights"].shape == (128, 4)
    features = coordinate_channels(np.zeros((2, 32, 32), np.float32))
    for k, side in zip((1, 2, 3), (16, 8, 4)):
        features = convolve(features, params[f"conv{k}_weights"], params[f"conv{k}_bias"])
        assert features.shape == (2, side, side, params[f"conv{k}_bias"].size)


@pytest.mark.parametrize("model", MODELS)
def test_other_widths_of_the_last_layer_are_raw_outputs_with_zero_bias(model):
    params = init_network(model, 16, seed=0, outputs=68)
    assert params["output_weights"].shape[1] == 68 and np.all(params["output_bias"] == 0)
    images = np.random.default_rng(0).random((3, 16, 16))
    raw = outputs(params, images, model)
    assert raw.shape == (3, 68) and raw.dtype == np.float32
    four = init_network(model, 16, seed=0, outputs=4)
    assert all(np.array_equal(four[name], params[name]) for name in four if not name.startswith("output"))


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dtype, atol", [("float64", 1e-12), ("float32", 1e-5)])
def test_apart_init_predicts_the_apart_box_for_any_image_and_it_overlaps_no_object(model, param, dtype, atol):
    data = make_dataset(50, 3, distractors=1)
    params = init_network(model, 32, seed=1, init="apart", param=param, dtype=dtype)
    apart = np.array([-0.45, -0.45, -0.05, -0.05]) * 32
    for images in (data.images, np.random.default_rng(0).uniform(-5, 5, size=(7, 32, 32))):
        boxes = predict(params, images, model, param=param)
        assert np.all(boxes == boxes[0])  # the same box, bit for bit, whatever the image
        np.testing.assert_allclose(boxes[0], apart, rtol=0, atol=atol)  # to rounding through the parameters
    assert np.all(iou(predict(params, data.images, model, param=param), data.boxes) == 0)
    chosen = [3.0, 4.0, 9.0, 6.5]
    params = init_network(model, 32, seed=1, init="apart", apart_box=chosen, param=param, dtype=dtype)
    np.testing.assert_allclose(predict(params, data.images[:3], model, param=param), [chosen] * 3, atol=atol)


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
        params = init_network("mlp", 16, seed=0, param=param, dtype="float64")
        params["output_weights"] = np.zeros_like(params["output_weights"])
        np.testing.assert_allclose(predict(params, np.ones((2, 16, 16)), "mlp", param=param),
                                   [[4, 4, 12, 12]] * 2, atol=1e-12)


def test_hidden_sizes_can_be_chosen():
    params = init_network("mlp", 16, seed=0, hidden=(7,))
    assert params["dense1_weights"].shape == (256, 7) and params["output_weights"].shape == (7, 4)
    params = init_network("cnn", 16, seed=0, hidden=((2, 3), (5, 4)))  # 16 -> 8 -> 4
    assert params["conv1_weights"].shape == (3, 3, 3, 2) and params["conv2_weights"].shape == (3, 3, 2, 3)
    assert params["dense1_weights"].shape == (48, 5) and params["dense2_weights"].shape == (5, 4)
    assert predict(params, np.zeros((2, 16, 16)), "cnn").shape == (2, 4)
    params = init_network("cnn", 4, seed=0, hidden=([6], []))  # one convolution, straight to the output layer
    assert params["output_weights"].shape == (2 * 2 * 6, 4) and predict(params, np.zeros((1, 4, 4)), "cnn").shape == (1, 4)


@pytest.mark.parametrize("call, words", [
    (lambda: init_network("resnet", 32, 0), "unknown model 'resnet'"),
    (lambda: init_network("cnn", 36, 0), "each of its 3 convolutions, so its image size must be a multiple of 8; got 36"),
    (lambda: init_network("cnn", 6, 0, hidden=((2, 2), ())), "multiple of 4; got 6"),
    (lambda: init_network("mlp", 32, 0, init="zeros"), "unknown init 'zeros'"),
    (lambda: init_network("mlp", 32, 0, dtype="float16"), "unknown dtype 'float16'"),
    (lambda: init_network("mlp", 32, 0, param="polar"), "unknown parameterisation 'polar'"),
    (lambda: init_network("mlp", 32, 0, apart_box=[0, 0, 1, 1]), "apart_box is used only with init='apart'"),
    (lambda: init_network("mlp", 32, 0, init="apart", apart_box=[0, 0, -1, 1]), "apart_box must be one xyxy box"),
    (lambda: init_network("cnn", 32, 0, init="apart", outputs=68), "with outputs=68 use init='default'"),
    (lambda: init_network("cnn", 32, 0, outputs=0), "outputs must be a whole number >= 1; got 0"),
    (lambda: init_network("cnn", 32, 0, hidden=(8, 16, 64)), r"hidden for the cnn must be a pair: .*got \(8, 16, 64\)"),
    (lambda: init_network("cnn", 32, 0, hidden=((), (8,))), "the convolutions' channels \\(one or more\\)"),
    (lambda: init_network("mlp", 32, 0, hidden=(8, 0)), "hidden for the mlp must be layer widths"),
    (lambda: predict(init_network("mlp", 16, 0), np.zeros((2, 16)), "mlp"), "images must have shape"),
    (lambda: predict(init_network("mlp", 16, 0), np.zeros((2, 16, 16)), "cnn"), "belong to a mlp, not a cnn"),
    (lambda: predict(init_network("cnn", 16, 0), np.zeros((2, 32, 32)), "cnn"), "images of side 32 give"),
    (lambda: predict(init_network("cnn", 16, 0), np.zeros((2, 12, 12)), "cnn"), "multiple of 8; got 12"),
])
def test_bad_arguments_are_clear_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()


@pytest.mark.parametrize("gradient", ["autograd", "fused"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_keeps_the_networks_dtype(dtype, gradient):
    from sandbox.learning import synthetic, training
    splits = synthetic.make_splits(0, 24, 4, 4, image_size=16, min_size=3.0)
    result = training.train("giou", splits, model="cnn", epochs=2, batch_size=8, seed=0, dtype=dtype,
                            gradient=gradient)
    assert not result["diverged"] and all(value.dtype == dtype for value in result["params"].values())
    default = training.train("giou", splits, model="cnn", epochs=1, batch_size=8, seed=0, gradient=gradient)
    assert default["params"]["output_bias"].dtype == np.float32
