"""Distributions: validated value objects that sample on the right scale, and read back from repr and JSON."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from babysit.distributions import (
    DISTRIBUTIONS,
    Choice,
    Distribution,
    IntUniform,
    LogUniform,
    OneMinusLogUniform,
    Uniform,
    distribution_from_dict,
)
from babysit.errors import ConfigError

NAMESPACE = {cls.__name__: cls for cls in DISTRIBUTIONS.values()}
EXAMPLES = [
    LogUniform(1e-4, 1e-1),
    OneMinusLogUniform(0.9, 0.999),
    Uniform(-1.5, 2.0),
    IntUniform(2, 10),
    Choice(["adam", "momentum", 3, 0.5, True, None]),
]
IDS = [d.kind for d in EXAMPLES]


def problem(build):
    """The one problem line that ``build()`` raises."""
    with pytest.raises(ConfigError) as info:
        build()
    assert len(info.value.problems) == 1, info.value.problems
    assert "\n" not in info.value.problems[0]
    return info.value.problems[0]


def inside(d, value):
    if isinstance(d, Choice):
        return any(type(value) is type(o) and value == o for o in d.options)
    return d.low <= value <= d.high


@pytest.mark.parametrize("d", EXAMPLES, ids=IDS)
class TestEveryDistribution:
    def test_repr_reads_back(self, d):
        """eval(repr(d)) is an equal distribution of the same class."""
        again = eval(repr(d), NAMESPACE)
        assert type(again) is type(d)
        assert again == d

    def test_json_round_trip(self, d):
        """to_dict, through JSON text, then distribution_from_dict gives d back."""
        again = distribution_from_dict(json.loads(json.dumps(d.to_dict())))
        assert again == d
        assert again.to_dict() == d.to_dict()

    def test_file_form_names_the_kind(self, d):
        """to_dict is {kind: arguments}, and the registry maps kind to the class."""
        assert list(d.to_dict()) == [d.kind]
        assert DISTRIBUTIONS[d.kind] is type(d)

    def test_equal_copies_hash_alike(self, d):
        """A copy built from the same arguments is equal, hashes the same, and dedupes in a set."""
        copy = distribution_from_dict(d.to_dict())
        assert copy is not d
        assert copy == d and hash(copy) == hash(d)
        assert len({d, copy}) == 1

    def test_differs_from_every_other_example(self, d):
        """Distributions of other kinds or arguments are not equal to it."""
        for other in EXAMPLES:
            if other is not d:
                assert d != other
        assert d != d.to_dict()

    def test_one_sample_is_a_plain_scalar_in_range(self, d):
        """sample(rng) returns a Python scalar (not a numpy one) that the distribution can produce."""
        rng = np.random.default_rng(0)
        for _ in range(200):
            value = d.sample(rng)
            assert type(value).__module__ == "builtins", type(value)
            assert inside(d, value), value

    def test_many_samples_are_an_array_in_range(self, d):
        """sample(rng, size) returns an array of that shape, every value in range."""
        values = d.sample(np.random.default_rng(1), size=(40, 25))
        assert values.shape == (40, 25)
        assert all(inside(d, v.item() if hasattr(v, "item") else v) for v in values.ravel())

    def test_the_generator_decides(self, d):
        """Generators seeded alike give the same samples; seeded differently, different ones."""
        a = d.sample(np.random.default_rng(5), size=100).tolist()
        b = d.sample(np.random.default_rng(5), size=100).tolist()
        c = d.sample(np.random.default_rng(6), size=100).tolist()
        assert a == b
        assert a != c


class TestLogUniform:
    def test_properties(self):
        """kind, log_scale, low and high as the page reads them."""
        d = LogUniform(1e-4, 0.1)
        assert (d.kind, d.log_scale, d.low, d.high) == ("log_uniform", True, 1e-4, 0.1)
        assert repr(d) == "LogUniform(0.0001, 0.1)"

    @pytest.mark.parametrize("lo, hi", [(0, 0.1), (-1e-3, 0.1), (0.1, 0.1), (0.1, 1e-4)])
    def test_needs_positive_increasing_bounds(self, lo, hi):
        """lo <= 0 or lo >= hi is refused, naming the rule and the values given."""
        assert problem(lambda: LogUniform(lo, hi)) == f"log_uniform needs 0 < lo < hi, got [{lo!r}, {hi!r}]"

    def test_message_as_written_in_a_file(self):
        """The example from the brief reads as the user wrote it."""
        assert problem(lambda: LogUniform(0, 0.1)) == "log_uniform needs 0 < lo < hi, got [0, 0.1]"

    @pytest.mark.parametrize("lo, hi", [("0.001", 0.1), (True, 10), (1e-4, math.inf), (math.nan, 0.1), (None, 1)])
    def test_needs_finite_numbers(self, lo, hi):
        """Strings, booleans, infinities and NaN are not bounds."""
        assert problem(lambda: LogUniform(lo, hi)).startswith("log_uniform needs 0 < lo < hi, got [")

    def test_uniform_in_log10(self):
        """log10 of 5,000 samples passes a KS test against uniform(log10 lo, log10 hi)."""
        x = LogUniform(1e-4, 1e-1).sample(np.random.default_rng(42), 5000)
        assert stats.kstest(np.log10(x), "uniform", args=(-4, 3)).pvalue > 0.01

    def test_ks_test_catches_a_linear_sampler(self):
        """Negative control: plain uniform samples over the same range fail that KS test hard."""
        x = np.random.default_rng(42).uniform(1e-4, 1e-1, 5000)
        assert stats.kstest(np.log10(x), "uniform", args=(-4, 3)).pvalue < 1e-6

    def test_each_decade_a_third(self):
        """Over 1e-4 … 1e-1, each of the three decades gets about a third of the samples."""
        x = LogUniform(1e-4, 1e-1).sample(np.random.default_rng(3), 30_000)
        shares = [np.mean((x >= 10.0**k) & (x < 10.0 ** (k + 1))) for k in (-4, -3, -2)]
        assert all(abs(s - 1 / 3) < 0.02 for s in shares), shares


class TestOneMinusLogUniform:
    def test_properties(self):
        """log_scale is True and low/high are in beta's terms."""
        d = OneMinusLogUniform(0.9, 0.999)
        assert (d.kind, d.log_scale, d.low, d.high) == ("one_minus_log_uniform", True, 0.9, 0.999)

    @pytest.mark.parametrize("lo, hi", [(0.9, 1.0), (-0.1, 0.9), (0.99, 0.9), (0.9, 0.9), (0.5, 1.5)])
    def test_needs_bounds_in_zero_one(self, lo, hi):
        """Anything but 0 <= lo < hi < 1 is refused."""
        assert problem(lambda: OneMinusLogUniform(lo, hi)) == (
            f"one_minus_log_uniform needs 0 <= lo < hi < 1, got [{lo!r}, {hi!r}]")

    def test_zero_is_a_valid_low_end(self):
        """lo = 0 is allowed: 1 - 0 = 1 has a logarithm."""
        values = OneMinusLogUniform(0, 0.99).sample(np.random.default_rng(0), 1000)
        assert values.min() >= 0 and values.max() <= 0.99

    def test_uniform_in_log10_of_one_minus(self):
        """log10(1 - beta) of 5,000 samples passes a KS test against uniform(log10(1-hi), log10(1-lo))."""
        beta = OneMinusLogUniform(0.9, 0.999).sample(np.random.default_rng(42), 5000)
        a, b = math.log10(1 - 0.999), math.log10(1 - 0.9)
        assert stats.kstest(np.log10(1 - beta), "uniform", args=(a, b - a)).pvalue > 0.01

    def test_log_uniform_of_beta_itself_fails_that_test(self):
        """Negative control: beta sampled log-uniformly (the wrong quantity on log scale) fails it."""
        beta = LogUniform(0.9, 0.999).sample(np.random.default_rng(42), 5000)
        a, b = math.log10(1 - 0.999), math.log10(1 - 0.9)
        assert stats.kstest(np.log10(1 - beta), "uniform", args=(a, b - a)).pvalue < 1e-6

    def test_the_seeds_point(self):
        """0.9 … 0.999: as many samples in 0.99 … 0.999 as in 0.9 … 0.99, within a few percent."""
        beta = OneMinusLogUniform(0.9, 0.999).sample(np.random.default_rng(7), 20_000)
        top = np.mean(beta > 0.99)
        assert abs(top - 0.5) < 0.02, top

    def test_uniform_beta_crowds_the_bottom_decade(self):
        """The contrast: uniform 0.9 … 0.999 puts ~91% (0.09 / 0.099) of the samples in 0.9 … 0.99."""
        beta = Uniform(0.9, 0.999).sample(np.random.default_rng(7), 20_000)
        assert abs(np.mean(beta <= 0.99) - 0.09 / 0.099) < 0.01


