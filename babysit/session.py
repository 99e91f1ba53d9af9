"""A live run: one Trainer in a background thread, steered by commands, watched through snapshots.

Commands (start, pause, resume, step N, set, rewind, branch, probe, stop) go into a queue and are
applied *between* updates by the training thread, each becoming an event stamped with the step it
took effect at. The page never touches the trainer: it submits commands and reads ``snapshot()``,
an immutable view built from bounded, downsampled history, so taking one costs the same at step
10 or 10⁶ and holds the training thread up for a moment only.

``tick()`` is one turn of the thread's loop (apply pending commands, then train one step if
running); tests call it directly, so they see a change land at an exact step without sleeping.

Checkpoints are taken every ``checkpoint_every`` steps, when the run pauses or stops, and before
every applied change; rewinding restores one exactly, so continuing reproduces the same numbers.
The guardrail pauses the run when the cost or a weight stops being finite, or when the smoothed
mini-batch cost climbs above ``guard_factor`` × max(its best so far, ``guard_floor``); it then
offers to rewind to the last good checkpoint, or to do that and resume with alpha × 0.1.
"""

import collections
import concurrent.futures
import itertools
import math
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from babysit import health
from babysit.config import RunConfig
from babysit.errors import BabysitError, ConfigError, DivergedError
from babysit.events import Event
from babysit.history import MinMaxSeries, points_of
from babysit.hyperparams import HyperParams
from babysit.store import EVAL_FIELDS, STEP_FIELDS, StoreError, owner_alive, owner_tag
from babysit.trainer import Trainer

STATUSES = ("created", "running", "paused", "stopped", "failed")
COMMANDS = ("start", "pause", "resume", "step", "epochs", "set", "rewind", "branch", "probe", "stop", "shutdown")
STARTING = ("start", "resume", "step", "epochs")  # the commands that set a run training
ROW = len(STEP_FIELDS)  # a StepRecord's first fields, the ones kept for every step
EVAL_EVERY = 500  # steps between evaluations unless the data set is large or the settings say otherwise
EVAL_SHARE = 0.02  # on a large data set, at most this share of training goes to evaluations (estimated)


def periodic_checkpoints_kept(steps, every, kept):
    """Of the periodic checkpoints at ``steps`` (ascending), those to keep: at each spacing
    every × 10^j (j = 0, 1, 2, ...), the newest ``kept`` at a multiple of it, and the newest of all.
    A run keeps some ``kept`` × log10(its checkpoints) of them, recent ones close together and older
    ones further apart, instead of one every ``every`` steps since its start."""
    keep = set(steps[-1:])
    spacing = every
    while steps and spacing <= steps[-1]:
        keep.update([s for s in steps if s % spacing == 0][-kept:])
        spacing *= 10
    return keep


def evaluation_interval(n_examples, batch_size):
    """Steps between two evaluations when the settings leave it open: EVAL_EVERY, or on a data set so
    large that a pass over its ``n_examples`` (train and dev) would cost more than EVAL_SHARE of the
    ``batch_size``-example updates in between, the smallest multiple of EVAL_EVERY that does not. A
    pass is forward only, about a third of an update's work per example: n_examples / (3 batch_size)
    updates."""
    updates = n_examples / (3 * batch_size)
    return EVAL_EVERY * max(1, math.ceil(updates / EVAL_SHARE / EVAL_EVERY))


@dataclass(frozen=True)
class SessionSettings:
    # steps between evaluations of train and dev cost and accuracy; None: EVAL_EVERY, or more on a large
    # data set, so that evaluating stays a small share of training (evaluation_interval)
    eval_every: int = None
    health_every: int = 1000  # steps between health measurements
    # steps between periodic checkpoints: about a second of a small run at full speed; a change, a pause
    # and a stop take their own, so this only bounds how far back a guardrail's rewind or a crash goes
    checkpoint_every: int = 20_000
    # periodic checkpoints kept at each spacing: the newest 10 at checkpoint_every apart, 10 at ten
    # times that, and so on (periodic_checkpoints_kept); a change's, a pause's and a stop's are all kept
    checkpoints_kept: int = 10
    flush_every: float = 0.5  # seconds between writes of metrics to the store (at most 1)
    guard_factor: float = 4.0  # pause when the smoothed cost exceeds this × max(best, guard_floor)
    guard_floor: float = 0.05  # costs below this are all "good": mini-batch noise near 0 trips nothing
    guard_smoothing: float = 0.98  # weight of the smoothed cost's average (≈ the last 50 steps)
    probe_size: int = 256  # examples in the fixed batch that health is measured on
    history_capacity: int = 1024  # buckets kept per drawn series
    thread_nice: int = 0  # how much lower the training thread's priority is than its process's (Linux only)

    def __post_init__(self):
        if not 0 < self.flush_every <= 1:
            raise ConfigError(f"flush_every must be in (0, 1] seconds, got {self.flush_every}")
        for name in ("eval_every", "health_every", "checkpoint_every", "checkpoints_kept", "probe_size",
                     "history_capacity"):
            if name == "eval_every" and self.eval_every is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.guard_factor > 1:
            raise ConfigError(f"guard_factor must be > 1, got {self.guard_factor}")
        if not isinstance(self.thread_nice, int) or not 0 <= self.thread_nice <= 19:
            raise ConfigError(f"thread_nice must be an integer in [0, 19], got {self.thread_nice!r}")


