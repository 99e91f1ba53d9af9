"""Caviar studies on the embedded Dask cluster: sampled trials, each equal to its config trained alone;
stacks, successive halving resumed from checkpoints, divergence, interrupted studies, the leaderboard,
zooming in, reruns on fresh seeds, handing a trial to panda mode, and ``babysit sweep``."""

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from babysit import caviar
from babysit.cli import main
from babysit.config import RunConfig, load_config
from babysit.distributions import Choice, IntUniform, LogUniform, OneMinusLogUniform, Uniform
from babysit.errors import BabysitError, ConfigError
from babysit.runner import drive
from babysit.session import Session
from babysit.space import SearchSpace, load_space, parse_space
from babysit.store import METRIC_FIELDS, Store, TrialInfo
from babysit.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
BABYSIT = Path(sys.executable).with_name("babysit")

# 240 moons: 192 training examples, 48 dev; batches of 32, so 6 steps per epoch
STEPS_PER_EPOCH = 6
BASE = {
    "seed": 5,
    "data": {"name": "moons", "n_samples": 240, "noise": 0.2},
    "model": {"layers": [8], "activation": "tanh"},
    "hyperparameters": {"optimizer": "adam", "mini_batch_size": 32},
}
SPACE = {
    "alpha": {"log_uniform": [0.003, 0.1]},
    "beta1": {"one_minus_log_uniform": [0.8, 0.95]},
    "L": {"int_uniform": [2, 3]},
    "base": BASE,
}
# learning_rate_decay above 1 is refused with the exponential schedule: some points are invalid
INVALID = {"decay_schedule": {"choice": ["exponential"]}, "learning_rate_decay": {"uniform": [0.5, 2.0]}, "base": BASE}
# gd on batches of 8 (24 steps per epoch); L2 of 1e9 multiplies the weights by about -1e7 per step, so their
# squares overflow within the first epoch and the cost becomes inf
DIVERGING = {
    "lambd": {"choice": [0.0, 1e9]},
    "alpha": {"log_uniform": [0.05, 0.5]},
    "base": {**BASE, "hyperparameters": {"optimizer": "gd", "mini_batch_size": 8}},
}
EVALUATED = ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy")


@pytest.fixture(scope="module")
def client():
    """The embedded cluster (make_client's default: a LocalCluster of single-threaded worker processes),
    shared by the module's tests."""
    client = caviar.make_client()
    try:
        yield client
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


@pytest.fixture
def store(babysit_home):
    store = Store()
    yield store
    store.close()


class RecordingClient:
    """The real client, recording every task run_study / rerun_top hands it."""

    def __init__(self, client):
        self.client = client
        self.units = []

    def submit(self, fn, unit, **kwargs):
        self.units.append(unit)
        return self.client.submit(fn, unit, **kwargs)

    def map(self, fn, units, **kwargs):
        self.units.extend(units)
        return self.client.map(fn, units, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def executed(client):
    """Tasks the workers of the cluster have run so far, all told, once none is running (a task left over
    from an interrupted study runs to its end)."""
    deadline = time.monotonic() + 30
    while sum(client.run(lambda dask_worker: len(dask_worker.state.executing)).values()):
        assert time.monotonic() < deadline, "the cluster stayed busy for 30 s"
        time.sleep(0.05)
    return sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())


def space_of(d):
    return parse_space(json.dumps(d))


def new_study(store, d=SPACE, seed=0, **settings):
    settings.setdefault("epochs", 3)
    return caviar.create_study(store, space_of(d), caviar.StudySettings(**settings), seed=seed)


def lone(config, epochs=None, steps=None):
    """``config`` (a dict) trained alone by a Trainer to ``epochs`` passes or ``steps`` updates, stopping
    where it diverges; returns (trainer, [step costs])."""
    trainer = Trainer(RunConfig.from_dict(config))
    costs = []
    while (trainer.epoch < epochs) if epochs is not None else (trainer.step_count < steps):
        record = trainer.step()
        costs.append(record.cost)
        if record.diverged:
            break
    return trainer, costs


def params_of(store, trial):
    return store.read_state(trial.state_file)["params"]


def assert_same_curves(a, b):
    assert sorted(a) == sorted(b) == sorted(METRIC_FIELDS)
    for field in METRIC_FIELDS:
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)


def rung_cost(trial, epochs):
    """The dev cost a trial's curve recorded at the end of pass ``epochs``."""
    row = np.flatnonzero(trial.curve["step"] == epochs * STEPS_PER_EPOCH)
    assert len(row) == 1, f"trial {trial.number} has no row at the end of epoch {epochs}"
    return trial.curve["dev_cost"][row[0]]


