"""The learning-rate range probe: the run untouched, the sweep, the smoothing, the stop and the suggestion."""

import json
import math
import warnings

import numpy as np
import pytest

from babysit.config import Change, DataConfig, ModelConfig, RunConfig
from babysit.errors import BabysitError, ConfigError
from babysit.hyperparams import HyperParams
from babysit.probe import ProbeResult, alpha_grid, lr_probe, suggest
from babysit.trainer import Trainer


def config(**hp):
    settings = {"optimizer": "adam", "alpha": 0.01, "mini_batch_size": 32}
    settings.update(hp)
    return RunConfig(
        seed=4,
        data=DataConfig(name="moons", n_samples=200, noise=0.2)._resolved(),
        model=ModelConfig(layers=(8,)),
        hyperparameters=HyperParams(**settings),
    )


def trained(cfg, steps=15):
    trainer = Trainer(cfg)
    for _ in range(steps):
        trainer.step()
    return trainer


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "params" or key == "order":
            np.testing.assert_array_equal(a[key], b[key])
        elif key == "optimizer_state":
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name], b[key][name])
        else:
            assert a[key] == b[key], key


def hand_smoothed(costs, beta):
    """avg_k = beta·avg_{k−1} + (1 − beta)·cost_k, divided by 1 − beta^(k+1)."""
    avg, out = 0.0, []
    for k, c in enumerate(costs, start=1):
        avg = beta * avg + (1 - beta) * c
        out.append(avg / (1 - beta**k))
    return out


class TestRunUntouched:
    @pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
    def test_state_bit_identical(self, optimizer):
        """Params, optimizer moments, rng, step and position are bit-identical before and after a probe."""
        trainer = trained(config(optimizer=optimizer))
        before = trainer.state_dict()
        lr_probe(trainer, steps=60)
        assert_same_state(before, trainer.state_dict())
        assert trainer.diverged is None

    def test_training_continues_identically(self):
        """The run's next updates after a probe are those it would have made without one."""
        a, b = trained(config()), trained(config())
        lr_probe(a, steps=40)
        for _ in range(10):
            assert a.step().cost == b.step().cost
        np.testing.assert_array_equal(a.model.params, b.model.params)


class TestSweep:
    def test_alpha_grid_formula(self):
        """alpha_k = start·(stop/start)^(k/(steps−1)), ending exactly at stop."""
        grid = alpha_grid(1e-6, 1.0, 7)
        expected = [1e-6 * (1e6) ** (k / 6) for k in range(7)]
        np.testing.assert_allclose(grid, expected, rtol=1e-13)
        assert grid[0] == 1e-6 and grid[-1] == 1.0

    def test_alphas_follow_the_grid(self):
        """The recorded alphas are the grid's first points, in order."""
        result = lr_probe(trained(config()), start=1e-5, stop=1.0, steps=30)
        n = len(result.alphas)
        expected = [1e-5 * (1e5) ** (k / 29) for k in range(n)]
        np.testing.assert_allclose(result.alphas, expected, rtol=1e-12)
        assert len(result.costs) == len(result.smoothed) == n

    def test_costs_replayed_by_hand(self):
        """Each cost is the next forward pass after an update with that exact alpha and no decay nor schedule."""
        cfg = config(decay_schedule="inverse_time", learning_rate_decay=5.0).replace(
            schedule=(Change(18, {"alpha": 0.5}),)
        )
        trainer = trained(cfg, steps=15)  # epoch 2: decay would divide alpha by 11
        result = lr_probe(trainer, start=1e-4, stop=1.0, steps=12)
        copy = Trainer(cfg.replace(schedule=()), data=trainer.data)
        copy.load_state_dict(trainer.state_dict())
        grid = [1e-4 * (1e4) ** (k / 11) for k in range(12)]
        copy.set_hyperparams(decay_schedule="none", alpha=grid[0])
        assert copy.step().cost == result.start_cost
        for k in range(6):
            copy.set_hyperparams(alpha=grid[k + 1])
            record = copy.step()
            assert record.alpha == grid[k + 1]
            assert record.cost == result.costs[k]

    def test_smoothing_formula(self):
        """smoothed is the bias-corrected exponentially weighted average of costs with beta = smoothing."""
        result = lr_probe(trained(config()), steps=50, smoothing=0.8)
        finite = [c for c in result.costs if math.isfinite(c)]
        np.testing.assert_allclose(result.smoothed[: len(finite)], hand_smoothed(finite, 0.8), rtol=1e-12)
        assert result.smoothing == 0.8

    def test_default_smoothing_is_0_9(self):
        """The default averaging weight is 0.9."""
        result = lr_probe(trained(config()), steps=20)
        assert result.smoothing == 0.9
        np.testing.assert_allclose(result.smoothed, hand_smoothed(result.costs, 0.9), rtol=1e-12)


