"""The run config's JSON format: round trips, defaults, and one clear line per problem."""

import dataclasses
import json
import re

import pytest

from babysit.config import (
    Change,
    DataConfig,
    ModelConfig,
    RunConfig,
    load_config,
    parse_config,
    parse_schedule,
)
from babysit.errors import ConfigError
from babysit.hyperparams import FIELDS as HP_FIELDS
from babysit.hyperparams import HyperParams

FULL = {
    "seed": 7,
    "data": {"name": "spiral", "n_samples": 300, "noise": 0.1, "n_classes": 4, "dev_fraction": 0.25,
             "standardize": False},
    "model": {"layers": [32, 8, 4], "activation": "tanh", "lambd": 0.01, "dtype": "float32"},
    "hyperparameters": {
        "optimizer": "momentum", "alpha": 0.05, "beta": 0.8, "beta1": 0.85, "beta2": 0.99,
        "epsilon": 1e-7, "mini_batch_size": 32, "learning_rate_decay": 0.9, "decay_schedule": "exponential",
    },
    "schedule": [
        {"step": 100, "set": {"alpha": 0.01}},
        {"step": 200, "set": {"optimizer": "adam", "lambd": 0.1, "mini_batch_size": 128}},
    ],
}
TRACEBACK_WORDS = ("Traceback", "Error:", "File \"", "KeyError", "TypeError", "AttributeError")


def problems(text, where="config"):
    """The problem lines parse_config raises for ``text`` (a str, or a dict dumped to JSON)."""
    if not isinstance(text, str):
        text = json.dumps(text)
    with pytest.raises(ConfigError) as info:
        parse_config(text, where)
    lines = info.value.problems
    assert str(info.value) == "\n".join(lines)
    for line in lines:
        assert "\n" not in line
        assert not any(word in line for word in TRACEBACK_WORDS), line
    return lines


def one_problem(text):
    lines = problems(text)
    assert len(lines) == 1, lines
    return lines[0]


class TestRoundTrip:
    def test_full_config_round_trips(self):
        """parse_config(c.to_json()) == c for a config using every section."""
        c = parse_config(json.dumps(FULL))
        again = parse_config(c.to_json())
        assert again == c
        assert again.to_json() == c.to_json()

    def test_full_config_values(self):
        """Every value of the file reaches the right object."""
        c = parse_config(json.dumps(FULL))
        assert c.seed == 7
        assert c.data == DataConfig(name="spiral", n_samples=300, noise=0.1, n_classes=4, dev_fraction=0.25,
                                    standardize=False)
        assert c.model == ModelConfig(layers=(32, 8, 4), activation="tanh", dtype="float32")
        assert c.hyperparameters == HyperParams(lambd=0.01, **FULL["hyperparameters"])
        assert c.schedule == (
            Change(100, {"alpha": 0.01}),
            Change(200, {"optimizer": "adam", "lambd": 0.1, "mini_batch_size": 128}),
        )

    def test_to_dict_equals_the_file(self):
        """to_dict gives back the file's structure exactly (sections, keys, values)."""
        assert parse_config(json.dumps(FULL)).to_dict() == FULL

    def test_to_dict_keys(self):
        """to_dict's sections and keys follow the documented format."""
        d = parse_config("{}").to_dict()
        assert list(d) == ["seed", "data", "model", "hyperparameters", "schedule"]
        assert list(d["model"]) == ["layers", "activation", "lambd", "dtype"]
        assert set(d["hyperparameters"]) == set(HP_FIELDS) - {"lambd"}
        assert set(d["data"]) == {"name", "n_samples", "noise", "dev_fraction", "standardize"}
        assert d["schedule"] == []

    def test_to_json_is_json(self):
        """to_json is valid JSON ending in a newline, with lists not tuples."""
        text = parse_config(json.dumps(FULL)).to_json()
        assert text.endswith("\n")
        assert json.loads(text)["model"]["layers"] == [32, 8, 4]

    def test_csv_round_trips(self):
        """A csv data section round-trips and carries no synthetic keys."""
        c = parse_config(json.dumps({"data": {"csv": "d.csv", "target": "label", "dev_fraction": 0.1}}))
        assert c.to_dict()["data"] == {"csv": "d.csv", "target": "label", "dev_fraction": 0.1, "standardize": True}
        assert parse_config(c.to_json()) == c

    def test_default_runconfig_round_trips(self):
        """RunConfig() itself (no file) serialises to a config that parses back equal."""
        assert parse_config(RunConfig().to_json()) == RunConfig()

    def test_load_config_reads_a_file(self, tmp_path):
        """load_config reads what to_json wrote."""
        c = parse_config(json.dumps(FULL))
        path = tmp_path / "run.json"
        path.write_text(c.to_json(), encoding="utf-8")
        assert load_config(path) == c
        assert load_config(str(path)) == c


