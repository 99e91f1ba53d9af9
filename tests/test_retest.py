"""Retesting hyperparameters on fresh seeds: the seeds, the runs, the statistics, the stale rule, JSON."""

import json
import math

import numpy as np
import pytest

from babysit.config import DataConfig, ModelConfig, RunConfig
from babysit.errors import ConfigError
from babysit.hyperparams import HyperParams
from babysit.retest import Recorded, RetestResult, SeedResult, fresh_seeds, is_stale, retest, summarize
from babysit.trainer import Evaluation, Trainer

STEPS = 300


def moons(noise, seed=7, dev_fraction=0.2, **hp):
    settings = {"optimizer": "adam", "alpha": 0.02, "mini_batch_size": 32}
    settings.update(hp)
    return RunConfig(
        seed=seed,
        data=DataConfig(name="moons", n_samples=200, noise=noise, dev_fraction=dev_fraction)._resolved(),
        model=ModelConfig(layers=(8,)),
        hyperparameters=HyperParams(**settings),
    )


def final_evaluation(config, steps=STEPS):
    trainer = Trainer(config)
    for _ in range(steps):
        trainer.step()
    return trainer.evaluate()


@pytest.fixture(scope="module")
def noisy():
    """Moons with noise 0.45, its own recorded result, and a retest of it against that result."""
    config = moons(0.45)
    honest = final_evaluation(config)
    return config, honest, retest(config, honest)


class TestSeeds:
    def test_distinct_and_not_the_configs(self):
        """Fresh seeds are distinct 32-bit integers, none equal to the config's seed."""
        seeds = fresh_seeds(7, 20)
        assert len(set(seeds)) == 20
        assert 7 not in seeds
        assert all(0 <= s < 2**32 for s in seeds)

    def test_rule(self):
        """The i-th seed is the first uint32 word of the i-th child of SeedSequence(config seed)."""
        children = np.random.SeedSequence(7).spawn(3)
        assert fresh_seeds(7, 3) == [int(c.generate_state(1, np.uint32)[0]) for c in children]

    def test_base_seed(self):
        """base_seed replaces the config's seed as the root, and is reproducible."""
        assert fresh_seeds(7, 3, base_seed=11) == fresh_seeds(7, 3, base_seed=11)
        assert fresh_seeds(7, 3, base_seed=11) != fresh_seeds(7, 3)

    def test_collision_skipped(self):
        """A child whose word equals the config seed is skipped."""
        first = fresh_seeds(7, 1)[0]
        seeds = fresh_seeds(first, 3, base_seed=7)
        assert first not in seeds
        assert seeds[:2] == fresh_seeds(7, 3)[1:]

    def test_runs_use_the_fresh_seeds(self, noisy):
        """Each seed's figures are those of the config retrained on that seed."""
        config, honest, result = noisy
        assert [s.seed for s in result.seeds] == fresh_seeds(config.seed, 5)
        first = result.seeds[0]
        ev = final_evaluation(config.replace(seed=first.seed))
        assert (first.cost, first.accuracy) == (ev.dev_cost, ev.dev_accuracy)
        assert (first.train_cost, first.train_accuracy) == (ev.train_cost, ev.train_accuracy)


