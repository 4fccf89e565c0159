"""Synthetic box-regression data made from a seed: one rectangle per image, nothing downloaded.

Each image is a square of ``image_size`` pixels holding one bright axis-aligned
rectangle on a darker noisy background, and optionally some dimmer distractor
shapes that are not axis-aligned rectangles. The rectangle's box is the target.

Coordinates are continuous pixel units: x runs along columns, y along rows,
the origin is the image's top-left corner, and pixel ``(row i, column j)`` is
the unit square ``[j, j + 1] x [i, i + 1]``. Boxes are ``xyxy``.

Every random choice comes from a numpy ``Generator`` seeded by a
``SeedSequence``: the same arguments give the same data, bit for bit, on any
machine. The boxes, the intensities, the distractors, the pixel noise and the
label noise each draw from their own child stream, so changing one option
(say ``noise`` or ``label_noise``) leaves the others' draws as they were: the
same seed with and without label noise gives the same images and the same
clean boxes.

    >>> data = make_dataset(3, seed=0)
    >>> data.images.shape, data.boxes.shape
    ((3, 32, 32), (3, 4))
"""
from __future__ import annotations

from typing import Any, NamedTuple, Union

import numpy as np
from numpy.typing import ArrayLike

from sandbox._types import FloatArray

Seed = Union[int, np.random.SeedSequence]
"""A seed: a whole number >= 0, or a NumPy SeedSequence."""


class Dataset(NamedTuple):
    """Images and their boxes.

    images : ndarray of float64, shape (n, image_size, image_size)
        Pixel values roughly in [0, 1], plus Gaussian noise (not clipped).
    boxes : ndarray of float64, shape (n, 4)
        ``xyxy`` boxes in pixels, inside the image, x along columns, y along rows.
    """

    images: FloatArray
    boxes: FloatArray


SPLITS = ("train", "val", "test")

# Stream numbers of a dataset's child seeds; one stream per kind of draw (see the module docstring).
_BOXES, _LEVELS, _DISTRACTORS, _PIXEL_NOISE, _LABEL_NOISE = range(5)
_SUBSAMPLES = 4  # distractors are rendered with 4 x 4 samples per pixel
_CHUNK = 256  # images rendered at once when drawing distractors, to bound memory
_MAX_ROUNDS = 1000  # rounds of redrawing boxes that do not fit before giving up


