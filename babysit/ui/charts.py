"""Plotly figures for the babysitting page: pure functions of a Snapshot (or of plain arrays).

Nothing here imports streamlit, so every figure can be built and inspected in a test without a
server. The figures only ever carry the snapshot's downsampled series (a few thousand points
whatever the run's length), so refreshing a chart every second stays cheap.

A change recorded at step s takes effect from update s + 1; its marker is drawn at x = s, the
boundary between the last update made with the old value and the first made with the new one.
"""

import copy
import functools

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from babysit.history import MinMaxSeries
from models.schedules import alpha_at

AXES = {"step": "step", "epoch": "epoch", "examples": "examples seen"}  # x axis choice -> its label
WAITING = "waiting for the first steps"
# No plotly template: the page draws every chart in Streamlit's theme anyway, and plotly copies and
# validates its default template into every new figure (more than half the build time, once a second).
pio.templates.default = None
MARGIN = dict(l=50, r=10, t=30, b=40)
LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0)
HEIGHTS = {"cost": 420, "accuracy": 260, "health": 520, "boundary": 420, "preview": 260, "decay": 200,
           "probe": 320, "compare": 380}

CLASS_COLOURS = qualitative.D3
LAYER_COLOURS = qualitative.Plotly
RAW_COST = "rgba(31, 119, 180, 0.35)"  # light: the min/max points are noisy by design
SMOOTH_COST = "#1f77b4"
TRAIN, DEV = "#2ca02c", "#ff7f0e"
ALPHA = "#444444"

HEALTHY_RATIO = 1e-3  # CS231n's rule of thumb for ‖ΔW‖ / ‖W‖
HEALTHY_BAND = (3e-4, 3e-3)

# How an event's vertical line looks, by style (see _event_style); listed from most to least severe,
# so when several events share a step the line takes the most severe one's look.
EVENT_STYLES = {
    "guardrail": ("#d62728", "dash"),  # tripped, or a change/rewind the guardrail's offer made
    "rewind": ("#8c564b", "dashdot"),
    "change": ("#444444", "dash"),  # a change made by hand
    "scheduled": ("#9e9e9e", "dot"),  # a change replayed from the config's schedule
}
MARKED = ("change", "rewind", "guardrail")  # pauses, resumes and probes would only clutter the chart
MAX_COMPARE_POINTS = 2000  # per run: compare_figure gets whole stored histories
MAX_SCATTER_POINTS = 5000  # per data-set scatter: a large CSV would make a huge page


# -- x axis and smoothing ------------------------------------------------------------------------


def x_values(snapshot, steps, axis):
    """Step numbers as positions on the chosen x axis: "step", "epoch" (fractional) or "examples"."""
    steps = np.asarray(steps, np.float64)
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")
    if axis == "step":
        return steps
    known_steps, known_examples = _examples_curve(snapshot)
    seen = np.interp(steps, known_steps, known_examples)
    # a partial last batch makes an epoch fewer examples than m × batches: count examples, not steps
    return seen if axis == "examples" else seen / max(snapshot.n_train, 1)


def _examples_curve(snapshot):
    """(steps, examples seen) known points, from step 0 to the snapshot's step, for interpolation."""
    xs, ys = snapshot.series.get("examples_seen", (np.empty(0), np.empty(0)))
    xs, ys = np.concatenate([[0.0], xs]), np.concatenate([[0.0], ys])
    if snapshot.step > xs[-1]:  # the series may lag the trainer by the steps not yet folded in
        xs, ys = np.append(xs, snapshot.step), np.append(ys, snapshot.examples_seen)
    xs, first = np.unique(xs, return_index=True)  # np.interp wants increasing x
    return xs, ys[first]


def smoothed_cost(cost_means, beta):
    """Bias-corrected exponentially weighted average of bucket means; returns (x, smoothed).

    A bucket ending at x_i covers w_i = x_i - x_{i-1} steps (the first covers x_0), so it counts as
    w_i steps of its mean: s = beta^w · s + (1 - beta^w) · mean, divided by 1 - beta^(steps so far).
    This equals the per-step average whenever the buckets are one step wide, and keeps the same
    time constant (≈ 1 / (1 - beta) steps) however far the history has been downsampled.
    """
    x, means = (np.asarray(a, np.float64) for a in cost_means)
    if beta == 0 or x.size == 0:
        return x, means.copy()
    widths = np.diff(x, prepend=0.0)
    out = np.empty(x.size)
    s = 0.0
    # a plain loop over Python floats: a recurrence with varying decay does not vectorise exactly
    for i, (w, m, total) in enumerate(zip(widths.tolist(), means.tolist(), x.tolist(), strict=True)):
        decay = beta**w
        s = decay * s + (1.0 - decay) * m
        out[i] = s / (1.0 - beta**total)
    return x, out


