"""The page's figures, built from real sessions' snapshots without a server."""

import dataclasses
import math

import numpy as np
import pytest

from babysit.config import parse_config
from babysit.events import Event
from babysit.history import MinMaxSeries
from babysit.probe import ProbeResult
from babysit.session import Session, SessionSettings
from babysit.store import Store
from babysit.ui import charts
from models.schedules import alpha_at

CONFIG = '{"data": {"name": "moons", "n_samples": 200}}'  # 160 training examples, batches of 64


def run(tmp_path, steps, changes=(), **settings):
    """A real session trained ``steps`` updates; ``changes`` = [(step, {name: value})] applied at those
    steps. Closed (so health and metrics are flushed) before the snapshot is taken."""
    settings = {"eval_every": 10, "health_every": 20, **settings}
    store = Store(home=tmp_path)
    s = Session.create(store, parse_config(CONFIG), settings=SessionSettings(**settings))
    s.submit("start")
    done = 0
    for step, change in [*changes, (steps, None)]:
        for _ in range(step - done):
            s.tick()
        done = step
        if change:
            s.set(**change)
    s.close()
    snap = s.snapshot()
    store.close()
    return snap


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    """300 steps, alpha 0.01 → 0.003 at step 150."""
    return run(tmp_path_factory.mktemp("run"), 300, [(150, {"alpha": 0.003})])


@pytest.fixture
def empty(tmp_path):
    store = Store(home=tmp_path)
    s = Session.create(store, parse_config(CONFIG), settings=SessionSettings())
    snapshot = s.snapshot()
    s.close()
    store.close()
    return snapshot