def make_dataset(count: int, seed: Seed, image_size: int = 32, min_size: float = 2.0, max_size: float | None = None,
                 aspect_range: tuple[float, float] = (0.25, 4.0), distractors: int = 0, noise: float = 0.1,
                 label_noise: float = 0.0, background_range: tuple[float, float] = (0.0, 0.3),
                 object_range: tuple[float, float] = (0.6, 1.0), distractor_range: tuple[float, float] = (0.3, 0.55)
                 ) -> Dataset:
    """`count` images, each with one axis-aligned filled rectangle, and the rectangles' boxes.

    Object size s = sqrt(w h) is log-uniform in [`min_size`, `max_size`] and aspect
    w / h log-uniform in `aspect_range`; a box that does not fit in the image is
    drawn again (from the same stream, so deterministically). The sizes and
    aspects of the boxes returned are therefore log-uniform conditioned on
    fitting: near the top of the size range, elongated boxes are rarer. The
    position is uniform over the places where the box fits.

    The rectangle is rendered with exact area coverage: a pixel takes the share
    of its unit square that the box covers (coverage along x times coverage
    along y), so a box of a fraction of a pixel still shows. Each image has its
    own background level, uniform in `background_range`, and rectangle level,
    uniform in `object_range`: with the defaults the rectangle is brighter than
    the background by 0.3 to 1.0. Gaussian noise of standard deviation `noise`
    is added to every pixel, and the values are not clipped.

    Distractors are rotated ellipses and rotated rectangles (rotated by 15 to 75
    degrees, never axis-aligned), half of each on average, with sizes and aspects
    drawn like the object's, centres uniform over the image, and levels uniform
    in `distractor_range` (by default dimmer than any object and brighter than
    most backgrounds). They are drawn with 4 x 4 samples per pixel, under the
    object: the rectangle covers any distractor it overlaps, so the box is always
    fully visible.

    Parameters
    ----------
    count : int
        Number of images, >= 1.
    seed : int or numpy.random.SeedSequence
    image_size : int
        Side of the square images in pixels, >= 8.
    min_size, max_size : float
        Range of the object size sqrt(w h) in pixels, 0 < min_size <= max_size
        <= image_size; `max_size` defaults to 0.9 * image_size.
    aspect_range : (float, float)
        Range of w / h, positive, low <= high.
    distractors : int
        Number of distractor shapes per image, >= 0.
    noise : float
        Standard deviation of the Gaussian pixel noise, >= 0.
    label_noise : float
        Share of the box's own width (x edges) or height (y edges) used as the
        standard deviation of an independent Gaussian jitter on each edge of the
        returned box; the images are unchanged, the noise is in the annotation.
        Jittered edges are clipped to the image and put back in order; if they
        come closer than 5 % of the true width (height), they are spread to that
        width (height) around their midpoint, inside the image.
    background_range, object_range, distractor_range : (float, float)
        Ranges of the uniform levels of the background, the rectangle and the
        distractors; ``background_range=(0, 0)`` with ``noise=0`` renders the
        coverage itself, scaled by the rectangle's level.

    Returns
    -------
    Dataset
        ``images`` shape (count, image_size, image_size), ``boxes`` shape (count, 4).

    Raises
    ------
    ValueError
        For an argument out of range, naming it, before any work; in particular
        when no box of the size and aspect ranges fits in the image.
    """
    max_size = 0.9 * image_size if max_size is None else max_size
    _check_dataset_arguments(count, seed, image_size, min_size, max_size, aspect_range, distractors,
                             noise, label_noise, background_range, object_range, distractor_range)
    streams = [np.random.default_rng(child) for child in _children(seed, 5)]
    sizes = _sample_sizes(streams[_BOXES], count, image_size, min_size, max_size, aspect_range)
    corners = streams[_BOXES].uniform(size=(count, 2)) * (image_size - sizes)
    boxes = np.concatenate([corners, corners + sizes], axis=1)
    background = streams[_LEVELS].uniform(*background_range, size=count)
    level = streams[_LEVELS].uniform(*object_range, size=count)

    images = np.broadcast_to(background[:, None, None], (count, image_size, image_size))
    if distractors:
        images = _draw_distractors(streams[_DISTRACTORS], images, distractors, min_size, max_size,
                                   aspect_range, distractor_range)
    coverage = box_coverage(boxes, image_size)
    images = images * (1 - coverage) + level[:, None, None] * coverage
    if noise:
        images = images + noise * streams[_PIXEL_NOISE].standard_normal(images.shape)
    if label_noise:
        boxes = jitter_boxes(streams[_LABEL_NOISE], boxes, label_noise, image_size)
    return Dataset(np.ascontiguousarray(images, dtype=np.float64), boxes)


def make_splits(seed: Seed = 0, train: int = 2000, val: int = 500, test: int = 1000, label_noise: float = 0.0,
                **options: Any) -> dict[str, Dataset]:
    """Train, validation and test datasets from independent streams of one seed.

    The three splits come from ``SeedSequence(seed).spawn(3)``, so the number of
    training images does not change the validation or test images. Label noise,
    if any, is applied to the training split only: validation and test keep the
    true boxes.

    Parameters
    ----------
    seed : int
    train, val, test : int
        Number of images in each split, >= 1.
    label_noise : float
        As in `make_dataset`, on the training split.
    **options
        Any other argument of `make_dataset` (``image_size``, ``min_size``,
        ``distractors``, ``noise``, ...), the same for every split.

    Returns
    -------
    dict
        ``{"train": Dataset, "val": Dataset, "test": Dataset}``.
    """
    counts = {"train": train, "val": val, "test": test}
    for name, count in counts.items():  # every split checked before any is made
        _check_count(count, name)
    streams = dict(zip(SPLITS, _children(seed, 3)))
    return {name: make_dataset(counts[name], streams[name], label_noise=label_noise if name == "train" else 0.0,
                               **options)
            for name in SPLITS}


def make_stream(seed: Seed = 0, count: int = 4000, epochs: int = 1, label_noise: float = 0.0,
                **options: Any) -> list[Dataset]:
    """A fresh training set for each epoch: `epochs` datasets of `count` images, from one seed.

    Epoch e's images come from the e-th child of the training split's stream of
    `make_splits` (the same seed), so they never repeat the validation or test images,
    and the first epochs of a longer stream are those of a shorter one. Label noise, if
    any, is in every epoch's boxes, as in a training split.

    Parameters
    ----------
    seed : int
    count : int
        Images per epoch, >= 1.
    epochs : int
        Number of datasets, >= 1.
    label_noise : float
    **options
        Any other argument of `make_dataset`.
    """
    _check_count(count, "count")
    _check_count(epochs, "epochs")
    return [make_dataset(count, child, label_noise=label_noise, **options)
            for child in _children(_children(seed, 3)[0], epochs)]


