"""K trials of one study trained as one stacked computation, each exactly as a lone Trainer.

Trials stack when they share ``group_key``: the seed (hence the data set, the dev split, the initial
weights and the order of examples, all drawn from it), the data and model configs (layers,
activation, dtype), the optimizer and the mini-batch size, and the steps at which their schedules
change those two. Every mini-batch is then the same for all trials: it is gathered once, and the
trials differ only in their per-trial hyperparameters (alpha, beta, beta1, beta2, epsilon,
learning_rate_decay, decay_schedule, lambd), which the stack holds as vectors.

Trial k's numbers are those of ``Trainer(configs[k])`` stepped alone, bit for bit (see
models/stacked.py for why): its costs, rates and parameters, its evaluations, and its
``state_dicts()[k]``, which is in ``Trainer.state_dict()``'s format, so that
``Trainer(configs[k]).load_state_dict(state)`` continues the trial alone.

Scheduled changes (``config.schedule``) apply per trial at their step, as ``Trainer`` applies them.
A schedule may change optimizer or mini_batch_size only at the same steps to the same values in
every trial of a stack (``group_key`` holds those entries); a switch of optimizer starts every trial
on fresh moments, as ``Trainer.set_hyperparams`` does.

A trial whose cost becomes non-finite is frozen: no update is made to it, from that step on (as a
lone Trainer, which refuses to step on), and its record's ``diverged`` says why, in Trainer's words;
the others go on. A frozen trial leaves the stack (the others are compacted into a smaller one, so
it costs nothing further); its state and evaluation stay those of the step before it diverged.
"""

import math
from typing import NamedTuple

import numpy as np

from babysit.datasets import load_dataset
from babysit.errors import ConfigError, DivergedError
from babysit.hyperparams import HyperParams
from babysit.trainer import Evaluation, Trainer, cost_accuracy, divergence_reason, one_hot_rows
from models.mlp import MLP
from models.schedules import alpha_at
from models.stacked import STACKED_OPTIMIZERS, StackedHyperParams, StackedMLP, StackedRates

SHARED_HYPERPARAMETERS = ("optimizer", "mini_batch_size")  # the rest are per trial
KEY_FIELDS = ("seed", "data", "model", "optimizer", "mini_batch_size", "schedule of optimizer / mini_batch_size")


def group_key(config):
    """What trials must share to train as one stack (hashable): seed, data, model, optimizer,
    mini_batch_size and the schedule's changes to those two (step, values)."""
    hp = config.hyperparameters
    shared_changes = tuple(
        (change.step, tuple(sorted((k, v) for k, v in change.set.items() if k in SHARED_HYPERPARAMETERS)))
        for change in config.schedule
        if any(k in SHARED_HYPERPARAMETERS for k in change.set)
    )
    return (config.seed, config.data, config.model, hp.optimizer, hp.mini_batch_size, shared_changes)


def check_group(configs):
    """Raise ConfigError, one line per trial that cannot join configs[0]'s stack, naming what differs."""
    if not configs:
        raise ConfigError("a stack needs at least one config")
    first = group_key(configs[0])
    problems = []
    for i, config in enumerate(configs[1:], start=1):
        key = group_key(config)
        if key != first:
            differ = [name for name, a, b in zip(KEY_FIELDS, first, key, strict=True) if a != b]
            problems.append(f"config {i} cannot share a stack with config 0: its {', '.join(differ)} differ")
    if problems:
        raise ConfigError(problems)


class StackedStepRecord(NamedTuple):
    step: int  # this update's number, counted from 1
    epoch: int  # passes over the training set completed before this update
    examples_seen: int  # examples used by updates 1 … step
    batch_size: int
    alpha: np.ndarray  # (K,) each trial's rate for this update after decay; nan for trials frozen earlier
    cost: np.ndarray  # (K,) float64 mini-batch costs before this update; nan for trials frozen earlier
    diverged: tuple  # per trial: None, or why it stopped (at this step or an earlier one)
    changes: tuple  # per trial: {name: (old, new)} from its schedule, applied before this update


