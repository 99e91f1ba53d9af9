"""Hostile input, generated: config files, search-space files, uploaded CSVs and hyperparameter values.

Every kind of input a user hands babysit either loads, and is then valid through and through, or is
refused with the project's own error (ConfigError, DataError) and a message that says where and what:
never another exception type, never a traceback on the page, never a half-created run.

Each property runs a fixed, derandomized set of examples (no example database), so CI sees the same
cases every time: ``EXAMPLES`` (1,000) for the properties that only parse or validate, fewer for the
ones that train or make runs. BABYSIT_HOSTILE_EXAMPLES overrides the 1,000 (e.g. 10_000 locally).
The huge inputs (10⁶ columns, a 100 MB file) and the page (AppTest) are fixed cases.
"""

import collections
import contextlib
import copy
import io
import json
import math
import os
import re
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import streamlit
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs
from hypothesis.control import currently_in_test_context, event
from streamlit.testing.v1 import AppTest

from babysit import datasets
from babysit.cli import main
from babysit.config import MAX_PROBLEM, RunConfig, parse_config
from babysit.datasets import MAX_COLUMNS, read_csv
from babysit.distributions import DISTRIBUTIONS
from babysit.errors import ConfigError, DataError
from babysit.hyperparams import FIELDS, HyperParams
from babysit.manager import SessionManager
from babysit.session import Session
from babysit.space import NAMES, SearchSpace, parse_space, warnings
from babysit.store import Store
from models.activations import ACTIVATIONS
from models.optimizers import OPTIMIZERS
from models.schedules import MULTIPLICATIVE, SCHEDULES

