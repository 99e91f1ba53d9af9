"""The MLP: gradients by central differences, the cost by hand, layout, initialisation, dtypes."""

import numpy as np
import pytest

from models.activations import ACTIVATIONS
from models.mlp import MLP

ACTIVATION_NAMES = sorted(ACTIVATIONS)
G = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}


def rel_error(a, b):
    """‖a − b‖ / (‖a‖ + ‖b‖), as in CS231n's gradient checks."""
    return np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))


def make_data(rng, n0, C, m, dtype=np.float64):
    """X (n0, m) and random one-hot Y (C, m), examples as columns."""
    X = rng.standard_normal((n0, m)).astype(dtype)
    Y = np.zeros((C, m), dtype)
    Y[rng.integers(0, C, m), np.arange(m)] = 1
    return X, Y


def make_net(sizes, activation, seed, bias_scale=0.5, dtype=np.float64):
    """An initialised net with non-zero random biases."""
    rng = np.random.default_rng(seed)
    mlp = MLP(sizes, activation, dtype=dtype)
    mlp.initialize(rng)
    for l in range(1, mlp.L + 1):
        mlp.b[l][...] = bias_scale * rng.standard_normal(mlp.b[l].shape)
    return mlp, rng


def reference_forward(W, b, X, activation):
    """Hidden pre-activations and output log-probabilities, with plain numpy (no models code)."""
    L = len(W)
    A, Z_hidden = X, []
    for l in range(1, L):
        Z = W[l] @ A + b[l]
        Z_hidden.append(Z)
        A = G[activation](Z)
    Z = W[L] @ A + b[L]
    Z = Z - Z.max(axis=0, keepdims=True)
    log_p = Z - np.log(np.exp(Z).sum(axis=0, keepdims=True))
    return Z_hidden, log_p


def reference_cost(W, b, X, Y, lambd, activation):
    """Softmax cross-entropy + lambd/(2m) Σ‖W‖²_F, biases unpenalised."""
    m = X.shape[1]
    _, log_p = reference_forward(W, b, X, activation)
    cross_entropy = -(Y * log_p).sum() / m
    l2 = lambd / (2 * m) * sum((w**2).sum() for w in W.values())
    return cross_entropy + l2


# -- gradients -------------------------------------------------------------------------------------

GRAD_CASES = [((3, 4, 5, 3), 3), ((2, 3, 2), 11), ((4, 3), 5)]


@pytest.mark.parametrize("lambd", [0.0, 0.7])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("sizes, seed", GRAD_CASES)
def test_gradient_matches_central_differences(sizes, seed, activation, lambd):
    """cost_and_grad's gradient agrees with central differences of cost over every parameter."""
    mlp, rng = make_net(sizes, activation, seed)
    X, Y = make_data(rng, sizes[0], sizes[-1], m=7)
    h = 1e-6
    # relu's kink: no hidden pre-activation may sit near 0, or a ±h step would cross it
    Z_hidden, _ = reference_forward(mlp.W, mlp.b, X, activation)
    if Z_hidden:
        assert min(np.abs(Z).min() for Z in Z_hidden) > 1e-4, "pick another seed"

    mlp.cost_and_grad(X, Y, lambd)
    analytic = mlp.grads.copy()
    numeric = np.empty_like(analytic)
    for i in range(mlp.params.size):
        saved = mlp.params[i]
        mlp.params[i] = saved + h
        plus = mlp.cost(X, Y, lambd)
        mlp.params[i] = saved - h
        minus = mlp.cost(X, Y, lambd)
        mlp.params[i] = saved
        numeric[i] = (plus - minus) / (2 * h)
    assert all(np.abs(mlp.db[l]).max() > 1e-3 for l in mlp.db)  # every layer's biases are exercised
    assert rel_error(analytic, numeric) < 1e-7


def test_cost_and_grad_returns_same_cost_as_cost():
    """cost_and_grad returns the value cost computes, and cost leaves grads alone."""
    mlp, rng = make_net((3, 4, 5, 3), "tanh", 0)
    X, Y = make_data(rng, 3, 3, 9)
    c1 = mlp.cost_and_grad(X, Y, 0.3)
    g = mlp.grads.copy()
    mlp.params[:] += 0.1
    c2 = mlp.cost(X, Y, 0.3)
    assert c2 != c1
    assert np.array_equal(mlp.grads, g)
    mlp.params[:] -= 0.1
    assert mlp.cost(X, Y, 0.3) == pytest.approx(c1, rel=1e-14)


# -- the cost by hand ------------------------------------------------------------------------------


@pytest.mark.parametrize("lambd", [0.0, 0.7])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("sizes", [(3, 4, 5, 3), (2, 3, 2), (4, 3)])
def test_cost_matches_hand_formula(sizes, activation, lambd):
    """mlp.cost equals softmax cross-entropy + lambd/(2m) Σ‖W‖² computed independently."""
    mlp, rng = make_net(sizes, activation, 7)
    X, Y = make_data(rng, sizes[0], sizes[-1], 6)
    expected = reference_cost(mlp.W, mlp.b, X, Y, lambd, activation)
    assert mlp.cost(X, Y, lambd) == pytest.approx(expected, rel=1e-12, abs=0)
    assert mlp.cost_and_grad(X, Y, lambd) == pytest.approx(expected, rel=1e-12, abs=0)


