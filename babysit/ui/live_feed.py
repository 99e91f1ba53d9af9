"""What a live run's charts and status line show, served as JSON to the charts themselves.

A Streamlit rerun costs the browser more than what it carries: a fragment that redrew one line of text
every second took chromium 0.055 of a core, with the training on the same cores. So the page is not
rerun while a run trains. Its live charts ask this route for their newest figure (the cost chart, with
the status line, every second; the others every few seconds) and redraw in place. The page is rerun
only when what it draws itself changes: the buttons, the guardrail's offers, the event log, the
sidebar's values; a chart that sees ``drawn`` differ from what its page was drawn with asks for that.

    GET /babysit/live/<run id>/<view>?axis=step&log=0&beta=0.9     view: cost, accuracy, boundary, health

Only runs this server has open are served (no request opens one), and the run id is checked as the
store checks it; the route reads, and changes nothing.
"""

import hashlib
import json
import math

import plotly.io as pio
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from babysit.errors import BabysitError
from babysit.store import check_run_id
from babysit.ui import charts

EVERY = {"cost": 1.0, "accuracy": 3.0, "boundary": 3.0, "health": 3.0}  # seconds between a chart's fetches
PATH = "/babysit/live/{run_id}/{view}"


def drawn_key(snap):
    """What the page draws itself, not its live charts, depends on: the buttons and the guardrail's offers
    (status), the event log, and the sidebar's values (the hyperparameters in force, unless a change of
    theirs is still on its way)."""
    moving = any(c.kind == "set" for c in snap.pending)
    hyperparameters = None if moving else snap.hyperparameters.to_dict()
    guard = snap.guardrail
    key = [snap.status, guard and [guard.step, guard.reason, guard.rewind_to], len(snap.events),
           sum(e.undone for e in snap.events), hyperparameters]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def status_parts(snap):
    """The status line as (text, bold) pieces: the page draws them as text, never as markup."""
    alpha = snap.alpha_in_force
    parts = [(snap.status, True), (" · step ", False), (f"{snap.step:,}", True), (" · epoch ", False),
             (f"{snap.epoch}", True), (" · ", False), (f"{snap.steps_per_second:,.0f}", True),
             (" steps/s · α in force ", False), (f"{alpha:.4g}", True)]
    if alpha != snap.hyperparameters.alpha:
        parts.append((f" (base {snap.hyperparameters.alpha:.4g})", False))
    return parts


def boundary(session):
    """The decision regions over the training data, from a copy of the current weights."""
    X_train, y_train, classes = session.plot_data()
    grid_x, grid_y, points = charts.grid_for(X_train)
    prediction = session.predict(points).reshape(len(grid_y), len(grid_x))
    return charts.boundary_figure(X_train, y_train, grid_x, grid_y, prediction, classes)


def figure(session, snap, view, axis="step", log_y=False, beta=0.9):
    if view == "cost":
        return charts.cost_figure(snap, axis, log_y, beta)
    if view == "accuracy":
        return charts.accuracy_figure(snap, axis)
    if view == "health":
        return charts.health_figure(snap, axis)
    return boundary(session)


def view_json(session, view, axis="step", log_y=False, beta=0.9):
    """The body of one answer: {drawn, version, figure} and, for the cost chart, {status, pending}."""
    snap = session.snapshot()
    spec = pio.to_json(figure(session, snap, view, axis, log_y, beta), validate=False)
    head = {"drawn": drawn_key(snap), "version": hashlib.sha256(spec.encode()).hexdigest()[:16]}
    if view == "cost":
        head["status"] = status_parts(snap)
        head["pending"] = [f"pending: {command.describe()}" for command in snap.pending]
    # the figure's JSON as plotly wrote it, spliced in rather than parsed and written again
    return json.dumps(head, ensure_ascii=False)[:-1] + ',"figure":' + spec + "}"


def parameters(query):
    """(axis, log_y, beta) from a request's query, or ValueError saying which one is wrong."""
    axis = query.get("axis", "step")
    if axis not in charts.AXES:
        raise ValueError(f"axis must be one of {', '.join(charts.AXES)}, got {axis!r}")
    log = query.get("log", "0")
    if log not in ("0", "1"):
        raise ValueError(f"log must be 0 or 1, got {log!r}")
    try:
        beta = float(query.get("beta", "0.9"))
    except ValueError:
        beta = math.nan
    if not 0 <= beta <= 0.999:
        raise ValueError(f"beta must be a number in [0, 0.999], got {query.get('beta')!r}")
    return axis, log == "1", beta


def routes(manager, base=""):
    """The route, for ``st.App(routes=...)``; ``manager()`` gives the server's SessionManager, or None
    before any page has made it. ``base``: the server's baseUrlPath, which Streamlit puts before its own
    routes but not before an app's."""

    def live(request):  # a plain function: Starlette runs it in a worker thread, off the event loop
        run_id, view = request.path_params["run_id"], request.path_params["view"]
        try:
            check_run_id(run_id)
            if view not in EVERY:
                raise ValueError(f"no such view {view!r}: one of {', '.join(EVERY)}")
            axis, log_y, beta = parameters(request.query_params)
        except (BabysitError, ValueError) as error:
            return JSONResponse({"problem": str(error)}, status_code=400)
        runs = manager()
        if runs is None or not runs.has(run_id):
            return JSONResponse({"problem": f"run {run_id} is not open on this server: reload the page"},
                                status_code=404)
        try:
            body = view_json(runs.get(run_id), view, axis, log_y, beta)
        except BabysitError as error:  # its process did not answer in time, or is gone
            return JSONResponse({"problem": f"{str(error).rstrip('.')}. The chart asks again in a moment."},
                                status_code=503)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    prefix = "/" + base.strip("/") if base.strip("/") else ""
    return [Route(prefix + PATH, live, methods=["GET"])]
