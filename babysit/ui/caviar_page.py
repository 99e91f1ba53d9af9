"""The Caviar page: define a search space on the right scales, run a study, keep the fittest.

A study runs on the server (a thread driving Dask), so it goes on when the tab closes; the URL
carries ``?study=<id>``. The leaderboard and charts are read from the store, where every finished
trial is written as it arrives.
"""


import pandas as pd
import streamlit as st

from babysit import caviar
from babysit.config import RunConfig
from babysit.datasets import DATASETS
from babysit.errors import BabysitError
from babysit.hyperparams import averaging_window
from babysit.space import SearchSpace, parse_space, per_decade, warnings
from babysit.ui import study_charts
from babysit.ui.state import manager, show_problems, studies

KEY = "caviar:"
# name -> (the scales it may be searched on, the default distribution): the seed's defaults are on
CANDIDATES = {
    "alpha": (["log_uniform", "uniform"], {"log_uniform": [1e-4, 1e-1]}, True),
    "beta": (["one_minus_log_uniform", "uniform"], {"one_minus_log_uniform": [0.9, 0.999]}, True),
    "beta1": (["one_minus_log_uniform", "uniform"], {"one_minus_log_uniform": [0.8, 0.99]}, False),
    "beta2": (["one_minus_log_uniform", "uniform"], {"one_minus_log_uniform": [0.99, 0.9999]}, False),
    "epsilon": (["log_uniform"], {"log_uniform": [1e-10, 1e-6]}, False),
    "lambd": (["log_uniform", "uniform"], {"log_uniform": [1e-4, 1.0]}, False),
    "learning_rate_decay": (["uniform", "log_uniform"], {"uniform": [0.0, 1.0]}, False),
    "L": (["int_uniform", "choice"], {"int_uniform": [2, 4]}, True),
    "width": (["int_uniform", "choice"], {"int_uniform": [8, 64]}, False),
    "mini_batch_size": (["choice", "int_uniform"], {"choice": [32, 64, 128]}, False),
    "optimizer": (["choice"], {"choice": ["momentum", "adam"]}, False),
    "activation": (["choice"], {"choice": ["relu", "tanh"]}, False),
}


def render():
    study_id = st.query_params.get("study")
    st.title("Caviar")
    listed = manager().store.list_studies()
    if listed:
        options = [""] + [s.id for s in listed[::-1]]  # "": a new study (a None value would show no choice)
        # no status in the labels: the browser holds the chosen label, which must not change under it
        names = {"": "— a new study —"} | {s.id: f"{s.name} · {s.id}" for s in listed}
        # the box shows the study in the URL, wherever the URL was last set (Run study, Zoom in, a link);
        # only the user's own choice in it moves the URL (_open_chosen)
        shown = study_id if study_id in options else ""
        if st.session_state.get(KEY + "open") != shown:
            st.session_state[KEY + "open"] = shown
        st.selectbox("open a study", options, format_func=names.__getitem__, key=KEY + "open",
                     on_change=_open_chosen, args=(options,))
    if study_id:
        try:
            info = manager().store.get_study(study_id)
        except BabysitError as error:
            st.error(f"This link names no study that can be opened: {error}")
            return
        study_view(info)
    else:
        new_study()


def _open_chosen(options):
    chosen = st.session_state[KEY + "open"]
    if chosen not in options:  # a label the box no longer offers (a study deleted meanwhile)
        return
    if not chosen:
        st.query_params.pop("study", None)
    else:
        st.query_params["study"] = chosen


# -- a new study -----------------------------------------------------------------------------------


def _space_rows():
    """One row per hyperparameter: search it or not, on which scale, over what range."""
    space = {}
    for name, (kinds, default, on) in CANDIDATES.items():
        cols = st.columns([1.3, 1.6, 2.4])
        if not cols[0].checkbox(name, value=on, key=f"{KEY}on:{name}"):
            continue
        kind = cols[1].selectbox("scale", kinds, key=f"{KEY}kind:{name}", label_visibility="collapsed",
                                 index=kinds.index(next(iter(default))))
        default_values = default.get(kind, next(iter(default.values())))
        text = cols[2].text_input("range", value=", ".join(str(v) for v in default_values),
                                  key=f"{KEY}range:{name}:{kind}", label_visibility="collapsed",
                                  help="lo, hi — or the options of a choice, comma-separated")
        space[name] = {kind: [_scalar(v) for v in text.split(",") if v.strip()]}
    return space


def _scalar(text):
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("\"'")


def _base():
    cols = st.columns(3)
    name = cols[0].selectbox("data set", DATASETS, key=KEY + "data")
    optimizer = cols[1].selectbox("optimizer (unless searched)", ["momentum", "adam", "rmsprop", "gd"],
                                  key=KEY + "optimizer")
    batch = cols[2].number_input("mini-batch size (unless searched)", 1, 100_000, 64, key=KEY + "batch")
    return {"data": {"name": name}, "hyperparameters": {"optimizer": optimizer, "mini_batch_size": int(batch)}}