class TestCreateStudy:
    def test_records_the_sampled_points_and_their_configs(self, store):
        """n pending trials: point i is space.sample_points(n, seed)[i], its config space.config_for(point)."""
        space = space_of(SPACE)
        study_id = caviar.create_study(store, space, caviar.StudySettings(n_trials=7, epochs=2), seed=3)
        trials = store.trials(study_id)
        points = space.sample_points(7, 3)
        assert [t.number for t in trials] == list(range(7))
        assert [t.point for t in trials] == points
        assert [t.config for t in trials] == [space.config_for(p).to_dict() for p in points]
        assert {(t.status, t.rung, t.state_file) for t in trials} == {("pending", -1, None)}
        info = store.get_study(study_id)
        assert (info.seed, info.status, info.settings["n_trials"]) == (3, "created", 7)
        assert SearchSpace.from_dict(info.space) == space

    def test_same_seed_same_points(self, store):
        """Two studies of one seed sample the same points; another seed samples others."""
        a, b, c = (new_study(store, seed=s, n_trials=5) for s in (8, 8, 9))
        points = {s: [t.point for t in store.trials(s)] for s in (a, b, c)}
        assert points[a] == points[b]
        assert all(p != q for p, q in zip(points[a], points[c], strict=True))

    def test_an_invalid_point_is_a_failed_trial_and_the_study_goes_on(self, store, client):
        """A point its config refuses is recorded failed ("invalid point: …"); the others train to the end."""
        study_id = new_study(store, INVALID, n_trials=8, epochs=2)
        points = space_of(INVALID).sample_points(8, 0)
        bad = {i for i, p in enumerate(points) if p["learning_rate_decay"] > 1}
        assert 0 < len(bad) < 8, "the seed should give valid and invalid points"
        for t in store.trials(study_id):
            if t.number in bad:
                assert t.status == "failed" and t.error.startswith("invalid point: ")
                assert "learning_rate_decay" in t.error and "exponential" in t.error
            else:
                assert t.status == "pending" and t.error is None
        trials = caviar.run_study(store, study_id, client=client)
        assert store.get_study(study_id).status == "done"
        for t in trials:
            if t.number in bad:
                assert (t.status, t.rung, t.state_file) == ("failed", -1, None)
                assert t.error.startswith("invalid point: ")
            else:
                assert t.status == "done" and math.isfinite(t.dev_cost) and t.epoch == 2


class TestRunStudy:
    def test_each_trial_equals_its_config_trained_alone(self, store, client):
        """Every trial done; its figures, curve and checkpoint are those of a lone Trainer trained as long."""
        epochs = 3
        study_id = new_study(store, n_trials=6, epochs=epochs)
        trials = caviar.run_study(store, study_id, client=client)
        assert store.get_study(study_id).status == "done"
        assert [t.status for t in trials] == ["done"] * 6
        n = epochs * STEPS_PER_EPOCH
        for t in trials:
            trainer, costs = lone(t.config, epochs)
            ev = trainer.evaluate()
            assert (t.rung, t.step, t.epoch) == (0, trainer.step_count, epochs) == (0, n, epochs)
            for field in EVALUATED:
                assert getattr(t, field) == pytest.approx(getattr(ev, field), rel=1e-12, abs=0), field
            # the curve: one row per step, the mini-batch costs of the lone run, evaluations at each pass's end
            assert all(len(t.curve[f]) == n for f in METRIC_FIELDS)
            np.testing.assert_array_equal(t.curve["step"], np.arange(1, n + 1))
            np.testing.assert_allclose(t.curve["cost"], costs, rtol=1e-12, atol=0)
            evaluated = np.flatnonzero(~np.isnan(t.curve["dev_cost"])) + 1
            np.testing.assert_array_equal(evaluated, np.arange(1, epochs + 1) * STEPS_PER_EPOCH)
            assert t.curve["dev_cost"][-1] == t.dev_cost
            # the checkpoint continues the trial alone
            assert os.path.isfile(os.path.join(store.home, t.state_file))
            restored = Trainer(RunConfig.from_dict(t.config))
            restored.load_state_dict(store.read_state(t.state_file))
            assert np.array_equal(restored.model.params, trainer.model.params)
            assert restored.step_count == n and restored.evaluate().dev_cost == t.dev_cost
            trainer.step()
            restored.step()
            assert np.array_equal(restored.model.params, trainer.model.params)

    def test_a_study_that_is_done_trains_nothing_more(self, store, client):
        """run_study on a finished study submits no task and changes no trial."""
        study_id = new_study(store, n_trials=3, epochs=1)
        before = caviar.run_study(store, study_id, client=client)
        recording = RecordingClient(client)
        after = caviar.run_study(store, study_id, client=recording)
        assert recording.units == []
        assert [(t.status, t.updated, t.dev_cost) for t in after] == [(t.status, t.updated, t.dev_cost) for t in before]


