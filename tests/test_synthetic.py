import numpy as np
import pytest

from sandbox.learning.synthetic import Dataset, _children, box_coverage, make_dataset, make_splits


def sizes_and_aspects(boxes):
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.sqrt(width * height), width / height


def test_same_seed_gives_the_same_data_bit_for_bit():
    options = dict(image_size=24, distractors=2, label_noise=0.1)
    first, again = make_dataset(40, 5, **options), make_dataset(40, 5, **options)
    assert isinstance(first, Dataset)
    assert first.images.dtype == np.float64 and first.boxes.dtype == np.float64
    assert first.images.shape == (40, 24, 24) and first.boxes.shape == (40, 4)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.boxes, again.boxes)
    other = make_dataset(40, 6, **options)
    assert not np.array_equal(first.boxes, other.boxes)
    # a SeedSequence passed in is not advanced by use
    sequence = np.random.SeedSequence(5)
    np.testing.assert_array_equal(make_dataset(5, sequence).images, make_dataset(5, sequence).images)


@pytest.mark.parametrize("image_size, min_size, aspect_range", [(32, 2.0, (0.25, 4.0)), (8, 0.5, (0.1, 10.0)),
                                                               (64, 30.0, (1.0, 1.0))])
def test_every_box_lies_inside_its_image_with_the_stated_size_and_aspect(image_size, min_size, aspect_range):
    boxes = make_dataset(2000, 1, image_size=image_size, min_size=min_size, aspect_range=aspect_range,
                         noise=0.0).boxes
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= image_size)
    assert np.all(boxes[:, 2:] > boxes[:, :2])
    size, aspect = sizes_and_aspects(boxes)
    assert np.all(size >= min_size * (1 - 1e-12)) and np.all(size <= 0.9 * image_size * (1 + 1e-12))
    assert np.all(aspect >= aspect_range[0] * (1 - 1e-9)) and np.all(aspect <= aspect_range[1] * (1 + 1e-9))


def test_sizes_and_aspects_spread_log_uniformly_over_their_ranges():
    # Where every box fits (sizes up to 8 of 32 pixels, aspects up to 4: sides up to 16),
    # log size and log aspect are uniform: their quartiles sit at a quarter of the log range.
    boxes = make_dataset(4000, 2, min_size=2.0, max_size=8.0, aspect_range=(0.25, 4.0)).boxes
    size, aspect = sizes_and_aspects(boxes)
    position = (np.log(size) - np.log(2.0)) / np.log(4.0)
    np.testing.assert_allclose(np.quantile(position, [0.1, 0.25, 0.5, 0.75, 0.9]), [0.1, 0.25, 0.5, 0.75, 0.9],
                               atol=0.03)
    position = (np.log(aspect) - np.log(0.25)) / np.log(16.0)
    np.testing.assert_allclose(np.quantile(position, [0.1, 0.25, 0.5, 0.75, 0.9]), [0.1, 0.25, 0.5, 0.75, 0.9],
                               atol=0.03)
    # With the default range (2 to 28.8 pixels) the sizes span from a few pixels to most of the image.
    size, aspect = sizes_and_aspects(make_dataset(4000, 3).boxes)
    assert np.quantile(size, 0.05) < 3 and np.quantile(size, 0.95) > 20
    assert np.quantile(aspect, 0.05) < 0.35 and np.quantile(aspect, 0.95) > 2.8


def test_rendered_coverage_integrates_to_the_box_area_and_the_box_is_brighter():
    data = make_dataset(200, 4, noise=0.0, background_range=(0.0, 0.0), object_range=(1.0, 1.0), min_size=0.3)
    width, height = data.boxes[:, 2] - data.boxes[:, 0], data.boxes[:, 3] - data.boxes[:, 1]
    # each pixel holds the share of it the box covers, so the image sums to the box's area
    np.testing.assert_allclose(data.images.sum(axis=(1, 2)), width * height, rtol=1e-12)
    assert np.all(data.images >= 0) and np.all(data.images <= 1)
    # even a box of under a pixel shows, with the intensity its area says
    small = np.argmin(width * height)
    assert width[small] * height[small] < 1 and data.images[small].max() > 0

    # with a background and distractors, the pixels inside the box are brighter than those outside
    data = make_dataset(200, 4, noise=0.0, distractors=2)
    rows, columns = np.arange(32) + 0.5, np.arange(32) + 0.5
    for image, (x1, y1, x2, y2) in zip(data.images, data.boxes):
        inside = ((columns > x1) & (columns < x2))[None, :] & ((rows > y1) & (rows < y2))[:, None]
        if inside.any():
            assert image[inside].mean() > image[~inside].mean()