EXAMPLES = int(os.environ.get("BABYSIT_HOSTILE_EXAMPLES", "1000"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI is reproducible
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TRAINING = settings(PROPERTY, max_examples=max(EXAMPLES // 10, 20))  # each example trains or makes a run
APP = str(Path(__file__).resolve().parents[1] / "app.py")

# -- what a refusal must look like ------------------------------------------------------------------

WHOLE_FILE = (r"not valid JSON|(NaN|-?Infinity) is not a valid number|a number [\d,]+ digits long"
              r"|lists or objects nested too deeply")
CONFIG_PROBLEM = re.compile(rf"^(unknown key '|{WHOLE_FILE}|a config must be a JSON object"
                            r"|(seed|data|model|hyperparameters|schedule)\b)")
SPACE_PROBLEM = re.compile(rf"^(unknown key '|{WHOLE_FILE}|a search space (must|needs)|base\b"
                           rf"|({'|'.join(NAMES)}): )")


def readable(message):
    """A line a user can be shown: text, not empty, no traceback, and something the page can send
    (a lone surrogate cannot be encoded, and st.error raises on it)."""
    assert isinstance(message, str) and message.strip(), f"empty problem {message!r}"
    assert "Traceback" not in message and 'File "' not in message, message
    message.encode("utf-8")


def refused(error, where, pattern):
    """ConfigError's problems: each located in ``where``, short, and naming a field or the file's form."""
    assert type(error) is ConfigError, f"{type(error).__name__}: {error}"
    assert error.problems, "a ConfigError with no problem"
    for problem in error.problems:
        readable(problem)
        assert problem.startswith(f"{where}: "), problem
        assert len(problem) <= MAX_PROBLEM, f"a {len(problem)}-character problem line"
        assert pattern.match(problem[len(where) + 2:]), f"names no field: {problem!r}"
    return error.problems


def outcome(what):
    """Counted in --hypothesis-show-statistics: how many examples loaded, and why the rest were refused."""
    if currently_in_test_context():
        event(what)


def whole_file(problems):
    return any(re.search(WHOLE_FILE, p) for p in problems)


# -- what an accepted value must look like ------------------------------------------------------------

FLOAT_RANGES = {  # name: (lo, hi, lo_open, hi_open)
    "alpha": (0, 10, True, False),
    "beta": (0, 1, False, True),
    "beta1": (0, 1, False, True),
    "beta2": (0, 1, False, True),
    "epsilon": (0, 1, True, False),
    "lambd": (0, math.inf, False, True),
}


def within(value, lo, hi, lo_open, hi_open):
    return (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)


def valid_hyperparams(hp):
    for name, bounds in FLOAT_RANGES.items():
        value = getattr(hp, name)
        assert type(value) is float and math.isfinite(value) and within(value, *bounds), (name, value)
    rate = hp.learning_rate_decay
    assert type(rate) is float and math.isfinite(rate)
    assert 0 < rate <= 1 if hp.decay_schedule in MULTIPLICATIVE else rate >= 0, (hp.decay_schedule, rate)
    assert type(hp.mini_batch_size) is int and hp.mini_batch_size >= 1
    assert isinstance(hp.optimizer, str) and hp.optimizer in OPTIMIZERS
    assert isinstance(hp.decay_schedule, str) and hp.decay_schedule in SCHEDULES
    assert HyperParams(**hp.to_dict()) == hp
    json.dumps(hp.to_dict(), allow_nan=False)


def valid_config(config):
    """Every field of a loaded RunConfig passes validation again, and the file it writes reads back equal."""
    assert isinstance(config, RunConfig)
    assert type(config.seed) is int and 0 <= config.seed < 2**32
    data = config.data
    assert (data.name is None) != (data.csv is None)
    if data.csv is not None:
        assert isinstance(data.csv, str) and data.csv and isinstance(data.target, str) and data.target
    assert type(data.dev_fraction) is float and 0 <= data.dev_fraction < 1
    assert type(data.standardize) is bool
    model = config.model
    assert isinstance(model.layers, tuple) and len(model.layers) <= 50
    assert all(type(n) is int and 1 <= n <= 100_000 for n in model.layers)
    assert model.activation in ACTIVATIONS and model.dtype in ("float64", "float32")
    valid_hyperparams(config.hyperparameters)
    steps = [change.step for change in config.schedule]
    assert steps == sorted(steps) and all(type(s) is int and s >= 1 for s in steps)
    text = config.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} written into a config"))
    assert parse_config(text) == config


# -- hostile values -----------------------------------------------------------------------------------

HOSTILE_JSON = [
    math.nan, math.inf, -math.inf, -1, -1.0, 0, 0.0, -0.0, 1, 1.5, 0.999999999, 1e308, -1e308, 5e-324,
    10**400, -(10**400), 2**31, 2**63, 2**64, True, False, None, "", " ", "0.01", "1e-3", "adam ", "ADAM",
    "exponential", "none", "relu", "moons", "ünïcødé", "名前", "😀", "\u202e", "\u0000", "a\u0000b", "\ud800",
    "x" * 5000, [], [1], [[]], [None], [16, "16"], [1e308, -1], [[[[[[1]]]]]], {}, {"a": 1}, {"": None},
    {"log_uniform": [0.1, 1]},
]
json_scalars = hs.one_of(
    hs.sampled_from(HOSTILE_JSON),
    hs.integers(),
    hs.floats(),
    hs.text(max_size=12),
    hs.booleans(),
    hs.none(),
)
hostile = hs.one_of(
    json_scalars,
    hs.lists(json_scalars, max_size=4),
    hs.dictionaries(hs.text(max_size=6), json_scalars, max_size=3),
)

mild = hs.one_of(  # values that often fit where they land: the "loads" side gets its share of examples
    hs.floats(0, 1),
    hs.integers(1, 64),
    hs.sampled_from(["relu", "tanh", "sigmoid", "float32", "gd", "momentum", "rmsprop", "none", "staircase",
                     "inverse_time", "moons", "circles", "blobs", True, False, 0.5, 1e-6]),
)
mixed = hs.integers(0, 1).flatmap(lambda i: mild if i else hostile)

CONFIG_KEYS = ("seed", "data", "model", "hyperparameters", "schedule", "name", "csv", "target", "n_samples",
               "noise", "n_classes", "dev_fraction", "standardize", "layers", "activation", "dtype", "step", "set",
               *FIELDS)
SPACE_KEYS = (*NAMES, "base", *DISTRIBUTIONS, *CONFIG_KEYS)


def any_json(keys):
    """Arbitrary JSON, with keys that are often the ones babysit looks for."""
    key = hs.one_of(hs.sampled_from(keys), hs.text(max_size=10))
    return hs.recursive(
        json_scalars,
        lambda inner: hs.lists(inner, max_size=5) | hs.dictionaries(key, inner, max_size=6),
        max_leaves=25,
    )


@hs.composite
def as_text(draw, values):
    """JSON text as a file holds it: NaN written out when a value has it, ASCII or not."""
    return json.dumps(draw(values), ensure_ascii=draw(hs.booleans()), allow_nan=True)


def children(node, path=()):
    """(path, container, key) for every entry under ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield path + (key,), node, key
        yield from children(value, path + (key,))


@hs.composite
def damaged(draw, skeletons, new_keys, values=mixed, most=3):
    """A valid file with one to ``most`` entries replaced by hostile values, removed, or added.
    Returns (document, the top-level keys that were touched)."""
    document = copy.deepcopy(draw(hs.sampled_from(skeletons)))
    touched = set()
    for _ in range(draw(hs.integers(1, most))):
        entries = list(children(document))
        action = draw(hs.sampled_from(["replace", "replace", "replace", "remove", "add"]))
        if action == "add" or not entries:
            dicts = [((), document)] + [(path, c[k]) for path, c, k in entries if isinstance(c[k], dict)]
            path, target = draw(hs.sampled_from(dicts))
            key = draw(hs.one_of(hs.sampled_from(new_keys), hs.text(max_size=10)))
            target[key] = copy.deepcopy(draw(values))  # constants are shared: never mutate them
            touched.add(path[0] if path else key)
            continue
        path, container, key = draw(hs.sampled_from(entries))
        if action == "remove":
            del container[key]
        else:
            container[key] = copy.deepcopy(draw(values))
        touched.add(path[0])
    return document, touched


BASE = {
    "seed": 3,
    "data": {"name": "moons", "n_samples": 60, "noise": 0.2, "dev_fraction": 0.2, "standardize": True},
    "model": {"layers": [4], "activation": "tanh", "lambd": 0.0, "dtype": "float64"},
    "hyperparameters": {"optimizer": "adam", "alpha": 0.01, "beta": 0.9, "beta1": 0.9, "beta2": 0.999,
                        "epsilon": 1e-8, "mini_batch_size": 16, "learning_rate_decay": 0.5,
                        "decay_schedule": "exponential"},
    "schedule": [{"step": 2, "set": {"alpha": 0.005}}, {"step": 3, "set": {"decay_schedule": "none"}}],
}
CSV_PLACEHOLDER = "@CSV@"  # the CLI's test puts a real file's path here
CONFIGS = [
    BASE,
    {**BASE, "data": {"csv": CSV_PLACEHOLDER, "target": "label", "dev_fraction": 0.25, "standardize": False}},
    {"data": {"name": "spiral", "n_samples": 30, "n_classes": 3}, "model": {"layers": []}},
]
SPACES = [
    {"alpha": {"log_uniform": [0.0001, 0.1]}, "beta": {"one_minus_log_uniform": [0.9, 0.999]},
     "lambd": {"uniform": [0.0, 0.01]}, "L": {"int_uniform": [2, 3]}, "width": {"choice": [4, 8]},
     "activation": {"choice": ["relu", "tanh"]}, "base": {**BASE, "schedule": []}},
    {"decay_schedule": {"choice": ["exponential", "staircase"]}, "learning_rate_decay": {"uniform": [0.5, 1.0]},
     "mini_batch_size": {"int_uniform": [1, 64]}, "optimizer": {"choice": ["adam", "momentum"]}},
]
HOSTILE_DISTRIBUTIONS = [
    {"log_uniform": [math.nan, 1]}, {"log_uniform": [0, 1]}, {"log_uniform": [-1, 1]}, {"uniform": [1, 0]},
    {"uniform": [-1e308, 1e308]}, {"uniform": [1e308, math.inf]}, {"int_uniform": [1e400, 2]},
    {"int_uniform": [2, 1]}, {"int_uniform": [-(2**64), 2**64]}, {"int_uniform": [1.0, 2.0]},
    {"int_uniform": [True, 3]}, {"one_minus_log_uniform": [0.9, 1]}, {"choice": []}, {"choice": [1, 1]},
    {"choice": [1, True, 1.0]}, {"choice": [[1]]}, {"choice": [{"a": 1}]}, {"choice": "adam"},
    {"choice": [None]}, {"choice": ["😀"]}, {"log_uniform": [0.1]}, {"log_uniform": [0.1, 0.2, 0.3]},
    {"log_uniform": "0.1, 1"}, {"loguniform": [0.1, 1]}, {"": []}, {"choice": [1], "uniform": [0, 1]},
]
MILD_DISTRIBUTIONS = [{"uniform": [0.1, 0.5]}, {"log_uniform": [1e-5, 1.0]}, {"int_uniform": [1, 4]},
                      {"choice": [2, 3]}, {"choice": ["adam", "gd"]}, {"one_minus_log_uniform": [0.0, 0.9]}]
space_values = hs.one_of(mixed, hs.sampled_from(HOSTILE_DISTRIBUTIONS), hs.sampled_from(MILD_DISTRIBUTIONS))


# -- config files ---------------------------------------------------------------------------------------


def config_outcome(text, where="config.json"):
    """parse_config's answer: a valid RunConfig, or its problems (asserted readable)."""
    try:
        config = parse_config(text, where)
    except ConfigError as error:
        outcome("refused")
        return refused(error, where, CONFIG_PROBLEM)
    outcome("loaded")
    valid_config(config)
    return config


@PROPERTY
@given(as_text(any_json(CONFIG_KEYS)))
@example("[" * 5000 + "]" * 5000)  # deeper than json can read
@example('{"model": {"layers": ' + "[" * 985 + "]" * 985 + "}}")  # deep enough that quoting it recurses
@example('{"seed": ' + "9" * 5000 + "}")  # more digits than Python turns into an int by default
@example('{"seed": "' + "x" * 1_000_000 + '"}')
@example('{"\\ud800": 1}')
def test_any_json_config_loads_or_is_refused(text):
    config_outcome(text)


@PROPERTY
@given(damaged(CONFIGS, CONFIG_KEYS), hs.booleans())
def test_a_damaged_config_loads_or_names_what_is_wrong(damage, ascii_only):
    document, touched = damage
    outcome = config_outcome(json.dumps(document, ensure_ascii=ascii_only))
    if isinstance(outcome, list) and not whole_file(outcome):
        assert any(repr(str(key))[1:-1] in p for p in outcome for key in touched), (touched, outcome)


@hs.composite
def config_texts(draw):
    """Text that is not quite a config: random characters, a valid file cut short or with a character
    changed, bytes decoded as Latin-1."""
    valid = json.dumps(draw(hs.sampled_from(CONFIGS)), indent=draw(hs.sampled_from([None, 2])))
    kind = draw(hs.sampled_from(["text", "cut", "edit", "bytes"]))
    if kind == "text":
        return draw(hs.text(max_size=200))
    if kind == "bytes":
        return draw(hs.binary(max_size=200)).decode("latin-1")
    at = draw(hs.integers(0, len(valid)))
    if kind == "cut":
        return valid[:at]
    return valid[:at] + draw(hs.text(max_size=3)) + valid[at + draw(hs.integers(0, 3)):]


@PROPERTY
@given(config_texts())
@example("")
@example("\ufeff{}")
@example("null")
@example("NaN")
@example('{"seed": Infinity}')
def test_text_that_is_nearly_a_config_loads_or_is_refused(text):
    config_outcome(text)


def test_the_cli_trains_a_hostile_config_or_refuses_it_without_a_run(tmp_path, babysit_home):
    """babysit train: 0 (trained, one more run, its bundle written), 1 (diverged: the run is kept) or 2
    (refused: one `babysit: error:` line per problem, no run, no --out folder)."""
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i % 7},{i * 3 % 5},{'xy'[i % 2]}\n" for i in range(40)))
    store = Store(str(babysit_home))
    counter, codes = iter(range(10**6)), collections.Counter()

    @TRAINING
    @given(hs.one_of(damaged(CONFIGS, CONFIG_KEYS, most=1).map(lambda d: json.dumps(d[0])),
                     damaged(CONFIGS, CONFIG_KEYS).map(lambda d: json.dumps(d[0])), config_texts()))
    def check(text):
        i = next(counter)
        path, out = tmp_path / f"config-{i}.json", tmp_path / f"out-{i}"
        path.write_bytes(text.replace(CSV_PLACEHOLDER, str(csv)).encode("utf-8", "surrogatepass"))
        before = [r.id for r in store.list_runs()]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["train", "--config", str(path), "--out", str(out), "--steps", "1", "--quiet"])
        after = [r.id for r in store.list_runs()]
        lines = stderr.getvalue().splitlines()
        codes[code] += 1
        if code == 2:
            assert after == before, "a refused config made a run"
            assert not out.exists(), "a refused config made its --out folder"
            assert lines and all(line.startswith("babysit: error: ") for line in lines), lines
            for line in lines:
                readable(line)
        else:
            assert code in (0, 1), code
            assert len(after) == len(before) + 1
            assert (out / "config.json").exists() and (out / "metrics.csv").exists()

    try:
        check()
    finally:
        store.close()
    print(f"babysit train exit codes: {dict(codes)}")
    assert codes[0] and codes[2], codes  # both ways out were taken


# -- search-space files ----------------------------------------------------------------------------------


def space_outcome(text, seed=0, where="space.json"):
    try:
        space = parse_space(text, where)
    except ConfigError as error:
        outcome("refused")
        return refused(error, where, SPACE_PROBLEM)
    outcome("loaded")
    assert isinstance(space, SearchSpace) and space.distributions
    for point in space.sample_points(5, seed):
        try:
            config = space.config_for(point)
        except ConfigError as error:
            outcome("a point refused by config_for")
            for problem in error.problems:
                readable(problem)
                assert problem.startswith("point {"), problem
            continue
        valid_config(config)
    for sentence in warnings(space):
        readable(sentence)
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict(), allow_nan=False))) == space
    return space


