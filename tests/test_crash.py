"""Crash safety: a training process killed with SIGKILL leaves a store that reopens and trains on."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from babysit.config import parse_config
from babysit.session import Session, SessionSettings
from babysit.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent("""
    import time
    from babysit.config import parse_config
    from babysit.session import Session, SessionSettings
    from babysit.store import Store

    config = parse_config('{"data": {"name": "moons", "n_samples": 2000}, "model": {"layers": [64, 64]},'
                          ' "hyperparameters": {"mini_batch_size": 256}}')  # ≈ 2,000 steps a second
    store = Store()  # BABYSIT_HOME
    session = Session.create(store, config, settings=SessionSettings(checkpoint_every=500, flush_every=0.05))
    session.set(alpha=0.02)  # a change before the start: part of the run after the crash too
    session.tick()
    session.start_thread()
    session.submit("start")
    print(session.run_id, flush=True)
    while True:  # a long run: trains until it is killed
        time.sleep(1)
""")


def recorded_step(db_path, run_id):
    """The newest step the store holds metrics for, read with a separate connection (0 if none yet)."""
    db = sqlite3.connect(db_path, timeout=10)
    try:
        row = db.execute("SELECT MAX(last_step) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] or 0
    except sqlite3.OperationalError:  # the child has not made the tables yet
        return 0
    finally:
        db.close()


@pytest.fixture
def killed_run(tmp_path):
    """A child process trains a run; once the store holds its metrics past step 1,200 and well between two
    checkpoints, it is killed with SIGKILL. (home, run id, the newest step seen in the store before the kill)"""
    env = {**os.environ, "BABYSIT_HOME": str(tmp_path), "PYTHONPATH": ROOT}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        run_id = child.stdout.readline().strip()
        assert run_id, child.stderr.read()
        db_path = os.path.join(tmp_path, "babysit.db")
        deadline = time.monotonic() + 30
        observed = 0
        while not (observed > 1_200 and 20 <= observed % 500 <= 250):
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, f"the child reached only step {observed}"
            time.sleep(0.005)
            observed = recorded_step(db_path, run_id)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()
    return str(tmp_path), run_id, observed


class TestKilledProcess:
    def test_store_intact_and_run_reopens(self, killed_run):
        """After SIGKILL: the database is sound, the run comes back paused at its newest checkpoint, history kept."""
        home, run_id, observed = killed_run
        store = Store(home=home)
        try:
            assert store.integrity_check() == "ok"
            recovered = store.recover()
            assert run_id in recovered or store.get_run(run_id).status == "paused"
            assert store.get_run(run_id).status == "paused"
            assert [r.id for r in store.list_runs()] == [run_id]
            leftovers = [n for n in os.listdir(os.path.join(home, "checkpoints", run_id)) if ".tmp" in n]
            assert len(leftovers) <= 1  # at most the one a kill interrupted, never a half-written checkpoint

            checkpoints = store.checkpoints(run_id)
            newest = checkpoints[-1]
            assert newest.step >= 1_000 and newest.step % 500 == 0
            columns = store.metrics(run_id)
            last = int(columns["step"][-1])
            assert last >= observed
            np.testing.assert_array_equal(columns["step"], np.arange(1, last + 1))  # contiguous from 1
            recorded_costs = columns["cost"].copy()

            session = Session.open(store, run_id)
            snap = session.snapshot()
            assert snap.status == "paused"
            assert snap.step == session.trainer.step_count == newest.step
            assert snap.hyperparameters.alpha == 0.02
            assert [e.kind for e in snap.events][:3] == ["start", "change", "resume"]
            assert snap.cost_means[0][-1] == last  # the history as it was recorded, up to the last flush
            assert snap.initial_cost is not None

            session.submit("start")
            resumed = [session.tick() for _ in range(100)]
            assert [r.step for r in resumed] == list(range(newest.step + 1, newest.step + 101))
            # killed well between two checkpoints: steps past the newest were recorded and are trained again,
            # to the very same numbers
            overlap = min(100, last - newest.step)
            assert overlap > 0
            assert [r.cost for r in resumed[:overlap]] == recorded_costs[newest.step : newest.step + overlap].tolist()
            rewind = [e for e in session.snapshot().events if e.kind == "rewind"]
            assert len(rewind) == 1 and rewind[0].source == "system"
            session.close()

            columns = store.metrics(run_id)
            np.testing.assert_array_equal(columns["step"], np.arange(1, newest.step + 101))  # no duplicates
            assert store.get_run(run_id).status == "stopped"
            assert store.integrity_check() == "ok"

            again = Session.open(store, run_id)
            assert again.trainer.step_count == newest.step + 100
            assert again.snapshot().cost_means[0][-1] == newest.step + 100
        finally:
            store.close()


class TestAbandonedSession:
    def test_checkpoints_never_ahead_of_the_metrics(self, tmp_path):
        """A process dying before its next timed flush leaves the metrics up to its newest checkpoint stored."""
        config = parse_config('{"data": {"name": "moons", "n_samples": 200},'
                              ' "hyperparameters": {"mini_batch_size": 32}}')
        first = Store(home=tmp_path)
        session = Session.create(first, config, settings=SessionSettings(checkpoint_every=100, flush_every=1.0))
        session.submit("start")
        records = [session.tick() for _ in range(250)]  # well within a second: no timed flush
        # the process "dies" here: nothing closed, nothing flushed on purpose
        store = Store(home=tmp_path)
        try:
            assert store.integrity_check() == "ok"
            newest = store.checkpoints(session.run_id)[-1].step
            assert newest == 200
            steps = store.metrics(session.run_id)["step"]
            assert steps.size >= newest
            np.testing.assert_array_equal(steps, np.arange(1, steps.size + 1))
            reopened = Session.open(store, session.run_id)
            assert reopened.trainer.step_count == 200
            reopened.submit("start")
            again = [reopened.tick() for _ in range(50)]
            assert [r.cost for r in again] == [r.cost for r in records[200:]]
            reopened.close()
            np.testing.assert_array_equal(store.metrics(session.run_id)["step"], np.arange(1, 251))
        finally:
            store.close()
            first.close()
