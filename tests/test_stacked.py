"""Stacked training: each trial of a StackedTrainer equals a lone Trainer, bit for bit (float64 and
float32): costs, rates, parameters, evaluations and checkpoints, through decay schedules, scheduled
changes, restacking and divergence."""

import numpy as np
import pytest

from babysit.config import RunConfig
from babysit.errors import ConfigError, DivergedError
from babysit.stacked_trainer import StackedTrainer, group_key
from babysit.trainer import Trainer
from models.mlp import MLP
from models.optimizers import OPTIMIZERS
from models.stacked import FULL_WIDTH, STACKED_OPTIMIZERS, StackedHyperParams, StackedMLP, StackedRates

OPTIMIZER_NAMES = ("gd", "momentum", "rmsprop", "adam")
BATCH = 48  # 160 training examples: batches of 48, 48, 48 and a remainder of 16
STEPS = 300  # 75 epochs
SCALE = {"gd": 10.0, "momentum": 10.0, "rmsprop": 1.0, "adam": 1.0}  # alphas suited to each optimizer


def make_config(
    optimizer="adam",
    seed=3,
    dtype="float64",
    layers=(8, 6),
    activation="relu",
    n_samples=200,
    dev_fraction=0.2,
    lambd=0.0,
    schedule=(),
    **hyperparameters,
):
    """A small moons run, resolved through RunConfig.from_dict as a config file would be."""
    hyperparameters.setdefault("mini_batch_size", BATCH)
    return RunConfig.from_dict(
        {
            "seed": seed,
            "data": {"name": "moons", "n_samples": n_samples, "dev_fraction": dev_fraction},
            "model": {"layers": list(layers), "activation": activation, "dtype": dtype, "lambd": lambd},
            "hyperparameters": {"optimizer": optimizer, **hyperparameters},
            "schedule": list(schedule),
        }
    )


def study(optimizer="adam", **common):
    """Five trials of one stack, differing in every per-trial hyperparameter, with decay schedules and
    a scheduled change."""
    a = SCALE[optimizer]
    trials = [
        {"alpha": 0.01 * a},
        {"alpha": 0.03 * a, "beta": 0.8, "beta1": 0.7, "beta2": 0.99, "epsilon": 1e-4, "lambd": 0.3},
        {"alpha": 0.02 * a, "learning_rate_decay": 0.9, "decay_schedule": "exponential", "lambd": 0.01},
        {
            "alpha": 0.03 * a,
            "learning_rate_decay": 0.5,
            "decay_schedule": "staircase",
            "beta": 0.95,
            "beta2": 0.9999,
            "epsilon": 1e-6,
        },
        {
            "alpha": 0.005 * a,
            "learning_rate_decay": 1.0,
            "decay_schedule": "inverse_time",
            "beta1": 0.95,
            "schedule": [
                {"step": 120, "set": {"alpha": 0.002 * a, "lambd": 0.05, "beta2": 0.995}},
                {"step": 200, "set": {"learning_rate_decay": 0.2}},
            ],
        },
    ]
    return [make_config(optimizer, **{**common, **trial}) for trial in trials]


def run(trainer, n):
    return [trainer.step() for _ in range(n)]


def lone_runs(configs, n, data=None):
    """Each config trained alone for n steps: (trainers, records per trial)."""
    trainers = [Trainer(c, data=data) for c in configs]
    return trainers, [run(t, n) for t in trainers]


def assert_trial_equals(stacked_records, k, lone_records, exact=True):
    """Trial k's rows of the stacked records against a lone trainer's records."""
    assert [r.step for r in stacked_records] == [r.step for r in lone_records]
    assert [r.epoch for r in stacked_records] == [r.epoch for r in lone_records]
    assert [r.examples_seen for r in stacked_records] == [r.examples_seen for r in lone_records]
    assert [r.batch_size for r in stacked_records] == [r.batch_size for r in lone_records]
    assert [r.changes[k] for r in stacked_records] == [r.changes for r in lone_records]
    assert [float(r.alpha[k]) for r in stacked_records] == [r.alpha for r in lone_records]
    costs = np.array([r.cost[k] for r in stacked_records])
    lone_costs = np.array([r.cost for r in lone_records])
    if exact:
        assert np.array_equal(costs, lone_costs)
    else:
        np.testing.assert_allclose(costs, lone_costs, rtol=1e-5)


