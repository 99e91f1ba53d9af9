"""Hyperparameter widgets, each on the scale its hyperparameter deserves.

- alpha on a log scale, ten notches a decade from 10⁻⁵ to 10;
- beta, beta1, beta2 through 1 − β on a log scale, each shown with its averaging window
  (β = 0.9 ≈ the last 10 steps, 0.999 ≈ 1000): the seed's point that 0.9 → 0.905 barely matters
  while 0.999 → 0.9995 doubles the window;
- epsilon on a log scale; the mini-batch size in powers of two, any integer accepted;
- the decay schedule and rate, with a preview of alpha over the coming epochs.

``hyperparameter_controls`` draws them all for a HyperParams and returns the values chosen; with
``on_change`` it calls back with (name, value) as soon as one moves, which is how the page steers a
live run.
"""

import math

import streamlit as st

from babysit.hyperparams import HyperParams, averaging_window
from models.optimizers import OPTIMIZERS
from models.schedules import MULTIPLICATIVE, SCHEDULES


def _sig(x, digits=3):
    return float(f"{x:.{digits}g}")


def log_grid(lo_exp, hi_exp, per_decade):
    """10^lo … 10^hi, ``per_decade`` values a decade, rounded to 3 significant digits."""
    return [_sig(10 ** (k / per_decade)) for k in range(lo_exp * per_decade, hi_exp * per_decade + 1)]


ALPHA_GRID = log_grid(-5, 1, 10)
EPSILON_GRID = log_grid(-12, 0, 1)
# β from 0 up to 1 - 10⁻⁴, with 1 - β ten notches a decade below 0.5
BETA_GRID = [0.0] + sorted({_sig(1 - 10 ** (-k / 10), 6) for k in range(3, 41)})
BATCH_GRID = [2**k for k in range(13)]


def with_value(options, value):
    """The options with ``value`` among them, so a value set elsewhere (a config, a probe) shows as is."""
    return sorted(set(options) | {value})


def window_text(beta):
    window = averaging_window(beta)
    return "no averaging" if beta == 0 else f"≈ averages the last {window:,.0f} steps"


def _start(key, value):
    """Widgets take their value from session state, set once here (never also through ``value=``)."""
    return st.session_state.setdefault(key, value)


def _options(grid, value, key):
    return with_value(with_value(grid, value), _start(key, value))


def alpha_control(value, key, **widget):
    return st.select_slider("α, learning rate", options=_options(ALPHA_GRID, value, key),
                            format_func=lambda a: f"{a:.3g}", key=key,
                            help="Log scale: each notch multiplies α by 1.26; ten notches make a decade.", **widget)


def beta_control(label, value, key, **widget):
    chosen = st.select_slider(label, options=_options(BETA_GRID, value, key), format_func=lambda b: f"{b:.6g}",
                              key=key, help="Moves 1 − β on a log scale, the scale on which β matters.", **widget)
    st.caption(f"{label.split(',')[0]} = {chosen:.6g} {window_text(chosen)}")
    return chosen


def epsilon_control(value, key, **widget):
    return st.select_slider("ε", options=_options(EPSILON_GRID, value, key), format_func=lambda e: f"{e:.0e}",
                            key=key, help="Log scale.", **widget)


def batch_control(value, key, **widget):
    _start(key, int(value))
    return st.number_input("mini-batch size", min_value=1, max_value=10_000_000, step=1, key=key,
                           help="Powers of two are usual (32, 64, 128 …); any whole number works. Larger than "
                                "the training set means full batch.", **widget)


