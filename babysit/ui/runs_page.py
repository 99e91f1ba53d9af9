"""The Runs page: every run in the store, to open, rename, delete, compare and retest."""

import time

import pandas as pd
import streamlit as st

from babysit.config import RunConfig
from babysit.errors import BabysitError
from babysit.ui import charts
from babysit.ui.state import manager, show_problems

MAX_COMPARED = 4


def _table(runs):
    rows = [{"name": r.name, "data set": r.data_label, "status": r.status, "step": r.step,
             "best dev cost": r.best_dev_cost, "parent": r.parent or "",
             "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)), "id": r.id} for r in runs]
    return pd.DataFrame(rows, columns=["name", "data set", "status", "step", "best dev cost", "parent", "created",
                                       "id"])


@st.dialog("Delete runs")
def _confirm_delete(ids):
    st.write(f"Delete {len(ids)} run(s) with their metrics and checkpoints? This cannot be undone.")
    st.code("\n".join(ids))
    if st.button("Delete", type="primary"):
        for run_id in ids:
            manager().delete(run_id)
        st.rerun()


def render():
    from babysit.ui.pages import pages

    mgr = manager()
    st.title("Runs")
    runs = mgr.store.list_runs()
    if not runs:
        st.info("No runs yet: start one on the Babysit page.")
        return
    table = _table(runs)
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row", key="runs-table",
                         column_config={"best dev cost": st.column_config.NumberColumn(format="%.4f"),
                                        "step": st.column_config.NumberColumn(format="%d")})
    chosen = [table["id"].iloc[i] for i in event.selection.rows]
    if not chosen:
        st.caption("Select runs in the table to open, rename, delete, compare or retest them.")
        return
    cols = st.columns(4)
    if cols[0].button("Open", disabled=len(chosen) != 1, type="primary"):
        st.switch_page(pages()["babysit"], query_params={"run": chosen[0]})
    if cols[1].button(f"Delete {len(chosen)}…"):
        _confirm_delete(chosen)
    if len(chosen) == 1:
        with cols[2].popover("Rename"):
            name = st.text_input("new name", value=mgr.store.get_run(chosen[0]).name,
                                 key=f"rename:{chosen[0]}")  # one box per run: its own name
            if st.button("Save name"):
                try:
                    mgr.rename(chosen[0], name)
                    st.rerun()
                except BabysitError as error:
                    show_problems(error)
    if 2 <= len(chosen) <= MAX_COMPARED:
        _compare(mgr, chosen)
    elif len(chosen) > MAX_COMPARED:
        st.caption(f"Select at most {MAX_COMPARED} runs to compare their curves.")
    if len(chosen) == 1:
        _retest(mgr, chosen[0])


def _compare(mgr, ids):
    st.subheader("Compare")
    beta = st.slider("smoothing β", 0.0, 0.999, 0.95, 0.001, key="compare-smoothing", format="%.3f")
    log_y = st.toggle("log cost", key="compare-logy")
    curves = []
    for run_id in ids:
        columns = mgr.store.metrics(run_id)
        steps, cost = columns["step"], columns["cost"]
        if len(steps):
            _, smooth = charts.smoothed_cost((steps, cost), beta)
            curves.append((mgr.store.get_run(run_id).name, steps, smooth))
    st.plotly_chart(charts.compare_figure(curves, log_y=log_y), key="compare-chart")


def _retest(mgr, run_id):
    from babysit.retest import retest
    from babysit.trainer import Evaluation

    st.subheader("Retest")
    st.caption("Retrain this run's hyperparameters (as now in force) on fresh seeds and dev splits, and compare "
               "the final dev cost with the one recorded: hyperparameters go stale.")
    seeds = st.number_input("fresh seeds", 2, 20, 5, key="retest-seeds")
    if st.button("Retest"):
        try:
            session = mgr.get(run_id)
            snap = session.snapshot()
            ev = snap.last_evaluation
            recorded = None
            if ev.get("train_cost") is not None:
                recorded = Evaluation(int(ev["step"]), ev["train_cost"], ev["train_accuracy"], ev.get("dev_cost"),
                                      ev.get("dev_accuracy"))
            config = RunConfig.from_dict(mgr.store.get_run(run_id).config).replace(
                hyperparameters=snap.hyperparameters, schedule=())
            with st.spinner(f"training on {seeds} fresh seeds…"):
                result = retest(config, recorded, seeds=int(seeds), steps=max(snap.step, 1))
            mgr.store.add_retest(run_id, result.to_dict())
        except BabysitError as error:
            show_problems(error)
            return
        (st.warning if result.stale else st.success)(result.verdict)
    for body in mgr.store.retests(run_id)[-5:][::-1]:
        st.caption(f"earlier: {body.get('verdict', '')}")


