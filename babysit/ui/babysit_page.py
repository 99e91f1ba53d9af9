"""The Babysit page: start a run, then watch it and steer it while it trains.

Nothing here trains: widgets send commands to the run's session. The live charts and the status
line fetch the session's newest numbers themselves (babysit/ui/live_feed.py), the cost chart every
second, so the page is not rerun while the run trains, only when what it draws itself changes. The
run lives on the server, keyed by its id in the URL (``?run=<id>``), so closing the tab changes
nothing and any tab with the link re-attaches.
"""

import hashlib
import os
import re
import time
import urllib.parse

import numpy as np
import pandas as pd
import streamlit as st

from babysit.config import RunConfig, parse_config
from babysit.datasets import BUNDLED, DATASETS, SYNTHETIC, load_dataset, read_csv, read_frame
from babysit.errors import BabysitError, ConfigError
from babysit.export import export_run, replay_config, tuned_config, write_metrics_csv
from babysit.ui import charts, controls
from babysit.ui.live_chart import live_feed_chart
from babysit.ui.live_feed import EVERY, drawn_key
from babysit.ui.state import manager, show_problems
from models.activations import ACTIVATIONS

NEW = "new:"  # widget keys of the new-run form
ASK_AGAIN = 3.0  # seconds between two tries at a run whose process did not answer


def render():
    mgr = manager()
    run_id = st.query_params.get("run")
    if not run_id:
        new_run(mgr)
        return
    try:
        session = mgr.get(run_id)
    except BabysitError as error:
        st.error(f"This link names no run that can be opened: {error}")
        if st.button("Start a new run"):
            del st.query_params["run"]
            st.rerun()
        return
    try:
        live(mgr, session)
    except BabysitError as error:  # its process did not answer, or could not be reopened
        st.warning(f"{str(error).rstrip('.')}. The page asks again at its next refresh.")
        st.session_state[f"{run_id}:unanswered"] = time.monotonic()
        _ask_again(run_id)


@st.fragment(run_every=ASK_AGAIN)
def _ask_again(run_id):
    """While the run's process does not answer, ask it every few seconds; once it does, redraw the page."""
    if time.monotonic() - st.session_state.get(f"{run_id}:unanswered", 0) < ASK_AGAIN:
        return  # not in the run that has just failed: a page that fails at once would loop
    try:
        manager().get(run_id).snapshot()
    except BabysitError:
        return
    st.rerun(scope="app")


# -- a new run ------------------------------------------------------------------------------------


def _load_config_into_form():
    """A config file fills the form; a malformed one shows what is wrong and changes nothing."""
    uploaded = st.session_state.get(NEW + "config_file")
    if uploaded is None:
        return
    text = uploaded.getvalue().decode("utf-8", errors="replace")
    try:
        config = parse_config(text, uploaded.name)
    except ConfigError as error:
        st.session_state[NEW + "config_problems"] = error.problems
        return
    st.session_state.pop(NEW + "config_problems", None)
    data = config.data
    for key in [k for k in st.session_state if str(k).startswith(NEW) and k != NEW + "config_file"]:
        del st.session_state[key]
    state = st.session_state
    if data.csv is None:
        state[NEW + "source"] = "built-in"
        state[NEW + "data_name"] = data.name
        for setting in ("n_samples", "noise", "n_classes"):
            if getattr(data, setting) is not None:
                state[NEW + setting] = getattr(data, setting)
    else:
        state[NEW + "source"] = "CSV file"
        state[NEW + "csv_path"] = data.csv
        state[NEW + "target"] = data.target
    state[NEW + "dev_fraction"] = data.dev_fraction
    state[NEW + "standardize"] = data.standardize
    state[NEW + "seed"] = config.seed
    state[NEW + "widths"] = ", ".join(str(n) for n in config.model.layers)
    state[NEW + "activation"] = config.model.activation
    state[NEW + "dtype"] = config.model.dtype
    state[NEW + "base"] = config
    state[NEW + "loaded_note"] = f"Loaded {uploaded.name}" + (
        f" (its schedule of {len(config.schedule)} change(s) comes with it)" if config.schedule else "")


