"""The live session: commands landing at exact steps, rewind, branch, guardrails, health, snapshots, threads."""

import dataclasses
import json
import math
import os
import sys
import threading
import time

import numpy as np
import pytest

from babysit.config import parse_config
from babysit.errors import BabysitError, ConfigError, DivergedError
from babysit.events import Event
from babysit.session import Session, SessionSettings, Snapshot, evaluation_interval, periodic_checkpoints_kept
from babysit.store import STEP_FIELDS, Store
from babysit.trainer import StepRecord, Trainer

M_TRAIN = 160  # 200 moons examples, a fifth held out: 5 updates of 32 make an epoch


def make_config(layers=None, n_samples=200, schedule=(), data=None, **hyperparameters):
    d = {"data": data or {"name": "moons", "n_samples": n_samples},
         "hyperparameters": {"mini_batch_size": 32, **hyperparameters}, "schedule": list(schedule)}
    if layers is not None:
        d["model"] = {"layers": list(layers)}
    return parse_config(json.dumps(d))


@pytest.fixture
def store(tmp_path):
    s = Store(home=tmp_path / "store")
    yield s
    s.close()


def new_session(store, config=None, **settings):
    return Session.create(store, config or make_config(), settings=SessionSettings(**settings))


def started(store, config=None, **settings):
    session = new_session(store, config, **settings)
    session.submit("start")
    return session


def ticks(session, n):
    """n turns of the loop; the records they trained."""
    return [session.tick() for _ in range(n)]


def until_idle(session, limit=100_000):
    """Tick until a turn trains nothing; the records trained."""
    records = []
    for _ in range(limit):
        record = session.tick()
        if record is None:
            return records
        records.append(record)
    raise AssertionError("still training")


def by_ticks_and_in_a_thread(store, config, kind, n, **settings):
    """Two fresh runs of ``config`` trained by the same command (``kind``: step or epochs, ``n``): one
    by tick(), one in its thread; both closed. Returns (by_ticks, threaded)."""
    by_ticks = new_session(store, config, **settings)
    by_ticks.submit(kind, n=n)
    until_idle(by_ticks)
    threaded = new_session(store, config, **settings)
    threaded.start_thread()
    threaded.submit(kind, n=n)
    try:
        wait_for(lambda: threaded.status == "paused" and not threaded.snapshot().pending, timeout=60)
    finally:
        threaded.close()
    by_ticks.close()
    return by_ticks, threaded


def kinds(events):
    return [(e.kind, e.step) for e in events]


def unscheduled(records):
    """Each record's numbers without its ``changes`` (a twin Trainer's schedule shows there, a live change not)."""
    return [(r.step, r.epoch, r.examples_seen, r.alpha, r.cost, r.batch_size, r.diverged) for r in records]


