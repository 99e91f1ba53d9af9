"""The panda journey in a real browser against a real `streamlit run app.py` server.

One run, followed from the new-run form through training, a change of alpha made with the keyboard
while it trains, a pause, the exports, a reload, a broken CSV on the new-run form, and a server
restart. The tests run in file order and share the run (``journey``); each says so and skips when
an earlier step did not leave what it needs. What the page did is checked in the page and, where
the page draws on a canvas or in plotly, in the server's store (``Store(home)``), opened read-only
from this process.

Screenshots of the main states go to tests/artifacts/e2e/ (git-ignored), with the server's log.
"""

import json
import os
import re
import time

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (scripts/test installs it)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.txt)")

from live_charts import COST_CHART, chart_count, cost_chart_box, status_lines, wait_for_status  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from babysit.config import RunConfig  # noqa: E402
from babysit.store import Store  # noqa: E402

STATUS = re.compile(r"^(created|running|paused|stopped|failed) · step ([\d,]+) · epoch")
RUN_URL = re.compile(r"\?run=([0-9a-f]{12})$")
ALPHA = "α, learning rate"
NOTCHES = ["0.0126", "0.0158", "0.02"]  # from 0.01, each notch of the α slider multiplies it by 10^0.1 ≈ 1.26
BROKEN_CSV = b"x,y,label\n1,oops,a\n2,3,b\n"
WAIT = 30_000  # ms, for anything the server has to draw


@pytest.fixture(scope="module")
def journey():
    return {}


def needs(journey, *keys):
    missing = [k for k in keys if k not in journey]
    if missing:
        pytest.skip(f"an earlier step of the journey did not finish (no {', '.join(missing)})")
    return [journey[k] for k in keys]


def shot(page, artifacts, name):
    page.screenshot(path=str(artifacts / f"{name}.png"))


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


def status(page):
    """(status, step) from the status line over the charts."""
    line = wait_for_status(page, " · step ", timeout=WAIT)
    match = STATUS.match(line)
    assert match, f"unexpected status line {line!r}"
    return match.group(1), int(match.group(2).replace(",", ""))


def resumes(home, run_id):
    return read_store(home, lambda s: sum(e.kind == "resume" for e in s.events(run_id)))


def alpha_slider(page):
    return page.get_by_test_id("stSidebar").get_by_role("slider", name=ALPHA)


def cost_chart_data(page):
    """Name and number of points of each trace of the cost chart, read from plotly's own data (x may
    arrive base64-packed as {dtype, bdata}: the points plotly computed are counted instead)."""
    return page.evaluate(f"""() => {{
        const chart = {COST_CHART};
        if (!chart) return null;
        return chart.data.map((t, i) => ({{name: t.name, n: (chart.calcdata[i] || []).length,
                                           text: Array.isArray(t.text) ? t.text : null}}));
    }}""")


def user_alpha_changes(home, run_id):
    return read_store(home, lambda s: [e for e in s.events(run_id)
                                       if e.kind == "change" and "alpha" in e.changes and e.source == "user"])


def download_json(page, label):
    with page.expect_download(timeout=WAIT) as info:
        page.get_by_role("button", name=label).click()
    download = info.value
    with open(download.path(), encoding="utf-8") as f:
        return download.suggested_filename, json.load(f)


# -- the journey ------------------------------------------------------------------------------------


def test_a_create_a_run_with_the_defaults_and_start_it(page, server, artifacts, journey):
    page.goto(server.url)
    create = page.get_by_role("button", name="Create run")
    expect(create).to_be_enabled(timeout=60_000)  # goto returns before the websocket has drawn the page
    expect(page.get_by_role("heading", name="New run")).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=WAIT)  # the moons preview
    shot(page, artifacts, "01-new-run-form")

    create.click()
    page.wait_for_url(RUN_URL, timeout=WAIT)
    run_id = RUN_URL.search(page.url).group(1)
    wait_for_status(page, "created · step 0", timeout=WAIT)
    assert read_store(server.home, lambda s: s.get_run(run_id).status) == "created"

    page.get_by_role("button", name="Start").click()
    wait_for_status(page, "running", timeout=WAIT)
    journey["run_id"] = run_id


def test_b_the_cost_chart_gains_points_while_it_trains(page, server, artifacts, journey):
    (run_id,) = needs(journey, "run_id")
    _, first = status(page)
    until(lambda: status(page)[1] > first, "the status line's step to grow", timeout=20)
    _, second = status(page)
    assert second > first
    until(lambda: chart_count(page) == 4, "the cost, accuracy, decision boundary and health charts")

    points = until(lambda: (d := cost_chart_data(page)) and {t["name"]: t["n"] for t in d}.get("mini-batch cost"),
                   "points on the cost chart")
    later = until(lambda: {t["name"]: t["n"] for t in cost_chart_data(page)}["mini-batch cost"] != points
                  or None, "the cost chart to redraw with new points", timeout=20)
    assert later
    shot(page, artifacts, "02-training")

    # the status line and the cost chart are fetched every second while the run trains
    asked = []
    page.on("request", lambda r: f"/babysit/live/{run_id}/cost" in r.url and asked.append(time.monotonic()))
    page.wait_for_timeout(6_000)
    assert len(asked) >= 5, f"{len(asked)} fetches of the cost chart in 6 s"
    assert max(b - a for a, b in zip(asked, asked[1:], strict=False)) < 1.5, asked


