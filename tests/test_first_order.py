import numpy as np
import pytest
from autograd import grad

from helpers import adam_by_hand
from sandbox import LOSSES, fit

pytestmark = pytest.mark.portable  # the first-order rules against their papers, under every emulated CPU

TARGET = np.array([-1.0, -0.5, 1.0, 0.5])
START = np.array([1.5, -0.75, 2.5, 0.75])  # the headline's start to the east, a gap of 0.5


@pytest.mark.parametrize("options", [{}, {"b1": 0.5, "b2": 0.9, "eps": 1e-3}])
def test_adam_follows_kingma_and_ba_step_after_step(options):
    # Ten steps, not one: the first step is g / |g| whatever Adam keeps as its state, so only
    # the later ones tell the raw moments from their bias-corrected copies.
    settings = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, **options}
    gradient = grad(lambda box: LOSSES["giou"](box, TARGET))
    expected = adam_by_hand(lambda t, x: gradient(x), START, [0.1] * 10, **settings)
    result = fit(START, TARGET, loss="giou", method="adam", lr=0.1, schedule="constant",
                 maxiter=10, **options)
    assert result.nit == 10
    np.testing.assert_allclose(result.boxes, expected, rtol=1e-12, atol=1e-12)