def test_biases_are_not_in_the_l2_term():
    """cost(lambd) − cost(0) is lambd/(2m) Σ‖W‖² whatever the biases are."""
    mlp, rng = make_net((3, 4, 5, 3), "tanh", 4)
    X, Y = make_data(rng, 3, 3, 8)
    lambd, m = 0.7, X.shape[1]
    l2 = lambd / (2 * m) * sum((mlp.W[l] ** 2).sum() for l in mlp.W)
    for scale in (0.0, 3.0):
        for l in mlp.b:
            mlp.b[l][...] = scale * rng.standard_normal(mlp.b[l].shape)
        assert mlp.cost(X, Y, lambd) - mlp.cost(X, Y, 0.0) == pytest.approx(l2, rel=1e-9)
        mlp.cost_and_grad(X, Y, lambd)
        db_reg = mlp.grads[mlp.n_weights :].copy()
        mlp.cost_and_grad(X, Y, 0.0)
        np.testing.assert_allclose(db_reg, mlp.grads[mlp.n_weights :], rtol=1e-14, atol=1e-16)


# -- layout ----------------------------------------------------------------------------------------


def test_shapes_and_flat_layout():
    """W_l is (n_l, n_{l-1}), b_l is (n_l, 1), weights first in params, views share its memory."""
    sizes = (3, 4, 5, 2)
    mlp, _ = make_net(sizes, "relu", 0)
    assert mlp.L == 3
    assert set(mlp.W) == set(mlp.b) == set(mlp.dW) == set(mlp.db) == {1, 2, 3}
    for l in range(1, 4):
        assert mlp.W[l].shape == mlp.dW[l].shape == (sizes[l], sizes[l - 1])
        assert mlp.b[l].shape == mlp.db[l].shape == (sizes[l], 1)
        assert np.shares_memory(mlp.W[l], mlp.params) and np.shares_memory(mlp.b[l], mlp.params)
        assert np.shares_memory(mlp.dW[l], mlp.grads) and np.shares_memory(mlp.db[l], mlp.grads)
    n_weights = 4 * 3 + 5 * 4 + 2 * 5
    assert mlp.n_weights == n_weights
    assert mlp.params.shape == mlp.grads.shape == (n_weights + 4 + 5 + 2,)
    np.testing.assert_array_equal(
        mlp.params[:n_weights], np.concatenate([mlp.W[l].ravel() for l in (1, 2, 3)])
    )
    np.testing.assert_array_equal(
        mlp.params[n_weights:], np.concatenate([mlp.b[l].ravel() for l in (1, 2, 3)])
    )
    mlp.params[:] = np.arange(mlp.params.size)  # writes through the flat buffer reach the views
    assert mlp.W[1][0, 0] == 0 and mlp.W[2][0, 0] == 12 and mlp.b[1][0, 0] == n_weights


def test_gradient_views_follow_flat_layout():
    """grads has the same layout as params: grads[:n_weights] is every dW concatenated."""
    mlp, rng = make_net((3, 4, 2), "tanh", 0)
    X, Y = make_data(rng, 3, 2, 5)
    mlp.cost_and_grad(X, Y, 0.2)
    flat = np.concatenate([mlp.dW[1].ravel(), mlp.dW[2].ravel(), mlp.db[1].ravel(), mlp.db[2].ravel()])
    np.testing.assert_array_equal(mlp.grads, flat)


# -- initialisation --------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_initialisation_scales(activation):
    """He sqrt(2/n_prev) before relu, Xavier sqrt(1/n_prev) before tanh/sigmoid and the softmax; b = 0."""
    mlp = MLP((500, 400, 300), activation)
    mlp.params[:] = 1.0  # initialize must overwrite everything, biases included
    mlp.initialize(np.random.default_rng(0))
    hidden_gain = 2.0 if activation == "relu" else 1.0
    assert ACTIVATIONS[activation].init == ("he" if activation == "relu" else "xavier")
    for l, gain in ((1, hidden_gain), (2, 1.0)):
        expected = np.sqrt(gain / mlp.sizes[l - 1])
        assert mlp.W[l].std() == pytest.approx(expected, rel=0.03)
        assert abs(mlp.W[l].mean()) < 0.03 * expected
        assert np.all(mlp.b[l] == 0.0)


def test_initialisation_is_reproducible_and_dtype_independent():
    """The same seed gives the same weights, and float32 gets the float64 draw rounded."""
    a = MLP((6, 5, 3), "relu")
    b = MLP((6, 5, 3), "relu")
    c = MLP((6, 5, 3), "relu", dtype=np.float32)
    for net in (a, b, c):
        net.initialize(np.random.default_rng(42))
    assert np.array_equal(a.params, b.params)
    assert np.array_equal(c.params, a.params.astype(np.float32))


