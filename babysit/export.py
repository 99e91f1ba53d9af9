"""A run's files: the bundle that ``babysit export`` writes and ``babysit train`` leaves behind.

    config.json          the run's initial config, with every live change as its ``schedule``:
                         ``babysit replay`` retrains it and reproduces the cost column bit for bit
    tuned.json           the hyperparameters in force at the end, no schedule: what to carry on with
    metrics.csv          one row per update (columns below)
    weights-initial.npz  W1, b1, …, WL, bL before the first update
    weights-final.npz    the same at the newest checkpoint (the end of a stopped run)
    events.json          every change, pause, rewind and guardrail, undone ones flagged

metrics.csv: step k is the k-th update, counted from 1; its ``cost`` is the mini-batch cost computed
in the forward pass of update k (before the update) and its ``alpha`` the rate in force for it.
``train_cost, dev_cost, train_accuracy, dev_accuracy`` are measured after update k on evaluation
steps and blank elsewhere. Floats are written with ``repr``, so they read back bit for bit.
"""

import csv
import json
import math
import os

import numpy as np

METRIC_COLUMNS = (
    "step", "epoch", "examples_seen", "alpha", "cost",
    "train_cost", "dev_cost", "train_accuracy", "dev_accuracy",
)
INTEGER_COLUMNS = ("step", "epoch", "examples_seen")
BUNDLE_FILES = ("config.json", "tuned.json", "metrics.csv", "weights-initial.npz", "weights-final.npz",
                "events.json")


def write_metrics_csv(path, columns):
    """{column: float64 array} (as the store returns them) as metrics.csv; NaN becomes a blank cell."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(METRIC_COLUMNS)
        n = len(columns["step"])
        cells = []
        for name in METRIC_COLUMNS:
            values = columns[name].tolist()
            if name in INTEGER_COLUMNS:
                cells.append([str(int(v)) for v in values])
            else:
                cells.append(["" if math.isnan(v) else repr(v) for v in values])
        writer.writerows(zip(*cells, strict=True) if n else [])
    os.replace(tmp, path)


def read_metrics_csv(path):
    """metrics.csv as {column: float64 array}, bit for bit (blank cells become NaN)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: np.array([float(r[i]) if r[i] else math.nan for r in body], np.float64)
            for i, name in enumerate(header)}


def write_weights(path, arrays):
    """W1, b1, …, WL, bL into one .npz file, written to a temporary name and renamed into place."""
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def read_weights(path):
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def write_text(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def replay_config(config, events):
    """The run's initial config with its applied changes (any source) as the schedule."""
    from babysit.config import parse_schedule
    from babysit.events import schedule_from_events

    return config.replace(schedule=parse_schedule(schedule_from_events(events), config.hyperparameters))


def tuned_config(config, hyperparameters):
    """What to carry on with: the hyperparameters in force at the end, and no schedule."""
    from babysit.hyperparams import HyperParams

    return config.replace(hyperparameters=HyperParams(**hyperparameters), schedule=())


def export_run(store, run_id, out):
    """Write a stored run's bundle (BUNDLE_FILES) into the folder ``out``; returns the paths."""
    from babysit.config import RunConfig
    from babysit.trainer import Trainer

    info = store.get_run(run_id)
    config = RunConfig.from_dict(info.config)
    events = store.events(run_id)
    trainer = Trainer(config)  # the initial weights come from the seed; the shapes from the data
    initial = trainer.initial_weights
    checkpoints = store.checkpoints(run_id)
    hyperparameters = info.hyperparameters
    if checkpoints:
        state = store.load_checkpoint(checkpoints[-1])
        trainer.load_state_dict(state)
        hyperparameters = state["hyperparameters"]
    os.makedirs(out, exist_ok=True)
    path = {name: os.path.join(out, name) for name in BUNDLE_FILES}
    write_text(path["config.json"], replay_config(config, events).to_json())
    write_text(path["tuned.json"], tuned_config(config, hyperparameters).to_json())
    write_metrics_csv(path["metrics.csv"], store.metrics(run_id))
    write_weights(path["weights-initial.npz"], initial)
    write_weights(path["weights-final.npz"], trainer.model.weights())
    write_text(path["events.json"], json.dumps([e.to_dict() for e in events], indent=1) + "\n")
    return path
