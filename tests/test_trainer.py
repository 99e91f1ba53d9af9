"""The Trainer: determinism, step records, live changes, divergence, evaluation and checkpoints."""

import numpy as np
import pytest

from babysit.config import RunConfig
from babysit.errors import ConfigError, DivergedError
from babysit.trainer import Trainer, one_hot_rows
from models.optimizers import Adam, Momentum

M_TRAIN = 160  # 200 moons examples, a fifth held out for dev


def make_config(seed=0, n_samples=200, dev_fraction=0.2, layers=(8,), dtype="float64", schedule=(), lambd=0.0,
                **hyperparameters):
    """A small moons run, resolved through RunConfig.from_dict as a config file would be."""
    return RunConfig.from_dict(
        {
            "seed": seed,
            "data": {"name": "moons", "n_samples": n_samples, "dev_fraction": dev_fraction},
            "model": {"layers": list(layers), "dtype": dtype, "lambd": lambd},
            "hyperparameters": hyperparameters,
            "schedule": list(schedule),
        }
    )


def run(trainer, n):
    """n steps; their records."""
    return [trainer.step() for _ in range(n)]


def costs(records):
    return [r.cost for r in records]


class TestDeterminism:
    def test_same_config_bit_identical(self):
        """Two trainers from one config give identical costs and weights over 300 steps."""
        config = make_config(mini_batch_size=32)
        a, b = Trainer(config), Trainer(config)
        ra, rb = run(a, 300), run(b, 300)
        assert costs(ra) == costs(rb)
        assert np.array_equal(a.model.params, b.model.params)
        assert ra == rb

    def test_other_seed_differs(self):
        """Another seed gives other data, weights and costs."""
        a, b = Trainer(make_config(seed=0)), Trainer(make_config(seed=1))
        assert not np.array_equal(a.X, b.X)
        assert not np.array_equal(a.model.params, b.model.params)
        assert costs(run(a, 20)) != costs(run(b, 20))

    def test_global_numpy_random_state_not_used(self):
        """Training neither reads nor moves numpy's global random state."""
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        a = Trainer(make_config())
        ra = run(a, 10)
        assert np.array_equal(np.random.get_state()[1], before)
        np.random.seed(999)
        assert costs(run(Trainer(make_config()), 10)) == costs(ra)

    def test_initial_weights_kept(self):
        """initial_weights is a copy of the weights before any update."""
        t = Trainer(make_config())
        W1 = t.model.W[1].copy()
        run(t, 5)
        assert np.array_equal(t.initial_weights["W1"], W1)
        assert not np.array_equal(t.model.W[1], W1)


