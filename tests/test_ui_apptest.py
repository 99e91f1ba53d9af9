"""The pages' logic through Streamlit's AppTest: the real scripts, widgets and callbacks, no browser.

AppTest draws no frame, so the live charts' own requests are made by the tests (tests/feeds.py), and
AppTest never fires ``run_every``: a test that needs the page to catch up with the run's thread calls
``at.run()`` itself, after polling the session with a deadline.
All AppTest instances share one session id and ``st.cache_resource``: the ``fresh_manager`` fixture
makes every test start from a new SessionManager on its own store folder (``babysit_home``) and closes
its runs afterwards.
"""

import json
import threading
import time
from pathlib import Path

import plotly.io as pio
import pytest
import streamlit as st
from feeds import charts, cost_answer, fetch, status_line
from streamlit.testing.v1 import AppTest

from babysit.config import RunConfig
from babysit.manager import CapError, SessionManager
from babysit.store import Store
from babysit.ui.live_feed import EVERY
from babysit.ui.state import manager

# Importing streamlit makes its theme plotly's default template; babysit.ui.charts sets no template on
# import, which wins in the app (app.py imports streamlit first) but not when this module is collected
# after tests that imported charts: leave plotly as the app has it, for them and for these tests.
pio.templates.default = None

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60
# The app's two pages with Runs first, since AppTest.switch_page() only reaches file-based pages.
RUNS_APP = """
import streamlit as st
from babysit.ui import babysit_page, runs_page

st.navigation([st.Page(runs_page.render, title="Runs", url_path="runs", default=True),
               st.Page(babysit_page.render, title="Babysit", url_path="babysit")]).run()
"""


@pytest.fixture(autouse=True)
def fresh_manager(babysit_home):
    st.cache_resource.clear()
    yield
    mgr = manager()
    mgr.close_all()
    mgr.store.close()
    st.cache_resource.clear()


def until(condition, what, timeout=10.0):
    """Poll ``condition()`` until it is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def button(at, label):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def new_app():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def created_run(at=None):
    """The page after "Create run" with the form's defaults; returns (at, run id, session)."""
    at = at or new_app()
    button(at, "Create run").click().run()
    assert not at.exception
    run_id = at.query_params["run"]
    return at, run_id, manager().get(run_id)


def text_input(at, label):
    found = [t for t in at.text_input if t.label == label]
    assert len(found) == 1, f"{len(found)} text inputs labelled {label!r}"
    return found[0]


def changes(session, name):
    return [e for e in session.snapshot().events if e.kind == "change" and name in e.changes]