def test_b_a_zoomed_cost_chart_stays_zoomed_while_it_redraws(page, server, artifacts, journey):
    (run_id,) = needs(journey, "run_id")
    assert status(page)[0] == "running"
    def view():
        return page.evaluate(f"""() => {{ const c = {COST_CHART};
            return {{range: c._fullLayout.xaxis.range, auto: c._fullLayout.xaxis.autorange,
                     n: c.calcdata[0].length, last: c.calcdata[0][c.calcdata[0].length - 1].x}}; }}""")

    before = view()
    assert before["auto"]
    # as a user zooms: drag across the middle of the cost plot, along x
    box = cost_chart_box(page, ".nsewdrag")
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y + 2, steps=8)
    page.mouse.up()
    zoomed = until(lambda: (v := view()) and not v["auto"] and v, "the cost chart to zoom")
    width = before["range"][1] - before["range"][0]
    assert zoomed["range"][1] - zoomed["range"][0] < 0.5 * width

    # redraws with new points come and go; the view the user chose stays
    until(lambda: view()["last"] > zoomed["last"] or None, "the cost chart to redraw with new points", timeout=20)
    time.sleep(1.5)
    after = view()
    assert after["last"] > zoomed["last"]
    assert not after["auto"]
    assert after["range"] == pytest.approx(zoomed["range"])
    shot(page, artifacts, "02b-zoomed-while-training")

    # a double click is plotly's way back to the whole curve, and it then follows the new points again
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    until(lambda: view()["auto"], "the cost chart to zoom back out")


def test_b_a_chart_scrolled_out_of_view_waits_and_catches_up_when_it_comes_back(page, server, artifacts, journey):
    (run_id,) = needs(journey, "run_id")
    assert status(page)[0] == "running"

    def points():
        return {t["name"]: t["n"] for t in cost_chart_data(page)}["mini-batch cost"]

    def cost_chart_in_view():
        return page.evaluate(f"""() => {{ const r = ({COST_CHART}).ownerDocument.defaultView.frameElement
            .getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; }}""")

    page.get_by_role("tab", name="Export").scroll_into_view_if_needed()  # down to the tabs
    until(lambda: not cost_chart_in_view(), "the cost chart to scroll out of view")
    time.sleep(0.5)  # a redraw under way when it left may still land
    hidden, step = points(), status(page)[1]
    until(lambda: status(page)[1] > step + 1000, "the run to train on", timeout=20)
    time.sleep(2.5)  # two refreshes or more, each sending the chart a new figure
    assert points() == hidden  # not redrawn out of view

    page.get_by_text("Event log", exact=True).scroll_into_view_if_needed()
    page.evaluate(f"() => ({COST_CHART}).ownerDocument.defaultView.frameElement.scrollIntoView()")
    until(cost_chart_in_view, "the cost chart back in view")
    until(lambda: points() != hidden or None, "the cost chart to draw the newest figure", timeout=10)


