"""Caviar: many models trained at once, hyperparameters sampled on the right scale, the fittest kept.

A study samples ``n_trials`` points from a search space (babysit/space.py), one random stream per
trial spawned from the study's seed, and trains each point's config. Trials whose configs share
layer sizes, activation, precision, optimizer and mini-batch size (and so data, initial weights
and example order: a study's trials share the base config's seed) train as one stacked
computation (babysit/stacked_trainer.py), each trial's numbers the same as training it alone.

The stacks are tasks on a Dask cluster: by default an embedded LocalCluster with a process per
core, or any cluster named by an address (``dask scheduler`` / ``dask worker``). Submission is
bounded, results stream back as they finish, and each is written to the store at once: a trial's
status, figures, curve and the state it reached (a checkpoint file), so a killed study resumes
with its finished trials kept and the rest trained again from where they were.

Successive halving (optional): rungs at growing epoch budgets (1, 3, 9, 27 by default, η = 3);
after each rung the trials are ranked by dev cost and the best 1/η go on, continuing from their
checkpoints, never from scratch. A trial whose cost or weights stop being finite is recorded as
failed, with why, and the study goes on.
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from babysit.config import RunConfig
from babysit.errors import BabysitError, ConfigError
from babysit.store import METRIC_FIELDS, StoreError, owner_tag

ALIVE = ("pending", "running")


@dataclass(frozen=True)
class StudySettings:
    n_trials: int = 20  # points sampled
    epochs: int = 20  # each trial's budget without halving
    halving: bool = False  # successive halving over the rungs below
    rungs: tuple = (1, 3, 9, 27)  # epoch budgets of the halving rungs
    eta: int = 3  # 1/eta of the trials go on after each rung
    stack: bool = True  # train trials of one shape as one stacked computation
    max_stack: int = 32  # trials in one stack at most

    def __post_init__(self):
        problems = []
        for name in ("n_trials", "epochs", "eta", "max_stack"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a whole number >= 1, got {value!r}")
        if self.eta < 2:
            problems.append(f"eta must be at least 2, got {self.eta}")
        rungs = tuple(self.rungs)
        if not rungs or any(not isinstance(r, int) or r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
            problems.append(f"rungs must be increasing whole numbers of epochs, got {list(self.rungs)}")
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "rungs", rungs)

    @property
    def budgets(self):
        """The epochs each rung trains to."""
        return self.rungs if self.halving else (self.epochs,)

    def to_dict(self):
        d = asdict(self)
        d["rungs"] = list(self.rungs)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "rungs": tuple(d.get("rungs", cls.rungs))})


# -- the work of one task (runs in a Dask worker) --------------------------------------------------


def train_unit(unit):
    """Train a stack of trials to ``unit["epochs"]`` passes, from their states if given.

    unit: {"numbers": [...], "configs": [config dicts], "states": [state dict or None], "epochs": E}
    Returns one outcome per trial: {"number", "ok", "error", "state", "curve", "evaluation"}.
    """
    from threadpoolctl import threadpool_limits

    from babysit.stacked_trainer import StackedTrainer

    with threadpool_limits(limits=1):  # one process per core: BLAS threads would only compete
        configs = [RunConfig.from_dict(c) for c in unit["configs"]]
        trainer = StackedTrainer(configs)
        if any(s is not None for s in unit["states"]):
            trainer.load_state_dicts(unit["states"])
        K = len(configs)
        rows, evals = [], {}
        errors = [None] * K
        ends = [None] * K  # a trial that diverged: its rows end at that step, as they would alone
        target = unit["epochs"]
        while trainer.epoch < target and trainer.active.any():
            record = trainer.step()
            rows.append((record.step, record.epoch, record.examples_seen, record.alpha, record.cost))
            for k, why in enumerate(record.diverged):
                if why and errors[k] is None:
                    errors[k] = why
                    ends[k] = len(rows)
            if trainer.position == 0:  # a pass just ended: each trial's figures for its curve
                evals[record.step] = trainer.evaluate()
        # the weights at the last row: evaluated already when that row ended a pass
        final = evals.get(rows[-1][0]) if rows else None
        if final is None:
            final = trainer.evaluate()
        states = trainer.state_dicts()
    outcomes = []
    for k, number in enumerate(unit["numbers"]):
        mine = rows[: ends[k]]
        curve = {f: np.full(len(mine), np.nan) for f in METRIC_FIELDS}
        for i, (step, epoch, seen, alpha, cost) in enumerate(mine):
            curve["step"][i], curve["epoch"][i], curve["examples_seen"][i] = step, epoch, seen
            curve["alpha"][i], curve["cost"][i] = alpha[k], cost[k]
            ev = evals[step][k] if step in evals else final[k] if i == len(mine) - 1 else None
            if ev is not None:  # evaluated at each pass's end and at its last row
                for f in ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy"):
                    value = getattr(ev, f)
                    curve[f][i] = np.nan if value is None else value
        ev = final[k]
        outcomes.append({"number": number, "ok": errors[k] is None, "error": errors[k], "state": states[k],
                         "curve": curve, "evaluation": {f: getattr(ev, f) for f in
                                                        ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy")}})
    return outcomes


# -- the study (runs where the user is) ------------------------------------------------------------


def make_client(scheduler=None):
    """A Dask client: on the cluster at ``scheduler`` (or $BABYSIT_DASK_SCHEDULER), else on an
    embedded LocalCluster with one single-threaded worker process per core."""
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("BABYSIT_DASK_SCHEDULER")
    if address:
        try:
            return Client(address, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise BabysitError(f"no Dask scheduler answers at {address} ({error}); start one with "
                               "`dask scheduler`, or leave the address out to use this machine's cores") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def close_client(client):
    """Close a client made by make_client, and its embedded cluster if it has one."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def create_study(store, space, settings, seed=0, name=None, parent=None):
    """Sample the study's points and record its trials; returns the study id. A point whose config is
    invalid is recorded as a failed trial, with why."""
    study_id = store.create_study(space.to_dict(), seed, settings.to_dict(), name, parent)
    points = space.sample_points(settings.n_trials, seed)
    rows, failures = [], []
    for number, point in enumerate(points):
        try:
            rows.append((number, point, space.config_for(point).to_dict()))
        except ConfigError as error:
            rows.append((number, point, space.base.to_dict()))
            failures.append((number, "; ".join(error.problems)))
    store.add_trials(study_id, rows)
    for number, why in failures:
        store.update_trial(study_id, number, status="failed", error=f"invalid point: {why}")
    return study_id


