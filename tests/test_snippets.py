"""Exported PyTorch and Keras code: valid Python, converted numbers, and (with torch) the same training."""

import ast
import math
import re
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

import babysit.snippets
from babysit.config import Change, DataConfig, ModelConfig, RunConfig
from babysit.errors import ConfigError
from babysit.hyperparams import HyperParams
from babysit.snippets import (
    keras_l2,
    keras_optimizer,
    keras_snippet,
    pytorch_snippet,
    resolve_changes,
    torch_optimizer,
    torch_weight_decay,
)
from babysit.trainer import Trainer

OPTIMIZERS = ["gd", "momentum", "rmsprop", "adam"]
SCHEDULES = ["inverse_time", "exponential", "staircase", "none"]


def run_config(layers=(3,), activation="relu", dtype="float64", schedule=(), data=None, seed=0, **hp):
    return RunConfig(
        seed=seed,
        data=data or DataConfig(name="moons", n_samples=125, noise=0.2, dev_fraction=0.2)._resolved(),
        model=ModelConfig(layers=layers, activation=activation, dtype=dtype),
        hyperparameters=HyperParams(**hp),
        schedule=tuple(schedule),
    )


EVERYTHING = run_config(
    optimizer="adam", alpha=0.01, learning_rate_decay=0.5, mini_batch_size=32, lambd=0.05,
    schedule=[
        Change(5, {"alpha": 0.003}),
        Change(9, {"beta2": 0.99, "epsilon": 1e-6}),
        Change(12, {"optimizer": "momentum", "beta": 0.8}),
        Change(15, {"beta": 0.95, "mini_batch_size": 16}),
        Change(18, {"optimizer": "rmsprop", "lambd": 0.01}),
        Change(20, {"decay_schedule": "staircase", "learning_rate_decay": 0.5}),
        Change(22, {"optimizer": "gd", "beta1": 0.8}),
    ],
)


def keyword(text, name):
    """The float after ``name=`` in the text (the first occurrence)."""
    match = re.search(rf"\b{name}=([-+0-9.e]+)", text)
    assert match, f"{name}= not in the snippet"
    return float(match.group(1))


class TestConversions:
    def test_torch(self):
        """gd → SGD(lr); momentum → SGD(momentum = dampening = beta); rmsprop alpha = beta2; adam betas."""
        hp = HyperParams(alpha=0.05, beta=0.8, beta1=0.85, beta2=0.99, epsilon=1e-6)
        assert torch_optimizer(hp.replace(optimizer="gd")) == ("SGD", {"lr": 0.05})
        assert torch_optimizer(hp.replace(optimizer="momentum")) == (
            "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.8},
        )
        assert torch_optimizer(hp.replace(optimizer="rmsprop")) == ("RMSprop", {"lr": 0.05, "alpha": 0.99, "eps": 1e-6})
        assert torch_optimizer(hp.replace(optimizer="adam")) == (
            "Adam", {"lr": 0.05, "betas": (0.85, 0.99), "eps": 1e-6},
        )

    def test_keras(self):
        """momentum: learning_rate = alpha·(1 − beta); rmsprop: epsilon²; adam: the same epsilon."""
        hp = HyperParams(alpha=0.05, beta=0.8, beta1=0.85, beta2=0.99, epsilon=1e-4)
        name, kw = keras_optimizer(hp.replace(optimizer="momentum"))
        assert name == "SGD" and kw["momentum"] == 0.8
        assert kw["learning_rate"] == pytest.approx(0.05 * 0.2, rel=1e-15)
        assert keras_optimizer(hp.replace(optimizer="rmsprop"))[1]["epsilon"] == pytest.approx(1e-8, rel=1e-15)
        assert keras_optimizer(hp.replace(optimizer="rmsprop"))[1]["rho"] == 0.99
        assert keras_optimizer(hp.replace(optimizer="adam")) == (
            "Adam", {"learning_rate": 0.05, "beta_1": 0.85, "beta_2": 0.99, "epsilon": 1e-4},
        )
        assert keras_optimizer(hp.replace(optimizer="gd")) == ("SGD", {"learning_rate": 0.05})

    def test_l2(self):
        """torch weight_decay = lambd/m; Keras L2 = lambd/(2m)."""
        hp = HyperParams(lambd=0.3, mini_batch_size=50)
        assert torch_weight_decay(hp) == pytest.approx(0.006, rel=1e-15)
        assert keras_l2(hp) == pytest.approx(0.003, rel=1e-15)


