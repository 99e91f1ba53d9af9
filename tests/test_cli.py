"""The headless CLI end to end, as a user runs it: files written, errors shown, nothing half-done."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from babysit.cli import main
from babysit.config import load_config
from babysit.export import METRIC_COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = {
    "seed": 3,
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "dev_fraction": 0.25, "standardize": True},
    "model": {"layers": [5], "activation": "tanh", "lambd": 0.01, "dtype": "float64"},
    "hyperparameters": {"optimizer": "adam", "alpha": 0.02, "mini_batch_size": 16},
    "schedule": [{"step": 7, "set": {"alpha": 0.005, "mini_batch_size": 32}}],
}


def write(path, obj):
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


@pytest.fixture
def config_file(tmp_path):
    return write(tmp_path / "tiny.json", TINY)


class TestTrain:
    def test_writes_the_bundle(self, config_file, tmp_path, capsys):
        """train writes config.json, metrics.csv, both weight files, tuned.json and events.json."""
        out = tmp_path / "out"
        assert main(["train", "--config", str(config_file), "--out", str(out), "--steps", "20", "--quiet"]) == 0
        assert sorted(p.name for p in out.iterdir()) == [
            "config.json", "events.json", "metrics.csv", "tuned.json", "weights-final.npz", "weights-initial.npz"
        ]
        assert "stopped at step 20" in capsys.readouterr().out

    def test_config_is_resolved_and_loadable(self, config_file, tmp_path):
        """config.json holds every default filled in and loads back to the same config."""
        out = tmp_path / "out"
        main(["train", "--config", str(config_file), "--out", str(out), "--steps", "5", "--quiet"])
        written = json.loads((out / "config.json").read_text())
        assert written["hyperparameters"]["beta2"] == 0.999
        assert written["hyperparameters"]["decay_schedule"] == "inverse_time"
        assert written["schedule"] == TINY["schedule"]
        assert load_config(out / "config.json") == load_config(config_file)

    def test_metrics_rows(self, config_file, tmp_path):
        """One row per step from 1, evaluation columns only on evaluation steps, the change at its step."""
        out = tmp_path / "out"
        main(["train", "--config", str(config_file), "--out", str(out), "--steps", "20",
              "--eval-every", "5", "--quiet"])
        metrics = pd.read_csv(out / "metrics.csv")
        assert tuple(metrics.columns) == METRIC_COLUMNS
        assert metrics["step"].tolist() == list(range(1, 21))
        evaluated = metrics["train_cost"].notna()
        assert metrics.loc[evaluated, "step"].tolist() == [5, 10, 15, 20]
        assert metrics.loc[evaluated, "dev_accuracy"].between(0, 1).all()
        assert metrics.loc[metrics.step < 7, "alpha"].eq(0.02).all()
        assert metrics.loc[metrics.step >= 7, "alpha"].eq(0.005).all()
        # 90 training examples: batches of 16 until step 7, then 32 (epoch bookkeeping stays right)
        seen = metrics["examples_seen"].to_numpy()
        assert np.diff(seen, prepend=0)[:6].tolist() == [16] * 5 + [10]
        assert np.diff(seen, prepend=0)[6:9].tolist() == [32, 32, 26]
        assert metrics.loc[metrics.step == 7, "epoch"].item() == 1

    def test_weights_files(self, config_file, tmp_path):
        """The .npz files hold W1, b1, …, WL, bL in the course's shapes, and training moved them."""
        out = tmp_path / "out"
        main(["train", "--config", str(config_file), "--out", str(out), "--steps", "10", "--quiet"])
        with np.load(out / "weights-initial.npz") as first, np.load(out / "weights-final.npz") as last:
            assert sorted(first.files) == ["W1", "W2", "b1", "b2"]
            assert first["W1"].shape == (5, 2) and first["b1"].shape == (5, 1) and last["W2"].shape == (2, 5)
            assert not np.array_equal(first["W1"], last["W1"])
            assert not first["b1"].any()

    def test_epochs(self, config_file, tmp_path):
        """--epochs counts whole passes over the training set."""
        out = tmp_path / "out"
        main(["train", "--config", str(config_file), "--out", str(out), "--epochs", "2", "--quiet"])
        metrics = pd.read_csv(out / "metrics.csv")
        assert metrics["epoch"].max() == 1 and metrics["examples_seen"].iloc[-1] == 2 * 90

    def test_same_config_same_numbers(self, config_file, tmp_path):
        """Two runs of one config write identical metrics, bit for bit."""
        for name in ("a", "b"):
            main(["train", "--config", str(config_file), "--out", str(tmp_path / name), "--steps", "30", "--quiet"])
        assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()