@dataclass
class Progress:
    """What a study's progress bar shows."""

    total: int
    done: int = 0
    failed: int = 0
    pruned: int = 0
    running: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def eta(self):
        """Seconds left, from the pace so far (None before the first finished trial)."""
        finished = self.done + self.failed + self.pruned
        if not finished:
            return None
        return (time.monotonic() - self.started) / finished * (self.total - finished)


def _units(trials, settings, state_of):
    """Trials grouped into stacks that can train together, at most max_stack each."""
    from babysit.stacked_trainer import group_key

    groups = {}
    for trial in trials:
        config = RunConfig.from_dict(trial.config)
        state = state_of(trial)
        key = (group_key(config), None if state is None else (state["step"], state["epoch"]))
        groups.setdefault(key if settings.stack else (trial.number,), []).append((trial, state))
    units = []
    for members in groups.values():
        for i in range(0, len(members), settings.max_stack):
            chunk = members[i : i + settings.max_stack]
            units.append({"numbers": [t.number for t, _ in chunk], "configs": [t.config for t, _ in chunk],
                          "states": [s for _, s in chunk]})
    return units


def run_study(store, study_id, client=None, scheduler=None, on_progress=None):
    """Train (or resume) a study to its end; returns the final trials. ``on_progress(Progress)`` is
    called as results arrive."""
    from distributed import as_completed

    info = store.get_study(study_id)
    settings = StudySettings.from_dict(info.settings)
    own_client = client is None
    client = client or make_client(scheduler)
    store.update_study(study_id, status="running", owner=owner_tag(), error=None)
    budgets = settings.budgets
    progress = Progress(total=len(store.trials(study_id)))
    try:
        for rung, epochs in enumerate(budgets):
            trials = store.trials(study_id)
            todo = [t for t in trials if t.status in ALIVE and t.rung < rung]
            units = _units(todo, settings, lambda t: _state(store, t))
            for unit in units:
                unit["epochs"] = epochs
            _count(progress, trials, rung, len(budgets))
            for trial in todo:
                store.update_trial(study_id, trial.number, status="running")
            in_flight = max(2, 2 * sum(client.nthreads().values()))  # bounded: two tasks per worker thread
            pending = list(units)
            futures = as_completed()
            submitted = {}
            while pending and len(submitted) < in_flight:
                unit = pending.pop(0)
                future = client.submit(train_unit, unit, pure=False)
                submitted[future] = unit
                futures.add(future)
            progress.running = sum(len(u["numbers"]) for u in submitted.values())
            _report(on_progress, progress)
            for future in futures:
                unit = submitted.pop(future)
                _record_unit(store, study_id, rung, len(budgets), unit, future)
                if pending:
                    nxt = pending.pop(0)
                    f = client.submit(train_unit, nxt, pure=False)
                    submitted[f] = nxt
                    futures.add(f)
                progress.running = sum(len(u["numbers"]) for u in submitted.values())
                _count(progress, store.trials(study_id), rung, len(budgets))
                _report(on_progress, progress)
            if settings.halving and rung < len(budgets) - 1:
                _prune(store, study_id, rung, settings.eta)
        for trial in store.trials(study_id):
            if trial.status in ALIVE:
                store.update_trial(study_id, trial.number, status="done")
        store.update_study(study_id, status="done")
        _count(progress, store.trials(study_id), len(budgets), len(budgets))
        _report(on_progress, progress)
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt)
        store.update_study(study_id, status="interrupted" if interrupted else "failed",
                           error=None if interrupted else f"{type(error).__name__}: {error}")
        raise
    finally:
        if own_client:
            close_client(client)
    return store.trials(study_id)