def wait_for(condition, timeout=10.0):
    """Poll a condition until it holds (threads only); fail after the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        time.sleep(0.005)


class TestCommandsLandAtTheirStep:
    def test_set_takes_effect_at_the_next_update(self, store):
        """After N steps, set(alpha) then tick: update N+1 uses it; the event is stamped with step N."""
        session = started(store)
        before = ticks(session, 40)
        assert [r.step for r in before] == list(range(1, 41)) and before[-1].alpha == 0.01
        command = session.set(alpha=0.05)
        snap = session.snapshot()
        assert [c.id for c in snap.pending] == [command.id]
        assert snap.pending[0].kind == "set" and snap.pending[0].args == {"changes": {"alpha": 0.05}}
        assert "change" not in [e.kind for e in snap.events]
        assert snap.hyperparameters.alpha == 0.01

        record = session.tick()
        assert record.step == 41 and record.alpha == 0.05
        event = command.result(timeout=0)
        assert event.kind == "change" and event.source == "user"
        assert event.step == 40  # updates completed when it took effect
        assert event.epoch == 40 * 32 // M_TRAIN == 8 and event.examples_seen == 40 * 32
        assert event.changes == {"alpha": [0.01, 0.05]}
        snap = session.snapshot()
        assert snap.pending == ()
        assert snap.events[-1] == event
        assert store.events(session.run_id)[-1] == event
        assert snap.hyperparameters.alpha == 0.05 and snap.step == 41

    def test_matches_a_scheduled_change_bit_for_bit(self, store):
        """A live change at step N trains exactly as a config schedule entry at step N+1 does."""
        session = started(store)
        ticks(session, 23)
        session.set(alpha=0.03, beta1=0.8, lambd=0.01)
        live = ticks(session, 30)
        twin = Trainer(make_config(schedule=[{"step": 24, "set": {"alpha": 0.03, "beta1": 0.8, "lambd": 0.01}}]))
        replay = [twin.step() for _ in range(53)][23:]
        assert [r.cost for r in live] == [r.cost for r in replay]
        assert np.array_equal(session.trainer.model.params, twin.model.params)

    def test_set_while_paused_applies_at_once(self, store):
        """A change submitted before the start lands at step 0 and nothing trains."""
        session = new_session(store)
        command = session.set(alpha=0.2)
        assert session.tick() is None
        assert command.result(timeout=0).step == 0
        assert session.trainer.hp.alpha == 0.2 and session.trainer.step_count == 0

    def test_set_to_the_value_in_force_changes_nothing(self, store):
        """Setting a value already in force records no event."""
        session = started(store)
        ticks(session, 3)
        command = session.set(alpha=0.01)
        session.tick()
        assert command.result(timeout=0) is None
        assert "change" not in [e.kind for e in session.snapshot().events]

    def test_bad_set_refused_at_submit(self, store):
        """set(beta1=1.2) raises ConfigError naming beta1: nothing queued, nothing changed."""
        session = started(store)
        ticks(session, 5)
        events = session.snapshot().events
        with pytest.raises(ConfigError, match="beta1"):
            session.set(beta1=1.2)
        with pytest.raises(ConfigError, match="alhpa"):
            session.set(alhpa=0.1)
        with pytest.raises(ConfigError, match="learning_rate_decay"):
            session.set(decay_schedule="exponential")  # its rate 0 is not valid for that schedule
        assert session.snapshot().pending == ()
        record = session.tick()
        assert record.step == 6 and session.trainer.hp == make_config().hyperparameters
        assert session.snapshot().events == events

    def test_bad_commands_refused(self, store):
        """A step count that is not a whole number >= 1, or an unknown kind, is refused at submit."""
        session = new_session(store)
        for n in (0, -3, 2.5, None, "5"):
            with pytest.raises(ConfigError):
                session.submit("step", n=n)
        with pytest.raises(ValueError, match="unknown command"):
            session.submit("explode")
        assert session.snapshot().pending == ()

    def test_step_n_trains_exactly_n_then_pauses(self, store):
        """step n=25 trains 25 updates, then pauses with a checkpoint and a pause event."""
        session = new_session(store)
        session.submit("step", n=25)
        records = until_idle(session)
        assert [r.step for r in records] == list(range(1, 26))
        assert session.status == "paused" and session.trainer.step_count == 25
        snap = session.snapshot()
        assert snap.events[-1].kind == "pause" and snap.events[-1].step == 25
        assert snap.checkpoints[-1] == (25, "pause")
        assert session.tick() is None
        session.submit("step", n=5)
        assert [r.step for r in until_idle(session)] == [26, 27, 28, 29, 30]
        assert store.get_run(session.run_id).status == "paused"

    def test_pause_and_resume(self, store):
        """pause stops training at once; resume goes on from the same step."""
        session = started(store)
        ticks(session, 7)
        session.submit("pause")
        assert session.tick() is None and session.status == "paused"
        assert session.tick() is None
        session.submit("resume")
        assert session.tick().step == 8


class TestEveryLiveHyperparameter:
    @pytest.mark.parametrize("optimizer, changes", [
        ("adam", {"alpha": 0.05}),
        ("momentum", {"beta": 0.5}),
        ("adam", {"beta1": 0.5}),
        ("adam", {"beta2": 0.9}),
        ("rmsprop", {"beta2": 0.9}),
        ("adam", {"epsilon": 0.1}),
        ("rmsprop", {"epsilon": 0.1}),
        ("adam", {"lambd": 0.5}),
        ("gd", {"lambd": 0.5}),
        ("adam", {"learning_rate_decay": 0.9, "decay_schedule": "exponential"}),
        ("adam", {"learning_rate_decay": 2.0}),
    ])
    def test_change_affects_the_very_next_update(self, store, optimizer, changes):
        """Each live hyperparameter changes the next update, exactly as a schedule entry would."""
        config = make_config(optimizer=optimizer)
        session = started(store, config)
        ticks(session, 12)
        command = session.set(**changes)
        live = ticks(session, 8)
        event = command.result(timeout=0)
        assert event.step == 12
        assert event.changes == {k: [getattr(config.hyperparameters, k), v] for k, v in changes.items()}
        assert all(getattr(session.trainer.hp, k) == v for k, v in changes.items())

        same = Trainer(make_config(optimizer=optimizer, schedule=[{"step": 13, "set": changes}]))
        other = Trainer(config)  # the run without the change
        replay = [same.step() for _ in range(20)][12:]
        unchanged = [other.step() for _ in range(20)][12:]
        assert [r.cost for r in live] == [r.cost for r in replay]
        assert np.array_equal(session.trainer.model.params, same.model.params)
        assert not np.array_equal(session.trainer.model.params, other.model.params)
        assert live[0].cost == unchanged[0].cost or "lambd" in changes  # only L2 changes the cost before it

    def test_decay_schedule_and_rate_together(self, store):
        """Exponential decay 0.9 set at epoch 2: the next update's alpha is 0.01 · 0.9², epoch by epoch after."""
        session = started(store)
        ticks(session, 10)  # 2 epochs done
        session.set(decay_schedule="exponential", learning_rate_decay=0.9)
        records = ticks(session, 10)
        assert records[0].epoch == 2 and records[0].alpha == pytest.approx(0.01 * 0.9**2, rel=1e-12)
        assert records[5].epoch == 3 and records[5].alpha == pytest.approx(0.01 * 0.9**3, rel=1e-12)
        assert session.snapshot().alpha_in_force == pytest.approx(0.01 * 0.9**4, rel=1e-12)
        assert session.snapshot().hyperparameters.alpha == 0.01

    def test_mini_batch_size_at_the_next_batch(self, store):
        """A new batch size is used from the next update; examples and epochs are counted right."""
        session = started(store)
        ticks(session, 7)  # 224 examples: epoch 1, 64 into it
        assert (session.trainer.epoch, session.trainer.examples_seen) == (1, 224)
        session.set(mini_batch_size=50)
        r = ticks(session, 6)
        assert [x.batch_size for x in r] == [50, 46, 50, 50, 50, 10]  # each epoch's last batch is what is left
        assert [x.examples_seen for x in r] == [274, 320, 370, 420, 470, 480]
        assert [x.epoch for x in r] == [1, 1, 2, 2, 2, 2]
        assert (session.trainer.epoch, session.trainer.examples_seen) == (3, 480)
        assert session.snapshot().examples_seen == 480
        session.set(mini_batch_size=1000)  # more than the training set: full batch
        assert [x.batch_size for x in ticks(session, 2)] == [M_TRAIN, M_TRAIN]

    def test_optimizer_switch_starts_fresh(self, store):
        """Switching optimizer gives the new one fresh state: t == 0 right after the switch."""
        session = started(store)
        ticks(session, 30)
        assert session.trainer.optimizer.t == 30
        session.submit("pause")
        session.tick()
        command = session.set(optimizer="momentum", beta=0.8)
        assert session.tick() is None
        assert session.trainer.optimizer.name == "momentum" and session.trainer.optimizer.t == 0
        assert command.result(timeout=0).changes == {"optimizer": ["adam", "momentum"], "beta": [0.9, 0.8]}
        session.submit("resume")
        record = session.tick()
        assert record.step == 31 and session.trainer.optimizer.t == 1
        twin = Trainer(make_config(schedule=[{"step": 31, "set": {"optimizer": "momentum", "beta": 0.8}}]))
        for _ in range(31):
            twin.step()
        assert np.array_equal(session.trainer.model.params, twin.model.params)


def run_with_change_at_150(store):
    """Train to 300 with checkpoints every 100 and a change at 150; the records of 151 … 300."""
    session = started(store, checkpoint_every=100)
    ticks(session, 150)
    session.set(alpha=0.03, beta1=0.8)
    return session, ticks(session, 150)


