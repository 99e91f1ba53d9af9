"""Data sets: 2-D synthetic ones, the real ones scikit-learn ships, and a user's CSV.

Every loader returns examples as columns (n_features, m), the course's layout, with integer labels
0 … C-1; ``classes`` keeps the original label of each class. The dev split is drawn with the run's
generator, and standardisation is fitted on the training part only, so nothing about the dev set
leaks into training.
"""

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from babysit.errors import DataError

# name -> the settings it accepts, with their defaults
SYNTHETIC = {
    "moons": {"n_samples": 1000, "noise": 0.2},
    "circles": {"n_samples": 1000, "noise": 0.1},
    "spiral": {"n_samples": 900, "noise": 0.2, "n_classes": 3},
    "xor": {"n_samples": 1000, "noise": 0.1},
    "blobs": {"n_samples": 1000, "noise": 1.0, "n_classes": 3},
}
BUNDLED = ("digits", "breast_cancer", "wine")  # shipped inside scikit-learn: no download
DATASETS = (*SYNTHETIC, *BUNDLED)
MAX_COLUMNS = 100_000  # feature columns a CSV may have (see check_width)


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    X_train: np.ndarray  # (n_features, m_train)
    y_train: np.ndarray  # (m_train,) labels 0 … C-1
    X_dev: np.ndarray  # (n_features, m_dev); m_dev may be 0
    y_dev: np.ndarray
    classes: tuple  # original label of each class, sorted
    feature_names: tuple
    mean: np.ndarray = field(default=None)  # (n_features, 1) fitted on train, None if not standardised
    std: np.ndarray = field(default=None)

    @property
    def n_features(self):
        return self.X_train.shape[0]

    @property
    def n_classes(self):
        return len(self.classes)


# -- 2-D synthetic ---------------------------------------------------------------------------------


def _split_counts(n, k):
    """n examples shared as evenly as possible among k classes."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def moons(rng, n_samples, noise):
    """Two interleaving half circles."""
    n_out, n_in = _split_counts(n_samples, 2)
    t_out, t_in = rng.uniform(0, math.pi, n_out), rng.uniform(0, math.pi, n_in)
    X = np.concatenate(
        [np.stack([np.cos(t_out), np.sin(t_out)], 1), np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)]
    )
    y = np.repeat([0, 1], [n_out, n_in])
    return X + rng.normal(0, noise, X.shape), y


def circles(rng, n_samples, noise):
    """A circle inside another, radius 0.5 within 1."""
    n_out, n_in = _split_counts(n_samples, 2)
    t = rng.uniform(0, 2 * math.pi, n_samples)
    r = np.repeat([1.0, 0.5], [n_out, n_in])
    X = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    y = np.repeat([0, 1], [n_out, n_in])
    return X + rng.normal(0, noise, X.shape), y


def spiral(rng, n_samples, noise, n_classes):
    """CS231n's spiral: one arm per class, the angle jittered by ``noise``."""
    counts = _split_counts(n_samples, n_classes)
    parts, labels = [], []
    for k, n in enumerate(counts):
        r = np.linspace(0.0, 1.0, n)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n) + rng.normal(0, noise, n)
        parts.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
        labels.append(np.full(n, k))
    return np.concatenate(parts), np.concatenate(labels)


