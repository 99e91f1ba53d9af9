"""Retest hyperparameters on fresh seeds, so that they don't go stale.

Hyperparameters found once may stop being good: the data grew or changed, the code changed, or
the recorded result was a lucky seed. ``retest`` retrains the same config on several fresh seeds
(fresh data draws, dev splits, initial weights and orders of examples), each for the same number
of updates, and compares the mean final dev cost with the recorded one:

    stale  ⇔  mean_dev_cost > recorded_dev_cost + 2 · max(std, 1e-3 · |recorded_dev_cost|)

with std the sample standard deviation (ddof = 1) of the final dev costs over the seeds that
finished. The 1e-3 relative floor keeps a spread that happens to be tiny from flagging noise. A
seed whose run diverges counts as failed; when fewer than half of the seeds finish, the
hyperparameters are stale whatever the costs of the rest.
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from babysit import checks
from babysit.config import RunConfig, is_finite_number
from babysit.errors import ConfigError
from babysit.trainer import Trainer

DEFAULT_EPOCHS = 20  # when neither a length nor a recorded step count is known, as ``babysit train``
SPREADS = 2.0  # how many standard deviations above the recorded cost is stale
RELATIVE_FLOOR = 1e-3  # the smallest spread used, relative to the recorded cost


@dataclass(frozen=True)
class Recorded:
    """The result the hyperparameters were chosen on: final cost and accuracy, and after how many updates."""

    cost: float
    accuracy: float = None
    step: int = None

    def to_dict(self):
        return {"cost": self.cost, "accuracy": self.accuracy, "step": self.step}

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


@dataclass(frozen=True)
class SeedResult:
    seed: int
    steps: int  # updates made
    epoch: int  # passes completed
    cost: float = None  # final dev cost (train cost when there is no dev set); None if failed
    accuracy: float = None
    train_cost: float = None
    train_accuracy: float = None
    failed: str = None  # why this seed's run stopped: it diverged
    curve: tuple = ()  # (step, cost) every eval_every updates, when asked for

    def to_dict(self):
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["curve"] = [list(point) for point in self.curve]
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "curve": tuple(tuple(point) for point in d.get("curve", ()))})


@dataclass(frozen=True)
class RetestResult:
    config: RunConfig  # the config retested (its own seed, not the fresh ones)
    steps: int  # the length of every retest run, in updates (None when given in epochs)
    epochs: int  # … or in passes over the training set
    measured_on: str  # "dev", or "train" when the config holds no dev set out
    seeds: tuple  # SeedResult, one per fresh seed
    mean_cost: float  # over the seeds that finished; None if none did
    std_cost: float  # sample standard deviation (ddof = 1); None with fewer than two finished seeds
    mean_accuracy: float
    std_accuracy: float
    recorded: Recorded  # None when nothing was recorded
    stale: bool  # None when there is nothing to compare with
    verdict: str  # one line for a human

    @property
    def failed(self):
        return tuple(s for s in self.seeds if s.failed)

    def to_dict(self):
        return {
            "config": self.config.to_dict(),
            "steps": self.steps,
            "epochs": self.epochs,
            "measured_on": self.measured_on,
            "seeds": [s.to_dict() for s in self.seeds],
            "mean_cost": self.mean_cost,
            "std_cost": self.std_cost,
            "mean_accuracy": self.mean_accuracy,
            "std_accuracy": self.std_accuracy,
            "recorded": None if self.recorded is None else self.recorded.to_dict(),
            "stale": self.stale,
            "verdict": self.verdict,
        }

    @classmethod
    def from_dict(cls, d):
        return cls(
            **{
                **d,
                "config": RunConfig.from_dict(d["config"]),
                "seeds": tuple(SeedResult.from_dict(s) for s in d["seeds"]),
                "recorded": None if d["recorded"] is None else Recorded.from_dict(d["recorded"]),
            }
        )


def fresh_seeds(config_seed, n, base_seed=None):
    """n distinct run seeds in [0, 2³²), none equal to ``config_seed``.

    The i-th is the first 32-bit word of the i-th child of np.random.SeedSequence(base_seed, or
    config_seed when None), skipping any word equal to config_seed or to an earlier seed.
    """
    root = np.random.SeedSequence(config_seed if base_seed is None else base_seed)
    seeds = []
    while len(seeds) < n:
        word = int(root.spawn(1)[0].generate_state(1, np.uint32)[0])
        if word != config_seed and word not in seeds:
            seeds.append(word)
    return seeds


def recorded_result(recorded, measured_on):
    """A Recorded from an Evaluation-like object or a dict (dev_cost, dev_accuracy, step), or None."""
    if recorded is None or isinstance(recorded, Recorded):
        return recorded

    def get(name):
        return recorded.get(name) if isinstance(recorded, dict) else getattr(recorded, name, None)

    cost = get(f"{measured_on}_cost")
    if not is_finite_number(cost):
        raise ConfigError(f"the recorded result has no {measured_on}_cost to compare with, got {cost!r}")
    step = get("step")
    step = int(step) if isinstance(step, numbers.Integral) and not isinstance(step, bool) and step > 0 else None
    return Recorded(float(cost), get(f"{measured_on}_accuracy"), step)


def is_stale(mean, std, recorded_cost):
    """mean > recorded + 2 · max(std, 1e-3 · |recorded|); a missing std (one seed) counts as 0."""
    spread = max(0.0 if std is None else std, RELATIVE_FLOOR * abs(recorded_cost))
    return mean > recorded_cost + SPREADS * spread


def retest(config, recorded, seeds=5, steps=None, epochs=None, base_seed=None, eval_every=None):
    """Retrain ``config`` on ``seeds`` fresh seeds and compare the final dev cost with ``recorded``.

    ``recorded`` is what the hyperparameters were chosen on: an object or dict with dev_cost and
    dev_accuracy (e.g. a babysit.trainer.Evaluation), or None. Every run replays the config's
    schedule of changes and makes the same number of updates: ``steps``, or ``epochs`` passes, or
    by default as many as the recorded result's ``step``, else 20 epochs. A config with
    dev_fraction 0 holds no dev set out: the final train cost and accuracy are compared instead
    (``measured_on`` says which). ``eval_every`` adds each run's cost every that many updates
    (``SeedResult.curve``).
    """
    measured_on = "dev" if config.data.dev_fraction > 0 else "train"
    recorded = recorded_result(recorded, measured_on)
    steps, epochs = _length(steps, epochs, recorded)
    checks.integer("seeds", seeds, 1)
    if eval_every is not None:
        checks.integer("eval_every", eval_every, 1)
    results = tuple(
        _train(config.replace(seed=seed), steps, epochs, measured_on, eval_every)
        for seed in fresh_seeds(config.seed, seeds, base_seed)
    )
    return summarize(config, results, recorded, steps, epochs, measured_on)


def _length(steps, epochs, recorded):
    if steps is not None and epochs is not None:
        raise ConfigError("give steps or epochs, not both")
    if steps is not None:
        return checks.integer("steps", steps, 1), None
    if epochs is not None:
        return None, checks.integer("epochs", epochs, 1)
    if recorded is not None and recorded.step:
        return recorded.step, None
    return None, DEFAULT_EPOCHS


def _train(config, steps, epochs, measured_on, eval_every):
    """One fresh run to its end; a divergence is this seed's failure, not an error."""
    trainer = Trainer(config)
    curve = []

    def failed(reason):
        return SeedResult(config.seed, trainer.step_count, trainer.epoch, failed=reason, curve=tuple(curve))

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging seed is a result
        while (trainer.step_count < steps) if steps else (trainer.epoch < epochs):
            record = trainer.step()
            if record.diverged:
                return failed(record.diverged)
            if eval_every and trainer.step_count % eval_every == 0:
                curve.append((trainer.step_count, _measured(trainer.evaluate(), measured_on)[0]))
        ev = trainer.evaluate()
    cost, accuracy = _measured(ev, measured_on)
    if not math.isfinite(cost):  # the last update broke the weights: no later step saw it
        return failed(f"the final {measured_on} cost is {cost}")
    return SeedResult(config.seed, trainer.step_count, trainer.epoch, cost, accuracy, ev.train_cost,
                      ev.train_accuracy, curve=tuple(curve))