class TestRecords:
    def test_bookkeeping(self):
        """step from 1, epoch = passes completed before, examples cumulative, last batch the remainder."""
        t = Trainer(make_config(mini_batch_size=64))
        assert t.m == M_TRAIN
        records = run(t, 7)
        assert [r.step for r in records] == [1, 2, 3, 4, 5, 6, 7]
        assert [r.epoch for r in records] == [0, 0, 0, 1, 1, 1, 2]
        assert [r.batch_size for r in records] == [64, 64, 32, 64, 64, 32, 64]
        assert [r.examples_seen for r in records] == [64, 128, 160, 224, 288, 320, 384]
        assert all(r.changes == {} and r.diverged is None for r in records)
        assert (t.step_count, t.epoch, t.position, t.examples_seen) == (7, 2, 64, 384)

    def test_batch_divides_m(self):
        """When the batch size divides m, every batch is full and the epoch ends exactly."""
        t = Trainer(make_config(mini_batch_size=40))
        records = run(t, 5)
        assert [r.batch_size for r in records] == [40] * 5
        assert [r.epoch for r in records] == [0, 0, 0, 0, 1]

    def test_full_batch(self):
        """A batch larger than m means full batch: one update per epoch."""
        t = Trainer(make_config(mini_batch_size=10_000))
        records = run(t, 3)
        assert [r.batch_size for r in records] == [M_TRAIN] * 3
        assert [r.epoch for r in records] == [0, 1, 2]

    def test_each_pass_sees_every_example_once(self):
        """An epoch's batches are a permutation of the training set."""
        t = Trainer(make_config(mini_batch_size=64))
        seen = []
        for _ in range(3):
            start = t.position
            r = t.step()
            seen.append(t.batch(start, r.batch_size)[0].copy())
        X = np.concatenate(seen, axis=1)
        assert sorted(map(tuple, X.T.tolist())) == sorted(map(tuple, t.X.T.tolist()))

    def test_passes_are_reshuffled(self):
        """Each epoch draws a new order."""
        t = Trainer(make_config(mini_batch_size=64))
        run(t, 1)
        first = t.order.copy()
        run(t, 3)
        assert sorted(t.order.tolist()) == list(range(M_TRAIN))
        assert not np.array_equal(t.order, first)

    def test_inverse_time_alpha(self):
        """The record's alpha is alpha / (1 + rate · epoch), changing at epoch boundaries only."""
        t = Trainer(make_config(mini_batch_size=64, alpha=0.1, learning_rate_decay=0.5))
        records = run(t, 10)
        for r in records:
            assert r.alpha == 0.1 / (1 + 0.5 * r.epoch)
        assert [r.alpha for r in records[:4]] == [0.1, 0.1, 0.1, 0.1 / 1.5]
        assert t.alpha_in_force() == 0.1 / (1 + 0.5 * t.epoch)

    @pytest.mark.parametrize(
        "schedule, rate, expected",
        [
            ("exponential", 0.5, lambda e: 0.1 * 0.5**e),
            ("none", 3.0, lambda e: 0.1),
            ("staircase", 0.5, lambda e: 0.1 * 0.5 ** (e // 10)),
        ],
    )
    def test_other_decays(self, schedule, rate, expected):
        """exponential, staircase and none give their rates per epoch."""
        t = Trainer(make_config(mini_batch_size=10_000, alpha=0.1, decay_schedule=schedule, learning_rate_decay=rate))
        records = run(t, 25)
        assert [r.alpha for r in records] == pytest.approx([expected(e) for e in range(25)], rel=1e-15)

    def test_decayed_alpha_is_applied(self):
        """The decayed alpha is the one gd actually uses: W moves by alpha_decayed · dW."""
        t = Trainer(make_config(mini_batch_size=10_000, optimizer="gd", alpha=0.2, learning_rate_decay=3.0))
        run(t, 1)  # epoch 1 from now on: alpha = 0.2 / 4
        before = t.model.params.copy()
        r = t.step()
        assert r.alpha == 0.05
        grads = t.model.grads.copy()
        assert np.allclose(t.model.params, before - 0.05 * grads, rtol=0, atol=1e-15)

    def test_cost_finite_and_falling(self):
        """On moons the cost stays finite and falls."""
        t = Trainer(make_config(mini_batch_size=32, alpha=0.01))
        c = np.array(costs(run(t, 300)))
        assert np.isfinite(c).all()
        assert c[-20:].mean() < 0.5 * c[:20].mean()


class TestCostBeforeUpdate:
    def test_full_batch_cost(self):
        """Full batch: the record's cost is the training-set cost of the weights before the update."""
        t = Trainer(make_config(mini_batch_size=10_000, lambd=0.3, alpha=0.05))
        for _ in range(5):
            expected = t.model.cost(t.X, t.Y, 0.3)
            r = t.step()
            assert r.cost == pytest.approx(expected, rel=1e-12, abs=0)
            assert t.model.cost(t.X, t.Y, 0.3) != pytest.approx(expected, rel=1e-9)  # the update moved it

    def test_mini_batch_cost(self):
        """Mini-batch: recomputing on the step's batch with the weights from before gives the record's cost."""
        t = Trainer(make_config(mini_batch_size=48, lambd=0.2))
        for _ in range(9):  # crosses two epoch boundaries (48, 48, 48, 16)
            before = t.model.params.copy()
            start = t.position  # 0 means a new pass: the step draws its order first
            r = t.step()
            X, Y = t.batch(start, r.batch_size)
            after = t.model.params.copy()
            t.model.params[...] = before
            assert r.cost == pytest.approx(t.model.cost(X, Y, 0.2), rel=1e-13, abs=0)
            t.model.params[...] = after
            assert not np.array_equal(before, after)

    def test_cost_includes_l2(self):
        """The record's cost includes lambd/(2m)·Σ‖W‖² with m the batch size."""
        t0 = Trainer(make_config(mini_batch_size=10_000))
        t1 = Trainer(make_config(mini_batch_size=10_000, lambd=2.0))
        w = t0.model.params[: t0.model.n_weights]
        penalty = 2.0 / (2 * M_TRAIN) * float(w @ w)
        assert t1.step().cost == pytest.approx(t0.step().cost + penalty, rel=1e-12)


class TestLiveChanges:
    SCHEDULE = [{"step": 5, "set": {"alpha": 0.5}}]

    def test_schedule_takes_effect_at_its_step(self):
        """Records 1-4 use the base alpha, record 5 the new one, and only record 5 lists the change."""
        t = Trainer(make_config(mini_batch_size=32, schedule=self.SCHEDULE))
        records = run(t, 8)
        assert [r.alpha for r in records] == [0.01] * 4 + [0.5] * 4
        assert records[4].changes == {"alpha": (0.01, 0.5)}
        assert all(r.changes == {} for i, r in enumerate(records) if i != 4)
        assert t.hp.alpha == 0.5

    def test_schedule_equals_change_by_hand(self):
        """A scheduled change equals set_hyperparams called by hand after step 4, bit for bit."""
        a = Trainer(make_config(mini_batch_size=32, schedule=self.SCHEDULE))
        b = Trainer(make_config(mini_batch_size=32))
        ra = run(a, 4)
        rb = run(b, 4)
        assert b.set_hyperparams(alpha=0.5) == {"alpha": (0.01, 0.5)}
        ra += run(a, 20)
        rb += run(b, 20)
        assert costs(ra) == costs(rb)
        assert np.array_equal(a.model.params, b.model.params)

    def test_change_differs_from_no_change(self):
        """The change has an effect (so the test above can fail)."""
        a = Trainer(make_config(mini_batch_size=32, schedule=self.SCHEDULE))
        b = Trainer(make_config(mini_batch_size=32))
        run(a, 6)
        run(b, 6)
        assert not np.array_equal(a.model.params, b.model.params)

    def test_schedule_changes_several_names(self):
        """One entry may change several hyperparameters; the record lists each (old, new)."""
        t = Trainer(make_config(schedule=[{"step": 2, "set": {"optimizer": "gd", "lambd": 0.1, "alpha": 0.01}}]))
        records = run(t, 3)
        assert records[1].changes == {"optimizer": ("adam", "gd"), "lambd": (0.0, 0.1)}

    def test_entries_at_one_step_merge(self):
        """Two entries at one step apply in turn; the record shows each name's first old and last new value."""
        schedule = [{"step": 3, "set": {"alpha": 0.2}}, {"step": 3, "set": {"alpha": 0.3, "beta1": 0.8}}]
        t = Trainer(make_config(schedule=schedule))
        records = run(t, 4)
        assert records[2].changes == {"alpha": (0.01, 0.3), "beta1": (0.9, 0.8)}
        assert [r.alpha for r in records] == [0.01, 0.01, 0.3, 0.3]

    def test_mini_batch_size_mid_epoch(self):
        """A new batch size applies from the next batch; epochs and examples stay counted right."""
        t = Trainer(make_config(mini_batch_size=64))
        records = run(t, 1)
        t.set_hyperparams(mini_batch_size=50)
        records += run(t, 4)
        assert [r.batch_size for r in records] == [64, 50, 46, 50, 50]
        assert [r.examples_seen for r in records] == [64, 114, 160, 210, 260]
        assert [r.epoch for r in records] == [0, 0, 0, 1, 1]
        t.set_hyperparams(mini_batch_size=10_000)
        records = run(t, 2)
        assert [r.batch_size for r in records] == [60, 160]  # the rest of the pass, then full batch
        assert [r.epoch for r in records] == [1, 2]
        assert t.examples_seen == 3 * M_TRAIN and t.epoch == 3 and t.position == 0

    def test_scheduled_batch_size(self):
        """A batch size changed by the schedule applies to that very step."""
        t = Trainer(make_config(mini_batch_size=64, schedule=[{"step": 2, "set": {"mini_batch_size": 20}}]))
        assert [r.batch_size for r in run(t, 4)] == [64, 20, 20, 20]

    def test_optimizer_switch_fresh_state(self):
        """Switching optimizer starts the new one from t = 0 and empty moments."""
        t = Trainer(make_config())
        run(t, 5)
        assert isinstance(t.optimizer, Adam) and t.optimizer.t == 5
        assert t.set_hyperparams(optimizer="momentum") == {"optimizer": ("adam", "momentum")}
        assert isinstance(t.optimizer, Momentum) and t.optimizer.t == 0
        assert t.optimizer.state_dict()["v"] is None
        run(t, 1)
        assert t.optimizer.t == 1
        t.set_hyperparams(optimizer="adam")
        assert isinstance(t.optimizer, Adam) and t.optimizer.t == 0

    def test_same_optimizer_keeps_state(self):
        """Setting the optimizer already in use changes nothing and keeps its moments."""
        t = Trainer(make_config())
        run(t, 3)
        optimizer = t.optimizer
        assert t.set_hyperparams(optimizer="adam", alpha=0.01) == {}
        assert t.optimizer is optimizer and optimizer.t == 3

    def test_bad_change_refused_and_nothing_applied(self):
        """An invalid change raises ConfigError and leaves the hyperparameters as they were."""
        t = Trainer(make_config())
        hp = t.hp
        with pytest.raises(ConfigError, match="beta1"):
            t.set_hyperparams(alpha=0.5, beta1=1.2)
        with pytest.raises(ConfigError, match="did you mean 'alpha'"):
            t.set_hyperparams(alfa=0.5)
        assert t.hp is hp

    def test_alpha_in_force_follows_changes(self):
        """alpha_in_force reflects a change at once, with the current epoch's decay."""
        t = Trainer(make_config(mini_batch_size=10_000, learning_rate_decay=1.0))
        run(t, 3)
        t.set_hyperparams(alpha=0.4)
        assert t.alpha_in_force() == 0.1
        assert t.step().alpha == 0.1


class TestDivergence:
    def test_injected_nan(self):
        """A NaN weight makes the cost NaN: the record names the weight, nothing is updated, the next step raises."""
        t = Trainer(make_config())
        run(t, 3)
        t.model.params[0] = np.nan
        before = t.model.params.copy()
        optimizer_state = t.optimizer.state_dict()
        with np.errstate(all="ignore"):
            r = t.step()
        assert r.diverged == "a weight became non-finite at the update of step 3"
        assert np.isnan(r.cost) and r.step == 4
        assert np.array_equal(t.model.params, before, equal_nan=True)
        assert np.array_equal(t.optimizer.state_dict()["v"], optimizer_state["v"])
        assert t.step_count == 3 and t.examples_seen == M_TRAIN  # 64 + 64 + 32
        with pytest.raises(DivergedError, match="a weight became non-finite"):
            t.step()

    def test_natural_divergence(self):
        """gd with alpha 10 and strong L2 blows up; the last good weights are kept and stay finite."""
        t = Trainer(make_config(optimizer="gd", alpha=10, lambd=100, mini_batch_size=10_000))
        records = []
        with np.errstate(all="ignore"):
            for _ in range(1000):
                records.append(t.step())
                if records[-1].diverged:
                    break
        last = records[-1]
        assert last.diverged, "the run never diverged"
        assert not np.isfinite(last.cost)
        assert all(np.isfinite(r.cost) and r.diverged is None for r in records[:-1])
        assert np.isfinite(t.model.params).all()
        assert f"weights kept from step {last.step - 1}" in last.diverged
        with pytest.raises(DivergedError):
            t.step()

    def test_non_finite_weight_after_update(self):
        """A weight that becomes non-finite in an update is caught by the next step, before any further update."""
        t = Trainer(make_config(optimizer="gd"))

        def poisoned_update(params, grads, alpha, hp):
            params[3] = np.inf

        t.optimizer.update = poisoned_update
        r = t.step()
        assert np.isfinite(r.cost) and r.diverged is None
        with np.errstate(all="ignore"):
            r = t.step()
        assert r.diverged == "a weight became non-finite at the update of step 1"
        assert t.step_count == 1
        with pytest.raises(DivergedError, match="a weight became non-finite"):
            t.step()

    def test_diverged_error_is_babysit_error(self):
        """DivergedError is a BabysitError and a RuntimeError."""
        from babysit.errors import BabysitError

        assert issubclass(DivergedError, BabysitError) and issubclass(DivergedError, RuntimeError)


class TestEvaluate:
    def test_costs_and_accuracies_by_hand(self):
        """train and dev cost are the mean cross-entropy of predict_proba; accuracies the share right."""
        t = Trainer(make_config(mini_batch_size=32, lambd=0.5))
        run(t, 50)
        e = t.evaluate()
        assert e.step == 50
        for X, y, cost, accuracy in [
            (t.X, t.data.y_train, e.train_cost, e.train_accuracy),
            (t.X_dev, t.data.y_dev, e.dev_cost, e.dev_accuracy),
        ]:
            P = t.model.predict_proba(X)
            assert cost == pytest.approx(-np.mean(np.log(P[y, np.arange(y.size)])), rel=1e-12)
            assert accuracy == np.mean(P.argmax(axis=0) == y)
            assert 0 <= accuracy <= 1

    def test_train_cost_has_no_l2(self):
        """evaluate's train cost leaves out the L2 term, whatever lambd."""
        t = Trainer(make_config(lambd=5.0))
        assert t.evaluate().train_cost == pytest.approx(t.model.cost(t.X, t.Y, 0.0), rel=1e-12)

    def test_no_dev_set(self):
        """With dev_fraction 0 the dev figures are None."""
        t = Trainer(make_config(dev_fraction=0))
        run(t, 3)
        e = t.evaluate()
        assert e.dev_cost is None and e.dev_accuracy is None
        assert 0 <= e.train_accuracy <= 1

    def test_learns_moons(self):
        """After a few hundred steps the net classifies most of moons right."""
        t = Trainer(make_config(layers=(16, 16), mini_batch_size=32, alpha=0.01))
        before = t.evaluate()
        run(t, 400)
        after = t.evaluate()
        assert after.train_accuracy > 0.9 and after.dev_accuracy > 0.85
        assert after.train_cost < before.train_cost

    def test_predict(self):
        """predict gives class indices for examples as columns."""
        t = Trainer(make_config())
        run(t, 100)
        pred = t.predict(t.X_dev)
        assert pred.shape == (t.X_dev.shape[1],)
        assert np.array_equal(pred, t.model.predict_proba(t.X_dev).argmax(axis=0))

    @pytest.mark.parametrize("dtype", ["float64", "float32"])
    def test_examples_kept_as_rows_in_data_order(self, dtype):
        """The training and dev examples share one array of rows: each example's features are contiguous
        (a mini-batch gathers whole rows; a strided array makes that ~100x slower on wide data), and the
        views hold the data set's own examples, train first."""
        t = Trainer(make_config(dtype=dtype))
        assert t.X_rows.flags.c_contiguous and t.X_rows.strides[1] == t.X_rows.itemsize
        np.testing.assert_array_equal(t.X, t.data.X_train.astype(dtype))
        np.testing.assert_array_equal(t.X_dev, t.data.X_dev.astype(dtype))

    def test_one_hot_rows(self):
        """one_hot_rows puts a 1 in column y of each example's row."""
        Y = one_hot_rows(np.array([2, 0, 1]), 3, np.float32)
        assert Y.dtype == np.float32
        assert Y.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]


class TestCheckpoint:
    @pytest.mark.parametrize("at", [50, 48, 1])  # mid-epoch, on an epoch boundary, in the first pass
    @pytest.mark.parametrize("optimizer", ["adam", "momentum", "gd"])
    def test_restore_continues_bit_for_bit(self, at, optimizer):
        """Save at a step, go on 100 steps; a fresh trainer restored from the save goes on identically."""
        config = make_config(mini_batch_size=64, optimizer=optimizer, alpha=0.02, learning_rate_decay=0.1)
        a = Trainer(config)
        run(a, at)
        state = a.state_dict()
        ra = run(a, 100)
        b = Trainer(config)
        b.load_state_dict(state)
        assert (b.step_count, b.epoch, b.position, b.examples_seen) == (
            state["step"], state["epoch"], state["position"], state["examples_seen"],
        )
        rb = run(b, 100)
        assert costs(ra) == costs(rb)
        assert ra == rb
        assert np.array_equal(a.model.params, b.model.params)
        assert ra[0].step == at + 1

    def test_restore_differs_from_fresh(self):
        """Without the restore the continuation differs (the test above can fail)."""
        config = make_config(mini_batch_size=64)
        a, b = Trainer(config), Trainer(config)
        run(a, 50)
        assert costs(run(a, 10)) != costs(run(b, 10))

    def test_state_is_a_copy(self):
        """Training after state_dict does not alter the saved state."""
        t = Trainer(make_config())
        run(t, 5)
        state = t.state_dict()
        params, v, order = state["params"].copy(), state["optimizer_state"]["v"].copy(), state["order"].copy()
        run(t, 10)
        assert np.array_equal(state["params"], params)
        assert np.array_equal(state["optimizer_state"]["v"], v)
        assert np.array_equal(state["order"], order)

    def test_restore_brings_back_hyperparameters(self):
        """Hyperparameters changed by hand before saving come back on restore."""
        config = make_config()
        a = Trainer(config)
        run(a, 3)
        a.set_hyperparams(alpha=0.07, mini_batch_size=16, optimizer="rmsprop")
        run(a, 3)
        b = Trainer(config)
        b.load_state_dict(a.state_dict())
        assert b.hp == a.hp and b.optimizer.name == "rmsprop" and b.optimizer.t == 3
        assert costs(run(a, 20)) == costs(run(b, 20))

    def test_restore_fresh_state(self):
        """A state saved before any step restores to a trainer that runs like a new one."""
        config = make_config()
        a = Trainer(config)
        state = a.state_dict()
        assert state["order"] is None and state["optimizer_state"]["v"] is None
        ra = run(a, 30)
        b = Trainer(config)
        run(b, 7)
        b.load_state_dict(state)
        assert costs(run(b, 30)) == costs(ra)

    def test_restore_clears_divergence(self):
        """Restoring a good state into a diverged trainer lets it train again."""
        config = make_config()
        t = Trainer(config)
        run(t, 3)
        state = t.state_dict()
        ra = run(t, 5)
        t.load_state_dict(state)
        t.model.params[0] = np.nan
        with np.errstate(all="ignore"):
            assert t.step().diverged
        t.load_state_dict(state)
        assert costs(run(t, 5)) == costs(ra)

    def test_wrong_architecture_refused(self):
        """A state from another architecture is refused with both sizes."""
        a = Trainer(make_config(layers=(8,)))
        b = Trainer(make_config(layers=(4,)))
        with pytest.raises(ConfigError, match=r"checkpoint has \d+ parameters, this model \d+"):
            b.load_state_dict(a.state_dict())


class TestFloat32:
    def test_float32_throughout(self):
        """A float32 run keeps float32 data, weights, gradients and moments, and trains."""
        t = Trainer(make_config(dtype="float32", mini_batch_size=32, lambd=0.1))
        assert t.X.dtype == t.Y.dtype == t.X_dev.dtype == np.float32
        records = run(t, 200)
        assert t.model.params.dtype == np.float32 and t.model.grads.dtype == np.float32
        assert t.optimizer.v.dtype == np.float32 and t.optimizer.s.dtype == np.float32
        assert all(isinstance(r.cost, float) and np.isfinite(r.cost) for r in records)
        assert np.mean(costs(records[-20:])) < np.mean(costs(records[:20]))
        assert t.evaluate().train_accuracy > 0.8

    @pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop"])
    def test_float32_every_optimizer(self, optimizer):
        """No optimizer promotes the float32 weights to float64."""
        t = Trainer(make_config(dtype="float32", optimizer=optimizer))
        run(t, 10)
        assert t.model.params.dtype == np.float32

    def test_float32_starts_from_float64_weights(self):
        """float32 and float64 runs start from the same weights, rounded."""
        a = Trainer(make_config(dtype="float32"))
        b = Trainer(make_config(dtype="float64"))
        assert np.array_equal(a.model.params, b.model.params.astype(np.float32))

    def test_float32_checkpoint(self):
        """A float32 state restores bit for bit too."""
        config = make_config(dtype="float32")
        a = Trainer(config)
        run(a, 10)
        b = Trainer(config)
        b.load_state_dict(a.state_dict())
        assert costs(run(a, 20)) == costs(run(b, 20))
        assert np.array_equal(a.model.params, b.model.params)