def trace(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def value_at(t, x):
    i = np.flatnonzero(np.asarray(t.x) == x)
    assert i.size == 1, f"{t.name} has no single point at x={x}"
    return np.asarray(t.y)[i[0]]


# -- events --------------------------------------------------------------------------------------


def test_change_marker_hover_text_is_the_event_description(snap):
    fig = charts.cost_figure(snap)
    events = trace(fig, "events")
    assert list(events.text) == ["alpha 0.01 → 0.003 at step 150"]
    assert list(events.x) == [150.0]
    assert events.hovertemplate == "%{text}<extra></extra>"
    lines = [s for s in fig.layout.shapes if s.xref == "x" and s.yref == "paper"]
    assert [(s.x0, s.x1, s.line.dash) for s in lines] == [(150.0, 150.0, "dash")]


def test_undone_changes_get_no_marker(snap):
    undone = dataclasses.replace(snap, events=tuple(
        dataclasses.replace(e, undone=True) if e.kind == "change" else e for e in snap.events))
    fig = charts.cost_figure(undone)
    assert "events" not in [t.name for t in fig.data]
    assert not [s for s in fig.layout.shapes if s.yref == "paper"]


def test_a_real_rewind_undoes_the_change_and_is_marked_instead(tmp_path):
    store = Store(home=tmp_path)
    s = Session.create(store, parse_config(CONFIG), settings=SessionSettings(eval_every=10, health_every=20))
    s.submit("start")
    for _ in range(100):
        s.tick()
    s.set(alpha=0.003)
    for _ in range(50):
        s.tick()
    s.submit("rewind", step=100)
    s.tick()
    s.close()
    snapshot = s.snapshot()
    store.close()
    text = list(trace(charts.cost_figure(snapshot), "events").text)
    assert len(text) == 1 and text[0].startswith("rewind at step 100")
    assert "alpha" not in text[0]
    colour, dash = charts.EVENT_STYLES["rewind"]
    assert trace(charts.cost_figure(snapshot), "events").marker.color == (colour,)


def test_guardrail_events_are_red_and_share_a_marker_with_a_change_at_the_same_step(snap):
    guard = Event("guardrail", 150, source="guardrail", message="paused: the cost rose")
    fig = charts.cost_figure(dataclasses.replace(snap, events=(*snap.events, guard)))
    events = trace(fig, "events")
    assert list(events.text) == ["alpha 0.01 → 0.003 at step 150<br>guardrail at step 150: paused: the cost rose"]
    red = charts.EVENT_STYLES["guardrail"][0]
    assert events.marker.color == (red,)
    assert [s.line.color for s in fig.layout.shapes if s.yref == "paper"] == [red]


def test_markers_follow_the_x_axis(snap):
    fig = charts.cost_figure(snap, axis="epoch")
    assert trace(fig, "events").x[0] == pytest.approx(charts.x_values(snap, [150], "epoch")[0])


# -- layout ---------------------------------------------------------------------------------------


def test_uirevision_is_the_run_id_and_stays_the_same_between_refreshes(tmp_path):
    store = Store(home=tmp_path)
    s = Session.create(store, parse_config(CONFIG), settings=SessionSettings(eval_every=10, health_every=20))
    s.submit("start")
    figures = []
    for _ in range(2):
        for _ in range(60):
            s.tick()
        snapshot = s.snapshot()
        figures.append([charts.cost_figure(snapshot), charts.accuracy_figure(snapshot)])
    s.close()
    store.close()
    for fig in [f for pair in figures for f in pair]:
        assert fig.layout.uirevision == s.run_id
    assert figures[0][0].layout.xaxis.uirevision == figures[1][0].layout.xaxis.uirevision


def test_health_and_log_cost_keep_the_run_id_as_uirevision(snap):
    for fig in (charts.health_figure(snap), charts.cost_figure(snap, log_y=True)):
        assert fig.layout.uirevision == snap.run_id


def test_log_y_sets_the_cost_axis_type(snap):
    assert charts.cost_figure(snap, log_y=True).layout.yaxis.type == "log"
    assert charts.cost_figure(snap).layout.yaxis.type == "linear"
    # switching scale resets a zoom made in the other scale
    log, linear = charts.cost_figure(snap, log_y=True), charts.cost_figure(snap)
    assert log.layout.yaxis.uirevision != linear.layout.yaxis.uirevision


def test_figures_share_the_page_style(snap):
    """Compact margins, no plotly template (the page's theme styles them), closest hover, legend on top."""
    for fig in (charts.cost_figure(snap), charts.accuracy_figure(snap), charts.health_figure(snap)):
        assert not fig.to_dict()["layout"].get("template")
        assert fig.layout.margin.l == 50 and fig.layout.margin.r == 10
        assert fig.layout.hovermode == "closest"
        assert fig.layout.legend.orientation == "h"
    assert charts.cost_figure(snap).layout.height == 420
    assert charts.accuracy_figure(snap).layout.height == 260
    assert charts.health_figure(snap).layout.height == 520


# -- smoothing and x axes ---------------------------------------------------------------------------


def per_step_ewa(costs, beta):
    v, out = 0.0, []
    for t, c in enumerate(costs, start=1):
        v = beta * v + (1 - beta) * c
        out.append(v / (1 - beta**t))
    return np.array(out)


def test_smoothed_cost_equals_the_per_step_average_for_buckets_one_step_wide():
    rng = np.random.default_rng(0)
    costs = rng.uniform(0.1, 2.0, 700)
    x, y = charts.smoothed_cost((np.arange(1, 701, dtype=float), costs), 0.9)
    assert list(x) == list(range(1, 701))
    np.testing.assert_allclose(y, per_step_ewa(costs, 0.9), rtol=0, atol=1e-12)


def test_smoothed_cost_counts_a_wide_bucket_as_that_many_steps_of_its_mean():
    widths = [1, 3, 2, 8, 1, 16, 5]
    means = [0.9, 0.7, 0.8, 0.4, 0.5, 0.3, 0.35]
    x = np.cumsum(widths).astype(float)
    _, y = charts.smoothed_cost((x, np.array(means)), 0.95)
    expanded = per_step_ewa(np.repeat(means, widths), 0.95)
    np.testing.assert_allclose(y, expanded[x.astype(int) - 1], rtol=0, atol=1e-12)


def test_smoothed_cost_of_a_downsampled_series_stays_close_to_the_per_step_one():
    rng = np.random.default_rng(1)
    costs = np.exp(-np.arange(5000) / 1500) + rng.normal(0, 0.05, 5000)
    series = MinMaxSeries(64)
    series.extend(np.arange(1, 5001), costs)
    x, y = charts.smoothed_cost(series.means(), 0.99)
    exact = per_step_ewa(costs, 0.99)[x.astype(int) - 1]
    assert np.max(np.abs(y - exact)[x > 500]) < 0.05


def test_smoothed_cost_with_beta_zero_is_the_means():
    x, means = np.array([2.0, 4.0, 8.0]), np.array([1.0, 0.5, 0.25])
    assert charts.smoothed_cost((x, means), 0.0)[1].tolist() == [1.0, 0.5, 0.25]


def test_x_values_in_epochs_are_examples_seen_over_n_train(snap):
    steps, examples = snap.series["examples_seen"]
    known = {int(s): e for s, e in zip(steps, examples, strict=True)}
    at = [0, 1, 3, 10, 150, 299]
    epochs = charts.x_values(snap, at, "epoch")
    assert snap.n_train == 160
    assert epochs.tolist() == [0.0] + [known[s] / 160 for s in at[1:]]
    assert epochs[2] == 1.0  # 64 + 64 + 32: the third batch ends the first epoch
    assert charts.x_values(snap, [1, 3], "examples").tolist() == [64.0, 160.0]
    assert charts.x_values(snap, [5, 7], "step").tolist() == [5.0, 7.0]
    with pytest.raises(ValueError):
        charts.x_values(snap, [1], "seconds")


# -- row 2: hyperparameters -----------------------------------------------------------------------


def test_row_two_shows_alpha_in_force_before_and_after_the_change(snap):
    fig = charts.cost_figure(snap)
    alpha = trace(fig, "α in force")
    assert (alpha.xaxis, alpha.yaxis, alpha.line.shape) == ("x2", "y2", "hv")
    assert value_at(alpha, 150.0) == 0.01  # update 150 was still made with the old alpha
    assert value_at(alpha, 151.0) == 0.003
    assert fig.layout.yaxis2.type == "log"


def test_other_changed_hyperparameters_are_step_functions_on_their_own_axis(tmp_path):
    snapshot = run(tmp_path, 300, [(100, {"lambd": 0.01}), (200, {"mini_batch_size": 32, "optimizer": "gd"})])
    fig = charts.cost_figure(snapshot)
    lambd = trace(fig, "lambd")
    assert (lambd.xaxis, lambd.yaxis, lambd.line.shape) == ("x2", "y4", "hv")
    assert list(lambd.x) == [0, 100, 300] and list(lambd.y) == [0.0, 0.01, 0.01]
    assert list(trace(fig, "mini_batch_size").y) == [64, 32, 32]
    assert "optimizer" not in [t.name for t in fig.data]  # not a number: only in the hover text
    assert fig.layout.yaxis4.type == "linear"  # lambd starts at 0: no log axis
    assert fig.layout.yaxis4.overlaying == "y2"
    assert "optimizer adam → gd" in trace(fig, "events").text[1]


def test_the_other_axis_is_log_when_every_value_is_positive(tmp_path):
    snapshot = run(tmp_path, 100, [(50, {"mini_batch_size": 16})])
    assert charts.cost_figure(snapshot).layout.yaxis4.type == "log"


# -- accuracy and health --------------------------------------------------------------------------


def test_accuracy_figure_plots_train_and_dev_on_zero_to_one(snap):
    fig = charts.accuracy_figure(snap)
    steps, values = snap.series["dev_accuracy"]
    assert list(trace(fig, "dev accuracy").y) == list(values)
    assert "train accuracy" in [t.name for t in fig.data]
    assert fig.layout.yaxis.range[0] == 0 and 1 <= fig.layout.yaxis.range[1] <= 1.05


def test_health_figure_has_one_trace_per_layer_per_row_and_the_healthy_reference(snap):
    fig = charts.health_figure(snap)
    rows = {}
    for t in fig.data:
        rows.setdefault(t.yaxis, []).append(t.name)
    assert rows == {"y": ["layer 1", "layer 2", "layer 3"], "y2": ["layer 1", "layer 2"],
                    "y3": ["layer 1", "layer 2", "layer 3"]}
    assert [t.showlegend for t in fig.data].count(True) == 3  # one legend entry per layer
    steps, ratio = snap.series["update_ratio/2"]
    assert list(trace_at(fig, "y", "layer 2").y) == list(ratio)
    _, dead = snap.series["dead_fraction/1"]
    np.testing.assert_allclose(trace_at(fig, "y2", "layer 1").y, 100 * dead)
    reference = [s for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1 == 1e-3]
    assert len(reference) == 1 and reference[0].yref == "y" and reference[0].label.text == "healthy ≈ 1e-3"
    band = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(b.y0, b.y1, b.yref) for b in band] == [(3e-4, 3e-3, "y")]
    assert (fig.layout.yaxis.type, fig.layout.yaxis3.type) == ("log", "log")
    assert tuple(fig.layout.yaxis2.range) == (0, 100)