class TestDefaults:
    def test_empty_config(self):
        """{} is a whole run: seed 0, moons, two hidden layers of 16, default hyperparameters."""
        c = parse_config("{}")
        assert c.seed == 0
        assert c.data.name == "moons"
        assert c.model == ModelConfig()
        assert c.hyperparameters == HyperParams()
        assert c.schedule == ()

    def test_moons_defaults_filled_in(self):
        """The resolved moons config contains n_samples, noise, dev_fraction and standardize."""
        d = parse_config('{"data": {"name": "moons"}}').to_dict()
        assert d["data"] == {"name": "moons", "n_samples": 1000, "noise": 0.2, "dev_fraction": 0.2,
                             "standardize": True}
        assert set(d["hyperparameters"]) | set(d["model"]) >= set(HP_FIELDS)

    @pytest.mark.parametrize(
        "name, extra",
        [
            ("circles", {"n_samples": 1000, "noise": 0.1}),
            ("spiral", {"n_samples": 900, "noise": 0.2, "n_classes": 3}),
            ("xor", {"n_samples": 1000, "noise": 0.1}),
            ("blobs", {"n_samples": 1000, "noise": 1.0, "n_classes": 3}),
            ("digits", {}),
            ("breast_cancer", {}),
            ("wine", {}),
        ],
    )
    def test_each_dataset_defaults(self, name, extra):
        """Each data set gets exactly its own settings filled in, and no others."""
        d = parse_config(json.dumps({"data": {"name": name}})).to_dict()["data"]
        assert d == {"name": name, **extra, "dev_fraction": 0.2, "standardize": True}

    def test_default_runconfig_data_is_resolved(self):
        """RunConfig()'s default data is resolved like a parsed one."""
        assert RunConfig().data == parse_config("{}").data
        assert RunConfig().data.n_samples == 1000

    def test_from_dict_resolves(self):
        """DataConfig.from_dict fills defaults; a bare DataConfig does not."""
        assert DataConfig(name="moons").n_samples is None
        assert DataConfig.from_dict({"name": "moons", "n_samples": 50}).noise == 0.2

    def test_numbers_normalised(self):
        """An int noise or dev_fraction is stored as float, so configs compare equal."""
        a = parse_config('{"data": {"name": "moons", "noise": 1, "dev_fraction": 0}}')
        b = parse_config('{"data": {"name": "moons", "noise": 1.0, "dev_fraction": 0.0}}')
        assert a == b and type(a.data.noise) is float