@PROPERTY
@given(as_text(any_json(SPACE_KEYS)), hs.integers(0, 2**32))
@example("[" * 5000 + "]" * 5000, 0)
@example('{"alpha": {"choice": ' + "[" * 985 + "]" * 985 + "}}", 0)
@example('{"L": {"int_uniform": [' + "9" * 5000 + ", 2]}}", 0)
@example('{"alpha": {"log_uniform": [NaN, 1]}}', 0)
@example('{"L": {"int_uniform": [1e400, 2]}}', 0)
@example('{"activation": {"choice": ["\\udfff"]}}', 0)
def test_any_json_space_loads_or_is_refused(text, seed):
    space_outcome(text, seed)


@PROPERTY
@given(damaged(SPACES, SPACE_KEYS, space_values), hs.integers(0, 2**32), hs.booleans())
def test_a_damaged_space_loads_or_names_what_is_wrong(damage, seed, ascii_only):
    document, touched = damage
    outcome = space_outcome(json.dumps(document, ensure_ascii=ascii_only), seed)
    if isinstance(outcome, list) and not whole_file(outcome):
        assert any(repr(str(key))[1:-1] in p for p in outcome for key in touched), (touched, outcome)


# -- uploaded CSVs --------------------------------------------------------------------------------------

CELLS = ["", " ", "nan", "NaN", "NA", "null", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e308", "-1e308",
         "9" * 30, "-0", "0x10", "1_000", "1,5", "True", "false", '"', '""', '"a,b"', '"a\nb"', "\x00", "😀", "é",
         "\ufeff", " 3 ", "\t4", "#", "3.", ".5", "+1", "1e-320"]
