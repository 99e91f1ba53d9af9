"""Search spaces: the file form, every validation problem at once, points from a seed, trials' configs,
the ``babysit sample`` command and the page's preview helpers."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from babysit.cli import main
from babysit.config import ModelConfig, RunConfig
from babysit.distributions import Choice, IntUniform, LogUniform, OneMinusLogUniform, Uniform
from babysit.errors import ConfigError
from babysit.hyperparams import FIELDS as HP_FIELDS
from babysit.space import (
    DEFAULT_SPACE,
    NAMES,
    SearchSpace,
    averaging_window,
    load_space,
    parse_space,
    per_decade,
    points_csv,
    warnings,
)

BASE = {
    "seed": 11,
    "data": {"name": "moons", "n_samples": 200, "noise": 0.1},
    "model": {"layers": [8], "activation": "tanh", "lambd": 0.0, "dtype": "float64"},
    "hyperparameters": {"optimizer": "adam", "alpha": 0.01},
}
EVERY_NAME = {
    "optimizer": {"choice": ["momentum", "rmsprop", "adam"]},
    "alpha": {"log_uniform": [1e-4, 1e-1]},
    "beta": {"one_minus_log_uniform": [0.8, 0.99]},
    "beta1": {"one_minus_log_uniform": [0.8, 0.95]},
    "beta2": {"one_minus_log_uniform": [0.99, 0.9999]},
    "epsilon": {"log_uniform": [1e-10, 1e-6]},
    "mini_batch_size": {"choice": [32, 64, 128]},
    "learning_rate_decay": {"uniform": [0.5, 1.0]},
    "decay_schedule": {"choice": ["inverse_time", "exponential", "staircase", "none"]},
    "lambd": {"log_uniform": [1e-5, 1e-1]},
    "L": {"int_uniform": [1, 5]},
    "width": {"int_uniform": [4, 64]},
    "activation": {"choice": ["relu", "tanh", "sigmoid"]},
    "base": BASE,
}
TRACEBACK_WORDS = ("Traceback", "Error:", "File \"", "KeyError", "TypeError", "AttributeError")


def problems(d):
    """The problem lines SearchSpace.from_dict raises for ``d``, each checked to be one clean line."""
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_dict(d)
    lines = info.value.problems
    assert str(info.value) == "\n".join(lines)
    for line in lines:
        assert "\n" not in line
        assert not any(word in line for word in TRACEBACK_WORDS), line
    return lines


def one_problem(d):
    lines = problems(d)
    assert len(lines) == 1, lines
    return lines[0]


def write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


class TestFileForm:
    def test_every_name_round_trips(self):
        """from_dict(s.to_dict()) == s for a space using every name and a base, through JSON text."""
        s = SearchSpace.from_dict(EVERY_NAME)
        again = SearchSpace.from_dict(json.loads(json.dumps(s.to_dict())))
        assert again == s
        assert again.to_dict() == s.to_dict()

    def test_names_keep_file_order(self):
        """distributions and to_dict keep the names in the order of the file, base last."""
        s = SearchSpace.from_dict(EVERY_NAME)
        assert list(s.distributions) == [k for k in EVERY_NAME if k != "base"]
        assert list(s.to_dict()) == list(EVERY_NAME)

    def test_values_reach_the_right_objects(self):
        """Each distribution and the base are parsed into the expected objects."""
        s = SearchSpace.from_dict(EVERY_NAME)
        assert s.distributions["alpha"] == LogUniform(1e-4, 1e-1)
        assert s.distributions["beta"] == OneMinusLogUniform(0.8, 0.99)
        assert s.distributions["learning_rate_decay"] == Uniform(0.5, 1.0)
        assert s.distributions["L"] == IntUniform(1, 5)
        assert s.distributions["activation"] == Choice(["relu", "tanh", "sigmoid"])
        assert s.base == RunConfig.from_dict(BASE)

    def test_base_defaults_to_babysits_default(self):
        """Without "base", the base is RunConfig(): moons with every default."""
        s = SearchSpace.from_dict({"alpha": {"log_uniform": [1e-4, 1e-1]}})
        assert s.base == RunConfig()
        assert s.base.data.name == "moons"

    def test_default_space_follows_the_seed(self):
        """alpha log_uniform 1e-4 … 1e-1, beta one_minus_log_uniform 0.9 … 0.999, L int_uniform 2 … 4."""
        assert DEFAULT_SPACE.distributions == {
            "alpha": LogUniform(1e-4, 1e-1),
            "beta": OneMinusLogUniform(0.9, 0.999),
            "L": IntUniform(2, 4),
        }
        assert DEFAULT_SPACE.base.data == RunConfig().data
        assert DEFAULT_SPACE.base.hyperparameters.optimizer == "momentum"  # the optimizer that reads beta
        assert SearchSpace.from_dict(DEFAULT_SPACE.to_dict()) == DEFAULT_SPACE

    def test_load_space(self, tmp_path):
        """load_space reads and validates a file."""
        path = write(tmp_path / "space.json", EVERY_NAME)
        assert load_space(path) == SearchSpace.from_dict(EVERY_NAME)

    def test_load_space_file_errors(self, tmp_path):
        """A missing file, invalid JSON and NaN are one line each, naming the file."""
        with pytest.raises(ConfigError, match="no such file"):
            load_space(tmp_path / "missing.json")
        with pytest.raises(ConfigError) as info:
            load_space(write(tmp_path / "broken.json", '{"alpha": '))
        assert info.value.problems[0].startswith(f"{tmp_path / 'broken.json'}: not valid JSON")
        with pytest.raises(ConfigError, match="NaN is not a valid number"):
            parse_space('{"alpha": {"uniform": [NaN, 1]}}')

    def test_load_space_locates_problems(self, tmp_path):
        """Problems in a file are prefixed with its path."""
        path = write(tmp_path / "space.json", {"alpha": {"log_uniform": [0, 0.1]}})
        with pytest.raises(ConfigError) as info:
            load_space(path)
        assert info.value.problems == [f"{path}: alpha: log_uniform needs 0 < lo < hi, got [0, 0.1]"]


class TestValidation:
    def test_unknown_name_with_a_hint(self):
        """A misspelt name is refused with a did-you-mean hint, and nothing else is said."""
        assert one_problem({"alhpa": {"log_uniform": [1e-4, 0.1]}}) == "unknown key 'alhpa' (did you mean 'alpha'?)"

    def test_malformed_distribution(self):
        """A malformed distribution is refused, located at its name."""
        assert one_problem({"alpha": {"log_uniform": [0, 0.1]}}) == "alpha: log_uniform needs 0 < lo < hi, got [0, 0.1]"
        assert "did you mean 'log_uniform'" in one_problem({"alpha": {"loguniform": [1e-4, 0.1]}})

    def test_fixed_value_is_not_a_distribution(self):
        """A bare value is refused with the hint that fixed values belong in base."""
        assert "a fixed value belongs in base" in one_problem({"alpha": 0.01})

    def test_beta_beyond_one(self):
        """beta uniform [0.5, 1.2] is refused: 1.2 is outside [0, 1)."""
        assert one_problem({"beta": {"uniform": [0.5, 1.2]}}) == (
            "beta: uniform [0.5, 1.2] can produce 1.2: beta must be in [0, 1), got 1.2")

    def test_beta_reaching_one(self):
        """beta1 uniform [0.9, 1] is refused too: 1 itself is not allowed."""
        assert "beta1 must be in [0, 1), got 1.0" in one_problem({"beta1": {"uniform": [0.9, 1]}})

    def test_alpha_reaching_zero(self):
        """alpha uniform [0, 0.1] is refused: alpha must be positive."""
        assert "alpha must be in (0, 10], got 0.0" in one_problem({"alpha": {"uniform": [0, 0.1]}})

    def test_L_below_one(self):
        """L int_uniform [0, 3] is refused: L must be at least 1."""
        assert one_problem({"L": {"int_uniform": [0, 3]}}) == (
            "L: int_uniform [0, 3] can produce 0: L must be an integer in [1, 51], got 0")

    def test_width_out_of_range(self):
        """width int_uniform [0, 8] is refused."""
        assert "width must be an integer in [1, 100000], got 0" in one_problem({"width": {"int_uniform": [0, 8]}})

    @pytest.mark.parametrize("name", ["mini_batch_size", "L", "width"])
    def test_integer_names_refuse_real_distributions(self, name):
        """Integer names refuse uniform and log_uniform even with integer ends."""
        assert one_problem({name: {"uniform": [16, 64]}}) == (
            f"{name}: must be an integer, so int_uniform or a choice of integers, not uniform")
        assert "not log_uniform" in one_problem({name: {"log_uniform": [16, 64]}})

    def test_integer_names_refuse_float_options(self):
        """mini_batch_size choice [32, 64.0] is refused: 64.0 is not an integer."""
        assert "mini_batch_size must be an integer, got 64.0" in one_problem(
            {"mini_batch_size": {"choice": [32, 64.0]}})

    @pytest.mark.parametrize("name", ["optimizer", "decay_schedule", "activation"])
    def test_categorical_names_need_a_choice(self, name):
        """optimizer, decay_schedule and activation accept only a choice."""
        assert f"{name}: int_uniform cannot sample {name}; use a choice" in one_problem(
            {name: {"int_uniform": [0, 2]}})

    def test_unknown_option(self):
        """An option the name does not allow is refused, naming the allowed ones."""
        assert one_problem({"activation": {"choice": ["relu", "elu"]}}) == (
            "activation: choice [\"relu\", \"elu\"] can produce 'elu': "
            "activation must be one of relu, tanh, sigmoid, got 'elu'")

    def test_decay_rate_checked_against_the_bases_schedule(self):
        """With the base on the exponential schedule, learning_rate_decay up to 2 is refused at 2."""
        base = {"hyperparameters": {"decay_schedule": "exponential", "learning_rate_decay": 0.5}}
        assert one_problem({"learning_rate_decay": {"uniform": [0.5, 2]}, "base": base}) == (
            "learning_rate_decay: uniform [0.5, 2] can produce 2.0: "
            "learning_rate_decay (for the exponential schedule) must be in (0, 1], got 2.0")

    def test_sampling_both_schedule_and_rate_is_allowed(self):
        """When both are sampled the space loads; each combination is judged by config_for."""
        s = SearchSpace.from_dict({"decay_schedule": {"choice": ["exponential", "none"]},
                                   "learning_rate_decay": {"uniform": [0, 2]}})
        assert set(s.names) == {"decay_schedule", "learning_rate_decay"}

    def test_base_problems_are_prefixed(self):
        """Problems of the base are located inside it: base.…, and unknown keys as 'base.…'."""
        lines = problems({"alpha": {"log_uniform": [1e-4, 0.1]},
                          "base": {"seed": -1, "modle": {}, "hyperparameters": {"alpha": 0}}})
        assert lines == [
            "unknown key 'base.modle' (did you mean 'model'?)",
            "base.seed must be an integer in [0, 4294967295], got -1",
            "base.hyperparameters.alpha must be in (0, 10], got 0.0",
        ]

    def test_base_must_be_an_object(self):
        """A base that is not an object is one line."""
        assert one_problem({"alpha": {"log_uniform": [1e-4, 0.1]}, "base": [1]}) == (
            "base must be a run config object, got [1]")

    def test_schedule_overriding_a_sampled_name(self):
        """A base schedule that sets a sampled name is refused: it would replace each trial's value."""
        base = {"schedule": [{"step": 5, "set": {"alpha": 0.1}}]}
        assert one_problem({"alpha": {"log_uniform": [1e-4, 0.1]}, "base": base}) == (
            "base.schedule[0] sets alpha, which the space samples: each trial's value would be replaced at step 5")

    def test_empty_space(self):
        """A space that samples nothing is refused."""
        assert one_problem({}).startswith("a search space needs at least one name to sample")
        assert one_problem({"base": {}}).startswith("a search space needs at least one name to sample")

    def test_not_an_object(self):
        """A JSON list is not a space."""
        assert one_problem([1, 2]) == "a search space must be a JSON object, got list"

    def test_every_problem_at_once(self):
        """Each problem of a file full of them is reported, one line each, in one ConfigError."""
        lines = problems({
            "alhpa": {"log_uniform": [1e-4, 0.1]},
            "alpha": {"log_uniform": [0, 0.1]},
            "beta": {"uniform": [0.5, 1.2]},
            "L": {"int_uniform": [0, 3]},
            "mini_batch_size": {"uniform": [16, 64]},
            "optimizer": {"choice": ["adam", "sgd"]},
            "width": 5,
            "base": {"seed": -1},
        })
        assert len(lines) == 8, lines
        for words in ("'alhpa'", "alpha: log_uniform", "beta: uniform", "L: int_uniform", "mini_batch_size:",
                      "'sgd'", "width:", "base.seed"):
            assert sum(words in line for line in lines) == 1, (words, lines)

    def test_built_directly_is_validated(self):
        """SearchSpace(...) in Python validates as the file does."""
        with pytest.raises(ConfigError, match="beta must be in"):
            SearchSpace({"beta": Uniform(0.5, 1.2)})
        with pytest.raises(ConfigError, match="unknown key 'lr'"):
            SearchSpace({"lr": LogUniform(1e-4, 0.1)})
        with pytest.raises(ConfigError, match="expected a distribution"):
            SearchSpace({"alpha": 0.01})

    def test_every_name_is_accepted(self):
        """Every HyperParams field plus L, width and activation is a name."""
        assert set(NAMES) == {*HP_FIELDS, "L", "width", "activation"}


