"""The run store: one SQLite database (WAL mode) and checkpoint files beside it.

    $BABYSIT_HOME (default ./runs)/
        babysit.db                      runs, events, metrics, evaluations, health, checkpoints, retests
        checkpoints/<run id>/<step>.npz weights, optimizer state, data order, RNG state, hyperparameters

Metrics arrive in batches (a session flushes at least once a second): each batch is one row whose
per-step columns (step, epoch, examples seen, alpha, cost) are packed (babysit.packing), about 10
bytes a step where raw float64 takes 40, and read back bit for bit. The evaluations (train and dev
cost and accuracy), made every few hundred steps, are rows of their own, not mostly-empty columns
of every step. Checkpoints are written to a temporary name and renamed into place, so a
crash leaves either the old file or the new one, never half of one; they hold only arrays and
JSON text (no pickle). ``recover()`` (the server calls it when it starts) brings back paused the
runs left marked as training by a process that died.
"""

import contextlib
import json
import math
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
import zipfile
from dataclasses import dataclass

import numpy as np

from babysit.config import data_label
from babysit.errors import BabysitError
from babysit.events import Event
from babysit.packing import MAGIC, pack, unpack

STEP_FIELDS = ("step", "epoch", "examples_seen", "alpha", "cost")  # one value at every step
EVAL_FIELDS = ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy")  # NaN where not evaluated
METRIC_FIELDS = STEP_FIELDS + EVAL_FIELDS
RUN_ID = re.compile(r"^[0-9a-f]{12}$")
LIVE = ("running",)  # statuses that mean a thread was training when the process ended

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, parent TEXT, fork_step INTEGER,
    status TEXT NOT NULL, config TEXT NOT NULL, hyperparameters TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
    best_dev_cost REAL, error TEXT, created REAL NOT NULL, updated REAL NOT NULL, owner TEXT);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL,
    body TEXT NOT NULL, undone INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, first_step);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, train_cost REAL, dev_cost REAL, train_accuracy REAL,
    dev_accuracy REAL);
CREATE INDEX IF NOT EXISTS evaluations_run ON evaluations(run_id, step);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS health_run ON health(run_id, step);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL, file TEXT NOT NULL,
    reason TEXT NOT NULL, cost REAL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_run ON checkpoints(run_id, step);
CREATE TABLE IF NOT EXISTS retests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, parent TEXT, space TEXT NOT NULL, seed INTEGER NOT NULL,
    settings TEXT NOT NULL, status TEXT NOT NULL, error TEXT, created REAL NOT NULL, updated REAL NOT NULL,
    owner TEXT, reruns TEXT);
CREATE TABLE IF NOT EXISTS trials (
    study_id TEXT NOT NULL, number INTEGER NOT NULL, point TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, rung INTEGER NOT NULL DEFAULT -1, step INTEGER NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL DEFAULT 0, dev_cost REAL, dev_accuracy REAL, train_cost REAL, train_accuracy REAL,
    error TEXT, curve BLOB, state_file TEXT, run_id TEXT, updated REAL NOT NULL,
    PRIMARY KEY (study_id, number));
"""


class StoreError(BabysitError):
    """A run that is not there, or a store that cannot be used."""


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    parent: str  # the run this one was branched from, or None
    fork_step: int  # the parent's step it was branched at
    status: str  # created, running, paused, stopped, failed
    config: dict  # the run's initial config (babysit train's format)
    hyperparameters: dict  # in force at the last update of the record
    step: int
    epoch: int
    best_dev_cost: float
    error: str
    created: float
    updated: float

    @property
    def data_label(self):
        data = self.config.get("data", {})
        return data_label(data.get("name"), data.get("csv"), data.get("target"))


@dataclass(frozen=True)
class CheckpointInfo:
    run_id: str
    step: int
    file: str  # relative to the store's home
    reason: str  # periodic, pause, change, stop, start, branch
    cost: float  # the smoothed mini-batch cost when it was taken (None at the start)
    created: float


def default_home():
    return os.environ.get("BABYSIT_HOME") or os.path.join(os.getcwd(), "runs")


def check_run_id(run_id):
    """Refuse anything that is not a run id, so no id can name a path outside the store."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):  # fullmatch: $ would let "…\n" through
        raise StoreError(f"{run_id!r} is not a run id (12 hexadecimal characters, as `babysit runs` lists)")
    return run_id


