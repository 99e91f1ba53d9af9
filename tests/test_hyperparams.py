"""HyperParams: one clear message per bad field, boundaries, replace(), diff(), immutability."""

import dataclasses
import math
import re

import pytest

from babysit.errors import ConfigError
from babysit.hyperparams import FIELDS, HyperParams, averaging_window

# field -> (the interval as written in messages, values outside it, values on its edge that are allowed)
INTERVALS = {
    "alpha": ("(0, 10]", [0, -0.1, 10.5, 1e9], [10, 1e-12]),
    "beta": ("[0, 1)", [-0.1, 1, 1.5], [0, 0.999]),
    "beta1": ("[0, 1)", [-0.1, 1, 1.2], [0, 0.999]),
    "beta2": ("[0, 1)", [-0.1, 1, 1.2], [0, 0.9999]),
    "epsilon": ("(0, 1]", [0, -1e-8, 1.5], [1, 1e-300]),
    "learning_rate_decay": ("[0, inf)", [-0.1, -1e-12], [0, 1e6]),
    "lambd": ("[0, inf)", [-0.1, -1e-12], [0, 1e6]),
}
NUMBER_FIELDS = sorted(INTERVALS)
CHOICE_FIELDS = {
    "optimizer": "gd, momentum, rmsprop, adam",
    "decay_schedule": "inverse_time, exponential, staircase, none",
}
WRONG_TYPES = ["0.1", True, False, None, [0.1], {"x": 1}]


def problems_of(**kwargs):
    """The problem lines HyperParams(**kwargs) raises."""
    with pytest.raises(ConfigError) as info:
        HyperParams(**kwargs)
    return info.value.problems


class TestDefaults:
    def test_defaults_are_valid_and_as_documented(self):
        """The defaults build, and are the course's usual starting values."""
        hp = HyperParams()
        assert (hp.optimizer, hp.alpha, hp.beta, hp.beta1, hp.beta2, hp.epsilon) == (
            "adam", 0.01, 0.9, 0.9, 0.999, 1e-8,
        )
        assert (hp.mini_batch_size, hp.learning_rate_decay, hp.decay_schedule, hp.lambd) == (
            64, 0.0, "inverse_time", 0.0,
        )

    def test_fields_lists_every_hyperparameter(self):
        """FIELDS names the ten hyperparameters, lambd included."""
        assert set(FIELDS) == set(INTERVALS) | set(CHOICE_FIELDS) | {"mini_batch_size"}
        assert len(FIELDS) == 10

    def test_integers_become_floats(self):
        """An int given for a real-valued field is stored as float."""
        hp = HyperParams(alpha=1, beta=0, lambd=2)
        assert type(hp.alpha) is float and type(hp.beta) is float and type(hp.lambd) is float

    def test_mini_batch_size_stays_int(self):
        """mini_batch_size is stored as a plain int."""
        assert type(HyperParams(mini_batch_size=32).mini_batch_size) is int


class TestNumberFields:
    @pytest.mark.parametrize(
        "name, value", [(n, v) for n in NUMBER_FIELDS for v in INTERVALS[n][1]]
    )
    def test_out_of_range(self, name, value):
        """An out-of-range value is refused with the field, the interval and the value."""
        interval = INTERVALS[name][0]
        assert problems_of(**{name: value}) == [f"{name} must be in {interval}, got {float(value)!r}"]

    @pytest.mark.parametrize("name, value", [(n, v) for n in NUMBER_FIELDS for v in WRONG_TYPES])
    def test_wrong_type(self, name, value):
        """A string, bool, None, list or dict is refused as not a number."""
        assert problems_of(**{name: value}) == [f"{name} must be a number, got {value!r}"]

    @pytest.mark.parametrize("name", NUMBER_FIELDS)
    def test_nan(self, name):
        """NaN is refused: it compares false with every bound, so it needs its own check."""
        assert problems_of(**{name: math.nan}) == [f"{name} must be in {INTERVALS[name][0]}, got nan"]

    @pytest.mark.parametrize("name", NUMBER_FIELDS)
    @pytest.mark.parametrize("value", [math.inf, -math.inf])
    def test_infinite(self, name, value):
        """±inf is refused, even for fields with no upper bound."""
        assert problems_of(**{name: value}) == [f"{name} must be in {INTERVALS[name][0]}, got {value!r}"]

    @pytest.mark.parametrize("name", NUMBER_FIELDS)
    def test_huge_integer(self, name):
        """An integer too large for a float is refused cleanly rather than raising OverflowError."""
        assert problems_of(**{name: 10**400}) == [f"{name} must be in {INTERVALS[name][0]}, got inf"]

    @pytest.mark.parametrize("name, value", [(n, v) for n in NUMBER_FIELDS for v in INTERVALS[n][2]])
    def test_boundary_accepted(self, name, value):
        """Values on a closed edge of the interval (or just inside an open one) are accepted."""
        assert getattr(HyperParams(**{name: value}), name) == value

    def test_beta1_message_exactly(self):
        """The brief's example message, verbatim."""
        with pytest.raises(ConfigError, match=r"^beta1 must be in \[0, 1\), got 1\.2$"):
            HyperParams(beta1=1.2)

    def test_numpy_scalars_accepted(self):
        """numpy floats and ints are real numbers too, stored as Python types."""
        import numpy as np

        hp = HyperParams(alpha=np.float32(0.5), mini_batch_size=np.int64(16))
        assert hp.alpha == 0.5 and type(hp.alpha) is float
        assert hp.mini_batch_size == 16 and type(hp.mini_batch_size) is int


