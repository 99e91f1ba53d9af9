"""Small validators shared by every configuration object.

Each returns the value to store (ints made floats where a float is meant) or raises ConfigError
with a message that names the field, the allowed range and the value given.
"""

import math
import numbers

from babysit.errors import ConfigError


def _interval(lo, hi, lo_open, hi_open):
    left = "(" if lo_open else "["
    right = ")" if hi_open or hi == math.inf else "]"
    hi_text = "inf" if hi == math.inf else f"{hi:g}"
    return f"{left}{lo:g}, {hi_text}{right}"


def number(name, value, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    """A real number in an interval, returned as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float, e.g. 10**400 written out in JSON
        value = math.inf if value > 0 else -math.inf
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if math.isnan(value) or below or above or math.isinf(value):
        raise ConfigError(f"{name} must be in {_interval(lo, hi, lo_open, hi_open)}, got {value!r}")
    return value


def integer(name, value, lo=None, hi=None):
    """An integer in [lo, hi]; floats such as 64.0 are refused, since they are usually slips."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None:
            raise ConfigError(f"{name} must be an integer >= {lo}, got {value}")
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def boolean(name, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def text(name, value):
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def collect(checks):
    """Run (key, thunk) pairs, returning {key: value} or raising every problem at once."""
    values, problems = {}, []
    for key, thunk in checks:
        try:
            values[key] = thunk()
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    return values


def unknown_keys(section, given, known):
    """One problem per key not in ``known``, with a suggestion when one is close."""
    import difflib

    problems = []
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
            key = repr(str(key))[1:-1]  # a newline or a control character in a key, escaped: one line per problem
            where = f"{section}.{key}" if section else key
            problems.append(f"unknown key '{where}'{hint}")
    return problems