def trace_at(fig, yaxis, name):
    found = [t for t in fig.data if t.yaxis == yaxis and t.name == name]
    assert len(found) == 1
    return found[0]


def test_health_waits_for_its_first_measurement(tmp_path):
    snapshot = run(tmp_path, 10, health_every=100)
    fig = charts.health_figure(snapshot)
    assert fig.layout.annotations[0].text == "waiting for the first health measurement"


def test_an_empty_snapshot_gives_waiting_figures(empty):
    assert empty.series == {}
    for fig in (charts.cost_figure(empty), charts.cost_figure(empty, "epoch", True),
                charts.accuracy_figure(empty, "examples"), charts.health_figure(empty)):
        assert not fig.data
        assert [a.text for a in fig.layout.annotations] == ["waiting for the first steps"]
        assert fig.layout.uirevision == empty.run_id


def test_every_axis_draws(snap):
    for axis in charts.AXES:
        for fig in (charts.cost_figure(snap, axis), charts.accuracy_figure(snap, axis),
                    charts.health_figure(snap, axis)):
            assert fig.data and fig.to_json()


# -- data ---------------------------------------------------------------------------------------------


def two_class_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 80))
    return X, (X[0] > 0).astype(int)


def test_grid_for_covers_the_data_with_a_margin():
    X, _ = two_class_data()
    grid_x, grid_y, points = charts.grid_for(X, n=50, margin=0.5)
    assert grid_x.shape == grid_y.shape == (50,)
    assert points.shape == (2, 2500)
    assert grid_x[0] == pytest.approx(X[0].min() - 0.5) and grid_x[-1] == pytest.approx(X[0].max() + 0.5)
    assert grid_y[0] == pytest.approx(X[1].min() - 0.5) and grid_y[-1] == pytest.approx(X[1].max() + 0.5)
    assert (points[0, 7], points[1, 7]) == (grid_x[7], grid_y[0])  # point k = (grid_x[k % n], grid_y[k // n])
    assert (points[0, 50 * 3 + 2], points[1, 50 * 3 + 2]) == (grid_x[2], grid_y[3])


