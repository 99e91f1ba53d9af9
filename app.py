"""babysit's page: navigation only. `streamlit run app.py` serves it at http://127.0.0.1:8501.

Run by Streamlit for each page view as __main__; imported once by the server as ``app``, where it
adds the route that the live charts fetch their figures from (babysit/ui/live_feed.py).
"""

import streamlit as st

if __name__ == "__main__":
    from babysit.ui.pages import pages

    st.set_page_config(page_title="babysit", layout="wide")
    st.navigation(list(pages().values())).run()
elif __name__ == "app":  # not in caviar's worker processes (started with "spawn"), which import it as __mp_main__
    from streamlit import config

    from babysit.ui.live_feed import routes
    from babysit.ui.state import made_manager

    app = st.App(__file__, routes=routes(made_manager, config.get_option("server.baseUrlPath")))
