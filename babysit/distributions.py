"""Where a hyperparameter is sampled from: small validated value objects, as written in a search space file.

    {"log_uniform": [0.0001, 0.1]}          alpha, epsilon, lambd: 10**U(log10 lo, log10 hi)
    {"one_minus_log_uniform": [0.9, 0.999]} beta, beta1, beta2: 1 - 10**U(log10(1 - hi), log10(1 - lo))
    {"uniform": [0.0, 1.0]}                 U(lo, hi)
    {"int_uniform": [2, 10]}                an integer in lo … hi, both ends included
    {"choice": ["adam", "momentum"]}        one of the options, each as likely

Sampling "at random" is not sampling uniformly: a learning rate between 0.0001 and 0.1 drawn uniformly
lands in 0.01 … 0.1 nine times out of ten, while drawn uniformly in log10 each decade gets a third.
Likewise beta: 0.9 averages over ~10 values, 0.99 over ~100, 0.999 over ~1000, so 1 - beta is what
should be uniform in log space. Every ``sample`` takes an injected ``np.random.Generator``.
"""

import math
import numbers

import numpy as np

from babysit.errors import ConfigError

__all__ = [
    "DISTRIBUTIONS",
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "OneMinusLogUniform",
    "Uniform",
    "distribution_from_dict",
]


def _real(value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float, e.g. 10**400 written out in JSON
        return False


def _integral(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Distribution:
    """Base of the distributions: equality, hashing and a read-back ``repr`` from ``_args()``."""

    kind = ""  # the name in a search space file, e.g. "log_uniform"
    log_scale = False  # sampled uniformly in log space (of x, or of 1 - x)
    low = None  # the smallest value it can produce, where that is meaningful
    high = None  # the largest

    def _args(self):
        """The constructor's arguments, in order."""
        raise NotImplementedError

    def _key(self):
        return self._args()

    def sample(self, rng, size=None):
        """One value (a plain Python scalar) when ``size`` is None, else an array of that shape."""
        raise NotImplementedError

    def to_dict(self):
        """The file form: {kind: arguments}."""
        raise NotImplementedError

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(repr(a) for a in self._args())})"


class _Range(Distribution):
    """A distribution over the interval [low, high] of reals."""

    def __init__(self, low, high):
        if not (_real(low) and _real(high)) or not self._valid(float(low), float(high)):
            raise ConfigError(f"{self.kind} needs {self._rule}, got [{low!r}, {high!r}]")
        if not math.isfinite(float(high) - float(low)):  # numpy cannot draw from a range wider than a float
            raise ConfigError(f"{self.kind} needs a range narrower than 1.8e308, got [{low!r}, {high!r}]")
        self._low, self._high = float(low), float(high)

    _rule = "lo < hi"

    @staticmethod
    def _valid(low, high):
        return low < high

    @property
    def low(self):
        return self._low

    @property
    def high(self):
        return self._high

    def _args(self):
        return (self._low, self._high)

    def to_dict(self):
        return {self.kind: [self._low, self._high]}

    def _finish(self, values, size):
        """Clipped to [low, high] (10**log10(hi) can overshoot by an ulp); a float when size is None."""
        values = np.clip(values, self._low, self._high)
        return float(values) if size is None else values


class LogUniform(_Range):
    """10**U(log10 low, log10 high): each decade between low and high gets the same share."""

    kind = "log_uniform"
    log_scale = True
    _rule = "0 < lo < hi"

    @staticmethod
    def _valid(low, high):
        return 0 < low < high

    def sample(self, rng, size=None):
        exponent = rng.uniform(math.log10(self._low), math.log10(self._high), size)
        return self._finish(10.0**exponent, size)


class OneMinusLogUniform(_Range):
    """1 - 10**U(log10(1 - high), log10(1 - low)): for averaging weights such as beta, where the window
    1/(1 - beta) is what matters; 0.9 … 0.999 gives 0.9 … 0.99 and 0.99 … 0.999 the same share."""

    kind = "one_minus_log_uniform"
    log_scale = True
    _rule = "0 <= lo < hi < 1"

    @staticmethod
    def _valid(low, high):
        return 0 <= low < high < 1

    def sample(self, rng, size=None):
        exponent = rng.uniform(math.log10(1.0 - self._high), math.log10(1.0 - self._low), size)
        return self._finish(1.0 - 10.0**exponent, size)