@dataclass(frozen=True)
class Command:
    id: int
    kind: str  # start, pause, resume, step, set, rewind, branch, probe, stop
    args: dict
    source: str  # user, guardrail, system
    submitted: float
    future: concurrent.futures.Future = field(default=None, compare=False, repr=False)  # None once sent elsewhere

    def describe(self):
        if self.kind == "set":
            return ", ".join(f"{k} → {v:.4g}" if isinstance(v, float) else f"{k} → {v}" for k, v in
                             self.args["changes"].items())
        if self.kind in ("step", "epochs"):
            return f"{self.kind} {self.args['n']}"
        if self.kind in ("rewind", "branch"):
            return f"{self.kind} to step {self.args['step']}"
        return self.kind

    def result(self, timeout=None):
        return self.future.result(timeout)


@dataclass(frozen=True)
class Guardrail:
    reason: str
    step: int  # where it tripped
    rewind_to: int  # the last good checkpoint's step, or None
    lowered_alpha: float  # alpha × 0.1 for the "resume with a lower rate" offer


@dataclass(frozen=True)
class Snapshot:
    run_id: str
    name: str
    status: str
    step: int
    epoch: int
    examples_seen: int
    n_train: int
    steps_per_second: float
    hyperparameters: object  # HyperParams in force
    alpha_in_force: float  # after decay, for the next update
    pending: tuple  # Commands not yet applied
    events: tuple  # Event, oldest first
    series: dict  # name -> (x: steps, y), downsampled keeping each bucket's min and max
    cost_means: tuple  # (x, y) bucket means of the mini-batch cost, for smoothing
    last_evaluation: dict  # the latest train/dev figures, or {}
    last_health: dict  # {metric: [per layer]} at the latest health step, or {}
    guardrail: Guardrail  # why the run was paused automatically, or None
    error: str  # what stopped a failed run
    checkpoints: tuple  # (step, reason)
    parent: str
    fork_step: int
    chance_cost: float  # -ln(1/C)
    initial_cost: float  # train cost before the first update
    config: RunConfig
    n_features: int = 0  # the data's inputs and classes: the net's first and last widths
    n_classes: int = 0
    eval_every: int = 0  # steps between evaluations, for the batch size in force
    taken: float = field(default_factory=time.time)