def test_box_coverage_matches_a_hand_computed_pixel_grid():
    coverage = box_coverage(np.array([[0.5, 1.25, 2.0, 1.75]]), 3)[0]
    # x covers half of column 0 and all of column 1; y covers the middle half of row 1
    np.testing.assert_allclose(coverage, [[0, 0, 0], [0.25, 0.5, 0], [0, 0, 0]])


def test_splits_are_independent_and_a_bigger_train_split_leaves_val_and_test_alone():
    splits = make_splits(seed=3, train=30, val=20, test=25, image_size=16)
    assert {name: len(data.boxes) for name, data in splits.items()} == {"train": 30, "val": 20, "test": 25}
    again = make_splits(seed=3, train=30, val=20, test=25, image_size=16)
    for name in splits:
        np.testing.assert_array_equal(splits[name].images, again[name].images)
    bigger = make_splits(seed=3, train=60, val=20, test=25, image_size=16)
    for name in ("val", "test"):
        np.testing.assert_array_equal(splits[name].images, bigger[name].images)
        np.testing.assert_array_equal(splits[name].boxes, bigger[name].boxes)
    boxes = [splits[name].boxes[:20] for name in splits]
    assert not np.array_equal(boxes[0], boxes[1]) and not np.array_equal(boxes[1], boxes[2])
    assert not np.array_equal(make_splits(seed=4, train=30, val=20, test=25, image_size=16)["test"].boxes,
                              splits["test"].boxes)


def test_splits_of_equal_size_draw_different_images_and_boxes():
    # with train = val = test nothing but the seed's three spawned streams tells the splits apart
    splits = make_splits(seed=3, train=12, val=12, test=12, image_size=12)
    for first, second in (("train", "val"), ("val", "test"), ("train", "test")):
        assert not np.any(np.all(splits[first].boxes == splits[second].boxes, axis=1)), (first, second)
        assert not np.array_equal(splits[first].images, splits[second].images), (first, second)


def test_splits_are_the_datasets_of_the_seeds_spawned_children():
    # the docstring's promise, against numpy's own SeedSequence.spawn: split i is made from child i
    children = np.random.SeedSequence(3).spawn(3)
    splits = make_splits(seed=3, train=6, val=6, test=6, image_size=12)
    for name, child in zip(("train", "val", "test"), children):
        expected = make_dataset(6, child, image_size=12)
        np.testing.assert_array_equal(splits[name].images, expected.images)
        np.testing.assert_array_equal(splits[name].boxes, expected.boxes)


def test_children_of_a_seed_sequence_are_its_spawned_children_and_differ_from_each_other():
    # _children(sequence, n) is sequence.spawn(n) without advancing the sequence; a child's own
    # children (a split's five streams) must carry its spawn key, or the splits' draws would coincide
    parent = np.random.SeedSequence(3).spawn(3)[1]
    states = [child.generate_state(4) for child in _children(parent, 5)]
    expected = [child.generate_state(4) for child in np.random.SeedSequence(3, spawn_key=(1,)).spawn(5)]
    np.testing.assert_array_equal(states, expected)
    assert len({tuple(state) for state in states}) == 5
    assert parent.n_children_spawned == 0
    siblings = [tuple(child.generate_state(4)) for sibling in np.random.SeedSequence(3).spawn(3)
                for child in _children(sibling, 5)]
    assert len(set(siblings)) == 15  # no stream of one split is a stream of another


