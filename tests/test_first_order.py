import numpy as np
import pytest
from autograd import grad

from sandbox import LOSSES, fit

pytestmark = pytest.mark.portable  # the first-order rules against their papers, under every emulated CPU

TARGET = np.array([-1.0, -0.5, 1.0, 0.5])
START = np.array([1.5, -0.75, 2.5, 0.75])  # the headline's start to the east, a gap of 0.5


def adam_by_hand(gradient, x, lr, steps, b1, b2, eps):
    """Kingma and Ba (ICLR 2015), Algorithm 1, written out: the moments m and v are the state;
    only the step uses their bias-corrected copies."""
    m, v, xs = np.zeros_like(x), np.zeros_like(x), [x]
    for t in range(1, steps + 1):
        g = gradient(x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        xs.append(x)
    return np.array(xs)


@pytest.mark.parametrize("options", [{}, {"b1": 0.5, "b2": 0.9, "eps": 1e-3}])
def test_adam_follows_kingma_and_ba_step_after_step(options):
    # Ten steps, not one: the first step is g / |g| whatever Adam keeps as its state, so only
    # the later ones tell the raw moments from their bias-corrected copies.
    settings = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, **options}
    gradient = grad(lambda box: LOSSES["giou"](box, TARGET))
    expected = adam_by_hand(gradient, START, lr=0.1, steps=10, **settings)
    result = fit(START, TARGET, loss="giou", method="adam", lr=0.1, schedule="constant",
                 maxiter=10, **options)
    assert result.nit == 10
    np.testing.assert_allclose(result.boxes, expected, rtol=1e-12, atol=1e-12)