def assert_state_equal(a, b):
    """Two Trainer.state_dict() dicts hold the same values (arrays element for element)."""
    assert a.keys() == b.keys()
    for key in a:
        if key == "params":
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
        elif key == "optimizer_state":
            assert a[key].keys() == b[key].keys()
            for name, value in a[key].items():
                if isinstance(value, np.ndarray):
                    assert value.dtype == b[key][name].dtype and np.array_equal(value, b[key][name]), name
                else:
                    assert value == b[key][name], name
        elif key == "order":
            assert (a[key] is None and b[key] is None) or np.array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key


# -- the numerics on their own ---------------------------------------------------------------------


class TestStackedMLP:
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
    def test_cost_and_grad_equal_lone_per_trial(self, dtype, activation):
        """Trials with different parameters and lambd (some 0) give each lone MLP's cost and gradient
        exactly, for a batch and a remainder-sized batch."""
        K, sizes = 5, (3, 7, 5, 4)
        rng = np.random.default_rng(0)
        stack = StackedMLP(K, sizes, activation, dtype)
        lones = [MLP(sizes, activation, dtype) for _ in range(K)]
        for k, lone in enumerate(lones):
            lone.initialize(rng)
            lone.b[1][...] = rng.standard_normal(lone.b[1].shape)
            stack.params[k] = lone.params
        lambd = [0.0, 0.5, 0.0, 2.0, 1e-3]
        for m in (32, 13):
            X = np.asfortranarray(rng.standard_normal((sizes[0], m)).astype(dtype))
            Y = np.eye(sizes[-1], dtype=dtype)[:, rng.integers(0, sizes[-1], m)]
            costs = stack.cost_and_grad(X, Y, lambd)
            assert costs.shape == (K,) and costs.dtype == dtype
            for k, lone in enumerate(lones):
                assert costs[k] == lone.cost_and_grad(X, Y, lambd[k])
                assert np.array_equal(stack.grads[k], lone.grads)
                assert stack.cost(X, Y, lambd)[k] == lone.cost(X, Y, lambd[k])
            P = stack.forward(X)
            for k, lone in enumerate(lones):
                assert np.array_equal(P[k], lone.forward(X))

    def test_views_share_the_buffers(self):
        """W[l], b[l], dW[l], db[l] are views of rows of params and grads in the lone flat layout."""
        stack = StackedMLP(3, (2, 4, 3))
        lone = MLP((2, 4, 3))
        stack.params[1] = np.arange(stack.n_params)
        lone.params[...] = np.arange(lone.params.size)
        for l in (1, 2):
            assert np.array_equal(stack.W[l][1], lone.W[l]) and np.array_equal(stack.b[l][1], lone.b[l])
            assert np.shares_memory(stack.dW[l], stack.grads) and np.shares_memory(stack.db[l], stack.grads)
        assert stack.W[1].shape == (3, 4, 2) and stack.b[2].shape == (3, 3, 1)