class TestTrainUnit:
    def test_one_evaluation_per_pass_and_none_spare(self, monkeypatch):
        """A unit evaluates its stack at each pass's end and nowhere else: the trials' final figures are
        the last pass's, as a lone Trainer evaluates them."""
        from babysit.stacked_trainer import StackedTrainer

        calls = []
        evaluate = StackedTrainer.evaluate

        def counted(trainer):
            calls.append(trainer.step_count)
            return evaluate(trainer)

        monkeypatch.setattr(StackedTrainer, "evaluate", counted)
        configs = [{**BASE, "hyperparameters": {**BASE["hyperparameters"], "alpha": a}} for a in (0.01, 0.05)]
        outcomes = caviar.train_unit({"numbers": [0, 1], "configs": configs, "states": [None, None], "epochs": 3})
        assert calls == [6, 12, 18]  # STEPS_PER_EPOCH apart
        for config, outcome in zip(configs, outcomes, strict=True):
            trainer, _ = lone(config, 3)
            ev = trainer.evaluate()
            for field in EVALUATED:
                assert outcome["evaluation"][field] == pytest.approx(getattr(ev, field), rel=1e-12, abs=0)
                assert outcome["curve"][field][-1] == outcome["evaluation"][field]


class TestStacking:
    def test_trials_of_one_shape_train_as_one_task(self, store, client):
        """stack=True: one task per shape (L here), as submitted and as the workers count them; stack=False:
        one per trial; the trials' numbers are the same either way, bit for bit."""
        stacked_id = new_study(store, n_trials=8, stack=True)
        alone_id = new_study(store, n_trials=8, stack=False)
        by_shape = {}
        for t in store.trials(stacked_id):
            by_shape.setdefault(t.point["L"], []).append(t.number)
        assert len(by_shape) == 2, "the seed should sample both shapes"
        results = {}
        for study_id, stack in ((stacked_id, True), (alone_id, False)):
            recording = RecordingClient(client)
            ran = executed(client)
            results[stack] = caviar.run_study(store, study_id, client=recording)
            assert executed(client) - ran == len(recording.units)
            if stack:
                assert sorted(u["numbers"] for u in recording.units) == sorted(by_shape.values())
            else:
                assert sorted(u["numbers"] for u in recording.units) == [[n] for n in range(8)]
        for a, b in zip(results[True], results[False], strict=True):
            assert a.status == b.status == "done"
            assert (a.number, a.point, a.step, a.epoch) == (b.number, b.point, b.step, b.epoch)
            assert [getattr(a, f) for f in EVALUATED] == [getattr(b, f) for f in EVALUATED]
            assert_same_curves(a.curve, b.curve)
            assert np.array_equal(params_of(store, a), params_of(store, b))

    def test_max_stack_bounds_a_task(self, store, client):
        """Stacks of one shape are cut into tasks of at most max_stack trials."""
        study_id = new_study(store, {**SPACE, "L": {"int_uniform": [2, 2]}}, n_trials=7, max_stack=3)
        recording = RecordingClient(client)
        trials = caviar.run_study(store, study_id, client=recording)
        assert sorted(len(u["numbers"]) for u in recording.units) == [1, 3, 3]
        assert sorted(n for u in recording.units for n in u["numbers"]) == list(range(7))
        assert {t.status for t in trials} == {"done"}


