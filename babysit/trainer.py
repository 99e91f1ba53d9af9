"""One model, trained one synchronous mini-batch update at a time.

``Trainer.step()`` makes exactly one update with the hyperparameters in force and returns its
record; nothing here knows about threads or pages. Hyperparameters may change between any two
steps (``set_hyperparams``), either by hand or from the config's ``schedule``, and the next update
reads them. Same seed, config and schedule of changes give bit-identical numbers: the run's
randomness comes from one ``np.random.SeedSequence(seed)`` split into three streams (the data,
the initial weights, the order of examples), and no other source is touched.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from babysit.datasets import load_dataset
from babysit.errors import ConfigError, DivergedError
from models.mlp import MLP
from models.optimizers import OPTIMIZERS
from models.schedules import alpha_at

MAX_PARAMETERS = 100_000_000  # 0.8 GB a copy in float64; gradients and the optimizer keep 2-4 more


class StepRecord(NamedTuple):  # a tuple, not a dataclass: one is made per step, and it must be cheap
    step: int  # this update's number, counted from 1
    epoch: int  # passes over the training set completed before this update
    examples_seen: int  # examples used by updates 1 … step
    alpha: float  # the rate in force for this update, after decay
    cost: float  # the mini-batch cost computed before this update
    batch_size: int
    changes: dict = {}  # {name: (old, new)} from the schedule, applied before it (never mutated)
    diverged: str = None  # why training cannot go on, when the cost or a weight is not finite


@dataclass(frozen=True)
class Evaluation:
    step: int  # measured after this many updates
    train_cost: float  # cross-entropy on the whole training set (no L2 term, so runs compare fairly)
    train_accuracy: float
    dev_cost: float = None  # None when there is no dev set
    dev_accuracy: float = None


def one_hot_rows(y, n_classes, dtype):
    """(m, C): row i is example i's one-hot label."""
    Y = np.zeros((y.size, n_classes), dtype)
    Y[np.arange(y.size), y] = 1
    return Y


def divergence_reason(cost, number, alpha, weights_finite):
    """Why training cannot go on when update ``number``'s cost came out non-finite."""
    if weights_finite:
        return f"the cost became {cost} at step {number} (alpha {alpha:.3g}); weights kept from step {number - 1}"
    return f"a weight became non-finite at the update of step {number - 1}"


TINY = np.finfo(np.float64).tiny  # the smallest probability a log is taken of


def cost_accuracy(P, y):
    """Mean cross-entropy and accuracy of class probabilities P (C, m) for labels y (m,)."""
    picked = P[y, np.arange(y.size)].astype(np.float64)
    cost = float(-np.log(np.maximum(picked, TINY)).mean())
    accuracy = float((P.argmax(axis=0) == y).mean())
    return cost, accuracy


