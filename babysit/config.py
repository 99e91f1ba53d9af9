"""A run's whole configuration, in the JSON format that ``babysit train`` reads and writes.

    {"seed": 0,
     "data": {"name": "moons", "n_samples": 1000, "noise": 0.2, "dev_fraction": 0.2, "standardize": true},
     "model": {"layers": [16, 16], "activation": "relu", "lambd": 0.0, "dtype": "float64"},
     "hyperparameters": {"optimizer": "adam", "alpha": 0.01, ...},
     "schedule": [{"step": 500, "set": {"alpha": 0.003}}]}

``data`` may instead be {"csv": "path.csv", "target": "label", "dev_fraction": 0.2, "standardize": true}.
``schedule`` lists hyperparameter changes, each taking effect before update ``step``. lambd sits in
``model`` in the file, but it is a live hyperparameter like the others (``HyperParams.lambd``).
Loading collects every problem in the file and raises them together, one line each.
"""

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field

from babysit import checks
from babysit.datasets import DATASETS, SYNTHETIC
from babysit.errors import ConfigError
from babysit.hyperparams import FIELDS as HP_FIELDS
from babysit.hyperparams import HyperParams
from models.activations import ACTIVATIONS

DTYPES = ("float64", "float32")
MAX_SAMPLES = 10_000_000


def data_label(name, csv, target):
    """A built-in data set's name, or "file.csv [target]": the CSV's folder is in the config."""
    return name or f"{os.path.basename(str(csv))} [{target}]"


