"""The Caviar page through Streamlit's AppTest: the new-study form, its preview and refusals, a study run
by the server's StudyManager on the embedded Dask cluster, and what the study view offers after it.

AppTest never fires ``run_every`` (the study's live progress), so a test that waits for a study polls
the store with a deadline and then calls ``at.run()`` itself. AppTest instances share one session id
and ``st.cache_resource``: every test starts from a new SessionManager and StudyManager on its own
store folder (``babysit_home``), and both are closed afterwards (the StudyManager's LocalCluster too).
"""

import json
import time

import plotly.io as pio
import pytest
import streamlit as st
from feeds import status_line
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from babysit import caviar
from babysit.config import RunConfig
from babysit.space import SearchSpace
from babysit.store import Store
from babysit.ui.caviar_page import CANDIDATES
from babysit.ui.state import manager, studies

pio.templates.default = None  # as tests/test_ui_apptest.py: plotly as the app has it

TIMEOUT = 60
STUDY_DEADLINE = 120.0  # seconds: the cluster starts (seconds), then 4 trials × 2 epochs train (a second)
# The app's Caviar page first (AppTest.switch_page() reaches only file-based pages), and the Babysit page
# with the url_path the caviar page switches to.
CAVIAR_APP = """
import streamlit as st
from babysit.ui import babysit_page, caviar_page

st.navigation([st.Page(caviar_page.render, title="Caviar", url_path="caviar", default=True),
               st.Page(babysit_page.render, title="Babysit", url_path="babysit")]).run()
"""
SEARCHED = {"alpha": ("log_uniform", "0.0001, 0.1"), "beta": ("one_minus_log_uniform", "0.9, 0.999"),
            "L": ("int_uniform", "2, 4")}  # the seed's defaults


@pytest.fixture(autouse=True)
def fresh_managers(babysit_home):
    st.cache_resource.clear()
    yield
    studies().close()  # its threads joined, its LocalCluster (if one was started) closed
    mgr = manager()
    mgr.close_all()
    mgr.store.close()
    st.cache_resource.clear()