class Session:
    def __init__(self, store, run_id, trainer, settings=None, name=None):
        self.store = store
        self.run_id = run_id
        self.trainer = trainer
        self.settings = settings or SessionSettings()
        info = store.get_run(run_id)
        self.name = name or info.name
        self.parent, self.fork_step = info.parent, info.fork_step
        self.status = "created"
        self.error = None
        self.guardrail = None
        self._ids = itertools.count(1)
        self._commands = collections.deque()  # submitted, not yet applied
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards the history against a snapshot taken mid-fold
        self._thread = None
        self._target = None  # ("step", N) or ("epoch", E): a step or epochs command pauses there
        self._events = []
        self._checkpoints = []  # CheckpointInfo, in step order
        # per step, a record's STEP_FIELDS go: _unfolded (their values, flat: a list's extend is the
        # cheapest thing a step can do, and the record itself is freed at once) -> the history and
        # _unwritten (float64 column batches, at most a flush apart) -> the store
        self._unfolded, self._evals_unfolded = [], []
        self._unwritten = []  # {field: array} batches already in the history, not yet in the store
        self._health_unflushed = []  # (step, measurements) not yet in the history
        self._health_unwritten = []  # in the history, not yet in the store
        self._last_evaluation, self._last_health = {}, {}
        self._series = collections.defaultdict(lambda: MinMaxSeries(self.settings.history_capacity))
        self._cost_series = self._series["cost"]
        self._last_flush = time.monotonic()
        self._flushed_step = trainer.step_count
        self._rate = 0.0
        self._reset_guard()
        self._stale_after = None  # step of the newest checkpoint when reopened mid-history
        self._loaded = None  # the checkpoint a reopened run was restored from
        self._saved = None  # (step, hyperparameters) of the newest checkpoint: no need to save it twice
        self._commands_lock = threading.Lock()
        self.interrupted = False  # reopened after the process training it died
        self.write_error = None  # why the store could not be written, while that lasts
        self._viewer, self._viewer_lock = None, threading.Lock()  # a model of the page's own, for drawing
        self.chance_cost = health.chance_cost(trainer.data.n_classes)
        self.initial_cost = None
        probe = min(self.settings.probe_size, trainer.m)
        self._probe_X = np.ascontiguousarray(trainer.X[:, :probe])  # a fixed batch: health compares like with like
        self._schedule_steps = {change.step for change in trainer.config.schedule}

    # -- making and reopening ---------------------------------------------------------------------

    @classmethod
    def create(cls, store, config, name=None, settings=None):
        """A new run in the store, ready to start. The data loads first: a bad data set makes no run."""
        trainer = Trainer(config)
        run_id = store.create_run(config, name)
        session = cls(store, run_id, trainer, settings)
        session._begin()
        return session

    @classmethod
    def open(cls, store, run_id, settings=None):
        """A stored run as it was left: its history, at its newest readable checkpoint, paused."""
        info = store.get_run(run_id)
        owner = store.owner(run_id)
        if info.status == "running" and owner != owner_tag() and owner_alive(owner):
            raise StoreError(f"run {run_id} is being trained by another process ({owner}); open it there, "
                             "or stop that process first")
        config = RunConfig.from_dict(info.config)
        trainer = Trainer(config)
        session = cls(store, run_id, trainer, settings)
        session._checkpoints = store.checkpoints(run_id)
        damaged = []
        for checkpoint in reversed(session._checkpoints):
            try:
                trainer.load_state_dict(store.load_checkpoint(checkpoint))
                session._loaded = checkpoint
                session._saved = (checkpoint.step, trainer.hp)
                break
            except StoreError as error:
                damaged.append(str(error))
        else:
            if session._checkpoints:
                raise StoreError(f"run {run_id}: no checkpoint can be read ({'; '.join(damaged)})")
        session._events = store.events(run_id)
        session._load_history()
        if trainer.step_count or session._checkpoints:
            session._reapply_changes_after(session._loaded)
        for event in session._events:
            if event.kind == "start" and "initial_cost" in event.changes:
                session.initial_cost = event.changes["initial_cost"][1]
                if not session._last_evaluation and "train_cost" in event.changes:  # only step 0 was evaluated
                    session._last_evaluation = {"step": 0, **{f: event.changes[f][1] for f in EVAL_FIELDS}}
        session._flushed_step = trainer.step_count
        recorded = session._recorded_step()
        if recorded > trainer.step_count:
            session._stale_after = trainer.step_count
        session.status = {"created": "created", "failed": "failed", "stopped": "stopped"}.get(info.status, "paused")
        session.interrupted = bool(session._events) and session._events[-1].kind == "recovered"
        session.error = info.error
        for message in damaged:
            session._record(Event("recovered", trainer.step_count, source="system",
                                  message=f"{message}; using the previous good checkpoint"))
        return session

    def _reapply_changes_after(self, checkpoint):
        """Changes recorded at the checkpoint's step but after it was taken (made while paused, then
        the process died before the next checkpoint) belong to the run: apply them again."""
        if checkpoint is None:
            return
        for event in self._events:
            if event.kind == "change" and not event.undone and event.step == checkpoint.step \
                    and event.time > checkpoint.created:
                self.trainer.set_hyperparams(**{name: new for name, (_, new) in event.changes.items()})

    def _recorded_step(self):
        last = self._cost_series.last()
        return int(last[0]) if last else 0

    def _load_history(self):
        columns = self.store.metrics(self.run_id)
        self._fold_columns(columns)
        rows = self.store.health(self.run_id)
        if rows:
            self._fold_health(rows)
            self._last_health = rows[-1][1]
        evaluated = ~np.isnan(columns["train_cost"])
        if evaluated.any():
            i = np.flatnonzero(evaluated)[-1]
            self._last_evaluation = {f: _num(columns[f][i]) for f in ("step", *EVAL_FIELDS)}

    def _begin(self):
        """Step 0: the cost against the chance level, and the first checkpoint."""
        evaluation = self.trainer.evaluate()
        self.initial_cost = evaluation.train_cost
        self._last_evaluation = {"step": 0, **{f: getattr(evaluation, f) for f in EVAL_FIELDS}}
        verdict = "as expected" if evaluation.train_cost < 1.5 * self.chance_cost else \
            "well above it: check the data's scale and the initialisation"
        self._record(Event(
            "start", 0, source="system",
            changes={"initial_cost": [None, evaluation.train_cost], "chance_cost": [None, self.chance_cost],
                     **{f: [None, getattr(evaluation, f)] for f in EVAL_FIELDS}},
            message=f"initial cost {evaluation.train_cost:.4f} vs chance level ln({self.trainer.data.n_classes})"
                    f" = {self.chance_cost:.4f}: {verdict}",
        ))
        self._checkpoint("start")

    # -- commands (any thread) --------------------------------------------------------------------

    def submit(self, kind, source="user", **args):
        """Queue a command; it is applied between two updates. Returns it (``.result()`` waits).

        A ``set`` is validated here too, so a bad value is refused at once and nothing is queued."""
        if kind == "set":
            self.trainer.hp.replace(**args["changes"])  # raises ConfigError naming the field
        n = args.get("n")
        if kind in ("step", "epochs") and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ConfigError(f"{kind} needs a whole number >= 1, got {args.get('n')!r}")
        if kind not in COMMANDS:
            raise ValueError(f"unknown command {kind!r}")
        command = Command(next(self._ids), kind, args, source, time.time(), concurrent.futures.Future())
        with self._commands_lock:
            self._commands.append(command)
        if self._thread is not None and not self._thread.is_alive():
            self.start_thread()  # a stopped run's thread has ended: a new command wakes it again
        self._wake.set()
        return command

    def set(self, source="user", **changes):
        return self.submit("set", source=source, changes=changes)

    # -- one turn of the loop (the training thread, or a test) ------------------------------------

    def tick(self):
        """Apply every pending command, then train one step if running. Returns the StepRecord or None."""
        self._apply_pending()
        if self.status != "running":
            return None
        return self._train_step()

    def _apply_pending(self):
        while self._commands:
            command = self._commands[0]  # still pending in snapshots until it has been applied
            try:
                self._apply(command)
            finally:
                with self._commands_lock:
                    self._commands.popleft()

    def turn(self):
        """The thread's turn: like ``tick()``, but the steps up to the next one with something due
        (an evaluation, health, a checkpoint, a scheduled change, the target, a flush) are trained in
        one tight loop. Same steps, same numbers, same events; less Python between two updates.
        Returns the last StepRecord, or None when not running (bench/session.py calls it directly to
        time a session's work in slices)."""
        self._apply_pending()
        if self.status != "running":
            return None
        plain = self._plain_steps()
        if plain:
            record = self._train_plain(plain)
            if self.status == "running" and time.monotonic() - self._last_flush >= self.settings.flush_every:
                self._flush()
            return record
        return self._train_step()

    def _plain_steps(self):
        """How many updates from here have nothing due but the guardrail (at most 4,096)."""
        trainer, settings = self.trainer, self.settings
        step = trainer.step_count
        due = step + 4097
        for every in (self.evaluation_interval(), settings.health_every, settings.checkpoint_every):
            due = min(due, step - step % every + every)
        for s in self._schedule_steps:
            if s > step:
                due = min(due, s)
        target = self._target
        if target is not None:
            if target[0] == "step":
                due = min(due, target[1])
            else:  # the update that ends this pass over the data is the one that may reach the target
                left = trainer.m - trainer.position
                due = min(due, step + -(-left // trainer.hp.mini_batch_size))
        return max(due - step - 1, 0)

    def _train_plain(self, n):
        """``n`` updates where only the guardrail has a say, stopping early at a command or a trip.
        The guardrail's arithmetic is ``_train_step``'s, in the same order, so it trips at the same step."""
        step, commands, append = self.trainer.step, self._commands, self._unfolded.extend
        settings = self.settings
        g = settings.guard_smoothing
        factor, floor = settings.guard_factor, settings.guard_floor
        smooth, power, best, limit = self._smooth, self._g_power, self._best, self._guard_limit
        clock, flush_at = time.monotonic, self._last_flush + settings.flush_every
        record, tripped = None, None
        try:
            for i in range(n):
                record = step()
                append(record[:ROW])
                if record[7] is not None:  # diverged: this update was not made
                    tripped = record.diverged
                    break
                smooth = g * smooth + (1 - g) * record[4]
                power *= g
                smoothed = smooth / (1 - power)
                if smoothed < best:
                    best = smoothed
                    limit = factor * (smoothed if smoothed > floor else floor)
                elif smoothed > limit:
                    tripped = self._risen(smoothed, limit)
                    break
                if commands or (not i & 63 and clock() >= flush_at):
                    break
        finally:
            self._smooth, self._g_power, self._best, self._guard_limit = smooth, power, best, limit
        if tripped:
            self._trip(tripped, record.step, record.alpha)
        return record

    def _apply(self, command):
        try:
            result = getattr(self, f"_do_{command.kind}")(command)
        except BabysitError as error:
            self._record(Event("error", self.trainer.step_count, source=command.source,
                               message=f"{command.describe()} refused: {error}"))
            command.future.set_exception(error)
        except BaseException as error:
            command.future.set_exception(error)
            raise
        else:
            command.future.set_result(result)

    def _do_start(self, command):
        return self._do_resume(command)

    def _do_resume(self, command):
        if self.status == "running":
            return None
        if self.write_error:  # try the store again before training on
            self._flush()
            self.write_error = self.error = None
        self._reconcile()
        self._set_running()
        self._target = None
        return self._record(self._event("resume", command.source))

    def _set_running(self):
        if self.trainer.diverged:  # its next step would fail the run: only a rewind goes on from here
            raise DivergedError(f"{self.trainer.diverged}; rewind to a checkpoint to go on")
        self.status = "running"
        self.guardrail = None
        self.store.update_run(self.run_id, owner=owner_tag())
        # the rate is counted from here: the time paused before it is not the run's speed
        self._last_flush = time.monotonic()

    def _do_pause(self, command, message=""):
        if self.status != "running":
            return None
        self.status = "paused"
        self._target = None
        self._checkpoint("pause")
        self._flush()
        return self._record(self._event("pause", command.source, message=message))

    def _do_step(self, command):
        """Train ``n`` more updates, then pause (with an evaluation at the last one)."""
        self._reconcile()
        self._target = ("step", self.trainer.step_count + command.args["n"])
        self._set_running()
        return self._record(self._event("resume", command.source, message=f"for {command.args['n']} steps"))

    def _do_epochs(self, command):
        """Train until ``n`` passes over the training set are complete in all, then pause."""
        self._reconcile()
        if self.trainer.epoch >= command.args["n"]:
            return None
        self._target = ("epoch", command.args["n"])
        self._set_running()
        return self._record(self._event("resume", command.source, message=f"until epoch {command.args['n']}"))

    def _do_set(self, command):
        new = self.trainer.hp.replace(**command.args["changes"])
        if not self.trainer.hp.diff(new):
            return None
        self._reconcile()
        self._checkpoint("change")
        diff = self.trainer.set_hyperparams(**command.args["changes"])
        return self._record(self._event("change", command.source, changes={k: list(v) for k, v in diff.items()}))

    def _do_rewind(self, command):
        """Restore the newest checkpoint at or before ``step``; then apply ``changes`` and resume if asked."""
        self._flush()
        checkpoint = self._checkpoint_at(command.args["step"])
        discarded = max(self._recorded_step(), self.trainer.step_count)
        self.trainer.load_state_dict(self.store.load_checkpoint(checkpoint))
        self._saved = (checkpoint.step, self.trainer.hp)
        self._truncate_to(checkpoint.step, since=checkpoint.created)
        self.status = "paused"
        self.guardrail = None
        event = self._record(self._event(
            "rewind", command.source,
            message=f"to the checkpoint at step {checkpoint.step:,} ({checkpoint.reason}); "
                    f"steps {checkpoint.step + 1:,}–{discarded:,} discarded" if discarded > checkpoint.step
            else f"to the checkpoint at step {checkpoint.step:,} ({checkpoint.reason})"))
        if command.args.get("changes"):
            self._do_set(Command(0, "set", {"changes": command.args["changes"]}, command.source, time.time(),
                                 concurrent.futures.Future()))
        if command.args.get("resume"):
            self._do_resume(command)
        return event

    def _do_branch(self, command):
        """A new run from the checkpoint at or before ``step``, with ``changes``; returns its id."""
        self._flush()
        checkpoint = self._checkpoint_at(command.args["step"])
        state = self.store.load_checkpoint(checkpoint)
        changes = command.args.get("changes") or {}
        old = HyperParams(**state["hyperparameters"])
        new = old.replace(**changes)  # a bad value is refused before any run is made
        name = command.args.get("name") or f"{self.name} · branch at {checkpoint.step}"
        child = self.store.create_run(self.trainer.config, name, parent=self.run_id, fork_step=checkpoint.step,
                                      status="paused")
        self.store.copy_history(self.run_id, child, checkpoint.step)
        self.store.save_checkpoint(child, state, "branch", checkpoint.cost)
        self.store.update_run(child, step=checkpoint.step, epoch=state["epoch"],
                              hyperparameters=new.to_dict())
        branch = Event("branch", checkpoint.step, state["epoch"], state["examples_seen"], command.source,
                       message=f"from run {self.run_id} at step {checkpoint.step:,}")
        self.store.add_event(child, branch)
        diff = old.diff(new)
        if diff:
            self.store.add_event(child, Event("change", checkpoint.step, state["epoch"], state["examples_seen"],
                                              command.source, changes={k: list(v) for k, v in diff.items()}))
            if "optimizer" in diff:  # as Trainer.set_hyperparams does: the new optimizer starts fresh
                state = {**state, "optimizer": new.optimizer,
                         "optimizer_state": {"t": 0, **{k: None for k in ("v", "s")}}}
            self.store.save_checkpoint(child, {**state, "hyperparameters": new.to_dict()}, "change",
                                       checkpoint.cost)
        self._record(self._event("branch", command.source, message=f"run {child} branched at step {checkpoint.step:,}"))
        return child

    def _do_probe(self, command):
        from babysit.probe import lr_probe

        result = lr_probe(self.trainer, **command.args)
        self._record(self._event("probe", command.source,
                                 message=f"LR probe suggests alpha {result.suggested_alpha:.3g}"))
        return result

    def _do_stop(self, command):
        if self.status == "stopped":
            return None
        if self.status != "failed":
            self.status = "stopped"
        self._target = None
        self._checkpoint_unless_there("stop")
        self._flush()
        return self._record(self._event("stop", command.source))

    def _checkpoint_unless_there(self, reason):
        """A checkpoint at this step, so that the run reopens here, unless the newest is at it already
        (or the run was reopened behind steps it had recorded, and has not trained them again yet)."""
        if self._checkpoints and self._checkpoints[-1].step != self.trainer.step_count and not self._stale_after:
            self._checkpoint(reason)

    # -- training ---------------------------------------------------------------------------------

    def _train_step(self):
        """One update and what is due at it."""
        trainer, settings = self.trainer, self.settings
        if trainer.step_count + 1 in self._schedule_steps:
            self._checkpoint("change")
        record = trainer.step()
        if record.changes:
            self._record(Event("change", record.step - 1, record.epoch, record.examples_seen - record.batch_size,
                               "schedule", changes={k: list(v) for k, v in record.changes.items()}))
        if record.diverged:
            self._unfolded.extend(record[:ROW])
            self._trip(record.diverged, record.step, record.alpha)
            return record
        # the guardrail on the smoothed cost; this runs at every step, so it is kept to plain arithmetic
        g = settings.guard_smoothing
        self._smooth = smooth = g * self._smooth + (1 - g) * record.cost
        self._g_power *= g  # g ** n, kept rather than recomputed at every step
        smoothed = smooth / (1 - self._g_power)
        if smoothed < self._best:
            self._best = smoothed
            self._guard_limit = settings.guard_factor * (smoothed if smoothed > settings.guard_floor
                                                         else settings.guard_floor)
        elif smoothed > self._guard_limit:
            self._unfolded.extend(record[:ROW])
            self._trip(self._risen(smoothed, self._guard_limit), record.step, record.alpha)
            return record
        step = record.step
        target = self._target
        reached = target is not None and (trainer.step_count if target[0] == "step" else trainer.epoch) >= target[1]
        if step % self.evaluation_interval() == 0 or reached:
            self._evals_unfolded.append(trainer.evaluate())  # before its record: see _fold
        self._unfolded.extend(record[:ROW])
        if step % settings.health_every == 0:
            self._health_unflushed.append((step, health.measure(trainer.model, trainer.optimizer.last_update,
                                                                self._probe_X)))
        if step % settings.checkpoint_every == 0:
            self._checkpoint("periodic")
        if reached:
            self._target = None
            self.status = "paused"
            self._checkpoint("pause")
            self._flush()
            self._record(self._event("pause", "user", message=f"as asked, at step {step:,} (epoch {trainer.epoch})"))
        elif time.monotonic() - self._last_flush >= settings.flush_every:
            self._flush()
        return record

    def evaluation_interval(self):
        """Steps between evaluations: the settings', or else for the data and the batch size in force
        (a live change of the batch size moves them)."""
        if self.settings.eval_every is not None:
            return self.settings.eval_every
        t = self.trainer
        return evaluation_interval(t.m + t.X_dev.shape[1], min(t.hp.mini_batch_size, t.m))

    def _reset_guard(self):
        """Forget the smoothed cost and its best: after a trip, a rewind, or on a new history."""
        self._smooth, self._g_power, self._best, self._guard_limit = 0.0, 1.0, math.inf, math.inf

    def _risen(self, smoothed, limit):
        """Why the guardrail trips on the smoothed cost, given the limit in force."""
        factor = self.settings.guard_factor
        return f"the smoothed cost {smoothed:.4g} rose above {factor:g} × the best so far ({limit / factor:.4g})"

    def _trip(self, reason, step, alpha):
        """The guardrail: pause, say why, and offer the last good checkpoint."""
        self.status = "paused"
        self._target = None
        self._flush()
        limit = self.settings.guard_factor * max(self._best, self.settings.guard_floor)
        good = [c for c in self._checkpoints if c.step < step and (c.cost is None or c.cost <= limit)]
        rewind_to = good[-1].step if good else None
        # a tenth of the base rate, and never above a tenth of the good checkpoint's: resuming "with
        # alpha × 0.1" must lower the rate whether or not a raised alpha is what went wrong
        base = self.trainer.hp.alpha
        if good:
            try:
                base = min(base, self.store.load_checkpoint(good[-1])["hyperparameters"]["alpha"])
            except StoreError:
                pass
        lowered = base * 0.1
        self.guardrail = Guardrail(reason, step, rewind_to, lowered)
        offer = f"; rewind to step {rewind_to:,}, or rewind and resume with alpha {lowered:.3g}" \
            if rewind_to is not None else ""
        self._record(Event("guardrail", self.trainer.step_count, self.trainer.epoch, self.trainer.examples_seen,
                           "guardrail", message=f"paused: {reason}{offer}"))
        self._reset_guard()

    def accept_guardrail(self, lower_alpha=False):
        """Take one of the guardrail's two offers: rewind to the last good checkpoint (and resume with
        alpha × 0.1)."""
        guard = self.guardrail
        if guard is None or guard.rewind_to is None:
            raise BabysitError("there is no guardrail offer to take")
        if lower_alpha:
            return self.submit("rewind", source="guardrail", step=guard.rewind_to,
                               changes={"alpha": guard.lowered_alpha}, resume=True)
        return self.submit("rewind", source="guardrail", step=guard.rewind_to)

    # -- records ------------------------------------------------------------------------------------

    def _event(self, kind, source, changes=None, message=""):
        t = self.trainer
        return Event(kind, t.step_count, t.epoch, t.examples_seen, source, changes or {}, message)

    def _record(self, event):
        self.store.add_event(self.run_id, event)
        with self._lock:
            self._events.append(event)
        self.store.update_run(self.run_id, status=self.status, step=self.trainer.step_count,
                              epoch=self.trainer.epoch, hyperparameters=self.trainer.hp.to_dict(), error=self.error)
        return event

    def _checkpoint(self, reason):
        if self._saved == (self.trainer.step_count, self.trainer.hp) and self._stale_after is None:
            return  # this very state is saved already
        cost = self._smooth / (1 - self._g_power) if self._g_power < 1 else None  # None: nothing smoothed yet
        state = self.trainer.state_dict()
        self._saved = (self.trainer.step_count, self.trainer.hp)
        # written after the metrics up to it: a crash leaves no gap between the two
        self._flush(checkpoint=(state, reason, cost))

    def _thin_checkpoints(self):
        """Delete the periodic checkpoints that periodic_checkpoints_kept does not keep: a long run's
        disk use, and the list a snapshot carries, stay small."""
        periodic = [c for c in self._checkpoints if c.reason == "periodic"]
        kept = periodic_checkpoints_kept([c.step for c in periodic], self.settings.checkpoint_every,
                                         self.settings.checkpoints_kept)
        doomed = [c for c in periodic if c.step not in kept]
        if doomed:
            self.store.delete_checkpoints(self.run_id, doomed)
            with self._lock:
                gone = {c.file for c in doomed}
                self._checkpoints = [c for c in self._checkpoints if c.file not in gone]

    def _checkpoint_at(self, step):
        if not isinstance(step, int) or isinstance(step, bool):
            raise ConfigError(f"a checkpoint step must be a whole number, got {step!r}")
        candidates = [c for c in self._checkpoints if c.step <= step]
        if not candidates:
            raise BabysitError(f"no checkpoint at or before step {step}")
        return candidates[-1]

    def _reconcile(self):
        """Reopened after the process died past its newest checkpoint: forget the steps after it (they
        will be trained again, identically) before training goes on."""
        if self._stale_after is None:
            return
        step, self._stale_after = self._stale_after, None
        recorded = self._recorded_step()
        self._truncate_to(step)
        self._record(self._event("rewind", "system", message=f"resumed from the newest checkpoint, step {step:,}; "
                                                             f"steps {step + 1:,}–{recorded:,} will be trained again"))

    def _truncate_to(self, step, since=None):
        """Drop everything recorded after ``step`` (memory, store, checkpoints) and rebuild the history;
        events at ``step`` itself made after the time ``since`` are undone too."""
        self._unfolded.clear()
        self._evals_unfolded.clear()
        self._unwritten.clear()
        self._health_unflushed.clear()
        self._health_unwritten.clear()
        self.store.truncate_metrics(self.run_id, step)
        self.store.undo_events_after(self.run_id, step, since)
        self.store.delete_checkpoints_after(self.run_id, step, since)

        def past(e):
            return e.step > step or (since is not None and e.step == step and e.time > since)

        with self._lock:
            self._events = [_undone(e) if past(e) and not e.undone else e for e in self._events]
            self._checkpoints = [c for c in self._checkpoints if c.step < step or (
                c.step == step and (since is None or c.created <= since))]
            self._series.clear()
            self._cost_series = self._series["cost"]
            self._last_evaluation, self._last_health = {}, {}
            self._load_history()
        self._flushed_step = step
        self._reset_guard()

    # -- history: folding and flushing --------------------------------------------------------------

    def _take(self, pending):
        n = len(pending)
        batch = pending[:n]
        del pending[:n]
        return batch

    def _take_rows(self):
        """The unfolded rows as (len(STEP_FIELDS), n) columns, taken out; the training thread may be
        adding more meanwhile: those stay for the next fold."""
        taken = self._take(self._unfolded)  # a multiple of ROW: a row is added by one extend, never seen half-written
        return np.array(taken, np.float64).reshape(-1, ROW).T.copy()

    def _columns(self, rows, evaluations):
        n = rows.shape[1]
        columns = dict(zip(STEP_FIELDS, rows, strict=True))
        for f in EVAL_FIELDS:
            columns[f] = np.full(n, np.nan)
        if n and evaluations:
            first = int(rows[0, 0])
            for ev in evaluations:
                i = ev.step - first
                if 0 <= i < n:
                    for f in EVAL_FIELDS:
                        value = getattr(ev, f)
                        columns[f][i] = np.nan if value is None else value
        return columns

    def _fold_columns(self, columns):
        steps = columns["step"]
        for name in ("cost", "alpha", "epoch", "examples_seen", *EVAL_FIELDS):
            self._series[name].extend(steps, columns[name])

    def _fold_health(self, rows):
        steps = np.array([step for step, _ in rows], np.float64)
        for metric in rows[-1][1]:
            per_layer = [body.get(metric, []) for _, body in rows]
            width = max(len(v) for v in per_layer)
            for layer in range(width):
                values = np.array([v[layer] if layer < len(v) else np.nan for v in per_layer], np.float64)
                self._series[f"{metric}/{layer + 1}"].extend(steps, values)

    def _fold(self):
        """Bring the records not yet drawn into the bounded history, and queue them for the store
        (under the lock: snapshots read the history; any thread may fold)."""
        rows = self._take_rows()
        if not rows.shape[1]:
            return
        # an evaluation is queued before its step's record, so it may belong to a record not taken yet
        last = rows[0, -1]
        evaluations = self._take(self._evals_unfolded)
        later = [ev for ev in evaluations if ev.step > last]
        if later:
            self._evals_unfolded[:0] = later
        columns = self._columns(rows, evaluations)
        self._fold_columns(columns)
        self._unwritten.append(columns)
        evaluations = [ev for ev in evaluations if ev.step <= last]
        if evaluations:
            ev = evaluations[-1]
            self._last_evaluation = {"step": ev.step, **{f: getattr(ev, f) for f in EVAL_FIELDS}}

    def _flush(self, checkpoint=None):
        """Write the metrics, health and run status gathered since the last flush to the store, then
        ``checkpoint`` if given ((state, reason, cost), taken now). Written in line, by the thread that
        trains: a thread writing beside it cost training more than the write itself, as each of the
        writer's many GIL hand-offs stalls the training thread."""
        now = time.monotonic()
        with self._lock:
            self._fold()
            health_rows = self._take(self._health_unflushed)
            if health_rows:
                self._fold_health(health_rows)
                self._last_health = health_rows[-1][1]
            dev = self._series.get("dev_cost")
            best_dev = float(np.nanmin(dev.points()[1])) if dev is not None and dev.count else None
        batches = self._take(self._unwritten)
        health_rows = self._take(self._health_unwritten) + health_rows
        n = sum(len(batch["step"]) for batch in batches)
        if n:
            self._rate = n / max(now - self._last_flush, 1e-9)
        self._last_flush = now
        self._flushed_step = self.trainer.step_count
        run = dict(status=self.status, step=self.trainer.step_count, epoch=self.trainer.epoch,
                   hyperparameters=self.trainer.hp.to_dict(), best_dev_cost=best_dev, error=self.error)
        self._write(batches, health_rows, checkpoint, run)

    def _write(self, batches, health_rows, checkpoint, run):
        written = 0  # what was written is not written twice when the rest is tried again
        try:
            if batches:
                self.store.add_metrics(self.run_id, batches[0] if len(batches) == 1 else
                                       {f: np.concatenate([b[f] for b in batches]) for f in batches[0]})
            written = 1
            if health_rows:
                self.store.add_health(self.run_id, health_rows)
            written = 2
            if checkpoint is not None:
                info = self.store.save_checkpoint(self.run_id, *checkpoint)
                with self._lock:
                    self._checkpoints.append(info)
            written = 3
            self.store.update_run(self.run_id, **run)
            if checkpoint is not None and checkpoint[1] == "periodic":
                self._thin_checkpoints()
        except BaseException:  # not written: keep it for the next flush, in order, ahead of anything newer
            with self._lock:
                if written < 1:
                    self._unwritten[:0] = batches
                if written < 2:
                    self._health_unwritten[:0] = health_rows
            if written < 3:
                self._saved = None  # that state is not saved: the next checkpoint saves it
            raise

    # -- the view -----------------------------------------------------------------------------------

    def snapshot(self):
        """An immutable view for the page; cheap whatever the run's length."""
        t = self.trainer
        with self._lock:
            self._fold()
            drawn = [(name, s) for name, s in self._series.items() if s.count]
            series = dict(zip([name for name, _ in drawn], points_of([s for _, s in drawn]), strict=True))
            cost_means = self._cost_series.means()
            events = tuple(self._events)
            checkpoints = tuple((c.step, c.reason) for c in self._checkpoints)
            last_eval, last_health = dict(self._last_evaluation), dict(self._last_health)
        return Snapshot(
            run_id=self.run_id, name=self.name, status=self.status, step=t.step_count, epoch=t.epoch,
            examples_seen=t.examples_seen, n_train=t.m,
            steps_per_second=self._rate if self.status == "running" else 0.0,
            hyperparameters=t.hp, alpha_in_force=t.alpha_in_force(), pending=self._pending(),
            events=events, series=series, cost_means=cost_means, last_evaluation=last_eval,
            last_health=last_health, guardrail=self.guardrail, error=self.error, checkpoints=checkpoints,
            parent=self.parent, fork_step=self.fork_step, chance_cost=self.chance_cost,
            initial_cost=self.initial_cost, config=t.config, n_features=t.data.n_features,
            n_classes=t.data.n_classes, eval_every=self.evaluation_interval(),
        )

    def _pending(self):
        with self._commands_lock:
            return tuple(self._commands)

    snapshot_pending = _pending

    def hyperparameters(self):
        """The hyperparameters in force, without a whole snapshot."""
        return self.trainer.hp

    def plot_data(self):
        """(X_train, y_train, classes): what a decision-boundary chart draws over."""
        data = self.trainer.data
        return data.X_train, data.y_train, data.classes

    def predict(self, X):
        """Class indices for examples as columns (n_0, m), from any thread: a copy of the weights is
        taken and used in a model of the page's own, so training is never disturbed."""
        from models.mlp import MLP

        model = self.trainer.model
        with self._viewer_lock:  # several tabs may draw the same run
            if self._viewer is None:
                self._viewer = MLP(model.sizes, model.activation.name, model.dtype)
            self._viewer.params[...] = model.params
            return self._viewer.predict_proba(np.asarray(X, model.dtype)).argmax(axis=0)

    # -- the thread ---------------------------------------------------------------------------------

    def start_thread(self):
        """Run the loop in a background thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            if self.status in ("stopped", "failed"):
                self.status = "paused"
            self._thread = threading.Thread(target=self._loop, name=f"babysit-{self.run_id}", daemon=True)
            self._thread.start()

    def _loop(self):
        if self.settings.thread_nice:
            _lower_this_threads_priority(self.settings.thread_nice)
        try:
            while self.status not in ("stopped", "failed"):
                try:
                    if self.turn() is None and self.status in ("created", "paused"):  # idle: wait for a command
                        if (self._unfolded or self._unwritten) and not self.write_error:
                            self._flush()
                        self._wake.wait(0.25)
                        self._wake.clear()
                except (OSError, sqlite3.Error) as error:  # a full disk, a read-only folder: pause, lose nothing
                    self._write_failed(error)
        except Exception as error:  # the run's recorded error, never a silent death
            self.error = f"{type(error).__name__}: {error}"
            self.status = "failed"
            try:
                self._flush()
                self._record(self._event("error", "system", message=self.error))
            except Exception:
                pass
        finally:
            with self._commands_lock:
                leftover = list(self._commands)
                self._commands.clear()
            for command in leftover:
                command.future.cancel()

    def _write_failed(self, error):
        """The store cannot be written: pause, keep what is unwritten in memory, say what to do."""
        self.status = "paused"
        self._target = None
        self.write_error = (f"cannot write to the store in {self.store.home} ({error}); the run is paused "
                            "with nothing lost: free some disk space or make the folder writable, then resume")
        self.error = self.write_error

    @property
    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def training(self):
        """Whether the run trains now or is about to (a command that starts it is waiting)."""
        return self.status == "running" or any(c.kind in STARTING for c in self._pending())

    def close(self, timeout=10, interrupted=False):
        """Stop the run (checkpointed and flushed) and wait for its thread to end. ``interrupted``: the
        process is going away, not the user stopping it; a run that was training is left paused, marked
        to resume when it is next opened, and any other is left as it was."""
        kind = "shutdown" if interrupted else "stop"
        if self.alive:
            if self.status not in ("stopped", "failed"):
                self.submit(kind, source="system")
            self._thread.join(timeout)
        elif self.status not in ("stopped", "failed"):
            self._apply(Command(0, kind, {}, "system", time.time(), concurrent.futures.Future()))

    def _do_shutdown(self, command):
        """The server is stopping: a run that trains pauses and says that it was training; one that was
        paused (or never started) stays so, with nothing to add to its log."""
        if self.status == "running":
            self._do_pause(command)
            self._record(self._event("recovered", "system", message="the server stopped while it was training; "
                                                                     "it resumes when opened"))
        else:  # paused where no checkpoint is, by the guardrail for one: reopened, it is here still
            self._checkpoint_unless_there("pause")
            self._flush()
        self.status = "stopped"  # ends the thread; the store keeps "paused" (or "created")


def _undone(event):
    from dataclasses import replace

    return replace(event, undone=True)


def _num(value):
    value = float(value)
    return None if math.isnan(value) else value


def _lower_this_threads_priority(by):
    """Linux schedules each thread on its own: lower the calling thread's priority only, so that the
    process's other threads (answering the page's requests) keep theirs. Elsewhere a nice value is the
    whole process's: left alone."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)
    except OSError:  # not allowed here: training goes on at the process's priority
        pass