class TestConfigFor:
    space = SearchSpace.from_dict(EVERY_NAME)

    def test_layers_from_L_and_width(self):
        """L = 3 and width = 32 give two hidden layers of 32."""
        c = self.space.config_for({"L": 3, "width": 32})
        assert c.model.layers == (32, 32)
        assert c.model.L == 3

    def test_L_alone_uses_the_bases_width(self):
        """L alone repeats the base's first hidden width."""
        assert self.space.config_for({"L": 4}).model.layers == (8, 8, 8)

    def test_width_alone_keeps_the_bases_depth(self):
        """width alone resizes every hidden layer of the base."""
        s = SearchSpace.from_dict({"width": {"int_uniform": [4, 64]}})  # base layers (16, 16)
        assert s.config_for({"width": 5}).model.layers == (5, 5)

    def test_width_defaults_to_16_without_hidden_layers(self):
        """With a base of no hidden layers, L alone gives hidden layers of 16."""
        s = SearchSpace({"L": IntUniform(1, 3)}, RunConfig(model=ModelConfig(layers=())))
        assert s.config_for({"L": 3}).model.layers == (16, 16)

    def test_L_one_is_logistic_regression(self):
        """L = 1 means no hidden layer."""
        assert self.space.config_for({"L": 1, "width": 32}).model.layers == ()

    def test_hyperparameters_and_activation_set(self):
        """Every hyperparameter of the point replaces the base's, lambd included; activation is set."""
        point = {"optimizer": "momentum", "alpha": 0.003, "beta": 0.95, "mini_batch_size": 32, "lambd": 0.01,
                 "activation": "sigmoid"}
        c = self.space.config_for(point)
        assert c.hyperparameters == RunConfig.from_dict(BASE).hyperparameters.replace(
            optimizer="momentum", alpha=0.003, beta=0.95, mini_batch_size=32, lambd=0.01)
        assert c.model.activation == "sigmoid"

    def test_everything_else_is_the_bases(self):
        """Seed, data, dtype and schedule are the base's: trials differ only in their hyperparameters."""
        base = RunConfig.from_dict({**BASE, "schedule": [{"step": 9, "set": {"alpha": 0.001}}]})
        s = SearchSpace({"L": IntUniform(2, 4)}, base)
        c = s.config_for({"L": 2})
        assert c.seed == 11
        assert c.data == base.data
        assert c.model.dtype == base.model.dtype
        assert c.schedule == base.schedule
        assert c.hyperparameters == base.hyperparameters

    def test_every_sampled_point_makes_a_config(self):
        """Points of a space whose names cannot clash all make valid configs carrying their values."""
        for point in DEFAULT_SPACE.sample_points(20, 0):
            c = DEFAULT_SPACE.config_for(point)
            assert c.hyperparameters.alpha == point["alpha"]
            assert c.hyperparameters.beta == point["beta"]
            assert c.model.L == point["L"]

    def test_invalid_combination_names_the_point(self):
        """The exponential schedule with learning_rate_decay 2 raises ConfigError naming the point."""
        s = SearchSpace.from_dict({"decay_schedule": {"choice": ["exponential", "none"]},
                                   "learning_rate_decay": {"uniform": [0, 2]}})
        with pytest.raises(ConfigError) as info:
            s.config_for({"decay_schedule": "exponential", "learning_rate_decay": 2.0})
        assert info.value.problems == [
            "point {decay_schedule='exponential', learning_rate_decay=2.0}: "
            "learning_rate_decay (for the exponential schedule) must be in (0, 1], got 2.0"
        ]
        assert s.config_for({"decay_schedule": "none", "learning_rate_decay": 2.0}).hyperparameters.\
            learning_rate_decay == 2.0

    def test_bad_points(self):
        """Unknown names, L = 0 and a bad width are refused."""
        with pytest.raises(ConfigError, match="unknown key 'alhpa'"):
            self.space.config_for({"alhpa": 0.1})
        with pytest.raises(ConfigError, match="L must be an integer in"):
            self.space.config_for({"L": 0})
        with pytest.raises(ConfigError, match="width must be an integer"):
            self.space.config_for({"L": 2, "width": 2.5})