def hyperparameter_controls(hp, key_prefix, on_change=None):
    """Draw every live hyperparameter of ``hp`` (the values a widget shows start from it); returns
    {name: value}. With ``on_change(name, value)``, each widget calls it when the user moves it."""
    values = {}

    def hook(name):
        if on_change is None:
            return {}
        key = f"{key_prefix}{name}"
        return {"on_change": lambda: on_change(name, st.session_state[key])}

    def key(name):
        return f"{key_prefix}{name}"

    _start(key("optimizer"), hp.optimizer)
    values["optimizer"] = st.selectbox("optimizer", list(OPTIMIZERS), key=key("optimizer"), **hook("optimizer"))
    values["alpha"] = alpha_control(hp.alpha, key("alpha"), **hook("alpha"))
    optimizer = values["optimizer"]
    if optimizer == "momentum":
        values["beta"] = beta_control("β, momentum", hp.beta, key("beta"), **hook("beta"))
    if optimizer == "adam":
        values["beta1"] = beta_control("β1, Adam's first moment", hp.beta1, key("beta1"), **hook("beta1"))
    if optimizer in ("adam", "rmsprop"):
        values["beta2"] = beta_control("β2, second moment", hp.beta2, key("beta2"), **hook("beta2"))
        values["epsilon"] = epsilon_control(hp.epsilon, key("epsilon"), **hook("epsilon"))
    values["mini_batch_size"] = batch_control(hp.mini_batch_size, key("mini_batch_size"), **hook("mini_batch_size"))
    _start(key("lambd"), float(hp.lambd))
    values["lambd"] = st.number_input("λ, L2 strength", min_value=0.0, step=0.01, format="%.4g", key=key("lambd"),
                                      **hook("lambd"))
    _start(key("decay_schedule"), hp.decay_schedule)
    values["decay_schedule"] = st.selectbox("learning-rate decay", list(SCHEDULES), key=key("decay_schedule"),
                                            **hook("decay_schedule"))
    _start(key("learning_rate_decay"), float(hp.learning_rate_decay))
    values["learning_rate_decay"] = st.number_input(
        "decay rate", min_value=0.0, step=0.01, format="%.4g", key=key("learning_rate_decay"),
        **hook("learning_rate_decay"),
        help="inverse_time: α / (1 + rate · epoch). exponential: α · rate^epoch, rate in (0, 1]. "
             "staircase: α · rate^floor(epoch / 10).")
    return values


def resolved(hp, values):
    """The HyperParams the controls describe, with a decay rate fitted to a newly chosen schedule."""
    values = dict(values)
    if values.get("decay_schedule") in MULTIPLICATIVE and not 0 < values.get("learning_rate_decay", 0) <= 1:
        values["learning_rate_decay"] = 0.95
    return hp.replace(**values)


def steering_change(hp, name, value):
    """What to send when the user moves ``name`` to ``value`` on a live run: the schedule and its rate
    travel together when the rate would not fit the new schedule."""
    if name == "decay_schedule" and value in MULTIPLICATIVE and not 0 < hp.learning_rate_decay <= 1:
        return {"decay_schedule": value, "learning_rate_decay": 0.95}
    if name == "mini_batch_size":
        value = int(value)
    if isinstance(value, float) and math.isnan(value):
        value = getattr(hp, name)
    return {name: value}


def sync_widgets(hp, key_prefix, seen_key, pending=()):
    """Make the widgets show ``hp`` wherever it changed since they were last drawn (a guardrail, a
    probe's "use it", a rewind), leaving alone what the user has moved and not yet seen applied:
    the names in ``pending`` (sets on their way to the run), and widgets that show the value already
    (writing one would reset the browser's widget, undoing a key press made meanwhile)."""
    seen = st.session_state.get(seen_key) or {}  # {name: value} as last drawn
    shown = dict(seen)
    for name in HyperParams.__dataclass_fields__:
        value = getattr(hp, name)
        if name in seen and seen[name] == value:
            continue
        if name in pending:  # looked at again once it has landed (a snapshot can show both at once)
            continue
        shown[name] = value
        floats = ("lambd", "learning_rate_decay")  # number inputs keep the type they were made with
        value = float(value) if name in floats else value
        if st.session_state.get(f"{key_prefix}{name}") != value:
            st.session_state[f"{key_prefix}{name}"] = value
    st.session_state[seen_key] = shown