def new_study():
    st.subheader("Search space")
    st.caption("Sample on the scale each hyperparameter deserves: α log-uniform, β through 1 − β on a log scale "
               "(0.9 … 0.999 puts as many samples in 0.99 … 0.999 as in 0.9 … 0.99), layers uniform.")
    uploaded = st.file_uploader("or load a search-space file (JSON)", type=["json"], key=KEY + "file")
    if uploaded is not None:
        try:
            space = parse_space(uploaded.getvalue().decode("utf-8", errors="replace"), uploaded.name)
        except BabysitError as error:
            show_problems(error)
            return
        st.json(space.to_dict(), expanded=False)
    else:
        rows = _space_rows()
        st.markdown("**Held fixed** (the base config)")
        try:
            space = SearchSpace.from_dict({**rows, "base": _base()})
        except BabysitError as error:
            show_problems(error)
            return
    _preview(space)
    st.subheader("Study")
    cols = st.columns(5)
    n_trials = cols[0].number_input("trials", 1, 10_000, 32, key=KEY + "trials")
    epochs = cols[1].number_input("epochs each", 1, 10_000, 20, key=KEY + "epochs")
    seed = cols[2].number_input("seed", 0, 2**32 - 1, 0, key=KEY + "seed")
    halving = cols[3].toggle("successive halving", key=KEY + "halving",
                             help="rungs at 1, 3, 9, 27 epochs; the best third goes on after each, from its checkpoint")
    stack = cols[4].toggle("stack same-shape trials", value=True, key=KEY + "stack")
    scheduler = st.text_input("Dask scheduler (empty: this machine's cores)", key=KEY + "scheduler",
                              placeholder="tcp://host:8786")
    name = st.text_input("name (optional)", key=KEY + "name")
    if st.button("Run study", type="primary"):
        try:
            settings = caviar.StudySettings(n_trials=int(n_trials), epochs=int(epochs), halving=halving, stack=stack)
            study_id = caviar.create_study(manager().store, space, settings, seed=int(seed), name=name or None)
        except BabysitError as error:
            show_problems(error)
            return
        studies().start(study_id, scheduler.strip() or None)
        st.query_params["study"] = study_id
        st.rerun()


def _preview(space):
    """Samples of the space, before any training: per decade for log scales, windows beside betas."""
    st.markdown("**Preview** of 200 samples")
    for text in warnings(space):
        st.warning(text)
    points = space.sample_points(200, int(st.session_state.get(KEY + "seed", 0)))
    names = list(space.distributions)
    cols = st.columns(min(3, len(names)) or 1)
    for i, name in enumerate(names):
        dist = space.distributions[name]
        values = [p[name] for p in points]
        with cols[i % len(cols)]:
            st.caption(f"**{name}** · {dist!r}")
            st.plotly_chart(study_charts.preview_figure(values, name, dist), key=f"{KEY}preview:{name}")
            if dist.log_scale:
                counts = per_decade(values, one_minus=dist.kind == "one_minus_log_uniform")
                st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()))
            if name in study_charts.BETAS:
                low, high = averaging_window(min(values)), averaging_window(max(values))
                st.caption(f"averaging window 1/(1 − β): {low:,.0f} … {high:,.0f} steps")


# -- a study ---------------------------------------------------------------------------------------


def study_view(info):
    store = manager().store
    st.subheader(info.name)
    line = f"study `{info.id}` · seed {info.seed}"
    if info.parent:
        line += f" · zoomed in from [{info.parent}](?study={info.parent})"
    children = [s for s in store.list_studies() if s.parent == info.id]
    if children:
        line += " · zoomed into " + ", ".join(f"[{c.id}](?study={c.id})" for c in children)
    st.caption(line)
    live(info.id)
    trials = store.trials(info.id)
    space = SearchSpace.from_dict(info.space)
    _leaderboard(info, trials)
    left, right = st.columns(2)
    with left:
        st.markdown("**Every trial** (log axes for log-scale names; β by its averaging window)")
        st.plotly_chart(study_charts.parallel_figure(trials, space.distributions), key=f"{KEY}parallel")
    with right:
        name = "alpha" if "alpha" in space.distributions else next(iter(space.distributions))
        st.markdown(f"**Dev cost against {name}**")
        st.plotly_chart(study_charts.cost_vs_figure(trials, name, space.distributions[name].log_scale),
                        key=f"{KEY}costvs")
    st.markdown("**The best trials' learning curves**")
    st.plotly_chart(study_charts.curves_figure(trials), key=f"{KEY}curves")
    _after(info, trials)


