"""A search space: which hyperparameters a study samples, from what, on top of which run config.

    {"alpha": {"log_uniform": [0.0001, 0.1]},
     "beta": {"one_minus_log_uniform": [0.9, 0.999]},
     "L": {"int_uniform": [2, 4]},
     "base": {...a run config in babysit train's format; optional, default: babysit's default (moons)...}}

Names: every HyperParams field, plus ``L`` (layers with weights: a trial has L - 1 hidden layers),
``width`` (every hidden layer's width) and ``activation``. Loading collects every problem in the file
(unknown names, malformed distributions, distributions that can produce a value the name does not
allow, problems in ``base``) and raises them together, one line each.

Point i of ``sample_points(n, seed)`` is drawn from its own stream, child i of
``np.random.SeedSequence(seed)``, so it depends only on (seed, i): asking for more points never
changes the first ones.
"""

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass, field

import numpy as np

from babysit import checks
from babysit.config import ModelConfig, RunConfig, parse_file, parse_schedule, read_file
from babysit.distributions import (
    Choice,
    Distribution,
    IntUniform,
    LogUniform,
    OneMinusLogUniform,
    Uniform,
    distribution_from_dict,
)
from babysit.errors import ConfigError
from babysit.hyperparams import FIELDS as HP_FIELDS
from babysit.hyperparams import HyperParams, averaging_window
from models.activations import ACTIVATIONS
from models.optimizers import OPTIMIZERS
from models.schedules import SCHEDULES

__all__ = [
    "DEFAULT_SPACE",
    "NAMES",
    "SearchSpace",
    "averaging_window",
    "load_space",
    "parse_space",
    "per_decade",
    "points_csv",
    "warnings",
]

NAMES = (*HP_FIELDS, "L", "width", "activation")
CATEGORICAL = ("optimizer", "decay_schedule", "activation")  # only a choice makes sense
INTEGER = ("L", "width", "mini_batch_size")  # int_uniform, or a choice of integers
BETAS = ("beta", "beta1", "beta2")  # averaging weights: one_minus_log_uniform is their scale
DEFAULT_WIDTH = 16  # the width of sampled hidden layers when neither the space nor the base has one
MAX_HIDDEN = 50  # ModelConfig's limits
MAX_WIDTH = 100_000
EMPTY = "a search space needs at least one name to sample"

# Which optimizers read each hyperparameter (the rest read alpha, mini_batch_size and lambd alike).
USED_BY = {"beta": ("momentum",), "beta1": ("adam",), "beta2": ("rmsprop", "adam"), "epsilon": ("rmsprop", "adam")}


def _check_value(name, value, base_hp, sampled):
    """The name's own rule for one value it may take; raises ConfigError naming the name."""
    if name == "L":
        return checks.integer("L", value, 1, MAX_HIDDEN + 1)
    if name == "width":
        return checks.integer("width", value, 1, MAX_WIDTH)
    if name == "activation":
        return checks.choice("activation", value, list(ACTIVATIONS))
    # The decay rate's range depends on the schedule: when the space samples only one of the two, the
    # other is the base's; when it samples both, each combination is judged by config_for.
    context = base_hp
    if name in ("learning_rate_decay", "decay_schedule") and {"learning_rate_decay", "decay_schedule"} <= sampled:
        context = base_hp.replace(decay_schedule="none", learning_rate_decay=1.0)  # 1.0 suits every schedule
    return getattr(context.replace(**{name: value}), name)


def _extremes(dist):
    """The values that decide whether every sample is allowed: both ends of a range (every name's
    allowed values form an interval), every option of a choice."""
    return list(dist.options) if isinstance(dist, Choice) else [dist.low, dist.high]


def _problems_of(name, dist, base, sampled):
    """Why ``dist`` cannot be used for ``name``: [] when every value it can produce is allowed."""
    if name in CATEGORICAL and not isinstance(dist, Choice):
        return [f"{name}: {dist.kind} cannot sample {name}; use a choice, e.g. {_choice_example(name)}"]
    if name in INTEGER and not isinstance(dist, (IntUniform, Choice)):
        return [f"{name}: must be an integer, so int_uniform or a choice of integers, not {dist.kind}"]
    problems = []
    for value in _extremes(dist):
        try:
            _check_value(name, value, base.hyperparameters, sampled)
        except ConfigError as error:
            problems += [f"{name}: {_written(dist)} can produce {value!r}: {p}" for p in error.problems]
    return problems


