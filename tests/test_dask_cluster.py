"""Caviar on a real Dask cluster: a `dask scheduler` and `dask worker` processes on this machine, reached by
address (``scheduler=`` and $BABYSIT_DASK_SCHEDULER); the same results as the embedded cluster, and a study
that loses a worker (SIGKILL) mid-way still ends with every trial accounted for."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babysit import caviar
from babysit.errors import BabysitError
from babysit.space import parse_space
from babysit.store import Store

ROOT = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).with_name("dask")
pytestmark = pytest.mark.skipif(not DASK.exists(), reason=f"the dask CLI is not installed ({DASK})")

BASE = {
    "seed": 2,
    "data": {"name": "moons", "n_samples": 240, "noise": 0.2},
    "model": {"layers": [8], "activation": "tanh"},
    "hyperparameters": {"optimizer": "adam", "mini_batch_size": 32},
}
SPACE = {"alpha": {"log_uniform": [0.003, 0.1]}, "L": {"int_uniform": [2, 3]}, "base": BASE}
# slower trials of mostly distinct shapes, one task each: the study lasts a few seconds on two workers
SLOW_SPACE = {
    "alpha": {"log_uniform": [0.001, 0.03]},
    "width": {"int_uniform": [4, 48]},
    "base": {**BASE, "data": {"name": "moons", "n_samples": 1000}, "hyperparameters": {"mini_batch_size": 16}},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and workers, each `dask` process in a session of its own (a worker's nanny and the
    worker process it starts share it), so that each can be ended whole."""

    def __init__(self, logs):
        self.logs = Path(logs)
        self.procs = {}
        self.address = f"tcp://127.0.0.1:{free_port()}"

    def _spawn(self, name, argv):
        env = {k: v for k, v in os.environ.items() if k != "BABYSIT_DASK_SCHEDULER"}
        with open(self.logs / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen([str(DASK), *argv], cwd=ROOT, env=env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, workers):
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"])
        for name in workers:
            self._spawn(name, ["worker", self.address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                               "--name", name])

    def client(self, n_workers, timeout=60):
        """A client once the scheduler answers and n_workers have joined it."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        client = None
        while True:
            self._check_alive()
            try:
                client = client or Client(self.address, timeout="2s")
                if len(client.nthreads()) >= n_workers:
                    return client
            except OSError:
                pass
            if time.monotonic() > deadline:
                if client is not None:
                    client.close()
                raise AssertionError(f"{n_workers} workers did not join {self.address} within {timeout} s:\n"
                                     + self.log_text())
            time.sleep(0.2)

    def _check_alive(self):
        ended = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if ended:
            raise AssertionError(f"dask processes ended: {ended}\n" + self.log_text())

    def log_text(self):
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs.glob("*.log"))

    def kill(self, name):
        """SIGKILL one process and what it started (a worker's nanny and its worker process)."""
        proc = self.procs[name]
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():  # the process, or what it left behind in its session
            _signal_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(10)


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, shared by the module's tests."""
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.start(["w1", "w2"])
        cluster.client(2).close()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def store(babysit_home):
    store = Store()
    yield store
    store.close()


def new_study(store, space=SPACE, **settings):
    settings = caviar.StudySettings(**{"n_trials": 6, "epochs": 3, **settings})
    return caviar.create_study(store, parse_space(json.dumps(space)), settings, seed=1)


def outcome(store, trials):
    """What a study's trials came to: status, figures, curves and checkpoints."""
    return [(t.number, t.status, t.rung, t.step, t.epoch, t.dev_cost, t.train_cost, t.dev_accuracy,
             {f: v.tobytes() for f, v in sorted(t.curve.items())},
             store.read_state(t.state_file)["params"].tobytes()) for t in trials]


def worker_tasks(client):
    """Tasks each worker (by name) has run so far."""
    counts = client.run(lambda dask_worker: (dask_worker.name, dask_worker.state.executed_count))
    return dict(counts.values())


class TestSchedulerAddress:
    def test_the_same_results_as_the_embedded_cluster(self, store, cluster, monkeypatch):
        """A study run on the cluster by address, and one through $BABYSIT_DASK_SCHEDULER, equal the embedded
        cluster's study bit for bit; the trials ran on the cluster's workers."""
        monkeypatch.delenv("BABYSIT_DASK_SCHEDULER", raising=False)
        embedded = caviar.run_study(store, new_study(store))
        observer = cluster.client(2)
        try:
            before = worker_tasks(observer)
            by_address = caviar.run_study(store, new_study(store), scheduler=cluster.address)
            after_address = worker_tasks(observer)
            monkeypatch.setenv("BABYSIT_DASK_SCHEDULER", cluster.address)
            by_env = caviar.run_study(store, new_study(store))
            after_env = worker_tasks(observer)
        finally:
            observer.close()
        assert {t.status for t in embedded} == {"done"}
        assert outcome(store, by_address) == outcome(store, embedded)
        assert outcome(store, by_env) == outcome(store, embedded)
        units = len({t.point["L"] for t in embedded})  # one stacked task per shape
        assert sum(after_address.values()) - sum(before.values()) == units
        assert sum(after_env.values()) - sum(after_address.values()) == units
        assert set(after_env) == {"w1", "w2"}
        observer = cluster.client(2)  # the studies closed their clients, not the cluster
        observer.close()

    def test_no_scheduler_at_the_address(self, store):
        """An address where nothing answers: a BabysitError saying so, and the study is not marked running."""
        study_id = new_study(store, n_trials=2)
        with pytest.raises(BabysitError, match="no Dask scheduler answers"):
            caviar.run_study(store, study_id, scheduler=f"tcp://127.0.0.1:{free_port()}")
        assert store.get_study(study_id).status == "created"


class TestLostWorker:
    def test_a_study_survives_a_killed_worker(self, store, tmp_path):
        """SIGKILL a worker that is training some of a study's tasks: its tasks run again on the other worker,
        every trial ends done, with the numbers of an undisturbed study."""
        cluster = Cluster(tmp_path)
        try:
            cluster.start(["a", "b"])
            client = cluster.client(2)
            reference = caviar.run_study(store, new_study(store, SLOW_SPACE, n_trials=12, epochs=12, stack=False),
                                         client=client)
            study_id = new_study(store, SLOW_SPACE, n_trials=12, epochs=12, stack=False)
            names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
            killed = {}

            def kill_a_busy_worker(progress):
                if killed or progress.done < 1:
                    return
                busy = {names[addr]: keys for addr, keys in client.processing().items() if keys}
                if busy:
                    name = sorted(busy)[0]
                    killed[name] = len(busy[name])
                    cluster.kill(name)

            trials = caviar.run_study(store, study_id, client=client, on_progress=kill_a_busy_worker)
            assert killed, "no worker was busy when the first trial finished"
            assert len(client.nthreads()) == 1
            assert store.get_study(study_id).status == "done"
            assert [t.status for t in trials] == ["done"] * 12, [(t.status, t.error) for t in trials]
            assert outcome(store, trials) == outcome(store, reference)
            client.close()
        finally:
            cluster.stop()
        assert all(p.poll() is not None for p in cluster.procs.values())