class TestLambd:
    def test_lambd_in_model_becomes_hyperparameter(self):
        """model.lambd in the file is HyperParams.lambd."""
        c = parse_config('{"model": {"lambd": 0.3}}')
        assert c.hyperparameters.lambd == 0.3
        assert not hasattr(c.model, "lambd")

    def test_lambd_written_under_model(self):
        """to_dict puts lambd under model and not under hyperparameters."""
        d = parse_config('{"model": {"lambd": 0.3}}').to_dict()
        assert d["model"]["lambd"] == 0.3
        assert "lambd" not in d["hyperparameters"]

    def test_lambd_under_hyperparameters_refused(self):
        """lambd in the hyperparameters section is an unknown key there."""
        line = one_problem('{"hyperparameters": {"lambd": 0.3}}')
        assert line.startswith("config: unknown key 'hyperparameters.lambd'")

    def test_bad_lambd_names_model(self):
        """A bad lambd is reported where it is written: model.lambd."""
        assert one_problem('{"model": {"lambd": -1}}') == "config: model.lambd must be in [0, inf), got -1.0"

    def test_lambd_in_schedule(self):
        """The schedule may change lambd like any hyperparameter."""
        c = parse_config('{"schedule": [{"step": 3, "set": {"lambd": 0.5}}]}')
        assert c.schedule == (Change(3, {"lambd": 0.5}),)


class TestCsvData:
    def test_csv_form(self):
        """{"csv", "target"} builds a csv DataConfig with defaults for the rest."""
        c = parse_config('{"data": {"csv": "x.csv", "target": "y"}}')
        assert (c.data.csv, c.data.target, c.data.name) == ("x.csv", "y", None)
        assert (c.data.dev_fraction, c.data.standardize) == (0.2, True)
        assert c.data.label == "x.csv [y]"
        assert parse_config('{"data": {"csv": "data/2026/x.csv", "target": "y"}}').data.label == "x.csv [y]"

    def test_missing_target(self):
        """A csv without target says so."""
        assert one_problem('{"data": {"csv": "x.csv"}}') == "config: data.target must be a non-empty string, got None"

    def test_empty_csv_path(self):
        """An empty csv path is refused."""
        line = one_problem('{"data": {"csv": "", "target": "y"}}')
        assert line == "config: data.csv must be a non-empty string, got ''"

    def test_synthetic_keys_refused(self):
        """noise does not apply to a CSV."""
        line = one_problem('{"data": {"csv": "x.csv", "target": "y", "noise": 0.1}}')
        assert line.startswith("config: unknown key 'data.noise'")

    def test_neither_name_nor_csv(self):
        """A data section with neither name nor csv says what it needs."""
        line = one_problem('{"data": {"dev_fraction": 0.1}}')
        assert "needs either 'name'" in line and "'csv' and 'target'" in line


class TestBadJson:
    def test_syntax_error_has_line_and_column(self):
        """Invalid JSON names the line and column."""
        line = one_problem('{\n  "seed": 1,\n  "data": {"name": "moons",}\n}')
        assert line.startswith("config: not valid JSON: ")
        assert re.search(r"at line 3, column \d+$", line)

    def test_where_names_the_file(self):
        """Every line starts with where the config came from."""
        assert problems('{"seed": -1}', where="run.json")[0].startswith("run.json: seed")

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_nan_infinity_literals(self, literal):
        """Python's json accepts NaN and Infinity; a config refuses them by name."""
        line = one_problem(f'{{"hyperparameters": {{"alpha": {literal}}}}}')
        assert line.startswith("config: ")
        assert literal.lstrip("-") in line and "not a valid number" in line

    def test_overflowing_number(self):
        """1e400 parses as inf, which is out of range, not a crash."""
        assert one_problem('{"hyperparameters": {"alpha": 1e400}}') == (
            "config: hyperparameters.alpha must be in (0, 10], got inf"
        )

    def test_huge_integer_literal(self):
        """An integer too large for a float is refused cleanly."""
        line = one_problem('{"model": {"lambd": 1' + "0" * 400 + "}}")
        assert line == "config: model.lambd must be in [0, inf), got inf"

    @pytest.mark.parametrize("text, kind", [("[1, 2]", "list"), ('"moons"', "str"), ("3", "int"), ("null", "NoneType")])
    def test_non_object_top_level(self, text, kind):
        """A top level that is not an object is refused with its type."""
        assert one_problem(text) == f"config: a config must be a JSON object, got {kind}"

    def test_empty_text(self):
        """An empty file is not valid JSON."""
        assert one_problem("").startswith("config: not valid JSON:")