def _save_upload(mgr, uploaded):
    """Keep an uploaded CSV in the store's folder, so the run can reload it after a restart: in a
    folder named by its content, under its own name, which the run's data label then shows."""
    digest = hashlib.sha256(uploaded.getvalue()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(uploaded.name)[0])[:40].strip(".") or "data"
    folder = os.path.join(mgr.store.home, "uploads", digest)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{stem}.csv")
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as f:
            f.write(uploaded.getvalue())
        os.replace(path + ".tmp", path)
    return path


@st.cache_data(max_entries=32, show_spinner=False)
def _preview_data(data_dict, seed):
    from babysit.config import DataConfig

    data = load_dataset(DataConfig.from_dict(data_dict), np.random.default_rng(seed))
    return data.X_train, data.y_train, data.classes, data.n_features


def _data_section(mgr):
    """The data set part of the form; returns the config's ``data`` dict, or None when unusable."""
    state = st.session_state
    state.setdefault(NEW + "source", "built-in")
    source = st.radio("data", ["built-in", "CSV file"], key=NEW + "source", horizontal=True)
    data = {}
    if source == "built-in":
        state.setdefault(NEW + "data_name", "moons")
        name = st.selectbox("data set", DATASETS, key=NEW + "data_name")
        data["name"] = name
        defaults = SYNTHETIC.get(name, {})
        cols = st.columns(3)
        if "n_samples" in defaults:
            state.setdefault(NEW + "n_samples", defaults["n_samples"])
            data["n_samples"] = cols[0].number_input("examples", 4, 1_000_000, step=100, key=NEW + "n_samples")
            state.setdefault(NEW + "noise", float(defaults["noise"]))
            data["noise"] = cols[1].number_input("noise", 0.0, 10.0, step=0.05, key=NEW + "noise")
        if "n_classes" in defaults:
            state.setdefault(NEW + "n_classes", defaults["n_classes"])
            data["n_classes"] = cols[2].number_input("classes", 2, 20, step=1, key=NEW + "n_classes")
    else:
        uploaded = st.file_uploader("CSV file: numeric features and a label column", type=["csv"],
                                    key=NEW + "csv_file")
        if uploaded is not None:
            state[NEW + "csv_path"] = _save_upload(mgr, uploaded)
            state[NEW + "csv_name"] = uploaded.name
        path = state.get(NEW + "csv_path")
        if path is None:
            st.info("Upload a CSV to train on it.")
            return None
        try:
            frame = read_frame(path, state.get(NEW + "csv_name", path), nrows=200)
        except BabysitError as error:  # the same words as read_csv: empty, not UTF-8, too many columns, ...
            st.error(str(error))
            return None
        except Exception as error:  # any parse failure is the file's, shown as such
            st.error(f"{state.get(NEW + 'csv_name', path)} cannot be read as a CSV: {error}")
            return None
        columns = [str(c) for c in frame.columns]
        if state.get(NEW + "target") not in columns:
            state[NEW + "target"] = columns[-1]
        target = st.selectbox("target column", columns, key=NEW + "target")
        st.dataframe(frame.head(20), height=220)
        try:
            read_csv(path, target, where=state.get(NEW + "csv_name", os.path.basename(path)))
        except BabysitError as error:
            st.error(str(error))
            return None
        data.update(csv=path, target=target)
    cols = st.columns(3)
    state.setdefault(NEW + "dev_fraction", 0.2)
    data["dev_fraction"] = cols[0].slider("dev fraction", 0.0, 0.5, step=0.05, key=NEW + "dev_fraction")
    state.setdefault(NEW + "standardize", True)
    data["standardize"] = cols[1].checkbox("standardize", key=NEW + "standardize")
    state.setdefault(NEW + "seed", 0)
    cols[2].number_input("seed", 0, 2**32 - 1, step=1, key=NEW + "seed")
    if source == "built-in" and data["name"] not in BUNDLED:
        try:
            X, y, classes, _ = _preview_data(data, int(state[NEW + "seed"]))
            st.plotly_chart(charts.data_preview_figure(X, y, classes), key="preview")
        except BabysitError as error:
            show_problems(error)
            return None
    elif source == "built-in":
        X, y, classes, n_features = _preview_data(data, int(state[NEW + "seed"]))
        st.caption(f"{data['name']}: {n_features} features, {len(classes)} classes, "
                   f"{X.shape[1]} training examples")
    return data


