"""What the server holds for every browser tab: one SessionManager (the runs) per process."""

import atexit

import streamlit as st

from babysit.manager import SessionManager, StudyManager


@st.cache_resource
def manager():
    """The server's runs; made once per process, shared by every tab."""
    sessions = SessionManager()
    atexit.register(sessions.close_all)  # checkpoint and flush every run when the server stops
    return sessions


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
