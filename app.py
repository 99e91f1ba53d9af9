"""babysit's page: navigation only. `streamlit run app.py` serves it at http://127.0.0.1:8501."""

import streamlit as st

from babysit.ui.pages import pages

# Streamlit runs this file as __main__; caviar's worker processes (started with "spawn") import it
# again as __mp_main__, and must not build a page there.
if __name__ == "__main__":
    st.set_page_config(page_title="babysit", layout="wide")
    st.navigation(list(pages().values())).run()