def _model_section():
    state = st.session_state
    state.setdefault(NEW + "widths", "16, 16")
    widths_text = st.text_input("hidden layer widths", key=NEW + "widths",
                                help="Comma-separated, e.g. 64, 32. Empty: no hidden layer (softmax regression).")
    try:
        widths = [int(w) for w in re.split(r"[,\s]+", widths_text.strip()) if w]
    except ValueError:
        st.error(f"hidden layer widths must be whole numbers separated by commas, got {widths_text!r}")
        return None
    st.caption(f"L = {len(widths) + 1} layers with weights")
    cols = st.columns(2)
    state.setdefault(NEW + "activation", "relu")
    activation = cols[0].selectbox("activation", list(ACTIVATIONS), key=NEW + "activation")
    state.setdefault(NEW + "dtype", "float64")
    dtype = cols[1].selectbox("precision", ["float64", "float32"], key=NEW + "dtype")
    return {"layers": widths, "activation": activation, "dtype": dtype}


def new_run(mgr):
    st.title("New run")
    st.file_uploader("Start from a config file (JSON)", type=["json"], key=NEW + "config_file",
                     on_change=_load_config_into_form)
    if st.session_state.get(NEW + "config_problems"):
        st.error("That config was not loaded; nothing changed:\n" +
                 "\n".join(f"- {p}" for p in st.session_state[NEW + "config_problems"]))
    elif st.session_state.get(NEW + "loaded_note"):
        st.success(st.session_state[NEW + "loaded_note"])
    base = st.session_state.get(NEW + "base") or RunConfig()
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Data")
        data = _data_section(mgr)
        st.subheader("Model")
        model = _model_section()
    with right:
        st.subheader("Hyperparameters")
        values = controls.hyperparameter_controls(base.hyperparameters, NEW)
        try:
            hp = controls.resolved(base.hyperparameters, values)
            st.plotly_chart(charts.decay_preview_figure(hp.decay_schedule, hp.alpha, hp.learning_rate_decay),
                            key="decay-preview")
        except ConfigError as error:
            show_problems(error)
            hp = None
    name = st.text_input("name (optional)", key=NEW + "name")
    if st.button("Create run", type="primary", disabled=data is None or model is None or hp is None):
        config_dict = {"seed": int(st.session_state[NEW + "seed"]), "data": data,
                       "model": {**model, "lambd": hp.lambd},
                       "hyperparameters": {k: v for k, v in hp.to_dict().items() if k != "lambd"},
                       "schedule": [c.to_dict() for c in base.schedule]}
        try:
            run_id = mgr.create(RunConfig.from_dict(config_dict), name or None)
        except BabysitError as error:
            show_problems(error)
            return
        st.query_params["run"] = run_id
        st.rerun()


# -- a live run -----------------------------------------------------------------------------------


def _keys(run_id):
    return {"prefix": f"{run_id}:hp:", "seen": f"{run_id}:seen", "problem": f"{run_id}:problem",
            "probe": f"{run_id}:probe"}


def _send(run_id, kind, **args):
    """A command from a button or a widget; what the server refuses is shown, not raised."""
    keys = _keys(run_id)
    try:
        manager().command(run_id, kind, **args)
        st.session_state.pop(keys["problem"], None)
    except BabysitError as error:
        st.session_state[keys["problem"]] = getattr(error, "problems", None) or [str(error)]


def _steer(run_id, name, value):
    try:
        in_force = manager().get(run_id).hyperparameters()
    except BabysitError as error:  # its process did not answer: shown like a refused command
        st.session_state[_keys(run_id)["problem"]] = [str(error)]
        return
    _send(run_id, "set", changes=controls.steering_change(in_force, name, value))


