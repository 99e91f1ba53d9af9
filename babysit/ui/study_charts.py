"""Figures for a caviar study: pure functions of its trials (no streamlit here).

Log-scale names are drawn on log axes; beta, beta1 and beta2 by their averaging window 1/(1 − β),
the quantity on which they matter (the seed's 0.9 → 10 steps, 0.999 → 1000).
"""

import math

import numpy as np
import plotly.graph_objects as go

from babysit.caviar import leaderboard, ranking_cost

BETAS = ("beta", "beta1", "beta2")
MARGIN = dict(l=50, r=20, t=40, b=40)


def _empty(text, height=300):
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=MARGIN)
    return fig


def _finished(trials):
    return [t for t in trials if t.status != "failed" and ranking_cost(t) < math.inf]


def axis_values(name, values, log_scale):
    """(values to plot, axis label, tick values, tick labels) for one dimension of the parallel plot."""
    values = np.asarray(values, np.float64)
    if name in BETAS:
        window = 1.0 / np.maximum(1.0 - values, 1e-12)
        return np.log10(window), f"{name}: 1/(1−β), log", *_log_ticks(np.log10(window))
    if log_scale and (values > 0).all():
        return np.log10(values), f"{name} (log)", *_log_ticks(np.log10(values))
    return values, name, None, None


def _log_ticks(logs):
    lo, hi = math.floor(np.nanmin(logs)), math.ceil(np.nanmax(logs))
    ticks = list(range(lo, hi + 1))
    return ticks, [f"{10.0 ** t:g}" for t in ticks]


def parallel_figure(trials, distributions):
    """Parallel coordinates: one line per finished trial through its sampled values to its dev cost."""
    done = _finished(trials)
    if not done:
        return _empty("no finished trial yet", 380)
    costs = [ranking_cost(t) for t in done]
    dims = []
    for name, dist in distributions.items():
        raw = [t.point.get(name) for t in done]
        if dist.kind == "choice":
            options = list(dist.options)
            dims.append(dict(label=name, values=[options.index(v) if v in options else -1 for v in raw],
                             tickvals=list(range(len(options))), ticktext=[str(o) for o in options]))
            continue
        values, label, tickvals, ticktext = axis_values(name, raw, dist.log_scale)
        dim = dict(label=label, values=values)
        if tickvals is not None:
            dim.update(tickvals=tickvals, ticktext=ticktext)
        dims.append(dim)
    dims.append(dict(label="dev cost", values=costs))
    fig = go.Figure(go.Parcoords(line=dict(color=costs, colorscale="Viridis_r", showscale=True,
                                           colorbar=dict(title="dev cost")), dimensions=dims))
    fig.update_layout(height=380, margin=dict(l=60, r=60, t=50, b=30))
    return fig


def cost_vs_figure(trials, name, log_scale=True):
    """Each finished trial's dev cost against one sampled name (alpha on a log x axis)."""
    done = [t for t in _finished(trials) if name in t.point]
    if not done:
        return _empty("no finished trial yet")
    x = [t.point[name] for t in done]
    if name in BETAS:
        x = [1.0 / max(1.0 - v, 1e-12) for v in x]
    marker = dict(size=9, color=[t.rung for t in done], colorscale="Blues", line=dict(width=1))  # darker: went further
    fig = go.Figure(go.Scatter(x=x, y=[ranking_cost(t) for t in done], mode="markers", marker=marker,
                               text=[f"trial {t.number} ({t.status})" for t in done],
                               hovertemplate="%{text}<br>" + name + " %{x:.4g}<br>dev cost %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title_text=f"{name}: 1/(1−β)" if name in BETAS else name,
                     type="log" if (log_scale or name in BETAS) else "linear")
    fig.update_yaxes(title_text="dev cost")
    fig.update_layout(height=320, margin=MARGIN)
    return fig


def curves_figure(trials, top=5):
    """The best trials' learning curves overlaid: dev cost at each evaluation, by epoch."""
    best = [t for t in leaderboard(trials) if t.status != "failed" and t.curve][:top]
    if not best:
        return _empty("no curve yet")
    fig = go.Figure()
    for t in best:
        c = t.curve
        y = c["dev_cost"] if not np.isnan(c["dev_cost"]).all() else c["train_cost"]  # no dev set: train
        mask = ~np.isnan(y)
        fig.add_trace(go.Scatter(x=c["epoch"][mask] + 1, y=y[mask], mode="lines+markers", name=f"trial {t.number}"))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="dev cost", type="log")
    fig.update_layout(height=320, margin=MARGIN, legend=dict(orientation="h", y=1.1))
    return fig


def preview_figure(values, name, dist):
    """A histogram of sampled values on the scale that suits them."""
    values = np.asarray(values, np.float64) if dist.kind != "choice" else values
    fig = go.Figure()
    if dist.kind == "choice":
        labels = [str(o) for o in dist.options]
        fig.add_trace(go.Bar(x=labels, y=[sum(str(v) == o for v in values) for o in labels]))
    elif name in BETAS:
        fig.add_trace(go.Histogram(x=np.log10(1.0 / (1.0 - values)), nbinsx=20))
        fig.update_xaxes(title_text=f"log10 of the averaging window 1/(1−{name})")
    elif dist.log_scale:
        fig.add_trace(go.Histogram(x=np.log10(values), nbinsx=20))
        fig.update_xaxes(title_text=f"log10 {name}")
    else:
        fig.add_trace(go.Histogram(x=values, nbinsx=20))
        fig.update_xaxes(title_text=name)
    fig.update_layout(height=200, margin=dict(l=40, r=10, t=10, b=40), showlegend=False)
    return fig