@dataclass(frozen=True)
class DataConfig:
    name: str = None  # a built-in data set (DATASETS); or else csv + target
    csv: str = None  # path of a CSV file
    target: str = None  # the CSV's label column
    n_samples: int = None  # synthetic only: examples drawn
    noise: float = None  # synthetic only: how noisy the points are
    n_classes: int = None  # spiral and blobs only
    dev_fraction: float = 0.2  # share held out as the dev set; 0 means no dev set
    standardize: bool = True  # scale features to zero mean, unit variance (fitted on train only)

    @classmethod
    def from_dict(cls, d, section="data"):
        if not isinstance(d, dict):
            raise ConfigError(f"{section} must be an object, got {d!r}")
        if "csv" in d:
            known = ("csv", "target", "dev_fraction", "standardize")
        elif "name" in d:
            defaults = SYNTHETIC.get(d["name"], {}) if isinstance(d["name"], str) else {}
            known = ("name", *defaults, "dev_fraction", "standardize")
        else:
            raise ConfigError(f"{section} needs either 'name' (one of {', '.join(DATASETS)}) or 'csv' and 'target'")
        problems = checks.unknown_keys(section, d, known)
        if problems:
            raise ConfigError(problems)
        return cls(**d)._resolved(section)

    def _resolved(self, section="data"):
        """Validated, with every default of its kind filled in."""
        at = f"{section}."
        common = [
            ("dev_fraction", lambda: checks.number(at + "dev_fraction", self.dev_fraction, 0, 1, hi_open=True)),
            ("standardize", lambda: checks.boolean(at + "standardize", self.standardize)),
        ]
        if self.csv is not None:
            values = checks.collect(
                [
                    ("csv", lambda: checks.text(at + "csv", self.csv)),
                    ("target", lambda: checks.text(at + "target", self.target)),
                    *common,
                ]
            )
            return dataclasses.replace(self, **values)
        name = checks.collect([("name", lambda: checks.choice(at + "name", self.name, DATASETS))])["name"]
        defaults = SYNTHETIC.get(name, {})
        given = {key: getattr(self, key) for key in ("n_samples", "noise", "n_classes")}
        extra = [key for key, value in given.items() if value is not None and key not in defaults]
        if extra:
            raise ConfigError([f"{at}{key} does not apply to {name}" for key in extra])
        settings = {key: default if given[key] is None else given[key] for key, default in defaults.items()}
        rules = {
            "n_samples": lambda: checks.integer(at + "n_samples", settings["n_samples"], 4, MAX_SAMPLES),
            "noise": lambda: checks.number(at + "noise", settings["noise"], 0, 100),
            "n_classes": lambda: checks.integer(at + "n_classes", settings["n_classes"], 2, 100),
        }
        values = checks.collect([("name", lambda: name), *[(k, rules[k]) for k in settings], *common])
        if "n_classes" in values and values["n_samples"] < 2 * values["n_classes"]:
            raise ConfigError(f"{at}n_samples must be at least 2 per class, got {values['n_samples']}")
        return dataclasses.replace(self, **values)

    def to_dict(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @property
    def label(self):
        """How the data set is named in tables and titles: its name, or the CSV's file name and target."""
        return data_label(self.name, self.csv, self.target)


@dataclass(frozen=True)
class ModelConfig:
    layers: tuple = (16, 16)  # hidden widths; L = len(layers) + 1 layers have weights
    activation: str = "relu"  # hidden activation: relu, tanh or sigmoid
    dtype: str = "float64"  # float64 or float32

    def __post_init__(self):
        def layers():
            if not isinstance(self.layers, (list, tuple)):
                raise ConfigError(f"model.layers must be a list of hidden widths, got {self.layers!r}")
            if len(self.layers) > 50:
                raise ConfigError(f"model.layers must have at most 50 hidden layers, got {len(self.layers)}")
            return tuple(checks.integer(f"model.layers[{i}]", n, 1, 100_000) for i, n in enumerate(self.layers))

        values = checks.collect(
            [
                ("layers", layers),
                ("activation", lambda: checks.choice("model.activation", self.activation, list(ACTIVATIONS))),
                ("dtype", lambda: checks.choice("model.dtype", self.dtype, DTYPES)),
            ]
        )
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @property
    def L(self):
        return len(self.layers) + 1


@dataclass(frozen=True)
class Change:
    """Hyperparameter changes taking effect before update ``step`` (counted from 1)."""

    step: int
    set: dict

    def to_dict(self):
        return {"step": self.step, "set": dict(self.set)}


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=lambda: DataConfig(name="moons")._resolved())
    model: ModelConfig = field(default_factory=ModelConfig)
    hyperparameters: HyperParams = field(default_factory=HyperParams)
    schedule: tuple = ()  # Change, sorted by step

    @classmethod
    def from_dict(cls, d):
        """A validated config from parsed JSON; every problem is reported at once."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(d).__name__}")
        problems = checks.unknown_keys("", d, ("seed", "data", "model", "hyperparameters", "schedule"))
        parts = {}

        def attempt(key, build):
            try:
                parts[key] = build()
            except ConfigError as error:
                problems.extend(error.problems)

        attempt("seed", lambda: checks.integer("seed", d.get("seed", 0), 0, 2**32 - 1))
        attempt("data", lambda: DataConfig.from_dict(d.get("data", {"name": "moons"})))
        model = d.get("model", {})
        hp = d.get("hyperparameters", {})
        if not isinstance(model, dict):
            problems.append(f"model must be an object, got {model!r}")
            model = {}
        if not isinstance(hp, dict):
            problems.append(f"hyperparameters must be an object, got {hp!r}")
            hp = {}
        problems += checks.unknown_keys("model", model, ("layers", "activation", "lambd", "dtype"))
        problems += checks.unknown_keys("hyperparameters", hp, [f for f in HP_FIELDS if f != "lambd"])
        model_args = {k: v for k, v in model.items() if k in ("layers", "activation", "dtype")}
        attempt("model", lambda: ModelConfig(**model_args))
        hp_args = {k: v for k, v in hp.items() if k in HP_FIELDS and k != "lambd"}
        if "lambd" in model:
            hp_args["lambd"] = model["lambd"]
        attempt("hyperparameters", lambda: _hyperparams(hp_args))
        if "hyperparameters" in parts:
            attempt("schedule", lambda: parse_schedule(d.get("schedule", []), parts["hyperparameters"]))
        if problems:
            raise ConfigError(problems)
        return cls(**parts)

    def to_dict(self):
        hp = self.hyperparameters.to_dict()
        lambd = hp.pop("lambd")
        return {
            "seed": self.seed,
            "data": self.data.to_dict(),
            "model": {
                "layers": list(self.model.layers),
                "activation": self.model.activation,
                "lambd": lambd,
                "dtype": self.model.dtype,
            },
            "hyperparameters": hp,
            "schedule": [c.to_dict() for c in self.schedule],
        }

    def to_json(self):
        text = json.dumps(self.to_dict(), indent=2)
        # lists of numbers on one line: "layers": [16, 16]
        return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + ", ".join(
            part.strip() for part in m.group(1).split(",")) + "]", text) + "\n"

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _hyperparams(hp_args):
    """HyperParams from the file, each problem located where it is written (lambd sits in model)."""
    try:
        return HyperParams(**hp_args)
    except ConfigError as error:
        raise ConfigError(
            [f"{'model' if p.startswith('lambd ') else 'hyperparameters'}.{p}" for p in error.problems]
        ) from None


def _prefixed(section, build):
    try:
        return build()
    except ConfigError as error:
        raise ConfigError([f"{section}.{p}" for p in error.problems]) from None


def parse_schedule(entries, hp):
    """Validate schedule entries: steps in order (equal steps apply in turn), known names, and every
    state they lead to valid."""
    if not isinstance(entries, list):
        raise ConfigError(f"schedule must be a list, got {entries!r}")
    problems, changes, last = [], [], 0
    for i, entry in enumerate(entries):
        at = f"schedule[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{at} must be an object like {{\"step\": 500, \"set\": {{\"alpha\": 0.003}}}}")
            continue
        problems += checks.unknown_keys(at, entry, ("step", "set"))
        try:
            step = checks.integer(f"{at}.step", entry.get("step"), 1)
        except ConfigError as error:
            problems += error.problems
            continue
        if step < last:
            problems.append(f"{at}.step must not come before the previous entry's step {last}, got {step}")
        last = max(last, step)
        settings = entry.get("set")
        if not isinstance(settings, dict) or not settings:
            problems.append(f"{at}.set must be a non-empty object of hyperparameter values")
            continue
        unknown = checks.unknown_keys(f"{at}.set", settings, HP_FIELDS)
        if unknown:
            problems += unknown
            continue
        try:
            hp = _prefixed(f"{at}.set", lambda hp=hp, settings=settings: hp.replace(**settings))
        except ConfigError as error:
            problems += error.problems
            continue
        changes.append(Change(step, {k: getattr(hp, k) for k in settings}))
    if problems:
        raise ConfigError(problems)
    return tuple(changes)


def load_config(path):
    """Read and validate a config file; every problem with it becomes one line of ConfigError."""
    return parse_config(read_file(path), str(path))


def parse_config(text, where="config"):
    return parse_file(text, where, RunConfig.from_dict, "a config")


def read_file(path):
    """A config or search-space file's text; a missing or unreadable file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from None


