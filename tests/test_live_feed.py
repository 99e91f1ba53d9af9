"""The route the live charts fetch their figures and the status line from (babysit/ui/live_feed.py):
what it answers, checked against the run's numbers worked out by hand, and what it refuses."""

import base64
import threading
import time

import numpy as np
import pytest
from feeds import fetch

from babysit.config import parse_config
from babysit.errors import BabysitError
from babysit.manager import SessionManager
from babysit.store import Store
from babysit.ui.live_feed import routes

# 160 training examples in mini-batches of 64: an epoch is 3 updates (64, 64, 32)
CONFIG = ('{"data": {"name": "moons", "n_samples": 200, "dev_fraction": 0.2}, "model": {"layers": [8]}, '
          '"hyperparameters": {"alpha": 0.01, "mini_batch_size": 64, "learning_rate_decay": 0.5}}')


@pytest.fixture
def mgr(tmp_path):
    runs = SessionManager(Store(tmp_path / "home"), processes=False)
    yield runs
    runs.close_all()
    runs.store.close()


def until(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def stepped(mgr, n):
    """A run that trained exactly ``n`` updates and paused."""
    run_id = mgr.create(parse_config(CONFIG))
    mgr.command(run_id, "step", n=n).result(10)
    until(lambda: mgr.get(run_id).status == "paused" and mgr.get(run_id).snapshot().step == n, f"{n} steps")
    return run_id


def ask(mgr, path):
    return fetch(path, lambda: mgr)


def text(status):
    return "".join(part for part, _ in status)


class TestAnswer:
    def test_the_status_line_holds_the_runs_step_epoch_and_decayed_alpha(self, mgr):
        run_id = stepped(mgr, 37)
        code, body = ask(mgr, f"babysit/live/{run_id}/cost")
        assert code == 200
        # 37 updates of 3 per epoch: 12 epochs done; the next update's rate is 0.01 / (1 + 0.5 × 12)
        assert text(body["status"]).startswith("paused · step 37 · epoch 12 · 0 steps/s · α in force 0.001429 "
                                               "(base 0.01)")
        assert [part for part, bold in body["status"] if bold][:3] == ["paused", "37", "12"]
        assert body["pending"] == []

    def test_each_view_answers_its_figure_drawn_from_the_run(self, mgr):
        run_id = stepped(mgr, 37)
        names = {}
        for view in ("cost", "accuracy", "health", "boundary"):
            code, body = ask(mgr, f"babysit/live/{run_id}/{view}?axis=epoch&log=1&beta=0.5")
            assert code == 200, body
            assert "status" in body if view == "cost" else "status" not in body
            names[view] = {trace.get("name") for trace in body["figure"]["data"]}
        assert {"mini-batch cost", "smoothed (β = 0.5)", "train cost", "dev cost"} <= names["cost"]
        assert {"train accuracy", "dev accuracy"} <= names["accuracy"]
        cost = ask(mgr, f"babysit/live/{run_id}/cost?axis=epoch&log=1&beta=0.5")[1]["figure"]
        assert cost["layout"]["yaxis"]["type"] == "log" and cost["layout"]["xaxis2"]["title"]["text"] == "epoch"
        x = next(t["x"] for t in cost["data"] if t.get("name") == "mini-batch cost")  # plotly's typed array
        x = np.frombuffer(base64.b64decode(x["bdata"]), x["dtype"])
        # by update 37, 12 epochs of 160 examples and one batch of 64: 1,984 examples, 12.4 epochs
        assert x.max() == pytest.approx(12.4)

    def test_the_figures_version_moves_only_when_the_figure_does(self, mgr):
        run_id = stepped(mgr, 30)
        first, again = ask(mgr, f"babysit/live/{run_id}/cost")[1], ask(mgr, f"babysit/live/{run_id}/cost")[1]
        assert first["version"] == again["version"]
        mgr.command(run_id, "step", n=6).result(10)
        until(lambda: mgr.get(run_id).snapshot().step == 36 and mgr.get(run_id).status == "paused", "6 more")
        assert ask(mgr, f"babysit/live/{run_id}/cost")[1]["version"] != first["version"]

    def test_drawn_moves_with_what_the_page_draws_itself_and_not_with_training(self, mgr):
        run_id = stepped(mgr, 30)

        def drawn():
            return ask(mgr, f"babysit/live/{run_id}/cost")[1]["drawn"]

        paused = drawn()
        mgr.command(run_id, "resume").result(10)
        until(lambda: mgr.get(run_id).snapshot().step > 300, "training")
        running = drawn()
        assert running != paused  # the buttons change: Pause, not Resume
        until(lambda: mgr.get(run_id).snapshot().step > 2000, "more training")
        assert drawn() == running  # steps, costs and evaluations are the charts' business
        mgr.command(run_id, "set", changes={"beta1": 0.8}).result(10)  # an event, and the sidebar's values
        assert drawn() != running

    def test_a_pending_change_is_listed_until_it_is_applied(self, mgr, monkeypatch):
        run_id = stepped(mgr, 3)
        session = mgr.get(run_id)
        gate, apply = threading.Event(), session._apply
        monkeypatch.setattr(session, "_apply", lambda command: (gate.wait(10), apply(command)))
        try:
            command = mgr.command(run_id, "set", changes={"alpha": 0.003})
            until(lambda: session.snapshot().pending, "the change to be taken")
            assert ask(mgr, f"babysit/live/{run_id}/cost")[1]["pending"] == ["pending: alpha → 0.003"]
        finally:
            gate.set()
        command.result(10)
        assert ask(mgr, f"babysit/live/{run_id}/cost")[1]["pending"] == []

    def test_a_run_that_does_not_answer_is_a_503_that_says_so(self, mgr, monkeypatch):
        run_id = stepped(mgr, 3)

        def silent():
            raise BabysitError(f"the process training run {run_id} did not answer within 30 s")

        monkeypatch.setattr(mgr.get(run_id), "snapshot", silent)
        code, body = ask(mgr, f"babysit/live/{run_id}/cost")
        assert code == 503
        assert body["problem"] == (f"the process training run {run_id} did not answer within 30 s. "
                                   "The chart asks again in a moment.")


class TestRefused:
    @pytest.mark.parametrize("run_id", ["..", "..%2F..%2Fetc", "%2Fetc%2Fpasswd", "0123456789AB", "0123456789a",
                                        "0123456789abc", "0123456789ab%0A"])
    def test_what_is_not_a_run_id(self, mgr, run_id):
        code, body = ask(mgr, f"babysit/live/{run_id}/cost")
        assert code == 400 and "is not a run id" in body["problem"]

    def test_a_run_this_server_has_not_opened_is_not_opened_for_a_request(self, mgr, tmp_path):
        run_id = stepped(mgr, 3)
        other = SessionManager(Store(tmp_path / "home"), processes=False)  # a server that has not opened it
        try:
            code, body = fetch(f"babysit/live/{run_id}/cost", lambda: other)
            assert code == 404 and "is not open on this server" in body["problem"]
            assert not other.has(run_id)
        finally:
            other.close_all()
        assert ask(mgr, "babysit/live/0123456789ab/cost")[0] == 404  # no such run at all
        assert fetch(f"babysit/live/{run_id}/cost", lambda: None)[0] == 404  # no page has made the runs yet

    @pytest.mark.parametrize("query, problem", [
        ("view", "no such view 'view'"),
        ("cost?axis=time", "axis must be one of step, epoch, examples, got 'time'"),
        ("cost?log=yes", "log must be 0 or 1, got 'yes'"),
        ("cost?beta=1", "beta must be a number in [0, 0.999], got '1'"),
        ("cost?beta=nan", "beta must be a number in [0, 0.999], got 'nan'"),
        ("cost?beta=-0.5", "beta must be a number in [0, 0.999], got '-0.5'"),
        ("cost?beta=__import__", "beta must be a number in [0, 0.999], got '__import__'"),
    ])
    def test_a_bad_view_or_setting_says_which(self, mgr, query, problem):
        run_id = stepped(mgr, 3)
        code, body = ask(mgr, f"babysit/live/{run_id}/{query}")
        assert code == 400 and problem in body["problem"]


def test_the_route_sits_under_the_servers_base_path():
    assert [r.path for r in routes(lambda: None)] == ["/babysit/live/{run_id}/{view}"]
    assert [r.path for r in routes(lambda: None, "/lab/")] == ["/lab/babysit/live/{run_id}/{view}"]
    assert [r.path for r in routes(lambda: None, "lab")] == ["/lab/babysit/live/{run_id}/{view}"]