def test_boundary_figure_shapes(tmp_path):
    X, y = two_class_data()
    grid_x, grid_y, points = charts.grid_for(X, n=40)
    prediction = (points[0] > 0).astype(int)
    for pred in (prediction, prediction.reshape(40, 40)):  # flat, or already (len(grid_y), len(grid_x))
        fig = charts.boundary_figure(X, y, grid_x, grid_y, pred, ("no", "yes"))
        heatmap = fig.data[0]
        assert heatmap.type == "heatmap" and heatmap.showscale is False
        z = np.asarray(heatmap.z)
        assert z.shape == (40, 40)
        assert (z == (grid_x[None, :] > 0)).all()  # rows are y, columns are x
        scatters = fig.data[1:]
        assert [t.name for t in scatters] == ["no", "yes"]
        assert sum(len(t.x) for t in scatters) == 80
        assert (np.asarray(scatters[1].x) > 0).all()
        assert fig.layout.yaxis.scaleanchor == "x"


def test_data_preview_figure_scatters_each_class():
    X, y = two_class_data()
    fig = charts.data_preview_figure(X, y, (0, 1))
    assert [t.name for t in fig.data] == ["0", "1"]
    assert [len(t.x) for t in fig.data] == [int((y == 0).sum()), int((y == 1).sum())]