class TestSampling:
    space = SearchSpace.from_dict(EVERY_NAME)

    def test_one_point_has_every_name_as_a_plain_value(self):
        """sample(rng) gives every name in order, as plain Python int, float or str."""
        point = self.space.sample(np.random.default_rng(0))
        assert list(point) == list(self.space.names)
        assert type(point["alpha"]) is float
        assert type(point["L"]) is int and type(point["mini_batch_size"]) is int
        assert type(point["optimizer"]) is str

    def test_points_are_inside_the_ranges(self):
        """Every sampled value is one its distribution can produce."""
        for point in self.space.sample_points(200, 1):
            for name, d in self.space.distributions.items():
                value = point[name]
                assert value in d.options if isinstance(d, Choice) else d.low <= value <= d.high, (name, value)

    def test_reproducible_from_the_seed(self):
        """The same seed gives the same points."""
        assert self.space.sample_points(30, 4) == self.space.sample_points(30, 4)

    def test_prefix_stable(self):
        """More points never change the first ones: point i depends only on (seed, i)."""
        few, many = self.space.sample_points(5, 4), self.space.sample_points(50, 4)
        assert many[:5] == few

    def test_one_stream_per_point(self):
        """Point i is drawn from child i of SeedSequence(seed), alone: it does not depend on the others."""
        children = np.random.SeedSequence(4).spawn(10)
        points = self.space.sample_points(10, 4)
        for i in (0, 3, 9):
            assert points[i] == self.space.sample(np.random.default_rng(children[i]))

    def test_different_seeds_differ(self):
        """Different seeds give different points."""
        a, b = self.space.sample_points(10, 4), self.space.sample_points(10, 5)
        assert all(p["alpha"] != q["alpha"] for p, q in zip(a, b, strict=True))

    def test_points_differ_from_each_other(self):
        """Each point has its own stream: no two points of a study repeat."""
        alphas = [p["alpha"] for p in self.space.sample_points(100, 0)]
        assert len(set(alphas)) == 100

    def test_zero_points(self):
        """n = 0 gives no points."""
        assert self.space.sample_points(0, 0) == []

    def test_bad_n_or_seed(self):
        """A negative n or seed is a ConfigError naming it."""
        with pytest.raises(ConfigError, match="seed must be an integer >= 0, got -1"):
            self.space.sample_points(3, -1)
        with pytest.raises(ConfigError, match="n must be an integer >= 0"):
            self.space.sample_points(-2, 0)

    def test_csv_text(self):
        """points_csv: a trial column, then the names in order; floats read back bit for bit."""
        points = DEFAULT_SPACE.sample_points(3, 0)
        rows = list(csv.reader(points_csv(DEFAULT_SPACE, points).splitlines()))
        assert rows[0] == ["trial", "alpha", "beta", "L"]
        assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
        assert [float(r[1]) for r in rows[1:]] == [p["alpha"] for p in points]
        assert [int(r[3]) for r in rows[1:]] == [p["L"] for p in points]


