"""The run store: runs, events, metrics batches, health, checkpoints, crash recovery, the database itself."""

import os
import sqlite3

import numpy as np
import pytest

from babysit.config import parse_config
from babysit.events import Event
from babysit.store import EVAL_FIELDS, METRIC_FIELDS, STEP_FIELDS, Store, StoreError, check_run_id, default_home
from babysit.trainer import Trainer

CONFIG = '{"data": {"name": "moons", "n_samples": 200}, "hyperparameters": {"mini_batch_size": 32}}'


@pytest.fixture
def config():
    return parse_config(CONFIG)


@pytest.fixture
def store(tmp_path):
    s = Store(home=tmp_path / "home")
    yield s
    s.close()


def listing(folder):
    """Every file under a folder, relative, with its modification time (to see nothing else was touched)."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            out[os.path.relpath(path, folder)] = os.stat(path).st_mtime_ns
    return out


def columns(steps, rng):
    """A metrics batch: every field a float64 column, the evaluations mostly NaN."""
    n = len(steps)
    cols = {f: rng.standard_normal(n) for f in METRIC_FIELDS}
    cols["step"] = np.asarray(steps, np.float64)
    for f in ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy"):
        cols[f][rng.random(n) < 0.8] = np.nan
    cols["cost"][n // 2] = np.inf  # a diverged step's cost reads back as it was
    return cols


def trained(config, steps=37):
    t = Trainer(config)
    for _ in range(steps):
        t.step()
    return t


class TestRuns:
    def test_create_get_list_update_delete(self, store, config):
        """A run is created with its config, listed, updated field by field and deleted with its files."""
        a = store.create_run(config, "first")
        b = store.create_run(config)
        info = store.get_run(a)
        assert info.id == a and info.name == "first" and info.status == "created"
        assert info.config == config.to_dict()
        assert info.hyperparameters == config.hyperparameters.to_dict()
        assert info.step == 0 and info.parent is None and info.fork_step is None
        assert "moons" in store.get_run(b).name
        assert [r.id for r in store.list_runs()] == [a, b]

        store.update_run(a, status="paused", step=12, epoch=2, best_dev_cost=0.25, error=None,
                         hyperparameters={**config.hyperparameters.to_dict(), "alpha": 0.5})
        info = store.get_run(a)
        assert (info.status, info.step, info.epoch, info.best_dev_cost) == ("paused", 12, 2, 0.25)
        assert info.hyperparameters["alpha"] == 0.5
        with pytest.raises(ValueError, match="config"):
            store.update_run(a, config="{}")

        store.save_checkpoint(a, trained(config, 3).state_dict(), "periodic")
        store.add_event(a, Event("start", 0))
        store.add_metrics(a, columns([1, 2, 3], np.random.default_rng(0)))
        folder = os.path.join(store.home, "checkpoints", a)
        assert os.listdir(folder)
        store.delete_run(a)
        assert [r.id for r in store.list_runs()] == [b]
        assert not os.path.exists(folder)
        with pytest.raises(StoreError, match="no run"):
            store.get_run(a)
        assert store.events(a) == [] and store.checkpoints(a) == []
        assert store.metrics(a)["step"].size == 0
        with sqlite3.connect(store.path) as db:  # nothing of it is left behind, its evaluations included
            left = {t: db.execute(f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (a,)).fetchone()[0]
                    for t in ("events", "metrics", "evaluations", "health", "checkpoints")}
        db.close()
        assert left == dict.fromkeys(left, 0)

    def test_a_csv_run_is_labelled_by_its_file_name(self, store, tmp_path):
        """Tables and the default name show the CSV's file name and target; its folder stays in the config."""
        path = tmp_path / "uploads" / "5688de0a89e5707c" / "big.csv"
        run_id = store.create_run(parse_config(f'{{"data": {{"csv": "{path}", "target": "label"}}}}'))
        info = store.get_run(run_id)
        assert info.data_label == "big.csv [label]"
        assert info.name == "big.csv [label] · adam α=0.01"
        assert info.config["data"]["csv"] == str(path)

    def test_missing_run(self, store):
        """Asking for a well-formed id that is not there names it."""
        with pytest.raises(StoreError, match="no run 0123456789ab"):
            store.get_run("0123456789ab")

    @pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "ABC", "", "0123456789AB", "0123456789a",
                                     "../../0123456789", "0123456789ab/..", None, 12])
    def test_run_ids_validated(self, store, config, bad, tmp_path):
        """Anything but 12 lowercase hex characters is refused, and nothing outside the home is touched."""
        run = store.create_run(config)
        store.save_checkpoint(run, trained(config, 2).state_dict(), "start")
        outside = tmp_path / "outside.txt"
        outside.write_text("keep")
        before = listing(tmp_path)
        calls = [
            lambda: check_run_id(bad),
            lambda: store.get_run(bad),
            lambda: store.update_run(bad, status="paused"),
            lambda: store.delete_run(bad),
            lambda: store.events(bad),
            lambda: store.metrics(bad),
            lambda: store.health(bad),
            lambda: store.checkpoints(bad),
            lambda: store.save_checkpoint(bad, trained(config, 1).state_dict(), "periodic"),
            lambda: store.add_retest(bad, {}),
        ]
        for call in calls:
            with pytest.raises(StoreError, match="is not a run id"):
                call()
        after = listing(tmp_path)
        database = os.path.join("home", "babysit.db")  # the database and its -wal / -shm may be written

        def files(found):
            return {name: t for name, t in found.items() if not name.startswith(database)}

        assert files(after) == files(before)
        assert outside.read_text() == "keep"
        assert [r.id for r in store.list_runs()] == [run]

    def test_default_home_respects_babysit_home(self, tmp_path, monkeypatch):
        """BABYSIT_HOME names the store's folder; without it, ./runs."""
        monkeypatch.setenv("BABYSIT_HOME", str(tmp_path / "elsewhere"))
        assert default_home() == str(tmp_path / "elsewhere")
        s = Store()
        try:
            assert s.home == str(tmp_path / "elsewhere")
            assert os.path.exists(tmp_path / "elsewhere" / "babysit.db")
        finally:
            s.close()
        monkeypatch.delenv("BABYSIT_HOME")
        monkeypatch.chdir(tmp_path)
        assert default_home() == str(tmp_path / "runs")