class TestHalving:
    def test_rungs_keep_the_best_third_and_resume_them(self, store, client):
        """Rungs 1, 3, 9 with eta 3 and 9 trials: the 3 best at rung 0 go on, then the best of those; they
        continue from their checkpoints (one curve, steps 1…54), ending where a lone Trainer trained straight
        to 9 epochs ends; the pruned keep their rung."""
        study_id = new_study(store, n_trials=9, halving=True, rungs=(1, 3, 9), eta=3)
        recording = RecordingClient(client)
        trials = caviar.run_study(store, study_id, client=recording)
        assert store.get_study(study_id).status == "done"
        by_number = {t.number: t for t in trials}

        at_rung0 = {t.number: rung_cost(t, 1) for t in trials}
        assert len(set(at_rung0.values())) == 9, "ties would make the ranking ambiguous"
        went_on = sorted(at_rung0, key=at_rung0.get)[:3]
        assert sorted(t.number for t in trials if t.rung >= 1) == sorted(went_on)
        at_rung1 = {n: rung_cost(by_number[n], 3) for n in went_on}
        winner = min(at_rung1, key=at_rung1.get)
        assert [t.number for t in trials if t.rung >= 2] == [winner]

        for t in trials:
            if t.number not in went_on:  # pruned at rung 0: one epoch, its figures those of that rung
                assert (t.status, t.rung, t.epoch, t.step) == ("pruned", 0, 1, STEPS_PER_EPOCH)
                assert t.dev_cost == at_rung0[t.number]
                np.testing.assert_array_equal(t.curve["step"], np.arange(1, STEPS_PER_EPOCH + 1))
            elif t.number != winner:  # pruned at rung 1
                assert (t.status, t.rung, t.epoch, t.step) == ("pruned", 1, 3, 3 * STEPS_PER_EPOCH)
                assert t.dev_cost == at_rung1[t.number]
                np.testing.assert_array_equal(t.curve["step"], np.arange(1, 3 * STEPS_PER_EPOCH + 1))
                trainer, _ = lone(t.config, 3)
                assert np.array_equal(params_of(store, t), trainer.model.params)

        best = by_number[winner]
        assert (best.status, best.rung, best.epoch, best.step) == ("done", 2, 9, 9 * STEPS_PER_EPOCH)
        np.testing.assert_array_equal(best.curve["step"], np.arange(1, 9 * STEPS_PER_EPOCH + 1))
        trainer, costs = lone(best.config, 9)
        assert np.array_equal(params_of(store, best), trainer.model.params)
        np.testing.assert_allclose(best.curve["cost"], costs, rtol=1e-12, atol=0)
        assert best.dev_cost == pytest.approx(trainer.evaluate().dev_cost, rel=1e-12, abs=0)
        assert caviar.leaderboard(trials)[0].number == winner == caviar.best_trial(trials).number

        # the tasks: rung 0 from scratch; later rungs from the survivors' checkpoints of the rung before
        rung_of = {1: 0, 3: 1, 9: 2}
        for unit in recording.units:
            rung = rung_of[unit["epochs"]]
            expected = [None] if rung == 0 else [(3 ** (rung - 1) * STEPS_PER_EPOCH, 3 ** (rung - 1))]
            starts = {None if s is None else (s["step"], s["epoch"]) for s in unit["states"]}
            assert list(starts) == expected
        assert sorted(n for u in recording.units if u["epochs"] == 3 for n in u["numbers"]) == sorted(went_on)
        assert [n for u in recording.units if u["epochs"] == 9 for n in u["numbers"]] == [winner]


class TestDivergence:
    @pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the lone Trainers' own blow-ups
    def test_a_diverging_trial_fails_with_why_and_the_others_finish(self, store, client):
        """A trial whose cost becomes inf is failed, with the lone Trainer's words, at its step; the others
        are done; stacked or not, every trial's record is the same."""
        results = {}
        for stack in (True, False):
            study_id = new_study(store, DIVERGING, n_trials=6, epochs=2, stack=stack)
            results[stack] = caviar.run_study(store, study_id, client=client)
            assert store.get_study(study_id).status == "done"
        trials = results[True]
        blown = {t.number for t in trials if t.point["lambd"] > 0}
        assert 0 < len(blown) < len(trials), "the seed should sample both lambd values"
        for t in trials:
            trainer, costs = lone(t.config, 2)
            if t.number in blown:
                assert t.status == "failed"
                assert "the cost became" in t.error and "weights kept from step" in t.error
                assert t.error == trainer.diverged
                assert t.step == trainer.step_count < 2 * 24  # it stopped within its budget
                assert t.dev_cost == pytest.approx(trainer.evaluate().dev_cost, rel=1e-12, abs=0)
                # its curve stops at the step it diverged at, as alone
                np.testing.assert_array_equal(t.curve["step"], np.arange(1, t.step + 2))
                assert not math.isfinite(t.curve["cost"][-1])
            else:
                assert t.status == "done" and t.error is None
                assert t.dev_cost == pytest.approx(trainer.evaluate().dev_cost, rel=1e-12, abs=0)
                np.testing.assert_array_equal(t.curve["step"], np.arange(1, 2 * 24 + 1))
            np.testing.assert_allclose(t.curve["cost"], costs, rtol=1e-12, atol=0)
            assert np.array_equal(params_of(store, t), trainer.model.params)
        for a, b in zip(results[True], results[False], strict=True):
            assert (a.status, a.error, a.step, a.dev_cost) == (b.status, b.error, b.step, b.dev_cost)
            assert_same_curves(a.curve, b.curve)


class DyingStore:
    """The store, as seen by a process killed between writing a trial's rung-1 checkpoint and recording it."""

    def __init__(self, store):
        self.store = store

    def update_trial(self, study_id, number, curve=None, **fields):
        if fields.get("rung") == 1:
            raise KeyboardInterrupt
        return self.store.update_trial(study_id, number, curve=curve, **fields)

    def __getattr__(self, name):
        return getattr(self.store, name)