def box_coverage(boxes: ArrayLike, image_size: int) -> FloatArray:
    """Share of each pixel's unit square covered by each box, shape (n, image_size, image_size).

    Separable: the coverage of column j along x, ``max(0, min(x2, j + 1) - max(x1, j))``,
    times that of row i along y. Its sum over the image is the box's area inside it.

    Parameters
    ----------
    boxes : ndarray, shape (n, 4)
        ``xyxy`` boxes in pixels.
    image_size : int
    """
    boxes = np.asarray(boxes, dtype=float)
    edges = np.arange(image_size, dtype=float)

    def along(low: FloatArray, high: FloatArray) -> FloatArray:
        return np.maximum(np.minimum(high[:, None], edges + 1) - np.maximum(low[:, None], edges), 0.0)
    return along(boxes[:, 1], boxes[:, 3])[:, :, None] * along(boxes[:, 0], boxes[:, 2])[:, None, :]


def jitter_boxes(rng: np.random.Generator, boxes: FloatArray, share: float, image_size: int,
                 min_share: float = 0.05) -> FloatArray:
    """Boxes with each edge moved by Gaussian noise of std `share` times the box's width or height.

    The result stays a valid box inside ``[0, image_size]``: edges are clipped and
    ordered, and a box left narrower than `min_share` of its true width (height)
    is widened to that around its midpoint.

    Parameters
    ----------
    rng : numpy.random.Generator
    boxes : ndarray, shape (n, 4)
        ``xyxy`` boxes inside the image.
    share : float
    image_size : int
    """
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    scale = share * np.stack([width, height, width, height], axis=1)
    moved = np.clip(boxes + scale * rng.standard_normal(boxes.shape), 0.0, image_size)
    x = _spread(moved[:, 0], moved[:, 2], min_share * width, image_size)
    y = _spread(moved[:, 1], moved[:, 3], min_share * height, image_size)
    return np.stack([x[0], y[0], x[1], y[1]], axis=1)