def _choice_example(name):
    options = {"optimizer": list(OPTIMIZERS), "decay_schedule": list(SCHEDULES), "activation": list(ACTIVATIONS)}
    return json.dumps({"choice": options[name][:2]})


def _written(dist):
    """A distribution as in the file, e.g. 'uniform [0.5, 1.2]'."""
    if isinstance(dist, Choice):
        return f"choice {json.dumps(list(dist.options))}"
    return f"{dist.kind} [{_num(dist.low)}, {_num(dist.high)}]"


@dataclass(frozen=True)
class SearchSpace:
    distributions: dict  # name -> Distribution, in file order
    base: RunConfig = field(default_factory=RunConfig)  # every trial is this config with its point applied

    def __post_init__(self):
        if not isinstance(self.distributions, dict):
            raise ConfigError(f"distributions must be a dict of name -> distribution, got {self.distributions!r}")
        object.__setattr__(self, "distributions", dict(self.distributions))
        if not isinstance(self.base, RunConfig):
            raise ConfigError(f"base must be a RunConfig, got {self.base!r}")
        problems = checks.unknown_keys("", self.distributions, NAMES)
        if not self.distributions:
            problems.append(f"{EMPTY} (known: {', '.join(NAMES)})")
        sampled = set(self.distributions)
        for name, dist in self.distributions.items():
            if name not in NAMES:
                continue
            if not isinstance(dist, Distribution):
                problems.append(f"{name}: expected a distribution, got {dist!r}")
                continue
            problems += _problems_of(name, dist, self.base, sampled)
        for i, change in enumerate(self.base.schedule):
            overridden = [k for k in change.set if k in sampled]
            if overridden:
                problems.append(f"base.schedule[{i}] sets {', '.join(overridden)}, which the space samples: "
                                f"each trial's value would be replaced at step {change.step}")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, d):
        """A validated space from parsed JSON; every problem is reported at once."""
        if not isinstance(d, dict):
            raise ConfigError(f"a search space must be a JSON object, got {type(d).__name__}")
        problems = checks.unknown_keys("", d, (*NAMES, "base"))
        base = RunConfig()  # also the stand-in that names are checked against when "base" has problems
        if "base" in d:
            if not isinstance(d["base"], dict):
                problems.append(f"base must be a run config object, got {_json(d['base'])}")
            else:
                try:
                    base = RunConfig.from_dict(d["base"])
                except ConfigError as error:
                    problems += [_in_base(p) for p in error.problems]
        distributions = {}
        for name, value in d.items():
            if name == "base" or name not in NAMES:
                continue
            if not isinstance(value, dict):
                problems.append(f"{name}: expected a distribution like {{\"log_uniform\": [0.0001, 0.1]}}, got "
                                f"{_json(value)} (a fixed value belongs in base)")
                continue
            try:
                distributions[name] = distribution_from_dict(value)
            except ConfigError as error:
                problems += [f"{name}: {p}" for p in error.problems]
        named = any(k != "base" for k in d)  # then an empty space is already explained above
        try:
            space = cls(distributions, base)
        except ConfigError as error:
            problems += [p for p in error.problems if not (named and p.startswith(EMPTY))]
        if problems:
            raise ConfigError(problems)
        return space

    def to_dict(self):
        return {**{name: dist.to_dict() for name, dist in self.distributions.items()}, "base": self.base.to_dict()}

    @property
    def names(self):
        return tuple(self.distributions)

    def sample(self, rng):
        """One point: {name: plain int, float or str}, drawn in the space's order from ``rng``."""
        return {name: dist.sample(rng) for name, dist in self.distributions.items()}

    def sample_points(self, n, seed):
        """n points; point i from child i of SeedSequence(seed), so it depends only on (seed, i)."""
        n = checks.integer("n", n, 0)
        seed = checks.integer("seed", seed, 0)
        return [self.sample(np.random.default_rng(child)) for child in np.random.SeedSequence(seed).spawn(n)]

    def config_for(self, point):
        """The base config with ``point`` applied, validated.

        L and width set model.layers = [width] * (L - 1) (width defaults to the base's first hidden
        width, or 16; L to the base's); activation sets model.activation; the hyperparameters replace the
        base's. The base's seed is kept: every trial of a study trains on the same data and split, starts
        from the same initial weights (for the same layer shapes) and sees the examples in the same order,
        so trials differ only in their hyperparameters. A combination the rules refuse (e.g. the
        exponential schedule with learning_rate_decay 2) raises ConfigError naming the point.
        """
        unknown = checks.unknown_keys("", point, NAMES)
        if unknown:
            raise ConfigError(unknown)
        base = self.base
        try:
            hp = base.hyperparameters.replace(**{k: v for k, v in point.items() if k in HP_FIELDS})
            layers = base.model.layers
            if "L" in point or "width" in point:
                width = checks.integer("width", point.get("width", layers[0] if layers else DEFAULT_WIDTH),
                                       1, MAX_WIDTH)
                L = checks.integer("L", point["L"], 1, MAX_HIDDEN + 1) if "L" in point else len(layers) + 1
                layers = [width] * (L - 1)
            model = ModelConfig(layers=layers, activation=point.get("activation", base.model.activation),
                                dtype=base.model.dtype)
            schedule = parse_schedule([c.to_dict() for c in base.schedule], hp)
        except ConfigError as error:
            raise ConfigError([f"point {_show(point)}: {p}" for p in error.problems]) from None
        return dataclasses.replace(base, model=model, hyperparameters=hp, schedule=schedule)