class TestUniform:
    def test_properties(self):
        """Not on a log scale; low and high as given, as floats."""
        d = Uniform(0, 1)
        assert (d.kind, d.log_scale, d.low, d.high) == ("uniform", False, 0.0, 1.0)
        assert repr(d) == "Uniform(0.0, 1.0)"

    @pytest.mark.parametrize("lo, hi", [(1, 1), (2, 1), ("a", 1), (0, math.inf)])
    def test_needs_increasing_finite_bounds(self, lo, hi):
        """lo >= hi or a bound that is not a finite number is refused."""
        assert problem(lambda: Uniform(lo, hi)) == f"uniform needs lo < hi, got [{lo!r}, {hi!r}]"

    def test_range_must_fit_a_float(self):
        """A range wider than the largest float is refused (numpy could not draw from it)."""
        assert "narrower than 1.8e308" in problem(lambda: Uniform(-1e308, 1e308))

    def test_uniform_on_the_line(self):
        """5,000 samples pass a KS test against uniform(lo, hi)."""
        x = Uniform(-1.5, 2.0).sample(np.random.default_rng(42), 5000)
        assert stats.kstest(x, "uniform", args=(-1.5, 3.5)).pvalue > 0.01


class TestIntUniform:
    def test_properties(self):
        """Not on a log scale; integer low and high."""
        d = IntUniform(2, 10)
        assert (d.kind, d.log_scale, d.low, d.high) == ("int_uniform", False, 2, 10)
        assert repr(d) == "IntUniform(2, 10)"

    @pytest.mark.parametrize("lo, hi", [(2.0, 10), (2, 10.5), (True, 3), (5, 4), ("2", 10)])
    def test_needs_integers_in_order(self, lo, hi):
        """Floats (even 2.0), booleans, strings and lo > hi are refused."""
        assert problem(lambda: IntUniform(lo, hi)) == f"int_uniform needs integers lo <= hi, got [{lo!r}, {hi!r}]"

    def test_bounds_must_fit_64_bits(self):
        """Bounds beyond 64-bit integers are refused (numpy draws int64)."""
        assert "within [-2**63, 2**63 - 1]" in problem(lambda: IntUniform(1, 2**70))
        assert IntUniform(-(2**63), 2**63 - 1).sample(np.random.default_rng(0)) is not None

    def test_one_value_range(self):
        """lo == hi is allowed and always gives that integer."""
        assert set(IntUniform(3, 3).sample(np.random.default_rng(0), 50).tolist()) == {3}

    def test_both_ends_hit_and_roughly_uniform(self):
        """Every integer in 2 … 10, ends included, appears; counts pass a chi-square test."""
        values = IntUniform(2, 10).sample(np.random.default_rng(11), 9000)
        counts = np.array([np.sum(values == k) for k in range(2, 11)])
        assert counts.sum() == 9000  # nothing outside 2 … 10
        assert counts.min() > 0
        assert stats.chisquare(counts).pvalue > 0.01

    def test_samples_are_ints(self):
        """One sample is a Python int, an array is of integer dtype."""
        rng = np.random.default_rng(0)
        assert type(IntUniform(2, 10).sample(rng)) is int
        assert np.issubdtype(IntUniform(2, 10).sample(rng, 5).dtype, np.integer)