class TestChanges:
    def test_default_is_the_schedule(self):
        """Without changes, the config's own schedule is exported."""
        assert resolve_changes(EVERYTHING) == EVERYTHING.schedule

    def test_dicts_and_changes(self):
        """Changes may be given as Change objects or {"step", "set"} dicts, and are validated."""
        config = run_config()
        given = [{"step": 3, "set": {"alpha": 0.5}}, Change(7, {"beta": 0.5})]
        assert resolve_changes(config, given) == (Change(3, {"alpha": 0.5}), Change(7, {"beta": 0.5}))
        assert "(3, {\"alpha\": 0.5})" in pytorch_snippet(config, given)

    def test_invalid_changes_refused(self):
        """A change out of order or to an unknown hyperparameter raises ConfigError."""
        with pytest.raises(ConfigError, match="alfa"):
            pytorch_snippet(run_config(), [{"step": 3, "set": {"alfa": 0.5}}])
        with pytest.raises(ConfigError, match="previous entry"):
            keras_snippet(run_config(), [Change(5, {"alpha": 0.5}), Change(2, {"alpha": 0.1})])

    def test_no_framework_imported_by_babysit(self):
        """babysit.snippets imports neither torch nor keras: they only appear in the generated text."""
        tree = ast.parse(open(babysit.snippets.__file__, encoding="utf-8").read())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("torch", "keras", "tensorflow", "streamlit")}


class TestPytorchSource:
    @pytest.mark.parametrize("optimizer", OPTIMIZERS)
    @pytest.mark.parametrize("decay", SCHEDULES)
    def test_parses(self, optimizer, decay):
        """Every optimizer and decay schedule gives valid Python."""
        rate = 0.5 if decay in ("exponential", "staircase") else 0.1
        config = run_config(optimizer=optimizer, decay_schedule=decay, learning_rate_decay=rate)
        ast.parse(pytorch_snippet(config))

    def test_everything_parses(self):
        """A schedule changing every kind of hyperparameter gives valid Python."""
        ast.parse(pytorch_snippet(EVERYTHING))

    def test_header(self):
        """The header says who generated it, from which run, and the conventions."""
        text = pytorch_snippet(EVERYTHING, source="runs/demo")
        assert text.startswith("# Generated by babysit ")
        assert "from run runs/demo" in text.splitlines()[0]
        assert '"lambd": 0.05' in text
        for word in ("dampening", "weight_decay = lambd/m", "LambdaLR", "outside the square root"):
            assert word in text

    def test_changes_in_the_loop(self):
        """Non-rate changes become param-group settings at their update; optimizer switches rebuild."""
        text = pytorch_snippet(EVERYTHING)
        assert 'if update == 9:' in text and 'g["betas"] = (0.9, 0.99)' in text and 'g["eps"] = 1e-06' in text
        assert 'if update == 15:' in text and 'g["momentum"] = 0.95' in text and 'g["dampening"] = 0.95' in text
        assert text.count("opt = build_optimizer(model, hyperparams_at(update))") == 3
        assert "# update 5: alpha 0.01 → 0.003" in text

    def test_converted_numbers(self):
        """The header states the converted torch optimizer with its numbers."""
        config = run_config(optimizer="rmsprop", alpha=0.002, beta2=0.95, epsilon=1e-5, lambd=0.4,
                            mini_batch_size=20)
        text = pytorch_snippet(config)
        assert "torch.optim.RMSprop(lr=0.002, alpha=0.95, eps=1e-05)" in text
        assert keyword(text, "weight_decay") == pytest.approx(0.4 / 20, rel=1e-14)


# -- executing the PyTorch snippet ------------------------------------------------------------------------


def load_torch(config, changes=None):
    pytest.importorskip("torch")
    namespace = {"__name__": "snippet"}
    exec(compile(pytorch_snippet(config, changes), "<snippet>", "exec"), namespace)
    return namespace