class TestStackedOptimizers:
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("name", OPTIMIZER_NAMES)
    def test_update_equals_lone_per_trial(self, name, dtype):
        """Per-trial alpha, beta, beta1, beta2, epsilon: each row's updates equal the lone optimizer's."""
        from babysit.hyperparams import HyperParams

        K, n = 4, 37
        rng = np.random.default_rng(1)
        hps = [
            HyperParams(
                optimizer=name,
                beta=0.8 + 0.05 * k,
                beta1=0.7 + 0.07 * k,
                beta2=0.99 + 0.002 * k,
                epsilon=10.0 ** -(k + 3),
            )
            for k in range(K)
        ]
        params = rng.standard_normal((K, n)).astype(dtype)
        lone_params = [params[k].copy() for k in range(K)]
        stacked, lones = STACKED_OPTIMIZERS[name](), [OPTIMIZERS[name]() for _ in range(K)]
        stacked_hp = StackedHyperParams(hps, dtype, n)
        for step in range(30):
            grads = (rng.standard_normal((K, n)) * 10.0 ** rng.integers(-6, 1, (K, n))).astype(dtype)
            alphas = [0.01 * (k + 1) / (1 + 0.1 * step) for k in range(K)]
            stacked.update(params, grads, StackedRates(alphas, dtype, n), stacked_hp)
            for k in range(K):
                lones[k].update(lone_params[k], grads[k].copy(), alphas[k], hps[k])
                assert np.array_equal(params[k], lone_params[k]), (step, k)
        for k in range(K):
            assert_state_equal({"optimizer_state": stacked.state_dict(k)}, {"optimizer_state": lones[k].state_dict()})


# -- a stack against lone trainers -----------------------------------------------------------------