class TestRewind:
    def test_rewind_then_continue_is_bit_exact(self, store):
        """Rewind to the pre-change checkpoint, re-apply the change, resume: identical costs and weights."""
        session, first = run_with_change_at_150(store)
        params = session.trainer.model.params.copy()
        assert [r.step for r in first] == list(range(151, 301))
        assert [c[0] for c in session.snapshot().checkpoints] == [0, 100, 150, 200, 300]

        command = session.submit("rewind", step=150)
        assert session.tick() is None
        event = command.result(timeout=0)
        assert event.kind == "rewind" and event.step == 150
        assert "checkpoint at step 150 (change)" in event.message and "151–300 discarded" in event.message
        assert session.status == "paused" and session.trainer.step_count == 150
        assert session.trainer.hp.alpha == 0.01  # the checkpoint was taken before the change
        snap = session.snapshot()
        change = [e for e in snap.events if e.kind == "change"]
        assert len(change) == 1 and change[0].undone
        assert all(e.undone for e in snap.events if e.step > 150)
        assert not any(e.undone for e in snap.events if e.kind in ("start", "rewind"))
        assert [c[0] for c in snap.checkpoints] == [0, 100, 150]
        assert snap.cost_means[0][-1] == 150
        assert [e.undone for e in store.events(session.run_id)] == [e.undone for e in snap.events]

        session.set(alpha=0.03, beta1=0.8)
        session.submit("resume")
        again = ticks(session, 150)
        assert [r.cost for r in again] == [r.cost for r in first]
        assert again == first
        assert np.array_equal(session.trainer.model.params, params)

    def test_rewind_between_checkpoints_takes_the_one_before(self, store):
        """Rewinding to step 250 restores the newest checkpoint at or before it (200)."""
        session, first = run_with_change_at_150(store)
        command = session.submit("rewind", step=250)
        session.tick()
        assert command.result(timeout=0).message.startswith("to the checkpoint at step 200 (periodic)")
        assert session.trainer.step_count == 200 and session.trainer.hp.alpha == 0.03
        session.submit("resume")
        assert ticks(session, 100) == first[50:]

    def test_rewind_with_changes_and_resume(self, store):
        """rewind(step, changes, resume=True) restores, applies the change at that step and trains on."""
        session, _ = run_with_change_at_150(store)
        command = session.submit("rewind", step=149, changes={"alpha": 0.002}, resume=True)
        record = session.tick()
        assert command.result(timeout=0).step == 100
        assert record.step == 101 and record.alpha == 0.002 and session.status == "running"
        change = session.snapshot().events[-2]
        assert (change.kind, change.step, change.changes, change.undone) == ("change", 100, {"alpha": [0.01, 0.002]},
                                                                              False)

    def test_rewind_before_any_checkpoint_refused(self, store):
        """A rewind to a step with no checkpoint at or before it fails its command and changes nothing."""
        session = started(store)
        ticks(session, 10)
        command = session.submit("rewind", step=-1)
        session.tick()
        with pytest.raises(BabysitError, match="no checkpoint"):
            command.result(timeout=0)
        assert session.trainer.step_count == 11 and session.status == "running"
        assert session.snapshot().events[-1].kind == "error"

    def test_metrics_after_rewind_contiguous(self, store):
        """After rewinds the store's metrics run 1 … N once each, batches cut where they straddle."""
        session = started(store, checkpoint_every=100)
        ticks(session, 120)
        session._flush()  # as the clock would: a batch 1 … 120
        ticks(session, 140)
        session.submit("pause")
        session.tick()  # flushed 121 … 260
        session.submit("rewind", step=230)
        session.tick()
        steps = store.metrics(session.run_id)["step"]
        np.testing.assert_array_equal(steps, np.arange(1, 201))
        session.submit("rewind", step=110)  # inside the first batch
        session.tick()
        np.testing.assert_array_equal(store.metrics(session.run_id)["step"], np.arange(1, 101))
        session.submit("step", n=77)
        until_idle(session)
        columns = store.metrics(session.run_id)
        np.testing.assert_array_equal(columns["step"], np.arange(1, 178))
        assert np.all(np.diff(columns["examples_seen"]) == 32)
        assert session.snapshot().cost_means[0][-1] == 177


class TestCheckpointThinning:
    """Periodic checkpoints kept: at each spacing every × 10^j, the newest few at a multiple of it."""

    def test_by_hand(self):
        # every 10, 3 kept: 1980-2000 at 10 apart, 1800-2000 at 100, 1000 and 2000 at 1,000
        assert periodic_checkpoints_kept(list(range(10, 2001, 10)), 10, 3) == {1000, 1800, 1900, 1980, 1990, 2000}
        # every 20,000 up to 400,000, 10 kept: 220,000-400,000, and 200,000 at 200,000 apart
        assert periodic_checkpoints_kept(list(range(20_000, 400_001, 20_000)), 20_000, 10) == set(
            range(200_000, 400_001, 20_000))
        assert periodic_checkpoints_kept([], 10, 3) == set()
        assert periodic_checkpoints_kept([7, 13], 10, 3) == {13}  # off the spacing (another setting): the newest

    def test_a_long_run_keeps_few_and_deletes_the_rest(self, store):
        session = started(store, checkpoint_every=10, checkpoints_kept=3)
        ticks(session, 505)
        session.set(alpha=0.003)  # a change's checkpoint, at 505, is never thinned
        session.submit("step", n=1495)
        until_idle(session)
        kept = [(c.step, c.reason) for c in store.checkpoints(session.run_id)]
        assert kept == [(0, "start"), (505, "change"), (1000, "periodic"), (1800, "periodic"), (1900, "periodic"),
                        (1980, "periodic"), (1990, "periodic"), (2000, "periodic")]
        assert list(session.snapshot().checkpoints) == kept
        folder = os.path.join(store.home, "checkpoints", session.run_id)
        assert sorted(os.listdir(folder)) == sorted(os.path.basename(c.file) for c in store.checkpoints(session.run_id))

    def test_a_rewind_between_kept_ones_takes_the_one_before_exactly(self, store):
        session = started(store, checkpoint_every=10, checkpoints_kept=3)
        session.submit("pause")
        session.submit("step", n=1200)
        until_idle(session)
        trained = store.metrics(session.run_id)["cost"]
        # kept: 1,180-1,200 (10 apart), 1,000-1,200 (100 apart), 1,000; 1,010-1,050 were thinned away
        assert [c[0] for c in session.snapshot().checkpoints] == [0, 1000, 1100, 1180, 1190, 1200]
        session.submit("rewind", step=1050)
        session.tick()
        assert session.trainer.step_count == 1000
        session.submit("step", n=200)
        again = until_idle(session)
        assert [r.cost for r in again] == list(trained[1000:1200])
        session.close()
        reopened = Session.open(store, session.run_id)
        assert reopened.trainer.step_count == 1200
        reopened.close()