@pytest.fixture
def downloads(monkeypatch):
    """What the page's download buttons hold, by file name, as text (AppTest keeps only their URLs)."""
    saved = {}
    add = MediaFileManager.add

    def recording(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        saved[file_name] = path_or_data.decode("utf-8") if isinstance(path_or_data, bytes) else path_or_data
        return add(self, path_or_data, mimetype, coordinates, file_name=file_name,
                   is_for_static_download=is_for_static_download)

    monkeypatch.setattr(MediaFileManager, "add", recording)
    return saved


def until(condition, what, timeout=10.0, every=0.05):
    """Poll ``condition()`` until it is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def caviar_app(study=None):
    at = AppTest.from_string(CAVIAR_APP, default_timeout=TIMEOUT)
    if study:
        at.query_params["study"] = study
    at.run()
    assert not at.exception
    return at


def buttons(at):
    return [b.label for b in at.button]


def button(at, label):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {buttons(at)}"
    return found[0]


def small_study(at, trials=4, epochs=2):
    at.number_input(key="caviar:trials").set_value(trials)
    at.number_input(key="caviar:epochs").set_value(epochs).run()
    return at


def wait_for_study(study_id, timeout=STUDY_DEADLINE):
    """The study's trials once it is done (its StudyManager thread ended too)."""
    store = manager().store
    until(lambda: store.get_study(study_id).status in ("done", "failed"), f"study {study_id} to end", timeout)
    until(lambda: not studies().running(study_id), "the study's thread to end")
    assert store.get_study(study_id).status == "done", store.get_study(study_id).error
    return store.trials(study_id)


def progress_text(at):
    (bar,) = at.get("progress")
    return bar.proto.text


def trained(store, trials=6, seed=0):
    """A study of the seed's default space whose trials are recorded as done, each with a dev cost (no
    training): enough for the study view, the leaderboard and zooming in."""
    space = SearchSpace.from_dict({name: {kind: [json.loads(v) for v in text.split(",")]}
                                   for name, (kind, text) in SEARCHED.items()})
    study_id = caviar.create_study(store, space, caviar.StudySettings(n_trials=trials, epochs=2), seed=seed)
    for t in store.trials(study_id):
        store.update_trial(study_id, t.number, status="done", rung=0, epoch=2, step=26,
                           dev_cost=0.3 + 0.1 * t.number, dev_accuracy=0.9 - 0.05 * t.number)
    store.update_study(study_id, status="done")
    return study_id


# -- the new-study form ------------------------------------------------------------------------------


def test_the_form_shows_the_seeds_defaults_and_their_preview():
    at = caviar_app()
    assert [t.value for t in at.title] == ["Caviar"]
    assert [s.value for s in at.subheader] == ["Search space", "Study"]
    checked = {name for name in CANDIDATES if at.checkbox(key=f"caviar:on:{name}").value}
    assert checked == set(SEARCHED)
    for name, (kind, text) in SEARCHED.items():
        assert at.selectbox(key=f"caviar:kind:{name}").value == kind
        assert at.text_input(key=f"caviar:range:{name}:{kind}").value == text
    assert at.selectbox(key="caviar:data").value == "moons"
    assert at.number_input(key="caviar:trials").value == 32
    assert at.number_input(key="caviar:epochs").value == 20
    assert not at.error and not at.warning
    captions = [c.value for c in at.caption]
    for line in ("**alpha** · LogUniform(0.0001, 0.1)", "**beta** · OneMinusLogUniform(0.9, 0.999)",
                 "**L** · IntUniform(2, 4)"):
        assert line in captions
    assert any(c.startswith("averaging window 1/(1 − β): 10 … ") for c in captions)
    assert len(at.get("plotly_chart")) == 3  # a preview chart per searched name
    assert "Run study" in buttons(at)

    at.checkbox(key="caviar:on:L").uncheck().run()
    assert "**L** · IntUniform(2, 4)" not in [c.value for c in at.caption]
    assert len(at.get("plotly_chart")) == 2


def test_a_bad_range_shows_the_config_error_and_no_study_can_be_run():
    at = caviar_app()
    at.text_input(key="caviar:range:alpha:log_uniform").set_value("0, 0.1").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["alpha: log_uniform needs 0 < lo < hi, got [0, 0.1]"]
    assert "Run study" not in buttons(at)
    assert Store().list_studies() == []

    at.text_input(key="caviar:range:alpha:log_uniform").set_value("0.001, 0.1").run()
    assert not at.error and "Run study" in buttons(at)


def test_a_uniform_alpha_over_four_decades_warns_that_most_samples_land_in_the_top_one():
    at = caviar_app()
    at.selectbox(key="caviar:kind:alpha").set_value("uniform").run()
    at.text_input(key="caviar:range:alpha:uniform").set_value("1e-4, 1").run()
    assert not at.error
    assert [w.value for w in at.warning] == [
        "alpha: uniform over 0.0001 … 1 puts ~90% of the samples in 0.1 … 1; "
        "log_uniform [0.0001, 1] gives each decade the same share"]
    assert "**alpha** · Uniform(0.0001, 1.0)" in [c.value for c in at.caption]
    assert "Run study" in buttons(at)  # a warning, not a refusal


def test_run_study_opens_the_new_study_even_when_another_is_listed(monkeypatch):
    """With a study already in the store the page shows an "open a study" box; Run study must still land
    on the new study, not bounce back to the form (the study itself is not trained here)."""
    store = manager().store
    older = trained(store)
    started = []
    monkeypatch.setattr(studies(), "start", lambda study_id, scheduler=None: started.append(study_id))
    at = small_study(caviar_app())
    assert at.selectbox(key="caviar:open").value == ""
    button(at, "Run study").click().run()
    assert not at.exception

    new = [s.id for s in store.list_studies() if s.id != older]
    assert len(new) == 1 and started == new
    assert at.query_params["study"] == new[0]
    assert at.selectbox(key="caviar:open").value == new[0]
    assert [s.value for s in at.subheader][0] == f"study {new[0][:6]}"

    at.selectbox(key="caviar:open").set_value(older).run()  # the box still opens the other one
    assert at.query_params["study"] == older
    assert [s.value for s in at.subheader][0] == f"study {older[:6]}"
    at.selectbox(key="caviar:open").set_value("").run()
    assert "study" not in at.query_params
    assert "Run study" in buttons(at)


def test_a_link_to_no_study_says_so():
    trained(manager().store)
    at = caviar_app(study="0123456789ab")
    assert "names no study" in at.error[0].value


# -- a study run by the server -----------------------------------------------------------------------


def test_run_study_trains_it_and_the_study_view_offers_the_rest(downloads):
    at = small_study(caviar_app())
    button(at, "Run study").click().run()
    assert not at.exception
    study_id = at.query_params["study"]
    store = manager().store
    info = store.get_study(study_id)
    assert (info.settings["n_trials"], info.settings["epochs"], info.seed) == (4, 2, 0)
    assert set(info.space) == {*SEARCHED, "base"}
    assert len(store.trials(study_id)) == 4
    assert studies().running(study_id) or store.get_study(study_id).status == "done"  # the manager's thread

    trials = wait_for_study(study_id)
    assert [t.status for t in trials] == ["done"] * 4
    assert all(t.epoch == 2 and t.dev_cost is not None for t in trials)
    at.run()  # run_every never fires in AppTest: redraw by hand
    assert not at.exception
    assert at.subheader[0].value == info.name
    assert progress_text(at).startswith("done · 4 of 4 finished: 4 done, 0 failed, 0 pruned; 0 training")
    board = at.dataframe(key=f"caviar:board:{study_id}").value
    best = caviar.best_trial(trials)
    assert board["trial"].tolist() == [t.number for t in caviar.leaderboard(trials)]
    assert board["trial"].iloc[0] == best.number and board["rank"].tolist() == [1, 2, 3, 4]
    assert board["dev cost"].is_monotonic_increasing
    assert {"alpha", "beta", "1/(1−beta)", "L"} <= set(board.columns)
    assert len(at.get("plotly_chart")) == 3  # every trial, cost against alpha, the best curves

    # the best config: a run config holding the best trial's hyperparameters
    labels = [b.label for b in at.download_button]
    assert labels == ["Best config (JSON)", "Leaderboard (CSV)"]
    config = json.loads(downloads[f"{study_id}-best.json"])
    assert RunConfig.from_dict(config).to_dict() == RunConfig.from_dict(best.config).to_dict()
    assert config["hyperparameters"]["alpha"] == best.point["alpha"]
    assert config["hyperparameters"]["beta"] == best.point["beta"]
    assert len(config["model"]["layers"]) == best.point["L"] - 1
    assert f"trial {best.number}: dev cost {caviar.ranking_cost(best):.4f}" in [c.value for c in at.caption]
    assert downloads[f"{study_id}-leaderboard.csv"].splitlines()[1].startswith(f"1,{best.number},done,")

    # the best row, selected, goes to panda mode as a paused run at the trial's step
    at.session_state[f"caviar:board:{study_id}"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    button(at, f"Babysit trial {best.number}").click().run()
    assert not at.exception
    run_id = at.query_params["run"]
    assert "study" not in at.query_params
    run = store.get_run(run_id)
    assert (run.status, run.step) == ("paused", best.step)
    assert store.trials(study_id)[best.number].run_id == run_id
    assert at.title[0].value == f"trial {best.number} of study {study_id[:6]}"
    assert status_line(at).startswith(f"**paused** · step **{best.step}**")

    # zoom in: a child study around the best trials, started and opened
    at = caviar_app(study=study_id)
    at.number_input(key="caviar:zoom-top").set_value(2).run()
    button(at, "Zoom in").click().run()
    assert not at.exception
    child = at.query_params["study"]
    assert child != study_id
    child_info = store.get_study(child)
    assert child_info.parent == study_id and child_info.seed == info.seed + 1
    assert at.subheader[0].value == child_info.name == f"{info.name} › zoom"
    assert f"zoomed in from [{study_id}](?study={study_id})" in at.caption[0].value
    top = caviar.leaderboard(trials)[:2]
    space = SearchSpace.from_dict(child_info.space)
    assert space.distributions["L"].low == min(t.point["L"] for t in top)
    assert space.distributions["L"].high == max(t.point["L"] for t in top)
    assert all(space.distributions["alpha"].low <= t.point["alpha"] <= space.distributions["alpha"].high
               for t in top)
    wait_for_study(child)  # trained on the same cluster; nothing left running at teardown