class TestBadKeysAndValues:
    def test_unknown_top_level_key(self):
        """An unknown top-level key is named with a suggestion."""
        assert one_problem('{"sead": 1}') == "config: unknown key 'sead' (did you mean 'seed'?)"

    def test_unknown_hyperparameter_with_suggestion(self):
        """A misspelt hyperparameter is named with the closest real one."""
        assert one_problem('{"hyperparameters": {"alfa": 0.1}}') == (
            "config: unknown key 'hyperparameters.alfa' (did you mean 'alpha'?)"
        )

    def test_unknown_model_key(self):
        """An unknown model key lists the known ones when nothing is close."""
        assert one_problem('{"model": {"dropout": 0.5}}') == (
            "config: unknown key 'model.dropout' (known: layers, activation, lambd, dtype)"
        )

    @pytest.mark.parametrize(
        "config, expected",
        [
            ({"seed": "1"}, "seed must be an integer, got '1'"),
            ({"seed": 1.0}, "seed must be an integer, got 1.0"),
            ({"seed": True}, "seed must be an integer, got True"),
            ({"seed": -1}, "seed must be an integer in [0, 4294967295], got -1"),
            ({"data": "moons"}, "data must be an object, got 'moons'"),
            ({"data": {"name": "mnist"}}, "data.name must be one of moons, circles, spiral, xor, blobs, digits, "
                                          "breast_cancer, wine, got 'mnist'"),
            ({"data": {"name": ["moons"]}}, "data.name must be one of moons, circles, spiral, xor, blobs, digits, "
                                            "breast_cancer, wine, got ['moons']"),
            ({"data": {"name": "moons", "n_samples": 2}}, "data.n_samples must be an integer in [4, 10000000], got 2"),
            ({"data": {"name": "moons", "n_samples": 100.0}}, "data.n_samples must be an integer, got 100.0"),
            ({"data": {"name": "moons", "noise": -0.1}}, "data.noise must be in [0, 100], got -0.1"),
            ({"data": {"name": "moons", "noise": "high"}}, "data.noise must be a number, got 'high'"),
            ({"data": {"name": "moons", "dev_fraction": 1}}, "data.dev_fraction must be in [0, 1), got 1.0"),
            ({"data": {"name": "moons", "standardize": "yes"}}, "data.standardize must be true or false, got 'yes'"),
            ({"data": {"name": "blobs", "n_classes": 1}}, "data.n_classes must be an integer in [2, 100], got 1"),
            ({"data": {"name": "spiral", "n_samples": 5, "n_classes": 3}},
             "data.n_samples must be at least 2 per class, got 5"),
            ({"model": [16]}, "model must be an object, got [16]"),
            ({"model": {"layers": 16}}, "model.layers must be a list of hidden widths, got 16"),
            ({"model": {"layers": [16, 0]}}, "model.layers[1] must be an integer in [1, 100000], got 0"),
            ({"model": {"layers": [16.0]}}, "model.layers[0] must be an integer, got 16.0"),
            ({"model": {"activation": "elu"}}, "model.activation must be one of relu, tanh, sigmoid, got 'elu'"),
            ({"model": {"dtype": "float16"}}, "model.dtype must be one of float64, float32, got 'float16'"),
            ({"hyperparameters": [1]}, "hyperparameters must be an object, got [1]"),
            ({"hyperparameters": {"beta1": 1.2}}, "hyperparameters.beta1 must be in [0, 1), got 1.2"),
            ({"hyperparameters": {"alpha": "0.1"}}, "hyperparameters.alpha must be a number, got '0.1'"),
            ({"hyperparameters": {"mini_batch_size": 0}},
             "hyperparameters.mini_batch_size must be an integer >= 1, got 0"),
            ({"hyperparameters": {"optimizer": None}},
             "hyperparameters.optimizer must be one of gd, momentum, rmsprop, adam, got None"),
            ({"hyperparameters": {"decay_schedule": "staircase", "learning_rate_decay": 0}},
             "hyperparameters.learning_rate_decay (for the staircase schedule) must be in (0, 1], got 0.0"),
        ],
    )
    def test_one_clear_line(self, config, expected):
        """Each malformed value gives exactly one line naming where, what is allowed, and the value."""
        assert one_problem(config) == f"config: {expected}"

    @pytest.mark.parametrize("key, value", [("noise", 0.1), ("n_samples", 100), ("n_classes", 3)])
    def test_data_keys_that_do_not_apply(self, key, value):
        """Synthetic settings given for digits are refused by name."""
        line = one_problem({"data": {"name": "digits", key: value}})
        assert line.startswith(f"config: unknown key 'data.{key}'")

    def test_n_classes_does_not_apply_to_moons(self):
        """moons has two classes; n_classes is refused."""
        line = one_problem({"data": {"name": "moons", "n_classes": 3}})
        assert line.startswith("config: unknown key 'data.n_classes'")

    def test_does_not_apply_when_built_directly(self):
        """A DataConfig built in code with noise for digits is refused on resolving."""
        with pytest.raises(ConfigError, match=r"^data\.noise does not apply to digits$"):
            DataConfig(name="digits", noise=0.1)._resolved()