@st.fragment(run_every=1.0)
def live(study_id):
    store = manager().store
    info = store.get_study(study_id)
    running = studies().running(study_id)
    trials = store.trials(study_id)
    counts = {s: sum(t.status == s for t in trials) for s in ("done", "running", "pending", "failed", "pruned")}
    finished = counts["done"] + counts["failed"] + counts["pruned"]
    progress = studies().progress(study_id)
    eta = "" if progress is None or progress.eta is None or not running else f" · about {progress.eta:,.0f} s left"
    st.progress(finished / max(len(trials), 1),
                text=f"{info.status} · {finished} of {len(trials)} finished: {counts['done']} done, "
                     f"{counts['failed']} failed, {counts['pruned']} pruned; {counts['running']} training{eta}")
    error = studies().error(study_id) or info.error
    if error:
        st.error(f"The study stopped: {error}")
    if not running and info.status != "done":
        if st.button("Resume the study", key=f"{KEY}resume"):
            studies().start(study_id)
            st.rerun()
    seen = st.session_state.get(f"{KEY}seen:{study_id}")
    stamp = (finished, info.status)
    if seen is not None and seen != stamp:
        st.session_state[f"{KEY}seen:{study_id}"] = stamp
        st.rerun()  # new results: redraw the leaderboard and charts below
    st.session_state[f"{KEY}seen:{study_id}"] = stamp


def _leaderboard(info, trials):
    names = list(SearchSpace.from_dict(info.space).distributions)
    rows = []
    for rank, t in enumerate(caviar.leaderboard(trials), start=1):
        row = {"rank": rank, "trial": t.number, "status": t.status, "dev cost": t.dev_cost,
               "dev accuracy": t.dev_accuracy, "epochs": t.epoch}
        for name in names:
            row[name] = t.point.get(name)
            if name in study_charts.BETAS and t.point.get(name) is not None:
                row[f"1/(1−{name})"] = averaging_window(t.point[name])
        row["error"] = t.error or ""
        rows.append(row)
    table = pd.DataFrame(rows)
    st.markdown("**Leaderboard** (click a column to sort; select a row to act on it)")
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key=f"{KEY}board:{info.id}",
                         column_config={"dev cost": st.column_config.NumberColumn(format="%.4f"),
                                        "dev accuracy": st.column_config.NumberColumn(format="%.3f")})
    chosen = event.selection.rows
    if chosen:
        number = int(table["trial"].iloc[chosen[0]])
        if st.button(f"Babysit trial {number}", type="primary", key=f"{KEY}babysit"):
            try:
                run_id = caviar.babysit_trial(manager().store, info.id, number)
            except BabysitError as error:
                show_problems(error)
                return
            from babysit.ui.pages import pages

            st.switch_page(pages()["babysit"], query_params={"run": run_id})


def _after(info, trials):
    store = manager().store
    best = caviar.best_trial(trials)
    cols = st.columns(3)
    with cols[0]:
        st.markdown("**Zoom in**: a child study around the best trials")
        top = st.number_input("around the best", 1, 100, 5, key=f"{KEY}zoom-top")
        if st.button("Zoom in", disabled=best is None, key=f"{KEY}zoom"):
            try:
                child = caviar.zoom_in(store, info.id, top=int(top))
            except BabysitError as error:
                show_problems(error)
                return
            studies().start(child)
            st.query_params["study"] = child
            st.rerun()
    with cols[1]:
        st.markdown("**Seeds before a winner**: the best again on fresh seeds")
        k = st.number_input("best trials", 1, 20, 3, key=f"{KEY}rerun-k")
        seeds = st.number_input("seeds each", 2, 20, 3, key=f"{KEY}rerun-seeds")
        if st.button("Re-run on fresh seeds", disabled=best is None or studies().running(info.id),
                     key=f"{KEY}rerun"):
            with st.spinner("training the best trials on fresh seeds…"):
                try:
                    client, own = studies()._client(None)
                    try:
                        caviar.rerun_top(store, info.id, k=int(k), seeds=int(seeds), client=client)
                    finally:
                        if own:
                            client.close()
                except BabysitError as error:
                    show_problems(error)
            st.rerun()
        reruns = store.get_study(info.id).reruns
        if reruns:
            st.dataframe(pd.DataFrame([{"trial": r["number"], "mean dev cost": r["mean"], "± std": r["std"],
                                        "seeds": len(r["seeds"])} for r in reruns]), hide_index=True)
    with cols[2]:
        st.markdown("**The best config**")
        if best is None:
            st.caption("no finished trial yet")
        else:
            config = RunConfig.from_dict(best.config)
            st.caption(f"trial {best.number}: dev cost {caviar.ranking_cost(best):.4f}")
            st.download_button("Best config (JSON)", config.to_json(), file_name=f"{info.id}-best.json",
                               mime="application/json", key=f"{KEY}best")
            st.download_button("Leaderboard (CSV)", _leaderboard_csv(trials), file_name=f"{info.id}-leaderboard.csv",
                               mime="text/csv", key=f"{KEY}board-csv")


def _leaderboard_csv(trials):
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "leaderboard.csv")
        caviar.write_leaderboard(path, trials)
        with open(path, encoding="utf-8") as f:
            return f.read()