class TestBranch:
    def test_branch_makes_a_child_run(self, store):
        """branch(step, changes) makes a run with parent and fork step, history to the fork, the change in force."""
        session = started(store, checkpoint_every=100)
        ticks(session, 230)
        parent_params = session.trainer.model.params.copy()
        command = session.submit("branch", step=150, changes={"alpha": 0.05}, name="faster")
        record = session.tick()
        child = command.result(timeout=0)
        assert record.step == 231  # the parent trains on
        info = store.get_run(child)
        assert info.parent == session.run_id and info.fork_step == 100 and info.name == "faster"
        assert info.status == "paused" and info.step == 100
        assert info.hyperparameters["alpha"] == 0.05
        parent_metrics, child_metrics = store.metrics(session.run_id), store.metrics(child)
        for f, column in child_metrics.items():
            np.testing.assert_array_equal(column, parent_metrics[f][:100])
        child_events = store.events(child)
        assert [e.kind for e in child_events][-2:] == ["branch", "change"]
        assert child_events[-1].changes == {"alpha": [0.01, 0.05]} and child_events[-1].step == 100

        reopened = Session.open(store, child)
        assert reopened.status == "paused" and reopened.trainer.step_count == 100
        assert reopened.trainer.hp.alpha == 0.05
        assert reopened.snapshot().parent == session.run_id and reopened.snapshot().fork_step == 100
        reopened.submit("start")
        branched = ticks(reopened, 30)
        twin = Trainer(make_config(schedule=[{"step": 101, "set": {"alpha": 0.05}}]))
        replay = [twin.step() for _ in range(130)][100:]
        assert unscheduled(branched) == unscheduled(replay)
        reopened.close()
        np.testing.assert_array_equal(store.metrics(child)["step"], np.arange(1, 131))

        # the parent is untouched
        assert session.trainer.step_count == 231 and session.trainer.hp.alpha == 0.01
        assert session.snapshot().events[-1].kind == "branch"
        assert not np.array_equal(session.trainer.model.params, parent_params)  # it trained one more step
        session.close()
        np.testing.assert_array_equal(store.metrics(session.run_id)["step"], np.arange(1, 232))
        assert store.get_run(session.run_id).parent is None

    def test_branch_switching_optimizer(self, store):
        """A branch that switches optimizer starts it fresh, as a live switch does."""
        session = started(store, checkpoint_every=50)
        ticks(session, 60)
        command = session.submit("branch", step=50, changes={"optimizer": "gd", "alpha": 0.1})
        session.tick()
        child = Session.open(store, command.result(timeout=0))
        assert child.trainer.optimizer.name == "gd" and child.trainer.optimizer.t == 0
        child.submit("start")
        got = ticks(child, 10)
        twin = Trainer(make_config(schedule=[{"step": 51, "set": {"optimizer": "gd", "alpha": 0.1}}]))
        assert unscheduled(got) == unscheduled([twin.step() for _ in range(60)][50:])
        child.close()
        session.close()

    def test_bad_branch_makes_no_run(self, store):
        """A branch with an invalid change fails its command and creates nothing."""
        session = started(store)
        ticks(session, 5)
        command = session.submit("branch", step=0, changes={"beta2": 1.0})
        session.tick()
        with pytest.raises(ConfigError, match="beta2"):
            command.result(timeout=0)
        assert [r.id for r in store.list_runs()] == [session.run_id]


def low_cost_session(store, **settings):
    """Adam on moons trained to a low cost (400 steps, a checkpoint every 100)."""
    session = started(store, checkpoint_every=100, **settings)
    ticks(session, 400)
    return session