class TestSchedule:
    def test_valid_schedule(self):
        """Entries become Changes with validated, normalised values."""
        c = parse_config('{"schedule": [{"step": 5, "set": {"alpha": 1}}, {"step": 9, "set": {"optimizer": "gd"}}]}')
        assert c.schedule == (Change(5, {"alpha": 1.0}), Change(9, {"optimizer": "gd"}))
        assert type(c.schedule[0].set["alpha"]) is float

    def test_not_a_list(self):
        """A schedule that is not a list is refused."""
        assert one_problem('{"schedule": {"step": 5}}') == "config: schedule must be a list, got {'step': 5}"

    def test_decreasing_steps(self):
        """A step before the previous entry's is refused."""
        line = one_problem('{"schedule": [{"step": 50, "set": {"alpha": 0.1}}, {"step": 20, "set": {"alpha": 0.2}}]}')
        assert line == "config: schedule[1].step must not come before the previous entry's step 50, got 20"

    def test_repeated_step_applies_in_turn(self):
        """Two entries for one step are allowed and kept in order."""
        c = parse_config('{"schedule": [{"step": 5, "set": {"alpha": 0.1}}, {"step": 5, "set": {"beta": 0.2}}]}')
        assert c.schedule == (Change(5, {"alpha": 0.1}), Change(5, {"beta": 0.2}))

    def test_decrease_after_repeat(self):
        """Order is checked against the largest step so far, not only the last entry's."""
        lines = problems({"schedule": [{"step": 5, "set": {"alpha": 0.1}}, {"step": 5, "set": {"alpha": 0.2}},
                                       {"step": 4, "set": {"alpha": 0.3}}]})
        assert lines == ["config: schedule[2].step must not come before the previous entry's step 5, got 4"]

    @pytest.mark.parametrize(
        "entry, expected",
        [
            ({"step": 0, "set": {"alpha": 0.1}}, "schedule[0].step must be an integer >= 1, got 0"),
            ({"step": "5", "set": {"alpha": 0.1}}, "schedule[0].step must be an integer, got '5'"),
            ({"set": {"alpha": 0.1}}, "schedule[0].step must be an integer, got None"),
            ({"step": 5}, "schedule[0].set must be a non-empty object of hyperparameter values"),
            ({"step": 5, "set": {}}, "schedule[0].set must be a non-empty object of hyperparameter values"),
            ({"step": 5, "set": {"alpha": 20}}, "schedule[0].set.alpha must be in (0, 10], got 20.0"),
            ({"step": 5, "set": {"beta1": 1.2}}, "schedule[0].set.beta1 must be in [0, 1), got 1.2"),
            ({"step": 5, "set": {"optimizer": "sgd"}},
             "schedule[0].set.optimizer must be one of gd, momentum, rmsprop, adam, got 'sgd'"),
        ],
    )
    def test_bad_entry(self, entry, expected):
        """A bad step or value in an entry is one line naming the entry."""
        assert one_problem({"schedule": [entry]}) == f"config: {expected}"

    def test_entry_not_an_object(self):
        """An entry that is not an object shows the expected shape."""
        assert one_problem('{"schedule": [5]}').startswith("config: schedule[0] must be an object like")

    def test_unknown_hyperparameter(self):
        """An unknown name in set is named at its place, with a suggestion."""
        assert one_problem('{"schedule": [{"step": 5, "set": {"alfa": 0.1}}]}') == (
            "config: unknown key 'schedule[0].set.alfa' (did you mean 'alpha'?)"
        )

    def test_unknown_entry_key(self):
        """A key other than step and set is refused."""
        line = one_problem('{"schedule": [{"step": 5, "set": {"alpha": 0.1}, "when": 3}]}')
        assert line.startswith("config: unknown key 'schedule[0].when'")

    def test_validated_against_the_state_reached(self):
        """An entry is checked against the hyperparameters the earlier entries lead to."""
        ok = {"hyperparameters": {"learning_rate_decay": 2},
              "schedule": [{"step": 5, "set": {"learning_rate_decay": 0.5}},
                           {"step": 9, "set": {"decay_schedule": "exponential"}}]}
        assert parse_config(json.dumps(ok)).schedule[1] == Change(9, {"decay_schedule": "exponential"})
        bad = {"hyperparameters": {"learning_rate_decay": 2},
               "schedule": [{"step": 9, "set": {"decay_schedule": "exponential"}}]}
        assert one_problem(bad) == (
            "config: schedule[0].set.learning_rate_decay (for the exponential schedule) must be in (0, 1], got 2.0"
        )

    def test_every_entry_reported(self):
        """Problems in several entries are all reported."""
        lines = problems('{"schedule": [{"step": 5, "set": {"alpha": 20}}, {"step": 3, "set": {"beta": 2}}]}')
        assert lines == [
            "config: schedule[0].set.alpha must be in (0, 10], got 20.0",
            "config: schedule[1].step must not come before the previous entry's step 5, got 3",
            "config: schedule[1].set.beta must be in [0, 1), got 2.0",
        ]

    def test_parse_schedule_directly(self):
        """parse_schedule validates against the hyperparameters it is given."""
        assert parse_schedule([{"step": 2, "set": {"alpha": 0.5}}], HyperParams()) == (Change(2, {"alpha": 0.5}),)
        with pytest.raises(ConfigError, match="beta1"):
            parse_schedule([{"step": 2, "set": {"beta1": 1}}], HyperParams())

    def test_change_to_dict_copies(self):
        """Change.to_dict gives the file's form, with its own dict."""
        change = Change(3, {"alpha": 0.5})
        d = change.to_dict()
        d["set"]["alpha"] = 9
        assert change.set == {"alpha": 0.5}