# -- float32 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_float32_on_request(activation):
    """dtype=float32 keeps params, grads and outputs float32, and agrees with float64 loosely."""
    mlp32, rng = make_net((3, 4, 5, 3), activation, 1, dtype=np.float32)
    mlp64 = MLP((3, 4, 5, 3), activation)
    mlp64.params[:] = mlp32.params
    X, Y = make_data(rng, 3, 3, 10)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    cost = mlp32.cost_and_grad(X32, Y32, 0.5)
    assert np.isfinite(cost)
    assert mlp32.params.dtype == mlp32.grads.dtype == np.float32
    for l in range(1, mlp32.L + 1):
        assert mlp32.W[l].dtype == mlp32.b[l].dtype == mlp32.dW[l].dtype == mlp32.db[l].dtype == np.float32
    assert mlp32.forward(X32).dtype == np.float32
    assert mlp32.predict_proba(X32, chunk=4).dtype == np.float32
    assert cost == pytest.approx(mlp64.cost_and_grad(X, Y, 0.5), rel=1e-5)
    np.testing.assert_allclose(mlp32.grads, mlp64.grads, rtol=1e-3, atol=1e-5)


# -- prediction ------------------------------------------------------------------------------------


def test_predict_proba_sums_to_one_and_matches_forward_in_chunks():
    """predict_proba in chunks smaller than m equals one forward pass, columns summing to 1."""
    mlp, rng = make_net((3, 6, 4), "relu", 2)
    X, _ = make_data(rng, 3, 4, 23)
    full = mlp.forward(X).copy()
    _, log_p = reference_forward(mlp.W, mlp.b, X, "relu")
    np.testing.assert_allclose(full, np.exp(log_p), rtol=1e-12)
    for chunk in (5, 7, 23, 100):
        P = mlp.predict_proba(X, chunk=chunk)
        assert P.shape == (4, 23)
        np.testing.assert_allclose(P.sum(axis=0), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(P, full, rtol=1e-12, atol=1e-15)


def test_forward_handles_several_batch_sizes_in_turn():
    """Alternating batch sizes (scratch reuse and eviction) never mixes results up."""
    mlp, rng = make_net((3, 5, 2), "tanh", 3)
    batches = [make_data(rng, 3, 2, m)[0] for m in (4, 7, 1, 9, 3, 4, 7)]
    for X in batches:
        _, log_p = reference_forward(mlp.W, mlp.b, X, "tanh")
        np.testing.assert_allclose(mlp.forward(X), np.exp(log_p), rtol=1e-12)


# -- numerical safety ------------------------------------------------------------------------------


def test_huge_logits_give_finite_cost_and_gradient():
    """Weights ×1e4 make logits ~1e4; the log-sum-exp shift keeps cost and gradient finite."""
    mlp, rng = make_net((3, 4, 3), "tanh", 5)
    X, Y = make_data(rng, 3, 3, 8)
    mlp.params[: mlp.n_weights] *= 1e4
    cost = mlp.cost_and_grad(X, Y, 0.1)
    assert np.isfinite(cost) and cost > 0
    assert np.all(np.isfinite(mlp.grads))
    P = mlp.forward(X)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=0), 1.0, atol=1e-12)
    assert cost == pytest.approx(reference_cost(mlp.W, mlp.b, X, Y, 0.1, "tanh"), rel=1e-9)


# -- weights() / load_weights() --------------------------------------------------------------------


def test_weights_round_trip():
    """weights() returns copies keyed W1, b1, …; load_weights restores them into another net."""
    src, rng = make_net((3, 4, 5, 2), "relu", 6)
    arrays = src.weights()
    assert set(arrays) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    for l in range(1, 4):
        assert not np.shares_memory(arrays[f"W{l}"], src.params)
    arrays["W1"][0, 0] += 1.0
    assert src.W[1][0, 0] != arrays["W1"][0, 0]
    arrays["W1"][0, 0] -= 1.0
    dst = MLP((3, 4, 5, 2), "relu")
    dst.load_weights(arrays)
    assert np.array_equal(dst.params, src.params)
    X, _ = make_data(rng, 3, 2, 5)
    assert np.array_equal(dst.forward(X), src.forward(X))


def test_load_weights_rejects_wrong_shape():
    """A weight of the wrong shape raises ValueError."""
    src, _ = make_net((3, 4, 2), "relu", 0)
    dst = MLP((3, 4, 2), "relu")
    arrays = src.weights()
    arrays["W2"] = arrays["W2"].T
    with pytest.raises(ValueError, match="W2"):
        dst.load_weights(arrays)
    arrays = src.weights()
    arrays["b1"] = arrays["b1"].ravel()
    with pytest.raises(ValueError, match="b1"):
        dst.load_weights(arrays)