class TestErrors:
    def run(self, tmp_path, config, *extra):
        path = write(tmp_path / "bad.json", config)
        out = tmp_path / "out"
        return main(["train", "--config", str(path), "--out", str(out), "--steps", "3", "--quiet", *extra]), out

    def test_one_line_per_problem(self, tmp_path, capsys):
        """A config with three problems exits 2 with three lines naming them, and writes nothing."""
        bad = json.loads(json.dumps(TINY))
        bad["hyperparameters"].update(beta1=1.2, alfa=0.1)
        bad["model"]["layers"] = [0]
        code, out = self.run(tmp_path, bad)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 3
        assert any("hyperparameters.beta1 must be in [0, 1), got 1.2" in line for line in err)
        assert any("unknown key 'hyperparameters.alfa' (did you mean 'alpha'?)" in line for line in err)
        assert any("model.layers[0]" in line for line in err)
        assert not out.exists()

    def test_bad_json(self, tmp_path, capsys):
        """Broken JSON exits 2 and names the line and column."""
        code, _ = self.run(tmp_path, '{"seed": 1,\n "data": }')
        err = capsys.readouterr().err
        assert code == 2 and "not valid JSON" in err and "line 2, column 10" in err

    def test_missing_file(self, tmp_path, capsys):
        """A config path that does not exist is named."""
        assert main(["train", "--config", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
        assert "nope.json: no such file" in capsys.readouterr().err

    def test_bad_csv(self, tmp_path, capsys):
        """A CSV with a word in a feature column is refused with where it is."""
        (tmp_path / "d.csv").write_text("x,y,label\n1,2,a\n3,oops,b\n")
        code, out = self.run(tmp_path, {"data": {"csv": str(tmp_path / "d.csv"), "target": "label"}})
        err = capsys.readouterr().err
        assert code == 2 and "'y' is not numeric (line 3" in err
        assert not out.exists()

    def test_diverged_run(self, tmp_path, capsys):
        """A run that blows up is stopped by the guardrail with exit 1 and says what to do; its metrics are kept."""
        bad = json.loads(json.dumps(TINY))
        # weight decay overshoots: W <- (1 - alpha·lambd/m) W = -10 W at every step
        bad["hyperparameters"] = {"optimizer": "gd", "alpha": 10.0, "mini_batch_size": 90}
        bad["model"]["lambd"] = 99.0
        bad["schedule"] = []
        path = write(tmp_path / "hot.json", bad)
        code = main(["train", "--config", str(path), "--out", str(tmp_path / "o"), "--steps", "500", "--quiet"])
        err = capsys.readouterr().err
        assert code == 1
        assert "guardrail" in err and "lower alpha" in err
        metrics = pd.read_csv(tmp_path / "o" / "metrics.csv")
        assert 0 < len(metrics) < 500
        assert metrics["cost"].iloc[-1] > 4 * metrics["cost"].min()

    def test_steps_and_epochs_exclusive(self, config_file, tmp_path):
        """--steps and --epochs cannot both be given."""
        with pytest.raises(SystemExit):
            main(["train", "--config", str(config_file), "--out", str(tmp_path), "--steps", "1", "--epochs", "1"])


def test_python_dash_m(config_file, tmp_path):
    """`python -m babysit` is the same program, with no traceback on a bad config."""
    ok = subprocess.run([sys.executable, "-m", "babysit", "train", "--config", str(config_file),
                         "--out", str(tmp_path / "o"), "--steps", "3", "--quiet"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path / "bad.json", {"hyperparameters": {"alpha": -1}})
    failed = subprocess.run([sys.executable, "-m", "babysit", "train", "--config", str(bad), "--out",
                             str(tmp_path / "p")], capture_output=True, text=True)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    assert "hyperparameters.alpha must be in (0, 10], got -1.0" in failed.stderr


BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_PROBE = ("import sys; from babysit.cli import main; main(sys.argv[1:]); "
              "from threadpoolctl import threadpool_info; "
              "print(*sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS uses one thread on one core anyway")
@pytest.mark.parametrize("user_setting, threads", [(None, "1"), ("2", "2")])
def test_the_command_line_trains_on_one_blas_thread_unless_the_user_says_otherwise(tmp_path, user_setting, threads):
    """As the page's runs do (babysit.blas): BLAS's helper threads would spin on a core others need."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    if user_setting:
        env["OPENBLAS_NUM_THREADS"] = user_setting
    probe = subprocess.run([sys.executable, "-c", BLAS_PROBE, "runs"], capture_output=True, text=True,
                           env={**env, "BABYSIT_HOME": str(tmp_path)}, cwd=ROOT)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[-1] == threads
