"""Small box regressors in autograd: an MLP on the pixels and a small convolutional network.

A network is a pure function of its parameters: `init_network` makes them, a
dict of float64 arrays (name -> array, so ``autograd.grad`` and
``autograd.misc.flatten`` take it as it is), and `predict` maps a batch of
images through them to one ``xyxy`` box per image, differentiably.

The network's four outputs are the parameters of one of the sandbox's box
parameterisations (`sandbox.geometry.parameterisations`: ``'xyxy'``, ``'cxcywh'``,
``'log'``), in units of the image side: the box they stand for is multiplied by
``image_size`` to give pixels. So under ``'log'`` the outputs are (cx, cy, log w,
log h) with w and h as shares of the image side.

Models (`MODELS`):

- ``'mlp'``: pixels (image_size ** 2) -> 128 -> 64 -> 4, ReLU between.
- ``'cnn'``: 3 x 3 convolution (8 channels, 'same' zero padding) -> ReLU -> 2 x 2
  mean-pool -> 3 x 3 convolution (16) -> ReLU -> 2 x 2 mean-pool -> dense 64 ->
  ReLU -> dense 4. The image side must be a multiple of 4.

Images are fed as they are, one grey channel, without normalisation.

Speed: the products here are small, and on a machine whose cores are busy
(other processes, or several training workers) OpenBLAS's own threads make them
many times slower; run with ``OPENBLAS_NUM_THREADS=1`` there.

    >>> import numpy
    >>> params = init_network("cnn", 32, seed=0)
    >>> predict(params, numpy.zeros((2, 32, 32)), "cnn").shape
    (2, 4)
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import autograd.numpy as np
import numpy
from autograd.extend import defjvp, defvjp, primitive
from numpy.typing import ArrayLike

from sandbox._types import Array, FloatArray
from sandbox.geometry.names import canonical
from sandbox.geometry.parameterisations import get_parameterisation

MODELS = ("mlp", "cnn")
INITS = ("default", "apart")
HIDDEN = {"mlp": (128, 64), "cnn": (8, 16, 64)}
KERNEL = 3  # convolutions are 3 x 3
POOL = 2  # mean-pooling over 2 x 2 blocks
CENTRED_BOX = (0.25, 0.25, 0.75, 0.75)  # the default start, in image units: centred, half the side

Params = Mapping[str, Array]
"""A network's parameters, name -> array: the dict `init_network` makes, or autograd's trace of it."""


def init_network(model: str, image_size: int, seed: int, hidden: Sequence[int] | None = None, init: str = "default",
                 apart_box: ArrayLike | None = None, param: str = "cxcywh", outputs: int = 4) -> dict[str, FloatArray]:
    """Seeded parameters of a `model` network for square images of side `image_size`.

    Weights are He (Kaiming) normal, standard deviation sqrt(2 / fan_in), and
    the hidden biases zero. The last layer's bias depends on `init`:

    - ``'default'``: the bias that makes a zero last layer output the centred box
      of half the image side, so that the first predictions scatter around the
      middle of the image whatever the parameterisation.
    - ``'apart'``: the last layer's weights are zero too, and its bias stands
      for `apart_box` through `param`, so that at the start every image's
      prediction is the same box, bit for bit: `apart_box`, to within rounding
      through the parameterisation (one unit in the last place). The default `apart_box` lies left of and
      above the image, ``[-0.45, -0.45, -0.05, -0.05] * image_size``: it overlaps
      no object, where the IoU loss has zero gradient and GIoU does not.

    Parameters
    ----------
    model : str
        One of `MODELS`, any case.
    image_size : int
        Side of the images in pixels; a multiple of 4 for ``'cnn'``.
    seed : int
        Seed of the numpy Generator drawing the weights.
    hidden : sequence of int, optional
        ``'mlp'``: the widths of the hidden layers, (128, 64) by default, any
        number of them. ``'cnn'``: the channels of the two convolutions, then the
        widths of the dense hidden layers, (8, 16, 64) by default.
    init : {'default', 'apart'}
    apart_box : array_like, shape (4,), optional
        ``xyxy`` in pixels, with positive width and height; only with ``init='apart'``.
    param : str
        The parameterisation `predict` will read the outputs through: ``'apart'``
        needs it to place the bias.
    outputs : int
        The width of the last layer: 4, a box through `param`, or another width
        for a head that reads its outputs its own way (`sandbox.learning.heads`);
        then the output bias is zeros, for the head to set, and `init` must be
        ``'default'``.

    Returns
    -------
    dict of str -> ndarray
        ``conv1_weights`` (3, 3, channels in, channels out), ``conv1_bias``, ...,
        ``dense1_weights`` (inputs, outputs), ``dense1_bias``, ...,
        ``output_weights`` (last hidden width, `outputs`), ``output_bias`` (`outputs`,).
    """
    model = canonical(model, MODELS, "model")
    init = canonical(init, INITS, "init")
    parameterisation = get_parameterisation(param)
    _check_image_size(model, image_size)
    hidden = _check_hidden(model, hidden)
    start = _start_box(init, apart_box, image_size)
    width = _check_outputs(outputs, init)
    rng = numpy.random.default_rng(seed)

    params = {}
    if model == "cnn":
        channels = (1, *hidden[:2])
        for number, (inputs, outputs) in enumerate(zip(channels[:-1], channels[1:]), start=1):
            params[f"conv{number}_weights"] = _he_normal(rng, (KERNEL, KERNEL, inputs, outputs), KERNEL ** 2 * inputs)
            params[f"conv{number}_bias"] = numpy.zeros(outputs)
        widths = ((image_size // POOL ** 2) ** 2 * hidden[1], *hidden[2:])
    else:
        widths = (image_size ** 2, *hidden)
    for number, (inputs, outputs) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        params[f"dense{number}_weights"] = _he_normal(rng, (inputs, outputs), inputs)
        params[f"dense{number}_bias"] = numpy.zeros(outputs)
    params["output_weights"] = _he_normal(rng, (widths[-1], width), widths[-1])
    if init == "apart":
        params["output_weights"] = numpy.zeros_like(params["output_weights"])
    params["output_bias"] = (numpy.asarray(parameterisation.from_box(start / image_size), dtype=float) if width == 4
                             else numpy.zeros(width))
    return params


def predict(params: Params, images: Array, model: str, param: str = "cxcywh") -> Array:
    """One ``xyxy`` box in pixels per image, differentiable with respect to `params`.

    Parameters
    ----------
    params : dict of str -> ndarray
        As `init_network` makes them (or traced by autograd).
    images : ndarray, shape (n, image_size, image_size)
    model : str
        The model `params` belong to.
    param : str
        The parameterisation the four outputs are read through, in image units.

    Returns
    -------
    ndarray, shape (n, 4)
    """
    image_size = _check_images(images)
    return get_parameterisation(param).to_box(outputs(params, images, model)) * image_size


def outputs(params: Params, images: Array, model: str) -> Array:
    """The network's raw outputs per image, shape (n, outputs), 4 unless made otherwise: before any head reads them."""
    model = canonical(model, MODELS, "model")
    _check_params(params, model)
    image_size = _check_images(images)
    if model == "cnn":
        _check_image_size(model, image_size)
        features = images[..., None]  # (n, height, width, channels)
        for number in range(1, _count(params, "conv") + 1):
            features = mean_pool(relu(convolve(features, params[f"conv{number}_weights"])
                                      + params[f"conv{number}_bias"]))
    else:
        features = images
    features = np.reshape(features, (len(images), -1))
    expected = np.shape(params["dense1_weights" if "dense1_weights" in params else "output_weights"])[0]
    if features.shape[1] != expected:
        raise ValueError(f"these {model} parameters take {expected} inputs per image after the convolutions; "
                         f"images of side {image_size} give {features.shape[1]}: make the network for "
                         f"this image size")
    for number in range(1, _count(params, "dense") + 1):
        features = relu(np.dot(features, params[f"dense{number}_weights"]) + params[f"dense{number}_bias"])
    return np.dot(features, params["output_weights"]) + params["output_bias"]