class Store:
    def __init__(self, home=None):
        self.home = os.path.abspath(home or default_home())
        os.makedirs(os.path.join(self.home, "checkpoints"), exist_ok=True)
        self.path = os.path.join(self.home, "babysit.db")
        self._lock = threading.RLock()  # one connection, shared by the sessions' threads
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self):
        with self._lock:
            self._db.close()

    def _tx(self):
        return _Transaction(self._db, self._lock)

    def _query(self, sql, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- runs ---------------------------------------------------------------------------------------

    def create_run(self, config, name=None, parent=None, fork_step=None, status="created"):
        if parent is not None:
            check_run_id(parent)
        run_id = secrets.token_hex(6)
        now = time.time()
        config_dict = config.to_dict()
        name = name or f"{config.data.label} · {config.hyperparameters.optimizer} α={config.hyperparameters.alpha:g}"
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, name, parent, fork_step, status, config, hyperparameters, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, parent, fork_step, status, json.dumps(config_dict),
                 json.dumps(config.hyperparameters.to_dict()), now, now),
            )
        return run_id

    def get_run(self, run_id):
        rows = self._query(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (check_run_id(run_id),))
        if not rows:
            raise StoreError(f"no run {run_id} in {self.home}")
        return _run_info(rows[0])

    def list_runs(self):
        return [_run_info(row) for row in self._query(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created")]

    def owner(self, run_id):
        """pid@host of the process that last set the run training, or None."""
        rows = self._query("SELECT owner FROM runs WHERE id = ?", (check_run_id(run_id),))
        return rows[0][0] if rows else None

    def update_run(self, run_id, **fields):
        allowed = {"name", "status", "hyperparameters", "step", "epoch", "best_dev_cost", "error", "owner"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {unknown}")
        if "hyperparameters" in fields:
            fields["hyperparameters"] = json.dumps(fields["hyperparameters"])
        fields["updated"] = time.time()
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self._tx() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), check_run_id(run_id)))

    def delete_run(self, run_id):
        check_run_id(run_id)
        files = [info.file for info in self.checkpoints(run_id)]
        with self._tx() as db:
            for table in ("events", "metrics", "evaluations", "health", "checkpoints", "retests"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        for file in files:
            _remove(os.path.join(self.home, file))
        try:
            os.rmdir(os.path.join(self.home, "checkpoints", run_id))
        except OSError:
            pass

    def recover(self):
        """Runs left marked as training by a process that has died come back paused, with an event
        saying so; returns their ids. A run another live process is training is left alone."""
        rows = self._query(f"SELECT id, step, owner FROM runs WHERE status IN ({','.join('?' * len(LIVE))})", LIVE)
        recovered = []
        for run_id, step, owner in rows:
            if owner_alive(owner):
                continue
            self.update_run(run_id, status="paused")
            self.add_event(run_id, Event("recovered", step, source="system",
                                         message="the process training it ended; paused at its newest checkpoint"))
            recovered.append(run_id)
        return recovered

    # -- events -------------------------------------------------------------------------------------

    def add_event(self, run_id, event):
        check_run_id(run_id)
        with self._tx() as db:
            db.execute("INSERT INTO events (run_id, step, time, body, undone) VALUES (?, ?, ?, ?, ?)",
                       (run_id, event.step, event.time, json.dumps(event.to_dict()), int(event.undone)))

    def events(self, run_id):
        rows = self._query("SELECT body, undone FROM events WHERE run_id = ? ORDER BY id", (check_run_id(run_id),))
        out = []
        for body, undone in rows:
            d = json.loads(body)
            d["undone"] = bool(undone)
            out.append(Event.from_dict(d))
        return out

    def undo_events_after(self, run_id, step, since=None):
        """Mark events later than ``step`` as rewound past (they stay in the log), and those at ``step``
        itself recorded after the time ``since``."""
        check_run_id(run_id)
        since = math.inf if since is None else since
        with self._tx() as db:
            db.execute("UPDATE events SET undone = 1 WHERE run_id = ? AND (step > ? OR (step = ? AND time > ?))",
                       (run_id, step, step, since))

    # -- metrics ------------------------------------------------------------------------------------

    def add_metrics(self, run_id, columns):
        """One batch of rows: {field: float64 array} with every METRIC_FIELDS column of equal length."""
        check_run_id(run_id)
        block = np.stack([np.asarray(columns[f], np.float64) for f in STEP_FIELDS])  # (fields, n)
        n = block.shape[1]
        if n == 0:
            return
        evals = np.stack([np.asarray(columns[f], np.float64) for f in EVAL_FIELDS])
        evaluated = np.flatnonzero(~np.isnan(evals).all(axis=0))
        # SQLite keeps NaN as NULL, which reads back as NaN
        eval_rows = [(run_id, int(block[0, i]), *map(float, evals[:, i])) for i in evaluated]
        with self._tx() as db:
            db.execute("INSERT INTO metrics (run_id, first_step, last_step, n, data) VALUES (?, ?, ?, ?, ?)",
                       (run_id, int(block[0, 0]), int(block[0, -1]), n, pack(block)))
            db.executemany(f"INSERT INTO evaluations (run_id, step, {', '.join(EVAL_FIELDS)})"
                           " VALUES (?, ?, ?, ?, ?, ?)", eval_rows)

    def metrics(self, run_id, after=0):
        """Every recorded row with step > ``after``, as {field: array}, in step order."""
        check_run_id(run_id)
        rows = self._query("SELECT n, data FROM metrics WHERE run_id = ? AND last_step > ? ORDER BY first_step",
                           (run_id, after))
        blocks = [_unpack_metrics(n, data) for n, data in rows]
        block = np.concatenate(blocks, axis=1) if blocks else np.empty((len(METRIC_FIELDS), 0))
        block = block[:, block[0] > after]
        evals = self._query(f"SELECT step, {', '.join(EVAL_FIELDS)} FROM evaluations WHERE run_id = ? AND step > ?"
                            " ORDER BY step", (run_id, after))
        if evals and block.shape[1]:
            evals = np.array(evals, np.float64)  # NULL -> NaN
            at = np.minimum(np.searchsorted(block[0], evals[:, 0]), block.shape[1] - 1)
            found = block[0, at] == evals[:, 0]  # an evaluation without its step's row is not shown
            block[len(STEP_FIELDS):, at[found]] = evals[found, 1:].T
        return {f: block[i] for i, f in enumerate(METRIC_FIELDS)}

    def truncate_metrics(self, run_id, step):
        """Forget rows after ``step`` (a rewind): batches past it go, one that straddles it is cut."""
        check_run_id(run_id)
        with self._tx() as db:
            straddling = db.execute("SELECT id, n, data FROM metrics WHERE run_id = ? AND first_step <= ?"
                                    " AND last_step > ?", (run_id, step, step)).fetchall()
            db.execute("DELETE FROM metrics WHERE run_id = ? AND first_step > ?", (run_id, step))
            for row_id, n, data in straddling:
                block = _stored_block(n, data)
                block = np.ascontiguousarray(block[:, block[0] <= step])
                db.execute("UPDATE metrics SET last_step = ?, n = ?, data = ? WHERE id = ?",
                           (int(block[0, -1]), block.shape[1], pack(block), row_id))
            db.execute("DELETE FROM evaluations WHERE run_id = ? AND step > ?", (run_id, step))
            db.execute("DELETE FROM health WHERE run_id = ? AND step > ?", (run_id, step))

    def copy_history(self, source, target, step):
        """Give a branch its parent's metrics, health and timeline events up to ``step``."""
        check_run_id(target)
        columns = self.metrics(source)
        keep = columns["step"] <= step
        if keep.any():
            self.add_metrics(target, {f: v[keep] for f, v in columns.items()})
        for row_step, body in self.health(source):
            if row_step <= step:
                self.add_health(target, [(row_step, body)])
        for event in self.events(source):
            if event.step <= step and not event.undone:
                self.add_event(target, event)

    # -- health -------------------------------------------------------------------------------------

    def add_health(self, run_id, rows):
        """rows: [(step, {metric: [value per layer]})]"""
        check_run_id(run_id)
        with self._tx() as db:
            db.executemany("INSERT INTO health (run_id, step, body) VALUES (?, ?, ?)",
                           [(run_id, step, json.dumps(body)) for step, body in rows])

    def health(self, run_id):
        rows = self._query("SELECT step, body FROM health WHERE run_id = ? ORDER BY step", (check_run_id(run_id),))
        return [(step, json.loads(body)) for step, body in rows]

    # -- checkpoints --------------------------------------------------------------------------------

    def write_state(self, file, state):
        """A Trainer.state_dict() into ``file`` (relative to the home) atomically: arrays and JSON only."""
        os.makedirs(os.path.dirname(os.path.join(self.home, file)), exist_ok=True)
        arrays = {"params": state["params"]}
        if state["order"] is not None:
            arrays["order"] = state["order"]
        opt = state["optimizer_state"]
        for key, value in opt.items():
            if key != "t" and value is not None:
                arrays[f"optimizer_{key}"] = value
        meta = {k: state[k] for k in ("step", "epoch", "position", "examples_seen", "optimizer", "rng",
                                      "hyperparameters")}
        meta["optimizer_t"] = opt["t"]
        meta["optimizer_keys"] = [k for k in opt if k != "t"]
        arrays["meta"] = np.array(json.dumps(meta))
        path = os.path.join(self.home, file)
        tmp = f"{path}.tmp.npz"
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        except BaseException:  # a full disk, say: leave no half-written file behind
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    def read_state(self, file):
        """The state dict written by write_state; ValueError, OSError or BadZipFile when damaged."""
        with np.load(os.path.join(self.home, file), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            opt = {"t": meta["optimizer_t"]}
            for key in meta["optimizer_keys"]:
                name = f"optimizer_{key}"
                opt[key] = npz[name] if name in npz.files else None
            state = {k: meta[k] for k in ("step", "epoch", "position", "examples_seen", "optimizer", "rng",
                                          "hyperparameters")}
            state["params"] = npz["params"]
            state["order"] = npz["order"] if "order" in npz.files else None
            state["optimizer_state"] = opt
        return state

    def save_checkpoint(self, run_id, state, reason, cost=None):
        """Write a Trainer.state_dict() atomically and record it; returns its CheckpointInfo."""
        step = int(state["step"])
        file = os.path.join("checkpoints", check_run_id(run_id), f"{step:010d}-{secrets.token_hex(3)}.npz")
        self.write_state(file, state)
        info = CheckpointInfo(run_id, step, file, reason, cost, time.time())
        with self._tx() as db:
            db.execute("INSERT INTO checkpoints (run_id, step, file, reason, cost, created) VALUES (?, ?, ?, ?, ?, ?)",
                       (run_id, step, file, reason, cost, info.created))
        return info

    def checkpoints(self, run_id):
        rows = self._query("SELECT run_id, step, file, reason, cost, created FROM checkpoints WHERE run_id = ?"
                           " ORDER BY step, id", (check_run_id(run_id),))
        return [CheckpointInfo(*row) for row in rows]

    def load_checkpoint(self, info):
        """The state dict a checkpoint holds; StoreError if its file is missing or damaged."""
        try:
            return self.read_state(info.file)
        # RuntimeError (NotImplementedError among them): zipfile's word for a damaged header that names an
        # unknown compression method or an encrypted member
        except (OSError, ValueError, KeyError, EOFError, RuntimeError, zipfile.BadZipFile) as error:
            raise StoreError(f"checkpoint at step {info.step} of run {info.run_id} cannot be read ({error})") from None

    def delete_checkpoints_after(self, run_id, step, since=None):
        """Delete checkpoints later than ``step``, and those at ``step`` taken after the time ``since``."""
        since = math.inf if since is None else since
        self.delete_checkpoints(run_id, [c for c in self.checkpoints(run_id)
                                         if c.step > step or (c.step == step and c.created > since)])

    def delete_checkpoints(self, run_id, doomed):
        """Delete these checkpoints (CheckpointInfo): their rows, then their files (a crash in between
        leaves a file no row names, never a row without its file)."""
        check_run_id(run_id)
        with self._tx() as db:
            db.executemany("DELETE FROM checkpoints WHERE run_id = ? AND file = ?", [(run_id, c.file) for c in doomed])
        for info in doomed:
            _remove(os.path.join(self.home, info.file))

    # -- retests ------------------------------------------------------------------------------------

    def add_retest(self, run_id, body):
        with self._tx() as db:
            db.execute("INSERT INTO retests (run_id, body, created) VALUES (?, ?, ?)",
                       (check_run_id(run_id), json.dumps(body), time.time()))

    def retests(self, run_id):
        rows = self._query("SELECT body FROM retests WHERE run_id = ? ORDER BY id", (check_run_id(run_id),))
        return [json.loads(body) for (body,) in rows]

    # -- studies (caviar) ---------------------------------------------------------------------------


    def create_study(self, space, seed, settings, name=None, parent=None):
        if parent is not None:
            check_run_id(parent)
        study_id = secrets.token_hex(6)
        now = time.time()
        with self._tx() as db:
            db.execute(f"INSERT INTO studies ({STUDY_COLUMNS}, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (study_id, name or f"study {study_id[:6]}", parent, json.dumps(space), seed,
                        json.dumps(settings), "created", None, now, now, None, owner_tag()))
        return study_id

    def get_study(self, study_id):
        rows = self._query(f"SELECT {STUDY_COLUMNS} FROM studies WHERE id = ?", (check_run_id(study_id),))
        if not rows:
            raise StoreError(f"no study {study_id} in {self.home}")
        return _study_info(rows[0])

    def list_studies(self):
        return [_study_info(r) for r in self._query(f"SELECT {STUDY_COLUMNS} FROM studies ORDER BY created")]

    def update_study(self, study_id, **fields):
        allowed = {"name", "status", "error", "owner", "reruns"}
        if set(fields) - allowed:
            raise ValueError(f"cannot update {set(fields) - allowed}")
        if "reruns" in fields:
            fields["reruns"] = json.dumps(fields["reruns"])
        fields["updated"] = time.time()
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self._tx() as db:
            db.execute(f"UPDATE studies SET {assignments} WHERE id = ?", (*fields.values(), check_run_id(study_id)))

    def add_trials(self, study_id, trials):
        """trials: [(number, point dict, config dict)], all pending."""
        check_run_id(study_id)
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT INTO trials (study_id, number, point, config, status, updated)"
                           " VALUES (?, ?, ?, ?, 'pending', ?)",
                           [(study_id, n, json.dumps(p), json.dumps(c), now) for n, p, c in trials])

    def trials(self, study_id):
        rows = self._query(f"SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ? ORDER BY number",
                           (check_run_id(study_id),))
        return [_trial_info(r) for r in rows]

    def update_trial(self, study_id, number, curve=None, **fields):
        check_run_id(study_id)
        allowed = {"status", "rung", "step", "epoch", "dev_cost", "dev_accuracy", "train_cost", "train_accuracy",
                   "error", "state_file", "run_id"}
        if set(fields) - allowed:
            raise ValueError(f"cannot update {set(fields) - allowed}")
        if curve is not None:
            fields["curve"] = _encode_curve(curve)
        fields["updated"] = time.time()
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self._tx() as db:
            db.execute(f"UPDATE trials SET {assignments} WHERE study_id = ? AND number = ?",
                       (*fields.values(), study_id, number))

    def recover_studies(self):
        """Studies left running by a process that died are marked interrupted; returns their ids."""
        rows = self._query("SELECT id, owner FROM studies WHERE status = 'running'")
        ids = [study_id for study_id, owner in rows if not owner_alive(owner)]
        for study_id in ids:
            self.update_study(study_id, status="interrupted")
        return ids

    def delete_study(self, study_id):
        check_run_id(study_id)
        with self._tx() as db:
            db.execute("DELETE FROM trials WHERE study_id = ?", (study_id,))
            db.execute("DELETE FROM studies WHERE id = ?", (study_id,))
        import shutil

        shutil.rmtree(os.path.join(self.home, "studies", study_id), ignore_errors=True)

    def integrity_check(self):
        return self._query("PRAGMA integrity_check")[0][0]


