"""The hyperparameters that may change between any two training steps.

A frozen dataclass validated when built: a live change is ``hp.replace(alpha=0.003)``, which
validates the result as a whole (the decay rate's range depends on the schedule). The layer sizes
and activation are fixed for a run and live in ``ModelConfig``; L = len(layers) + 1.
"""

import dataclasses
import math
from dataclasses import dataclass

from babysit import checks
from babysit.errors import ConfigError
from models.optimizers import OPTIMIZERS
from models.schedules import MULTIPLICATIVE, SCHEDULES


@dataclass(frozen=True)
class HyperParams:
    optimizer: str = "adam"  # gd, momentum, rmsprop or adam
    alpha: float = 0.01  # base learning rate, before decay
    beta: float = 0.9  # momentum's averaging weight: ≈ the last 1/(1-beta) gradients
    beta1: float = 0.9  # Adam's first-moment weight
    beta2: float = 0.999  # Adam's and RMSprop's second-moment weight
    epsilon: float = 1e-8  # Adam's and RMSprop's guard against dividing by zero
    mini_batch_size: int = 64  # examples per update; larger than the training set means full batch
    learning_rate_decay: float = 0.0  # the decay schedule's rate
    decay_schedule: str = "inverse_time"  # inverse_time, exponential, staircase or none
    lambd: float = 0.0  # L2 strength: cost += lambd / (2m) · Σ‖W‖²

    def __post_init__(self):
        multiplicative = isinstance(self.decay_schedule, str) and self.decay_schedule in MULTIPLICATIVE
        values = checks.collect(
            [
                ("optimizer", lambda: checks.choice("optimizer", self.optimizer, list(OPTIMIZERS))),
                ("alpha", lambda: checks.number("alpha", self.alpha, 0, 10, lo_open=True)),
                ("beta", lambda: checks.number("beta", self.beta, 0, 1, hi_open=True)),
                ("beta1", lambda: checks.number("beta1", self.beta1, 0, 1, hi_open=True)),
                ("beta2", lambda: checks.number("beta2", self.beta2, 0, 1, hi_open=True)),
                ("epsilon", lambda: checks.number("epsilon", self.epsilon, 0, 1, lo_open=True)),
                ("mini_batch_size", lambda: checks.integer("mini_batch_size", self.mini_batch_size, 1)),
                (
                    "decay_schedule",
                    lambda: checks.choice("decay_schedule", self.decay_schedule, list(SCHEDULES)),
                ),
                (
                    "learning_rate_decay",
                    lambda: (
                        checks.number(
                            f"learning_rate_decay (for the {self.decay_schedule} schedule)",
                            self.learning_rate_decay, 0, 1, lo_open=True,
                        )
                        if multiplicative
                        else checks.number("learning_rate_decay", self.learning_rate_decay, 0, math.inf)
                    ),
                ),
                ("lambd", lambda: checks.number("lambd", self.lambd, 0, math.inf)),
            ]
        )
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def replace(self, **changes):
        """A validated copy with ``changes`` applied; unknown names are refused."""
        problems = checks.unknown_keys("", changes, FIELDS)
        if problems:
            raise ConfigError(problems)
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    def diff(self, other):
        """{name: (self's value, other's value)} for every field that differs."""
        return {
            f: (getattr(self, f), getattr(other, f)) for f in FIELDS if getattr(self, f) != getattr(other, f)
        }


FIELDS = tuple(f.name for f in dataclasses.fields(HyperParams))


def averaging_window(beta):
    """How many recent values an exponentially weighted average with weight beta mostly covers."""
    return math.inf if beta >= 1 else 1.0 / (1.0 - beta)
