"""Oriented boxes: checks, corners, Gaussians and canonical forms against mmrotate's own conversions."""
import numpy as np
import pytest
from autograd import grad

from helpers import central_differences
from sandbox.geometry.boxes import Coordinates, box_convert
from sandbox.geometry.oriented import (ANGLE_CONVENTIONS, COVARIANCE_SCALES, canonical, check_oriented_boxes, corners,
                                       from_gaussian, from_polygon, gaussian, to_polygon)


def random_oriented(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.normal(0, 3, (n, 2)), rng.uniform(0.1, 4, (n, 2)), rng.uniform(-7, 7, n)]


# mmrotate 0.3's conversions (mmrotate/core/bbox/transforms.py), transcribed from torch to NumPy.
def mmrotate_obb2poly_le90(rboxes):
    x_ctr, y_ctr, width, height, angle = rboxes.T
    tl_x, tl_y, br_x, br_y = -width * 0.5, -height * 0.5, width * 0.5, height * 0.5
    rects = np.stack([tl_x, br_x, br_x, tl_x, tl_y, tl_y, br_y, br_y], axis=0).reshape(2, 4, -1).transpose(2, 0, 1)
    sin, cos = np.sin(angle), np.cos(angle)
    M = np.stack([cos, -sin, sin, cos], axis=0).reshape(2, 2, -1).transpose(2, 0, 1)
    polys = (M @ rects).transpose(2, 1, 0).reshape(-1, len(rboxes)).T
    polys[:, ::2] += x_ctr[:, None]
    polys[:, 1::2] += y_ctr[:, None]
    return polys


def mmrotate_norm_angle(angle, angle_range):
    if angle_range == 'oc':
        return angle
    elif angle_range == 'le135':
        return (angle + np.pi / 4) % np.pi - np.pi / 4
    elif angle_range == 'le90':
        return (angle + np.pi / 2) % np.pi - np.pi / 2


def mmrotate_regularize(rboxes, angle_range):  # mmrotate 1.x RotatedBoxes.regularize_boxes, for le90 and le135
    x, y, w, h, t = rboxes.T
    w_regular = np.where(w > h, w, h)
    h_regular = np.where(w > h, h, w)
    t_regular = mmrotate_norm_angle(np.where(w > h, t, t + np.pi / 2), angle_range)
    return np.stack([x, y, w_regular, h_regular, t_regular], axis=-1)


def mmrotate_poly2obb_np_oc_angle(w, h, a):  # the loop of poly2obb_np_oc, on minAreaRect's (w, h, angle in degrees)
    while not 0 < a <= 90:
        if a == -90:
            a += 180
        else:
            a += 90
            w, h = h, w
    return w, h, a / 180 * np.pi


def mmrotate_xy_wh_r_2_xy_sigma(xywhr):  # mmrotate/models/losses/gaussian_dist_loss.py
    xy = xywhr[..., :2]
    wh = np.clip(xywhr[..., 2:4], 1e-7, 1e7)
    r = xywhr[..., 4]
    cos_r, sin_r = np.cos(r), np.sin(r)
    R = np.stack((cos_r, -sin_r, sin_r, cos_r), axis=-1).reshape(*r.shape, 2, 2)
    S = 0.5 * np.eye(2) * wh[..., None]  # 0.5 * diag_embed(wh)
    sigma = R @ S @ S @ np.swapaxes(R, -1, -2)
    return xy, sigma


def ultralytics_covariance(boxes):  # ultralytics/utils/metrics.py, _get_covariance_matrix
    gbbs = np.concatenate((boxes[:, 2:4] ** 2 / 12, boxes[:, 4:]), axis=-1)
    a, b, c = np.split(gbbs, 3, axis=-1)
    cos, sin = np.cos(c), np.sin(c)
    cos2, sin2 = cos ** 2, sin ** 2
    return a * cos2 + b * sin2, a * sin2 + b * cos2, (a - b) * cos * sin


def test_corners_are_mmrotate_polygons():
    boxes = random_oriented(500)
    np.testing.assert_allclose(to_polygon(boxes), mmrotate_obb2poly_le90(boxes), rtol=0, atol=1e-12)
    np.testing.assert_allclose(from_polygon(to_polygon(boxes))[:, :4], boxes[:, :4], atol=1e-12)


def test_corners_at_theta_zero_are_the_axis_aligned_box():
    boxes = random_oriented(100)
    boxes[:, 4] = 0.0
    xs, ys = corners(boxes)
    x1, y1, x2, y2 = box_convert(boxes[:, :4], "cxcywh", "xyxy").T
    np.testing.assert_allclose(np.c_[xs.min(1), ys.min(1), xs.max(1), ys.max(1)], np.c_[x1, y1, x2, y2], atol=1e-12)