def lrs(ns, config, n_train, updates):
    """The lr torch's optimizer holds for updates 1 … updates, stepping the scheduler as train() does."""
    torch = pytest.importorskip("torch")
    model = ns["build_model"](2, 2)
    opt = ns["build_optimizer"](model, ns["hyperparams_at"](1))
    scheduler = ns["build_scheduler"](opt, n_train)
    out = []
    for _ in range(updates):
        out.append(opt.param_groups[0]["lr"])
        assert opt.param_groups[1]["lr"] == out[-1]
        opt.step()  # no gradients: nothing moves, but the scheduler sees a step as in training
        scheduler.step()
    del torch
    return out


class TestPytorchModel:
    def test_architecture(self):
        """Linear(n_features, 7), Tanh, Linear(7, 5), Tanh, Linear(5, n_classes), in float64."""
        torch = pytest.importorskip("torch")
        ns = load_torch(run_config(layers=(7, 5), activation="tanh"))
        model = ns["build_model"](4, 3)
        kinds = [type(m).__name__ for m in model]
        assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
        shapes = [tuple(m.weight.shape) for m in model if isinstance(m, torch.nn.Linear)]
        assert shapes == [(7, 4), (5, 7), (3, 5)]
        assert all(p.dtype == torch.float64 for p in model.parameters())

    def test_float32(self):
        """A float32 run builds a float32 model."""
        torch = pytest.importorskip("torch")
        model = load_torch(run_config(dtype="float32", activation="sigmoid"))["build_model"](2, 2)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert type(model[1]).__name__ == "Sigmoid"

    def test_initialisation(self):
        """He N(0, 2/n_in) before relu, Xavier N(0, 1/n_in) before the output; biases zero."""
        torch = pytest.importorskip("torch")
        torch.manual_seed(0)
        model = load_torch(run_config(layers=(400,)))["build_model"](300, 300)
        hidden, output = model[0], model[2]
        assert float(hidden.weight.detach().std()) == pytest.approx(math.sqrt(2 / 300), rel=0.02)
        assert float(output.weight.detach().std()) == pytest.approx(math.sqrt(1 / 400), rel=0.02)
        assert float(hidden.bias.detach().abs().max()) == 0.0 and float(output.bias.detach().abs().max()) == 0.0