class TestStatistics:
    def test_mean_and_sample_std(self, noisy):
        """mean and std are Σx/n and sqrt(Σ(x − mean)² / (n − 1)) over the seeds' final dev figures."""
        _, _, result = noisy
        costs = [s.cost for s in result.seeds]
        accuracies = [s.accuracy for s in result.seeds]
        n = len(costs)
        mean = sum(costs) / n
        std = math.sqrt(sum((c - mean) ** 2 for c in costs) / (n - 1))
        assert result.mean_cost == pytest.approx(mean, rel=1e-12)
        assert result.std_cost == pytest.approx(std, rel=1e-12)
        mean_a = sum(accuracies) / n
        assert result.mean_accuracy == pytest.approx(mean_a, rel=1e-12)
        assert result.std_accuracy == pytest.approx(math.sqrt(sum((a - mean_a) ** 2 for a in accuracies) / (n - 1)))

    def test_length_defaults_to_recorded_step(self, noisy):
        """Without steps or epochs every run makes as many updates as the recorded result."""
        _, honest, result = noisy
        assert honest.step == STEPS
        assert result.steps == STEPS and result.epochs is None
        assert all(s.steps == STEPS for s in result.seeds)

    def test_epochs(self):
        """epochs=2 trains every seed for exactly two passes."""
        result = retest(moons(0.2), None, seeds=2, epochs=2)
        assert result.epochs == 2 and result.steps is None
        assert all(s.epoch == 2 for s in result.seeds)
        assert all(s.steps == 2 * math.ceil(160 / 32) for s in result.seeds)

    def test_default_twenty_epochs(self):
        """With nothing recorded and no length, each run is 20 epochs, as babysit train."""
        result = retest(moons(0.2, mini_batch_size=1000), None, seeds=2)
        assert result.epochs == 20
        assert all(s.epoch == 20 and s.steps == 20 for s in result.seeds)

    def test_curve(self):
        """eval_every records (step, dev cost) every that many updates."""
        result = retest(moons(0.2), None, seeds=2, steps=30, eval_every=10)
        assert [step for step, _ in result.seeds[0].curve] == [10, 20, 30]
        assert result.seeds[0].curve[-1][1] == result.seeds[0].cost


class TestStaleRule:
    def test_rule_by_hand(self):
        """recorded 0.12, std 0.01: stale above 0.12 + 2·0.01 = 0.14."""
        assert not is_stale(0.1399, 0.01, 0.12)
        assert is_stale(0.1401, 0.01, 0.12)

    def test_relative_floor(self):
        """A spread below 1e-3·|recorded| is raised to it: std 0 with recorded 2 gives 2 + 2·0.002."""
        assert not is_stale(2.0039, 0.0, 2.0)
        assert is_stale(2.0041, 0.0, 2.0)
        assert is_stale(2.0041, None, 2.0)

    def test_better_is_never_stale(self):
        """A fresh mean below the recorded cost is not stale, however small the spread."""
        assert not is_stale(0.05, 0.0, 0.12)

    def test_easier_data_recorded_is_stale(self, noisy):
        """Recorded on noise-free moons, retested on noise 0.45: stale, and the verdict says so."""
        config, _, _ = noisy
        easy = final_evaluation(moons(0.0))
        result = retest(config, easy)
        assert easy.dev_cost < 0.05
        assert result.stale is True
        assert result.mean_cost > easy.dev_cost + 2 * result.std_cost
        assert result.verdict.startswith(f"stale: fresh dev cost {result.mean_cost:.3g} ± ")
        assert f"vs recorded {easy.dev_cost:.3g}" in result.verdict

    def test_honest_recorded_holds(self, noisy):
        """The config's own result, retested on fresh seeds, is not stale."""
        _, honest, result = noisy
        assert result.stale is False
        assert result.mean_cost <= honest.dev_cost + 2 * result.std_cost
        assert result.verdict.startswith("holds: ")
        assert result.recorded == Recorded(honest.dev_cost, honest.dev_accuracy, STEPS)

    def test_recorded_as_dict(self, noisy):
        """A dict with dev_cost and dev_accuracy serves as the recorded result."""
        config, honest, result = noisy
        again = retest(config, {"dev_cost": honest.dev_cost, "dev_accuracy": honest.dev_accuracy, "step": STEPS})
        assert again == result

    def test_nothing_recorded(self):
        """recorded None: no stale flag, a verdict that says there is nothing to compare with."""
        result = retest(moons(0.2), None, seeds=2, steps=20)
        assert result.stale is None and result.recorded is None
        assert "nothing recorded" in result.verdict