class TestChoice:
    def test_properties(self):
        """options kept in order; no log scale; no low or high."""
        d = Choice(["adam", "momentum"])
        assert d.options == ("adam", "momentum")
        assert (d.kind, d.log_scale, d.low, d.high) == ("choice", False, None, None)
        assert repr(d) == "Choice(['adam', 'momentum'])"

    @pytest.mark.parametrize(
        "options, words",
        [
            ([], "non-empty list"),
            ("adam", "non-empty list"),
            (None, "non-empty list"),
            ([[1, 2]], "strings, finite numbers"),
            ([{"a": 1}], "strings, finite numbers"),
            ([math.nan], "strings, finite numbers"),
            (["adam", "adam"], "'adam' more than once"),
        ],
    )
    def test_bad_options(self, options, words):
        """Empty or non-list options, non-scalars, NaN and repeats are refused."""
        assert words in problem(lambda: Choice(options))

    def test_covers_every_option_evenly(self):
        """Every option is drawn, each about equally often."""
        d = Choice([32, 64, 128, 256])
        values = d.sample(np.random.default_rng(2), 8000).tolist()
        counts = [values.count(o) for o in d.options]
        assert min(counts) > 0 and sum(counts) == 8000
        assert stats.chisquare(counts).pvalue > 0.01

    def test_options_keep_their_types(self):
        """1, 1.0 and True are different options: equal-looking choices of them are not equal."""
        assert Choice([1]) != Choice([1.0])
        assert Choice([1]) != Choice([True])
        assert Choice([1, 1.0, True]).options == (1, 1.0, True)
        assert type(Choice([64]).sample(np.random.default_rng(0))) is int

    def test_numpy_options_become_plain(self):
        """numpy scalars given as options are kept as plain Python values."""
        d = Choice([np.int64(32), np.float64(0.5)])
        assert d == Choice([32, 0.5])
        assert [type(o) for o in d.options] == [int, float]