class Trainer:
    def __init__(self, config, data=None):
        """``data`` (a Dataset) skips loading config.data: for benchmarks and tests."""
        self.config = config
        data_seq, init_seq, order_seq = np.random.SeedSequence(config.seed).spawn(3)
        self.data = data if data is not None else load_dataset(config.data, np.random.default_rng(data_seq))
        dtype = np.dtype(config.model.dtype)
        n_classes = self.data.n_classes
        # Examples are stored as rows, so gathering a mini-batch copies whole rows; the batch is then
        # seen through .T as (n_0, size), the course's layout, with no further copy.
        # The dev examples follow the training ones in the same array, so that an evaluation is one
        # forward pass over both.
        self.m = self.data.X_train.shape[1]
        rows = np.empty((self.m + self.data.X_dev.shape[1], self.data.n_features), dtype)  # C order: rows gather fast
        rows[: self.m], rows[self.m :] = self.data.X_train.T, self.data.X_dev.T
        self.X_rows = rows[: self.m]  # (m, n_0), contiguous
        self.Y_rows = one_hot_rows(self.data.y_train, n_classes, dtype)  # (m, C)
        self.X, self.Y = self.X_rows.T, self.Y_rows.T  # (n_0, m), (C, m) views
        self.X_dev = rows[self.m :].T
        self._X_all = rows.T
        sizes = (self.data.n_features, *config.model.layers, n_classes)
        n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))
        if n_params > MAX_PARAMETERS:  # numpy would fail to allocate them, or the machine run out of memory
            raise ConfigError(f"model.layers {list(config.model.layers)} on {self.data.n_features:,} features and "
                              f"{n_classes} classes make {n_params:,} weights and biases; at most "
                              f"{MAX_PARAMETERS:,} can be trained")
        self.model = MLP(sizes, config.model.activation, dtype)
        self.model.initialize(np.random.default_rng(init_seq))
        self.initial_weights = self.model.weights()
        self.rng = np.random.default_rng(order_seq)  # the order of examples, epoch after epoch
        self.hp = config.hyperparameters
        self.optimizer = OPTIMIZERS[self.hp.optimizer]()
        self.schedule = config.schedule
        self.step_count = 0  # updates made
        self.epoch = 0  # passes completed
        self.position = 0  # examples of the current pass already used
        self.examples_seen = 0
        self.order = None  # this pass's permutation of the training examples
        self._X_batch = self._Y_batch = None  # (size, n_0), (size, C): the current mini-batch's rows
        self.diverged = None

    # -- changing hyperparameters -----------------------------------------------------------------

    def set_hyperparams(self, **changes):
        """Apply validated changes before the next update; returns {name: (old, new)} of what changed.

        Switching optimizer starts the new one from fresh state (zero moments, t = 0): the old
        one's moments measure other quantities (momentum's v has no Adam bias correction to match).
        """
        new = self.hp.replace(**changes)
        diff = self.hp.diff(new)
        if "optimizer" in diff:
            self.optimizer = OPTIMIZERS[new.optimizer]()
        self.hp = new
        return diff

    def alpha_in_force(self):
        """The rate the next update will use: the base alpha after decay for the current epoch."""
        hp = self.hp
        return alpha_at(hp.decay_schedule, hp.alpha, self.epoch, hp.learning_rate_decay)

    # -- training ------------------------------------------------------------------------------------

    def _next_pass(self):
        self.order = self.rng.permutation(self.m)

    def batch(self, start, size):
        """Examples order[start : start + size] as (X (n_0, size), Y (C, size)), gathered into scratch."""
        if self._X_batch is None or self._X_batch.shape[0] < size:
            self._X_batch = np.empty((size, self.X_rows.shape[1]), self.X_rows.dtype)
            self._Y_batch = np.empty((size, self.Y_rows.shape[1]), self.Y_rows.dtype)
        X, Y = self._X_batch[:size], self._Y_batch[:size]
        rows = self.order[start : start + size]
        # mode="clip" skips the bounds check that makes np.take buffer its output (the indices are a permutation)
        np.take(self.X_rows, rows, axis=0, out=X, mode="clip")
        np.take(self.Y_rows, rows, axis=0, out=Y, mode="clip")
        return X.T, Y.T

    def _scheduled_changes(self, step):
        changes = {}
        for change in self.schedule:
            if change.step == step:
                for name, (old, new) in self.set_hyperparams(**change.set).items():
                    changes[name] = (changes[name][0], new) if name in changes else (old, new)
        return changes

    def step(self):
        """One mini-batch update with the hyperparameters in force; returns its StepRecord."""
        if self.diverged:
            raise DivergedError(self.diverged)
        number = self.step_count + 1
        changes = self._scheduled_changes(number) if self.schedule else {}
        if self.position == 0:
            self._next_pass()
        hp = self.hp
        start = self.position
        size = min(hp.mini_batch_size, self.m - start)
        alpha = alpha_at(hp.decay_schedule, hp.alpha, self.epoch, hp.learning_rate_decay)
        X, Y = self.batch(start, size)  # (n_0, size), (C, size)
        cost = self.model.cost_and_grad(X, Y, hp.lambd)
        if not math.isfinite(cost):
            # Nothing is trained through: this update is not made. Any non-finite weight reaches the cost
            # (nan and inf propagate through every layer), so checking the cost at each step catches a
            # weight gone bad at the previous update without a pass over the weights every step.
            self.diverged = divergence_reason(cost, number, alpha, self.weights_finite())
            return StepRecord(number, self.epoch, self.examples_seen + size, alpha, cost, size, changes,
                              self.diverged)
        self.optimizer.update(self.model.params, self.model.grads, alpha, hp)
        epoch = self.epoch
        self.step_count = number
        self.examples_seen += size
        self.position += size
        if self.position >= self.m:
            self.position = 0
            self.epoch += 1
        return StepRecord(number, epoch, self.examples_seen, alpha, cost, size, changes)

    def weights_finite(self):
        return math.isfinite(self.model.params.sum())

    # -- measuring -----------------------------------------------------------------------------------

    def evaluate(self):
        """Cost and accuracy on the whole training set and the dev set, with the current weights."""
        P = self.model.predict_proba(self._X_all)
        train_cost, train_accuracy = cost_accuracy(P[:, : self.m], self.data.y_train)
        dev = (None, None)
        if self.data.y_dev.size:
            dev = cost_accuracy(P[:, self.m :], self.data.y_dev)
        return Evaluation(self.step_count, train_cost, train_accuracy, *dev)

    def predict(self, X):
        """Class indices for examples as columns, in the training data's scale."""
        return self.model.predict_proba(np.asarray(X, self.model.dtype)).argmax(axis=0)

    # -- state --------------------------------------------------------------------------------------

    def state_dict(self):
        """Everything the next update depends on, as copies: restoring it continues bit for bit."""
        return {
            "step": self.step_count,
            "epoch": self.epoch,
            "position": self.position,
            "examples_seen": self.examples_seen,
            "params": self.model.params.copy(),
            "optimizer": self.hp.optimizer,
            "optimizer_state": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "order": None if self.order is None else self.order.copy(),
            "hyperparameters": self.hp.to_dict(),
        }

    def load_state_dict(self, state):
        from babysit.hyperparams import HyperParams

        if state["params"].shape != self.model.params.shape:
            raise ConfigError(f"checkpoint has {state['params'].size} parameters, this model {self.model.params.size}")
        self.hp = HyperParams(**state["hyperparameters"])
        self.model.params[...] = state["params"]
        self.optimizer = OPTIMIZERS[state["optimizer"]]()
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.rng.bit_generator.state = state["rng"]
        self.step_count = int(state["step"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.examples_seen = int(state["examples_seen"])
        self.order = None if state["order"] is None else np.array(state["order"])
        self.diverged = None