class TestNoDevSet:
    def test_train_figures_used(self):
        """dev_fraction 0: the final train cost is compared with the recorded train cost, and said so."""
        config = moons(0.2, dev_fraction=0.0)
        recorded = final_evaluation(config, steps=100)
        assert recorded.dev_cost is None
        result = retest(config, recorded, seeds=3)
        assert result.measured_on == "train"
        assert all(s.cost == s.train_cost for s in result.seeds)
        assert result.recorded.cost == recorded.train_cost
        assert "no dev set, so train cost" in result.verdict

    def test_recorded_without_dev_cost_refused(self):
        """A config with a dev set and a recorded result without dev_cost is a ConfigError."""
        with pytest.raises(ConfigError, match="no dev_cost"):
            retest(moons(0.2), Evaluation(10, 0.3, 0.9), seeds=2)


class TestFailures:
    def test_diverging_seeds_are_failures(self):
        """Runs that overflow count as failed with their reason, and the hyperparameters are stale."""
        config = RunConfig(
            seed=4,
            data=DataConfig(name="blobs", n_samples=200, noise=1.0, standardize=False)._resolved(),
            model=ModelConfig(layers=(64, 64, 64, 64), dtype="float32"),
            hyperparameters=HyperParams(optimizer="gd", alpha=5.0, mini_batch_size=32),
        )
        result = retest(config, Recorded(0.1, 0.95, 50), seeds=3)
        assert len(result.failed) == 3
        assert all("non-finite" in s.failed or "cost became" in s.failed for s in result.seeds)
        assert result.mean_cost is None and result.stale is True
        assert result.verdict.startswith("stale: every fresh seed diverged")
        json.dumps(result.to_dict(), allow_nan=False)

    def test_some_failed(self):
        """Two of five failed: the statistics use the three that finished; fewer than half finishing is stale."""
        ok = [SeedResult(i, 10, 1, cost=c, accuracy=0.9) for i, c in enumerate([0.30, 0.32, 0.34])]
        bad = [SeedResult(9 + i, 4, 0, failed="the cost became nan at step 5") for i in range(2)]
        result = summarize(moons(0.2), ok + bad, Recorded(0.32), steps=10)
        assert result.mean_cost == pytest.approx(0.32)
        assert result.std_cost == pytest.approx(0.02)
        assert result.stale is False
        assert "2 diverged" in result.verdict
        worse = summarize(moons(0.2), ok[:2] + bad + bad[:1], Recorded(0.32), steps=10)
        assert worse.stale is True

    def test_one_finished_seed(self):
        """With one finished seed there is no std; the rule uses the relative floor alone."""
        result = summarize(moons(0.2), [SeedResult(1, 10, 1, cost=0.5, accuracy=0.8)], Recorded(0.4), steps=10)
        assert result.std_cost is None and result.stale is True
        assert "0.5 vs recorded 0.4" in result.verdict


class TestArguments:
    def test_steps_and_epochs_exclusive(self):
        """steps and epochs together are refused."""
        with pytest.raises(ConfigError, match="not both"):
            retest(moons(0.2), None, steps=10, epochs=1)

    @pytest.mark.parametrize("kwargs", [{"seeds": 0}, {"steps": 0}, {"epochs": 0}, {"eval_every": 0}])
    def test_non_positive(self, kwargs):
        """Zero seeds, steps, epochs or eval_every are refused by name."""
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            retest(moons(0.2), None, **kwargs)


class TestJson:
    def test_round_trip(self, noisy):
        """from_dict(json(to_dict())) gives back an equal result."""
        _, _, result = noisy
        text = json.dumps(result.to_dict(), allow_nan=False)
        assert RetestResult.from_dict(json.loads(text)) == result

    def test_round_trip_with_curve_and_failures(self):
        """Curves, failures, a missing std and a missing recorded survive the round trip."""
        seeds = [
            SeedResult(1, 20, 2, 0.3, 0.9, 0.28, 0.91, curve=((10, 0.5), (20, 0.3))),
            SeedResult(2, 5, 0, failed="a weight became non-finite at step 5 (alpha 5)"),
        ]
        result = summarize(moons(0.2), seeds, None, epochs=2)
        assert RetestResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
