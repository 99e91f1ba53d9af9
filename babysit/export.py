"""Writers and readers for a run's files: config.json, metrics.csv, weights-*.npz.

metrics.csv has one row per update. Step k is the k-th update, counted from 1; its ``cost`` is the
mini-batch cost computed in the forward pass of update k (before the update) and its ``alpha`` the
rate in force for it. ``train_cost, dev_cost, train_accuracy, dev_accuracy`` are filled on
evaluation steps, measured after update k, and blank elsewhere. Floats are written with ``repr``,
so they read back bit for bit.
"""

import csv
import os

import numpy as np

METRIC_COLUMNS = (
    "step", "epoch", "examples_seen", "alpha", "cost",
    "train_cost", "dev_cost", "train_accuracy", "dev_accuracy",
)


def _cell(value):
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


class MetricsWriter:
    """Streams metric rows to a CSV file as training goes, so a stopped run keeps what it did."""

    def __init__(self, path):
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(METRIC_COLUMNS)

    def write(self, record, evaluation=None):
        ev = evaluation
        self._csv.writerow(
            [_cell(v) for v in (
                record.step, record.epoch, record.examples_seen, record.alpha, record.cost,
                ev and ev.train_cost, ev and ev.dev_cost, ev and ev.train_accuracy, ev and ev.dev_accuracy,
            )]
        )

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path):
    """metrics.csv as a pandas DataFrame (blank cells become NaN)."""
    import pandas as pd

    return pd.read_csv(path)


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