def _json(value):
    """A value as it would be written in the file (repr when it is not JSON)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _show(point):
    return "{" + ", ".join(f"{k}={v!r}" for k, v in point.items()) + "}"


def _in_base(problem):
    """A problem of the base config, located inside it."""
    if problem.startswith("unknown key '"):
        return "unknown key 'base." + problem[len("unknown key '"):]
    return "base." + problem


DEFAULT_SPACE = SearchSpace(
    {
        "alpha": LogUniform(1e-4, 1e-1),  # the seed's range: three decades, each as likely
        "beta": OneMinusLogUniform(0.9, 0.999),  # averaging windows of 10 … 1000, each decade as likely
        # 1 to 3 hidden layers: L = 1 (logistic regression) cannot bend around the two moons, and
        # deeper nets only make trials slower on a 2-feature problem.
        "L": IntUniform(2, 4),
    },
    # beta is momentum's: on the default optimizer (adam) it would change nothing.
    RunConfig(hyperparameters=HyperParams(optimizer="momentum")),
)


def load_space(path):
    """Read and validate a search space file; every problem with it becomes one line of ConfigError."""
    return parse_space(read_file(path), str(path))


def parse_space(text, where="space"):
    return parse_file(text, where, SearchSpace.from_dict, "a search space")


def points_csv(space, points):
    """The points as CSV text: a ``trial`` column (0, 1, …), then one column per name in the space's
    order. Floats are written with repr, so they read back bit for bit."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", *space.names])
    for i, point in enumerate(points):
        writer.writerow([i, *(repr(point[name]) if isinstance(point[name], float) else point[name]
                              for name in space.names)])
    return out.getvalue()


# Preview helpers for the page: pure functions of samples or of a space.


def _decade(x):
    """k with 10**k <= x < 10**(k + 1), exact at the boundaries (log10 alone can be off by an ulp)."""
    k = math.floor(math.log10(x))
    if 10.0**k > x:
        k -= 1
    elif 10.0 ** (k + 1) <= x:
        k += 1
    return k


def _beta_decade(beta):
    """k with 1 - 10**(k + 1) < beta <= 1 - 10**k (the labels' boundaries, compared in beta's own terms,
    since 1 - beta loses digits), at most -1: beta = 0 belongs with 0 … 0.9."""
    k = _decade(1.0 - beta)
    if beta > 1 - 10.0**k:
        k -= 1
    elif beta <= 1 - 10.0 ** (k + 1):
        k += 1
    return min(k, -1)