class TestEvents:
    def test_event_dict_round_trip(self):
        """to_dict then from_dict gives the same event, changes included."""
        e = Event("change", 150, 3, 4800, "user", {"alpha": [0.01, 0.05], "optimizer": ["adam", "gd"]}, "why")
        assert Event.from_dict(e.to_dict()) == e
        plain = Event("pause", 7)
        assert Event.from_dict(plain.to_dict()) == plain

    def test_events_round_trip_through_store(self, store, config):
        """Events come back equal and in order; undo marks those after a step (and at it, after a time)."""
        run = store.create_run(config)
        events = [
            Event("start", 0, source="system", changes={"initial_cost": [None, 0.69]}, message="m", time=1.0),
            Event("change", 10, 1, 320, "user", {"alpha": [0.01, 0.02]}, time=2.0),
            Event("change", 10, 1, 320, "user", {"lambd": [0.0, 0.1]}, time=3.0),
            Event("pause", 20, 2, 640, time=4.0),
        ]
        for e in events:
            store.add_event(run, e)
        assert store.events(run) == events
        store.undo_events_after(run, 10, since=2.5)
        got = store.events(run)
        assert [e.undone for e in got] == [False, False, True, True]
        assert got[2] == Event("change", 10, 1, 320, "user", {"lambd": [0.0, 0.1]}, time=3.0, undone=True)
        store.undo_events_after(run, 0)
        assert [e.undone for e in store.events(run)] == [False, True, True, True]