def test_gaussians_are_mmrotate_and_ultralytics_covariances():
    boxes = random_oriented(500)
    mean, sigma = mmrotate_xy_wh_r_2_xy_sigma(boxes)
    ours = gaussian(boxes, "mmrotate")
    np.testing.assert_allclose(np.c_[ours.x, ours.y], mean, atol=0)
    np.testing.assert_allclose(np.c_[ours.a, ours.c, ours.c, ours.b].reshape(-1, 2, 2), sigma, rtol=1e-12, atol=1e-12)
    a, b, c = (v[:, 0] for v in ultralytics_covariance(boxes))
    probiou = gaussian(boxes, "probiou")
    np.testing.assert_allclose([probiou.a, probiou.b, probiou.c], [a, b, c], rtol=1e-12, atol=1e-12)
    assert COVARIANCE_SCALES == {"mmrotate": 0.25, "probiou": 1 / 12}


@pytest.mark.parametrize("convention", sorted(COVARIANCE_SCALES))
def test_from_gaussian_inverts_gaussian_up_to_the_rectangle(convention):
    boxes = random_oriented(500)
    back = from_gaussian(gaussian(boxes, convention), convention)
    np.testing.assert_allclose(gaussian(back, convention), gaussian(boxes, convention), atol=1e-11)
    np.testing.assert_allclose(back, canonical(boxes, "le90"), atol=1e-9)


@pytest.mark.parametrize("convention", ["le90", "le135"])
def test_canonical_is_mmrotates_regularisation(convention):
    boxes = random_oriented(1000)
    np.testing.assert_allclose(canonical(boxes, convention), mmrotate_regularize(boxes, convention), atol=1e-12)


def test_canonical_oc_is_mmrotates_quarter_turns():
    boxes = random_oriented(300)
    for box, ours in zip(boxes, canonical(boxes, "oc")):
        # minAreaRect's angles lie in [-90, 90) degrees: a half turn, the same rectangle, brings each there
        w, h, a = mmrotate_poly2obb_np_oc_angle(box[2], box[3], np.degrees(mmrotate_norm_angle(box[4], "le90")))
        np.testing.assert_allclose(ours[2:], [w, h, a], atol=1e-9)


@pytest.mark.parametrize("convention", sorted(ANGLE_CONVENTIONS))
def test_canonical_forms_are_the_same_rectangles_in_range(convention):
    boxes = random_oriented(1000)
    forms = canonical(boxes, convention)
    np.testing.assert_allclose(gaussian(forms), gaussian(boxes), atol=1e-12)  # the same rectangle
    low = {"oc": 0.0, "le90": -np.pi / 2, "le135": -np.pi / 4}[convention]
    theta = forms[:, 4]
    assert ((theta > low) if convention == "oc" else (theta >= low)).all()
    assert ((theta <= low + np.pi / 2) if convention == "oc" else (theta < low + np.pi)).all()
    if convention != "oc":
        assert (forms[:, 2] >= forms[:, 3]).all()
    np.testing.assert_allclose(canonical(forms, convention), forms, atol=1e-12)  # idempotent


def test_equivalent_parameterisations_have_one_gaussian_and_one_canonical_form():
    boxes = random_oriented(500)
    turned = boxes + [0, 0, 0, 0, np.pi]
    swapped = boxes[:, [0, 1, 3, 2, 4]] + [0, 0, 0, 0, np.pi / 2]
    for other in (turned, swapped):
        np.testing.assert_allclose(gaussian(other), gaussian(boxes), atol=1e-12)
        for convention in ANGLE_CONVENTIONS:
            np.testing.assert_allclose(canonical(other, convention), canonical(boxes, convention), atol=1e-9)


def test_gaussian_gradient_matches_central_differences():
    box = np.array([0.3, -0.2, 2.0, 0.7, 0.4])
    for i in range(5):
        f = lambda b: gaussian(b)[i % 5]  # noqa: E731
        np.testing.assert_allclose(grad(f)(box), central_differences(f, box), atol=1e-8)


def test_coordinates_carry_oriented_boxes():
    boxes = random_oriented(10)
    split = Coordinates(boxes.T)
    np.testing.assert_allclose(np.stack(canonical(split), axis=-1), canonical(boxes), atol=0)


@pytest.mark.parametrize("bad, message", [
    ([0.0, 0.0, 1.0, 1.0], "shape (..., 5)"),
    ([[0.0, 0.0, 1.0, 1.0, 0.0], [0.0, np.nan, 1.0, 1.0, 0.0]], "target box 1 [0.0, nan, 1.0, 1.0, 0.0] has non-finite"),
    ([0.0, 0.0, 0.0, 1.0, 0.0], "non-positive width 0.0; target boxes must have w > 0"),
    ([0.0, 0.0, 1.0, -1.0, 0.0], "non-positive height -1.0"),
])
def test_checks_name_the_bad_box(bad, message):
    with pytest.raises(ValueError) as error:
        check_oriented_boxes(bad, "target", positive_size=True)
    assert message in str(error.value)


def test_unknown_conventions_are_named():
    with pytest.raises(ValueError, match="unknown angle convention 'le180'; valid: oc, le90, le135"):
        canonical([0, 0, 1, 1, 0], "le180")
    with pytest.raises(ValueError, match="unknown covariance convention 'cv'; valid: mmrotate, probiou"):
        gaussian([0, 0, 1, 1, 0], "cv")