def _stored_block(n, data):
    """A metrics row's blob as written: (fields, n), the STEP_FIELDS, or all METRIC_FIELDS in a store
    written before the evaluations had a table of their own."""
    # A blob written before packing is raw float64, the step first: an integer below 2**51, whose
    # first four bytes (the lowest of its mantissa) cannot be MAGIC's.
    if data[:4] == MAGIC:
        return unpack(data, n)
    return np.frombuffer(data, np.float64).reshape(len(data) // (8 * n), n)


def _unpack_metrics(n, data):
    """A metrics row's blob as (len(METRIC_FIELDS), n), the evaluations NaN where the blob has none (they
    are read from their own table)."""
    stored = _stored_block(n, data)
    if stored.shape[0] == len(METRIC_FIELDS):
        return stored
    block = np.full((len(METRIC_FIELDS), n), np.nan)
    block[: len(STEP_FIELDS)] = stored
    return block


class _Transaction:
    """``with store._tx() as db``: the store's lock held, BEGIN … COMMIT (ROLLBACK on error)."""

    def __init__(self, db, lock):
        self.db, self.lock = db, lock

    def __enter__(self):
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback):
        try:
            self.db.execute("ROLLBACK" if kind else "COMMIT")
        finally:
            self.lock.release()


RUN_COLUMNS = ("id, name, parent, fork_step, status, config, hyperparameters, step, epoch, best_dev_cost, error,"
               " created, updated")


