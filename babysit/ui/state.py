"""What the server holds for every browser tab: one SessionManager (the runs) per process."""

import atexit

import streamlit as st

from babysit.manager import SessionManager, StudyManager

_made = {}  # the manager last made, for the live charts' requests, which come from no page's script run


@st.cache_resource
def manager():
    """The server's runs; made once per process, shared by every tab."""
    sessions = SessionManager()
    atexit.register(sessions.close_all)  # checkpoint and flush every run when the server stops
    _made["runs"] = sessions
    return sessions


def made_manager():
    """The server's runs if a page has made them, else None; callable outside a page's script run
    (``manager()`` there would log Streamlit's warning about a missing script context at every call)."""
    return _made.get("runs")


def show_problems(error, where=""):
    """A project error as the user should see it: one line per problem, no traceback."""
    problems = getattr(error, "problems", None) or [str(error)]
    st.error("\n".join(f"- {where}{p}" for p in problems) if len(problems) > 1 else f"{where}{problems[0]}")


@st.cache_resource
def studies():
    """The server's caviar studies; made once per process, on the same store as the runs."""
    running = StudyManager(manager().store)
    atexit.register(running.close)
    return running