class TestEqualsLone:
    @pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
    def test_float64_bit_for_bit(self, optimizer):
        """300 steps (75 epochs, remainder batches, decay, a scheduled change): every trial's records and
        final parameters equal its lone trainer's exactly."""
        configs = study(optimizer)
        stack = StackedTrainer(configs)
        records = run(stack, STEPS)
        trainers, lone_records = lone_runs(configs, STEPS)
        assert stack.K == len(configs) and stack.active.all()
        for k, trainer in enumerate(trainers):
            assert_trial_equals(records, k, lone_records[k])
            assert np.array_equal(stack.model.params[k], trainer.model.params)
        assert all(r.diverged == (None,) * stack.K for r in records)

    @pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
    def test_float32_close(self, optimizer):
        """In float32 too (found bit for bit here; required: rtol 1e-5)."""
        configs = study(optimizer, dtype="float32")
        stack = StackedTrainer(configs)
        records = run(stack, STEPS)
        trainers, lone_records = lone_runs(configs, STEPS)
        assert stack.model.params.dtype == np.float32
        for k, trainer in enumerate(trainers):
            assert_trial_equals(records, k, lone_records[k], exact=False)
            np.testing.assert_allclose(stack.model.params[k], trainer.model.params, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
    def test_other_activations(self, activation):
        configs = study("adam", activation=activation, layers=(5,))
        stack = StackedTrainer(configs)
        records = run(stack, 100)
        trainers, lone_records = lone_runs(configs, 100)
        for k, trainer in enumerate(trainers):
            assert_trial_equals(records, k, lone_records[k])
            assert np.array_equal(stack.model.params[k], trainer.model.params)

    @pytest.mark.parametrize("optimizer", ["adam", "momentum"])
    def test_wide_model(self, optimizer):
        """More than FULL_WIDTH parameters per trial: the per-trial scalars broadcast as (K, 1) columns."""
        configs = study(optimizer, layers=(70, 60))
        stack = StackedTrainer(configs)
        assert stack.model.n_params > FULL_WIDTH
        records = run(stack, 40)
        assert stack._hp().beta.shape == (5, 1)
        trainers, lone_records = lone_runs(configs, 40)
        for k, trainer in enumerate(trainers):
            assert_trial_equals(records, k, lone_records[k])
            assert np.array_equal(stack.model.params[k], trainer.model.params)

    def test_one_trial(self):
        """A stack of one is its lone trainer."""
        config = study("momentum")[1]
        records = run(StackedTrainer([config]), 60)
        assert_trial_equals(records, 0, run(Trainer(config), 60))

    def test_record_fields(self):
        configs = study("adam")
        record = StackedTrainer(configs).step()
        assert (record.step, record.epoch, record.examples_seen, record.batch_size) == (1, 0, BATCH, BATCH)
        assert record.alpha.shape == record.cost.shape == (5,) and record.cost.dtype == np.float64
        assert record.alpha.tolist() == [c.hyperparameters.alpha for c in configs]  # no decay in epoch 0
        assert record.diverged == (None,) * 5 and record.changes == ({},) * 5

    def test_scheduled_optimizer_and_batch_size_switch(self):
        """Schedules that switch optimizer and mini_batch_size at the same step in every trial (their
        per-trial changes differing) keep each trial equal to its lone run; the switch starts fresh moments."""
        shared = {"step": 40, "set": {"optimizer": "momentum", "mini_batch_size": 30}}
        configs = [
            make_config("adam", alpha=0.01, schedule=[shared, {"step": 40, "set": {"alpha": 0.1}}]),
            make_config("adam", alpha=0.02, lambd=0.1, schedule=[{"step": 20, "set": {"beta": 0.5}}, shared]),
            make_config("adam", alpha=0.005, schedule=[shared, {"step": 90, "set": {"alpha": 0.3, "beta": 0.7}}]),
        ]
        stack = StackedTrainer(configs)
        records = run(stack, 150)
        trainers, lone_records = lone_runs(configs, 150)
        for k, trainer in enumerate(trainers):
            assert_trial_equals(records, k, lone_records[k])
            assert np.array_equal(stack.model.params[k], trainer.model.params)
        assert records[39].changes[0] == {
            "optimizer": ("adam", "momentum"),
            "mini_batch_size": (BATCH, 30),
            "alpha": (0.01, 0.1),
        }
        assert records[39].batch_size == 16 and records[40].batch_size == 30  # the remainder, then 30
        assert stack.optimizer.name == "momentum"


class TestEvaluate:
    def test_equals_lone(self):
        configs = study("rmsprop")
        stack = StackedTrainer(configs)
        trainers = [Trainer(c) for c in configs]
        assert stack.evaluate() == [t.evaluate() for t in trainers]
        run(stack, 77)
        for t in trainers:
            run(t, 77)
        evaluations = stack.evaluate()
        assert evaluations == [t.evaluate() for t in trainers]
        assert all(e.step == 77 and e.dev_cost is not None for e in evaluations)

    def test_several_chunks_and_no_dev_set(self):
        """More training examples than one 4096-column chunk of predict_proba; no dev set."""
        configs = [
            make_config("adam", n_samples=4500, dev_fraction=0, mini_batch_size=256, alpha=a) for a in (0.01, 0.003)
        ]
        stack = StackedTrainer(configs)
        trainers = [Trainer(c, data=stack.data) for c in configs]
        run(stack, 20)
        for t in trainers:
            run(t, 20)
        assert stack.m == 4500
        evaluations = stack.evaluate()
        assert evaluations == [t.evaluate() for t in trainers]
        assert evaluations[0].dev_cost is None


class TestCheckpoints:
    @pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
    def test_state_dicts_are_lone_state_dicts(self, optimizer):
        """state_dicts()[k] holds exactly the lone trainer's state_dict() at the same step (mid-epoch), and
        a lone Trainer loading it continues bit for bit, like the stack itself."""
        configs = study(optimizer)
        stack = StackedTrainer(configs)
        run(stack, 131)
        states = stack.state_dicts()
        trainers, _ = lone_runs(configs, 131)
        for k, trainer in enumerate(trainers):
            assert_state_equal(states[k], trainer.state_dict())
        records = run(stack, 100)
        for k, config in enumerate(configs):
            resumed = Trainer(config)
            resumed.load_state_dict(states[k])
            assert_trial_equals(records, k, run(resumed, 100))
            assert np.array_equal(resumed.model.params, stack.model.params[k])
            run(trainers[k], 100)
            assert np.array_equal(trainers[k].model.params, stack.model.params[k])

    def test_state_dicts_at_start(self):
        """Before any step: t = 0, no moments yet, no order, as a fresh Trainer."""
        configs = study("adam")
        for state, config in zip(StackedTrainer(configs).state_dicts(), configs, strict=True):
            assert_state_equal(state, Trainer(config).state_dict())

    def test_state_dicts_are_copies(self):
        stack = StackedTrainer(study("momentum"))
        run(stack, 5)
        state = stack.state_dicts()[2]
        state["params"][:] = 0
        state["optimizer_state"]["v"][:] = 0
        state["order"][:] = 0
        assert stack.model.params[2].any() and stack.optimizer.v[2].any() and stack.order.any()

    @pytest.mark.parametrize("optimizer", ["adam", "momentum"])
    def test_halving_restacks_survivors(self, optimizer):
        """Survivors (a subset, reordered) restacked from their checkpoints continue exactly as lone runs."""
        configs = study(optimizer)
        stack = StackedTrainer(configs)
        run(stack, 100)
        states = stack.state_dicts()
        survivors = [4, 1, 2]
        rung = StackedTrainer([configs[k] for k in survivors], data=stack.data)
        rung.load_state_dicts([states[k] for k in survivors])
        assert rung.K == 3 and rung.step_count == 100
        records = run(rung, 150)
        selected = stack.select(survivors)
        selected_records = run(selected, 150)
        trainers, lone_records = lone_runs([configs[k] for k in survivors], 250)
        for i, trainer in enumerate(trainers):
            assert_trial_equals(records, i, lone_records[i][100:])
            assert_trial_equals(selected_records, i, lone_records[i][100:])
            assert np.array_equal(rung.model.params[i], trainer.model.params)
            assert np.array_equal(selected.model.params[i], trainer.model.params)

    def test_stack_from_lone_states(self):
        """Lone runs of the same seed for the same steps stack up and go on as they would alone."""
        configs = study("rmsprop")
        trainers, _ = lone_runs(configs, 70)
        stack = StackedTrainer(configs)
        stack.load_state_dicts([t.state_dict() for t in trainers])
        records = run(stack, 90)
        for k, trainer in enumerate(trainers):
            assert_trial_equals(records, k, run(trainer, 90))

    def test_fresh_states_load(self):
        """States taken before any step (no moments, no order) load too."""
        configs = study("adam")
        stack = StackedTrainer(configs)
        stack.load_state_dicts([Trainer(c).state_dict() for c in configs])
        records = run(stack, 30)
        for k, config in enumerate(configs):
            assert_trial_equals(records, k, run(Trainer(config), 30))

    def test_mismatched_states_refused(self):
        configs = study("adam")
        a, b = Trainer(configs[0]), Trainer(configs[1])
        run(a, 10)
        run(b, 11)
        stack = StackedTrainer(configs[:2])
        with pytest.raises(ConfigError, match="differ in step"):
            stack.load_state_dicts([a.state_dict(), b.state_dict()])
        with pytest.raises(ConfigError, match="2 states for a stack of 3"):
            StackedTrainer(configs[:3]).load_state_dicts([a.state_dict(), a.state_dict()])
        other = Trainer(make_config("adam", layers=(4,)))
        run(other, 10)
        with pytest.raises(ConfigError, match="parameters"):
            stack.load_state_dicts([a.state_dict(), other.state_dict()])


class TestDivergence:
    def diverging_study(self):
        """gd trials, one with alpha 10 and strong L2, which blows up after a few steps."""
        return [
            make_config("gd", alpha=0.1),
            make_config("gd", alpha=10, lambd=1000.0),
            make_config("gd", alpha=0.3, lambd=0.01, learning_rate_decay=0.5),
        ]

    def test_frozen_and_marked_while_others_go_on(self):
        configs = self.diverging_study()
        stack = StackedTrainer(configs)
        with np.errstate(all="ignore"):
            records = run(stack, 120)
            trainers = [Trainer(c) for c in configs]
            lone_records = [run(trainers[0], 120), run(trainers[2], 120)]
            bad = []
            while not bad or not bad[-1].diverged:
                bad.append(trainers[1].step())
        at = bad[-1].step  # the step whose cost became non-finite
        assert 1 < at < 120
        assert records[at - 1].diverged[1] == bad[-1].diverged
        assert "weights kept from step" in bad[-1].diverged
        assert np.isnan(records[at - 1].cost[1]) == np.isnan(bad[-1].cost) and not np.isfinite(records[at - 1].cost[1])
        assert [r.cost[1] for r in records[: at - 1]] == [r.cost for r in bad[:-1]]
        assert records[at - 1].alpha[1] == bad[-1].alpha
        assert all(
            np.isnan(r.cost[1]) and np.isnan(r.alpha[1]) and r.diverged[1] == bad[-1].diverged for r in records[at:]
        )
        assert stack.active.tolist() == [True, False, True]
        # the others are untouched by it
        for k, lone in ((0, lone_records[0]), (2, lone_records[1])):
            assert_trial_equals(records, k, lone)
            assert all(r.diverged[k] is None for r in records)
        assert np.array_equal(stack.state_dicts()[0]["params"], trainers[0].model.params)
        # the frozen trial keeps its state and evaluation from before the bad step, as the lone trainer
        assert_state_equal(stack.state_dicts()[1], trainers[1].state_dict())
        with np.errstate(all="ignore"):  # its weights are finite but overflow on the training set: nan costs
            evaluations, lone_evaluations = stack.evaluate(), [t.evaluate() for t in trainers]
        assert repr(evaluations) == repr(lone_evaluations)  # repr: nan equals nan, floats to the last bit

    def test_non_finite_weight_named(self):
        """A weight gone non-finite is named as Trainer names it."""
        configs = study("adam")[:3]
        stack = StackedTrainer(configs)
        lone = Trainer(configs[2])
        run(stack, 3)
        run(lone, 3)
        stack.model.params[2, 5] = np.inf
        lone.model.params[5] = np.inf
        with np.errstate(all="ignore"):
            record = stack.step()
            lone_record = lone.step()
        assert record.diverged == (None, None, "a weight became non-finite at the update of step 3")
        assert record.diverged[2] == lone_record.diverged
        assert stack.active.tolist() == [True, True, False] and stack.step_count == 4
        assert_state_equal(stack.state_dicts()[2], lone.state_dict())

    def test_all_diverged(self):
        configs = [make_config("gd", alpha=10, lambd=1000.0), make_config("gd", alpha=9, lambd=2000.0)]
        stack = StackedTrainer(configs)
        with np.errstate(all="ignore"):
            for _ in range(100):
                if not stack.active.any():
                    break
                record = stack.step()
            else:
                pytest.fail("the stack never diverged")
            assert all(record.diverged)
            with pytest.raises(DivergedError, match="every trial"):
                stack.step()
            assert len(stack.evaluate()) == 2


class TestGrouping:
    def test_per_trial_hyperparameters_share_a_key(self):
        configs = study("adam")
        assert len({group_key(c) for c in configs}) == 1
        hash(group_key(configs[0]))

    @pytest.mark.parametrize(
        "change, field",
        [
            ({"seed": 4}, "seed"),
            ({"layers": (8, 5)}, "model"),
            ({"activation": "tanh"}, "model"),
            ({"dtype": "float32"}, "model"),
            ({"n_samples": 300}, "data"),
            ({"optimizer": "momentum"}, "optimizer"),
            ({"mini_batch_size": 32}, "mini_batch_size"),
            ({"schedule": [{"step": 9, "set": {"optimizer": "gd"}}]}, "schedule of optimizer"),
            ({"schedule": [{"step": 9, "set": {"mini_batch_size": 7}}]}, "schedule of optimizer"),
        ],
    )
    def test_refused(self, change, field):
        base = make_config("adam", alpha=0.01)
        other = make_config(change.pop("optimizer", "adam"), **{"alpha": 0.02, **change})
        assert group_key(other) != group_key(base)
        with pytest.raises(ConfigError, match=f"config 1 cannot share a stack with config 0: its {field}"):
            StackedTrainer([base, other])

    def test_per_trial_schedule_entries_stack(self):
        a = make_config("adam", schedule=[{"step": 5, "set": {"alpha": 0.1}}])
        b = make_config("adam", schedule=[{"step": 7, "set": {"lambd": 0.1, "beta2": 0.9}}])
        assert group_key(a) == group_key(b)

    def test_empty_refused(self):
        with pytest.raises(ConfigError, match="at least one"):
            StackedTrainer([])
