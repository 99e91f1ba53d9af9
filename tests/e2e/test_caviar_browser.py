"""The caviar journey in a real browser against a real `streamlit run app.py` server.

A small study (8 trials × 3 epochs on the embedded Dask cluster) is set up on the Caviar page's form,
run, and read on its leaderboard; the best trial's row is selected in the grid and handed to panda
mode, where it waits paused at the step the trial reached, with its history, and trains on when
resumed. Before that, the form's preview is checked to follow the space as it is edited.

The tests run in file order and share the study (``journey``); each skips when an earlier step did
not leave what it needs. What the page draws on a canvas (the leaderboard's grid) or in plotly is
checked in the server's store (``Store(home)``, opened read-only from this process) and in plotly's
own data. Screenshots go to tests/artifacts/e2e/caviar-*.png.

Playwright's ``page.url`` can lag one navigation behind Streamlit's history updates (seen with
Streamlit 1.67: after a page switch it still shows the previous page's path), so the address is
read from ``location.href``.
"""

import os
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (scripts/test installs it)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.txt)")

from live_charts import COST_CHART, wait_for_status  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from babysit import caviar  # noqa: E402
from babysit.space import SearchSpace  # noqa: E402
from babysit.store import Store  # noqa: E402

TRIALS, EPOCHS = 8, 3
STATUS = re.compile(r"^(created|running|paused|stopped|failed) · step ([\d,]+) · epoch")
WAIT = 30_000  # ms, for anything the server has to draw
STUDY_DEADLINE = 120_000  # ms: the cluster starts (seconds) and the study trains (seconds)
ROW_HEIGHT = 35  # px: the height of the grid's header and of each of its rows (Streamlit's default)
UNIFORM_WARNING = "alpha: uniform over 0.0001 … 1 puts ~90% of the samples in 0.1 … 1"
FRESH = '[data-testid="stElementContainer"]:not([data-stale="true"])'  # drawn by the newest rerun


@pytest.fixture(scope="module")
def journey():
    return {}


def needs(journey, *keys):
    missing = [k for k in keys if k not in journey]
    if missing:
        pytest.skip(f"an earlier step of the journey did not finish (no {', '.join(missing)})")
    return [journey[k] for k in keys]


def shot(page, artifacts, name):
    page.screenshot(path=str(artifacts / f"caviar-{name}.png"))


def until(condition, what, timeout=20.0, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def read_store(home, read):
    store = Store(str(home))
    try:
        return read(store)
    finally:
        store.close()


def address(page):
    """(path, query) of the address bar as the page has it now."""
    url = urlparse(page.evaluate("location.href"))
    return url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}


def space_row(page, name):
    """The form's row for one hyperparameter: its checkbox, scale and range."""
    checkbox = page.get_by_test_id("stCheckbox").filter(has_text=re.compile(rf"^{re.escape(name)}$"))
    return page.get_by_test_id("stHorizontalBlock").filter(has=checkbox).last, checkbox


def choose(page, within, option):
    """Pick an option of the selectbox ``within`` holds; the menu is opened again if a rerun closed it
    before the option could be clicked."""
    item = page.get_by_role("option", name=option, exact=True)

    def pick():
        if not item.is_visible():
            within.get_by_role("combobox").click()
            try:
                item.wait_for(state="visible", timeout=2_000)
            except PlaywrightTimeout:
                return False
        item.click()
        return True

    until(pick, f"the option {option!r} to be picked", timeout=WAIT / 1000)
    expect(within.get_by_role("combobox")).to_have_value(option, timeout=WAIT)


def study_box(page):
    return page.get_by_test_id("stSelectbox").filter(has=page.get_by_role("combobox", name="open a study"))


def preview_caption(page, name):
    """The caption over a name's preview chart, leaving out the one a rerun has not replaced yet (stale)."""
    captions = page.locator(f'{FRESH} [data-testid="stCaptionContainer"]')
    return captions.filter(has_text=re.compile(rf"^{re.escape(name)} · "))


def number_input(page, label, value):
    """Type a value into a Streamlit number input as a user does: select it all, type, press Enter."""
    field = page.get_by_label(label, exact=True)
    field.click()
    field.press("ControlOrMeta+a")
    field.press_sequentially(str(value))
    field.press("Enter")
    expect(field).to_have_value(str(value))


def status(page):
    """(status, step) from the Babysit page's status line."""
    line = wait_for_status(page, " · step ", timeout=WAIT)
    match = STATUS.match(line)
    assert match, f"unexpected status line {line!r}"
    return match.group(1), int(match.group(2).replace(",", ""))


def progress_text(page):
    return page.get_by_test_id("stProgress")


def parcoords(page):
    """The parallel-coordinates figure as plotly holds it: its axes' labels and each axis's number of values
    (one per line)."""
    return page.evaluate("""() => {
        const plot = [...document.querySelectorAll('.js-plotly-plot')]
            .find(g => (g.data || []).some(t => t.type === 'parcoords'));
        if (!plot) return null;
        const trace = plot.data.find(t => t.type === 'parcoords');
        // plotly may receive the values base64-packed as {dtype: 'f8', bdata}
        const count = v => Array.isArray(v) ? v.length : v && v.bdata ? atob(v.bdata).length / 8 : -1;
        return {labels: trace.dimensions.map(d => d.label), lines: trace.dimensions.map(d => count(d.values))};
    }""")