MAX_PROBLEM = 500  # characters in one problem line: a huge value quoted from the file is cut short
NESTED = "lists or objects nested too deeply"


def parse_file(text, where, build, what):
    """JSON ``text`` made into ``build(dict)`` (``what`` it is, for messages); every problem with it
    becomes one line of ConfigError, located at ``where``."""

    def refuse_constant(name):
        raise ValueError(f"{name} is not a valid number in {what} (JSON has no NaN or Infinity)")

    try:
        d = json.loads(text, parse_constant=refuse_constant, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        at = f"line {error.lineno}, column {error.colno}"
        raise ConfigError(f"{where}: not valid JSON: {error.msg} at {at}") from None
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    except RecursionError:
        raise ConfigError(f"{where}: {NESTED} to read") from None
    try:
        refuse_half_pairs(d)
        return build(d)
    except ConfigError as error:
        raise ConfigError([problem_line(where, p) for p in error.problems]) from None
    except RecursionError:  # quoting a value nested almost as deeply as JSON allows
        raise ConfigError(f"{where}: {NESTED} to be {what}") from None


def refuse_half_pairs(d):
    """Refuse an escape such as \\ud800 that is half of a surrogate pair: it decodes to no character, and
    neither the page nor the store can show or keep the string it is in."""
    try:
        json.dumps(d, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        half = f"\\u{ord(error.object[error.start]):04x}"
        raise ConfigError(f"not valid JSON: {half} is half of a surrogate pair, not a character") from None


def problem_line(where, problem):
    """One problem of a file, located, and no longer than MAX_PROBLEM characters."""
    line = f"{where}: {problem}"
    return line if len(line) <= MAX_PROBLEM else line[: MAX_PROBLEM - 1] + "…"


def _parse_int(digits):
    """An integer as JSON writes it; Python's own refusal of 4,300+ digits talks about sys functions."""
    if len(digits) > 4300:
        raise ValueError(f"a number {len(digits):,} digits long is too long to read")
    return int(digits)


def is_finite_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