def xor(rng, n_samples, noise):
    """Points in [-1, 1]²; the class is whether x and y share a sign (before the noise)."""
    X = rng.uniform(-1, 1, (n_samples, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X + rng.normal(0, noise, X.shape), y


def blobs(rng, n_samples, noise, n_classes):
    """Gaussian blobs of standard deviation ``noise`` around centres evenly spaced on a circle."""
    counts = _split_counts(n_samples, n_classes)
    angles = 2 * math.pi * np.arange(n_classes) / n_classes
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    X = np.concatenate([centres[k] + rng.normal(0, noise, (n, 2)) for k, n in enumerate(counts)])
    return X, np.repeat(np.arange(n_classes), counts)


GENERATORS = {"moons": moons, "circles": circles, "spiral": spiral, "xor": xor, "blobs": blobs}


def _bundled(name):
    from sklearn import datasets  # only when asked: importing scikit-learn takes a moment

    loader = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }[name]
    bunch = loader()
    names = getattr(bunch, "feature_names", None)
    names = tuple(str(n) for n in names) if names is not None else tuple(f"x{i}" for i in range(bunch.data.shape[1]))
    classes = tuple(str(c) for c in bunch.target_names)
    return bunch.data.astype(np.float64), bunch.target.astype(int), classes, names


# -- CSV ---------------------------------------------------------------------------------------------


def read_csv(source, target, where=None):
    """A user's CSV as (X (m, n), labels, classes, feature names), or DataError saying what and where.

    ``source`` is a path or a file object; ``where`` names it in messages (the path by default).
    Lines are counted as in a text editor: the header is line 1, the first row line 2.
    """
    where = where or str(source)
    return frame_to_arrays(read_frame(source, where), target, where)


def read_frame(source, where, nrows=None):
    """The CSV as a pandas frame (its first ``nrows`` rows), or DataError saying why it cannot be read."""
    import pandas as pd

    try:
        check_width(source, where)
        frame = pd.read_csv(source, skipinitialspace=True, nrows=nrows)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{where}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{where} is empty: expected a header line and at least one row") from None
    except pd.errors.ParserError as error:
        detail = str(error).strip().removeprefix("Error tokenizing data. C error: ")  # pandas's words, not the user's
        raise DataError(f"{where} is not a well-formed CSV: {detail}") from None
    except UnicodeDecodeError:
        raise DataError(f"{where} is not a text file in UTF-8") from None
    except OSError as error:  # a directory, no permission, ...
        raise DataError(f"{where}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:  # a path no file can have: a NUL byte, a character the file system cannot encode
        raise DataError(f"{where}: cannot read it ({error})") from None
    return frame


def _too_wide(where):
    return DataError(f"{where} has more than {MAX_COLUMNS:,} feature columns, the most babysit reads")


def check_width(source, where):
    """Refuse a CSV with more than MAX_COLUMNS feature columns from its header line alone, before pandas
    parses it (10⁶ columns take pandas minutes and gigabytes). Commas are counted, quoted or not."""
    if isinstance(source, (str, bytes, os.PathLike)):
        with open(source, "rb") as handle:
            commas = _header_commas(handle)
    elif getattr(source, "seekable", lambda: False)():
        start = source.tell()
        try:
            commas = _header_commas(source)
        finally:
            source.seek(start)
    else:
        return  # a stream that cannot be rewound: frame_to_arrays counts the columns
    if commas > MAX_COLUMNS:
        raise _too_wide(where)


def _header_commas(handle):
    """Commas in the first line, counting no further than one past MAX_COLUMNS."""
    commas = 0
    while commas <= MAX_COLUMNS:
        chunk = handle.read(1 << 16)
        if not chunk:
            break
        line = re.split("[\r\n]", chunk if isinstance(chunk, str) else chunk.decode("latin-1"), maxsplit=1)
        commas += line[0].count(",")
        if len(line) > 1:
            break
    return commas


def _listed(columns, shown=20):
    """Column names for a message: the first ``shown``, then how many more."""
    more = f" … and {len(columns) - shown:,} more" if len(columns) > shown else ""
    return ", ".join(_cut(repr(c)[1:-1]) for c in columns[:shown]) + more  # a newline in a name, escaped


def _cut(text, limit=80):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(value):
    """A name or a cell as a message quotes it: its repr, cut short (a cell may be megabytes long)."""
    return _cut(repr(value))


def frame_to_arrays(frame, target, where="the CSV"):
    """Validate a pandas frame and turn it into (X (m, n), labels, classes, feature names).

    Each check looks at the whole frame at once, not one column at a time: a pandas call per column
    made a 100,000-column file take minutes."""
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    if len(columns) - 1 > MAX_COLUMNS:
        raise _too_wide(where)
    # a copy holds one block per dtype; pandas reads a CSV into one per column, which makes every
    # whole-frame operation below loop over the columns
    frame = frame.copy().set_axis(columns, axis=1)
    if target not in columns:
        raise DataError(f"{where}: target column {_quoted(target)} not found; its columns are: {_listed(columns)}")
    if columns.count(target) > 1:
        raise DataError(f"{where}: more than one column is named {_quoted(target)}")
    if len(frame) == 0:
        raise DataError(f"{where} has a header but no rows")
    positions = [j for j, c in enumerate(columns) if c != target]
    features = [columns[j] for j in positions]
    if not features:
        raise DataError(f"{where} has no feature columns besides the target {_quoted(target)}")
    missing = frame.isna().to_numpy()
    if missing.any():
        j = int(np.argmax(missing.any(axis=0)))
        first = int(np.argmax(missing[:, j])) + 2
        raise DataError(
            f"{where}: column {_quoted(columns[j])} has {int(missing[:, j].sum())} missing value(s), the first on "
            f"line {first}; fill or drop them"
        )
    table = frame.iloc[:, positions]
    numeric = np.array([pd.api.types.is_numeric_dtype(t) for t in table.dtypes], bool)
    X = np.empty(table.shape, np.float64)
    if numeric.any():
        X[:, numeric] = table.iloc[:, np.flatnonzero(numeric)].to_numpy(dtype=np.float64)
    not_numeric = np.zeros(table.shape, bool)
    for j in np.flatnonzero(~numeric):  # text columns only: numbers written oddly, or words
        values = pd.to_numeric(table.iloc[:, j], errors="coerce")
        not_numeric[:, j] = values.isna().to_numpy()
        X[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(X) & ~not_numeric
    bad = not_numeric | infinite
    if bad.any():
        j = int(np.argmax(bad.any(axis=0)))  # the first column in the file with a problem
        column = features[j]
        if not_numeric[:, j].any():
            row = int(np.argmax(not_numeric[:, j]))
            raise DataError(
                f"{where}: feature column {_quoted(column)} is not numeric (line {row + 2} has "
                f"{_quoted(table.iloc[row, j])}); encode it as numbers or drop the column"
            )
        raise DataError(
            f"{where}: feature column {_quoted(column)} has an infinite value on line "
            f"{int(np.argmax(infinite[:, j])) + 2}"
        )
    labels = frame[target].to_numpy()
    try:
        classes, y = np.unique(labels, return_inverse=True)
    except TypeError:  # mixed types, e.g. numbers and words: compare them as text
        classes, y = np.unique(labels.astype(str), return_inverse=True)
    classes = tuple(c.item() if hasattr(c, "item") else c for c in classes)  # plain Python labels
    if len(classes) < 2:
        raise DataError(
            f"{where}: target column {_quoted(target)} has a single class ({_quoted(classes[0])}); a classifier "
            "needs at least two"
        )
    return X, y.astype(int), classes, tuple(features)


# -- splitting and scaling ---------------------------------------------------------------------------


def split_and_scale(name, X, y, classes, feature_names, rng, dev_fraction, standardize):
    """Examples as rows in; a Dataset with examples as columns out."""
    m = X.shape[0]
    n_dev = int(round(m * dev_fraction))
    if dev_fraction > 0 and n_dev == 0:
        n_dev = 1
    if m - n_dev < 1:
        raise DataError(f"{name}: {m} example(s) leave none for training with dev_fraction={dev_fraction}")
    order = rng.permutation(m)
    dev, train = order[:n_dev], order[n_dev:]
    X_train, X_dev = X[train].T, X[dev].T  # (n_features, m)
    mean = std = None
    if standardize:
        mean = X_train.mean(axis=1, keepdims=True)
        std = X_train.std(axis=1, keepdims=True)
        std[std == 0] = 1.0  # a constant feature stays constant rather than dividing by zero
        X_train, X_dev = (X_train - mean) / std, (X_dev - mean) / std
    return Dataset(
        name=name,
        X_train=np.ascontiguousarray(X_train),
        y_train=y[train],
        X_dev=np.ascontiguousarray(X_dev),
        y_dev=y[dev],
        classes=tuple(classes),
        feature_names=tuple(feature_names),
        mean=mean,
        std=std,
    )


def load_dataset(data, rng):
    """The Dataset a DataConfig describes; ``rng`` draws the synthetic points and the dev split."""
    if data.csv is not None:
        X, y, classes, names = read_csv(data.csv, data.target)
        name = str(data.csv)
    elif data.name in SYNTHETIC:
        settings = {key: getattr(data, key) for key in SYNTHETIC[data.name]}
        X, y = GENERATORS[data.name](rng, **settings)
        classes, names, name = tuple(range(int(y.max()) + 1)), ("x1", "x2"), data.name
    else:
        X, y, classes, names = _bundled(data.name)
        name = data.name
    return split_and_scale(name, X, y, classes, names, rng, data.dev_fraction, data.standardize)
