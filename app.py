"""babysit's page: navigation only. `streamlit run app.py` serves it at http://127.0.0.1:8501."""

import streamlit as st

from babysit.ui.pages import pages

st.set_page_config(page_title="babysit", layout="wide")
st.navigation(list(pages().values())).run()