class Uniform(_Range):
    """U(low, high): right for ranges within one order of magnitude, wrong across several."""

    kind = "uniform"

    def sample(self, rng, size=None):
        return self._finish(rng.uniform(self._low, self._high, size), size)


INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class IntUniform(Distribution):
    """An integer in low … high, both ends included, each as likely."""

    kind = "int_uniform"

    def __init__(self, low, high):
        if not (_integral(low) and _integral(high)) or low > high:
            raise ConfigError(f"{self.kind} needs integers lo <= hi, got [{low!r}, {high!r}]")
        if low < INT_MIN or high > INT_MAX:  # numpy draws 64-bit integers
            raise ConfigError(f"{self.kind} needs bounds within [-2**63, 2**63 - 1], got [{low!r}, {high!r}]")
        self._low, self._high = int(low), int(high)

    @property
    def low(self):
        return self._low

    @property
    def high(self):
        return self._high

    def _args(self):
        return (self._low, self._high)

    def to_dict(self):
        return {self.kind: [self._low, self._high]}

    def sample(self, rng, size=None):
        values = rng.integers(self._low, self._high, size, endpoint=True)
        return int(values) if size is None else values


def _scalar(value):
    """A JSON scalar: a string, a finite number, true/false or null."""
    return value is None or isinstance(value, (str, bool)) or _real(value)


class Choice(Distribution):
    """One of ``options`` (JSON scalars), each as likely."""

    kind = "choice"

    def __init__(self, options):
        if not isinstance(options, (list, tuple)) or not options:
            raise ConfigError(f"choice needs a non-empty list of options, got {options!r}")
        options = [o.item() if isinstance(o, np.generic) else o for o in options]  # plain Python scalars
        bad = [o for o in options if not _scalar(o)]
        if bad:
            raise ConfigError(f"choice options must be strings, finite numbers, true/false or null, got {bad[0]!r}")
        keys = [_tagged(o) for o in options]
        repeated = [o for i, o in enumerate(options) if keys[i] in keys[:i]]
        if repeated:  # a repeated option would silently be twice as likely
            raise ConfigError(f"choice lists {repeated[0]!r} more than once: {list(options)!r}")
        self._options = tuple(options)

    @property
    def options(self):
        return self._options

    def _args(self):
        return (list(self._options),)

    def _key(self):
        # 1, 1.0 and True are equal in Python but not as options: they sample different things
        return tuple(_tagged(o) for o in self._options)

    def to_dict(self):
        return {self.kind: list(self._options)}

    def sample(self, rng, size=None):
        index = rng.integers(len(self._options), size=size)
        if size is None:
            return self._options[int(index)]
        return np.array(self._options, dtype=object)[index]


def _tagged(option):
    return (type(option).__name__, option)


DISTRIBUTIONS = {
    cls.kind: cls for cls in (LogUniform, OneMinusLogUniform, Uniform, IntUniform, Choice)
}


def distribution_from_dict(d):
    """The distribution written as ``d`` in a file, e.g. {"log_uniform": [0.0001, 0.1]}."""
    example = '{"log_uniform": [0.0001, 0.1]}'
    if not isinstance(d, dict) or len(d) != 1:
        raise ConfigError(f"a distribution is an object with one key, like {example}, got {d!r}")
    ((kind, value),) = d.items()
    if kind not in DISTRIBUTIONS:
        import difflib

        close = difflib.get_close_matches(str(kind), list(DISTRIBUTIONS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(DISTRIBUTIONS)}"
        raise ConfigError(f"unknown distribution '{kind}' ({hint})")
    cls = DISTRIBUTIONS[kind]
    if cls is Choice:
        return Choice(value)
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{kind} needs [lo, hi], got {value!r}")
    return cls(*value)
