"""The app's pages, made once so that any page can switch to another."""

import streamlit as st


def pages():
    from babysit.ui import babysit_page, caviar_page, runs_page

    return {
        "babysit": st.Page(babysit_page.render, title="Babysit", url_path="babysit", default=True),
        "runs": st.Page(runs_page.render, title="Runs", url_path="runs"),
        "caviar": st.Page(caviar_page.render, title="Caviar", url_path="caviar"),
    }