def _state(store, trial):
    if not trial.state_file:
        return None
    try:
        return store.read_state(trial.state_file)
    except (OSError, ValueError, KeyError) as error:
        raise StoreError(f"trial {trial.number}'s checkpoint cannot be read ({error})") from None


def _record_unit(store, study_id, rung, n_rungs, unit, future):
    """Write a finished task's outcomes; a task that failed fails its trials, with why."""
    try:
        outcomes = future.result()
    except Exception as error:  # a worker's exception, or a worker lost too often
        why = f"{type(error).__name__}: {error}"
        for number in unit["numbers"]:
            store.update_trial(study_id, number, status="failed", error=why)
        return
    trials = {t.number: t for t in store.trials(study_id)}
    for outcome in outcomes:
        number = outcome["number"]
        # a file per rung: a process killed before the row below is written leaves the recorded state intact
        file = os.path.join("studies", study_id, f"trial-{number:05d}-rung{rung}.npz")
        store.write_state(file, outcome["state"])
        old = trials[number].curve
        curve = outcome["curve"]
        if old and len(old.get("step", ())):
            curve = {f: np.concatenate([old[f], curve[f]]) for f in curve}
        ev = outcome["evaluation"]
        state = outcome["state"]
        fields = dict(rung=rung, step=int(state["step"]), epoch=int(state["epoch"]), state_file=file,
                      dev_cost=_finite(ev["dev_cost"]), dev_accuracy=_finite(ev["dev_accuracy"]),
                      train_cost=_finite(ev["train_cost"]), train_accuracy=_finite(ev["train_accuracy"]))
        if outcome["ok"]:
            store.update_trial(study_id, number, curve=curve, status="running" if rung < n_rungs - 1 else "done",
                               **fields)
        else:
            store.update_trial(study_id, number, curve=curve, status="failed", error=outcome["error"], **fields)


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


def ranking_cost(trial):
    """What a trial is ranked by: its dev cost, or its train cost when the study has no dev set."""
    value = trial.dev_cost if trial.dev_cost is not None else trial.train_cost
    return math.inf if value is None else value