class TestMetrics:
    def test_batches_round_trip_bit_for_bit(self, store, config):
        """Batches read back exactly, NaN and inf where they were, in step order; `after` filters."""
        run = store.create_run(config)
        rng = np.random.default_rng(1)
        a, b, c = columns(range(1, 101), rng), columns(range(101, 102), rng), columns(range(102, 160), rng)
        for batch in (a, b, c):
            store.add_metrics(run, batch)
        store.add_metrics(run, {f: np.empty(0) for f in METRIC_FIELDS})  # an empty batch adds no row
        got = store.metrics(run)
        for f in METRIC_FIELDS:
            expected = np.concatenate([a[f], b[f], c[f]])
            np.testing.assert_array_equal(got[f], expected)
            assert got[f].tobytes() == expected.tobytes()
        later = store.metrics(run, after=120)
        np.testing.assert_array_equal(later["step"], np.arange(121, 160))
        np.testing.assert_array_equal(later["dev_cost"], c["dev_cost"][19:])

    def test_truncate_cuts_straddling_batch(self, store, config):
        """truncate_metrics keeps rows up to the step: later batches go, a straddling one is cut."""
        run = store.create_run(config)
        other = store.create_run(config)
        rng = np.random.default_rng(2)
        a, b, c = columns(range(1, 51), rng), columns(range(51, 101), rng), columns(range(101, 151), rng)
        for batch in (a, b, c):
            store.add_metrics(run, batch)
        store.add_metrics(other, columns(range(1, 151), rng))
        store.add_health(run, [(50, {"grad_norm": [1.0]}), (100, {"grad_norm": [2.0]})])
        store.truncate_metrics(run, 75)
        got = store.metrics(run)
        np.testing.assert_array_equal(got["step"], np.arange(1, 76))
        for f in METRIC_FIELDS:
            np.testing.assert_array_equal(got[f], np.concatenate([a[f], b[f][:25]]))
        assert [s for s, _ in store.health(run)] == [50]
        assert store.metrics(other)["step"].size == 150  # another run is untouched
        # a cut at a batch's boundary and then more rows: contiguous, no duplicates, and the evaluations
        # shown at the new steps are the new ones, none left over from the rows that were cut
        store.truncate_metrics(run, 50)
        again = columns(range(51, 61), rng)
        store.add_metrics(run, again)
        got = store.metrics(run)
        np.testing.assert_array_equal(got["step"], np.arange(1, 61))
        for f in METRIC_FIELDS:
            np.testing.assert_array_equal(got[f], np.concatenate([a[f], again[f]]))
        store.truncate_metrics(run, 0)
        assert store.metrics(run)["step"].size == 0

    def test_store_with_evaluations_in_every_row_still_reads(self, store, config):
        """A store written when each metrics row held the evaluation columns too (all nine fields per
        step) reads back as it was written, is cut by a rewind, and takes new batches after it."""
        run = store.create_run(config)
        rng = np.random.default_rng(4)
        old, new = columns(range(1, 41), rng), columns(range(41, 61), rng)
        block = np.stack([old[f] for f in METRIC_FIELDS])  # (9, n), as those versions wrote it
        with sqlite3.connect(store.path) as db:
            db.execute("INSERT INTO metrics (run_id, first_step, last_step, n, data) VALUES (?, ?, ?, ?, ?)",
                       (run, 1, 40, 40, block.tobytes()))
        db.close()
        store.add_metrics(run, new)
        got = store.metrics(run)
        for f in METRIC_FIELDS:
            np.testing.assert_array_equal(got[f], np.concatenate([old[f], new[f]]))
        store.truncate_metrics(run, 25)
        got = store.metrics(run)
        for f in METRIC_FIELDS:
            np.testing.assert_array_equal(got[f], old[f][:25])

    def test_store_with_raw_step_columns_still_reads(self, store, config):
        """A store written before the columns were packed (raw float64, five fields per step) reads back
        as it was written, is cut by a rewind, and takes packed batches after it."""
        run = store.create_run(config)
        rng = np.random.default_rng(5)
        old, new = columns(range(1, 41), rng), columns(range(41, 61), rng)
        block = np.stack([old[f] for f in STEP_FIELDS])  # (5, n), as those versions wrote it
        evaluated = [(run, int(old["step"][i]), *(float(old[f][i]) for f in EVAL_FIELDS))
                     for i in np.flatnonzero(~np.isnan(old["dev_cost"]))]
        with sqlite3.connect(store.path) as db:
            db.execute("INSERT INTO metrics (run_id, first_step, last_step, n, data) VALUES (?, ?, ?, ?, ?)",
                       (run, 1, 40, 40, block.tobytes()))
            db.executemany("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?)", evaluated)
        db.close()
        store.add_metrics(run, new)
        got = store.metrics(run)
        for f in STEP_FIELDS:
            assert got[f].tobytes() == np.concatenate([old[f], new[f]]).tobytes(), f
        np.testing.assert_array_equal(got["step"][~np.isnan(got["dev_cost"])][: len(evaluated)],
                                      [row[1] for row in evaluated])
        store.truncate_metrics(run, 25)
        got = store.metrics(run)
        for f in STEP_FIELDS:
            assert got[f].tobytes() == old[f][:25].tobytes(), f

    def test_a_trained_run_takes_about_ten_bytes_a_step(self, store):
        """A Trainer's own records (a pass's short last batch, a decay at each epoch, a batch size changed
        midway), written in batches as a session flushes them: back bit for bit, in under 12 bytes a
        step where raw float64 took 40."""
        config = parse_config('{"data": {"name": "moons", "n_samples": 1000}, "hyperparameters": '
                              '{"mini_batch_size": 64, "learning_rate_decay": 0.5}}')
        run = store.create_run(config)
        trainer = Trainer(config)
        records = []
        for i in range(20_000):
            if i == 9_000:
                trainer.set_hyperparams(mini_batch_size=48)
            records.append(trainer.step()[:len(STEP_FIELDS)])
        expected = np.array(records, np.float64).T
        assert len(np.unique(expected[3])) > 100  # alpha moved at every epoch
        for start in range(0, expected.shape[1], 7_000):
            batch = expected[:, start:start + 7_000]
            store.add_metrics(run, {**dict(zip(STEP_FIELDS, batch, strict=True)),
                                    **{f: np.full(batch.shape[1], np.nan) for f in EVAL_FIELDS}})
        got = store.metrics(run)
        for i, f in enumerate(STEP_FIELDS):
            assert got[f].tobytes() == expected[i].tobytes(), f
        with sqlite3.connect(store.path) as db:
            (stored,) = db.execute("SELECT SUM(LENGTH(data)) FROM metrics WHERE run_id = ?", (run,)).fetchone()
        db.close()
        assert stored < 12 * expected.shape[1]

    def test_copy_history_up_to_step(self, store, config):
        """copy_history gives another run the metrics, health and live events up to a step."""
        run, child = store.create_run(config), store.create_run(config)
        rng = np.random.default_rng(3)
        batch = columns(range(1, 101), rng)
        store.add_metrics(run, batch)
        store.add_health(run, [(50, {"grad_norm": [1.0]}), (100, {"grad_norm": [2.0]})])
        store.add_event(run, Event("start", 0, time=1.0))
        store.add_event(run, Event("change", 40, time=2.0, changes={"alpha": [0.01, 0.1]}))
        store.add_event(run, Event("pause", 80, time=3.0))
        store.undo_events_after(run, 50)
        store.add_event(run, Event("pause", 60, time=4.0))
        store.copy_history(run, child, 60)
        got = store.metrics(child)
        for f in METRIC_FIELDS:
            np.testing.assert_array_equal(got[f], batch[f][:60])
        assert store.health(child) == [(50, {"grad_norm": [1.0]})]
        assert [(e.kind, e.step) for e in store.events(child)] == [("start", 0), ("change", 40), ("pause", 60)]