def test_label_noise_moves_train_boxes_only_by_the_stated_share_of_their_size():
    clean = make_splits(seed=7, train=3000, val=50, test=50, min_size=6.0, max_size=12.0)
    noisy = make_splits(seed=7, train=3000, val=50, test=50, min_size=6.0, max_size=12.0, label_noise=0.05)
    for name in ("val", "test"):
        np.testing.assert_array_equal(clean[name].boxes, noisy[name].boxes)
    # the noise is in the annotation: the images are those of the clean boxes
    np.testing.assert_array_equal(clean["train"].images, noisy["train"].images)
    boxes, true = noisy["train"].boxes, clean["train"].boxes
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 32) and np.all(boxes[:, 2:] > boxes[:, :2])
    width, height = true[:, 2] - true[:, 0], true[:, 3] - true[:, 1]
    relative = (boxes - true) / np.stack([width, height, width, height], axis=1)
    # boxes touching the border are clipped; the rest move by 5 % of their size on each edge
    free = np.all((true[:, :2] > 2) & (true[:, 2:] < 30), axis=1)
    np.testing.assert_allclose(relative[free].std(axis=0), 0.05, rtol=0.1)
    np.testing.assert_allclose(relative[free].mean(axis=0), 0.0, atol=0.005)


def test_large_label_noise_still_gives_valid_boxes_inside_the_image():
    boxes = make_dataset(500, 8, label_noise=1.0).boxes
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 32) and np.all(boxes[:, 2:] > boxes[:, :2])


def test_distractors_leave_the_boxes_and_are_not_axis_aligned_rectangles():
    plain = make_dataset(50, 9, noise=0.0)
    busy = make_dataset(50, 9, noise=0.0, distractors=3)
    np.testing.assert_array_equal(plain.boxes, busy.boxes)
    changed = np.any(plain.images != busy.images, axis=(1, 2))
    assert changed.mean() > 0.9
    # the object is drawn over the distractors: pixels fully inside the box keep the object's level
    inside = box_coverage(plain.boxes, 32) == 1
    np.testing.assert_array_equal(plain.images[inside], busy.images[inside])


@pytest.mark.parametrize("arguments, words", [
    (dict(count=0), "count must be a whole number >= 1"),
    (dict(count=2.5), "count must be a whole number >= 1"),
    (dict(seed=-1), "seed must be a whole number >= 0"),
    (dict(image_size=4), "image_size must be a whole number of pixels >= 8"),
    (dict(min_size=0.0), "0 < min_size <= max_size"),
    (dict(min_size=10.0, max_size=5.0), "0 < min_size <= max_size"),
    (dict(image_size=16, max_size=20.0), "image size 16 is too small for the size range"),
    (dict(image_size=16, min_size=12.0, max_size=16.0, aspect_range=(4.0, 8.0)),
     "image size 16 is too small for the size range"),
    (dict(aspect_range=(4.0, 0.25)), "aspect_range must be two positive numbers with low <= high"),
    (dict(aspect_range=(0.0, 1.0)), "aspect_range must be two positive numbers"),
    (dict(aspect_range=3), "aspect_range must be two numbers"),
    (dict(distractors=-1), "distractors must be a whole number >= 0"),
    (dict(noise=-0.1), "noise is a standard deviation and must be >= 0"),
    (dict(label_noise=float("nan")), "label_noise must be a finite number"),
    (dict(label_noise=-0.1), "label_noise is a share of the box size"),
    (dict(object_range=(1.0, 0.5)), "object_range must be two finite numbers with low <= high"),
])
def test_bad_arguments_are_clear_errors(arguments, words):
    arguments = dict(dict(count=5, seed=0), **arguments)
    with pytest.raises(ValueError, match=words):
        make_dataset(**arguments)


def test_bad_split_sizes_are_clear_errors_before_any_work():
    with pytest.raises(ValueError, match="val must be a whole number >= 1"):
        make_splits(val=0)
    with pytest.raises(ValueError, match="image size 8 is too small for the size range"):
        make_splits(train=5, val=5, test=5, image_size=8, max_size=10.0)