def live(mgr, session):
    run_id = session.run_id
    keys = _keys(run_id)
    snap = session.snapshot()
    config = snap.config
    st.title(snap.name)
    arch = "-".join(str(n) for n in (snap.n_features, *config.model.layers, snap.n_classes))
    line = (f"run `{run_id}` · {config.data.label} · {arch} {config.model.activation} · {config.model.dtype}"
            f" · train and dev cost every {snap.eval_every:,} steps")
    if snap.parent:
        line += f" · branched from [{snap.parent}](?run={snap.parent}) at step {snap.fork_step:,}"
    st.caption(line)
    with st.sidebar:
        st.header("Steer")
        st.caption("Every change goes to the run at once and applies before its next update.")
        moving = {name for c in snap.pending if c.kind == "set" for name in c.args["changes"]}
        controls.sync_widgets(snap.hyperparameters, keys["prefix"], keys["seen"], moving)
        controls.hyperparameter_controls(snap.hyperparameters, keys["prefix"],
                                         on_change=lambda name, value: _steer(run_id, name, value))
        if st.button("New run", key=f"{run_id}:new"):
            del st.query_params["run"]
            st.rerun()
    _buttons(run_id, snap)
    # what comes and goes (the guardrail's offers, a problem) sits in containers that are always there:
    # the charts below keep their places in the page, and so their frames, which a move would reload
    with st.container():
        _guardrail(run_id, snap)
    cols = st.columns([2, 2, 3])
    axis = cols[0].radio("x axis", list(charts.AXES), horizontal=True, key=f"{run_id}:axis",
                         format_func=charts.AXES.get)
    log_y = cols[1].toggle("log cost", key=f"{run_id}:logy")
    beta = cols[2].slider("smoothing β (exponentially weighted average)", 0.0, 0.999, 0.9, 0.001,
                          key=f"{run_id}:smooth", format="%.3f")
    with st.container():
        _problems(run_id, snap)
    query = urllib.parse.urlencode({"axis": axis, "log": int(log_y), "beta": beta})
    feed = f"babysit/live/{run_id}"
    # the status line and the cost chart, fetched every second; a change of what this page draws
    # itself (drawn_key) reruns the page
    live_feed_chart(f"{feed}/cost?{query}", EVERY["cost"], charts.HEIGHTS["cost"], key=f"{run_id}:cost",
                    drawn=drawn_key(snap))
    left, right = st.columns(2)
    with left:
        st.markdown("**Accuracy**")
        live_feed_chart(f"{feed}/accuracy?{query}", EVERY["accuracy"], charts.HEIGHTS["accuracy"],
                        key=f"{run_id}:accuracy")
    with right:
        if snap.n_features == 2:
            st.markdown("**Decision boundary**")
            live_feed_chart(f"{feed}/boundary", EVERY["boundary"], charts.HEIGHTS["boundary"],
                            key=f"{run_id}:boundary")
    st.markdown("**Health** · update-to-weight ratio ‖ΔW‖/‖W‖ (healthy near 1e-3), dead units, gradient norms")
    live_feed_chart(f"{feed}/health?{query}", EVERY["health"], charts.HEIGHTS["health"], key=f"{run_id}:health")
    # drawn with the page, which is rerun when an event comes (see drawn_key): a table redrawn every few
    # seconds costs the browser about 0.08 of a core, taken from the training on the same machine
    st.markdown("**Event log**")
    st.dataframe(_event_table(snap.events), hide_index=True, height=220, key=f"{run_id}:events")
    # only the open tab is drawn: the browser's work at every refresh of the live charts grows with what the
    # page holds, and the three tabs' contents (the snippets' highlighted code above all) doubled it
    rewind, probe, export = st.tabs(["Rewind & branch", "LR probe", "Export"], key=f"{run_id}:tab",
                                    on_change="rerun")
    if rewind.open:
        with rewind:
            _rewind_tab(mgr, session, snap)
    if probe.open:
        with probe:
            _probe_tab(session, snap)
    if export.open:
        with export:
            _export_tab(mgr, session, snap)