def owner_tag():
    """Who is training a run: this process, on this machine."""
    return f"{os.getpid()}@{socket.gethostname()}"


def owner_alive(owner):
    if not owner or "@" not in owner:
        return False
    pid, host = owner.split("@", 1)
    if host != socket.gethostname():
        return True  # another machine's process: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return not _zombie(int(pid))


def _zombie(pid):
    """A process that has ended but not been reaped yet (its parent died first, say) trains nothing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _run_info(row):
    (run_id, name, parent, fork_step, status, config, hp, step, epoch, best, error, created, updated) = row
    return RunInfo(run_id, name, parent, fork_step, status, json.loads(config), json.loads(hp), step, epoch,
                   best, error, created, updated)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# -- studies (caviar) -------------------------------------------------------------------------------

STUDY_COLUMNS = "id, name, parent, space, seed, settings, status, error, created, updated, reruns"
TRIAL_COLUMNS = ("study_id, number, point, config, status, rung, step, epoch, dev_cost, dev_accuracy, train_cost,"
                 " train_accuracy, error, curve, state_file, run_id, updated")


@dataclass(frozen=True)
class StudyInfo:
    id: str
    name: str
    parent: str  # the study this one zooms in from, or None
    space: dict  # the search space file's content
    seed: int
    settings: dict  # StudySettings as a dict
    status: str  # created, running, interrupted, done, failed
    error: str
    created: float
    updated: float
    reruns: list  # the best trials trained again on fresh seeds: [{number, seeds, dev_costs, mean, std}]


@dataclass(frozen=True)
class TrialInfo:
    study_id: str
    number: int
    point: dict  # the sampled values
    config: dict  # the whole run config it trains
    status: str  # pending, running, done, pruned, failed
    rung: int  # the last rung completed (-1: none)
    step: int
    epoch: int
    dev_cost: float
    dev_accuracy: float
    train_cost: float
    train_accuracy: float
    error: str
    curve: dict  # {"step", "epoch", "cost", "dev_cost", ...}: float64 arrays
    state_file: str  # its newest state (a Trainer.state_dict), relative to the home
    run_id: str  # the panda run made from it, if any
    updated: float


def _encode_curve(curve):
    if not curve:
        return None
    names = sorted(curve)
    block = np.stack([np.asarray(curve[n], np.float64) for n in names])
    return json.dumps(names).encode() + b"\n" + block.tobytes()


def _decode_curve(blob):
    if not blob:
        return {}
    header, body = bytes(blob).split(b"\n", 1)
    names = json.loads(header)
    block = np.frombuffer(body, np.float64).reshape(len(names), -1)
    return {n: block[i] for i, n in enumerate(names)}


def _study_info(row):
    (study_id, name, parent, space, seed, settings, status, error, created, updated, reruns) = row
    return StudyInfo(study_id, name, parent, json.loads(space), seed, json.loads(settings), status, error, created,
                     updated, json.loads(reruns) if reruns else [])


def _trial_info(row):
    (study_id, number, point, config, status, rung, step, epoch, dev_cost, dev_acc, train_cost, train_acc, error,
     curve, state_file, run_id, updated) = row
    return TrialInfo(study_id, number, json.loads(point), json.loads(config), status, rung, step, epoch, dev_cost,
                     dev_acc, train_cost, train_acc, error, _decode_curve(curve), state_file, run_id, updated)
