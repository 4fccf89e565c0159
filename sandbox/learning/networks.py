"""Small box regressors in autograd: an MLP on the pixels and a small convolutional network.

A network is a pure function of its parameters: `init_network` makes them, a
dict of arrays (name -> array, so ``autograd.grad`` and `flatten` take it as it
is), float32 by default (float64 on request, for gradient checks), and
`predict` maps a batch of images through them to one ``xyxy`` box per image,
differentiably; `outputs` gives the last layer as it is.

The network's four outputs are the parameters of one of the sandbox's box
parameterisations (`sandbox.geometry.parameterisations`: ``'xyxy'``, ``'cxcywh'``,
``'log'``), in units of the image side: the box they stand for is multiplied by
``image_size`` to give pixels. So under ``'log'`` the outputs are (cx, cy, log w,
log h) with w and h as shares of the image side.

Models (`MODELS`):

- ``'mlp'``: pixels (image_size ** 2) -> 128 -> 64 -> outputs, ReLU between.
- ``'cnn'``: CoordConv input (Liu et al., NeurIPS 2018, arXiv 1807.03247): the grey
  image and two coordinate channels, the x and the y of each pixel centre scaled
  to [-1, 1], then three 3 x 3 convolutions of stride 2 with zero padding 1
  (16, 32, 64 channels), each followed by ReLU, then dense 128 -> ReLU -> outputs.
  At 32 x 32: 16 x 16 x 16 -> 8 x 8 x 32 -> 4 x 4 x 64 -> 1024 -> 128 -> 4. Each
  convolution halves the side, so the image side must be a multiple of 8.

Images are fed as they are, one grey channel, without normalisation, cast to
the parameters' dtype.

Speed (a training step of the CNN on 64 images of 32 x 32, float32, one thread:
7 to 9 ms, half of it matrix products, a sixth the GIoU loss's autograd nodes, which
`train`'s ``gradient='fused'`` makes one (`sandbox.losses.fused.fused_loss`);
`experiments/benchmark_training.py` times it beside PyTorch): every convolution is one matrix product (`affine`) of its
patches, gathered into the rows of a matrix by a strided view of the padded
input (`patches`, "im2col"), whose gradient adds them back by one product with
a sparse 0/1 matrix; the coordinate channels' share of the first convolution is
the same for every image and made once per batch (`coordinate_convolution`).
These are autograd primitives whose gradients are the exact adjoints of linear
maps; autograd chains them. In float32 the products are single precision BLAS,
twice float64's rate, and nothing promotes them: images are cast to the
parameters' dtype, and the loss's gradient is cast back where it enters the
network. `flatten` is a cheaper twin of ``autograd.misc.flatten``. The products
are small, and on a machine whose cores are busy (other processes, or several
training workers) OpenBLAS's own threads make them many times slower; run with
``OPENBLAS_NUM_THREADS=1`` there.

    >>> import numpy
    >>> params = init_network("cnn", 32, seed=0)
    >>> outputs(params, numpy.zeros((2, 32, 32)), "cnn").dtype
    dtype('float32')
    >>> predict(params, numpy.zeros((2, 32, 32)), "cnn").shape
    (2, 4)
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Mapping, Sequence

import autograd.numpy as np
import numpy
from autograd.extend import SparseObject, defjvp, defvjp, primitive, vspace
from numpy.lib.stride_tricks import as_strided
from numpy.typing import ArrayLike

from sandbox._types import Array, FloatArray
from sandbox.geometry.names import canonical
from sandbox.geometry.parameterisations import get_parameterisation

MODELS = ("mlp", "cnn")
INITS = ("default", "apart")
DTYPES = ("float32", "float64")
HIDDEN: dict[str, Any] = {"mlp": (128, 64), "cnn": ((16, 32, 64), (128,))}
"""The hidden layers by default: the MLP's widths; the CNN's (convolution channels, dense widths)."""
KERNEL = 3  # convolutions are 3 x 3, zero-padded by 1
STRIDE = 2  # and each halves the image side
COORDINATES = 2  # CoordConv's channels beside the grey one: x, then y
CENTRED_BOX = (0.25, 0.25, 0.75, 0.75)  # the default start, in image units: centred, half the side

Params = Mapping[str, Array]
"""A network's parameters, name -> array: the dict `init_network` makes, or autograd's trace of it."""


def init_network(model: str, image_size: int, seed: int, hidden: Sequence[int] | Sequence[Sequence[int]] | None = None,
                 init: str = "default", apart_box: ArrayLike | None = None, param: str = "cxcywh", outputs: int = 4,
                 dtype: str = "float32") -> dict[str, FloatArray]:
    """Seeded parameters of a `model` network for square images of side `image_size`.

    Weights are normal with standard deviation sqrt(1 / (3 fan_in)), the variance of
    PyTorch's default for its linear and convolution layers (``kaiming_uniform_`` with
    a = sqrt(5): uniform on +-1/sqrt(fan_in)), drawn in float64 and rounded to `dtype`
    (so both dtypes start from the same network), and the hidden biases zero. He's
    sqrt(2 / fan_in), 2.4 times larger, put the CoordConv CNN's first boxes about one
    image side off centre with negative widths, and its GIoU runs reached a test mean IoU
    of 0.34 where these reach 0.59 (20 epochs of 4,000 fresh images). With the four outputs of a box, the
    last layer's bias depends on `init`:

    - ``'default'``: the bias that makes a zero last layer output the centred box
      of half the image side, so that the first predictions scatter around the
      middle of the image whatever the parameterisation.
    - ``'apart'``: the last layer's weights are zero too, and its bias stands
      for `apart_box` through `param`, so that at the start every image's
      prediction is the same box, bit for bit: `apart_box`, to within rounding
      through the parameterisation (one unit in the last place of `dtype`). The default `apart_box` lies left of and
      above the image, ``[-0.45, -0.45, -0.05, -0.05] * image_size``: it overlaps
      no object, where the IoU loss has zero gradient and GIoU does not.

    With other than four outputs (a head of another kind) the last bias is zero.

    Parameters
    ----------
    model : str
        One of `MODELS`, any case.
    image_size : int
        Side of the images in pixels; for ``'cnn'`` a multiple of 2 ** (its number
        of convolutions): 8 by default.
    seed : int
        Seed of the numpy Generator drawing the weights.
    hidden : optional
        ``'mlp'``: the widths of the hidden layers, any number of them, (128, 64)
        by default. ``'cnn'``: a pair, the channels of the convolutions (one or
        more), then the widths of the dense hidden layers (any number), ``((16, 32,
        64), (128,))`` by default.
    init : {'default', 'apart'}
    apart_box : array_like, shape (4,), optional
        ``xyxy`` in pixels, with positive width and height; only with ``init='apart'``.
    param : str
        The parameterisation `predict` will read the outputs through: the start
        box's bias is placed through it.
    outputs : int
        Width of the last layer; 4, a box, by default.
    dtype : {'float32', 'float64'}
        Of every parameter, and so of the network's arithmetic.

    Returns
    -------
    dict of str -> ndarray
        ``conv1_weights`` (3, 3, channels in, channels out), ``conv1_bias``, ...,
        ``dense1_weights`` (inputs, outputs), ``dense1_bias``, ...,
        ``output_weights`` (last hidden width, `outputs`), ``output_bias`` (`outputs`,).
    """
    model = canonical(model, MODELS, "model")
    init = canonical(init, INITS, "init")
    dtype = canonical(dtype, DTYPES, "dtype")
    parameterisation = get_parameterisation(param)
    channels, widths = _check_hidden(model, hidden)
    _check_image_size(model, image_size, len(channels))
    if isinstance(outputs, bool) or not isinstance(outputs, (int, numpy.integer)) or outputs < 1:
        raise ValueError(f"outputs must be a whole number >= 1; got {outputs!r}")
    if outputs != 4 and (init != "default" or apart_box is not None):
        raise ValueError(f"init='apart' and apart_box place the four outputs of a box; with outputs={outputs} "
                         f"use init='default' (its last bias is zero)")
    start = _start_box(init, apart_box, image_size)
    rng = numpy.random.default_rng(seed)

    params = {}
    if model == "cnn":
        side = image_size
        for number, (inputs, width) in enumerate(zip((1 + COORDINATES, *channels), channels), start=1):
            params[f"conv{number}_weights"] = _initial_weights(rng, (KERNEL, KERNEL, inputs, width), KERNEL ** 2 * inputs)
            params[f"conv{number}_bias"] = numpy.zeros(width)
            side = _out_side(side)
        widths = (side ** 2 * channels[-1], *widths)
    else:
        widths = (image_size ** 2, *widths)
    for number, (inputs, width) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        params[f"dense{number}_weights"] = _initial_weights(rng, (inputs, width), inputs)
        params[f"dense{number}_bias"] = numpy.zeros(width)
    params["output_weights"] = _initial_weights(rng, (widths[-1], outputs), widths[-1])
    if init == "apart":
        params["output_weights"] = numpy.zeros_like(params["output_weights"])
    params["output_bias"] = (numpy.asarray(parameterisation.from_box(start / image_size), dtype=float)
                             if outputs == 4 else numpy.zeros(outputs))
    return {name: value.astype(dtype) for name, value in params.items()}


def predict(params: Params, images: Array, model: str, param: str = "cxcywh") -> Array:
    """One ``xyxy`` box in pixels per image, differentiable with respect to `params`.

    Parameters
    ----------
    params : dict of str -> ndarray
        As `init_network` makes them (or traced by autograd), with four outputs.
    images : ndarray, shape (n, image_size, image_size)
        Cast to the parameters' dtype.
    model : str
        The model `params` belong to.
    param : str
        The parameterisation the four outputs are read through, in image units.

    Returns
    -------
    ndarray, shape (n, 4)
        In the parameters' dtype.
    """
    image_size = _check_images(images)
    return get_parameterisation(param).to_box(outputs(params, images, model)) * image_size


def outputs(params: Params, images: Array, model: str) -> Array:
    """The network's last layer as it is, before any parameterisation.

    Parameters
    ----------
    params : dict of str -> ndarray
        As `init_network` makes them (or traced by autograd).
    images : ndarray, shape (n, image_size, image_size)
        Cast to the parameters' dtype (autograd does not trace through them).
    model : str
        The model `params` belong to.

    Returns
    -------
    ndarray, shape (n, outputs)
        In the parameters' dtype.
    """
    model = canonical(model, MODELS, "model")
    _check_params(params, model)
    image_size = _check_images(images)
    images = numpy.asarray(images, dtype=params["output_weights"].dtype)  # once, so nothing below promotes
    if model == "cnn":
        convolutions = _count(params, "conv")
        _check_image_size(model, image_size, convolutions)
        features = coordinate_convolution(images, params["conv1_weights"], params["conv1_bias"])
        for number in range(2, convolutions + 1):
            features = convolve(features, params[f"conv{number}_weights"], params[f"conv{number}_bias"])
    else:
        features = images
    features = np.reshape(features, (len(images), -1))
    expected = np.shape(params["dense1_weights" if "dense1_weights" in params else "output_weights"])[0]
    if features.shape[1] != expected:
        raise ValueError(f"these {model} parameters take {expected} inputs per image after the convolutions; "
                         f"images of side {image_size} give {features.shape[1]}: make the network for "
                         f"this image size")
    for number in range(1, _count(params, "dense") + 1):
        features = relu(affine(features, params[f"dense{number}_weights"], params[f"dense{number}_bias"]))
    return _gradient_in_dtype(affine(features, params["output_weights"], params["output_bias"]))


def coordinate_channels(images: FloatArray) -> FloatArray:
    """CoordConv's input: each grey image beside the x and the y of its pixel centres.

    Parameters
    ----------
    images : ndarray, shape (n, height, width)

    Returns
    -------
    ndarray, shape (n, height, width, 3)
        Channels grey, x, y, of `images`' dtype; x runs from -1 at the centre of
        the first column to 1 at that of the last, y likewise down the rows.
    """
    n, height, width = images.shape
    channels = numpy.empty((n, height, width, 1 + COORDINATES), dtype=images.dtype)
    channels[..., 0] = images
    channels[..., 1:] = _coordinates(height, width, images.dtype.str)
    return channels


def coordinate_convolution(images: FloatArray, weights: Array, bias: Array, stride: int = STRIDE) -> Array:
    """The first layer: `convolve` of `coordinate_channels` (with `bias`, then ReLU), the coordinates' share made once.

    The coordinate channels are the same for every image, so their share of the
    convolution is one product for the whole batch, added to each image's grey
    share: a third of the products and patches of convolving three channels
    image by image, for the same sums (to rounding: the terms are added in
    another order).

    Parameters
    ----------
    images : ndarray, shape (n, height, width)
    weights : ndarray, shape (3, 3, 3, channels out)
        Over the channels grey, x, y.
    bias : ndarray, shape (channels out,)
    stride : int

    Returns
    -------
    ndarray, shape (n, rows, columns, channels out)
        As ``convolve(coordinate_channels(images), weights, bias, stride)``.
    """
    n, height, width = np.shape(images)
    rows, columns = _out_side(height, stride), _out_side(width, stride)
    grey = affine(patches(images[..., None], stride), np.reshape(weights[:, :, 0], (KERNEL ** 2, -1)))
    where = affine(_coordinate_patches(height, width, stride, images.dtype.str),
                   np.reshape(weights[:, :, 1:], (KERNEL ** 2 * COORDINATES, -1)), bias)  # (rows * columns, out)
    out = relu(np.reshape(grey, (n, rows * columns, -1)) + where)
    return np.reshape(out, (n, rows, columns, -1))


@functools.lru_cache(maxsize=8)
def _coordinates(height: int, width: int, dtype: str) -> FloatArray:
    y, x = numpy.meshgrid(numpy.linspace(-1, 1, height), numpy.linspace(-1, 1, width), indexing="ij")
    return _read_only(numpy.stack([x, y], axis=-1).astype(dtype))


@functools.lru_cache(maxsize=8)
def _coordinate_patches(height: int, width: int, stride: int, dtype: str) -> FloatArray:
    """`patches` of the two coordinate channels: (rows * columns, 18), made once per size."""
    return _read_only(patches(_coordinates(height, width, dtype)[None], stride))


def _read_only(array: FloatArray) -> FloatArray:
    array.flags.writeable = False  # shared by every call: a cache
    return array


def convolve(features: Array, weights: Array, bias: Array | None = None, stride: int = STRIDE) -> Array:
    """3 x 3 convolution (cross-correlation) with zero padding 1 and `stride`, then ReLU if `bias` is given.

    Parameters
    ----------
    features : ndarray, shape (n, height, width, channels in)
    weights : ndarray, shape (3, 3, channels in, channels out)
    bias : ndarray, shape (channels out,), optional
        Added before a ReLU; without it, the convolution alone.
    stride : int

    Returns
    -------
    ndarray, shape (n, (height - 1) // stride + 1, (width - 1) // stride + 1, channels out)
        ``out[b, i, j, o] = sum over di, dj, c of padded[b, stride i + di, stride j + dj, c] * weights[di, dj, c, o]``.
    """
    n, height, width, _ = np.shape(features)
    out = affine(patches(features, stride), np.reshape(weights, (-1, np.shape(weights)[-1])), bias)
    if bias is not None:
        out = relu(out)
    return np.reshape(out, (n, _out_side(height, stride), _out_side(width, stride), -1))


@primitive
def affine(inputs: FloatArray, weights: FloatArray, bias: FloatArray | None = None) -> FloatArray:
    """``inputs @ weights + bias``: a dense layer, or a convolution of its `patches`.

    Parameters
    ----------
    inputs : ndarray, shape (n, inputs)
    weights : ndarray, shape (inputs, outputs)
    bias : ndarray, shape (outputs,), optional

    Returns
    -------
    ndarray, shape (n, outputs)

    A primitive, its gradient the adjoint of each linear part (below): where
    autograd's, through ``matmul`` and a broadcast ``+``, sums the bias's
    gradient over the rows with numpy (ten times slower for a tall, narrow
    matrix), this one takes BLAS's product with a vector of ones; the bias is
    added in place, and a layer is one node of autograd's graph, not two.
    """
    out = numpy.matmul(inputs, weights)
    if bias is not None:
        out += bias
    return out


# Written with autograd.numpy, so that they differentiate in turn.
defvjp(affine,
       lambda ans, inputs, weights, bias=None: lambda g: g @ np.transpose(weights),
       lambda ans, inputs, weights, bias=None: lambda g: np.transpose(inputs) @ g,
       lambda ans, inputs, weights, bias=None: lambda g: np.ones(len(g), dtype=g.dtype) @ g)
defjvp(affine,
       lambda g, ans, inputs, weights, bias=None: g @ weights,
       lambda g, ans, inputs, weights, bias=None: inputs @ g,
       lambda g, ans, inputs, weights, bias=None: g + np.zeros_like(ans))


@primitive
def _gradient_in_dtype(x: FloatArray) -> FloatArray:
    """`x` itself, its gradient cast to `x`'s dtype.

    A loss may hand back a float64 gradient for float32 outputs (autograd's
    gradients of ``maximum`` and ``minimum``, in every IoU loss, are float64);
    cast here, it keeps the whole backward pass of a float32 network in float32.
    """
    return x


defvjp(_gradient_in_dtype, lambda ans, x: lambda g: g.astype(x.dtype, copy=False))  # first order only
defjvp(_gradient_in_dtype, lambda g, ans, x: g)


def relu(x: Array) -> Array:
    """max(x, 0), with gradient 0 at 0.

    Written as a product with the mask x > 0: its gradient costs one product,
    where that of ``np.maximum`` compares both arguments with the result.
    """
    return x * (x > 0)


@primitive
def patches(features: FloatArray, stride: int = STRIDE) -> FloatArray:
    """Every output position's 3 x 3 patch of the zero-padded input, one per row ("im2col").

    Parameters
    ----------
    features : ndarray, shape (n, height, width, channels)
    stride : int

    Returns
    -------
    ndarray, shape (n * rows * columns, 9 * channels)
        Row ``(b * rows + i) * columns + j`` holds ``padded[b, stride i + di, stride j + dj, c]``
        at column ``(di * 3 + dj) * channels + c``, where ``padded`` is `features`
        with one zero around each image, rows = (height - 1) // stride + 1 and
        columns likewise: a convolution is then one matrix product.

    A primitive with its exact adjoint (`_patches_adjoint`) as its gradient: a
    strided view and one copy, where autograd's gradient of slicing would add
    every patch back with ``np.add.at``.
    """
    n, height, width, channels = features.shape
    padded = numpy.zeros((n, height + 2, width + 2, channels), dtype=features.dtype)
    padded[:, 1:-1, 1:-1] = features
    rows, columns = _out_side(height, stride), _out_side(width, stride)
    if channels == 1:  # offset by offset: nine long copies, where patch by patch would be many of three numbers
        offsets = numpy.empty((KERNEL, KERNEL, n, rows, columns), dtype=features.dtype)
        for i in range(KERNEL):
            for j in range(KERNEL):
                offsets[i, j] = padded[:, i:i + stride * rows:stride, j:j + stride * columns:stride, 0]
        return offsets.reshape(KERNEL * KERNEL, -1).T  # the same matrix, column by column in memory
    image, row, column, channel = padded.strides
    view = as_strided(padded, (n, rows, columns, KERNEL, KERNEL * channels),
                      (image, stride * row, stride * column, row, channel), writeable=False)
    return view.reshape(n * rows * columns, KERNEL * KERNEL * channels)  # (dj, c) are adjacent in memory


@primitive
def _patches_adjoint(matrix: FloatArray, shape: tuple[int, int, int, int], stride: int = STRIDE) -> FloatArray:
    """The adjoint of `patches` ("col2im"): each patch's values added back where they came from.

    `matrix` has `patches`' shape for `features` of `shape`; returns an array of
    `shape`. One product with the sparse 0/1 matrix that sends each entry of the
    patches to its pixel (`_scatter`): numpy's strided sums, offset by offset,
    are five times slower at 16 channels, each a loop over runs of 16 numbers.
    """
    channels = shape[-1]
    return (_scatter(shape[:3], stride, matrix.dtype.str) @ matrix.reshape(-1, channels)).reshape(shape)


@functools.lru_cache(maxsize=16)
def _scatter(size: tuple[int, int, int], stride: int, dtype: str) -> Any:
    """The (n * height * width, n * rows * columns * 9) sparse matrix of `_patches_adjoint`.

    Column ``((b * rows + i) * columns + j) * 9 + di * 3 + dj``, an entry of the
    patches in `patches`' order, has a 1 in the row of the pixel the entry
    reads, ``(b, stride i + di - 1, stride j + dj - 1)``, and none if that is in
    the zero padding. Made once per shape.
    """
    import scipy.sparse  # here, not at import: only gradients need it

    n, height, width = size
    rows, columns = _out_side(height, stride), _out_side(width, stride)
    image, i, j, di, dj = numpy.meshgrid(*map(numpy.arange, (n, rows, columns, KERNEL, KERNEL)), indexing="ij")
    row, column = stride * i + di - 1, stride * j + dj - 1
    inside = ((0 <= row) & (row < height) & (0 <= column) & (column < width)).ravel()
    pixel = ((image * height + row) * width + column).ravel()
    return scipy.sparse.csr_array((numpy.ones(inside.sum(), dtype), (pixel[inside], numpy.flatnonzero(inside))),
                                  shape=(n * height * width, inside.size))


# Both maps are linear and each is the other's adjoint, so they differentiate each other, to any order.
defvjp(patches, lambda ans, features, stride=STRIDE: lambda g: _patches_adjoint(g, features.shape, stride))
defjvp(patches, lambda g, ans, features, stride=STRIDE: patches(g, stride))
defvjp(_patches_adjoint, lambda ans, matrix, shape, stride=STRIDE: lambda g: patches(g, stride))
defjvp(_patches_adjoint, lambda g, ans, matrix, shape, stride=STRIDE: _patches_adjoint(g, shape, stride))


def flatten(params: Mapping[str, FloatArray]) -> tuple[FloatArray, Callable[[Array], dict[str, Array]]]:
    """``autograd.misc.flatten`` for a dict of arrays, with an unflatten that is cheap to differentiate.

    Returns the arrays, in sorted name order, raveled into one vector, and the
    function that maps such a vector (traced or not) back to the dict, as views.
    The gradient of each view adds into its segment of one vector, in place,
    where autograd's ``unflatten`` is a traced backward pass whose slices add
    their gradients in with ``np.add.at``, one whole vector per array (a
    millisecond a step for the CNN).
    """
    names = sorted(params)
    shapes = [numpy.shape(params[name]) for name in names]
    ends = numpy.cumsum([0] + [int(numpy.prod(shape)) for shape in shapes]).tolist()
    vector = numpy.concatenate([numpy.ravel(params[name]) for name in names])

    def unflatten(vector: Array) -> dict[str, Array]:
        return {name: _segment(vector, start, stop, shape)
                for name, start, stop, shape in zip(names, ends[:-1], ends[1:], shapes)}
    return vector, unflatten


@primitive
def _segment(vector: FloatArray, start: int, stop: int, shape: tuple[int, ...]) -> FloatArray:
    """``vector[start:stop]`` as an array of `shape`: a view."""
    return vector[start:stop].reshape(shape)


def _add_segment(gradient: FloatArray, start: int, stop: int, space: Any) -> SparseObject:
    """`_segment`'s gradient: autograd adds it into the vector's gradient, in place."""
    def add(total: FloatArray) -> FloatArray:
        segment = total[start:stop].reshape(numpy.shape(gradient))  # a view: a transposed gradient is not copied
        segment += gradient
        return total
    return SparseObject(space, add)


defvjp(_segment, lambda ans, vector, start, stop, shape: lambda g: _add_segment(g, start, stop, vspace(vector)))
defjvp(_segment, lambda g, ans, vector, start, stop, shape: _segment(g, start, stop, shape))


def parameter_count(params: Mapping[str, ArrayLike] | Iterable[ArrayLike]) -> int:
    """Total number of numbers in `params` (a dict or sequence of arrays)."""
    values = params.values() if hasattr(params, "values") else params
    return int(sum(numpy.size(value) for value in values))


def _initial_weights(rng: numpy.random.Generator, shape: tuple[int, ...], fan_in: int) -> FloatArray:
    return rng.standard_normal(shape) * numpy.sqrt(1.0 / (3 * fan_in))


def _out_side(side: int, stride: int = STRIDE) -> int:
    """Side of a convolution's output: 3 x 3 windows every `stride` pixels over the side padded by 1."""
    return (side - 1) // stride + 1


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


def _check_image_size(model: str, image_size: int, convolutions: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, numpy.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a whole number of pixels >= 1; got {image_size!r}")
    if model == "cnn" and image_size % STRIDE ** convolutions:
        raise ValueError(f"the cnn halves the image side at each of its {convolutions} convolutions, so its image "
                         f"size must be a multiple of {STRIDE ** convolutions}; got {image_size}")


def _whole(values: object) -> bool:
    """Whether `values` is a sequence of whole numbers >= 1."""
    return (isinstance(values, (list, tuple)) and
            all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) and v >= 1 for v in values))


def _check_hidden(model: str, hidden: Sequence[int] | Sequence[Sequence[int]] | None
                  ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(convolution channels, dense widths): ``()`` channels for the mlp."""
    chosen: Any = HIDDEN[model] if hidden is None else hidden  # its form is what this function checks
    if model == "mlp":
        if not _whole(chosen):
            raise ValueError(f"hidden for the mlp must be layer widths, whole numbers >= 1; got {hidden!r}")
        return (), tuple(chosen)
    if not (isinstance(chosen, (list, tuple)) and len(chosen) == 2 and _whole(chosen[0]) and _whole(chosen[1])
            and len(chosen[0]) >= 1):
        raise ValueError(f"hidden for the cnn must be a pair: the convolutions' channels (one or more), then the "
                         f"dense layers' widths (any number), whole numbers >= 1, as ((16, 32, 64), (128,)); "
                         f"got {hidden!r}")
    return tuple(chosen[0]), tuple(chosen[1])


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