def _spread(a: FloatArray, b: FloatArray, least: FloatArray, image_size: int) -> tuple[FloatArray, FloatArray]:
    """Ordered edges (low, high) at least `least` apart, inside [0, image_size]."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    middle = np.clip((low + high) / 2, least / 2, image_size - least / 2)
    narrow = high - low < least
    return np.where(narrow, middle - least / 2, low), np.where(narrow, middle + least / 2, high)


def _sample_sizes(rng: np.random.Generator, count: int, image_size: int, min_size: float, max_size: float,
                  aspect_range: tuple[float, float]) -> FloatArray:
    """(w, h) of `count` boxes, shape (count, 2), log-uniform in size and aspect, each fitting the image."""
    sizes = np.empty((count, 2))
    todo = np.arange(count)
    log_aspect_low, log_aspect_high = np.log(aspect_range)
    for _ in range(_MAX_ROUNDS):
        size = np.exp(rng.uniform(np.log(min_size), np.log(max_size), size=len(todo)))
        aspect = np.exp(rng.uniform(log_aspect_low, log_aspect_high, size=len(todo)))
        drawn = np.stack([size * np.sqrt(aspect), size / np.sqrt(aspect)], axis=1)
        fits = np.all(drawn <= image_size, axis=1)
        sizes[todo[fits]] = drawn[fits]
        todo = todo[~fits]
        if len(todo) == 0:
            return sizes
    raise ValueError(f"only {count - len(todo)} of {count} boxes fitted in a {image_size}-pixel image after "
                     f"{_MAX_ROUNDS} draws each; sizes {min_size:g} to {max_size:g} with aspects "
                     f"{aspect_range[0]:g} to {aspect_range[1]:g} almost never fit: lower max_size or "
                     f"narrow aspect_range")


def _draw_distractors(rng: np.random.Generator, images: FloatArray, count: int, min_size: float, max_size: float,
                      aspect_range: tuple[float, float], level_range: tuple[float, float]) -> FloatArray:
    """`images` with `count` rotated ellipses or rectangles painted on each."""
    n, image_size = images.shape[0], images.shape[-1]
    size = np.exp(rng.uniform(np.log(min_size), np.log(max_size), size=(n, count)))
    log_aspect_low, log_aspect_high = np.log(aspect_range)
    aspect = np.exp(rng.uniform(log_aspect_low, log_aspect_high, size=(n, count)))
    half_width, half_height = size * np.sqrt(aspect) / 2, size / np.sqrt(aspect) / 2
    centre = rng.uniform(0, image_size, size=(n, count, 2))
    is_ellipse = rng.uniform(size=(n, count)) < 0.5
    # ellipses at any angle; rectangles 15 to 75 degrees off the axes, so never axis-aligned
    angle = np.where(is_ellipse, rng.uniform(0, np.pi, size=(n, count)),
                     np.radians(rng.uniform(15, 75, size=(n, count))))
    level = rng.uniform(*level_range, size=(n, count))

    samples = (np.arange(image_size * _SUBSAMPLES) + 0.5) / _SUBSAMPLES
    chunks = []
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        image = images[part]
        for k in range(count):
            dx = samples[None, None, :] - centre[part, k, 0, None, None]
            dy = samples[None, :, None] - centre[part, k, 1, None, None]
            cos, sin = np.cos(angle[part, k])[:, None, None], np.sin(angle[part, k])[:, None, None]
            u = (dx * cos + dy * sin) / half_width[part, k, None, None]
            v = (dy * cos - dx * sin) / half_height[part, k, None, None]
            inside = np.where(is_ellipse[part, k, None, None], u ** 2 + v ** 2 <= 1,
                              (np.abs(u) <= 1) & (np.abs(v) <= 1))
            coverage = inside.reshape(len(u), image_size, _SUBSAMPLES, image_size, _SUBSAMPLES).mean(axis=(2, 4))
            image = image * (1 - coverage) + level[part, k, None, None] * coverage
        chunks.append(image)
    return np.concatenate(chunks)


def _children(seed: Seed, count: int) -> list[np.random.SeedSequence]:
    """`count` child seed sequences of `seed`, the same on every call.

    As ``SeedSequence.spawn``, but without advancing a SeedSequence passed in,
    so that a dataset made twice from the same sequence is the same dataset.
    """
    if isinstance(seed, np.random.SeedSequence):
        entropy, key = seed.entropy, tuple(seed.spawn_key)
    else:
        entropy, key = seed, ()
    return [np.random.SeedSequence(entropy, spawn_key=key + (i,)) for i in range(count)]


def _check_count(count: int, name: str) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {count!r}")


def _check_pair(pair: tuple[float, float], name: str, positive: bool = False) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (low, high); got {pair!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low > high or (positive and low <= 0):
        kind = "positive numbers" if positive else "finite numbers"
        raise ValueError(f"{name} must be two {kind} with low <= high; got {pair!r}")
    return low, high


def _check_dataset_arguments(count: int, seed: Seed, image_size: int, min_size: float, max_size: float,
                             aspect_range: tuple[float, float], distractors: int, noise: float, label_noise: float,
                             background_range: tuple[float, float], object_range: tuple[float, float],
                             distractor_range: tuple[float, float]) -> None:
    _check_count(count, "count")
    if not isinstance(seed, np.random.SeedSequence) and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a whole number >= 0 or a numpy SeedSequence; got {seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be a whole number of pixels >= 8; got {image_size!r}")
    for name, value in [("min_size", min_size), ("max_size", max_size), ("noise", noise),
                        ("label_noise", label_noise)]:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}")
    if not 0 < min_size <= max_size:
        raise ValueError(f"object sizes must satisfy 0 < min_size <= max_size; got min_size {min_size:g}, "
                         f"max_size {max_size:g} (max_size defaults to 0.9 * image_size)")
    if max_size > image_size:
        raise ValueError(f"image size {image_size} is too small for the size range: max_size {max_size:g} "
                         f"must be <= image_size")
    low, high = _check_pair(aspect_range, "aspect_range", positive=True)
    # The box most likely to fit is the smallest, with the aspect closest to square.
    squarest = min(max(1.0, low), high)
    longest_side = min_size * np.sqrt(max(squarest, 1 / squarest))
    if longest_side > image_size:
        raise ValueError(f"image size {image_size} is too small for the size range: even the smallest object "
                         f"(size {min_size:g}, aspect {squarest:g}) has a side of {longest_side:.3g} pixels; "
                         f"lower min_size, widen aspect_range toward 1, or raise image_size")
    if isinstance(distractors, bool) or not isinstance(distractors, (int, np.integer)) or distractors < 0:
        raise ValueError(f"distractors must be a whole number >= 0; got {distractors!r}")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0; got {noise!r}")
    if label_noise < 0:
        raise ValueError(f"label_noise is a share of the box size and must be >= 0; got {label_noise!r}")
    for name, pair in [("background_range", background_range), ("object_range", object_range),
                       ("distractor_range", distractor_range)]:
        _check_pair(pair, name)
