"""The four optimizers: each step against its formula by hand, live changes, checkpoints, a contract."""

from types import SimpleNamespace

import numpy as np
import pytest

from models.mlp import MLP
from models.optimizers import OPTIMIZERS

N = 12  # size of the flat parameter buffer in the formula tests


def hp_(**changes):
    """Hyperparameters as the optimizers read them: any object with these attributes."""
    values = {"beta": 0.8, "beta1": 0.85, "beta2": 0.995, "epsilon": 1e-3}
    values.update(changes)
    return SimpleNamespace(**values)


def reference_step(name, W, dW, state, alpha, hp):
    """One update written out by hand; returns new (W, state). ``state`` holds t, v, s."""
    t = state["t"] + 1
    v, s = state.get("v"), state.get("s")
    if name == "gd":
        W = W - alpha * dW
    elif name == "momentum":
        v = hp.beta * v + (1 - hp.beta) * dW
        W = W - alpha * v
    elif name == "rmsprop":
        s = hp.beta2 * s + (1 - hp.beta2) * dW**2
        W = W - alpha * dW / (np.sqrt(s) + hp.epsilon)
    elif name == "adam":
        v = hp.beta1 * v + (1 - hp.beta1) * dW
        s = hp.beta2 * s + (1 - hp.beta2) * dW**2
        v_hat = v / (1 - hp.beta1**t)
        s_hat = s / (1 - hp.beta2**t)
        W = W - alpha * v_hat / (np.sqrt(s_hat) + hp.epsilon)
    else:
        raise AssertionError(name)
    new = {"t": t}
    if v is not None:
        new["v"] = v
    if s is not None:
        new["s"] = s
    return W, new


def injected_state(name, rng, t):
    """Non-zero moments for the optimizer's state_names, at step count t."""
    state = {"t": t}
    if name in ("momentum", "adam"):
        state["v"] = 0.1 * rng.standard_normal(N)
    if name in ("rmsprop", "adam"):
        state["s"] = 1e-4 * rng.uniform(0.1, 2.0, N)
    return state


def gradients(rng):
    """Gradients spanning several magnitudes, so epsilon and the bias corrections matter."""
    return rng.standard_normal(N) * np.logspace(-4, 0, N)


def assert_matches(opt, params, W_ref, state_ref):
    np.testing.assert_allclose(params, W_ref, rtol=1e-12, atol=0)
    assert opt.t == state_ref["t"]
    for key in ("v", "s"):
        if key in state_ref:
            np.testing.assert_allclose(getattr(opt, key), state_ref[key], rtol=1e-12, atol=0)


def test_registry():
    """OPTIMIZERS holds the course's four, keyed by their names."""
    assert set(OPTIMIZERS) == {"gd", "momentum", "rmsprop", "adam"}
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name


@pytest.mark.parametrize("t0", [0, 5])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_two_steps_match_formula_with_injected_state(name, t0):
    """Two consecutive updates from injected non-zero state match the formulas (t0=0 covers t=1, 2)."""
    rng = np.random.default_rng(10 + t0)
    opt = OPTIMIZERS[name]()
    state = injected_state(name, rng, t0)
    opt.load_state_dict(state)
    params = rng.standard_normal(N)
    W_ref = params.copy()
    hp = hp_()
    for alpha in (0.05, 0.02):
        dW = gradients(rng)
        W_ref, state = reference_step(name, W_ref, dW, state, alpha, hp)
        opt.update(params, dW, alpha, hp)
        assert_matches(opt, params, W_ref, state)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fresh_optimizer_starts_from_zero_moments(name):
    """A new optimizer's first two updates match the formulas with v = s = 0 and t = 0."""
    rng = np.random.default_rng(3)
    opt = OPTIMIZERS[name]()
    state = {"t": 0, "v": np.zeros(N), "s": np.zeros(N)}
    params = rng.standard_normal(N)
    W_ref = params.copy()
    hp = hp_()
    for alpha in (0.1, 0.1):
        dW = gradients(rng)
        W_ref, state = reference_step(name, W_ref, dW, state, alpha, hp)
        opt.update(params, dW, alpha, hp)
        np.testing.assert_allclose(params, W_ref, rtol=1e-12, atol=0)
    assert opt.t == 2


def test_adam_bias_correction_uses_update_count():
    """Adam's first step from zero state moves each parameter by about alpha·sign(dW)."""
    opt = OPTIMIZERS["adam"]()
    params = np.zeros(N)
    dW = gradients(np.random.default_rng(0))
    opt.update(params, dW, 0.01, hp_(epsilon=1e-12))
    np.testing.assert_allclose(params, -0.01 * np.sign(dW), rtol=1e-6)