class TestPytorchSchedule:
    def test_inverse_time_with_changes(self):
        """n_train 100, m 32: 4 updates a pass; alpha 0.01 then 0.003 at 6, then exponential 0.8 from 11."""
        config = run_config(
            alpha=0.01, learning_rate_decay=0.5, mini_batch_size=32,
            schedule=[Change(6, {"alpha": 0.003}), Change(11, {"decay_schedule": "exponential",
                                                               "learning_rate_decay": 0.8})],
        )
        ns = load_torch(config)
        expected = []
        for k in range(1, 21):
            epoch = (k - 1) // 4
            if k < 6:
                expected.append(0.01 / (1 + 0.5 * epoch))
            elif k < 11:
                expected.append(0.003 / (1 + 0.5 * epoch))
            else:
                expected.append(0.003 * 0.8**epoch)
        np.testing.assert_allclose(lrs(ns, config, 100, 20), expected, rtol=1e-13)
        np.testing.assert_allclose([ns["alpha_at"](k, 100) for k in range(1, 21)], expected, rtol=1e-15)

    def test_staircase(self):
        """Full batch (one update a pass): alpha · 0.5^floor((k − 1)/10)."""
        config = run_config(alpha=0.2, decay_schedule="staircase", learning_rate_decay=0.5, mini_batch_size=64)
        expected = [0.2 * 0.5 ** ((k - 1) // 10) for k in range(1, 26)]
        np.testing.assert_allclose(lrs(load_torch(config), config, 64, 25), expected, rtol=1e-13)

    def test_mini_batch_change_continues_the_pass(self):
        """n_train 100, m 32 then 16 from update 3: passes end after updates 5, 12, 19."""
        config = run_config(alpha=0.1, learning_rate_decay=1.0, mini_batch_size=32,
                            schedule=[Change(3, {"mini_batch_size": 16})])
        ns = load_torch(config)
        epochs = [0] * 5 + [1] * 7 + [2] * 7 + [3]
        assert [ns["epoch_at"](k, 100) for k in range(1, 21)] == epochs
        np.testing.assert_allclose(lrs(ns, config, 100, 20), [0.1 / (1 + e) for e in epochs], rtol=1e-13)

    def test_matches_babysit_trainer(self):
        """The LambdaLR's lr equals the alpha babysit's own Trainer used, update by update, for 60 updates."""
        config = EVERYTHING
        trainer = Trainer(config)
        n_train = trainer.m
        records = [trainer.step() for _ in range(60)]
        ns = load_torch(config)
        assert [ns["epoch_at"](r.step, n_train) for r in records] == [r.epoch for r in records]
        np.testing.assert_allclose([ns["alpha_at"](r.step, n_train) for r in records],
                                   [r.alpha for r in records], rtol=1e-14)


def course_update(name, W, g, state, alpha, hp):
    """One update of babysit's optimizer, written out by hand (course formulas)."""
    t = state.get("t", 0) + 1
    v = state.get("v", np.zeros_like(W))
    s = state.get("s", np.zeros_like(W))
    if name == "gd":
        W = W - alpha * g
    elif name == "momentum":
        v = hp["beta"] * v + (1 - hp["beta"]) * g
        W = W - alpha * v
    elif name == "rmsprop":
        s = hp["beta2"] * s + (1 - hp["beta2"]) * g**2
        W = W - alpha * g / (np.sqrt(s) + hp["epsilon"])
    else:
        v = hp["beta1"] * v + (1 - hp["beta1"]) * g
        s = hp["beta2"] * s + (1 - hp["beta2"]) * g**2
        W = W - alpha * (v / (1 - hp["beta1"] ** t)) / (np.sqrt(s / (1 - hp["beta2"] ** t)) + hp["epsilon"])
    return W, {"t": t, "v": v, "s": s}


class TestPytorchOptimizerStep:
    @pytest.mark.parametrize("optimizer", OPTIMIZERS)
    def test_three_updates_match_the_course(self, optimizer):
        """Three torch updates from the snippet's optimizer equal the course formulas, L2 on weights only."""
        torch = pytest.importorskip("torch")
        lambd, m = 0.3, 8
        config = run_config(optimizer=optimizer, alpha=0.05, beta=0.7, beta1=0.8, beta2=0.95, epsilon=1e-3,
                            lambd=lambd, mini_batch_size=m, decay_schedule="none")
        ns = load_torch(config)
        hp = ns["hyperparams_at"](1)
        model = ns["build_model"](2, 2)
        opt = ns["build_optimizer"](model, hp)
        rng = np.random.default_rng(5)
        params = list(model.parameters())
        expected = {}
        with torch.no_grad():
            for p in params:
                start = rng.standard_normal(tuple(p.shape))
                p.copy_(torch.from_numpy(start))
                expected[id(p)] = (start, {})
        for _ in range(3):
            for p in params:
                grad = rng.standard_normal(tuple(p.shape)) * rng.choice([1e-4, 1.0, 10.0])
                p.grad = torch.from_numpy(grad.copy())
                W, state = expected[id(p)]
                decay = lambd / m if p.dim() > 1 else 0.0  # (lambd/m)·W from the L2 term; biases not penalised
                expected[id(p)] = course_update(optimizer, W, grad + decay * W, state, 0.05, hp)
            opt.step()
        for p in params:
            np.testing.assert_allclose(p.detach().numpy(), expected[id(p)][0], rtol=1e-12, atol=1e-15)

    def test_plain_torch_momentum_would_differ(self):
        """Without the snippet's zero buffers, torch's first momentum step is lr·g, not lr·(1 − beta)·g."""
        torch = pytest.importorskip("torch")
        p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.9)
        p.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
        assert float(p.detach()[0]) == pytest.approx(-0.1)  # the course's first step is −0.1·0.1·1 = −0.01


class TestPytorchTraining:
    def test_full_batch_training_matches_babysit(self):
        """Full-batch training from babysit's initial weights: 30 torch updates give babysit's weights."""
        torch = pytest.importorskip("torch")
        config = run_config(
            layers=(5,), activation="tanh", optimizer="adam", alpha=0.02, beta1=0.85, lambd=0.1,
            mini_batch_size=1000, learning_rate_decay=0.3,
            data=DataConfig(name="moons", n_samples=60, noise=0.2, dev_fraction=0.0)._resolved(),
            schedule=[
                Change(4, {"alpha": 0.05}),
                Change(7, {"beta2": 0.9, "epsilon": 1e-4}),
                Change(10, {"optimizer": "momentum", "beta": 0.8}),
                Change(13, {"beta": 0.9, "lambd": 0.02}),
                Change(16, {"optimizer": "rmsprop", "beta2": 0.95}),
                Change(19, {"epsilon": 1e-3, "decay_schedule": "exponential", "learning_rate_decay": 0.9}),
                Change(22, {"optimizer": "adam"}),
                Change(25, {"beta1": 0.7}),
            ],
        )
        trainer = Trainer(config)
        ns = load_torch(config)
        model = ns["build_model"](2, 2)
        weights = trainer.model.weights()
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for l, linear in enumerate(linears, start=1):
                linear.weight.copy_(torch.from_numpy(weights[f"W{l}"]))
                linear.bias.copy_(torch.from_numpy(weights[f"b{l}"][:, 0]))
        X = torch.from_numpy(np.ascontiguousarray(trainer.X.T))
        y = torch.from_numpy(trainer.data.y_train.astype(np.int64))
        for _ in range(30):
            trainer.step()
        ns["train"](model, X, y, 30)
        final = trainer.model.weights()
        for l, linear in enumerate(linears, start=1):
            np.testing.assert_allclose(linear.weight.detach().numpy(), final[f"W{l}"], rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(linear.bias.detach().numpy(), final[f"b{l}"][:, 0], rtol=1e-8, atol=1e-12)

    def test_mini_batch_training_runs(self):
        """The training loop runs with every recorded change and lowers the cost."""
        torch = pytest.importorskip("torch")
        trainer = Trainer(EVERYTHING)
        ns = load_torch(EVERYTHING)
        torch.manual_seed(0)
        model = ns["build_model"](2, 2)
        X = torch.from_numpy(np.ascontiguousarray(trainer.X.T))
        y = torch.from_numpy(trainer.data.y_train.astype(np.int64))
        loss = torch.nn.CrossEntropyLoss()
        with torch.no_grad():
            before = float(loss(model(X), y))
        opt = ns["train"](model, X, y, 60)
        assert type(opt).__name__ == "SGD"  # the last recorded change switched to gd
        with torch.no_grad():
            assert float(loss(model(X), y)) < before


# -- Keras -----------------------------------------------------------------------------------------------------


class TestKerasSource:
    @pytest.mark.parametrize("optimizer", OPTIMIZERS)
    @pytest.mark.parametrize("decay", SCHEDULES)
    def test_parses(self, optimizer, decay):
        """Every optimizer and decay schedule gives valid Python."""
        rate = 0.5 if decay in ("exponential", "staircase") else 0.1
        ast.parse(keras_snippet(run_config(optimizer=optimizer, decay_schedule=decay, learning_rate_decay=rate)))

    def test_everything_parses(self):
        """A schedule changing every kind of hyperparameter gives valid Python, each change listed."""
        text = keras_snippet(EVERYTHING, source="runs/x")
        ast.parse(text)
        assert text.startswith("# Generated by babysit ") and "from run runs/x" in text
        for step in (5, 9, 12, 15, 18, 20, 22):
            assert f"#   update {step}: " in text

    def test_momentum_numbers(self):
        """momentum=beta in the code, learning_rate = alpha·(1 − beta) stated."""
        text = keras_snippet(run_config(optimizer="momentum", alpha=0.1, beta=0.95))
        assert "keras.optimizers.SGD(learning_rate=schedule, momentum=0.95)" in text
        assert keyword(text, "learning_rate") == pytest.approx(0.1 * (1 - 0.95), rel=1e-12)
        assert "no (1 − beta)" in text

    def test_rmsprop_numbers(self):
        """rho = beta2 and epsilon = epsilon² (Keras puts it inside the square root)."""
        text = keras_snippet(run_config(optimizer="rmsprop", beta2=0.97, epsilon=1e-4))
        assert "keras.optimizers.RMSprop(learning_rate=schedule, rho=0.97, epsilon=1e-08)" in text
        assert "inside the square root" in text

    def test_adam_numbers(self):
        """beta_1, beta_2 and epsilon as given, with the epsilon-hat note."""
        text = keras_snippet(run_config(optimizer="adam", beta1=0.85, beta2=0.995, epsilon=1e-7))
        assert "keras.optimizers.Adam(learning_rate=schedule, beta_1=0.85, beta_2=0.995, epsilon=1e-07)" in text
        assert "epsilon hat" in text

    def test_l2_number(self):
        """kernel_regularizer L2(lambd/(2m)); none when lambd is 0."""
        text = keras_snippet(run_config(lambd=0.3, mini_batch_size=50))
        assert "keras.regularizers.L2(0.003)" in text
        assert "regularizer = None" in keras_snippet(run_config(lambd=0.0))


def stub_keras():
    """A stand-in for the keras module that records what the snippet builds (Keras is not installed)."""

    def recorder(kind):
        def build(*args, **kwargs):
            return SimpleNamespace(kind=kind, args=args, kwargs=kwargs)
        return build

    class Sequential:
        def __init__(self, layers):
            self.layers = list(layers)

        def add(self, layer):
            self.layers.append(layer)

    keras = types.ModuleType("keras")
    keras.floatx = []
    keras.optimizers = SimpleNamespace(
        SGD=recorder("SGD"), Adam=recorder("Adam"), RMSprop=recorder("RMSprop"),
        schedules=SimpleNamespace(LearningRateSchedule=object),
    )
    keras.ops = SimpleNamespace(minimum=min, cast=lambda x, dtype: int(x), take=lambda a, i: a[i],
                                convert_to_tensor=list)
    keras.regularizers = SimpleNamespace(L2=recorder("L2"))
    keras.initializers = SimpleNamespace(VarianceScaling=recorder("VarianceScaling"))
    keras.layers = SimpleNamespace(Dense=recorder("Dense"))
    keras.losses = SimpleNamespace(SparseCategoricalCrossentropy=recorder("SparseCategoricalCrossentropy"))
    keras.config = SimpleNamespace(set_floatx=keras.floatx.append)
    keras.Input = recorder("Input")
    keras.Sequential = Sequential
    return keras


def load_keras(monkeypatch, config):
    keras = stub_keras()
    monkeypatch.setitem(sys.modules, "keras", keras)
    namespace = {"__name__": "snippet"}
    exec(compile(keras_snippet(config), "<snippet>", "exec"), namespace)
    return namespace, keras


class TestKerasExecuted:
    def test_model(self, monkeypatch):
        """Dense layers of the hidden widths and the classes, with the L2 value and babysit's init scales."""
        ns, keras = load_keras(monkeypatch, run_config(layers=(7, 5), lambd=0.2, mini_batch_size=10))
        model = ns["build_model"](4, 3)
        dense = [layer for layer in model.layers if layer.kind == "Dense"]
        assert [d.args[0] for d in dense] == [7, 5, 3]
        assert [d.kwargs.get("activation") for d in dense] == ["relu", "relu", None]
        assert [d.kwargs["kernel_initializer"].args[0] for d in dense] == [2.0, 2.0, 1.0]
        assert all(d.kwargs["kernel_regularizer"].args == (0.01,) for d in dense)
        assert keras.floatx == ["float64"]

    @pytest.mark.parametrize("optimizer", OPTIMIZERS)
    def test_optimizer(self, monkeypatch, optimizer):
        """build_optimizer passes the converted values."""
        config = run_config(optimizer=optimizer, alpha=0.1, beta=0.8, beta1=0.7, beta2=0.9, epsilon=1e-3)
        ns, _ = load_keras(monkeypatch, config)
        built = ns["build_optimizer"]("the schedule")
        expected_name, expected = keras_optimizer(config.hyperparameters)
        assert built.kind == expected_name
        assert built.kwargs["learning_rate"] == "the schedule"
        for key, value in expected.items():
            if key != "learning_rate":
                assert built.kwargs[key] == pytest.approx(value, rel=1e-14)

    def test_schedule_rates(self, monkeypatch):
        """The schedule's rate for update k (step k − 1) is alpha_k·(1 − beta) for momentum, by hand."""
        config = run_config(optimizer="momentum", alpha=0.1, beta=0.9, learning_rate_decay=1.0, mini_batch_size=50,
                            schedule=[Change(4, {"alpha": 0.02}), Change(6, {"beta": 0.5})])
        ns, _ = load_keras(monkeypatch, config)
        schedule = ns["BabysitSchedule"](100, 8)  # 2 updates a pass
        expected = []
        for k in range(1, 9):
            alpha = (0.1 if k < 4 else 0.02) / (1 + (k - 1) // 2)
            expected.append(alpha * (1 - (0.9 if k < 6 else 0.5)))
        np.testing.assert_allclose([schedule(step) for step in range(8)], expected, rtol=1e-14)
        assert schedule(50) == schedule(7)  # past the end the last rate holds