def per_decade(values, one_minus=False):
    """How many values fall in each decade, lowest values first, empty decades between included:
    {"1e-4…1e-3": n, …}. With ``one_minus`` (values such as beta), by decade of 1 - value, labelled by
    the values' range: {"0.9…0.99": n, "0.99…0.999": m}. Values outside the log scale's domain (<= 0,
    or >= 1 with one_minus) are refused."""
    values = [float(v) for v in values]
    if not values:
        return {}
    if one_minus:
        bad = [v for v in values if not 0 <= v < 1]
        if bad:
            raise ValueError(f"per_decade(one_minus=True) needs values in [0, 1), got {bad[0]!r}")
        ks = [_beta_decade(v) for v in values]
    else:
        bad = [v for v in values if not v > 0 or math.isinf(v)]
        if bad:
            raise ValueError(f"per_decade needs positive finite values, got {bad[0]!r}")
        ks = [_decade(v) for v in values]
    counts = {}
    decades = range(max(ks), min(ks) - 1, -1) if one_minus else range(min(ks), max(ks) + 1)
    for k in decades:
        if one_minus:
            label = f"{1 - 10.0 ** (k + 1):.{-(k + 1)}f}…{1 - 10.0**k:.{-k}f}"  # 0.9…0.99 for k = -2
        else:
            label = f"1e{k}…1e{k + 1}"
        counts[label] = ks.count(k)
    return counts


def _num(x):
    return f"{x:g}"


def warnings(space):
    """What in ``space`` is legal but probably not meant, one sentence each: ranges sampled on the
    wrong scale, hyperparameters no trial's optimizer reads, a width with no hidden layer to apply to."""
    found = []
    optimizers = _possible(space, "optimizer", space.base.hyperparameters.optimizer)
    for name, dist in space.distributions.items():
        if isinstance(dist, Uniform) and name in BETAS:
            found += _beta_warning(name, dist)
        elif isinstance(dist, Uniform) and dist.low >= 0 and dist.high > 10 * dist.low:
            lo, hi = dist.low, dist.high
            share = (hi - hi / 10) / (hi - lo)  # the top decade's share of a uniform over [lo, hi]
            fix = (f"log_uniform [{_num(lo)}, {_num(hi)}] gives each decade the same share" if lo > 0
                   else "log_uniform (from a small positive lo) gives each decade the same share")
            found.append(f"{name}: uniform over {_num(lo)} … {_num(hi)} puts ~{share:.0%} of the samples in "
                         f"{_num(hi / 10)} … {_num(hi)}; {fix}")
        if name in USED_BY and not set(optimizers) & set(USED_BY[name]):
            readers = USED_BY[name]
            verb = "reads" if len(readers) == 1 else "read"
            found.append(f"{name}: only {' and '.join(readers)} {verb} it, but every trial uses "
                         f"{' or '.join(optimizers)}, so sampling it changes nothing")
    if "learning_rate_decay" in space.distributions and _possible(
            space, "decay_schedule", space.base.hyperparameters.decay_schedule) == ["none"]:
        found.append("learning_rate_decay: every trial's decay_schedule is none, so sampling it changes nothing")
    if "width" in space.distributions and "L" not in space.distributions and not space.base.model.layers:
        found.append("width: the base model has no hidden layers and L is not sampled, so width changes nothing")
    return found


def _possible(space, name, base_value):
    """Every value ``name`` can take in a trial: a choice's options, else the base's value."""
    dist = space.distributions.get(name)
    return list(dist.options) if isinstance(dist, Choice) else [base_value]


def _beta_warning(name, dist):
    """A uniform beta whose averaging window 1/(1 - beta) spans more than one decade."""
    lo, hi = dist.low, dist.high
    if (1 - lo) / (1 - hi) <= 10:
        return []
    edge = 1 - 10 * (1 - hi)  # beta above edge: the window's top decade
    share = (hi - edge) / (hi - lo)
    return [f"{name}: uniform over {_num(lo)} … {_num(hi)} puts only ~{share:.0%} of the samples in "
            f"{_num(edge)} … {_num(hi)} (averaging windows of {averaging_window(edge):.0f} … "
            f"{averaging_window(hi):.0f} values), where small changes in {name} matter most; "
            f"one_minus_log_uniform [{_num(lo)}, {_num(hi)}] gives each decade of 1 - {name} the same share"]