def cost_points(page):
    """The number of points plotly drew for the cost chart's mini-batch cost (None before it is drawn)."""
    return page.evaluate(f"""() => {{
        const chart = {COST_CHART};
        if (!chart) return null;
        const i = chart.data.findIndex(t => t.name === 'mini-batch cost');
        return (chart.calcdata[i] || []).length;
    }}""")


# -- the journey ------------------------------------------------------------------------------------


def test_a_the_preview_follows_the_space_as_it_is_edited(page, server, artifacts):
    page.goto(f"{server.url}caviar")
    expect(page.get_by_role("button", name="Run study")).to_be_enabled(timeout=60_000)
    expect(page.get_by_role("heading", name="Search space")).to_be_visible()
    # the seed's defaults: alpha, beta and L searched, each with its preview
    for name, repr_ in (("alpha", "LogUniform(0.0001, 0.1)"), ("beta", "OneMinusLogUniform(0.9, 0.999)"),
                        ("L", "IntUniform(2, 4)")):
        expect(preview_caption(page, name)).to_have_text(f"{name} · {repr_}", timeout=WAIT)
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts).to_have_count(3, timeout=WAIT)
    expect(page.get_by_test_id("stAlert")).to_have_count(0)

    row, checkbox = space_row(page, "L")
    checkbox.get_by_text("L", exact=True).click()
    expect(preview_caption(page, "L")).to_have_count(0, timeout=WAIT)
    expect(charts).to_have_count(2)

    row, _ = space_row(page, "alpha")
    choose(page, row, "uniform")
    expect(preview_caption(page, "alpha")).to_contain_text("Uniform(0.0001, 0.1)", timeout=WAIT)
    expect(preview_caption(page, "alpha")).not_to_contain_text("LogUniform")
    field = row.get_by_role("textbox")
    field.fill("1e-4, 1")
    field.press("Enter")
    expect(preview_caption(page, "alpha")).to_have_text("alpha · Uniform(0.0001, 1.0)", timeout=WAIT)
    warning = page.get_by_test_id("stAlert").filter(has_text=UNIFORM_WARNING)
    expect(warning).to_be_visible(timeout=WAIT)
    expect(warning).to_contain_text("log_uniform [0.0001, 1] gives each decade the same share")
    warning.scroll_into_view_if_needed()
    shot(page, artifacts, "01-preview-warning")

    # back to log_uniform, with a lo of 0: refused, saying why, and no study can be started
    choose(page, row, "log_uniform")
    expect(preview_caption(page, "alpha")).to_have_text("alpha · LogUniform(0.0001, 0.1)", timeout=WAIT)
    expect(page.get_by_test_id("stAlert")).to_have_count(0)
    field = row.get_by_role("textbox")
    field.fill("0, 0.1")
    field.press("Enter")
    error = page.get_by_test_id("stAlert").filter(has_text="alpha: log_uniform needs 0 < lo < hi, got [0, 0.1]")
    expect(error).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("button", name="Run study")).to_have_count(0)
    assert read_store(server.home, lambda s: s.list_studies()) == []


def test_b_run_a_small_study_from_the_form(page, server, artifacts, journey):
    # a study already in the store (never run): the page offers it in its "open a study" box, and Run
    # study must still land on the new study
    earlier = read_store(server.home, lambda s: caviar.create_study(
        s, SearchSpace.from_dict({"alpha": {"log_uniform": [0.001, 0.1]}}), caviar.StudySettings(n_trials=1),
        name="an earlier study"))
    page.goto(f"{server.url}caviar")  # a new session: the form's defaults again
    run = page.get_by_role("button", name="Run study")
    expect(run).to_be_enabled(timeout=60_000)
    expect(study_box(page).get_by_role("combobox")).to_have_value("— a new study —")
    expect(preview_caption(page, "L")).to_have_text("L · IntUniform(2, 4)", timeout=WAIT)
    number_input(page, "trials", TRIALS)
    number_input(page, "epochs each", EPOCHS)
    run.click()

    path, query = until(lambda: (a := address(page))[1].get("study") and a, "?study= in the address")
    study_id = query["study"]
    assert path.endswith("/caviar") and re.fullmatch(r"[0-9a-f]{12}", study_id) and study_id != earlier
    info = read_store(server.home, lambda s: s.get_study(study_id))
    assert (info.settings["n_trials"], info.settings["epochs"]) == (TRIALS, EPOCHS)
    assert set(info.space) == {"alpha", "beta", "L", "base"}
    journey["study_id"] = study_id

    progress = progress_text(page)
    expect(progress).to_contain_text(f"of {TRIALS} finished", timeout=WAIT)
    progress.scroll_into_view_if_needed()
    shot(page, artifacts, "02-study-started")
    expect(progress).to_contain_text(f"done · {TRIALS} of {TRIALS} finished: {TRIALS} done, 0 failed",
                                     timeout=STUDY_DEADLINE)
    trials = read_store(server.home, lambda s: s.trials(study_id))
    assert [t.status for t in trials] == ["done"] * TRIALS
    assert all(t.epoch == EPOCHS and t.dev_cost is not None for t in trials)
    assert read_store(server.home, lambda s: s.get_study(study_id)).status == "done"
    assert address(page)[1]["study"] == study_id  # still the new study's page
    journey["best"] = caviar.best_trial(trials)