class TestSeveralProblems:
    def test_all_reported_together(self):
        """Problems in every section come out together, one line each."""
        lines = problems({
            "seed": -1,
            "bogus": 1,
            "data": {"name": "moons", "n_samples": 3.5, "noise": "a"},
            "model": {"layers": [0], "activation": "elu", "lambd": -1},
            "hyperparameters": {"beta1": 1.2, "alfa": 1},
        })
        assert sorted(lines) == sorted(f"config: {p}" for p in [
            "unknown key 'bogus' (known: seed, data, model, hyperparameters, schedule)",
            "seed must be an integer in [0, 4294967295], got -1",
            "data.n_samples must be an integer, got 3.5",
            "data.noise must be a number, got 'a'",
            "unknown key 'hyperparameters.alfa' (did you mean 'alpha'?)",
            "model.layers[0] must be an integer in [1, 100000], got 0",
            "model.activation must be one of relu, tanh, sigmoid, got 'elu'",
            "hyperparameters.beta1 must be in [0, 1), got 1.2",
            "model.lambd must be in [0, inf), got -1.0",
        ])

    def test_schedule_problems_with_other_problems(self):
        """A bad schedule is reported alongside problems elsewhere."""
        lines = problems('{"seed": -1, "schedule": [{"step": 0, "set": {"alpha": 1}}]}')
        assert len(lines) == 2
        assert any(line.startswith("config: schedule[0].step") for line in lines)