class TestCheckpoints:
    def test_trainer_state_round_trips_exactly(self, store, config):
        """A real Trainer's state_dict saves and loads back exactly, and training from it continues identically."""
        run = store.create_run(config)
        t = trained(config, 37)
        state = t.state_dict()
        info = store.save_checkpoint(run, state, "periodic", cost=0.3)
        assert (info.step, info.reason, info.cost) == (37, "periodic", 0.3)
        assert store.checkpoints(run) == [info]
        loaded = store.load_checkpoint(info)
        assert set(loaded) == set(state)
        for key in ("step", "epoch", "position", "examples_seen", "optimizer", "rng", "hyperparameters"):
            assert loaded[key] == state[key], key
        np.testing.assert_array_equal(loaded["params"], state["params"])
        assert loaded["params"].dtype == state["params"].dtype
        np.testing.assert_array_equal(loaded["order"], state["order"])
        assert loaded["optimizer_state"]["t"] == state["optimizer_state"]["t"] == 37
        for key in ("v", "s"):
            np.testing.assert_array_equal(loaded["optimizer_state"][key], state["optimizer_state"][key])

        other = Trainer(config)
        other.load_state_dict(loaded)
        a = [t.step().cost for _ in range(40)]
        b = [other.step().cost for _ in range(40)]
        assert a == b
        assert np.array_equal(t.model.params, other.model.params)

    def test_fresh_and_gd_state_round_trip(self, store, config):
        """A state before any update (no order, no moments) and a gd state round-trip too."""
        run = store.create_run(config)
        fresh = Trainer(config).state_dict()
        loaded = store.load_checkpoint(store.save_checkpoint(run, fresh, "start"))
        assert loaded["order"] is None and loaded["optimizer_state"] == {"t": 0, "v": None, "s": None}
        gd = parse_config(CONFIG.replace('"mini_batch_size": 32', '"mini_batch_size": 32, "optimizer": "gd"'))
        t = trained(gd, 5)
        loaded = store.load_checkpoint(store.save_checkpoint(run, t.state_dict(), "periodic"))
        assert loaded["optimizer"] == "gd" and loaded["optimizer_state"] == {"t": 5}
        np.testing.assert_array_equal(loaded["params"], t.model.params)

    def test_written_atomically(self, store, config):
        """Checkpoints go through a temporary name: none is left behind, each file loads."""
        run = store.create_run(config)
        t = Trainer(config)
        for _ in range(5):
            t.step()
            store.save_checkpoint(run, t.state_dict(), "periodic")
        folder = os.path.join(store.home, "checkpoints", run)
        names = os.listdir(folder)
        assert len(names) == 5
        assert not [n for n in names if ".tmp" in n]
        assert all(n.endswith(".npz") for n in names)
        assert [store.load_checkpoint(c)["step"] for c in store.checkpoints(run)] == [1, 2, 3, 4, 5]

    @pytest.mark.parametrize("damage", ["truncated", "empty", "flipped", "garbage", "missing"])
    def test_damaged_checkpoint_raises_store_error(self, store, config, damage):
        """A truncated, emptied, bit-flipped, overwritten or missing file is a StoreError naming step and run."""
        run = store.create_run(config)
        info = store.save_checkpoint(run, trained(config, 9).state_dict(), "periodic")
        path = os.path.join(store.home, info.file)
        raw = open(path, "rb").read()
        if damage == "truncated":
            open(path, "wb").write(raw[: len(raw) // 2])
        elif damage == "empty":
            open(path, "wb").write(b"")
        elif damage == "flipped":
            data = bytearray(raw)
            data[len(raw) // 3] ^= 0xFF  # inside the params array: the zip's CRC catches it
            open(path, "wb").write(bytes(data))
        elif damage == "garbage":
            open(path, "wb").write(np.random.default_rng(0).bytes(len(raw)))
        else:
            os.remove(path)
        with pytest.raises(StoreError, match=f"checkpoint at step 9 of run {run} cannot be read"):
            store.load_checkpoint(info)

    def test_delete_checkpoints_after(self, store, config):
        """Checkpoints past a step go with their files; those at it only if taken after `since`."""
        run = store.create_run(config)
        t = Trainer(config)
        infos = []
        for n in (10, 20, 20, 30):
            while t.step_count < n:
                t.step()
            infos.append(store.save_checkpoint(run, t.state_dict(), "periodic"))
        store.delete_checkpoints_after(run, 20, since=infos[1].created)
        assert store.checkpoints(run) == infos[:2]
        for info in infos[2:]:
            assert not os.path.exists(os.path.join(store.home, info.file))


class TestDatabase:
    def test_recover_pauses_running_runs(self, tmp_path, config):
        """Runs left 'running' by a dead process come back 'paused'; others keep their status."""
        store = Store(home=tmp_path)
        ids = {status: store.create_run(config) for status in ("running", "paused", "stopped", "failed", "created")}
        for status, run in ids.items():
            store.update_run(run, status=status)
        store.close()
        reopened = Store(home=tmp_path)
        try:
            assert reopened.recover() == [ids["running"]]
            assert {s: reopened.get_run(r).status for s, r in ids.items()} == {
                "running": "paused", "paused": "paused", "stopped": "stopped", "failed": "failed",
                "created": "created"}
            assert reopened.recover() == []
        finally:
            reopened.close()

    def test_wal_mode_and_integrity(self, store, config):
        """The database is in WAL mode and passes SQLite's integrity check, also from a second connection."""
        run = store.create_run(config)
        store.add_metrics(run, columns(range(1, 11), np.random.default_rng(4)))
        assert store._query("PRAGMA journal_mode")[0][0] == "wal"
        assert store.integrity_check() == "ok"
        other = sqlite3.connect(store.path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert other.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        finally:
            other.close()

    def test_failed_transaction_rolls_back(self, store, config):
        """An error inside a transaction leaves nothing half written and the store usable."""
        run = store.create_run(config)
        with pytest.raises(RuntimeError):
            with store._tx() as db:
                db.execute("UPDATE runs SET name = 'changed' WHERE id = ?", (run,))
                raise RuntimeError("boom")
        assert store.get_run(run).name != "changed"
        store.update_run(run, name="fine")
        assert store.get_run(run).name == "fine"

    def test_retests_round_trip(self, store, config):
        """Retest records come back in order."""
        run = store.create_run(config)
        store.add_retest(run, {"seed": 1, "cost": 0.5})
        store.add_retest(run, {"seed": 2, "cost": 0.25})
        assert store.retests(run) == [{"seed": 1, "cost": 0.5}, {"seed": 2, "cost": 0.25}]


def test_an_owner_that_has_ended_but_not_been_reaped_is_not_alive():
    """A run's process whose parent died first stays a zombie until someone reaps it (in a container,
    maybe never): it trains nothing, so its runs are recovered, not refused as someone else's."""
    import socket
    import subprocess
    import sys
    import time

    from babysit.store import owner_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tag = f"{child.pid}@{socket.gethostname()}"
    deadline = time.monotonic() + 10
    while owner_alive(tag) and time.monotonic() < deadline:  # ended, not yet waited for: a zombie
        time.sleep(0.02)
    assert os.path.exists(f"/proc/{child.pid}") and not owner_alive(tag)
    child.wait()
    assert not owner_alive(tag)
    assert owner_alive(f"{os.getpid()}@{socket.gethostname()}")