def _prune(store, study_id, rung, eta):
    """Keep the best 1/eta of the trials that finished this rung; prune the rest. Idempotent, for a
    resumed study: trials that already went on to a later rung, or were pruned here, keep their places."""
    trials = store.trials(study_id)
    finished = [t for t in trials if t.rung > rung or (t.rung == rung and t.status in (*ALIVE, "pruned"))]
    keep = max(1, math.ceil(len(finished) / eta))
    standing = [t for t in finished if not (t.rung == rung and t.status == "pruned")]
    candidates = sorted((t for t in finished if t.rung == rung and t.status in ALIVE), key=ranking_cost)
    excess = max(0, len(standing) - keep)
    for trial in candidates[max(0, len(candidates) - excess) :]:
        store.update_trial(study_id, trial.number, status="pruned")


def _count(progress, trials, rung, n_rungs):
    progress.done = sum(t.status == "done" for t in trials)
    progress.failed = sum(t.status == "failed" for t in trials)
    progress.pruned = sum(t.status == "pruned" for t in trials)


def _report(on_progress, progress):
    if on_progress is not None:
        on_progress(progress)


# -- after a study --------------------------------------------------------------------------------


def leaderboard(trials):
    """Trials best first: those that went furthest (halving's last rung) first, then by cost; failed
    ones last. A trial pruned early may show a lower cost than a survivor's at a later rung, but it
    lost to it at the rung where both stood."""
    return sorted(trials, key=lambda t: (t.status == "failed", -t.rung, ranking_cost(t)))


def write_leaderboard(path, trials):
    import csv

    names = sorted({k for t in trials for k in t.point})
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "trial", "status", "dev_cost", "dev_accuracy", "train_cost", "train_accuracy",
                         "epochs", *names, "error"])
        for rank, t in enumerate(leaderboard(trials), start=1):
            writer.writerow([rank, t.number, t.status, _cell(t.dev_cost), _cell(t.dev_accuracy),
                             _cell(t.train_cost), _cell(t.train_accuracy), t.epoch,
                             *[_cell(t.point.get(n)) for n in names], t.error or ""])
    os.replace(tmp, path)


def _cell(value):
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def best_trial(trials):
    ranked = [t for t in leaderboard(trials) if t.status != "failed" and ranking_cost(t) < math.inf]
    return ranked[0] if ranked else None


def babysit_trial(store, study_id, number, name=None):
    """Hand a trial to panda mode: a paused run continuing from the trial's checkpoint, with its curve
    as history. Returns the run id (the same one if it was handed over before)."""
    from babysit.events import Event
    from babysit.hyperparams import HyperParams

    trial = next((t for t in store.trials(study_id) if t.number == number), None)
    if trial is None:
        raise StoreError(f"study {study_id} has no trial {number}")
    if trial.run_id:
        try:
            store.get_run(trial.run_id)
            return trial.run_id
        except StoreError:
            pass
    if not trial.state_file:
        raise BabysitError(f"trial {number} has not trained yet: nothing to continue from")
    state = _state(store, trial)
    config = RunConfig.from_dict(trial.config)
    run_id = store.create_run(config, name or f"trial {number} of study {study_id[:6]}", status="paused")
    if trial.curve and len(trial.curve.get("step", ())):
        store.add_metrics(run_id, trial.curve)
    store.add_event(run_id, Event("branch", int(state["step"]), int(state["epoch"]), int(state["examples_seen"]),
                                  "system", message=f"from trial {number} of study {study_id}"))
    store.save_checkpoint(run_id, state, "caviar")
    store.update_run(run_id, step=int(state["step"]), epoch=int(state["epoch"]),
                     hyperparameters=HyperParams(**state["hyperparameters"]).to_dict())
    store.update_trial(study_id, number, run_id=run_id)
    return run_id


# -- coarse to fine, and seeds before a winner ------------------------------------------------------