def _finite(values):
    """Non-finite values (a diverged cost) become NaN: plotly draws a gap instead of failing on inf."""
    values = np.asarray(values, np.float64)
    return np.where(np.isfinite(values), values, np.nan)


# -- shared layout pieces -------------------------------------------------------------------------


def _style(fig, height, uirevision=None, **layout):
    fig.update_layout(height=height, margin=MARGIN, legend=LEGEND, hovermode="closest",
                      uirevision=uirevision, **layout)
    return fig


def _waiting(height, uirevision=None, text=WAITING):
    """An empty figure that says why it is empty (a run just created has no points yet)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#888888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, height, uirevision)


class _Draft:
    """A live chart's figure gathered as plain dicts, made a plotly Figure once at the end.

    The cost, accuracy and health charts are rebuilt at every refresh. Plotly's incremental API
    (make_subplots, add_shape, update_layout, update_yaxes) checks every property path at every call:
    about 25 ms for the cost chart, on the server's one interpreter that all pages share, where one
    Figure made from dicts costs about 3. Row r of a stack uses axes x<r> and y<r>, as make_subplots
    names them.
    """

    def __init__(self, rows=1, row_heights=None, spacing=0.0):
        self.data, self.stacked = [], rows > 1
        self.layout = copy.deepcopy(_stacked_axes(rows, row_heights, spacing)) if self.stacked else {}
        self.layout["shapes"] = []

    def add_trace(self, trace, row=1):
        if self.stacked:
            trace.update(xaxis=_axis_ref("x", row), yaxis=_axis_ref("y", row))
        self.data.append(trace)

    def add_shape(self, **shape):
        self.layout["shapes"].append(shape)

    def axis(self, name, row=1, **settings):
        """Settings of axis ``name`` ("x" or "y") of row ``row``."""
        self.layout.setdefault(f"{name}axis{row if row > 1 else ''}", {}).update(settings)

    def figure(self, height, uirevision):
        layout = dict(self.layout, height=height, margin=MARGIN, legend=LEGEND, hovermode="closest",
                      uirevision=uirevision)
        return go.Figure(data=self.data, layout=layout)


def _axis_ref(name, row):
    return f"{name}{row if row > 1 else ''}"


@functools.cache
def _stacked_axes(rows, row_heights, spacing):
    """The layout of ``rows`` rows sharing one x axis, as make_subplots lays them out (made once)."""
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=spacing,
                        row_heights=list(row_heights) if row_heights else None)
    return fig.layout.to_plotly_json()


def _axis_revisions(draft, snapshot, axis, n_x):
    """Zoom and pan survive refreshes (layout.uirevision), but not a switch of x axis: a range in
    steps means nothing in epochs, so each x axis keeps its zoom under its own revision."""
    for row in range(1, n_x + 1):
        draft.axis("x", row, uirevision=f"{snapshot.run_id}/{axis}")


def _series(snapshot, name, axis):
    """(x on the chosen axis, finite-or-NaN y) of a downsampled series, or None if it has no points."""
    if name not in snapshot.series:
        return None
    steps, values = snapshot.series[name]
    return x_values(snapshot, steps, axis), _finite(values)


# -- events -------------------------------------------------------------------------------------


def _event_style(event):
    if event.kind == "guardrail" or event.source == "guardrail":
        return "guardrail"
    if event.kind == "rewind":
        return "rewind"
    return "change" if event.source == "user" else "scheduled"


def _marked_events(snapshot, axis):
    """[(x, style, hover text)], one per step that has applied changes, rewinds or guardrails.

    Undone events (rewound past) are no longer part of the run's timeline: they get no marker.
    Events sharing a step share one marker (hover text one line each), styled by the most severe.
    """
    by_step = {}
    for event in snapshot.events:
        if event.kind in MARKED and not event.undone:
            by_step.setdefault(event.step, []).append(event)
    if not by_step:
        return []
    steps = sorted(by_step)
    xs = x_values(snapshot, steps, axis)
    severity = list(EVENT_STYLES)
    out = []
    for x, step in zip(xs.tolist(), steps, strict=True):
        events = by_step[step]
        style = min((_event_style(e) for e in events), key=severity.index)
        out.append((x, style, "<br>".join(e.describe() for e in events)))
    return out


def _event_lines(draft, marked, xref="x"):
    """A dashed vertical line per marked step, across the whole plot height (every row)."""
    for x, style, _ in marked:
        colour, dash = EVENT_STYLES[style]
        draft.add_shape(type="line", xref=xref, yref="paper", x0=x, x1=x, y0=0, y1=1, layer="below",
                        line=dict(color=colour, dash=dash, width=1.5))


def _event_markers(draft, marked):
    """Hover targets for the event lines: small triangles along the top edge of the cost row.

    Shapes cannot carry hover text, so each line gets a scatter point; it sits on a hidden [0, 1]
    axis overlaying the cost axis, so it stays at the top whatever the cost's range or log scale.
    """
    if not marked:
        return
    xs, styles, texts = zip(*marked, strict=True)
    draft.data.append(dict(
        type="scatter", x=list(xs), y=[1.0] * len(xs), text=list(texts), mode="markers", name="events",
        showlegend=False, marker=dict(symbol="triangle-down", size=10, color=[EVENT_STYLES[s][0] for s in styles]),
        hovertemplate="%{text}<extra></extra>", cliponaxis=False, xaxis="x", yaxis="y3",
    ))
    draft.layout["yaxis3"] = dict(overlaying="y", anchor="x", range=[0, 1], fixedrange=True, visible=False)


# -- cost -------------------------------------------------------------------------------------------


def cost_figure(snapshot, axis="step", log_y=False, beta=0.9):
    """Row 1: mini-batch cost (raw min/max points and smoothed), train/dev cost, event markers.
    Row 2: alpha in force (log) and any other numeric hyperparameter changed by an event."""
    if "cost" not in snapshot.series:
        return _waiting(HEIGHTS["cost"], snapshot.run_id)
    draft = _Draft(rows=2, row_heights=(0.75, 0.25), spacing=0.04)
    _cost_traces(draft, snapshot, axis, beta)
    _chance_line(draft, snapshot)
    _alpha_traces(draft, snapshot, axis)
    marked = _marked_events(snapshot, axis)
    _event_lines(draft, marked)
    _event_markers(draft, marked)
    draft.axis("y", 1, title=dict(text="cost"), type="log" if log_y else "linear",
               # a range zoomed on a linear axis is nonsense on a log one: one revision per type
               uirevision=f"{snapshot.run_id}/{'log' if log_y else 'linear'}")
    # the α row is short: a few ticks in 1e-3 notation, not a label at every 2 and 5
    # (not dtick "D2": it labels 2·10ⁿ and 5·10ⁿ with a bare "2" and "5", so α = 0.02 read as "2")
    draft.axis("y", 2, title=dict(text="α"), type="log", nticks=3, exponentformat="e")
    draft.axis("x", 2, title=dict(text=AXES[axis]))
    _axis_revisions(draft, snapshot, axis, 2)
    return draft.figure(HEIGHTS["cost"], snapshot.run_id)


def _cost_traces(draft, snapshot, axis, beta):
    x, y = _series(snapshot, "cost", axis)
    draft.add_trace(dict(type="scatter", x=x, y=y, mode="lines", name="mini-batch cost",
                         line=dict(color=RAW_COST, width=1)))
    steps, smooth = smoothed_cost(snapshot.cost_means, beta)
    draft.add_trace(dict(type="scatter", x=x_values(snapshot, steps, axis), y=_finite(smooth), mode="lines",
                         name=f"smoothed (β = {beta:g})", line=dict(color=SMOOTH_COST, width=2.5)))
    for name, label, colour in (("train_cost", "train cost", TRAIN), ("dev_cost", "dev cost", DEV)):
        points = _series(snapshot, name, axis)
        if points is not None:
            draft.add_trace(_evaluation_trace(*points, label, colour))


def _evaluation_trace(x, y, name, colour):
    # markers show where evaluations were taken; past a few hundred they only blur the line
    mode = "lines+markers" if x.size <= 300 else "lines"
    return dict(type="scatter", x=x, y=y, mode=mode, name=name, line=dict(color=colour, width=1.5),
                marker=dict(size=4, color=colour))


def _chance_line(draft, snapshot):
    """-ln(1/C): where a network that knows nothing starts; the first cost should be near it."""
    if snapshot.chance_cost is None:
        return
    draft.add_shape(type="line", xref="x domain", yref="y", x0=0, x1=1, y0=snapshot.chance_cost,
                    y1=snapshot.chance_cost, layer="below", line=dict(color="#bbbbbb", dash="dot", width=1),
                    label=dict(text=f"chance ln C = {snapshot.chance_cost:.3g}", textposition="end",
                               font=dict(size=10, color="#999999")))


def _alpha_traces(draft, snapshot, axis):
    """Alpha in force (after decay) as recorded per update; other changed hyperparameters as step
    functions rebuilt from the events, on a right-hand axis of their own so alpha keeps its scale."""
    points = _series(snapshot, "alpha", axis)
    if points is not None:
        draft.add_trace(dict(type="scatter", x=points[0], y=points[1], mode="lines", line_shape="hv",
                             name="α in force", line=dict(color=ALPHA, width=1.5)), row=2)
    others = changed_hyperparameters(snapshot)
    for i, (name, (steps, values)) in enumerate(others.items()):
        draft.data.append(dict(
            type="scatter", x=x_values(snapshot, steps, axis), y=values, mode="lines", line_shape="hv", name=name,
            line=dict(color=LAYER_COLOURS[(i + 1) % len(LAYER_COLOURS)], width=1.5, dash="dot"),
            xaxis="x2", yaxis="y4",
        ))
    if others:
        positive = all(v > 0 for _, values in others.values() for v in values)
        draft.layout["yaxis4"] = dict(overlaying="y2", anchor="x2", side="right", showgrid=False,
                                      type="log" if positive else "linear", title=dict(text=", ".join(others)),
                                      tickmode="auto", nticks=4, exponentformat="e")


def changed_hyperparameters(snapshot):
    """{name: (steps, values)}: each numeric hyperparameter other than alpha that an applied change
    event touched, as a step function from step 0 (the first event's old value) to the snapshot's
    step. Alpha is drawn from its recorded series instead (it includes decay); names without a
    numeric value (optimizer, decay_schedule) show only in the events' hover text."""
    out = {}
    for event in snapshot.events:
        if event.kind != "change" or event.undone:
            continue
        for name, (old, new) in event.changes.items():
            if name == "alpha" or not (_numeric(old) and _numeric(new)):
                continue
            steps, values = out.setdefault(name, ([0], [old]))
            steps.append(event.step)
            values.append(new)
    for steps, values in out.values():
        if snapshot.step > steps[-1]:  # carry the value in force up to now
            steps.append(snapshot.step)
            values.append(values[-1])
    return {name: (np.asarray(s, np.float64), np.asarray(v, np.float64)) for name, (s, v) in out.items()}


def _numeric(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- accuracy and health --------------------------------------------------------------------------


def accuracy_figure(snapshot, axis="step"):
    """Train and dev accuracy at the evaluation points, on [0, 1]."""
    traces = [(_series(snapshot, name, axis), label, colour) for name, label, colour in
              (("train_accuracy", "train accuracy", TRAIN), ("dev_accuracy", "dev accuracy", DEV))]
    traces = [(points, label, colour) for points, label, colour in traces if points is not None]
    if not traces:
        return _waiting(HEIGHTS["accuracy"], snapshot.run_id)
    draft = _Draft()
    for points, label, colour in traces:
        draft.add_trace(_evaluation_trace(*points, label, colour))
    _event_lines(draft, _marked_events(snapshot, axis))
    draft.axis("y", range=[0, 1.02], tickformat=".0%", title=dict(text="accuracy"))  # 1.0 points stay visible
    draft.axis("x", title=dict(text=AXES[axis]))
    _axis_revisions(draft, snapshot, axis, 1)
    return draft.figure(HEIGHTS["accuracy"], snapshot.run_id)


def _layers(snapshot, metric):
    """The layer numbers that have a series for ``metric`` ("update_ratio/2" -> 2), in order."""
    prefix = f"{metric}/"
    return sorted(int(name[len(prefix):]) for name in snapshot.series if name.startswith(prefix))


def health_figure(snapshot, axis="step"):
    """Per layer: update-to-weight ratio (log, healthy band), dead or saturated units %, gradient norm (log)."""
    if "cost" not in snapshot.series:
        return _waiting(HEIGHTS["health"], snapshot.run_id)
    if not _layers(snapshot, "update_ratio"):
        return _waiting(HEIGHTS["health"], snapshot.run_id, "waiting for the first health measurement")
    draft = _Draft(rows=3, spacing=0.06)
    shown = set()  # one legend entry per layer: clicking it toggles that layer in all three rows
    for row, metric, scale in ((1, "update_ratio", 1.0), (2, "dead_fraction", 100.0), (3, "grad_norm", 1.0)):
        for l in _layers(snapshot, metric):
            x, y = _series(snapshot, f"{metric}/{l}", axis)
            draft.add_trace(dict(type="scatter", x=x, y=y * scale, mode="lines", name=f"layer {l}",
                                 legendgroup=f"layer {l}", showlegend=l not in shown,
                                 line=dict(color=LAYER_COLOURS[(l - 1) % len(LAYER_COLOURS)], width=1.5)), row=row)
            shown.add(l)
    _healthy_band(draft)
    _event_lines(draft, _marked_events(snapshot, axis))
    relu = snapshot.config is None or snapshot.config.model.activation == "relu"
    draft.axis("y", 1, title=dict(text="‖ΔW‖ / ‖W‖"), type="log", exponentformat="e")  # not "100µ"
    draft.axis("y", 2, title=dict(text="dead units %" if relu else "saturated %"), range=[0, 100])
    draft.axis("y", 3, title=dict(text="‖dW‖"), type="log", exponentformat="e")
    draft.axis("x", 3, title=dict(text=AXES[axis]))
    _axis_revisions(draft, snapshot, axis, 3)
    return draft.figure(HEIGHTS["health"], snapshot.run_id)


def _healthy_band(draft):
    """Shapes take data values on a log axis (annotations would need log10), hence a labelled line."""
    draft.add_shape(type="rect", xref="x domain", yref="y", x0=0, x1=1, y0=HEALTHY_BAND[0], y1=HEALTHY_BAND[1],
                    fillcolor="rgba(44, 160, 44, 0.10)", line=dict(width=0), layer="below")
    draft.add_shape(type="line", xref="x domain", yref="y", x0=0, x1=1, y0=HEALTHY_RATIO, y1=HEALTHY_RATIO,
                    line=dict(color="#2ca02c", dash="dot", width=1.2), layer="below",
                    label=dict(text="healthy ≈ 1e-3", textposition="end", font=dict(size=10, color="#2ca02c")))


# -- data ---------------------------------------------------------------------------------------------


def grid_for(X, n=120, margin=0.5):
    """(grid_x, grid_y, points (2, n·n)) over the data's bounding box plus ``margin``; point k is
    (grid_x[k % n], grid_y[k // n]), so predictions reshape to (len(grid_y), len(grid_x))."""
    X = np.asarray(X, np.float64)
    lo = X.min(axis=1) - margin if X.shape[1] else np.full(2, -margin - 1.0)
    hi = X.max(axis=1) + margin if X.shape[1] else np.full(2, margin + 1.0)
    grid_x, grid_y = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    xx, yy = np.meshgrid(grid_x, grid_y)
    return grid_x, grid_y, np.vstack([xx.ravel(), yy.ravel()])


def boundary_figure(X, y, grid_x, grid_y, grid_pred, class_names):
    """Decision regions (predicted class on the grid, light) under the training points, equal aspect."""
    n_classes = len(class_names)
    # class indices as small integers: the grid is the bulk of this figure's JSON
    z = np.asarray(grid_pred).reshape(len(grid_y), len(grid_x)).astype(np.int16)
    fig = go.Figure(go.Heatmap(x=np.asarray(grid_x), y=np.asarray(grid_y), z=z, zmin=-0.5, zmax=n_classes - 0.5,
                               colorscale=_stepped_colourscale(n_classes), showscale=False, opacity=0.3,
                               hoverinfo="skip"))
    _class_scatter(fig, X, y, class_names)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_xaxes(constrain="domain")
    return _style(fig, HEIGHTS["boundary"])


def _stepped_colourscale(n_classes):
    """Class i gets colour i flat over [i/C, (i+1)/C], so each region is one colour, not a blend."""
    scale = []
    for i in range(max(n_classes, 1)):
        colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        scale += [[i / max(n_classes, 1), colour], [(i + 1) / max(n_classes, 1), colour]]
    return scale


def _class_scatter(fig, X, y, class_names):
    X, y = np.asarray(X, np.float64), np.asarray(y)
    stride = max(1, -(-y.size // MAX_SCATTER_POINTS))  # every k-th example: the shape shows all the same
    X, y = X[:, ::stride], y[::stride]
    for i, name in enumerate(class_names):
        mask = y == i
        fig.add_trace(go.Scatter(x=X[0, mask], y=X[1, mask], mode="markers", name=str(name),
                                 marker=dict(size=6, color=CLASS_COLOURS[i % len(CLASS_COLOURS)],
                                             line=dict(color="white", width=0.5))))


def data_preview_figure(X, y, class_names):
    """The 2-D data set as a small scatter, coloured by class."""
    fig = go.Figure()
    _class_scatter(fig, X, y, class_names)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return _style(fig, HEIGHTS["preview"])


# -- settings previews, probe, comparison ----------------------------------------------------------


def decay_preview_figure(schedule, alpha, rate, epochs=50):
    """Alpha in force for each of the next ``epochs`` epochs (0 … epochs) under the schedule; log y
    when it varies by more than 10×. Alpha is constant within an epoch, hence a step line."""
    e = np.arange(epochs + 1)
    values = np.array([alpha_at(schedule, alpha, int(k), rate) for k in e], np.float64)
    log = values.min() > 0 and values.max() / values.min() > 10
    fig = go.Figure(go.Scatter(x=e, y=values, mode="lines", line_shape="hv", name="α", line=dict(color=ALPHA, width=2),
                               hovertemplate="epoch %{x}: α = %{y:.3g}<extra></extra>"))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="α", type="log" if log else "linear")
    return _style(fig, HEIGHTS["decay"], showlegend=False)


def probe_figure(result):
    """The LR probe: raw and smoothed cost against alpha (log x), with the suggested alpha marked."""
    if not result.costs:
        return _waiting(HEIGHTS["probe"], text="the probe recorded no costs")
    alphas = np.asarray(result.alphas, np.float64)
    raw, smooth = _finite(result.costs), _finite(result.smoothed)
    fig = go.Figure([
        go.Scatter(x=alphas, y=raw, mode="lines+markers", name="cost", line=dict(color=RAW_COST, width=1),
                   marker=dict(size=3, color=RAW_COST)),
        go.Scatter(x=alphas, y=smooth, mode="lines", name=f"smoothed (β = {result.smoothing:g})",
                   line=dict(color=SMOOTH_COST, width=2.5)),
    ])
    fig.add_shape(type="line", xref="x", yref="paper", x0=result.suggested_alpha, x1=result.suggested_alpha,
                  y0=0, y1=1, line=dict(color="#2ca02c", dash="dash", width=1.5),
                  label=dict(text=f"suggested α = {result.suggested_alpha:.3g}", textposition="end", textangle=0,
                             xanchor="left", font=dict(size=11, color="#2ca02c")))
    fig.update_xaxes(type="log", title_text="α")
    fig.update_yaxes(title_text="cost", range=_probe_range(raw, smooth))
    return _style(fig, HEIGHTS["probe"])


def _probe_range(raw, smooth):
    """Cut the blow-up off: the last raw costs can be orders of magnitude above the useful part."""
    finite = smooth[np.isfinite(smooth)]
    if not finite.size:
        return None
    low = min(np.nanmin(raw), finite.min()) if np.isfinite(raw).any() else finite.min()
    return [min(0.0, low), 1.1 * finite.max()]


def compare_figure(runs, log_y=False):
    """Several runs' costs overlaid; ``runs`` = [(name, steps, cost)] (the caller smooths or not).

    Whole stored histories can be long, so each is cut to its bucket min/max points first."""
    if not runs:
        return _waiting(HEIGHTS["compare"], "compare", "no runs to compare")
    fig = go.Figure()
    for i, (name, steps, cost) in enumerate(runs):
        x, y = _downsample(steps, cost)
        fig.add_trace(go.Scatter(x=x, y=_finite(y), mode="lines", name=str(name),
                                 line=dict(color=LAYER_COLOURS[i % len(LAYER_COLOURS)], width=1.5)))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="cost", type="log" if log_y else "linear",
                     uirevision=f"compare/{'log' if log_y else 'linear'}")
    return _style(fig, HEIGHTS["compare"], "compare")


def _downsample(steps, values):
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    if steps.size <= MAX_COMPARE_POINTS:
        return steps, values
    series = MinMaxSeries(MAX_COMPARE_POINTS // 2)
    series.extend(steps, values)
    return series.points()