def train_until_paused(session, limit=3000):
    records = []
    while session.status == "running" and len(records) < limit:
        records.append(session.tick())
    assert session.status == "paused", "the guardrail did not fire"
    return records


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy overflows on the way to a non-finite cost
class TestGuardrail:
    def test_non_finite_cost(self, store):
        """A NaN/inf cost pauses the run, says why, offers the last good checkpoint and trains no further."""
        session = started(store, checkpoint_every=100, guard_factor=1e300)  # only the non-finite check
        ticks(session, 250)
        session.set(optimizer="gd", alpha=10.0, lambd=5.0)
        records = train_until_paused(session)
        last = records[-1]
        assert last.diverged and not math.isfinite(last.cost)
        guard = session.snapshot().guardrail
        assert guard is not None and guard.step == last.step
        assert guard.rewind_to == 250  # the checkpoint taken just before the change
        assert "cost became" in guard.reason
        event = session.snapshot().events[-1]
        assert event.kind == "guardrail" and event.source == "guardrail"
        assert guard.reason in event.message and "rewind to step 250" in event.message
        assert event.step == session.trainer.step_count == last.step - 1  # the bad update was not made
        assert store.get_run(session.run_id).status == "paused"
        for _ in range(3):
            assert session.tick() is None
        assert session.trainer.step_count == last.step - 1

    def test_resume_after_non_finite_cost_refused(self, store):
        """Resuming a diverged run without a rewind is refused (the run stays paused, not failed); a rewind goes on."""
        session = started(store, checkpoint_every=100, guard_factor=1e300)
        ticks(session, 250)
        session.set(optimizer="gd", alpha=10.0, lambd=5.0)
        train_until_paused(session)
        for kind, args in (("resume", {}), ("step", {"n": 3})):
            command = session.submit(kind, **args)
            assert session.tick() is None
            with pytest.raises(DivergedError, match="rewind"):
                command.result(timeout=0)
            assert session.status == "paused" and session.error is None
        assert session.snapshot().events[-1].kind == "error"
        session.accept_guardrail(lower_alpha=True)
        record = session.tick()
        # a tenth of the good checkpoint's adam rate (0.01), not of the gd rate that blew up
        assert record.step == 251 and record.alpha == pytest.approx(0.001) and math.isfinite(record.cost)

    @pytest.mark.parametrize("settings, changes", [
        ({}, {"alpha": 5.0}),  # the defaults: 4 × max(best, 0.05)
        ({}, {"optimizer": "gd", "alpha": 10.0, "lambd": 1.0}),
        ({"guard_factor": 1.5, "guard_floor": 0.0}, {"alpha": 0.5}),
    ])
    def test_smoothed_cost_climbing(self, store, settings, changes):
        """The smoothed cost rising above k × its best pauses the run with the pre-change checkpoint offered."""
        session = low_cost_session(store, **settings)
        session.set(**changes)
        records = train_until_paused(session)
        assert len(records) < 50
        guard = session.guardrail
        assert "rose above" in guard.reason and guard.step == records[-1].step
        assert guard.rewind_to == 400
        assert guard.lowered_alpha == pytest.approx(0.1 * 0.01)  # a tenth of the good checkpoint's rate
        assert session.snapshot().events[-1].kind == "guardrail"
        steps = session.trainer.step_count
        assert session.tick() is None and session.tick() is None
        assert session.trainer.step_count == steps

    def test_accept_with_lower_alpha(self, store):
        """accept_guardrail(lower_alpha=True) rewinds to the checkpoint and resumes with a tenth of the lower of
        the base rate at the trip and the checkpoint's."""
        config = make_config(decay_schedule="exponential", learning_rate_decay=0.999)
        session = started(store, config, checkpoint_every=100)
        ticks(session, 400)
        session.set(alpha=5.0)
        records = train_until_paused(session)
        assert records[-1].alpha < 5.0  # decayed
        command = session.accept_guardrail(lower_alpha=True)
        record = session.tick()
        assert command.result(timeout=0).kind == "rewind" and command.source == "guardrail"
        assert session.status == "running" and session.guardrail is None
        assert session.trainer.hp.alpha == pytest.approx(0.1 * 0.01)  # the checkpoint's base rate was 0.01
        assert record.step == 401
        events = session.snapshot().events
        assert [(e.kind, e.source, e.undone) for e in events[-3:]] == [
            ("rewind", "guardrail", False), ("change", "guardrail", False), ("resume", "guardrail", False)]
        assert [e.undone for e in events if e.kind == "guardrail"] == [True]

    def test_accept_plain_rewinds_and_pauses(self, store):
        """accept_guardrail() rewinds to the last good checkpoint and stays paused."""
        session = low_cost_session(store)
        session.set(alpha=5.0)
        train_until_paused(session)
        session.accept_guardrail()
        assert session.tick() is None
        assert session.status == "paused" and session.trainer.step_count == 400
        assert session.trainer.hp.alpha == 0.01 and session.guardrail is None
        assert session.tick() is None
        session.submit("resume")
        assert session.tick().step == 401

    def test_a_tripped_run_reopens_where_it_was_after_a_shutdown(self, store):
        """close(interrupted=True), as when the server stops: a run the guardrail paused (with no checkpoint
        at its step) gains one there and nothing in its log, and reopens paused at that step, same weights."""
        session = low_cost_session(store)
        session.set(alpha=5.0)
        train_until_paused(session)
        step, params = session.trainer.step_count, session.trainer.model.params.copy()
        assert session.snapshot().checkpoints[-1][0] < step
        log = [(e.kind, e.step) for e in store.events(session.run_id)]
        session.close(interrupted=True)
        assert [(e.kind, e.step) for e in store.events(session.run_id)] == log
        assert store.get_run(session.run_id).status == "paused"
        reopened = Session.open(store, session.run_id)
        assert reopened.status == "paused" and not reopened.interrupted
        assert reopened.trainer.step_count == step
        assert np.array_equal(reopened.trainer.model.params, params)

    def test_no_offer_without_guardrail(self, store):
        """accept_guardrail with nothing tripped is refused."""
        session = started(store)
        with pytest.raises(BabysitError, match="no guardrail"):
            session.accept_guardrail()

    def test_quiet_run_never_trips(self, store):
        """A healthy run with the default settings trains through 1000 steps without a guardrail."""
        session = started(store)
        ticks(session, 1000)
        assert session.status == "running" and session.guardrail is None


class TestHealth:
    def test_health_measured_every_n_steps(self, store):
        """At the health step: per-layer update ratio (= ‖ΔW‖/‖W‖ checked here), grad norm, dead ReLUs, activations."""
        session = started(store, health_every=10)
        model = session.trainer.model
        ticks(session, 9)
        before = {l: model.W[l].copy() for l in range(1, model.L + 1)}
        session.tick()
        after = {l: model.W[l].copy() for l in range(1, model.L + 1)}
        grads = [float(np.linalg.norm(model.dW[l])) for l in range(1, model.L + 1)]
        session.submit("pause")
        session.tick()  # health reaches the snapshot with the next flush
        health = session.snapshot().last_health
        L = model.L
        assert L == 3  # two relu hidden layers of 16
        ratio = health["update_ratio"]
        assert len(ratio) == L and all(math.isfinite(r) and r > 0 for r in ratio)
        expected = [np.linalg.norm(after[l] - before[l]) / np.linalg.norm(after[l]) for l in range(1, L + 1)]
        np.testing.assert_allclose(ratio, expected, rtol=1e-9)
        np.testing.assert_allclose(health["grad_norm"], grads, rtol=1e-12)
        assert len(health["dead_fraction"]) == L - 1 and all(0 <= d <= 1 for d in health["dead_fraction"])
        assert len(health["activation_mean"]) == L - 1 and len(health["activation_std"]) == L - 1
        assert all(m >= 0 for m in health["activation_mean"])  # relu outputs
        assert all(s > 0 for s in health["activation_std"])
        assert [s for s, _ in store.health(session.run_id)] == [10]
        assert "update_ratio/3" in session.snapshot().series

    def test_dead_relus_counted(self, store):
        """A hidden unit whose incoming weights and bias are very negative counts as dead."""
        session = started(store, config=make_config(layers=[4]), health_every=1)
        model = session.trainer.model
        model.W[1][0, :] = -100.0
        model.b[1][0, 0] = -1e6
        session.submit("step", n=1)
        until_idle(session)
        assert session.snapshot().last_health["dead_fraction"] == [0.25]

    def test_start_event_records_initial_and_chance_cost(self, store):
        """The start event records the initial cost and the chance level ln(C)."""
        for data, classes in (({"name": "moons", "n_samples": 200}, 2), ({"name": "blobs", "n_samples": 300}, 3)):
            config = make_config(data=data)
            session = new_session(store, config)
            start = session.snapshot().events[0]
            evaluation = Trainer(config).evaluate()
            initial = evaluation.train_cost
            assert start.kind == "start" and start.step == 0
            assert start.changes == {"initial_cost": [None, initial], "chance_cost": [None, math.log(classes)],
                                     "train_cost": [None, initial], "dev_cost": [None, evaluation.dev_cost],
                                     "train_accuracy": [None, evaluation.train_accuracy],
                                     "dev_accuracy": [None, evaluation.dev_accuracy]}
            assert f"ln({classes})" in start.message
            snap = session.snapshot()
            assert snap.initial_cost == initial and snap.chance_cost == math.log(classes)
            assert snap.checkpoints == ((0, "start"),)
            assert snap.last_evaluation["step"] == 0 and snap.last_evaluation["train_cost"] == initial