def convolve(features: Array, weights: Array) -> Array:
    """'Same' 3 x 3 convolution (cross-correlation) with zero padding.

    Parameters
    ----------
    features : ndarray, shape (n, height, width, channels in)
    weights : ndarray, shape (3, 3, channels in, channels out)

    Returns
    -------
    ndarray, shape (n, height, width, channels out)
        ``out[b, i, j, o] = sum over di, dj, c of padded[b, i + di, j + dj, c] * weights[di, dj, c, o]``.
    """
    kernel_rows, kernel_columns, inputs, outputs = np.shape(weights)
    return np.tensordot(neighbourhoods(features, kernel_rows),
                        np.reshape(weights, (kernel_rows * kernel_columns, inputs, outputs)), axes=2)


def mean_pool(features: Array) -> Array:
    """Mean over non-overlapping 2 x 2 blocks: (n, h, w, c) -> (n, h / 2, w / 2, c)."""
    n, height, width, channels = np.shape(features)
    blocks = np.reshape(features, (n, height // POOL, POOL, width // POOL, POOL, channels))
    return np.sum(blocks, axis=(2, 4)) / POOL ** 2  # a third faster to differentiate than np.mean


def relu(x: Array) -> Array:
    """max(x, 0), with gradient 0 at 0.

    Written as a product with the mask x > 0: its gradient costs one product,
    where that of ``np.maximum`` compares both arguments with the result.
    """
    return x * (x > 0)


@primitive
def neighbourhoods(features: FloatArray, size: int = KERNEL) -> FloatArray:
    """Each pixel's `size` x `size` neighbourhood, zero outside the image.

    Parameters
    ----------
    features : ndarray, shape (n, height, width, channels)
    size : int
        Odd.

    Returns
    -------
    ndarray, shape (n, height, width, size * size, channels)
        ``out[b, i, j, di * size + dj, c] = padded[b, i + di, j + dj, c]``, where
        ``padded`` is `features` with ``size // 2`` zeros around each image.

    A primitive with its own gradient: autograd's gradient of a slice adds it
    back with ``np.add.at``, several times slower than the shifted sums here.
    """
    n, height, width, channels = features.shape
    padded = numpy.pad(features, _padding(size))
    return numpy.stack([padded[:, i:i + height, j:j + width] for i in range(size) for j in range(size)], axis=3)


@primitive
def _neighbourhoods_transpose(gradient: FloatArray, size: int = KERNEL) -> FloatArray:
    """The adjoint of `neighbourhoods`: each offset's values added back where they came from."""
    n, height, width, _, channels = gradient.shape
    margin = size // 2
    padded = numpy.zeros((n, height + 2 * margin, width + 2 * margin, channels))
    for k in range(size * size):
        i, j = divmod(k, size)
        padded[:, i:i + height, j:j + width] += gradient[:, :, :, k]
    return padded[:, margin:margin + height, margin:margin + width]


def _padding(size: int) -> tuple[tuple[int, int], ...]:
    margin = size // 2
    return ((0, 0), (margin, margin), (margin, margin), (0, 0))


# Both maps are linear and each is the other's adjoint, so they differentiate each other, to any order.
defvjp(neighbourhoods, lambda ans, features, size=KERNEL: lambda g: _neighbourhoods_transpose(g, size))
defjvp(neighbourhoods, lambda g, ans, features, size=KERNEL: neighbourhoods(g, size))
defvjp(_neighbourhoods_transpose, lambda ans, gradient, size=KERNEL: lambda g: neighbourhoods(g, size))
defjvp(_neighbourhoods_transpose, lambda g, ans, gradient, size=KERNEL: _neighbourhoods_transpose(g, size))


def parameter_count(params: Mapping[str, ArrayLike] | Iterable[ArrayLike]) -> int:
    """Total number of numbers in `params` (a dict or sequence of arrays)."""
    values = params.values() if hasattr(params, "values") else params
    return int(sum(numpy.size(value) for value in values))


def _he_normal(rng: numpy.random.Generator, shape: tuple[int, ...], fan_in: int) -> FloatArray:
    return rng.standard_normal(shape) * numpy.sqrt(2.0 / fan_in)


def _count(params: Params, kind: str) -> int:
    """Number of layers of a kind (``'conv'``, ``'dense'``) in `params`."""
    number = 0
    while f"{kind}{number + 1}_weights" in params:
        number += 1
    return number


def _start_box(init: str, apart_box: ArrayLike | None, image_size: int) -> FloatArray:
    """The box the last layer's bias stands for, in pixels."""
    if init == "default":
        if apart_box is not None:
            raise ValueError("apart_box is used only with init='apart'")
        return numpy.asarray(CENTRED_BOX) * image_size
    if apart_box is None:
        return numpy.array([-0.45, -0.45, -0.05, -0.05]) * image_size
    box = numpy.asarray(apart_box, dtype=float)
    if box.shape != (4,) or not numpy.all(numpy.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"apart_box must be one xyxy box [x1, y1, x2, y2] in pixels with x2 > x1 and "
                         f"y2 > y1; got {apart_box!r}")
    return box


def _check_outputs(outputs: int, init: str) -> int:
    if isinstance(outputs, bool) or not isinstance(outputs, (int, numpy.integer)) or outputs < 1:
        raise ValueError(f"outputs must be a whole number >= 1; got {outputs!r}")
    if outputs != 4 and init == "apart":
        raise ValueError(f"init='apart' places one box through a parameterisation of 4 outputs; "
                         f"with outputs={outputs} use init='default'")
    return int(outputs)


def _check_image_size(model: str, image_size: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, numpy.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a whole number of pixels >= 1; got {image_size!r}")
    if model == "cnn" and image_size % POOL ** 2:
        raise ValueError(f"the cnn pools twice by 2, so its image size must be a multiple of 4; got {image_size}")


def _check_hidden(model: str, hidden: Sequence[int] | None) -> tuple[int, ...]:
    if hidden is None:
        return HIDDEN[model]
    hidden = tuple(hidden)
    least = 2 if model == "cnn" else 0
    if len(hidden) < least or not all(isinstance(h, (int, numpy.integer)) and not isinstance(h, bool) and h >= 1
                                       for h in hidden):
        what = "two convolution channel counts, then dense widths," if model == "cnn" else "layer widths"
        raise ValueError(f"hidden for the {model} must be {what} whole numbers >= 1; got {hidden!r}")
    return hidden


def _check_images(images: Array) -> int:
    shape = np.shape(images)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"images must have shape (n, image_size, image_size); got shape {shape}")
    return shape[-1]


def _check_params(params: Params, model: str) -> None:
    # autograd traces a dict as a DictBox: ask for its keys, not its type
    if not hasattr(params, "keys") or not {"output_weights", "output_bias"} <= set(params.keys()):
        raise ValueError("params must be the dict init_network makes, with 'output_weights' and 'output_bias'")
    has_convolutions = "conv1_weights" in params
    if has_convolutions != (model == "cnn"):
        kind = "cnn" if has_convolutions else "mlp"
        raise ValueError(f"these parameters belong to a {kind}, not a {model}; pass model={kind!r}")