def _problems(run_id, snap):
    """What went wrong, above the live charts: a change the run refused, the run's error."""
    problem = st.session_state.get(_keys(run_id)["problem"])
    if problem:
        st.error("\n".join(problem))
    if snap.status == "failed":
        st.error(f"The run stopped on an error: {snap.error}")
    elif snap.error:
        st.error(snap.error)


def _buttons(run_id, snap):
    cols = st.columns([1, 1, 1, 1, 1, 3])
    running = snap.status == "running"
    label = "Start" if snap.status == "created" else "Resume"
    cols[0].button(label, key=f"{run_id}:start", type="primary", disabled=running,
                   on_click=_send, args=(run_id, "start" if snap.status == "created" else "resume"))
    cols[1].button("Pause", key=f"{run_id}:pause", disabled=not running, on_click=_send, args=(run_id, "pause"))
    n = cols[2].number_input("N", min_value=1, max_value=10_000_000, value=100, step=100, key=f"{run_id}:n",
                             label_visibility="collapsed")
    cols[3].button(f"Step {n:,}", key=f"{run_id}:step", disabled=running,
                   on_click=lambda: _send(run_id, "step", n=int(st.session_state[f"{run_id}:n"])))
    cols[4].button("Stop", key=f"{run_id}:stop", disabled=snap.status in ("stopped", "failed"),
                   on_click=_send, args=(run_id, "stop"))


def _guardrail(run_id, snap):
    guard = snap.guardrail
    if guard is None:
        return
    st.warning(f"Paused by the guardrail at step {guard.step:,}: {guard.reason}.")
    if guard.rewind_to is None:
        st.caption("No good checkpoint comes before it: lower α in the sidebar and resume, or start a new run.")
        return
    cols = st.columns(2)
    cols[0].button(f"Rewind to step {guard.rewind_to:,}", key=f"{run_id}:guard-rewind",
                   on_click=_send, args=(run_id, "rewind"), kwargs={"step": guard.rewind_to})
    cols[1].button(f"Rewind and resume with α = {guard.lowered_alpha:.3g} (× 0.1)", key=f"{run_id}:guard-lower",
                   type="primary", on_click=_send, args=(run_id, "rewind"),
                   kwargs={"step": guard.rewind_to, "changes": {"alpha": guard.lowered_alpha}, "resume": True})


def _event_table(events):
    rows = [{"step": e.step, "event": e.kind, "what": e.describe(), "source": e.source,
             "time": time.strftime("%H:%M:%S", time.localtime(e.time)), "undone": "rewound" if e.undone else ""}
            for e in events]
    return pd.DataFrame(rows[::-1], columns=["step", "event", "what", "source", "time", "undone"])


def _rewind_tab(mgr, session, snap):
    if not snap.checkpoints:
        st.caption("No checkpoint yet.")
        return
    st.caption("A checkpoint holds the weights, the optimizer's state, the order of examples and the "
               "hyperparameters. Rewinding restores one exactly; a branch starts a new run from it. Periodic "
               "checkpoints thin out with age (the newest ten close together, older ones further apart); "
               "those taken at a change, a pause or a stop all stay.")
    # chosen by step, newest first: thinning and rewinds drop checkpoints, and a position in the list
    # would then name another one. The newest is the one offered: a choice lasts until a newer
    # checkpoint comes (the key names it), and one that is gone falls back to the newest.
    reasons = {}
    for at, reason in snap.checkpoints:
        reasons.setdefault(at, []).append(reason)
    steps = sorted(reasons, reverse=True)
    key = f"{snap.run_id}:checkpoint:{steps[0]}"
    if st.session_state.get(key) not in reasons:
        st.session_state.pop(key, None)
    step = st.selectbox("checkpoint", steps, key=key,
                        format_func=lambda at: f"step {at:,} ({', '.join(reasons[at])})")
    cols = st.columns([1, 2, 1])
    cols[0].button("Rewind here", key=f"{snap.run_id}:rewind", on_click=_send, args=(snap.run_id, "rewind"),
                   kwargs={"step": step})
    name = cols[1].text_input("branch name", value=f"{snap.name} · branch at {step}",
                              key=f"{snap.run_id}:branch-name:{step}", label_visibility="collapsed")
    if cols[2].button("Branch a new run", key=f"{snap.run_id}:branch"):
        try:
            child = mgr.command(snap.run_id, "branch", step=step, name=name).result(timeout=60)
        except BabysitError as error:
            show_problems(error)
            return
        st.query_params["run"] = child
        st.rerun()