class TestFromDict:
    @pytest.mark.parametrize(
        "d, words",
        [
            ([1e-4, 0.1], "an object with one key"),
            ({}, "an object with one key"),
            ({"log_uniform": [1e-4, 0.1], "uniform": [0, 1]}, "an object with one key"),
            ({"loguniform": [1e-4, 0.1]}, "unknown distribution 'loguniform' (did you mean 'log_uniform'?)"),
            ({"gauss": [0, 1]}, "known: log_uniform, one_minus_log_uniform, uniform, int_uniform, choice"),
            ({"uniform": [0]}, "uniform needs [lo, hi], got [0]"),
            ({"int_uniform": 3}, "int_uniform needs [lo, hi], got 3"),
            ({"choice": "adam"}, "choice needs a non-empty list"),
            ({"log_uniform": [0.1, 0.01]}, "log_uniform needs 0 < lo < hi, got [0.1, 0.01]"),
        ],
    )
    def test_malformed(self, d, words):
        """Each malformed file form is refused with one line saying what is wrong."""
        assert words in problem(lambda: distribution_from_dict(d))

    def test_registry_lists_every_kind(self):
        """DISTRIBUTIONS holds the five kinds, each a Distribution."""
        assert list(DISTRIBUTIONS) == ["log_uniform", "one_minus_log_uniform", "uniform", "int_uniform", "choice"]
        assert all(issubclass(cls, Distribution) for cls in DISTRIBUTIONS.values())
