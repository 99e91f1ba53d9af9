"""Faults: a damaged checkpoint file, and a store that cannot be written while a run trains.

A killed Dask worker in the middle of a study is covered by tests/test_dask_cluster.py; a process
killed with SIGKILL by tests/test_crash.py and tests/e2e/test_server_kill.py.
"""

import errno
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from babysit.config import parse_config
from babysit.manager import SessionManager
from babysit.session import Session, SessionSettings
from babysit.store import Store, StoreError
from babysit.trainer import Trainer

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CONFIG = parse_config('{"data": {"name": "moons", "n_samples": 200}, "hyperparameters": {"mini_batch_size": 32}}')
NO_SPACE = "No space left on device"
DB_FULL = "database or disk is full"


@pytest.fixture
def store(tmp_path):
    s = Store(home=tmp_path / "store")
    yield s
    s.close()


def until(condition, what, timeout=20.0, every=0.005):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def reference_costs(n):
    """The mini-batch costs of updates 1 … n of CONFIG trained alone, with nothing going wrong."""
    trainer = Trainer(CONFIG)
    return [trainer.step().cost for _ in range(n)]


# -- damaging a checkpoint file ---------------------------------------------------------------------


def _central_entry(raw):
    """Offset of the zip archive's first central-directory entry (the one describing params.npy)."""
    offset = raw.find(b"PK\x01\x02")
    assert offset > 0
    return offset