def _probe_tab(session, snap):
    keys = _keys(snap.run_id)
    st.caption("Sweeps α from 1e-7 to 10 on a copy of the current weights (the run is untouched) and "
               "suggests a tenth of the α where the smoothed cost is lowest.")
    if st.button("Run the LR probe", key=f"{snap.run_id}:probe-run"):
        try:
            with st.spinner("probing…"):
                st.session_state[keys["probe"]] = manager().command(snap.run_id, "probe").result(timeout=300)
        except BabysitError as error:
            show_problems(error)
    result = st.session_state.get(keys["probe"])
    if result is None:
        return
    st.plotly_chart(charts.probe_figure(result), key=f"{snap.run_id}:probe-chart")
    st.markdown(f"Suggested α = **{result.suggested_alpha:.3g}**" + (f" · {result.note}" if result.note else ""))
    st.button(f"Use α = {result.suggested_alpha:.3g}", key=f"{snap.run_id}:probe-use",
              on_click=_steer, args=(snap.run_id, "alpha", float(f"{result.suggested_alpha:.3g}")))


def _export_tab(mgr, session, snap):
    from babysit import snippets

    config = snap.config
    events = list(snap.events)
    replay = replay_config(config, events)
    tuned = tuned_config(config, snap.hyperparameters.to_dict())
    cols = st.columns(3)
    cols[0].download_button("Tuned config (JSON)", tuned.to_json(), file_name=f"{snap.run_id}-tuned.json",
                            mime="application/json", key=f"{snap.run_id}:dl-tuned",
                            help="The hyperparameters in force now, no schedule: what to carry on with.")
    cols[1].download_button("Run config with its schedule (JSON)", replay.to_json(),
                            file_name=f"{snap.run_id}-config.json", mime="application/json",
                            key=f"{snap.run_id}:dl-config",
                            help="The initial config with every applied change as its schedule: "
                                 "`babysit replay` retrains it step for step.")

    def metrics_csv():
        path = os.path.join(mgr.store.home, f".metrics-{snap.run_id}.csv")
        write_metrics_csv(path, mgr.store.metrics(snap.run_id))
        with open(path, "rb") as f:
            body = f.read()
        os.remove(path)
        return body

    cols[2].download_button("Metrics (CSV)", metrics_csv, file_name=f"{snap.run_id}-metrics.csv", mime="text/csv",
                            key=f"{snap.run_id}:dl-metrics")
    st.download_button("The whole bundle (zip)", lambda: bundle_zip(mgr, snap.run_id),
                       file_name=f"{snap.run_id}-bundle.zip", mime="application/zip", key=f"{snap.run_id}:dl-zip",
                       help="config.json, tuned.json, metrics.csv, weights-initial.npz, weights-final.npz, "
                            "events.json")
    st.caption("Charts download as PNG from their toolbar (the camera icon).")
    st.markdown("**PyTorch**")
    st.code(snippets.pytorch_snippet(replay, source=snap.run_id), language="python")
    st.markdown("**Keras**")
    st.code(snippets.keras_snippet(replay, source=snap.run_id), language="python")


def bundle_zip(mgr, run_id):
    """The run's export bundle as a zip archive, made in a temporary folder of the store's."""
    import io
    import shutil
    import tempfile
    import zipfile

    folder = tempfile.mkdtemp(dir=mgr.store.home, prefix=".export-")
    try:
        paths = export_run(mgr.store, run_id, folder)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, path in paths.items():
                archive.write(path, arcname=f"{run_id}/{name}")
        return buffer.getvalue()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