def test_c_alpha_moved_with_the_keyboard_while_it_trains(page, server, artifacts, journey):
    (run_id,) = needs(journey, "run_id")
    assert status(page)[0] == "running"
    slider = alpha_slider(page)
    expect(slider).to_have_attribute("aria-valuetext", "0.01")
    slider.focus()
    for notch in NOTCHES:  # as a user does: look at the value after each press
        slider.press("ArrowRight")
        expect(slider).to_have_attribute("aria-valuetext", notch, timeout=WAIT)
    new_alpha = 0.02

    # applied by the run, as the user asked (the store's event log: the page draws it on a canvas)
    until(lambda: (c := user_alpha_changes(server.home, run_id)) and c[-1].changes["alpha"][1] == new_alpha,
          "the change to alpha to be applied")
    changes = user_alpha_changes(server.home, run_id)
    assert changes[0].changes["alpha"][0] == 0.01
    assert [c.changes["alpha"][1] for c in changes] == sorted(c.changes["alpha"][1] for c in changes)
    journey.update(new_alpha=new_alpha)
    if read_store(server.home, lambda s: s.get_run(run_id)).status == "paused":
        # deep into overfitting, a notch on the way can trip the guardrail: 0.02 then comes while the run
        # is paused, and no step at it gives the α row a value to draw; resume, as its user would
        expect(page.get_by_text("Paused by the guardrail")).to_be_visible(timeout=WAIT)
        before = resumes(server.home, run_id)
        page.get_by_role("button", name="Resume", exact=True).click()
        until(lambda: resumes(server.home, run_id) > before, "the resume to reach the run", timeout=30)

    # the marker: a hover target on the cost chart whose text names the change
    def marker_text():
        data = cost_chart_data(page) or []
        return " ".join(" ".join(t["text"] or []) for t in data if t["name"] == "events")

    until(lambda: "→ 0.02" in marker_text(), "the change's marker on the cost chart")
    assert "alpha 0.01 → " in marker_text()
    # the chance line and a change line
    assert page.evaluate(f"() => {COST_CHART}.querySelectorAll('.shapelayer path').length") >= 2
    # the α row's tick labels are values of α once it spans the change (a bare "2" for 0.02 read as α = 2)
    def alpha_ticks():
        return page.evaluate(f"""() => [...({COST_CHART})
            .querySelectorAll('.yaxislayer-above .y2tick text')].map(t => t.textContent.replace('\u2212', '-'))""")

    labels = until(lambda: "0.02" in (t := alpha_ticks()) and t, "a tick labelled 0.02 on the α row")
    assert all(0.001 <= float(label) <= 0.1 for label in labels), labels

    time.sleep(1.5)  # a redraw or two later the slider still shows what the user chose
    expect(slider).to_have_attribute("aria-valuetext", "0.02")
    # the event log, drawn with the page and redrawn when an event comes, lists it (its grid keeps the
    # cells it draws on a canvas in a table for screen readers too)
    log = page.get_by_test_id("stDataFrame").last.locator("table")
    expect(log).to_contain_text(re.compile(r"alpha 0\.\d+ → 0\.02 at step"), timeout=WAIT)
    shot(page, artifacts, "03-after-alpha-change")


def test_d_pause(page, server, artifacts, journey):
    (run_id,) = needs(journey, "run_id")
    if status(page)[0] == "paused":
        # the raised alpha on a run tens of thousands of steps into overfitting can trip the guardrail
        # first; resuming is what its user would do, and the guardrail starts its watch afresh
        expect(page.get_by_text("Paused by the guardrail")).to_be_visible()
        before = resumes(server.home, run_id)
        page.get_by_role("button", name="Resume", exact=True).click()
        until(lambda: resumes(server.home, run_id) > before, "the resume to reach the run", timeout=30)
    try:
        page.get_by_role("button", name="Pause").click(timeout=10_000)
    except PlaywrightTimeout:
        # resumed at α = 0.02 deep into overfitting, the run can trip its guardrail again within a second,
        # before Pause is pressed: it is paused already
        expect(page.get_by_text("Paused by the guardrail")).to_be_visible()
    info = until(lambda: (r := read_store(server.home, lambda s: s.get_run(run_id))).status == "paused" and r,
                 "the store to record the pause")
    # the page shows the step the store holds, at its next refresh (a line already there may predate it)
    step = info.step
    wait_for_status(page, f"paused · step {step:,} ·", timeout=WAIT)
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_enabled()
    time.sleep(1.2)  # a refresh later, still the same step: the run is paused
    assert status(page) == ("paused", step)
    journey["paused_step"] = step
    shot(page, artifacts, "04-paused")


def test_e_export_the_tuned_config_and_the_run_config_with_its_schedule(page, server, artifacts, journey):
    run_id, new_alpha, _ = needs(journey, "run_id", "new_alpha", "paused_step")
    page.get_by_role("tab", name="Export").click()
    expect(page.get_by_role("button", name="Tuned config (JSON)")).to_be_visible(timeout=WAIT)

    name, tuned = download_json(page, "Tuned config (JSON)")
    assert name == f"{run_id}-tuned.json"
    assert tuned["hyperparameters"]["alpha"] == new_alpha
    assert tuned.get("schedule", []) == []
    RunConfig.from_dict(tuned)  # a config babysit takes back

    name, replay = download_json(page, "Run config with its schedule (JSON)")
    assert name == f"{run_id}-config.json"
    assert replay["hyperparameters"]["alpha"] == 0.01  # the initial config, the changes as its schedule
    changes = user_alpha_changes(server.home, run_id)
    assert replay["schedule"] == [{"step": c.step + 1, "set": {"alpha": c.changes["alpha"][1]}} for c in changes]
    assert replay["schedule"][-1]["set"] == {"alpha": new_alpha}
    RunConfig.from_dict(replay)
    shot(page, artifacts, "05-export")