class TestResume:
    @pytest.mark.parametrize("when", ["after rung 0 was pruned", "after one trial finished rung 1",
                                      "between a rung-1 checkpoint and its record"])
    def test_an_interrupted_halving_study_ends_as_if_never_stopped(self, store, client, when):
        """Stopped (as a killed process leaves it: study interrupted, survivors 'running') then run again:
        finished trials are untouched, the rest resume, and the outcome equals an uninterrupted study's."""
        settings = dict(n_trials=9, halving=True, rungs=(1, 3, 9), eta=3, stack=False)
        reference = caviar.run_study(store, new_study(store, **settings), client=client)
        study_id = new_study(store, **settings)

        def stop(progress):
            trials = store.trials(study_id)
            if when.startswith("after rung 0") and progress.pruned:
                raise KeyboardInterrupt
            if when.startswith("after one") and any(t.rung == 1 for t in trials):
                raise KeyboardInterrupt

        dying = when.startswith("between")
        with pytest.raises(KeyboardInterrupt):
            caviar.run_study(DyingStore(store) if dying else store, study_id, client=client, on_progress=stop)
        assert store.get_study(study_id).status == "interrupted"
        stopped = store.trials(study_id)
        assert sum(t.status == "pruned" for t in stopped) == 6
        assert sum(t.status == "running" for t in stopped) == 3
        assert sum(t.rung == 1 for t in stopped) == (1 if when.startswith("after one") else 0)
        finished = {t.number: t for t in stopped if t.status == "pruned"}

        resumed = caviar.run_study(store, study_id, client=client)
        assert store.get_study(study_id).status == "done"
        for t in resumed:
            if t.number in finished:
                old = finished[t.number]
                assert (t.updated, t.status, t.rung, t.dev_cost, t.step) == (
                    old.updated, old.status, old.rung, old.dev_cost, old.step)
        for a, b in zip(resumed, reference, strict=True):
            assert (a.number, a.status, a.rung, a.step, a.epoch, a.dev_cost) == (
                b.number, b.status, b.rung, b.step, b.epoch, b.dev_cost)
            assert_same_curves(a.curve, b.curve)
            assert np.array_equal(params_of(store, a), params_of(store, b))

    def test_a_killed_sweep_resumes_with_resume(self, store, client, tmp_path, monkeypatch):
        """`babysit sweep` killed with SIGKILL mid-study leaves it running with some trials done; recovered, it
        is interrupted; `babysit sweep --resume` trains the rest and leaves the done ones as they were."""
        space = {
            "alpha": {"log_uniform": [0.001, 0.03]},
            "L": {"int_uniform": [2, 3]},
            "width": {"int_uniform": [4, 48]},  # mostly one shape per trial: many tasks
            "base": {**BASE, "data": {"name": "moons", "n_samples": 2000},
                     "hyperparameters": {"optimizer": "adam", "mini_batch_size": 16}},
        }
        path = tmp_path / "space.json"
        path.write_text(json.dumps(space))
        env = {k: v for k, v in os.environ.items() if k != "BABYSIT_DASK_SCHEDULER"}
        log = open(tmp_path / "sweep.log", "wb")
        child = subprocess.Popen([str(BABYSIT), "sweep", str(path), "--trials", "20", "--epochs", "40", "--quiet"],
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            n_done = 0
            while n_done < 2:
                assert child.poll() is None, f"the sweep ended first: {(tmp_path / 'sweep.log').read_text()}"
                assert time.monotonic() < deadline, "no trial finished within 60 s"
                time.sleep(0.02)
                studies = store.list_studies()
                n_done = sum(t.status == "done" for t in store.trials(studies[0].id)) if studies else 0
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            _wait_for_group(child.pid)  # its worker processes end when it does
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
            _kill_group(child.pid)
            log.close()
        (study,) = store.list_studies()
        assert study.status == "running"
        killed = store.trials(study.id)
        done = {t.number: t for t in killed if t.status == "done"}
        unfinished = [t.number for t in killed if t.status in ("pending", "running")]
        assert done and unfinished, "the kill should land mid-study"
        assert len(done) + len(unfinished) == 20
        assert store.recover_studies() == [study.id]
        assert store.get_study(study.id).status == "interrupted"
        mtimes = {n: os.stat(os.path.join(store.home, t.state_file)).st_mtime_ns for n, t in done.items()}

        monkeypatch.setenv("BABYSIT_DASK_SCHEDULER", client.scheduler.address)
        out = tmp_path / "out"
        assert main(["sweep", "--resume", study.id, "--out", str(out), "--quiet"]) == 0
        assert store.get_study(study.id).status == "done"
        trials = store.trials(study.id)
        assert {t.status for t in trials} == {"done"}
        for t in trials:
            if t.number in done:
                old = done[t.number]
                assert (t.updated, t.dev_cost, t.step, t.state_file) == (old.updated, old.dev_cost, old.step,
                                                                           old.state_file)
                assert os.stat(os.path.join(store.home, t.state_file)).st_mtime_ns == mtimes[t.number]
            assert t.epoch == 40 and len(t.curve["step"]) == t.step
        for number in unfinished[:2]:
            t = trials[number]
            trainer, _ = lone(t.config, 40)
            assert np.array_equal(params_of(store, t), trainer.model.params)
        with open(out / "leaderboard.csv", newline="") as f:
            assert len(list(csv.DictReader(f))) == 20


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_group(pgid, timeout=15):
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _kill_group(pgid):
    """The process group started for a child (its own session): whatever is left of it."""
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        _wait_for_group(pgid, 5)


def trial(number, status="done", rung=0, dev_cost=None, train_cost=None, point=None, epoch=1, error=None):
    return TrialInfo(study_id="0" * 12, number=number, point=point or {"alpha": 0.01 * (number + 1), "L": 2},
                     config={}, status=status, rung=rung, step=epoch * 6, epoch=epoch, dev_cost=dev_cost,
                     dev_accuracy=None if dev_cost is None else 0.5 + number / 100, train_cost=train_cost,
                     train_accuracy=None, error=error, curve={}, state_file=None, run_id=None, updated=0.0)


LEADERBOARD = [
    trial(0, "pruned", 0, dev_cost=0.1),
    trial(1, "failed", -1, error="invalid point: {alpha=2}: alpha must be at most 10"),
    trial(2, "pruned", 1, dev_cost=0.25, epoch=3),
    trial(3, "done", 2, dev_cost=0.3, epoch=9),
    trial(4, "failed", 1, dev_cost=0.05, epoch=2, error="the cost became inf at step 13"),
    trial(5, "done", 2, dev_cost=None, train_cost=0.2, epoch=9),  # no dev set: ranked by train cost
    trial(6, "pruned", 1, dev_cost=0.2, epoch=3),
    trial(7, "done", 2, epoch=9),  # no figures at all: after its rung's others
]


class TestLeaderboard:
    def test_order(self):
        """Furthest rung first, then cost (dev, else train, else last); failed trials at the end."""
        assert [t.number for t in caviar.leaderboard(LEADERBOARD)] == [5, 3, 7, 6, 2, 0, 4, 1]

    def test_best_trial(self):
        """The leaderboard's first trial that has not failed and has a cost; None when there is none."""
        assert caviar.best_trial(LEADERBOARD).number == 5
        assert caviar.best_trial(list(reversed(LEADERBOARD))).number == 5
        assert caviar.best_trial([t for t in LEADERBOARD if t.number in (1, 4, 7)]) is None

    def test_write_leaderboard(self, tmp_path):
        """One row per trial in leaderboard order: rank, figures (floats read back exactly), epochs, the
        point's names in sorted order, the error."""
        path = tmp_path / "leaderboard.csv"
        caviar.write_leaderboard(str(path), LEADERBOARD)
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["rank", "trial", "status", "dev_cost", "dev_accuracy", "train_cost", "train_accuracy",
                           "epochs", "L", "alpha", "error"]
        ranked = caviar.leaderboard(LEADERBOARD)
        assert [int(r[0]) for r in rows[1:]] == list(range(1, len(ranked) + 1))
        for row, t in zip(rows[1:], ranked, strict=True):
            record = dict(zip(rows[0], row, strict=True))
            assert (int(record["trial"]), record["status"], int(record["epochs"])) == (t.number, t.status, t.epoch)
            for field in EVALUATED:
                value = getattr(t, field)
                assert record[field] == ("" if value is None else repr(value))
                if value is not None:
                    assert float(record[field]) == value
            assert float(record["alpha"]) == t.point["alpha"] and int(record["L"]) == t.point["L"]
            assert record["error"] == (t.error or "")
        assert os.listdir(tmp_path) == ["leaderboard.csv"]


ZOOM_SPACE = {
    "alpha": {"log_uniform": [1e-4, 1e-1]},
    "beta": {"one_minus_log_uniform": [0.9, 0.999]},
    "lambd": {"uniform": [0.0, 1.0]},
    "L": {"int_uniform": [1, 5]},
    "activation": {"choice": ["relu", "tanh", "sigmoid"]},
    "mini_batch_size": {"choice": [16, 32, 64]},
    "base": {**BASE, "hyperparameters": {"optimizer": "momentum"}},
}


def zoom_trials():
    """Three good trials in the middle of the ranges, worse ones (and a failed one) at the edges."""
    good = [
        {"alpha": 0.002, "beta": 0.95, "lambd": 0.4, "L": 2, "activation": "tanh", "mini_batch_size": 32},
        {"alpha": 0.004, "beta": 0.98, "lambd": 0.5, "L": 3, "activation": "relu", "mini_batch_size": 32},
        {"alpha": 0.001, "beta": 0.97, "lambd": 0.45, "L": 2, "activation": "tanh", "mini_batch_size": 64},
    ]
    edge = {"alpha": 0.09, "beta": 0.9985, "lambd": 0.99, "L": 5, "activation": "sigmoid", "mini_batch_size": 16}
    trials = [trial(i, dev_cost=0.1 * (i + 1), point=p) for i, p in enumerate(good)]
    trials += [trial(3, dev_cost=0.9, point=edge), trial(4, dev_cost=0.95, point={**good[0], "alpha": 1.5e-4})]
    trials += [trial(5, "failed", 0, dev_cost=0.01, point=edge, error="the cost became nan at step 3")]
    return good, trials


class TestZoom:
    def test_ranges_close_around_the_top_trials(self):
        """Log ranges: the top values and a factor 2 beyond; uniform: 10% of the parent's span beyond;
        integers: the top values' range; choices: the options they used; never past the parent's."""
        space = space_of(ZOOM_SPACE)
        good, trials = zoom_trials()
        child = caviar.zoom_space(space, trials, top=3)
        d = child.distributions
        assert d["alpha"] == LogUniform(0.0005, 0.008)
        beta = d["beta"]
        assert isinstance(beta, OneMinusLogUniform)
        assert beta.low == pytest.approx(0.9) and beta.high == pytest.approx(0.99)  # 1 - 2·0.05, 1 - 0.02/2
        lambd = d["lambd"]
        assert isinstance(lambd, Uniform) and lambd.low == pytest.approx(0.3) and lambd.high == pytest.approx(0.6)
        assert d["L"] == IntUniform(2, 3)
        assert d["activation"] == Choice(["relu", "tanh"])  # the parent's order
        assert d["mini_batch_size"] == Choice([32, 64])
        assert child.base == space.base
        for name, dist in d.items():
            parent = space.distributions[name]
            values = [p[name] for p in good]
            if isinstance(dist, Choice):
                assert set(dist.options) == set(values) and set(dist.options) <= set(parent.options)
                assert trials[3].point[name] not in dist.options, name  # the worse trial's is left out
            else:
                assert parent.low <= dist.low <= min(values) and max(values) <= dist.high <= parent.high, name
                assert dist.high - dist.low < parent.high - parent.low, name
                assert not dist.low <= trials[3].point[name] <= dist.high, name  # the worse trial is left out

    def test_ranges_stop_at_the_parents(self):
        """Top values near the parent's ends give the parent's ends, not beyond."""
        space = space_of(ZOOM_SPACE)
        _, trials = zoom_trials()
        near_edges = [dataclasses.replace(t, point={**t.point, "alpha": 0.08, "beta": 0.9005, "lambd": 0.97})
                      for t in trials[:3]]
        d = caviar.zoom_space(space, near_edges, top=3).distributions
        assert d["alpha"].high == 0.1 and d["alpha"].low == pytest.approx(0.04)
        assert d["beta"].low == 0.9 and d["lambd"].high == 1.0

    def test_nothing_to_zoom_on(self):
        """Only failed trials: a BabysitError."""
        _, trials = zoom_trials()
        with pytest.raises(BabysitError, match="no finished trial"):
            caviar.zoom_space(space_of(ZOOM_SPACE), [trials[5]], top=3)

    def test_zoom_in_records_a_child_study(self, store):
        """zoom_in samples the zoomed space in a new study whose parent is the study zoomed in on."""
        space = space_of(SPACE)
        parent = caviar.create_study(store, space, caviar.StudySettings(n_trials=8, epochs=2), seed=4, name="coarse")
        for t in store.trials(parent):  # figures as a finished study would have them
            store.update_trial(parent, t.number, status="done", rung=0, dev_cost=1.0 + t.point["alpha"])
        child_id = caviar.zoom_in(store, parent, top=3, n_trials=5)
        child = store.get_study(child_id)
        assert child.parent == parent and child.seed == 5 and "zoom" in child.name
        assert child.settings == {**store.get_study(parent).settings, "n_trials": 5}
        expected = caviar.zoom_space(space, store.trials(parent), top=3)
        assert SearchSpace.from_dict(child.space) == expected
        trials = store.trials(child_id)
        assert [t.point for t in trials] == expected.sample_points(5, 5)
        top_alphas = sorted(t.point["alpha"] for t in store.trials(parent))[:3]
        alpha = expected.distributions["alpha"]
        assert alpha.low == pytest.approx(max(top_alphas[0] / 2, 0.003)) and alpha.high == pytest.approx(
            min(top_alphas[-1] * 2, 0.1))


class TestRerunTop:
    def test_best_trials_again_on_fresh_seeds(self, store, client):
        """k best × seeds fresh seeds, each the trial's config trained alone on that seed; mean and std of the
        dev costs; stored with the study."""
        study_id = new_study(store, n_trials=4, epochs=2)
        trials = caviar.run_study(store, study_id, client=client)
        recording = RecordingClient(client)
        results = caviar.rerun_top(store, study_id, k=2, seeds=3, client=recording)
        assert len(recording.units) == 6
        best = caviar.leaderboard(trials)[:2]
        assert [r["number"] for r in results] == [t.number for t in best]
        seeds = results[0]["seeds"]
        assert results[1]["seeds"] == seeds and len(set(seeds)) == 3 and BASE["seed"] not in seeds
        for r, t in zip(results, best, strict=True):
            expected = []
            for seed in seeds:
                trainer, _ = lone({**t.config, "seed": seed}, 2)
                expected.append(trainer.evaluate().dev_cost)
            assert r["dev_costs"] == pytest.approx(expected, rel=1e-12, abs=0)
            assert t.dev_cost not in r["dev_costs"]  # other draws of data and weights
            assert r["mean"] == pytest.approx(np.mean(expected), rel=1e-12)
            assert r["std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-9)
        assert store.get_study(study_id).reruns == results


class TestBabysitTrial:
    def test_a_trial_becomes_a_paused_run_that_trains_on(self, store, client):
        """A paused run at the trial's checkpoint with its curve as metrics; Session.open continues it from
        the trial's step, as the trial's config trained alone would."""
        study_id = new_study(store, n_trials=3, epochs=2)
        trials = caviar.run_study(store, study_id, client=client)
        t = caviar.best_trial(trials)
        run_id = caviar.babysit_trial(store, study_id, t.number, name="from caviar")
        info = store.get_run(run_id)
        assert (info.status, info.step, info.epoch, info.name) == ("paused", t.step, 2, "from caviar")
        assert info.config == t.config
        newest = store.load_checkpoint(store.checkpoints(run_id)[-1])
        state = store.read_state(t.state_file)
        assert newest["step"] == state["step"] == t.step
        assert np.array_equal(newest["params"], state["params"]) and newest["rng"] == state["rng"]
        assert_same_curves(store.metrics(run_id), t.curve)
        assert store.trials(study_id)[t.number].run_id == run_id
        assert caviar.babysit_trial(store, study_id, t.number) == run_id  # handed over once
        assert len(store.list_runs()) == 1

        session = Session.open(store, run_id)
        assert (session.status, session.trainer.step_count) == ("paused", t.step)
        assert drive(session, steps=5, progress=False) is None
        assert session.trainer.step_count == t.step + 5
        np.testing.assert_array_equal(store.metrics(run_id)["step"], np.arange(1, t.step + 6))
        trainer, _ = lone(t.config, steps=t.step + 5)
        assert np.array_equal(session.trainer.model.params, trainer.model.params)

    def test_a_trial_that_never_trained(self, store):
        """A pending trial has no checkpoint to continue from: a BabysitError, and no run."""
        study_id = new_study(store, n_trials=2)
        with pytest.raises(BabysitError, match="has not trained yet"):
            caviar.babysit_trial(store, study_id, 0)
        assert store.list_runs() == []


class TestSweepCommand:
    def test_sweep_writes_the_leaderboard_and_the_best_config(self, store, client, tmp_path, monkeypatch, capsys):
        """`babysit sweep SPACE --trials 6 --epochs 2 --out DIR --quiet`: exit 0, leaderboard.csv of 6 trials and
        best.json, a config load_config reads, the best trial's."""
        monkeypatch.setenv("BABYSIT_DASK_SCHEDULER", client.scheduler.address)
        path = tmp_path / "space.json"
        path.write_text(json.dumps(SPACE))
        out = tmp_path / "out"
        assert main(["sweep", str(path), "--trials", "6", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
        (study,) = store.list_studies()
        trials = store.trials(study.id)
        assert study.status == "done" and {t.status for t in trials} == {"done"} and {t.epoch for t in trials} == {2}
        assert [t.point for t in trials] == load_space(path).sample_points(6, 0)
        with open(out / "leaderboard.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["trial"]) for r in rows] == [t.number for t in caviar.leaderboard(trials)]
        best = caviar.best_trial(trials)
        assert load_config(out / "best.json") == RunConfig.from_dict(best.config)
        assert f"best trial {best.number}" in capsys.readouterr().out

    def test_a_broken_space_file(self, store, tmp_path, capsys):
        """Exit 2, one line per problem with no traceback, and no study made."""
        path = tmp_path / "space.json"
        path.write_text(json.dumps({"alpha": {"log_uniform": [0.1, 0.01]}, "gamma": {"uniform": [0, 1]},
                                    "L": {"uniform": [1, 3]}, "base": BASE}))
        with pytest.raises(ConfigError) as info:
            load_space(path)
        assert len(info.value.problems) == 3
        assert main(["sweep", str(path), "--trials", "6", "--quiet"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"babysit: error: {p}" for p in info.value.problems]
        assert store.list_studies() == []

    def test_resume_of_no_such_study(self, store, capsys):
        """--resume with an unknown id exits 2 with one line."""
        assert main(["sweep", "--resume", "0123456789ab", "--quiet"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("babysit: error: no study 0123456789ab")
