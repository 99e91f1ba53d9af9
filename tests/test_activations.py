"""The hidden-layer activations: forward values, derivatives by finite differences, overflow."""

import warnings

import numpy as np
import pytest

from models.activations import ACTIVATIONS

REFERENCE = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}


def test_every_activation_has_a_reference():
    """The references here cover exactly the registered activations."""
    assert set(ACTIVATIONS) == set(REFERENCE)


def _points(rng, n=400):
    """z across [-8, 8], kept away from 0 where relu has a kink."""
    z = rng.uniform(-8.0, 8.0, size=(n // 20, 20))
    z[np.abs(z) < 1e-3] = 0.5
    return z


def _forward(act, z):
    out = np.array(z, dtype=np.float64, copy=True)
    assert act.forward(out) is None  # in place, nothing returned
    return out


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_forward_in_place_matches_reference(name):
    """forward overwrites z with g(z)."""
    z = _points(np.random.default_rng(1))
    np.testing.assert_allclose(_forward(ACTIVATIONS[name], z), REFERENCE[name](z), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_is_derivative_of_forward(name):
    """backward multiplies dA by g'(z), which matches central differences of forward elementwise."""
    act = ACTIVATIONS[name]
    rng = np.random.default_rng(2)
    z = _points(rng)
    h = 1e-6
    numeric = (_forward(act, z + h) - _forward(act, z - h)) / (2 * h)
    a = _forward(act, z)
    da = rng.standard_normal(z.shape)
    expected = da * numeric
    work = np.full_like(z, np.nan)  # scratch contents must not matter
    act.backward(a, da, work)
    np.testing.assert_allclose(da, expected, rtol=1e-6, atol=1e-9)


def test_sigmoid_matches_logistic_formula():
    """sigmoid(z) equals 1 / (1 + exp(-z)) to 1e-15 relative for moderate z, negative ones included."""
    z = np.linspace(-20.0, 20.0, 4001)
    a = _forward(ACTIVATIONS["sigmoid"], z)
    expected = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(a, expected, rtol=1e-15, atol=0)


def test_sigmoid_float32_keeps_relative_precision():
    """In float32 the sigmoid of a negative input stays within a few float32 ulps of the exact value."""
    z = np.linspace(-30.0, 30.0, 601).astype(np.float32)
    a = z.copy()
    ACTIVATIONS["sigmoid"].forward(a)
    assert a.dtype == np.float32
    exact = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(a, exact, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_saturates_without_warning(dtype):
    """sigmoid(±1000) is 0 and 1 exactly, with no overflow warning."""
    z = np.array([-1000.0, -100.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        ACTIVATIONS["sigmoid"].forward(z)
    assert np.all(np.isfinite(z))
    assert z[0] == 0.0 and z[-1] == 1.0
    assert 0.0 <= z[1] < 1e-30 and z[2] == 1.0