def _measured(evaluation, measured_on):
    if measured_on == "dev":
        return evaluation.dev_cost, evaluation.dev_accuracy
    return evaluation.train_cost, evaluation.train_accuracy


def _mean_std(values):
    if not values:
        return None, None
    mean = float(np.mean(values))
    return mean, float(np.std(values, ddof=1)) if len(values) > 1 else None


def summarize(config, results, recorded, steps=None, epochs=None, measured_on="dev"):
    """The RetestResult of per-seed ``results``: means, sample stds, the stale rule and the verdict."""
    done = [r for r in results if not r.failed]
    mean_cost, std_cost = _mean_std([r.cost for r in done])
    mean_accuracy, std_accuracy = _mean_std([r.accuracy for r in done])
    too_many_failed = 2 * len(done) < len(results)
    if recorded is None:
        stale = None
    else:
        stale = too_many_failed or is_stale(mean_cost, std_cost, recorded.cost)
    verdict = _verdict(results, done, mean_cost, std_cost, recorded, stale, steps, epochs, measured_on)
    return RetestResult(config, steps, epochs, measured_on, tuple(results), mean_cost, std_cost, mean_accuracy,
                        std_accuracy, recorded, stale, verdict)


def _verdict(results, done, mean, std, recorded, stale, steps, epochs, measured_on):
    """e.g. "stale: fresh dev cost 0.41 ± 0.03 vs recorded 0.12 (5 seeds, 400 steps each)"."""
    length = f"{steps} steps" if steps else f"{epochs} epochs"
    failed = len(results) - len(done)
    tail = f"{len(results)} seeds, {length} each"
    if failed:
        tail += f"; {failed} diverged"
    if measured_on == "train":
        tail += "; no dev set, so train cost"
    if not done:
        head = "stale" if stale else "failed"
        return f"{head}: every fresh seed diverged ({tail})"
    fresh = f"fresh {measured_on} cost {mean:.3g}" + ("" if std is None else f" ± {std:.2g}")
    if recorded is None:
        return f"{fresh}, nothing recorded to compare with ({tail})"
    word = "stale" if stale else "holds"
    return f"{word}: {fresh} vs recorded {recorded.cost:.3g} ({tail})"
