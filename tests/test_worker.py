"""Runs training in processes of their own: the wire between them and the server, and the server's end.

A run's process is driven here as the server drives it: through ``RemoteSession`` and the manager.
"""

import os
import signal
import sys
import time

import numpy as np
import pytest

from babysit import wire
from babysit.config import RunConfig
from babysit.errors import ConfigError
from babysit.hyperparams import HyperParams
from babysit.manager import SessionManager
from babysit.session import Command, Session, SessionSettings
from babysit.store import Store, StoreError
from babysit.worker import RemoteSession, WorkerError

CONFIG = RunConfig.from_dict({"seed": 3, "data": {"name": "moons", "n_samples": 300},
                              "model": {"layers": [8]}, "hyperparameters": {"alpha": 0.01}})
FAST = SessionSettings(eval_every=50, health_every=100, checkpoint_every=200, flush_every=0.2)


def until(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- the wire --------------------------------------------------------------------------------------


class TestWire:
    def test_a_real_snapshot_crosses_whole(self, tmp_path):
        session = Session.create(Store(tmp_path), CONFIG, settings=FAST)
        session.submit("step", n=300)
        session.submit("set", changes={"alpha": 0.02, "mini_batch_size": 16})
        for _ in range(400):
            session.tick()
        snap = session.snapshot()
        back = wire.decode(wire.encode(snap))
        assert type(back) is type(snap)
        assert back.config == snap.config and back.hyperparameters == snap.hyperparameters
        assert back.events == snap.events and back.checkpoints == snap.checkpoints
        assert back.last_health == snap.last_health and back.last_evaluation == snap.last_evaluation
        assert set(back.series) == set(snap.series) and "cost" in back.series
        for name, (x, y) in snap.series.items():
            bx, by = back.series[name]
            assert bx.dtype == x.dtype and np.array_equal(bx, x) and np.array_equal(by, y, equal_nan=True)
        assert (back.step, back.status, back.n_features, back.n_classes) == (300, "paused", 2, 2)
        session.close()

    def test_plain_values_keep_their_kind(self):
        value = {"a": (1, 2.5, None, True, "é"), "b": [np.int64(7), np.float32(0.5)], "nan": float("nan"),
                 "grid": np.arange(6, dtype=np.float32).reshape(2, 3), "labels": np.array([0, 1], np.int8)}
        back = wire.decode(wire.encode(value))
        assert back["a"] == (1, 2.5, None, True, "é") and isinstance(back["a"], tuple)
        assert back["b"] == [7, 0.5] and type(back["b"][0]) is int
        assert np.isnan(back["nan"])
        assert back["grid"].dtype == np.float32 and back["grid"].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert back["labels"].dtype == np.int8

    def test_a_command_crosses_without_its_future(self):
        import concurrent.futures

        command = Command(4, "set", {"changes": {"alpha": 0.1}}, "user", 1.0, concurrent.futures.Future())
        back = wire.decode(wire.encode(command))
        assert back.future is None and back.describe() == "alpha → 0.1" and back == command

    @pytest.mark.parametrize("value", [object(), {1: "x"}, {"__type__": "os"}, np.array([object()]),
                                       np.array(["text"]), lambda: 0])
    def test_anything_else_is_refused_when_sent(self, value):
        with pytest.raises(wire.WireError):
            wire.encode(value)

    def test_a_message_naming_a_type_not_ours_is_refused_when_read(self):
        import json
        import struct

        body = json.dumps({"__type__": "Popen", "fields": {"args": ["touch", "/tmp/x"]}}).encode()
        with pytest.raises(wire.WireError, match="unknown type 'Popen'"):
            wire.decode(struct.pack("<I", len(body)) + body)
        body = json.dumps({"__array__": "|O", "shape": [1]}).encode()
        with pytest.raises(wire.WireError, match="not ours"):
            wire.decode(struct.pack("<I", len(body)) + body + b"\0" * 8)


# -- a run in its own process ----------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path):
    session = RemoteSession.create(tmp_path, CONFIG, "far", FAST)
    yield session
    session.close()


class TestRemoteSession:
    def test_it_trains_in_another_process_and_lands_commands_with_their_events(self, remote, tmp_path):
        assert remote.status == "created" and remote.name == "far"
        assert remote._process.pid != os.getpid()
        remote.submit("step", n=120).result(10)
        until(lambda: remote.status == "paused", "the step command to end")
        assert remote.snapshot().step == 120
        event = remote.set(alpha=0.03).result(10)
        assert event.changes == {"alpha": [0.01, 0.03]} and event.step == 120
        assert remote.hyperparameters() == HyperParams(alpha=0.03)
        # the store is the same one: what the process wrote, the server reads
        store = Store(tmp_path)
        assert [e.kind for e in store.events(remote.run_id)][-1] == "change"
        until(lambda: len(store.metrics(remote.run_id)["step"]) == 120, "the flush")

    def test_a_bad_value_is_refused_at_once_with_the_projects_error(self, remote):
        with pytest.raises(ConfigError, match=r"beta1 must be in \[0, 1\), got 1.2"):
            remote.set(beta1=1.2)
        assert remote.snapshot_pending() == ()
        with pytest.raises(ConfigError, match="step needs a whole number"):
            remote.submit("step", n=0)

    def test_the_decision_boundary_is_drawn_from_the_processs_weights(self, remote, tmp_path):
        X, y, classes = remote.plot_data()
        assert X.shape == (2, 240) and set(np.unique(y)) <= {0, 1} and tuple(classes) == (0, 1)
        # the same weights in this process predict the same classes
        here = Session.open(Store(tmp_path), remote.run_id, FAST)
        assert np.array_equal(remote.predict(X), here.predict(X))

    def test_branch_and_probe_results_come_back(self, remote, tmp_path):
        remote.submit("step", n=250).result(10)
        until(lambda: remote.status == "paused", "the steps")
        child = remote.submit("branch", step=200, name="fork").result(30)
        assert Store(tmp_path).get_run(child).parent == remote.run_id
        probe = remote.submit("probe").result(60)
        assert probe.suggested_alpha > 0 and len(probe.alphas) == len(probe.costs)

    def test_a_missing_run_is_the_stores_error_and_leaves_no_process(self, tmp_path):
        Store(tmp_path)
        with pytest.raises(StoreError):
            RemoteSession.open(tmp_path, "0123456789ab")

    def test_close_stops_the_run_and_its_process(self, tmp_path):
        remote = RemoteSession.create(tmp_path, CONFIG, settings=FAST)
        remote.submit("start")
        until(lambda: remote.snapshot().step > 0, "training")
        remote.close()
        assert remote._process.poll() == 0 and not remote.alive
        assert Store(tmp_path).get_run(remote.run_id).status == "stopped"
        with pytest.raises(WorkerError, match="closed"):
            remote.snapshot()

    def test_when_the_server_goes_away_the_run_is_kept_to_resume(self, tmp_path):
        """The server's end of the socket closes (the server died): the process checkpoints the run,
        marks it to resume, and exits."""
        remote = RemoteSession.create(tmp_path, CONFIG, settings=FAST)
        remote.submit("start")
        until(lambda: remote.snapshot().step > 300, "training")
        remote._conn.close()
        assert remote._process.wait(timeout=20) == 0
        store = Store(tmp_path)
        assert store.get_run(remote.run_id).status == "paused"
        assert store.events(remote.run_id)[-1].kind == "recovered"
        reopened = Session.open(store, remote.run_id)
        assert reopened.interrupted and reopened.trainer.step_count > 300


class TestManagerWithProcesses:
    def test_a_run_whose_process_was_killed_is_reopened_and_resumed_from_the_store(self, tmp_path):
        mgr = SessionManager(Store(tmp_path), settings=FAST, processes=True)
        run_id = mgr.create(CONFIG)
        mgr.command(run_id, "start")
        session = mgr.get(run_id)
        until(lambda: session.snapshot().step > 1000, "training")
        os.kill(session._process.pid, signal.SIGKILL)
        session._process.wait()
        with pytest.raises(WorkerError, match="ended unexpectedly.*open the run again"):
            session.snapshot()
        assert mgr.training() == []
        again = mgr.get(run_id)
        assert again is not session and again.alive
        until(lambda: again.status == "running", "the run to resume")
        events = [e.kind for e in again.snapshot().events]
        assert "recovered" in events and Store(tmp_path).integrity_check() == "ok"
        mgr.close_all()
        assert not again.alive

    @pytest.mark.parametrize("processes", [False, True])
    def test_a_server_that_stops_leaves_each_run_as_it_was(self, tmp_path, processes):
        """close_all, as the server calls it when it stops: a training run pauses, to resume when opened;
        a paused run stays paused and one never started stays created, with nothing added to their logs."""
        store = Store(tmp_path)
        mgr = SessionManager(store, settings=FAST, processes=processes)
        training, paused, fresh = mgr.create(CONFIG), mgr.create(CONFIG), mgr.create(CONFIG)
        mgr.command(paused, "step", n=300)
        until(lambda: mgr.get(paused).status == "paused", "the steps")
        mgr.command(training, "start")
        until(lambda: mgr.get(training).snapshot().step > 300, "training")
        logs = {run_id: [e.kind for e in store.events(run_id)] for run_id in (paused, fresh)}
        mgr.close_all()
        assert store.get_run(training).status == "paused"
        assert store.events(training)[-1].kind == "recovered"
        assert Session.open(store, training).interrupted
        assert [store.get_run(paused).status, store.get_run(fresh).status] == ["paused", "created"]
        assert {run_id: [e.kind for e in store.events(run_id)] for run_id in (paused, fresh)} == logs
        reopened = Session.open(store, paused)
        assert not reopened.interrupted and reopened.status == "paused" and reopened.trainer.step_count == 300

    def test_the_cap_counts_runs_in_processes(self, tmp_path):
        from babysit.manager import CapError

        mgr = SessionManager(Store(tmp_path), max_running=1, settings=FAST, processes=True)
        first, second = mgr.create(CONFIG), mgr.create(CONFIG)
        mgr.command(first, "start")
        with pytest.raises(CapError, match="1 run is training already"):
            mgr.command(second, "start")
        mgr.command(first, "pause").result(10)
        mgr.command(second, "start").result(10)
        assert mgr.training() == [second]
        mgr.close_all()


def test_a_relative_csv_path_means_the_servers_folder(tmp_path, monkeypatch):
    """The run's process works in the server's folder, so a config naming ``data.csv`` finds the file the
    server would."""
    monkeypatch.chdir(tmp_path)
    rows = ["x1,x2,label"] + [f"{i % 7},{i % 5},{'ab'[i % 2]}" for i in range(60)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    config = RunConfig.from_dict({"data": {"csv": "data.csv", "target": "label"}, "model": {"layers": [4]}})
    remote = RemoteSession.create(tmp_path / "store", config, settings=FAST)
    try:
        snap = remote.snapshot()
        assert (snap.n_features, snap.n_classes) == (2, 2) and snap.config.data.csv == "data.csv"
    finally:
        remote.close()


def test_a_process_that_dies_starting_is_the_projects_error(tmp_path, monkeypatch):
    """Say the package cannot be imported in the new process: the server gets an error it can show."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (tmp_path / "babysit").mkdir()
    (tmp_path / "babysit" / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.setattr("babysit.worker.ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkerError, match=r"could not start \(exit code 1\)"):
        RemoteSession.create(tmp_path / "store", CONFIG)


def _environment(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item)


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads a process's environment from /proc")
def test_a_runs_process_has_one_blas_thread_unless_the_user_says_otherwise(tmp_path, monkeypatch):
    """BLAS's helper threads spin while they wait and would take the core the run trains on."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    remote = RemoteSession.create(tmp_path, CONFIG, settings=FAST)
    try:
        env = _environment(remote._process.pid)
        assert (env["OPENBLAS_NUM_THREADS"], env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) == ("1", "1", "1")
    finally:
        remote.close()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    remote = RemoteSession.create(tmp_path, CONFIG, settings=FAST)
    try:
        assert _environment(remote._process.pid)["OPENBLAS_NUM_THREADS"] == "2"
    finally:
        remote.close()


def _nice_of(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])  # field 19, nice


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own priority is Linux's")
def test_only_the_training_thread_is_lowered_in_priority(tmp_path, monkeypatch):
    """The process's main thread answers the page's requests at the server's priority; the training
    thread (and the writes it starts) runs BABYSIT_RUN_NICE lower."""
    monkeypatch.setenv("BABYSIT_RUN_NICE", "3")
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    remote = RemoteSession.create(tmp_path, CONFIG, settings=FAST)
    try:
        remote.submit("start").result(10)
        pid = remote._process.pid
        until(lambda: len(os.listdir(f"/proc/{pid}/task")) >= 2, "the training thread")
        nices = {int(tid): _nice_of(pid, tid) for tid in os.listdir(f"/proc/{pid}/task")}
        assert nices.pop(pid) == ours  # the main thread
        assert min(ours + 3, 19) in nices.values()
        assert remote.snapshot().status == "running"
    finally:
        remote.close()