CHANGES = {
    "gd": {},
    "momentum": {"beta": 0.5},
    "rmsprop": {"beta2": 0.9, "epsilon": 1e-2},
    "adam": {"beta1": 0.6, "beta2": 0.9, "epsilon": 1e-2},
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_hyperparameter_change_applies_at_next_update(name):
    """A hyperparameter (and alpha) changed between two updates is used by the very next one."""
    rng = np.random.default_rng(21)
    opt = OPTIMIZERS[name]()
    state = injected_state(name, rng, 0)
    opt.load_state_dict(state)
    params = rng.standard_normal(N)
    W_ref = params.copy()
    for alpha, hp in ((0.05, hp_()), (0.3, hp_(**CHANGES[name]))):
        dW = gradients(rng)
        W_ref, state = reference_step(name, W_ref, dW, state, alpha, hp)
        opt.update(params, dW, alpha, hp)
        assert_matches(opt, params, W_ref, state)


def test_adam_beta1_change_differs_from_old_value():
    """Changing beta1 before step 2 really changes step 2 (the test above can tell them apart)."""
    runs = []
    for beta1_second in (0.85, 0.6):
        opt = OPTIMIZERS["adam"]()
        params = np.ones(N)
        rng = np.random.default_rng(5)
        opt.update(params, gradients(rng), 0.01, hp_())
        opt.update(params, gradients(rng), 0.01, hp_(beta1=beta1_second))
        runs.append(params)
    assert not np.allclose(runs[0], runs[1], rtol=1e-6, atol=0)


def _run(opt, params, grads_seq, hp):
    out = []
    for alpha, dW in grads_seq:
        opt.update(params, dW, alpha, hp)
        out.append(params.copy())
    return out


@pytest.mark.parametrize("fresh", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name, fresh):
    """Resuming from state_dict (after 0 or 3 updates) gives bit-for-bit the same continued updates."""
    rng = np.random.default_rng(7)
    hp = hp_()
    seq = [(0.02, gradients(rng)) for _ in range(6)]
    a = OPTIMIZERS[name]()
    params = rng.standard_normal(N)
    if not fresh:
        _run(a, params, seq[:3], hp)
    snapshot, params_at_snapshot = a.state_dict(), params.copy()
    assert snapshot["t"] == (0 if fresh else 3)
    continued = _run(a, params, seq[3:], hp)  # must not disturb the snapshot
    b = OPTIMIZERS[name]()
    b.load_state_dict(snapshot)
    for key in ("v", "s"):  # load_state_dict keeps its own copies
        if snapshot.get(key) is not None:
            snapshot[key][:] = np.nan
    resumed = _run(b, params_at_snapshot.copy(), seq[3:], hp)
    for x, y in zip(continued, resumed, strict=True):
        assert np.array_equal(x, y)
    assert a.t == b.t == (3 if fresh else 6)


# -- one contract, every implementation ------------------------------------------------------------

ALPHA = {"gd": 0.5, "momentum": 0.5, "rmsprop": 0.01, "adam": 0.02}


def separable_problem(rng, m=60):
    """Two Gaussian blobs in 2-D, far apart: linearly separable."""
    labels = rng.integers(0, 2, m)
    X = rng.standard_normal((2, m)) * 0.5 + np.where(labels == 1, 2.0, -2.0)
    Y = np.zeros((2, m))
    Y[labels, np.arange(m)] = 1
    return X, Y


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
class TestOptimizerContract:
    def test_reduces_cost_of_tiny_mlp(self, name):
        """200 full-batch steps cut the cost of a tiny MLP on a separable problem at least tenfold."""
        rng = np.random.default_rng(0)
        mlp = MLP((2, 8, 2), "tanh")
        mlp.initialize(rng)
        X, Y = separable_problem(rng)
        opt, hp = OPTIMIZERS[name](), hp_(beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8)
        start = mlp.cost(X, Y)
        for _ in range(200):
            mlp.cost_and_grad(X, Y, 0.0)
            opt.update(mlp.params, mlp.grads, ALPHA[name], hp)
        end = mlp.cost(X, Y)
        assert np.isfinite(end)
        assert end < 0.1 * start
        predictions = mlp.predict_proba(X).argmax(axis=0)
        assert np.mean(predictions == Y.argmax(axis=0)) == 1.0

    def test_preserves_float32(self, name):
        """Updating float32 buffers keeps them (and the moments) float32, even with float64 hyperparams."""
        rng = np.random.default_rng(1)
        params = rng.standard_normal(N).astype(np.float32)
        before = params.copy()
        opt = OPTIMIZERS[name]()
        hp = SimpleNamespace(**{k: np.float64(v) for k, v in vars(hp_()).items()})
        for _ in range(2):
            opt.update(params, gradients(rng).astype(np.float32), np.float64(0.01), hp)
        assert params.dtype == np.float32
        assert not np.array_equal(params, before)
        for key in opt.state_names:
            assert getattr(opt, key).dtype == np.float32

    def test_updates_in_place(self, name):
        """update writes into the given buffer, so the network's views see the new weights."""
        rng = np.random.default_rng(2)
        mlp = MLP((2, 3, 2), "relu")
        mlp.initialize(rng)
        X, Y = separable_problem(rng, 10)
        W1 = mlp.W[1].copy()
        buffer = mlp.params
        mlp.cost_and_grad(X, Y)
        OPTIMIZERS[name]().update(mlp.params, mlp.grads, 0.1, hp_())
        assert mlp.params is buffer
        assert not np.array_equal(mlp.W[1], W1)

    def test_zero_gradient_from_fresh_state_changes_nothing(self, name):
        """With no state yet and a zero gradient, every optimizer leaves the parameters alone."""
        params = np.arange(N, dtype=np.float64)
        OPTIMIZERS[name]().update(params, np.zeros(N), 0.1, hp_())
        assert np.array_equal(params, np.arange(N, dtype=np.float64))