class TestLoadConfig:
    def test_missing_file(self, tmp_path):
        """A path that does not exist gives one line naming it."""
        path = tmp_path / "nope.json"
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.problems == [f"{path}: no such file"]

    def test_directory(self, tmp_path):
        """A directory cannot be read as a config, and says so."""
        with pytest.raises(ConfigError, match="cannot read it"):
            load_config(tmp_path)

    def test_not_utf8(self, tmp_path):
        """A file that is not UTF-8 is refused without a traceback."""
        path = tmp_path / "bin.json"
        path.write_bytes(b'{"seed": "\xff\xfe"}')
        with pytest.raises(ConfigError, match="cannot read it"):
            load_config(path)

    def test_problems_prefixed_with_path(self, tmp_path):
        """Problems in a file start with its path."""
        path = tmp_path / "run.json"
        path.write_text('{"hyperparameters": {"beta1": 1.2}}')
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.problems == [f"{path}: hyperparameters.beta1 must be in [0, 1), got 1.2"]


class TestModelConfig:
    def test_defaults(self):
        """Two hidden layers of 16 with relu in float64: L = 3."""
        m = ModelConfig()
        assert (m.layers, m.activation, m.dtype, m.L) == ((16, 16), "relu", "float64", 3)

    @pytest.mark.parametrize("layers, L", [((), 1), ([], 1), ([5], 2), ([4, 3, 2, 1], 5)])
    def test_L_is_hidden_plus_one(self, layers, L):
        """L = len(layers) + 1; empty layers is softmax regression (L = 1)."""
        m = ModelConfig(layers=layers)
        assert m.L == L
        assert m.layers == tuple(layers)

    def test_list_becomes_tuple(self):
        """Layers given as a list are stored as a tuple, so configs hash and compare."""
        assert ModelConfig(layers=[8, 4]) == ModelConfig(layers=(8, 4))
        assert isinstance(ModelConfig(layers=[8, 4]).layers, tuple)

    def test_empty_layers_in_file(self):
        """layers: [] parses and round-trips."""
        c = parse_config('{"model": {"layers": []}}')
        assert c.model.L == 1
        assert parse_config(c.to_json()) == c

    @pytest.mark.parametrize(
        "layers, message",
        [
            ("16", "model.layers must be a list of hidden widths, got '16'"),
            (None, "model.layers must be a list of hidden widths, got None"),
            ([16, -1], r"model.layers[1] must be an integer in [1, 100000], got -1"),
            ([100_001], r"model.layers[0] must be an integer in [1, 100000], got 100001"),
            ([True], "model.layers[0] must be an integer, got True"),
            ([1] * 51, "model.layers must have at most 50 hidden layers, got 51"),
        ],
    )
    def test_bad_layers(self, layers, message):
        """Bad layer lists are refused with the position and the value."""
        with pytest.raises(ConfigError) as info:
            ModelConfig(layers=layers)
        assert info.value.problems == [message]

    def test_several_problems(self):
        """Bad layers, activation and dtype are all reported."""
        with pytest.raises(ConfigError) as info:
            ModelConfig(layers=[0], activation="elu", dtype="int8")
        assert len(info.value.problems) == 3

    def test_frozen(self):
        """ModelConfig and RunConfig are frozen."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            ModelConfig().layers = (1,)
        with pytest.raises(dataclasses.FrozenInstanceError):
            RunConfig().seed = 3

    def test_runconfig_replace(self):
        """RunConfig.replace changes one part and keeps the rest."""
        c = RunConfig()
        d = c.replace(seed=5)
        assert d.seed == 5 and d.data == c.data and c.seed == 0