def test_c_the_leaderboard_and_the_charts_show_every_trial(page, server, artifacts, journey):
    study_id, best = needs(journey, "study_id", "best")
    expect(page.get_by_text("Leaderboard", exact=True)).to_be_visible(timeout=WAIT)
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_have_count(1)
    expect(grid).to_be_visible()
    figure = until(lambda: (p := parcoords(page)) and p["lines"] == [TRIALS] * 4 and p,
                   f"the parallel-coordinates chart with {TRIALS} lines", timeout=WAIT / 1000)
    assert figure["labels"] == ["alpha (log)", "beta: 1/(1−β), log", "L", "dev cost"]
    expect(page.get_by_text("Dev cost against alpha")).to_be_visible()
    expect(page.get_by_text(f"trial {best.number}: dev cost {caviar.ranking_cost(best):.4f}")).to_be_visible()
    expect(page.get_by_role("button", name="Best config (JSON)")).to_be_visible()
    grid.scroll_into_view_if_needed()
    shot(page, artifacts, "03-leaderboard")

    # the "open a study" box shows the study the page opened, after the reruns that drew its results; it
    # goes back to the form and returns to the study
    name = read_store(server.home, lambda s: s.get_study(study_id).name)
    label = f"{name} · {study_id}"
    expect(study_box(page).get_by_role("combobox")).to_have_value(label, timeout=WAIT)
    choose(page, study_box(page), "— a new study —")
    expect(page.get_by_role("button", name="Run study")).to_be_visible(timeout=WAIT)
    until(lambda: "study" not in address(page)[1], "?study= to leave the address")
    choose(page, study_box(page), label)
    expect(progress_text(page)).to_contain_text(f"done · {TRIALS} of {TRIALS} finished", timeout=WAIT)
    until(lambda: address(page)[1].get("study") == study_id, "?study= back in the address")
    expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT)


def test_d_the_best_trials_row_goes_to_panda_mode_paused_where_it_stopped(page, server, artifacts, journey):
    study_id, best = needs(journey, "study_id", "best")
    grid = page.get_by_test_id("stDataFrame")
    grid.scroll_into_view_if_needed()
    # the grid is a canvas: its first row's selection marker sits at the left of the row under the header
    grid.click(position={"x": ROW_HEIGHT / 2, "y": ROW_HEIGHT + ROW_HEIGHT / 2})
    button = page.get_by_role("button", name=re.compile(r"^Babysit trial \d+$"))
    expect(button).to_have_text(f"Babysit trial {best.number}", timeout=WAIT)  # the leaderboard's first row
    shot(page, artifacts, "04-best-row-selected")
    button.click()

    path, query = until(lambda: (a := address(page))[1].get("run") and not a[0].endswith("/caviar") and a,
                        "the Babysit page's ?run= in the address")
    run_id = query["run"]
    assert "study" not in query
    expect(page.get_by_role("heading", name=f"trial {best.number} of study {study_id[:6]}")).to_be_visible(
        timeout=WAIT)
    wait_for_status(page, f"paused · step {best.step:,} · epoch {EPOCHS}", timeout=WAIT)
    assert status(page) == ("paused", best.step)
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_enabled()

    trial = read_store(server.home, lambda s: next(t for t in s.trials(study_id) if t.number == best.number))
    assert trial.run_id == run_id
    run = read_store(server.home, lambda s: s.get_run(run_id))
    assert (run.status, run.step) == ("paused", best.step)
    history = read_store(server.home, lambda s: s.metrics(run_id))
    assert history["step"].tolist() == trial.curve["step"].tolist()  # the trial's curve is the run's history
    # and the page draws it: one mini-batch cost per step the trial trained
    until(lambda: cost_points(page) == best.step, f"{best.step} points on the cost chart", timeout=WAIT / 1000)
    journey["run_id"] = run_id
    shot(page, artifacts, "05-babysit-paused")


def test_e_resume_trains_on_from_the_trials_step(page, server, artifacts, journey):
    run_id, best = needs(journey, "run_id", "best")
    page.get_by_role("button", name="Resume", exact=True).click()
    until(lambda: status(page)[1] > best.step, "the status line's step to grow past the trial's", timeout=30)
    state, step = status(page)
    assert state == "running" and step > best.step
    until(lambda: (cost_points(page) or 0) > best.step, "the cost chart to gain points", timeout=30)
    shot(page, artifacts, "06-resumed")

    page.get_by_role("button", name="Pause").click()  # leave it as the user would, paused
    wait_for_status(page, "paused", timeout=WAIT)
    run = until(lambda: (r := read_store(server.home, lambda s: s.get_run(run_id))).status == "paused" and r,
                "the store to record the pause")
    assert run.step > best.step