def runs_app():
    at = AppTest.from_string(RUNS_APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def select_rows(at, *rows):
    at.session_state["runs-table"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
    return at.run()


# -- the new-run form -------------------------------------------------------------------------------


def test_the_form_creates_a_run_and_shows_its_controls():
    at = new_app()
    assert [t.value for t in at.title] == ["New run"]
    assert at.radio(key="new:source").value == "built-in"
    assert at.selectbox(key="new:data_name").value == "moons"
    assert not button(at, "Create run").disabled

    at, run_id, session = created_run(at)

    assert len(run_id) == 12
    assert [t.value for t in at.title] == [session.name]
    assert any(c.value.endswith("· train and dev cost every 500 steps") for c in at.caption)
    labels = [b.label for b in at.button]
    for label in ("Start", "Pause", "Step 100", "Stop"):
        assert label in labels
    assert button(at, "Pause").disabled  # nothing to pause yet
    assert status_line(at).startswith("**created** · step **0**")
    assert Store().get_run(run_id).status == "created"
    assert session.snapshot().config.data.name == "moons"


def test_the_export_tab_offers_the_files_and_names_the_run_once():
    at, run_id, session = created_run()
    assert [t.label for t in at.tabs] == ["Rewind & branch", "LR probe", "Export"]
    assert not at.download_button  # only the open tab is drawn
    at.session_state[f"{run_id}:tab"] = "Export"  # as a click on the tab does
    at.run()
    labels = [b.label for b in at.download_button]
    assert labels == ["Tuned config (JSON)", "Run config with its schedule (JSON)", "Metrics (CSV)",
                      "The whole bundle (zip)"]
    headers = [c.value.splitlines()[0] for c in at.code]
    assert len(headers) == 2
    for header in headers:
        assert f"from run {run_id}:" in header and "run run" not in header


def test_a_link_to_no_run_says_so_and_offers_a_new_one():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = "0123456789ab"
    at.run()
    assert "names no run" in at.error[0].value
    button(at, "Start a new run").click().run()
    assert "run" not in at.query_params
    assert [t.value for t in at.title] == ["New run"]

    at.query_params["run"] = "../../etc"
    at.run()
    assert "is not a run id" in at.error[0].value


def test_a_malformed_config_file_is_refused_and_changes_nothing():
    at = new_app()
    at.text_input(key="new:widths").set_value("8, 4").run()
    bad = json.dumps({"seed": -1, "hyperparameters": {"alpha": 0}}).encode()
    at.file_uploader(key="new:config_file").set_value(("bad.json", bad, "application/json")).run()

    error = at.error[0].value
    assert error.startswith("That config was not loaded; nothing changed:")
    assert "bad.json: seed must be an integer" in error and "hyperparameters.alpha must be in (0, 10]" in error
    assert at.text_input(key="new:widths").value == "8, 4"

    at.file_uploader(key="new:config_file").set_value(("broken.json", b"{not json", "application/json")).run()
    assert "broken.json" in at.error[0].value and "JSON" in at.error[0].value


def test_a_config_file_fills_the_form_and_its_schedule_comes_along():
    at = new_app()
    config = {"seed": 7, "data": {"name": "circles", "noise": 0.1}, "model": {"layers": [8], "activation": "tanh"},
              "hyperparameters": {"optimizer": "momentum", "alpha": 0.003, "beta": 0.95},
              "schedule": [{"step": 5, "set": {"alpha": 0.001}}]}
    at.file_uploader(key="new:config_file").set_value(
        ("start.json", json.dumps(config).encode(), "application/json")).run()

    assert not at.error
    assert at.success[0].value == "Loaded start.json (its schedule of 1 change(s) comes with it)"
    assert at.selectbox(key="new:data_name").value == "circles"
    assert at.number_input(key="new:seed").value == 7
    assert at.text_input(key="new:widths").value == "8"
    assert at.selectbox(key="new:activation").value == "tanh"
    assert at.selectbox(key="new:optimizer").value == "momentum"
    assert at.select_slider(key="new:alpha").value == 0.003

    button(at, "Create run").click().run()
    made = RunConfig.from_dict(Store().get_run(at.query_params["run"]).config)
    assert made.seed == 7 and list(made.model.layers) == [8]
    assert made.hyperparameters.optimizer == "momentum" and made.hyperparameters.alpha == 0.003
    assert made.hyperparameters.beta == 0.95
    assert [(c.step, c.to_dict()["set"]) for c in made.schedule] == [(5, {"alpha": 0.001})]


def test_a_broken_csv_is_refused_naming_the_column_and_a_good_one_makes_a_run(babysit_home):
    at = new_app()
    at.radio(key="new:source").set_value("CSV file").run()
    assert at.info[0].value == "Upload a CSV to train on it."
    assert button(at, "Create run").disabled

    broken = b"x,y,label\n1,oops,a\n2,3,b\n"
    at.file_uploader(key="new:csv_file").set_value(("broken.csv", broken, "text/csv")).run()
    error = at.error[0].value
    assert "'y'" in error and "not numeric" in error and "oops" in error
    assert button(at, "Create run").disabled
    assert Store().list_runs() == []

    rows = "".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}\n" for i in range(40))
    at.file_uploader(key="new:csv_file").set_value(("good.csv", f"x,y,label\n{rows}".encode(), "text/csv")).run()
    assert not at.error
    assert at.selectbox(key="new:target").value == "label"
    button(at, "Create run").click().run()
    data = Store().get_run(at.query_params["run"]).config["data"]
    assert data["target"] == "label"
    assert Path(data["csv"]).parent.parent == Path(babysit_home) / "uploads"  # kept for a restart
    assert Path(data["csv"]).name == "good.csv"
    assert any(c.value.startswith(f"run `{at.query_params['run']}` · good.csv [label] · ") for c in at.caption)


# -- a live run ---------------------------------------------------------------------------------------


def test_start_trains_in_the_background_and_pause_stops_it():
    at, run_id, session = created_run()
    button(at, "Start").click().run()
    assert not at.error
    until(lambda: session.status == "running" and session.snapshot().step > 0, "the first steps")

    at.run()
    assert status_line(at).startswith("**running**")
    assert button(at, "Resume").disabled and not button(at, "Pause").disabled

    button(at, "Pause").click().run()
    until(lambda: session.status == "paused", "the pause")
    step = session.snapshot().step
    time.sleep(0.3)
    assert session.snapshot().step == step  # it stays where it was paused
    at.run()
    assert status_line(at).startswith(f"**paused** · step **{step:,}**")
    assert not button(at, "Resume").disabled


def test_the_live_charts_are_drawn_from_the_runs_figures():
    at, run_id, session = created_run()
    at.number_input(key=f"{run_id}:n").set_value(1000).run()
    button(at, "Step 1,000").click().run()
    until(lambda: any(e.kind == "pause" for e in session.snapshot().events), "1,000 steps then a pause")
    at.run()
    drawn = charts(at)
    assert set(drawn) == {f"{run_id}:{name}" for name in ("cost", "accuracy", "boundary", "health")}
    answers = {}
    for key, args in drawn.items():  # each chart fetches its figure from the run's route, at its own pace
        view = key.split(":")[1]
        assert args["feed"].startswith(f"babysit/live/{run_id}/{view}") and args["every"] == EVERY[view]
        code, answers[view] = fetch(args["feed"])
        assert code == 200, answers[view]
        assert args["height"] == answers[view]["figure"]["layout"]["height"]  # the frame is sized to the figure
    cost = answers["cost"]["figure"]
    assert {"mini-batch cost", "train cost", "dev cost"} <= {t.get("name") for t in cost["data"]}
    assert run_id in cost["layout"]["uirevision"]  # the same view across redraws of this run
    assert {"train accuracy", "dev accuracy"} <= {t.get("name") for t in answers["accuracy"]["figure"]["data"]}
    # only the cost chart reruns the page when what the page draws itself has changed
    assert drawn[f"{run_id}:cost"]["drawn"] == answers["cost"]["drawn"]
    assert all(drawn[f"{run_id}:{view}"]["drawn"] is None for view in ("accuracy", "boundary", "health"))


def test_step_n_trains_exactly_n_updates_then_pauses():
    at, run_id, session = created_run()
    at.number_input(key=f"{run_id}:n").set_value(37).run()
    button(at, "Step 37").click().run()
    until(lambda: any(e.kind == "pause" for e in session.snapshot().events), "37 steps then a pause")
    assert session.snapshot().step == 37
    at.run()
    assert status_line(at).startswith("**paused** · step **37**")


def test_moving_alpha_while_it_trains_sends_a_change_that_is_applied():
    at, run_id, session = created_run()
    button(at, "Start").click().run()
    until(lambda: session.snapshot().step > 0, "the first steps")

    at.select_slider(key=f"{run_id}:hp:alpha").set_value(0.02).run()
    assert not at.error

    event = until(lambda: changes(session, "alpha"), "the alpha change")[0]
    assert event.changes["alpha"] == [0.01, 0.02] and event.source == "user"
    assert session.hyperparameters().alpha == 0.02
    at.run()
    assert at.select_slider(key=f"{run_id}:hp:alpha").value == 0.02  # the page does not move it back
    table = at.dataframe[-1].value
    assert "alpha 0.01 → 0.02" in " ".join(table["what"])


def test_a_move_on_its_way_to_the_run_is_not_undone_by_an_earlier_change(monkeypatch):
    """The widget keeps the user's value while that set waits to be applied, even when an earlier
    change (here, one made elsewhere) has not been drawn yet: no key press is taken back."""
    manager().processes = False  # the run's thread is held below, so it trains in this process
    at, run_id, session = created_run()
    manager().command(run_id, "set", changes={"alpha": 0.0126}, source="system").result(10)  # not yet drawn
    gate = threading.Event()
    apply = session._apply

    def held(command):  # the training thread waits here with the command still pending
        gate.wait(10)
        apply(command)

    monkeypatch.setattr(session, "_apply", held)
    try:
        at.select_slider(key=f"{run_id}:hp:alpha").set_value(0.0158).run()
        assert at.select_slider(key=f"{run_id}:hp:alpha").value == 0.0158
        assert "pending: alpha → 0.0158" in cost_answer(at)["pending"]
    finally:
        gate.set()
    until(lambda: session.hyperparameters().alpha == 0.0158 and not session.snapshot().pending, "the change to land")
    at.run()
    assert at.select_slider(key=f"{run_id}:hp:alpha").value == 0.0158
    assert not cost_answer(at)["pending"]


def test_a_multiplicative_schedule_chosen_with_rate_zero_travels_with_rate_095():
    at, run_id, session = created_run()
    assert session.hyperparameters().learning_rate_decay == 0.0
    at.selectbox(key=f"{run_id}:hp:decay_schedule").set_value("exponential").run()
    assert not at.error  # exponential with rate 0 would be refused; the page sends a rate that fits

    event = until(lambda: changes(session, "decay_schedule"), "the schedule change")[0]
    assert event.changes == {"decay_schedule": ["inverse_time", "exponential"], "learning_rate_decay": [0.0, 0.95]}
    at.run()
    assert at.number_input(key=f"{run_id}:hp:learning_rate_decay").value == 0.95  # the rate widget follows


def test_a_change_made_elsewhere_shows_in_the_widgets():
    at, run_id, session = created_run()
    manager().command(run_id, "set", changes={"alpha": 0.005, "mini_batch_size": 32}, source="system").result(10)
    at.run()
    assert at.select_slider(key=f"{run_id}:hp:alpha").value == 0.005
    assert at.number_input(key=f"{run_id}:hp:mini_batch_size").value == 32


def checkpoint_choice(at):
    found = [s for s in at.selectbox if s.label == "checkpoint"]
    assert len(found) == 1, f"{len(found)} checkpoint choices"
    return found[0]


def test_the_newest_checkpoint_is_offered_after_more_training():
    """A choice made earlier does not stay on an old checkpoint once newer ones come: Rewind here
    would otherwise throw the newer training away."""
    at, run_id, session = created_run()
    assert checkpoint_choice(at).value == 0  # the start's
    button(at, "Step 100").click().run()
    until(lambda: (100, "pause") in session.snapshot().checkpoints, "100 steps and the pause's checkpoint")
    at.run()
    assert checkpoint_choice(at).value == 100
    checkpoint_choice(at).set_value(0).run()
    at.run()
    assert checkpoint_choice(at).value == 0  # the user's choice stays while nothing newer comes
    button(at, "Step 100").click().run()
    until(lambda: (200, "pause") in session.snapshot().checkpoints, "200 steps and the pause's checkpoint")
    at.run()
    assert checkpoint_choice(at).value == 200
    assert text_input(at, "branch name").value == f"{session.name} · branch at 200"


def test_a_chosen_checkpoint_that_is_gone_falls_back_to_the_newest():
    """Rewinds (and the thinning of periodic checkpoints) drop checkpoints: the choice never moves
    to another one silently."""
    at, run_id, session = created_run()
    button(at, "Step 100").click().run()
    until(lambda: (100, "pause") in session.snapshot().checkpoints, "100 steps and the pause's checkpoint")
    at.run()
    checkpoint_choice(at).set_value(100).run()
    session.submit("rewind", step=0).result(timeout=10)  # from elsewhere: another tab, the command line
    at.run()
    assert not at.exception
    assert checkpoint_choice(at).options == ["step 0 (start)"]
    assert checkpoint_choice(at).value == 0
    assert text_input(at, "branch name").value == f"{session.name} · branch at 0"


def test_the_branch_name_follows_the_chosen_checkpoint():
    at, run_id, session = created_run()
    button(at, "Step 100").click().run()
    until(lambda: (100, "pause") in session.snapshot().checkpoints, "100 steps and the pause's checkpoint")
    at.run()
    options = checkpoint_choice(at).options
    assert options == ["step 100 (pause)", "step 0 (start)"]

    checkpoint_choice(at).set_value(100).run()
    name = text_input(at, "branch name").value
    assert name == f"{session.name} · branch at 100"

    button(at, "Branch a new run").click().run()
    child = at.query_params["run"]
    assert child != run_id
    info = Store().get_run(child)
    assert (info.parent, info.fork_step, info.name, info.step) == (run_id, 100, name, 100)


def test_the_cap_refuses_a_second_run_with_a_message_the_page_shows(monkeypatch):
    monkeypatch.setenv("BABYSIT_MAX_RUNNING", "1")
    st.cache_resource.clear()
    mgr = manager()
    assert mgr.max_running == 1
    config = RunConfig()
    first, second = mgr.create(config, "first"), mgr.create(config, "second")
    mgr.command(first, "start")

    with pytest.raises(CapError, match="1 run is training already.*BABYSIT_MAX_RUNNING.*pause or stop one"):
        mgr.command(second, "start")

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = second
    at.run()
    button(at, "Start").click().run()
    assert "the most this server allows at once (BABYSIT_MAX_RUNNING)" in at.error[0].value
    assert mgr.get(second).status == "created"

    mgr.command(first, "pause").result(10)  # room again: the same button now starts it
    button(at, "Start").click().run()
    assert not at.error
    until(lambda: mgr.get(second).status == "running", "the second run to start")


def test_a_manager_of_its_own_enforces_its_cap(tmp_path):
    mgr = SessionManager(Store(str(tmp_path / "own")), max_running=1)
    try:
        a, b = mgr.create(RunConfig()), mgr.create(RunConfig())
        mgr.command(a, "start")
        with pytest.raises(CapError):
            mgr.command(b, "step", n=10)
        assert mgr.training() == [a]
    finally:
        mgr.close_all()
        mgr.store.close()


# -- the Runs page ------------------------------------------------------------------------------------


def test_the_runs_page_without_runs_says_where_to_start():
    at = runs_app()
    assert [t.value for t in at.title] == ["Runs"]
    assert at.info[0].value == "No runs yet: start one on the Babysit page."


def two_runs():
    mgr = manager()
    first = mgr.create(RunConfig(), "first")
    second = mgr.create(RunConfig.from_dict({"data": {"name": "circles"}}), "second")
    return first, second


def test_the_runs_page_lists_every_run_and_opens_the_chosen_one():
    first, second = two_runs()
    at = runs_app()
    table = at.dataframe(key="runs-table").value
    assert table["name"].tolist() == ["first", "second"]
    assert table["data set"].tolist() == ["moons", "circles"]
    assert table["status"].tolist() == ["created", "created"]
    assert table["id"].tolist() == [first, second]
    assert "Select runs in the table" in at.caption[0].value

    select_rows(at, 1)
    assert [b.label for b in at.button][:2] == ["Open", "Delete 1…"]
    button(at, "Open").click().run()
    assert at.query_params["run"] == second
    assert [t.value for t in at.title] == ["second"]


def test_renaming_shows_the_chosen_runs_own_name_and_saves_a_new_one():
    first, second = two_runs()
    at = select_rows(runs_app(), 0)
    assert text_input(at, "new name").value == "first"
    select_rows(at, 1)
    assert text_input(at, "new name").value == "second"  # not the first run's name

    text_input(at, "new name").set_value("  moons again  ").run()
    button(at, "Save name").click().run()
    assert Store().get_run(second).name == "moons again"
    assert at.dataframe(key="runs-table").value["name"].tolist() == ["first", "moons again"]

    select_rows(at, 1)
    text_input(at, "new name").set_value("   ").run()
    button(at, "Save name").click().run()
    assert "a run's name cannot be empty" in at.error[0].value
    assert Store().get_run(second).name == "moons again"


def test_deleting_asks_first_and_the_deleted_runs_leave_the_table():
    first, second = two_runs()
    at = select_rows(runs_app(), 0, 1)
    assert at.subheader[0].value == "Compare"  # two runs selected: their curves side by side
    button(at, "Delete 2…").click().run()
    assert at.code[0].value == f"{first}\n{second}"  # the dialog names what it will delete
    assert "cannot be undone" in " ".join(m.value for m in at.markdown)
    # The dialog's own "Delete" reruns only the dialog (a fragment), which AppTest cannot do: its
    # action, manager().delete, is what is tested here; the browser test leaves the dialog alone.
    manager().delete(first)
    at = select_rows(at)
    assert at.dataframe(key="runs-table").value["id"].tolist() == [second]
    assert [r.id for r in Store().list_runs()] == [second]


def test_a_run_process_that_does_not_answer_is_a_warning_not_a_traceback(monkeypatch):
    """Its process busy past the wait (or gone between two looks): the page says so and tries again at its
    next refresh; once it answers, the page is whole again."""
    from babysit.worker import RemoteSession, WorkerError

    at, run_id, session = created_run()
    assert isinstance(session, RemoteSession)

    def silent(self):
        raise WorkerError(f"the process training run {self.run_id} did not answer within 30 s")

    answering = RemoteSession.snapshot
    monkeypatch.setattr(RemoteSession, "snapshot", silent)
    at.run()
    assert not at.exception
    assert any("did not answer within 30 s. The page asks again at its next refresh." in w.value
               for w in at.warning)
    monkeypatch.setattr(RemoteSession, "snapshot", answering)
    at.run()
    assert not at.exception and not at.warning
    assert status_line(at).startswith("**created** · step **0**")