def test_f_a_reload_finds_the_same_run_where_it_was(page, server, artifacts, journey):
    run_id, step = needs(journey, "run_id", "paused_step")
    page.reload()
    wait_for_status(page, f"paused · step {step:,}", timeout=WAIT)
    assert run_id in page.url
    expect(page.get_by_text(f"run {run_id}")).to_be_visible()
    expect(alpha_slider(page)).to_have_attribute("aria-valuetext", f"{journey['new_alpha']:.3g}")


def test_g_a_broken_csv_on_the_new_run_form_is_refused_and_the_run_is_untouched(page, server, artifacts, journey):
    run_id, step = needs(journey, "run_id", "paused_step")
    before = read_store(server.home, lambda s: s.get_run(run_id))

    page.get_by_test_id("stSidebar").get_by_role("button", name="New run").click()
    expect(page.get_by_role("heading", name="New run")).to_be_visible(timeout=WAIT)
    expect(page).not_to_have_url(RUN_URL)
    page.get_by_test_id("stRadio").get_by_text("CSV file", exact=True).click()
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="CSV file: numeric features")
    expect(uploader).to_be_visible(timeout=WAIT)
    uploader.locator("input[type=file]").set_input_files(
        files=[{"name": "broken.csv", "mimeType": "text/csv", "buffer": BROKEN_CSV}])

    error = page.get_by_test_id("stAlert").filter(has_text="not numeric")
    expect(error).to_be_visible(timeout=WAIT)
    expect(error).to_contain_text("'y'")
    expect(error).to_contain_text("broken.csv")
    expect(page.get_by_role("button", name="Create run")).to_be_disabled()
    shot(page, artifacts, "06-csv-error")

    after = read_store(server.home, lambda s: s.get_run(run_id))
    assert (after.status, after.step, after.hyperparameters) == (before.status, before.step, before.hyperparameters)
    assert after.step == step
    assert run_id in [r.id for r in read_store(server.home, lambda s: s.list_runs())]
    assert len(read_store(server.home, lambda s: s.list_runs())) == 1  # the broken CSV made no run


def test_h_after_a_server_restart_the_run_and_its_history_are_there(page, server, artifacts, journey):
    run_id, step, new_alpha = needs(journey, "run_id", "paused_step", "new_alpha")
    server.restart()
    assert read_store(server.home, lambda s: s.get_run(run_id)).step == step

    page.goto(f"{server.url}?run={run_id}")
    wait_for_status(page, f"step {step:,}", timeout=60_000)
    state, shown = status(page)
    assert shown == step and state in ("paused", "stopped")
    expect(alpha_slider(page)).to_have_attribute("aria-valuetext", f"{new_alpha:.3g}")

    # the history came back from the store: the cost curve up to that step and the change's marker
    data = until(lambda: (d := cost_chart_data(page)) and d, "the cost chart")
    traces = {t["name"]: t for t in data}
    assert traces["mini-batch cost"]["n"] > 0
    assert "→ 0.02" in " ".join(traces["events"]["text"])
    assert run_id in [r.id for r in read_store(server.home, lambda s: s.list_runs())]
    shot(page, artifacts, "07-after-restart")


def test_i_a_run_resumed_from_a_guardrail_pause_shows_one_status_line(page, server, artifacts):
    """The guardrail's offers go when the run resumes; the live charts below them keep their places and
    their frames (a frame that moves is reloaded, and its status line is gone until its first answer)."""
    page.goto(server.url)
    create = page.get_by_role("button", name="Create run")
    expect(create).to_be_enabled(timeout=60_000)
    create.click()
    page.wait_for_url(RUN_URL, timeout=WAIT)
    run_id = RUN_URL.search(page.url).group(1)
    page.get_by_role("button", name="Start").click()
    wait_for_status(page, "running", timeout=WAIT)

    slider = alpha_slider(page)
    slider.focus()
    slider.press("End")  # α = 1: the cost blows up
    expect(page.get_by_text("Paused by the guardrail")).to_be_visible(timeout=WAIT)
    shot(page, artifacts, "08-guardrail")
    slider.focus()
    slider.press("Home")  # the smallest α, applied while paused
    until(lambda: read_store(server.home, lambda s: s.get_run(run_id).hyperparameters["alpha"]) < 1e-3,
          "the lowered α to be applied")

    # the cost chart's frame is the same one after the offers go (a frame that moved would be reloaded)
    page.evaluate(f"() => {{ {COST_CHART}.ownerDocument.defaultView.__kept = true; }}")
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.get_by_text("Paused by the guardrail")).to_have_count(0, timeout=WAIT)
    assert page.evaluate(f"() => {COST_CHART}.ownerDocument.defaultView.__kept === true")
    deadline = time.monotonic() + 5  # several refreshes
    while time.monotonic() < deadline:
        assert len(lines := status_lines(page)) == 1, lines
        time.sleep(0.2)
    wait_for_status(page, "running")
    page.get_by_role("button", name="Stop").click()
    wait_for_status(page, "stopped", timeout=WAIT)