# -- previews, probe, comparison ------------------------------------------------------------------------


def test_decay_preview_values_equal_alpha_at():
    fig = charts.decay_preview_figure("inverse_time", 0.1, 0.5)
    t = fig.data[0]
    for epoch in (0, 10, 49):
        assert value_at(t, epoch) == alpha_at("inverse_time", 0.1, epoch, 0.5)
    assert fig.layout.yaxis.type == "log"  # 0.1 down to 0.1 / 26
    assert fig.layout.height == 200
    assert charts.decay_preview_figure("none", 0.1, 0.0).layout.yaxis.type == "linear"


def probe_result():
    alphas = tuple(1e-5 * 10 ** (k / 10) for k in range(40))
    costs = tuple(0.7 - 0.4 * math.tanh(k / 8) if k < 36 else 5.0 * (k - 35) for k in range(40))
    return ProbeResult(alphas=alphas, costs=(*costs[:-1], math.inf), smoothed=costs, suggested_alpha=1e-3,
                       best_alpha=1e-2, falls=True, stopped_early=None, note="", from_step=0, start_cost=0.7,
                       smoothing=0.9)


def test_probe_figure_marks_the_suggested_alpha_on_a_log_axis():
    fig = charts.probe_figure(probe_result())
    assert fig.layout.xaxis.type == "log"
    assert [t.name for t in fig.data] == ["cost", "smoothed (β = 0.9)"]
    assert math.isnan(fig.data[0].y[-1])  # the diverged cost is a gap, not an inf in the JSON
    line = [s for s in fig.layout.shapes if s.x0 == s.x1 == 1e-3]
    assert len(line) == 1 and line[0].label.text == "suggested α = 0.001"
    fig.to_json()


def test_probe_figure_without_costs_says_so():
    empty = dataclasses.replace(probe_result(), alphas=(), costs=(), smoothed=())
    assert charts.probe_figure(empty).layout.annotations[0].text == "the probe recorded no costs"


def test_compare_figure_overlays_named_runs():
    steps = np.arange(1, 101)
    fig = charts.compare_figure([("a", steps, 1 / steps), ("b", steps, 2 / steps)], log_y=True)
    assert [t.name for t in fig.data] == ["a", "b"]
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[1].y) == list(2 / steps)
    assert charts.compare_figure([]).layout.annotations[0].text == "no runs to compare"


def test_compare_figure_downsamples_long_histories_keeping_spikes():
    steps = np.arange(1, 200_001)
    cost = np.full(steps.size, 0.5)
    cost[123_456] = 9.0
    fig = charts.compare_figure([("long", steps, cost)])
    assert len(fig.data[0].x) <= charts.MAX_COMPARE_POINTS + 2
    assert max(fig.data[0].y) == 9.0


# -- size -----------------------------------------------------------------------------------------------


def test_figures_of_a_long_run_stay_small(tmp_path):
    snapshot = run(tmp_path, 20_000, [(5_000, {"alpha": 0.003})], history_capacity=1024)
    assert snapshot.step == 20_000
    for axis in charts.AXES:
        for fig in (charts.cost_figure(snapshot, axis, log_y=True), charts.accuracy_figure(snapshot, axis),
                    charts.health_figure(snapshot, axis)):
            assert len(fig.to_json()) < 600_000