class TestMiniBatchSize:
    @pytest.mark.parametrize("value", [0, -1, -64])
    def test_below_one(self, value):
        """Zero or negative sizes are refused with the lower bound."""
        assert problems_of(mini_batch_size=value) == [f"mini_batch_size must be an integer >= 1, got {value}"]

    @pytest.mark.parametrize("value", [64.0, 1.5, "64", True, None, math.nan, math.inf])
    def test_not_an_integer(self, value):
        """Floats (even 64.0), strings, bools, None, NaN and inf are not integers."""
        assert problems_of(mini_batch_size=value) == [f"mini_batch_size must be an integer, got {value!r}"]

    @pytest.mark.parametrize("value", [1, 10**9])
    def test_accepted(self, value):
        """1 and a size far above any training set (full batch) are accepted."""
        assert HyperParams(mini_batch_size=value).mini_batch_size == value


class TestChoiceFields:
    @pytest.mark.parametrize("name", sorted(CHOICE_FIELDS))
    @pytest.mark.parametrize("value", ["sgd", "Adam", "", 1, True, None, math.nan, math.inf])
    def test_refused(self, name, value):
        """A name not in the list, or not a string at all, is refused with the options."""
        assert problems_of(**{name: value}) == [f"{name} must be one of {CHOICE_FIELDS[name]}, got {value!r}"]

    @pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
    def test_every_optimizer(self, optimizer):
        """Each of the four optimizers is accepted."""
        assert HyperParams(optimizer=optimizer).optimizer == optimizer

    @pytest.mark.parametrize("schedule", ["inverse_time", "none"])
    def test_additive_schedules(self, schedule):
        """inverse_time and none accept the default rate 0."""
        assert HyperParams(decay_schedule=schedule).decay_schedule == schedule


class TestDecayRate:
    @pytest.mark.parametrize("schedule", ["exponential", "staircase"])
    @pytest.mark.parametrize("rate", [0, -0.5, 1.01, 2])
    def test_multiplicative_outside_0_1(self, schedule, rate):
        """For exponential and staircase the rate is a factor in (0, 1]."""
        assert problems_of(decay_schedule=schedule, learning_rate_decay=rate) == [
            f"learning_rate_decay (for the {schedule} schedule) must be in (0, 1], got {float(rate)!r}"
        ]

    @pytest.mark.parametrize("schedule", ["exponential", "staircase"])
    @pytest.mark.parametrize("rate", [1, 0.5, 1e-9])
    def test_multiplicative_inside(self, schedule, rate):
        """A factor in (0, 1] is accepted, 1 included."""
        assert HyperParams(decay_schedule=schedule, learning_rate_decay=rate).learning_rate_decay == rate

    @pytest.mark.parametrize("schedule", ["inverse_time", "none"])
    def test_additive_any_nonnegative(self, schedule):
        """For inverse_time (and none) any rate >= 0 is accepted, above 1 included."""
        assert HyperParams(decay_schedule=schedule, learning_rate_decay=5).learning_rate_decay == 5.0

    def test_bad_schedule_and_bad_rate(self):
        """An unknown schedule and a negative rate are both reported."""
        problems = problems_of(decay_schedule="cosine", learning_rate_decay=-1)
        assert len(problems) == 2
        assert problems[0].startswith("decay_schedule must be one of")
        assert problems[1] == "learning_rate_decay must be in [0, inf), got -1.0"


class TestSeveralProblems:
    def test_every_bad_field_reported(self):
        """Every bad field gives one line, in field order; the message joins them."""
        with pytest.raises(ConfigError) as info:
            HyperParams(
                optimizer="sgd", alpha=0, beta=1, beta1=1.2, beta2=-1, epsilon=0,
                mini_batch_size=0, learning_rate_decay=-1, decay_schedule="x", lambd=math.nan,
            )
        problems = info.value.problems
        assert [p.split(" ")[0] for p in problems] == [
            "optimizer", "alpha", "beta", "beta1", "beta2", "epsilon",
            "mini_batch_size", "decay_schedule", "learning_rate_decay", "lambd",
        ]
        assert str(info.value) == "\n".join(problems)
        assert "Traceback" not in str(info.value)

    def test_good_fields_not_reported(self):
        """Only the fields that are wrong appear."""
        assert problems_of(alpha=0.5, beta1=1.2, lambd=-1) == [
            "beta1 must be in [0, 1), got 1.2",
            "lambd must be in [0, inf), got -1.0",
        ]

    def test_config_error_is_value_error(self):
        """ConfigError is a ValueError, so generic handlers catch it."""
        with pytest.raises(ValueError):
            HyperParams(alpha=-1)