def zoom_space(space, trials, top=5):
    """A child search space whose ranges close around the best ``top`` trials (coarse to fine):
    log-scale ranges span the top values and a factor of 2 beyond on each side, uniform ones 10% of
    the parent's span beyond, integers the top values' range, choices the options they used; always
    within the parent's ranges."""
    from babysit.distributions import Choice, IntUniform, LogUniform, OneMinusLogUniform, Uniform
    from babysit.space import SearchSpace

    best = [t for t in leaderboard(trials) if t.status != "failed" and ranking_cost(t) < math.inf][:top]
    if not best:
        raise BabysitError("no finished trial to zoom in on")
    zoomed = {}
    for name, dist in space.distributions.items():
        values = [t.point[name] for t in best if name in t.point]
        if isinstance(dist, LogUniform):
            lo, hi = max(min(values) / 2, dist.low), min(max(values) * 2, dist.high)
            zoomed[name] = LogUniform(lo, hi) if lo < hi else dist
        elif isinstance(dist, OneMinusLogUniform):
            gaps = [1 - v for v in values]  # 1 - beta, where the scale is logarithmic
            lo_gap, hi_gap = max(min(gaps) / 2, 1 - dist.high), min(max(gaps) * 2, 1 - dist.low)
            zoomed[name] = OneMinusLogUniform(1 - hi_gap, 1 - lo_gap) if lo_gap < hi_gap else dist
        elif isinstance(dist, Uniform):
            pad = 0.1 * (dist.high - dist.low)
            lo, hi = max(min(values) - pad, dist.low), min(max(values) + pad, dist.high)
            zoomed[name] = Uniform(lo, hi) if lo < hi else dist
        elif isinstance(dist, IntUniform):
            zoomed[name] = IntUniform(int(min(values)), int(max(values)))
        else:
            zoomed[name] = Choice([o for o in dist.options if o in values])
    return SearchSpace(zoomed, space.base)


def zoom_in(store, study_id, top=5, n_trials=None, name=None):
    """Start (record) a child study around the parent's best trials; returns its id."""
    from babysit.space import SearchSpace

    parent = store.get_study(study_id)
    space = SearchSpace.from_dict(parent.space)
    settings = StudySettings.from_dict(parent.settings)
    if n_trials:
        settings = StudySettings.from_dict({**settings.to_dict(), "n_trials": n_trials})
    child = zoom_space(space, store.trials(study_id), top)
    return create_study(store, child, settings, seed=parent.seed + 1, name=name or f"{parent.name} › zoom",
                        parent=study_id)


def rerun_top(store, study_id, k=3, seeds=3, client=None, scheduler=None):
    """Train the best ``k`` trials again on ``seeds`` fresh seeds each (fresh data draws, splits and
    initial weights), to the study's final budget: a winner is called on mean ± std, not one draw.
    Results are stored with the study and returned: [{number, seeds, dev_costs, mean, std}]."""
    info = store.get_study(study_id)
    settings = StudySettings.from_dict(info.settings)
    best = [t for t in leaderboard(store.trials(study_id)) if t.status != "failed"][:k]
    fresh = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence([info.seed, 1]).spawn(seeds)]
    units = []
    for trial in best:
        config = RunConfig.from_dict(trial.config)
        for seed in fresh:
            units.append({"numbers": [trial.number], "configs": [config.replace(seed=seed).to_dict()],
                          "states": [None], "epochs": settings.budgets[-1], "seed": seed})
    own_client = client is None
    client = client or make_client(scheduler)
    try:
        futures = client.map(train_unit, units, pure=False)
        outcomes = []
        for unit, future in zip(units, futures, strict=True):
            try:
                outcomes.append((unit, future.result()[0]))
            except Exception as error:
                outcomes.append((unit, {"ok": False, "error": f"{type(error).__name__}: {error}", "evaluation": {}}))
    finally:
        if own_client:
            close_client(client)
    results = []
    for trial in best:
        costs = [o["evaluation"].get("dev_cost") if o["ok"] else None
                 for u, o in outcomes if u["numbers"][0] == trial.number]
        finite = [c for c in costs if c is not None and math.isfinite(c)]
        results.append({"number": trial.number, "seeds": fresh, "dev_costs": costs,
                        "mean": float(np.mean(finite)) if finite else None,
                        "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else None})
    store.update_study(study_id, reruns=results)
    return results