NAMES_IN_FILES = ["", " ", "label", "x", "Unnamed: 0", "label.1", "nan", "1", "ü", "列", "😀", "a,b", '"q"',
                  "\ufeff", "a\x00"]
number_cells = hs.one_of(
    hs.integers(-(10**6), 10**6).map(str),
    hs.floats(allow_nan=False, allow_infinity=False).map(repr),
)
any_cells = hs.one_of(number_cells, hs.sampled_from(CELLS), hs.floats().map(repr), hs.text(max_size=6))
column_names = hs.one_of(hs.sampled_from(NAMES_IN_FILES), hs.text(max_size=8))


@hs.composite
def csv_uploads(draw):
    """(bytes, target): tables clean and dirty, in several encodings and line endings, cut short or with
    stray bytes, and plain garbage."""
    kind = draw(hs.sampled_from(["clean", "clean", "dirty", "dirty", "garbage", "text"]))
    if kind == "garbage":
        return draw(hs.binary(max_size=400)), draw(column_names)
    if kind == "text":
        return draw(hs.text(max_size=300)).encode("utf-8"), draw(column_names)
    n = draw(hs.integers(1, 6))
    header = draw(hs.lists(column_names, min_size=n, max_size=n))
    if kind == "clean":
        header = [f"c{i}" for i in range(n - 1)] + ["label"]
    target = draw(hs.one_of(hs.sampled_from(header), column_names)) if kind == "dirty" else "label"
    labels = hs.sampled_from(draw(hs.sampled_from([["a", "b"], ["0", "1", "2"], ["yes"], ["1", "x", "2.5"]])))
    rows = []
    for _ in range(draw(hs.integers(0, 12))):
        width = n if kind == "clean" or draw(hs.integers(0, 9)) else draw(hs.integers(0, n + 2))
        cells = draw(hs.lists(number_cells if kind == "clean" else any_cells, min_size=width, max_size=width))
        if cells and kind == "clean":
            cells[-1] = draw(labels)
        rows.append(",".join(cells))
    newline = draw(hs.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join([",".join(header), *rows]) + draw(hs.sampled_from([newline, ""]))
    encoding = draw(hs.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if kind == "dirty" and draw(hs.booleans()):
        at = draw(hs.integers(0, len(data)))
        data = data[:at] + draw(hs.sampled_from([b"", b"\x00", b"\xff\xfe", b"\xe2\x82", b"\r"])) + data[at:]
    return data, target


REASONS = ("is empty", "header but no rows", "not found", "not numeric", "missing value", "infinite",
           "single class", "no feature columns", "not a text file", "not a well-formed CSV", "feature columns")


def csv_outcome(data, target, where="upload.csv"):
    """read_csv's answer: usable arrays, or a DataError that names the file."""
    try:
        X, y, classes, names = read_csv(io.BytesIO(data), target, where=where)
    except DataError as error:
        message = str(error)
        outcome("refused: " + next((why for why in REASONS if why in message), message[len(where):][:40]))
        readable(message)
        assert message.startswith(where), message
        assert len(message) < 1000, f"a {len(message)}-character message"
        return message
    outcome("loaded")
    assert X.dtype == np.float64 and X.ndim == 2 and np.isfinite(X).all()
    assert X.shape == (len(y), len(names)) and len(y) >= 1 and len(names) >= 1
    assert y.dtype.kind == "i" and len(classes) >= 2
    assert np.array_equal(np.unique(y), np.arange(len(classes))), "every class 0 … C-1 appears"
    assert target not in names
    return X, y, classes, names


@PROPERTY
@given(csv_uploads())
@example((b"", "label"))
@example((b"a,label\n", "label"))
@example((b"\xef\xbb\xbfa,label\n1,x\n2,y\n", "label"))
@example(("a,label\n1,x\n2,y\n".encode("utf-16"), "label"))
@example((b"a,label\n1,x\n2,x\n", "label"))
@example((b"a,label\n1e400,x\n2,y\n", "label"))
@example((b"a,label\n1,x,3,4\n2,y\n", "label"))
@example((b"\x00\x01\x02\xff", "label"))
def test_an_uploaded_csv_loads_or_is_refused_naming_the_file(upload):
    csv_outcome(*upload)


def test_bad_csv_paths_are_data_errors(tmp_path):
    """A config names a CSV by path: a path no file can have is the file's problem, not a traceback."""
    for path in [tmp_path / "missing.csv", tmp_path, f"{tmp_path}/a\x00b.csv", "x" * 5000 + ".csv",
                 f"{tmp_path}/\ud800.csv"]:
        with pytest.raises(DataError) as info:
            read_csv(str(path), "label")
        readable(str(info.value).encode("utf-8", "backslashreplace").decode())


# Time limits are on this process's CPU time (time.process_time), not the wall clock: a CI machine busy
# with other jobs must not fail them.


def wide_csv(n_features, rows=2):
    header = b",".join(b"c%d" % i for i in range(n_features)) + b",label\n"
    return header + b"".join(b"1," * n_features + b"%d\n" % (r % 2) for r in range(rows))


def test_a_csv_of_a_million_columns_is_refused_at_once(tmp_path):
    """10⁶ columns would take pandas over a minute and a gigabyte; the header alone refuses it."""
    data = wide_csv(1_000_000)
    path = tmp_path / "wide.csv"
    path.write_bytes(data)
    for source, where in ((io.BytesIO(data), "upload.csv"), (str(path), str(path))):
        start = time.process_time()
        with pytest.raises(DataError, match=rf"^{re.escape(where)} has more than 100,000 feature columns"):
            read_csv(source, "label", where=where)
        elapsed = time.process_time() - start
        print(f"10⁶ columns ({len(data) / 2**20:.0f} MB, {type(source).__name__}) refused in {elapsed:.3f} s of CPU")
        assert elapsed < 5


def test_the_column_limit_is_exact_in_the_header_and_in_a_frame(monkeypatch):
    monkeypatch.setattr(datasets, "MAX_COLUMNS", 50)
    X, *_ = read_csv(io.BytesIO(wide_csv(50)), "label", where="w.csv")
    assert X.shape == (2, 50)
    with pytest.raises(DataError, match="^w.csv has more than 50 feature columns"):
        read_csv(io.BytesIO(wide_csv(51)), "label", where="w.csv")

    class Stream(io.RawIOBase):  # cannot be rewound: the header check is skipped, the frame's count is not
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    with pytest.raises(DataError, match="^s.csv has more than 50 feature columns"):
        read_csv(io.BufferedReader(Stream(wide_csv(51))), "label", where="s.csv")


def test_a_wide_csv_under_the_limit_loads_in_seconds():
    start = time.process_time()
    X, y, classes, names = read_csv(io.BytesIO(wide_csv(MAX_COLUMNS // 5)), "label", where="w.csv")
    elapsed = time.process_time() - start
    assert X.shape == (2, MAX_COLUMNS // 5) and len(names) == MAX_COLUMNS // 5
    print(f"{MAX_COLUMNS // 5:,} feature columns loaded in {elapsed:.2f} s of CPU")
    assert elapsed < 15  # one pandas call per column took ~30 s here


def write_100mb(path, block):
    with open(path, "wb") as f:
        for _ in range(100 * 2**20 // len(block) + 1):
            f.write(block)


def test_a_100_mb_csv_loads(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(20_000, 10)).round(6)
    block = "".join(",".join(map(repr, r)) + f",{'abc'[i % 3]}\n" for i, r in enumerate(rows.tolist())).encode()
    path = tmp_path / "big.csv"
    path.write_bytes(b",".join(b"x%d" % i for i in range(10)) + b",label\n")
    with open(path, "ab") as f:
        for _ in range(100 * 2**20 // len(block) + 1):
            f.write(block)
    start = time.process_time()
    X, y, classes, names = read_csv(str(path), "label")
    elapsed = time.process_time() - start
    print(f"{path.stat().st_size / 2**20:.0f} MB, {X.shape[0]:,} rows, read in {elapsed:.1f} s of CPU")
    assert X.shape[1] == 10 and classes == ("a", "b", "c") and np.isfinite(X).all()
    assert elapsed < 60


@pytest.mark.parametrize("kind", ["one line", "garbage"])
def test_a_hostile_100_mb_csv_is_refused(tmp_path, kind):
    path = tmp_path / "big.csv"
    if kind == "one line":  # a 100 MB header and nothing else: one column, no rows
        write_100mb(path, b"x" * 2**20)
    else:
        write_100mb(path, np.random.default_rng(1).integers(0, 256, 2**20, dtype=np.uint8).tobytes())
    start = time.process_time()
    with pytest.raises(DataError) as info:
        read_csv(str(path), "label", where="big.csv")
    elapsed = time.process_time() - start
    message = str(info.value)
    print(f"{kind}: refused in {elapsed:.1f} s of CPU: {message[:120]}")
    assert message.startswith("big.csv") and len(message) < 1000
    assert elapsed < 60


@pytest.mark.parametrize("where_it_is", ["a cell", "a column name", "the target"])
def test_a_megabyte_long_value_is_quoted_short(where_it_is):
    huge = "z" * 10**6
    body, target = {"a cell": (f"a,label\n1,x\n{huge},y\n", "label"),
                    "a column name": (f"{huge},label\n1,x\n", "nope"),
                    "the target": ("a,label\n1,x\n", huge)}[where_it_is]
    message = csv_outcome(body.encode(), target)
    assert isinstance(message, str) and "zzz…" in message


# -- the page's uploads keep to their folder ---------------------------------------------------------------


def save_upload(home, name, content=b"a,label\n1,x\n2,y\n"):
    from babysit.ui import babysit_page

    mgr = SimpleNamespace(store=SimpleNamespace(home=str(home)))
    return babysit_page._save_upload(mgr, SimpleNamespace(name=name, getvalue=lambda: content))


UPLOAD_NAMES = ["../../etc/passwd.csv", "a/b\\c.csv", "..", ".", "", ".csv", "....csv", "/etc/passwd",
                "C:\\Windows\\x.csv", "\x00.csv", "名前.csv", "😀.csv", "a" * 500 + ".csv", "~/.bashrc", "-rf.csv",
                "%2e%2e%2fx.csv", "con.csv", "x.csv\n", " .csv"]


def test_uploads_are_saved_inside_the_uploads_folder(tmp_path):
    folder = os.path.realpath(tmp_path / "uploads")

    @PROPERTY
    @given(hs.one_of(hs.sampled_from(UPLOAD_NAMES), hs.text(max_size=60)), hs.binary(max_size=20))
    def check(name, content):
        path = save_upload(tmp_path, name, content)
        assert os.path.dirname(os.path.dirname(os.path.realpath(path))) == folder, (name, path)
        assert re.fullmatch(r"[0-9a-f]{16}", os.path.basename(os.path.dirname(path))), path  # named by content
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,39}\.csv", os.path.basename(path)), path  # not hidden
        assert Path(path).read_bytes() == content
        assert not Path(path + ".tmp").exists()

    check()
    assert {p.parent.parent for p in tmp_path.rglob("*") if p.is_file()} == {Path(folder)}


# -- hyperparameter values --------------------------------------------------------------------------------

PYTHON_VALUES = [
    math.nan, math.inf, -math.inf, -1, -1e-300, 0, 0.0, -0.0, 1e308, 10**400, -(10**400), 2**63, 2**1000, True,
    False, None, "", "adam", "exponential", "none", "0.01", b"adam", [0.1], (0.1,), {"alpha": 0.1}, {0.1},
    1 + 2j, complex(0.1, 0), Decimal("0.1"), Decimal("NaN"), Decimal("-Infinity"), Fraction(1, 3),
    Fraction(10**400), Fraction(1, 10**400), np.float32("nan"), np.float32(0.5), np.float64(0.1),
    np.float64("inf"), np.float16(1e-8), np.longdouble("1e4000"), np.int64(64), np.int64(-1), np.int8(0),
    np.uint64(2**64 - 1), np.bool_(True), np.str_("adam"), np.str_("sgd"), np.array(0.5), np.array([0.5]),
    object(), "\ud800", "😀", "x" * 100_000,
]
python_values = hs.one_of(
    hs.sampled_from(PYTHON_VALUES),
    hs.floats(),
    hs.integers(),
    hs.floats(0, 1),
    hs.text(max_size=10),
    hs.binary(max_size=5),
    hs.builds(complex, hs.floats(), hs.floats()),
    hs.decimals(),
    hs.fractions(),
    hs.floats(width=32).map(np.float32),
    hs.integers(-(2**63), 2**63 - 1).map(np.int64),
    hs.sampled_from(sorted(OPTIMIZERS) + sorted(SCHEDULES)),
)
plausible = hs.one_of(
    hs.floats(0, 1),
    hs.floats(0, 10),
    hs.integers(1, 512),
    hs.sampled_from(sorted(OPTIMIZERS) + sorted(SCHEDULES)),
)
hp_values = hs.integers(0, 2).flatmap(lambda i: python_values if i == 0 else plausible)  # 1/3 hostile
hp_names = hs.integers(0, 4).flatmap(lambda i: hs.text(max_size=8) if i == 0 else hs.sampled_from(FIELDS))
BASES = [HyperParams(), HyperParams(optimizer="momentum", decay_schedule="exponential", learning_rate_decay=0.5),
         HyperParams(decay_schedule="none", mini_batch_size=1, lambd=3.0)]


def names_the_field(error, names):
    problems = error.problems
    for problem in problems:
        readable(problem.encode("utf-8", "backslashreplace").decode())  # a Python caller may pass "\ud800"
        assert problem.split(" ")[0] in FIELDS or problem.startswith("unknown key '"), problem
    named = {repr(str(n))[1:-1] for n in names}  # as unknown_keys quotes them
    if "decay_schedule" in named:  # a schedule that the current rate does not suit: the rate is what is wrong
        named.add("learning_rate_decay")
    assert any(name in p for p in problems for name in named), (names, problems)


@PROPERTY
@given(hs.sampled_from(FIELDS), hp_values)
def test_hyperparams_take_a_value_or_name_the_field(field, value):
    try:
        hp = HyperParams(**{field: value})
    except ConfigError as error:
        outcome("refused")
        names_the_field(error, [field])
    else:
        outcome("accepted")
        valid_hyperparams(hp)


@PROPERTY
@given(hs.sampled_from(BASES), hs.dictionaries(hp_names, hp_values, min_size=1, max_size=3))
def test_replace_takes_the_values_or_names_the_fields(base, changes):
    try:
        hp = base.replace(**changes)
    except ConfigError as error:
        outcome("refused")
        names_the_field(error, changes)
    else:
        outcome("accepted")
        valid_hyperparams(hp)
        assert hp == HyperParams(**{**base.to_dict(), **changes})


def test_a_live_run_refuses_hostile_values_at_submit_and_stays_as_it_was(tmp_path):
    store = Store(str(tmp_path / "home"))
    session = Session.create(store, RunConfig.from_dict({"data": {"name": "moons", "n_samples": 60},
                                                         "model": {"layers": [4]}}))
    run_id, seen = session.run_id, collections.Counter()

    @TRAINING
    @given(hs.dictionaries(hp_names, hp_values, min_size=1, max_size=3))
    def check(changes):
        hp, events = session.trainer.hp, len(session.snapshot().events)
        stored = store.get_run(run_id).hyperparameters
        try:
            command = session.submit("set", changes=changes)
        except ConfigError as error:
            seen["refused"] += 1
            names_the_field(error, changes)
            assert session.snapshot().pending == (), "a refused change was queued"
            assert session.tick() is None
            assert session.trainer.hp == hp and len(session.snapshot().events) == events
            assert store.get_run(run_id).hyperparameters == stored
        else:
            seen["applied"] += 1
            session.tick()
            assert command.future.done() and command.future.exception() is None
            assert session.trainer.hp == hp.replace(**changes)
            valid_hyperparams(session.trainer.hp)

    try:
        check()
    finally:
        session.close()
        store.close()
    print(f"live changes: {dict(seen)}")
    assert seen["refused"] and seen["applied"], seen


# -- never a half-created run ---------------------------------------------------------------------------


def checkpoint_folders(store):
    return sorted(os.listdir(os.path.join(store.home, "checkpoints")))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # standardising 1e308 (see below)
def test_hostile_data_makes_a_whole_run_or_none(tmp_path):
    """Session.create loads the data before it makes a run: a CSV it cannot use leaves the store as it was."""
    store = Store(str(tmp_path / "home"))
    counter, seen = iter(range(10**6)), collections.Counter()

    @TRAINING
    @given(csv_uploads())
    @example((b"a,label\n1,x\n", "label"))  # one example: none left for training after the dev split
    def check(upload):
        data, target = upload
        path = tmp_path / f"data-{next(counter)}.csv"
        path.write_bytes(data)
        runs, folders = store.list_runs(), checkpoint_folders(store)
        try:
            config = RunConfig.from_dict({"data": {"csv": str(path), "target": target}, "model": {"layers": [3]}})
            session = Session.create(store, config)
        except (DataError, ConfigError) as error:
            seen[type(error).__name__] += 1
            readable(str(error))
            assert store.list_runs() == runs and checkpoint_folders(store) == folders
            return
        seen["run"] += 1
        session.close()
        new = [r for r in store.list_runs() if r.id not in {r.id for r in runs}]
        assert len(new) == 1 and new[0].id == session.run_id
        assert store.checkpoints(session.run_id), "a run without its step-0 checkpoint"

    try:
        check()
    finally:
        store.close()
    print(f"Session.create: {dict(seen)}")
    assert seen["run"] and seen["DataError"], seen


HOSTILE_DATA = [
    ({"csv": "/nonexistent/x.csv", "target": "label"}, DataError),
    ({"csv": "a\x00b.csv", "target": "label"}, DataError),
    ({"csv": ".", "target": "label"}, DataError),
    ({"csv": "@bad", "target": "label"}, DataError),
    ({"csv": "@single", "target": "label"}, DataError),
    ({"csv": "@good", "target": "nope"}, DataError),
    ({"csv": "@good", "target": "label", "dev_fraction": 0.99}, DataError),
]


@pytest.mark.parametrize("data, error", HOSTILE_DATA, ids=[d["csv"] + "|" + d["target"] for d, _ in HOSTILE_DATA])
def test_session_and_manager_create_no_run_from_hostile_data(tmp_path, data, error):
    files = {"@bad": "a,label\n1,x\noops,y\n", "@single": "a,label\n1,x\n2,x\n",
             "@good": "a,label\n1,x\n2,y\n3,x\n"}
    if data["csv"] in files:
        (tmp_path / "d.csv").write_text(files[data["csv"]])
        data = {**data, "csv": str(tmp_path / "d.csv")}
    config = RunConfig.from_dict({"data": data})
    mgr = SessionManager(Store(str(tmp_path / "home")))
    try:
        with pytest.raises(error):
            Session.create(mgr.store, config)
        with pytest.raises(error):
            mgr.create(config)
        assert mgr.store.list_runs() == [] and checkpoint_folders(mgr.store) == []
        assert mgr.training() == [] and not mgr._sessions
    finally:
        mgr.close_all()
        mgr.store.close()


def test_a_model_too_big_to_allocate_is_a_config_error_before_any_run(tmp_path):
    store = Store(str(tmp_path / "home"))
    try:
        for layers in ([100_000] * 50, [100_000, 100_000]):
            config = RunConfig.from_dict({"model": {"layers": layers}})  # each width is allowed on its own
            with pytest.raises(ConfigError, match=r"^model\.layers .* at most 100,000,000 can be trained"):
                Session.create(store, config)
        assert store.list_runs() == [] and checkpoint_folders(store) == []
    finally:
        store.close()


# -- never a traceback on the page ------------------------------------------------------------------------


@pytest.fixture
def own_manager(babysit_home):
    """The pages get a SessionManager of their own, on this test's store folder, closed afterwards."""
    from babysit.ui.state import manager

    streamlit.cache_resource.clear()
    yield
    mgr = manager()
    mgr.close_all()
    mgr.store.close()
    streamlit.cache_resource.clear()


@pytest.fixture
def page(own_manager):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    return at


PAGE_CONFIGS = [
    b"{not json",
    b"\xff\xfe\x00{",
    b'{"seed": NaN}',
    b"[" * 5000 + b"]" * 5000,
    b'{"\\ud800": 1, "seed": "\\udfff"}',
    b'{"seed": ' + b"9" * 5000 + b"}",
    b'{"seed": "' + b"x" * 100_000 + b'"}',
    b'{"model": {"layers": [1e308, -1, "16", [2]]}, "hyperparameters": {"alpha": 1e400, "decay_schedule": [1]}}',
    b'{"schedule": [{"step": -1, "set": {"alpha": null}}, 7], "data": {"csv": "", "target": 5}}',
    b"[]",
]


def test_hostile_config_files_on_the_page_are_refused_with_no_traceback(page, babysit_home):
    for i, body in enumerate(PAGE_CONFIGS):
        page.file_uploader(key="new:config_file").set_value((f"hostile-{i}.json", body, "application/json")).run()
        assert not page.exception, (body[:80], [e.value for e in page.exception])
        errors = [e.value for e in page.error]
        assert errors and errors[0].startswith("That config was not loaded; nothing changed:"), (body[:80], errors)
        assert f"hostile-{i}.json" in errors[0]
    assert Store(str(babysit_home)).list_runs() == []


PAGE_CSVS = [
    b"",
    b"a,label\n",
    b"\x00\x01\x02\xff\xfe" * 50,
    "a,label\n1,x\n2,y\n".encode("utf-16"),
    b"a,label\n1,x\n2,x\n",
    b"a,b,label\n1,oops,x\n2,3,y\n",
    b"a,label\n1e400,x\n2,y\n",
    b"a,b,label\n1,2,x\n3,4,y,9,9\n",
    b"a,label\n\n,\n",
    wide_csv(MAX_COLUMNS + 1),
]


def test_hostile_csv_uploads_on_the_page_are_refused_with_no_traceback(page, babysit_home):
    page.radio(key="new:source").set_value("CSV file").run()
    for i, body in enumerate(PAGE_CSVS):
        page.file_uploader(key="new:csv_file").set_value((f"hostile-{i}.csv", body, "text/csv")).run()
        assert not page.exception, (body[:80], [e.value for e in page.exception])
        errors = [e.value for e in page.error]
        assert any(e.startswith(f"hostile-{i}.csv") for e in errors), (body[:80], errors)
        assert not any("codec" in e or "Error tokenizing" in e or "C error" in e for e in errors), errors
        create = [b for b in page.button if b.label == "Create run"]
        assert create and create[0].disabled
    assert Store(str(babysit_home)).list_runs() == []
    rows = "".join(f"{i % 7},{i * 3 % 5},{'ab'[i % 2]}\n" for i in range(40))
    page.file_uploader(key="new:csv_file").set_value(("good.csv", f"x,y,label\n{rows}".encode(), "text/csv")).run()
    assert not page.exception and not page.error  # the same page still takes a good file


CAVIAR_APP = """
import streamlit as st
from babysit.ui import caviar_page

st.navigation([st.Page(caviar_page.render, title="Caviar", url_path="caviar", default=True)]).run()
"""
PAGE_SPACES = [  # (file, refused?): a space at the edges of what is allowed is previewed, the rest refused
    (b'{"alpha": {"log_uniform": [5e-324, 10]}, "lambd": {"uniform": [0, 1e307]}, '
     b'"mini_batch_size": {"int_uniform": [1, 9223372036854775807]}, "beta": {"uniform": [0, 0.9999999999999999]}, '
     b'"width": {"choice": [1, 100000]}, "L": {"int_uniform": [1, 51]}}', False),
    (b'{"alpha": {"log_uniform": [NaN, 1]}}', True),
    (b'{"L": {"int_uniform": [1e400, 2]}, "activation": {"choice": []}}', True),
    (b'{"\\ud800": {"choice": [1]}}', True),
    (b"[" * 5000 + b"]" * 5000, True),
    (b'{"alpha": {"log_uniform": [' + b"9" * 400 + b", 1]}, \"base\": {\"seed\": -1}}", True),
]


def test_hostile_space_files_on_the_caviar_page_are_previewed_or_refused(own_manager):
    at = AppTest.from_string(CAVIAR_APP, default_timeout=60).run()
    assert not at.exception
    for i, (body, refused_) in enumerate(PAGE_SPACES):
        at.file_uploader(key="caviar:file").set_value((f"space-{i}.json", body, "application/json")).run()
        assert not at.exception, (body[:80], [e.value for e in at.exception])
        errors = [e.value for e in at.error]
        assert bool(errors) == refused_, (body[:80], errors)
        assert all(f"space-{i}.json" in e for e in errors), errors
        assert refused_ != any(b.label == "Run study" for b in at.button)  # previewed, ready to run