class TestReplace:
    def test_applies_changes(self):
        """replace returns a new object with the changes; the original is untouched."""
        hp = HyperParams()
        new = hp.replace(alpha=0.5, mini_batch_size=32)
        assert (new.alpha, new.mini_batch_size) == (0.5, 32)
        assert (hp.alpha, hp.mini_batch_size) == (0.01, 64)
        assert new.beta1 == hp.beta1

    def test_validates(self):
        """A bad value in replace raises with the same message as construction."""
        with pytest.raises(ConfigError, match=r"^beta1 must be in \[0, 1\), got 1\.2$"):
            HyperParams().replace(beta1=1.2)

    def test_validates_as_a_whole(self):
        """exponential with the inverse_time rate 2 is refused: the rate's range depends on the schedule."""
        hp = HyperParams(learning_rate_decay=2)
        with pytest.raises(ConfigError, match=r"for the exponential schedule\) must be in \(0, 1\], got 2\.0"):
            hp.replace(decay_schedule="exponential")
        assert hp.replace(decay_schedule="exponential", learning_rate_decay=0.9).learning_rate_decay == 0.9

    def test_unknown_name_with_suggestion(self):
        """A misspelt name is refused with a 'did you mean' hint."""
        with pytest.raises(ConfigError, match=re.escape("unknown key 'alfa' (did you mean 'alpha'?)")):
            HyperParams().replace(alfa=0.1)

    def test_unknown_name_without_close_match(self):
        """A name like nothing known lists the known names."""
        with pytest.raises(ConfigError) as info:
            HyperParams().replace(dropout=0.5)
        assert info.value.problems == [f"unknown key 'dropout' (known: {', '.join(FIELDS)})"]

    def test_several_unknown_names(self):
        """Each unknown name is its own problem, and nothing is applied."""
        with pytest.raises(ConfigError) as info:
            HyperParams().replace(alfa=0.1, beta3=0.5, alpha=0.2)
        assert len(info.value.problems) == 2

    def test_replace_with_nothing(self):
        """replace() with no changes gives an equal object."""
        hp = HyperParams(alpha=0.3)
        assert hp.replace() == hp


class TestDiff:
    def test_names_what_differs(self):
        """diff gives {name: (mine, theirs)} for exactly the fields that differ."""
        a = HyperParams()
        b = a.replace(alpha=0.5, optimizer="gd")
        assert a.diff(b) == {"optimizer": ("adam", "gd"), "alpha": (0.01, 0.5)}
        assert b.diff(a) == {"optimizer": ("gd", "adam"), "alpha": (0.5, 0.01)}

    def test_equal_gives_empty(self):
        """Equal hyperparameters differ in nothing, even when one was given ints."""
        assert HyperParams(alpha=1).diff(HyperParams(alpha=1.0)) == {}


class TestFrozen:
    @pytest.mark.parametrize("name", ["alpha", "optimizer", "lambd"])
    def test_assigning_raises(self, name):
        """Fields cannot be assigned: a live change goes through replace."""
        hp = HyperParams()
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(hp, name, 0.5)
        assert getattr(hp, name) == getattr(HyperParams(), name)

    def test_hashable_and_equal(self):
        """Equal hyperparameters are equal and hash alike."""
        assert HyperParams(alpha=0.5) == HyperParams(alpha=0.5)
        assert hash(HyperParams(alpha=0.5)) == hash(HyperParams(alpha=0.5))
        assert HyperParams(alpha=0.5) != HyperParams(alpha=0.6)

    def test_to_dict(self):
        """to_dict has every field and rebuilds an equal object."""
        hp = HyperParams(alpha=0.2, optimizer="momentum", lambd=0.1)
        d = hp.to_dict()
        assert tuple(d) == FIELDS
        assert HyperParams(**d) == hp


class TestAveragingWindow:
    @pytest.mark.parametrize("beta, window", [(0.9, 10), (0.98, 50), (0.5, 2), (0, 1)])
    def test_one_over_one_minus_beta(self, beta, window):
        """An average with weight beta covers about 1/(1-beta) values."""
        assert averaging_window(beta) == pytest.approx(window)

    def test_beta_one_is_infinite(self):
        """beta = 1 never forgets."""
        assert averaging_window(1.0) == math.inf