class TestSampleCommand:
    @pytest.fixture
    def space_file(self, tmp_path):
        return write(tmp_path / "space.json", EVERY_NAME)

    def read(self, path):
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def test_writes_the_points(self, space_file, tmp_path, capsys):
        """50 rows, a trial column then one column per name, every value inside its range."""
        out = tmp_path / "points.csv"
        assert main(["sample", str(space_file), "--n", "50", "--seed", "3", "--out", str(out)]) == 0
        rows = self.read(out)
        assert len(rows) == 50
        assert list(rows[0]) == ["trial", *[k for k in EVERY_NAME if k != "base"]]
        assert [int(r["trial"]) for r in rows] == list(range(50))
        for r in rows:
            assert 1e-4 <= float(r["alpha"]) <= 1e-1
            assert 0.8 <= float(r["beta"]) <= 0.99
            assert 1 <= int(r["L"]) <= 5
            assert r["mini_batch_size"] in {"32", "64", "128"}
            assert r["optimizer"] in {"momentum", "rmsprop", "adam"}
        assert capsys.readouterr().out.strip() == f"50 points → {out}"

    def test_the_file_holds_the_spaces_points(self, space_file, tmp_path):
        """The rows are exactly sample_points(n, seed) of the space."""
        out = tmp_path / "points.csv"
        main(["sample", str(space_file), "--n", "7", "--seed", "3", "--out", str(out)])
        points = load_space(space_file).sample_points(7, 3)
        assert [float(r["alpha"]) for r in self.read(out)] == [p["alpha"] for p in points]

    def test_same_seed_same_file(self, space_file, tmp_path):
        """The same seed gives the same file byte for byte; another seed a different one."""
        paths = [tmp_path / f"{i}.csv" for i in range(3)]
        for path, seed in zip(paths, ["3", "3", "4"], strict=True):
            main(["sample", str(space_file), "--n", "20", "--seed", seed, "--out", str(path)])
        assert paths[0].read_bytes() == paths[1].read_bytes()
        assert paths[0].read_bytes() != paths[2].read_bytes()

    def test_broken_space(self, tmp_path, capsys):
        """A broken space exits 2 with one line per problem on stderr and writes no file."""
        space = write(tmp_path / "space.json", {"alhpa": {"log_uniform": [1e-4, 0.1]},
                                                "beta": {"uniform": [0.5, 1.2]},
                                                "L": {"int_uniform": [0, 3]}})
        out = tmp_path / "points.csv"
        assert main(["sample", str(space), "--n", "5", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 3, err
        assert all(line.startswith(f"babysit: error: {space}: ") for line in err)
        assert not any(word in "\n".join(err) for word in TRACEBACK_WORDS[:3])
        assert list(tmp_path.iterdir()) == [space]

    def test_missing_space(self, tmp_path, capsys):
        """A missing space file exits 2 with one line."""
        assert main(["sample", str(tmp_path / "nope.json"), "--n", "5", "--out", str(tmp_path / "p.csv")]) == 2
        assert capsys.readouterr().err.strip().endswith("nope.json: no such file")
        assert not (tmp_path / "p.csv").exists()

    def test_negative_seed(self, space_file, tmp_path, capsys):
        """A negative seed exits 2 with one line, nothing written."""
        out = tmp_path / "p.csv"
        assert main(["sample", str(space_file), "--n", "5", "--seed", "-1", "--out", str(out)]) == 2
        assert "seed must be an integer >= 0" in capsys.readouterr().err
        assert not out.exists()


class TestPerDecade:
    def test_counts_by_decade(self):
        """Values are counted in their decade, lowest first, empty decades between included."""
        assert per_decade([2e-4, 5e-4, 0.05, 0.02, 0.09]) == {"1e-4…1e-3": 2, "1e-3…1e-2": 0, "1e-2…1e-1": 3}

    def test_decade_boundaries(self):
        """A power of ten starts its decade, even where log10 rounds."""
        assert per_decade([1e-3, 0.1]) == {"1e-3…1e-2": 1, "1e-2…1e-1": 0, "1e-1…1e0": 1}
        assert per_decade([np.nextafter(1e-3, 0)]) == {"1e-4…1e-3": 1}

    def test_one_minus_labels_by_beta(self):
        """With one_minus, beta is counted by decade of 1 - beta and labelled by beta's range."""
        assert per_decade([0.5, 0.95, 0.999, 0.995, 0.9999], one_minus=True) == {
            "0…0.9": 1, "0.9…0.99": 1, "0.99…0.999": 2, "0.999…0.9999": 1}

    def test_one_minus_boundaries(self):
        """A range's upper end belongs to it, even where 1 - beta rounds: 0.9, 0.99, 0.999, 0.9999; 0 too."""
        assert per_decade([0.0, 0.9], one_minus=True) == {"0…0.9": 2}
        for k in (2, 3, 4, 5):
            beta = float(f"0.{'9' * k}")
            assert list(per_decade([beta], one_minus=True)) == [f"0.{'9' * (k - 1)}…{beta}"], beta

    def test_one_minus_samples_split_evenly(self):
        """one_minus_log_uniform 0.9 … 0.999 samples split about evenly between its two decades."""
        beta = OneMinusLogUniform(0.9, 0.999).sample(np.random.default_rng(0), 4000)
        counts = per_decade(beta, one_minus=True)
        assert list(counts) == ["0.9…0.99", "0.99…0.999"]
        assert abs(counts["0.9…0.99"] - 2000) < 150

    def test_empty_and_invalid(self):
        """No values, no decades; values off the log scale are refused."""
        assert per_decade([]) == {}
        with pytest.raises(ValueError, match="positive"):
            per_decade([0.0, 1.0])
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            per_decade([0.5, 1.0], one_minus=True)


class TestWarnings:
    def warn(self, d):
        return warnings(SearchSpace.from_dict(d))

    def test_the_seeds_example(self):
        """alpha uniform over 0.0001 … 1 puts ~90% of the samples in 0.1 … 1."""
        assert self.warn({"alpha": {"uniform": [1e-4, 1]}}) == [
            "alpha: uniform over 0.0001 … 1 puts ~90% of the samples in 0.1 … 1; "
            "log_uniform [0.0001, 1] gives each decade the same share"]

    @pytest.mark.parametrize("lo, hi, share", [(0.001, 0.1, "~91%"), (0.05, 1, "~95%"), (0, 0.5, "~90%")])
    def test_share_is_computed_for_the_range(self, lo, hi, share):
        """The top decade's share is (hi - hi/10) / (hi - lo) of the given range."""
        (line,) = self.warn({"lambd": {"uniform": [lo, hi]}})
        assert f"puts {share} of the samples in {hi / 10:g} … {hi:g}" in line

    def test_uniform_within_a_decade_is_fine(self):
        """A uniform range within one decade gets no warning."""
        assert self.warn({"alpha": {"uniform": [0.01, 0.1]}, "learning_rate_decay": {"uniform": [0.5, 1]}}) == []

    def test_uniform_beta_near_one(self):
        """beta uniform over 0.9 … 0.999 is told to use one_minus_log_uniform, with the ~9% it leaves."""
        line = one_line(self.warn({"beta": {"uniform": [0.9, 0.999]},
                                   "base": {"hyperparameters": {"optimizer": "momentum"}}}))
        assert "~9% of the samples in 0.99 … 0.999" in line
        assert "averaging windows of 100 … 1000" in line
        assert "one_minus_log_uniform [0.9, 0.999]" in line

    def test_uniform_beta_far_from_one_is_fine(self):
        """beta1 uniform over 0.8 … 0.9 (windows 5 … 10) gets no warning."""
        assert self.warn({"beta1": {"uniform": [0.8, 0.9]}}) == []

    def test_beta_no_trial_reads(self):
        """beta on adam alone changes nothing, and says so; with momentum among the options it is fine."""
        line = one_line(self.warn({"beta": {"one_minus_log_uniform": [0.9, 0.999]}}))
        assert line.startswith("beta: only momentum reads it") and "adam" in line
        assert self.warn({"beta": {"one_minus_log_uniform": [0.9, 0.999]},
                          "optimizer": {"choice": ["adam", "momentum"]}}) == []

    def test_decay_rate_without_decay(self):
        """learning_rate_decay with every schedule none changes nothing."""
        base = {"hyperparameters": {"decay_schedule": "none"}}
        assert "every trial's decay_schedule is none" in one_line(
            self.warn({"learning_rate_decay": {"uniform": [0.5, 1]}, "base": base}))

    def test_width_without_hidden_layers(self):
        """width on a base with no hidden layers, L not sampled, changes nothing."""
        s = SearchSpace({"width": IntUniform(4, 64)}, RunConfig(model=ModelConfig(layers=())))
        assert "width changes nothing" in one_line(warnings(s))

    def test_default_space_is_clean(self):
        """The default space has nothing to warn about."""
        assert warnings(DEFAULT_SPACE) == []

    def test_averaging_window(self):
        """averaging_window is 1/(1 - beta): 10 at 0.9, 1000 at 0.999."""
        assert averaging_window(0.9) == pytest.approx(10)
        assert averaging_window(0.999) == pytest.approx(1000)


def one_line(lines):
    assert len(lines) == 1, lines
    return lines[0]


def test_no_streamlit_below_the_ui():
    """Importing the space, the distributions and the CLI does not import streamlit."""
    code = ("import sys, babysit.space, babysit.distributions, babysit.cli; "
            "sys.exit('streamlit' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], check=False).returncode == 0