class TestEvaluationInterval:
    """Every 500 steps; on a data set large enough that a pass over it (about n / (3 batch) updates)
    would cost more than 2% of the updates in between, the next multiple of 500 that does not."""

    @pytest.mark.parametrize("n_examples, batch_size, expected", [
        (1000, 64, 500),  # 5.2 updates a pass: 0.4% of 500
        (20_000, 32, 10_500),  # 208.3 updates: 2% of 10,416.7, rounded up to a multiple of 500
        (100_000, 64, 26_500),  # 520.8 updates: 2% of 26,041.7
        (20_000, 512, 1000),  # 13.0 updates: 2% of 651
    ])
    def test_by_hand(self, n_examples, batch_size, expected):
        assert evaluation_interval(n_examples, batch_size) == expected

    def evaluated(self, store, session):
        columns = store.metrics(session.run_id)
        return [int(s) for s in columns["step"][~np.isnan(columns["train_cost"])]]

    def test_a_small_data_set_is_evaluated_every_500_steps(self, store):
        session = started(store)  # 200 examples
        session.submit("pause")
        session.submit("step", n=1200)
        until_idle(session)
        session.close()
        assert self.evaluated(store, session) == [500, 1000, 1200]  # and where it stopped

    def test_a_large_data_set_is_evaluated_less_often(self, store):
        session = new_session(store, make_config(n_samples=20_000))  # batch 32
        assert session.snapshot().eval_every == 10_500
        session.submit("step", n=11_000)
        until_idle(session)
        session.close()
        assert self.evaluated(store, session) == [10_500, 11_000]

    def test_a_live_batch_size_change_moves_it(self, store):
        session = new_session(store, make_config(n_samples=20_000))
        session.set(mini_batch_size=512)
        session.submit("step", n=2500)
        until_idle(session)
        assert session.snapshot().eval_every == 1000
        session.close()
        assert self.evaluated(store, session) == [1000, 2000, 2500]

    def test_settings_that_name_one_keep_it(self, store):
        session = new_session(store, make_config(n_samples=20_000), eval_every=300)
        assert session.snapshot().eval_every == 300
        session.close()

    def test_the_thread_evaluates_where_ticks_do(self, store):
        """Through a scheduled batch-size change, which moves the interval mid-run."""
        # 3,000 examples: batch 8 gives 6,500 steps; batch 64 from step 7,000 gives 1,000
        config = make_config(n_samples=3000, mini_batch_size=8,
                             schedule=[{"step": 7000, "set": {"mini_batch_size": 64}}])
        by_ticks, threaded = by_ticks_and_in_a_thread(store, config, "step", 9500)
        assert self.evaluated(store, by_ticks) == self.evaluated(store, threaded) == [6500, 7000, 8000, 9000, 9500]