def truncated(raw):
    return raw[: len(raw) // 2]


def weights_flipped(raw):
    """Eight bytes flipped in the middle of the weights' data: only the zip's CRC-32 can tell."""
    start = raw.find(b"\x93NUMPY") + 200  # past params.npy's header, into its float64 data
    out = bytearray(raw)
    for i in range(start, start + 8):
        out[i] ^= 0xFF
    return bytes(out)


def compression_method_flipped(raw):
    """The central directory names a compression method that does not exist (zipfile: NotImplementedError)."""
    out = bytearray(raw)
    out[_central_entry(raw) + 10] ^= 0xFF
    return bytes(out)


def encrypted_flag_set(raw):
    """The central directory says the member is encrypted (zipfile: RuntimeError, a password required)."""
    out = bytearray(raw)
    out[_central_entry(raw) + 8] |= 0x01
    return bytes(out)


DAMAGES = [truncated, weights_flipped, compression_method_flipped, encrypted_flag_set]


def damage(store, checkpoint, how):
    path = os.path.join(store.home, checkpoint.file)
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(how(raw))


def trained_run(store, steps, checkpoint_every=100):
    """A stopped run of ``steps`` updates (checkpoints at 0, every ``checkpoint_every`` and at the stop);
    returns (run id, the costs of its updates)."""
    session = Session.create(store, CONFIG, settings=SessionSettings(checkpoint_every=checkpoint_every))
    session.submit("start")
    records = [session.tick() for _ in range(steps)]
    session.close()
    return session.run_id, [r.cost for r in records]


class TestDamagedCheckpoint:
    @pytest.mark.parametrize("how", DAMAGES, ids=lambda f: f.__name__)
    def test_the_newest_damaged_the_previous_good_one_is_used_and_that_is_said(self, store, how):
        run_id, costs = trained_run(store, 250)
        checkpoints = store.checkpoints(run_id)
        assert [(c.step, c.reason) for c in checkpoints] == [(0, "start"), (100, "periodic"), (200, "periodic"),
                                                            (250, "stop")]
        damage(store, checkpoints[-1], how)
        with pytest.raises(StoreError, match="checkpoint at step 250 .* cannot be read"):
            store.load_checkpoint(checkpoints[-1])

        session = Session.open(store, run_id)
        snap = session.snapshot()
        assert session.trainer.step_count == snap.step == 200
        assert snap.status == "stopped"  # as it was left; its history up to the last flush is all there
        assert snap.cost_means[0][-1] == 250
        # the event names the damaged checkpoint and says what was done instead, in the page and in the store
        recovered = [e for e in snap.events if e.kind == "recovered"]
        assert len(recovered) == 1
        assert recovered[0].step == 200 and recovered[0].source == "system"
        assert f"checkpoint at step 250 of run {run_id} cannot be read" in recovered[0].message
        assert recovered[0].message.endswith("using the previous good checkpoint")
        assert [e.message for e in store.events(run_id) if e.kind == "recovered"] == [recovered[0].message]

        # resuming trains steps 201 … 250 again, to the same numbers, and goes on
        session.submit("resume")
        again = [session.tick() for _ in range(100)]
        assert [r.step for r in again] == list(range(201, 301))
        assert [r.cost for r in again[:50]] == costs[200:]
        session.close()
        assert [c.step for c in store.checkpoints(run_id)] == [0, 100, 200, 300]  # the damaged one is gone
        columns = store.metrics(run_id)
        np.testing.assert_array_equal(columns["step"], np.arange(1, 301))
        assert columns["cost"].tolist() == reference_costs(300)
        assert store.integrity_check() == "ok"

    def test_two_damaged_each_is_named_and_the_third_newest_is_used(self, store):
        run_id, _ = trained_run(store, 250)
        checkpoints = store.checkpoints(run_id)
        damage(store, checkpoints[-1], truncated)
        damage(store, checkpoints[-2], weights_flipped)
        session = Session.open(store, run_id)
        try:
            assert session.trainer.step_count == 100
            messages = [e.message for e in session.snapshot().events if e.kind == "recovered"]
            assert len(messages) == 2
            assert "checkpoint at step 250 " in messages[0] and "checkpoint at step 200 " in messages[1]
        finally:
            session.close()

    @pytest.mark.parametrize("how", DAMAGES, ids=lambda f: f.__name__)
    def test_the_only_checkpoint_damaged_is_a_clear_store_error(self, store, how):
        session = Session.create(store, CONFIG)  # its one checkpoint: "start", at step 0
        session.close()
        (only,) = store.checkpoints(session.run_id)
        damage(store, only, how)
        expected = rf"run {session.run_id}: no checkpoint can be read \(checkpoint at step 0 of run {session.run_id} " \
                   r"cannot be read \(.+\)\)"
        with pytest.raises(StoreError, match=expected):
            Session.open(store, session.run_id)
        manager = SessionManager(store)
        with pytest.raises(StoreError, match="no checkpoint can be read"):
            manager.get(session.run_id)
        manager.close_all()

    def test_the_page_says_so_without_a_traceback(self, babysit_home):
        st.cache_resource.clear()
        store = Store()  # BABYSIT_HOME, which the page's manager opens too
        try:
            session = Session.create(store, CONFIG)
            session.close()
            damage(store, store.checkpoints(session.run_id)[0], weights_flipped)
            at = AppTest.from_file(APP, default_timeout=60)
            at.query_params["run"] = session.run_id
            at.run()
            assert not at.exception
            assert len(at.error) == 1
            assert "names no run that can be opened" in at.error[0].value
            assert "no checkpoint can be read" in at.error[0].value
            assert "Traceback" not in at.error[0].value
        finally:
            from babysit.ui.state import manager

            manager().close_all()
            manager().store.close()
            st.cache_resource.clear()
            store.close()


# -- a store that cannot be written while the run trains ------------------------------------------------


class FailingConnection:
    """The store's sqlite3 connection, refusing the statements ``refuses(sql)`` picks with ``error`` while
    ``failing`` is set (a Connection's methods cannot be monkeypatched: it is a C type)."""

    def __init__(self, db, error, refuses):
        self._db, self._error, self._refuses = db, error, refuses
        self.failing = threading.Event()
        self.refused = 0

    def _check(self, sql):
        if self.failing.is_set() and self._refuses(sql.lstrip().upper()):
            self.refused += 1
            raise self._error

    def execute(self, sql, *args):
        self._check(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql, *args):
        self._check(sql)
        return self._db.executemany(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


class Fault:
    """A write failure injected into a store: ``start()`` makes it happen, ``end()`` takes it away."""

    def __init__(self, *failing, undo=lambda: None, refused=lambda: None):
        self._failing, self._undo, self._refused = failing, undo, refused

    def start(self):
        for event in self._failing:
            event.set()

    def end(self):
        for event in self._failing:
            event.clear()
        self._undo()

    @property
    def refused(self):
        """How many statements were refused (None: not counted)."""
        return self._refused()


def _failing_method(store, monkeypatch, name, error):
    """store.<name> raises ``error`` while the returned event is set."""
    failing = threading.Event()
    real = getattr(store, name)

    def method(*args):
        if failing.is_set():
            raise error
        return real(*args)

    monkeypatch.setattr(store, name, method)
    return failing


def metrics_refused(store, monkeypatch):
    """store.add_metrics raises ENOSPC: the metrics batch is the write that finds the disk full."""
    return Fault(_failing_method(store, monkeypatch, "add_metrics", OSError(errno.ENOSPC, NO_SPACE)))


def checkpoint_refused(store, monkeypatch):
    """A checkpoint file cannot be written: np.savez, as the store calls it, writes part of the temporary file
    and fails with ENOSPC. The checkpoint is not recorded, and the half file does not stay behind."""
    failing = threading.Event()
    real = np.savez

    def savez(file, *args, **arrays):
        if failing.is_set():
            with open(file, "wb") as f:
                f.write(b"PK\x03\x04 half a file")
            raise OSError(errno.ENOSPC, NO_SPACE)
        return real(file, *args, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    return Fault(failing)


def _connection(store, error, refuses):
    connection = FailingConnection(store._db, error, refuses)
    store._db = connection
    return connection, lambda: setattr(store, "_db", connection._db)


def database_full(store, monkeypatch):
    """SQLite's "database or disk is full" on every write (INSERT, UPDATE, DELETE); reads still work."""
    connection, undo = _connection(store, sqlite3.OperationalError(DB_FULL),
                                   lambda sql: sql.startswith(("INSERT", "UPDATE", "DELETE")))
    return Fault(connection.failing, undo=undo, refused=lambda: connection.refused)


def health_rows_refused(store, monkeypatch):
    """The disk fills between two statements of one flush: the metrics batch is written, the health rows
    after it are refused. Nothing may be written twice when the flush is tried again."""
    connection, undo = _connection(store, sqlite3.OperationalError(DB_FULL),
                                   lambda sql: sql.startswith("INSERT INTO HEALTH"))
    return Fault(connection.failing, undo=undo, refused=lambda: connection.refused)


def read_only_folder(store, monkeypatch):
    """The store's folder made read-only under the running server. Tests run as root here, and chmod does
    not stop root from writing, so the failure is simulated where the store writes: EROFS from the
    checkpoint file, and SQLite's "attempt to write a readonly database" from the connection. (A real
    chmod, for a user other than root: TestRealReadOnlyFolder below.)"""
    files = _failing_method(store, monkeypatch, "write_state", OSError(errno.EROFS, "Read-only file system"))
    connection, undo = _connection(store, sqlite3.OperationalError("attempt to write a readonly database"),
                                   lambda sql: sql.startswith(("INSERT", "UPDATE", "DELETE")))
    return Fault(files, connection.failing, undo=undo, refused=lambda: connection.refused)


FAULTS = [metrics_refused, checkpoint_refused, database_full, health_rows_refused, read_only_folder]
MESSAGES = {metrics_refused: NO_SPACE, checkpoint_refused: NO_SPACE, database_full: DB_FULL,  # regular expressions
            health_rows_refused: DB_FULL, read_only_folder: "Read-only file system|readonly database"}


def watch(store, **settings):
    """A session training in its thread, flushing often, with health and checkpoints often too."""
    settings = {"checkpoint_every": 300, "flush_every": 0.05, "health_every": 50, "eval_every": 50, **settings}
    session = Session.create(store, CONFIG, settings=SessionSettings(**settings))
    session.start_thread()
    session.submit("start").result(timeout=10)
    return session


def paused_by_the_store(session):
    snap = session.snapshot()
    return snap.status == "paused" and session.write_error is not None and snap


def check_contiguous(store, run_id, last):
    columns = store.metrics(run_id)
    np.testing.assert_array_equal(columns["step"], np.arange(1, last + 1))  # no gap, no duplicate
    assert columns["cost"].tolist() == reference_costs(last)  # and each row the one trained at that step
    return columns


class TestWriteFailureWhileTraining:
    @pytest.mark.parametrize("make_fault", FAULTS, ids=lambda f: f.__name__)
    def test_the_run_pauses_keeps_everything_and_resumes(self, store, monkeypatch, make_fault):
        fault = make_fault(store, monkeypatch)
        session = watch(store)
        run_id = session.run_id
        try:
            # N steps in the store, then the disk is full
            until(lambda: store.metrics(run_id)["step"].size >= 600, "600 steps of metrics in the store")
            fault.start()
            snap = until(lambda: paused_by_the_store(session), "the run to pause on the write failure")
            assert session.alive  # the thread waits for a command, it did not die
            assert re.search(MESSAGES[make_fault], snap.error)
            assert f"cannot write to the store in {store.home}" in snap.error
            assert "free some disk space or make the folder writable, then resume" in snap.error
            assert "nothing lost" in snap.error
            stopped_at = session.trainer.step_count
            time.sleep(0.3)
            assert session.trainer.step_count == stopped_at  # paused: not training on without its records
            assert session.snapshot().cost_means[0][-1] == stopped_at  # what the store lacks is still in memory
            written = store.metrics(run_id)["step"]
            np.testing.assert_array_equal(written, np.arange(1, written.size + 1))
            assert written.size <= stopped_at
            if fault.refused is not None and "Read-only file system" not in snap.error:
                assert fault.refused >= 1  # the database refused it (else a checkpoint file was refused first)

            # resuming while the store still fails: paused again, the thread alive, the error kept
            command = session.submit("resume")
            try:
                command.result(timeout=10)
            except (OSError, sqlite3.Error) as error:
                assert re.search(MESSAGES[make_fault], str(error))
            snap = until(lambda: paused_by_the_store(session), "the run to pause again")
            assert session.alive and re.search(MESSAGES[make_fault], snap.error)

            # the disk has room again: resume, and everything kept in memory reaches the store
            fault.end()
            session.submit("resume").result(timeout=10)
            assert session.write_error is None and session.snapshot().error is None
            until(lambda: session.trainer.step_count >= stopped_at + 600, "600 more steps")
            session.submit("pause").result(timeout=10)
            last = session.trainer.step_count
            check_contiguous(store, run_id, last)
            assert store.get_run(run_id).status == "paused" and store.get_run(run_id).step == last
            assert store.checkpoints(run_id)[-1].step == last
            assert store.integrity_check() == "ok"
            kinds = [e.kind for e in store.events(run_id)]
            assert kinds[:2] == ["start", "resume"] and kinds[-2:] == ["resume", "pause"]
        finally:
            fault.end()
            session.close()
        assert not session.alive
        leftovers = [n for n in os.listdir(os.path.join(store.home, "checkpoints", run_id)) if ".tmp" in n]
        assert leftovers == []  # a failed write leaves no half file behind

        # reopened from the store alone, the run is where it was paused, its history whole
        again = Session.open(store, run_id)
        try:
            assert again.trainer.step_count == last
            assert again.snapshot().cost_means[0][-1] == last
        finally:
            again.close()

    def test_the_health_rows_written_once_after_a_partial_flush(self, store, monkeypatch):
        """The metrics batch written, its health rows refused: the retried flush writes only the health rows."""
        fault = health_rows_refused(store, monkeypatch)
        session = watch(store)
        try:
            until(lambda: store.metrics(session.run_id)["step"].size >= 300, "300 steps of metrics")
            fault.start()
            until(lambda: paused_by_the_store(session), "the run to pause")
            fault.end()
            session.submit("resume").result(timeout=10)
            session.submit("pause").result(timeout=10)
            last = session.trainer.step_count
            check_contiguous(store, session.run_id, last)
            steps = [step for step, _ in store.health(session.run_id)]
            assert steps == list(range(50, last + 1, 50))  # each health row once, none missing
        finally:
            fault.end()
            session.close()


def _read_only_folders_stop_writes():
    """False for root (with CAP_DAC_OVERRIDE), whom a folder's mode does not stop."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            with open(os.path.join(folder, "probe"), "wb"):
                return False
        except PermissionError:
            return True
        finally:
            os.chmod(folder, 0o755)


@pytest.mark.skipif(not _read_only_folders_stop_writes(), reason="a read-only folder does not stop root's writes: "
                                                                  "simulated above (read_only_folder) instead")
class TestRealReadOnlyFolder:
    def test_a_read_only_checkpoint_folder_pauses_the_run(self, store):
        session = watch(store)
        folder = os.path.join(store.home, "checkpoints", session.run_id)
        try:
            until(lambda: store.metrics(session.run_id)["step"].size >= 300, "300 steps of metrics")
            os.chmod(folder, 0o555)
            snap = until(lambda: paused_by_the_store(session), "the run to pause")
            assert "Permission denied" in snap.error and session.alive
            os.chmod(folder, 0o755)
            session.submit("resume").result(timeout=10)
            session.submit("pause").result(timeout=10)
            check_contiguous(store, session.run_id, session.trainer.step_count)
        finally:
            os.chmod(folder, 0o755)
            session.close()