class TestStop:
    def test_blowup_rule(self):
        """It stops at the first smoothed cost above blowup × the best before it, and not earlier."""
        result = lr_probe(trained(config(optimizer="rmsprop")), start=1e-5, stop=10.0, steps=100, blowup=2.0)
        s = result.smoothed
        assert result.stopped_early.startswith("blew up")
        assert len(s) < 100
        assert s[-1] > 2.0 * min(s[:-1])
        for k in range(1, len(s) - 1):
            assert s[k] <= 2.0 * min(s[:k])

    def test_diverged_copy_ends_the_probe(self):
        """Deep float32 gd on unscaled blobs at alpha ≥ 1 overflows: the probe ends there without raising."""
        cfg = RunConfig(
            seed=4,
            data=DataConfig(name="blobs", n_samples=200, noise=1.0, standardize=False)._resolved(),
            model=ModelConfig(layers=(32, 32, 32), dtype="float32"),
            hyperparameters=HyperParams(optimizer="gd", mini_batch_size=32),
        )
        trainer = trained(cfg, steps=5)
        before = trainer.state_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the overflow is expected: no RuntimeWarning escapes
            result = lr_probe(trainer, start=1.0, stop=10.0, steps=100, blowup=1e300)
        assert result.stopped_early.startswith("diverged")
        assert not math.isfinite(result.costs[-1])
        assert all(math.isfinite(c) for c in result.costs[:-1])
        assert_same_state(before, trainer.state_dict())
        json.dumps(result.to_dict(), allow_nan=False)

    def test_runs_through_when_nothing_blows_up(self):
        """With a tiny range nothing blows up: every alpha is probed and stopped_early is None."""
        result = lr_probe(trained(config()), start=1e-7, stop=1e-6, steps=25)
        assert result.stopped_early is None
        assert len(result.alphas) == 25
        assert result.alphas[-1] == 1e-6


class TestSuggestion:
    def test_tenth_of_the_best(self):
        """suggested = the alpha at the minimum smoothed cost / 10."""
        result = lr_probe(trained(config()), steps=80)
        best = int(np.argmin(result.smoothed))
        assert best > 0 and result.falls
        assert result.best_alpha == result.alphas[best]
        assert result.suggested_alpha == pytest.approx(result.alphas[best] / 10, rel=1e-15)

    def test_typical_suggestion_is_sensible(self):
        """From a young adam run on moons, the suggestion lies within 1e-4 … 1."""
        result = lr_probe(trained(config()), steps=100)
        assert 1e-4 < result.suggested_alpha < 1.0

    def test_never_falls(self):
        """A rising curve suggests the smallest alpha, with falls False and a note saying so."""
        alphas = [1e-3, 1e-2, 1e-1]
        assert suggest(alphas, [1.0, 1.5, 3.0], 1e-3) == (1e-3, 1e-3, False)

    def test_nothing_finite(self):
        """No finite smoothed cost: the smallest alpha, no best alpha."""
        assert suggest([1e-3], [math.inf], 1e-3) == (1e-3, None, False)

    def test_falling_curve(self):
        """The minimum at index 2 of [3, 2, 1, 5] gives alphas[2] / 10."""
        assert suggest([1.0, 2.0, 4.0, 8.0], [3.0, 2.0, 1.0, 5.0], 1.0) == (0.4, 4.0, True)

    def test_converged_run_reports_no_fall(self):
        """Full-batch adam trained near its minimum on noisy moons: alphas of 1 and more only make it worse."""
        cfg = RunConfig(
            seed=4,
            data=DataConfig(name="moons", n_samples=200, noise=0.45, dev_fraction=0.0)._resolved(),
            model=ModelConfig(layers=(8,)),
            hyperparameters=HyperParams(optimizer="adam", alpha=0.05, mini_batch_size=1000),
        )
        trainer = trained(cfg, steps=300)
        result = lr_probe(trainer, start=1.0, stop=10.0, steps=20)
        assert not result.falls
        assert result.suggested_alpha == 1.0
        assert "never fell" in result.note


class TestResult:
    def test_to_dict_is_json(self):
        """to_dict() holds every field and serialises as strict JSON."""
        result = lr_probe(trained(config()), steps=30)
        d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        assert set(d) == {f for f in ProbeResult.__dataclass_fields__}
        assert d["alphas"] == list(result.alphas)
        assert d["suggested_alpha"] == result.suggested_alpha
        assert d["from_step"] == 15

    def test_frozen(self):
        """A ProbeResult cannot be changed."""
        result = lr_probe(trained(config()), steps=10)
        with pytest.raises(AttributeError):
            result.suggested_alpha = 1.0


class TestRefused:
    @pytest.mark.parametrize(
        "kwargs, word",
        [
            ({"start": 1.0, "stop": 0.1}, "start must be below stop"),
            ({"stop": 20.0}, "stop must be in"),
            ({"start": 0.0}, "start must be in"),
            ({"steps": 1}, "steps must be an integer >= 2"),
            ({"blowup": 1.0}, "blowup must be in"),
            ({"smoothing": 1.0}, "smoothing must be in"),
        ],
    )
    def test_bad_arguments(self, kwargs, word):
        """Bad sweep settings raise ConfigError naming the setting."""
        with pytest.raises(ConfigError, match=word):
            lr_probe(trained(config(), steps=1), **kwargs)

    def test_diverged_run(self):
        """A run whose weights diverged cannot be probed: BabysitError says so."""
        trainer = trained(config(), steps=1)
        trainer.diverged = "a weight became non-finite at step 2"
        with pytest.raises(BabysitError, match="diverged"):
            lr_probe(trainer)