@pytest.fixture(scope="class")
def long_run(tmp_path_factory):
    """20,000 steps of a tiny net, history capacity 64, a cost spike at step 10,001; flushed every 0.05 s."""
    store = Store(home=tmp_path_factory.mktemp("long"))
    config = make_config(layers=[4], n_samples=100, mini_batch_size=16)
    session = Session.create(store, config, settings=SessionSettings(history_capacity=64, guard_factor=1e9,
                                                                    flush_every=0.05))
    session.submit("start")
    held = []  # (steps trained since the last flush, per-step records held) every 500 steps
    nbytes = {}
    for step in range(1, 20_001):
        if step == 10_001:
            session.set(lambd=2000.0)  # one step's cost jumps with the L2 term
        elif step == 10_002:
            session.set(lambd=0.0)
        session.tick()
        if step % 500 == 0:
            held.append((step - session._flushed_step,
                         len(session._unfolded) // len(STEP_FIELDS) + sum(len(b["step"]) for b in session._unwritten)))
        if step in (2_000, 20_000):
            # folds what is not yet in the history, health included (a snapshot folds the steps only:
            # whether health measured at step 1,000 is drawn by step 2,000 would depend on the clock)
            session._flush()
            nbytes[step] = sum(s.nbytes() for s in session._series.values())
    yield session, store, held, nbytes
    session.close()
    store.close()


class TestLongRun:
    def test_series_bounded_and_spike_kept(self, long_run):
        """After 20k steps every drawn series has at most 2·64 + 3 points, and the one-step spike is there."""
        session, store, _, _ = long_run
        snap = session.snapshot()
        assert snap.step == 20_000
        assert snap.series and all(len(x) == len(y) <= 2 * 64 + 3 for x, y in snap.series.values())
        assert len(snap.cost_means[0]) <= 64 + 1
        costs = store.metrics(session.run_id)["cost"]
        spike = float(costs[10_000])  # step 10,001
        assert spike > 10 * np.delete(costs, 10_000).max()
        x, y = snap.series["cost"]
        assert 10_001 in x and y[list(x).index(10_001)] == spike

    def test_no_per_step_objects_beyond_a_flush(self, long_run):
        """Only records since the last flush are held; a flush leaves none; the history keeps its size."""
        session, _, held, nbytes = long_run
        assert all(records == since for since, records in held)  # nothing older than the last flush is kept
        session.snapshot()
        session._flush()
        assert session._unfolded == [] and session._unwritten == []
        assert session._evals_unfolded == [] and session._health_unflushed == []
        assert nbytes[20_000] <= nbytes[2_000]
        assert len(session._events) < 10  # events come from commands, not steps


class TestSnapshot:
    def test_snapshot_is_frozen_and_does_not_follow_the_session(self, store):
        """A snapshot is a frozen dataclass; training and changes after it leave it as it was."""
        session = started(store)
        ticks(session, 50)
        snap = session.snapshot()
        assert isinstance(snap, Snapshot)
        with pytest.raises(dataclasses.FrozenInstanceError):
            snap.step = 3
        events, series = snap.events, {k: (x.copy(), y.copy()) for k, (x, y) in snap.series.items()}
        means = tuple(a.copy() for a in snap.cost_means)
        session.set(alpha=0.02)
        ticks(session, 2000)
        session._flush()
        assert snap.step == 50 and snap.hyperparameters.alpha == 0.01 and snap.events == events
        assert len(snap.events) == 2 and snap.pending == ()
        for name, (x, y) in series.items():
            np.testing.assert_array_equal(snap.series[name][0], x)
            np.testing.assert_array_equal(snap.series[name][1], y)
        for before, now in zip(means, snap.cost_means, strict=True):
            np.testing.assert_array_equal(now, before)
        later = session.snapshot()
        assert later.step == 2050 and later.events[-1].kind == "change"

    def test_snapshot_sees_steps_without_a_flush(self, store):
        """The cost series in a snapshot reaches the current step even before any flush."""
        session = started(store)
        ticks(session, 17)
        x, _ = session.snapshot().series["cost"]
        assert x[-1] == 17

    def test_steps_per_second_after_a_resume_count_from_the_resume(self, store, monkeypatch):
        """The rate is the steps between two flushes over the time between them: after a pause, the time
        paused is not part of it. A clock moved by hand: steps of 1 ms each, either side of 100 s paused."""
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        session = new_session(store, flush_every=0.5)
        session.submit("start")

        def train(n):
            for _ in range(n):
                now[0] += 0.001
                session.tick()

        train(1000)
        assert session.snapshot().steps_per_second == pytest.approx(1000, rel=0.01)
        session.submit("pause")
        session.tick()
        assert session.snapshot().steps_per_second == 0
        now[0] += 100.0
        session.submit("resume")
        train(10)  # before the first flush since the resume: the rate measured up to the pause
        assert session.snapshot().steps_per_second == pytest.approx(1000, rel=0.01)  # not 1 step / 100 s
        train(1000)
        assert session.snapshot().steps_per_second == pytest.approx(1000, rel=0.01)


class TestThreads:
    def test_lifecycle(self, store):
        """start_thread, start, train, close: the thread ends, the run is stopped with a final checkpoint."""
        session = new_session(store)
        session.start_thread()
        assert session.alive
        session.submit("start")
        wait_for(lambda: session.snapshot().step > 0)
        session.close()
        assert not session.alive
        assert session.status == "stopped" and store.get_run(session.run_id).status == "stopped"
        assert session.snapshot().checkpoints[-1][0] == session.trainer.step_count
        assert store.checkpoints(session.run_id)[-1].step == session.trainer.step_count
        assert session.snapshot().events[-1].kind == "stop"
        np.testing.assert_array_equal(store.metrics(session.run_id)["step"],
                                      np.arange(1, session.trainer.step_count + 1))

    def test_exception_in_the_loop_is_recorded(self, store, monkeypatch):
        """An exception while training fails the run, records the error and an event, and ends the thread."""
        session = new_session(store)
        step = session.trainer.step
        calls = []

        def breaking_step():
            calls.append(1)
            if len(calls) == 6:
                raise RuntimeError("the disk caught fire")
            return step()

        monkeypatch.setattr(session.trainer, "step", breaking_step)
        session.start_thread()
        session.submit("start")
        wait_for(lambda: not session.alive)
        assert session.status == "failed"
        snap = session.snapshot()
        assert snap.error == "RuntimeError: the disk caught fire"
        assert snap.events[-1].kind == "error" and "the disk caught fire" in snap.events[-1].message
        info = store.get_run(session.run_id)
        assert info.status == "failed" and info.error == "RuntimeError: the disk caught fire"
        assert store.events(session.run_id)[-1].kind == "error"
        np.testing.assert_array_equal(store.metrics(session.run_id)["step"], np.arange(1, 6))
        session.close()
        assert session.status == "failed"

    def test_four_sessions_at_once(self, store):
        """Four runs in threads on one store each train 200 steps; all consistent; no thread left."""
        sessions = [new_session(store, make_config(), eval_every=7, checkpoint_every=64) for _ in range(4)]
        for session in sessions:
            session.start_thread()
            session.submit("step", n=200)
        try:
            wait_for(lambda: all(s.status == "paused" and s.trainer.step_count == 200 for s in sessions))
        finally:
            for session in sessions:
                session.close()
        assert store.integrity_check() == "ok"
        for session in sessions:
            assert not session.alive and session.status == "stopped"
            columns = store.metrics(session.run_id)
            np.testing.assert_array_equal(columns["step"], np.arange(1, 201))
            info = store.get_run(session.run_id)
            assert info.step == 200 and info.status == "stopped"
            assert [c.step for c in store.checkpoints(session.run_id)] == [0, 64, 128, 192, 200]
            evaluated = columns["step"][~np.isnan(columns["train_cost"])]
            np.testing.assert_array_equal(evaluated, [*range(7, 201, 7), 200])  # and where step n ends
        costs = [store.metrics(s.run_id)["cost"] for s in sessions]
        assert all(np.array_equal(c, costs[0]) for c in costs)  # same config, same numbers, whatever the threads
        assert not [t for t in threading.enumerate() if t.name.startswith("babysit-") and t.is_alive()]


class TestThreadMatchesTicks:
    """The thread trains the steps with nothing due in a tight loop of its own (``turn()``); what it
    records must be what ``tick()`` records, step for step."""

    SETTINGS = dict(eval_every=7, health_every=11, checkpoint_every=50)
    SCHEDULE = [{"step": 123, "set": {"alpha": 0.003}}, {"step": 301, "set": {"mini_batch_size": 48}}]

    def record(self, store, session):
        columns = store.metrics(session.run_id)
        return (columns, [c.step for c in store.checkpoints(session.run_id)],
                [step for step, _ in store.health(session.run_id)],
                [(e.kind, e.step, e.source, e.changes) for e in store.events(session.run_id)])

    def test_epochs_in_the_thread_equal_ticks(self, store):
        config = make_config(schedule=self.SCHEDULE, decay_schedule="exponential", learning_rate_decay=0.9)
        by_ticks, threaded = by_ticks_and_in_a_thread(store, config, "epochs", 100, **self.SETTINGS)
        assert threaded.trainer.step_count == by_ticks.trainer.step_count > 301
        (a, ckpt_a, health_a, events_a), (b, ckpt_b, health_b, events_b) = (
            self.record(store, by_ticks), self.record(store, threaded))
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert ckpt_a == ckpt_b and 50 in ckpt_a and 122 in ckpt_a  # periodic, and before the scheduled change
        assert health_a == health_b == list(range(11, by_ticks.trainer.step_count + 1, 11))
        assert events_a == events_b
        evaluated = a["step"][~np.isnan(a["train_cost"])]
        assert list(evaluated[:3]) == [7, 14, 21] and evaluated[-1] == by_ticks.trainer.step_count

    def test_guardrail_trips_at_the_same_step(self, store):
        tripped = []
        for threaded in (False, True):
            session = new_session(store, checkpoint_every=100)
            session.submit("step", n=400)
            until_idle(session)
            session.set(alpha=5.0)
            session.submit("resume")
            if threaded:
                session.start_thread()
                wait_for(lambda s=session: s.guardrail is not None, timeout=30)
            else:
                session.tick()  # applies the change and the resume, and trains one step
                train_until_paused(session)
            tripped.append((session.guardrail, session.trainer.step_count, session.snapshot().events[-1].message))
            session.close()
        (guard_a, step_a, message_a), (guard_b, step_b, message_b) = tripped
        assert guard_a.step == guard_b.step and step_a == step_b and guard_a.rewind_to == guard_b.rewind_to == 400
        assert guard_a.reason == guard_b.reason and message_a == message_b

    def test_a_command_lands_between_two_updates(self, store):
        """A change sent while the thread trains applies at one step: every update before it used the
        old rate, every one after it the new one."""
        session = new_session(store)
        session.start_thread()
        session.submit("start")
        try:
            wait_for(lambda: session.trainer.step_count > 3000, timeout=30)
            session.set(alpha=0.002).result(timeout=10)
            wait_for(lambda: session.trainer.step_count > 6000, timeout=30)
        finally:
            session.close()
        change = [e for e in store.events(session.run_id) if e.kind == "change"][-1]
        alpha = store.metrics(session.run_id)["alpha"]
        assert change.step > 3000 and np.all(alpha[: change.step] == 0.01) and np.all(alpha[change.step:] == 0.002)


class TestReopen:
    def test_open_after_close(self, store):
        """A closed run reopens with the same step, hyperparameters, events and metrics, and trains on identically."""
        session = started(store, checkpoint_every=100)
        ticks(session, 60)
        session.set(alpha=0.02, mini_batch_size=40)
        ticks(session, 73)
        session.close()
        before = session.snapshot()

        reopened = Session.open(store, session.run_id)
        after = reopened.snapshot()
        assert after.status == "stopped" and after.step == 133
        assert after.epoch == before.epoch and after.examples_seen == before.examples_seen
        assert after.hyperparameters == before.hyperparameters
        assert after.events == before.events
        assert after.checkpoints == before.checkpoints
        for name in before.series:
            np.testing.assert_array_equal(after.series[name][0], before.series[name][0])
            np.testing.assert_array_equal(after.series[name][1], before.series[name][1])
        assert after.initial_cost == before.initial_cost
        assert after.last_evaluation == before.last_evaluation

        reopened.submit("start")
        went_on = ticks(reopened, 30)
        twin = Trainer(make_config(schedule=[{"step": 61, "set": {"alpha": 0.02, "mini_batch_size": 40}}]))
        assert unscheduled(went_on) == unscheduled([twin.step() for _ in range(163)][133:])
        reopened.close()
        np.testing.assert_array_equal(store.metrics(session.run_id)["step"], np.arange(1, 164))

    def test_open_with_damaged_newest_checkpoint(self, store):
        """A damaged newest checkpoint is skipped: the run reopens at the previous one and says so."""
        session = started(store, checkpoint_every=100)
        ticks(session, 250)
        session.close()
        newest = store.checkpoints(session.run_id)[-1]
        assert newest.step == 250
        path = f"{store.home}/{newest.file}"
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])

        reopened = Session.open(store, session.run_id)
        assert reopened.trainer.step_count == 200
        event = reopened.snapshot().events[-1]
        assert event.kind == "recovered" and "step 250" in event.message
        reopened.submit("start")
        first = reopened.tick()
        assert first.step == 201
        reopened.close()
        np.testing.assert_array_equal(store.metrics(session.run_id)["step"], np.arange(1, 202))

    def test_open_keeps_a_change_made_while_paused(self, store):
        """A change made while paused after the newest checkpoint is still in force after reopening."""
        session = new_session(store)
        session.submit("step", n=20)
        until_idle(session)
        session.set(alpha=0.07)
        session.tick()
        reopened = Session.open(store, session.run_id)  # as if the process had died here
        assert reopened.trainer.step_count == 20 and reopened.trainer.hp.alpha == 0.07
        assert reopened.snapshot().events[-1] == Event("change", 20, 4, 640, "user", {"alpha": [0.01, 0.07]},
                                                       time=reopened.snapshot().events[-1].time)


@pytest.mark.parametrize("name", ["eval_every", "checkpoint_every", "checkpoints_kept"])
@pytest.mark.parametrize("value", [0, 2.5])
def test_a_setting_counted_in_steps_or_checkpoints_must_be_a_whole_number(name, value):
    with pytest.raises(ConfigError, match=rf"{name} must be an integer >= 1, got {value}"):
        SessionSettings(**{name: value})


@pytest.mark.parametrize("value", [-1, 20, 2.5, "5"])
def test_a_training_thread_priority_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match=r"thread_nice must be an integer in \[0, 19\]"):
        SessionSettings(thread_nice=value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own priority is Linux's")
def test_the_training_thread_alone_is_lowered_in_priority(store):
    session = Session.create(store, make_config(), settings=SessionSettings(thread_nice=2))
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    try:
        session.start_thread()
        session.submit("step", n=50).result(10)
        tid = session._thread.native_id
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(ours + 2, 19)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours  # this thread untouched
    finally:
        session.close()


def test_a_steps_record_starts_with_the_fields_kept_for_every_step():
    """The session keeps a StepRecord's first fields as a flat row, in the store's column order."""
    assert StepRecord._fields[: len(STEP_FIELDS)] == STEP_FIELDS