class StackedTrainer:
    def __init__(self, configs, data=None):
        """Trials ``configs`` (sharing ``group_key``); ``data`` (a Dataset) skips loading it, as in Trainer."""
        configs = tuple(configs)
        check_group(configs)
        self.configs = configs
        self.K = len(configs)
        base = configs[0]
        data_seq, init_seq, order_seq = np.random.SeedSequence(base.seed).spawn(3)
        self.data = data if data is not None else load_dataset(base.data, np.random.default_rng(data_seq))
        dtype = self.dtype = np.dtype(base.model.dtype)
        n_classes = self.data.n_classes
        self.X_rows = np.ascontiguousarray(self.data.X_train.T, dtype)  # (m, n_0)
        self.Y_rows = one_hot_rows(self.data.y_train, n_classes, dtype)  # (m, C)
        self.X, self.Y = self.X_rows.T, self.Y_rows.T
        self.X_dev = np.ascontiguousarray(self.data.X_dev.T, dtype).T
        self.m = self.X_rows.shape[0]
        self.sizes = (self.data.n_features, *base.model.layers, n_classes)
        self.activation = base.model.activation
        # one initialisation from the shared init stream, copied into every trial: each trial starts
        # where its lone Trainer starts
        lone = MLP(self.sizes, self.activation, dtype)
        lone.initialize(np.random.default_rng(init_seq))
        self.initial_weights = lone.weights()
        self._lone = lone  # scratch for evaluating frozen trials
        self.model = StackedMLP(self.K, self.sizes, self.activation, dtype)
        self.model.params[...] = lone.params
        self.rng = np.random.default_rng(order_seq)
        self.hps = [c.hyperparameters for c in configs]  # each trial's hyperparameters in force
        self.optimizer = STACKED_OPTIMIZERS[base.hyperparameters.optimizer]()
        self._change_steps = {c.step for config in configs for c in config.schedule}
        self.step_count = 0
        self.epoch = 0
        self.position = 0
        self.examples_seen = 0
        self.order = None
        self._X_batch = self._Y_batch = None
        self.diverged = [None] * self.K  # per trial: why it was frozen
        self.live = np.arange(self.K)  # the trials still in the stack, in stack order (row i is trial live[i])
        self._frozen = {}  # trial -> its state_dict when it was frozen
        self._no_changes = ({},) * self.K  # shared and never mutated, like StepRecord's default
        self._invalidate()

    # -- per-trial hyperparameters -------------------------------------------------------------------

    def _invalidate(self):
        """The hyperparameters or the set of live trials changed: rebuild the vectors when next needed."""
        self._stack_hp = None
        self._rates_epoch = None

    def _hp(self):
        if self._stack_hp is None:
            self._stack_hp = StackedHyperParams([self.hps[k] for k in self.live], self.dtype, self.model.n_params)
        return self._stack_hp

    def _rates(self):
        """(every trial's alpha for this epoch as (K,) float64, with nan for frozen trials; StackedRates of
        the live ones), recomputed when the epoch or the hyperparameters change."""
        if self._rates_epoch != self.epoch:
            alphas = np.full(self.K, np.nan)
            values = []
            for k in self.live:
                hp = self.hps[k]
                values.append(alpha_at(hp.decay_schedule, hp.alpha, self.epoch, hp.learning_rate_decay))
            alphas[self.live] = values
            self._alphas, self._stack_rates = alphas, StackedRates(values, self.dtype, self.model.n_params)
            self._rates_epoch = self.epoch
        return self._alphas, self._stack_rates

    def alpha_in_force(self):
        """(K,) the rate each trial's next update will use (nan for frozen trials)."""
        return self._rates()[0].copy()

    @property
    def active(self):
        """(K,) bool: which trials still train (not frozen by divergence)."""
        return np.array([reason is None for reason in self.diverged])

    def _scheduled_changes(self, step):
        """Apply each live trial's schedule entries for ``step``, as Trainer does; per-trial changes."""
        per_trial = list(self._no_changes)
        fresh = set()
        for k in self.live:
            changes = {}
            for change in self.configs[k].schedule:
                if change.step == step:
                    new = self.hps[k].replace(**change.set)
                    diff = self.hps[k].diff(new)
                    if "optimizer" in diff:
                        fresh.add(k)
                    self.hps[k] = new
                    for name, (old, value) in diff.items():
                        changes[name] = (changes[name][0], value) if name in changes else (old, value)
            if changes:
                per_trial[k] = changes
        live_hps = [self.hps[k] for k in self.live]
        if len({(hp.optimizer, hp.mini_batch_size) for hp in live_hps}) > 1 or fresh not in (set(), set(self.live)):
            raise ConfigError(
                f"at step {step} the schedules left the trials of a stack with different optimizers or mini-batch sizes"
            )
        if fresh:  # a switch of optimizer starts from fresh state, as Trainer.set_hyperparams
            self.optimizer = STACKED_OPTIMIZERS[live_hps[0].optimizer]()
        if any(per_trial):
            self._invalidate()
        return tuple(per_trial)

    # -- training -----------------------------------------------------------------------------------

    # the same examples in the same order as a lone Trainer: its own pass and batch code, on the same
    # attributes (order, rng, m, X_rows, Y_rows and the batch scratch)
    _next_pass = Trainer._next_pass
    batch = Trainer.batch

    def step(self):
        """One mini-batch update of every live trial; returns its StackedStepRecord."""
        if not len(self.live):
            raise DivergedError("every trial of the stack diverged")
        number = self.step_count + 1
        changes = self._scheduled_changes(number) if number in self._change_steps else self._no_changes
        if self.position == 0:
            self._next_pass()
        start = self.position
        size = min(self.hps[self.live[0]].mini_batch_size, self.m - start)
        alphas, rates = self._rates()
        record_alphas = alphas.copy()
        hp = self._hp()
        X, Y = self.batch(start, size)
        live_costs = self.model.cost_and_grad(X, Y, hp.lambd)
        cost = np.full(self.K, np.nan)
        cost[self.live] = live_costs
        if not np.isfinite(live_costs).all():
            self._freeze(np.flatnonzero(~np.isfinite(live_costs)), number, alphas, live_costs)
            if not len(self.live):  # nothing left to update: the step is not made, as in Trainer
                return StackedStepRecord(
                    number,
                    self.epoch,
                    self.examples_seen + size,
                    size,
                    record_alphas,
                    cost,
                    tuple(self.diverged),
                    changes,
                )
            rates, hp = self._rates()[1], self._hp()
        self.optimizer.update(self.model.params, self.model.grads, rates, hp)
        epoch = self.epoch
        self.step_count = number
        self.examples_seen += size
        self.position += size
        if self.position >= self.m:
            self.position = 0
            self.epoch += 1
        return StackedStepRecord(
            number, epoch, self.examples_seen, size, record_alphas, cost, tuple(self.diverged), changes
        )

    def _freeze(self, rows, number, alphas, live_costs):
        """Take the stack's rows ``rows`` out: record why, keep their state as a lone Trainer's would be."""
        for i in rows:
            k = int(self.live[i])
            finite = math.isfinite(self.model.params[i].sum())
            self.diverged[k] = divergence_reason(float(live_costs[i]), number, alphas[k], finite)
            self._frozen[k] = self._state_of_row(i, k)
        keep = np.setdiff1d(np.arange(len(self.live)), rows)
        self.model = self.model.take(keep, grads=True)
        self.optimizer = self.optimizer.take(keep)
        self.live = self.live[keep]
        self._invalidate()

    # -- measuring ----------------------------------------------------------------------------------

    def _cost_accuracy_stacked(self, X, y):
        """[(cost, accuracy)] of each live trial, as Trainer._cost_accuracy."""
        picked = np.empty((len(self.live), y.size))
        correct = np.empty((len(self.live), y.size), bool)
        for start, P in self.model.predict_proba_chunks(X):
            size = P.shape[2]
            ys = y[start : start + size]
            picked[:, start : start + size] = P[:, ys, np.arange(size)]
            np.equal(P.argmax(axis=1), ys, out=correct[:, start : start + size])
        tiny = np.finfo(np.float64).tiny
        return [
            (float(-np.log(np.maximum(p, tiny)).mean()), float(c.mean())) for p, c in zip(picked, correct, strict=True)
        ]

    def _cost_accuracy_lone(self, params, X, y):
        self._lone.params[...] = params
        return cost_accuracy(self._lone.predict_proba(X), y)

    def evaluate(self):
        """[Evaluation] per trial, each equal to its lone Trainer's evaluate() (frozen trials: at the
        step before they diverged)."""
        has_dev = bool(self.data.y_dev.size)
        results = [None] * self.K
        if len(self.live):
            train = self._cost_accuracy_stacked(self.X, self.data.y_train)
            dev = self._cost_accuracy_stacked(self.X_dev, self.data.y_dev) if has_dev else [(None, None)] * len(train)
            for k, t, d in zip(self.live, train, dev, strict=True):
                results[k] = Evaluation(self.step_count, *t, *d)
        for k, state in self._frozen.items():
            t = self._cost_accuracy_lone(state["params"], self.X, self.data.y_train)
            d = self._cost_accuracy_lone(state["params"], self.X_dev, self.data.y_dev) if has_dev else (None, None)
            results[k] = Evaluation(state["step"], *t, *d)
        return results

    # -- state --------------------------------------------------------------------------------------

    def _state_of_row(self, i, k):
        return {
            "step": self.step_count,
            "epoch": self.epoch,
            "position": self.position,
            "examples_seen": self.examples_seen,
            "params": self.model.params[i].copy(),
            "optimizer": self.hps[k].optimizer,
            "optimizer_state": self.optimizer.state_dict(i),
            "rng": self.rng.bit_generator.state,
            "order": None if self.order is None else self.order.copy(),
            "hyperparameters": self.hps[k].to_dict(),
        }

    def state_dicts(self):
        """Per trial, exactly Trainer.state_dict()'s dict (copies); a frozen trial's as of its freezing."""
        states = [None] * self.K
        for i, k in enumerate(self.live):
            states[k] = self._state_of_row(i, k)
        for k, state in self._frozen.items():
            states[k] = {
                **state,
                "params": state["params"].copy(),
                "optimizer_state": {
                    n: (b.copy() if isinstance(b, np.ndarray) else b) for n, b in state["optimizer_state"].items()
                },
                "order": None if state["order"] is None else state["order"].copy(),
                "rng": dict(state["rng"]),
                "hyperparameters": dict(state["hyperparameters"]),
            }
        return states

    def load_state_dicts(self, states):
        """Continue from per-trial Trainer states, one per config of this stack (e.g. a halving's
        survivors, restacked from their checkpoints). They must share the step, epoch, position, order,
        random state and optimizer step count, as trials that ran in one stack, or alone from the same
        config seed for the same steps, do. Every trial is live afterwards, as after Trainer.load_state_dict."""
        states = list(states)
        if len(states) != self.K:
            raise ConfigError(f"{len(states)} states for a stack of {self.K} trials")
        first = states[0]
        problems = []
        for name in ("step", "epoch", "position", "examples_seen", "rng", "optimizer"):
            values = [s[name] for s in states]
            if any(v != values[0] for v in values):
                problems.append(f"the states differ in {name}: they cannot continue as one stack")
        orders = [s["order"] for s in states]
        if any(
            (o is None) != (orders[0] is None) or (o is not None and not np.array_equal(o, orders[0])) for o in orders
        ):
            problems.append("the states differ in order: they cannot continue as one stack")
        if len({int(s["optimizer_state"]["t"]) for s in states}) > 1:
            problems.append("the states differ in the optimizer's step count t: they cannot continue as one stack")
        hps = []
        for i, s in enumerate(states):
            if np.shape(s["params"]) != (self.model.n_params,):
                problems.append(f"state {i} has {np.size(s['params'])} parameters, this model {self.model.n_params}")
            hps.append(HyperParams(**s["hyperparameters"]))
        if len({hp.mini_batch_size for hp in hps}) > 1:
            problems.append("the states differ in mini_batch_size: they cannot continue as one stack")
        if problems:
            raise ConfigError(problems)
        self.hps = hps
        if self.model.K != self.K:
            self.model = StackedMLP(self.K, self.sizes, self.activation, self.dtype)
        for k, s in enumerate(states):
            self.model.params[k] = s["params"]
        self.optimizer = STACKED_OPTIMIZERS[first["optimizer"]]()
        self.optimizer.load_state_dicts([s["optimizer_state"] for s in states], self.model.params.shape, self.dtype)
        self.rng.bit_generator.state = first["rng"]
        self.step_count = int(first["step"])
        self.epoch = int(first["epoch"])
        self.position = int(first["position"])
        self.examples_seen = int(first["examples_seen"])
        self.order = None if first["order"] is None else np.array(first["order"])
        self.diverged = [None] * self.K
        self.live = np.arange(self.K)
        self._frozen = {}
        self._invalidate()

    def select(self, trials):
        """A new stack of the trials ``trials`` (indices), continuing from their current states on the
        same data: successive halving's next rung."""
        trials = [int(k) for k in trials]
        states = self.state_dicts()
        other = StackedTrainer([self.configs[k] for k in trials], data=self.data)
        other.load_state_dicts([states[k] for k in trials])
        return other
