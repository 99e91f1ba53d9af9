"""A plotly chart redrawn in place: the live run's charts, which change at every refresh.

``st.plotly_chart`` hands each new figure to Streamlit's chart element, and in the browser that
costs about twice plotly's own redraw: for the cost chart at one redraw a second, chromium spent
0.19 of a core on it, against 0.09 through this component (training shares those cores). Here a
frame loads plotly.js once and gives each figure to ``Plotly.react``, which redraws the plot it
already has and keeps the user's zoom and pan while the figure's ``uirevision`` stays the same.
The figures are the same ``plotly.graph_objects.Figure``s, and the frame has plotly's toolbar
(PNG download included). A live run's charts fetch their figures themselves (``live_feed_chart``), so
that the page need not be rerun to redraw them.
"""

import hashlib
import importlib.resources
import os
import shutil
import tempfile

import plotly
import streamlit.components.v1 as components

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "live_chart", "index.html")


def _frontend():
    """The folder Streamlit serves to the chart's frame: its page and the installed plotly's
    plotly.js (the version that builds the figures). Streamlit serves no link that leaves the
    folder, so both are copied, once per version of either, into the user's cache."""
    with open(PAGE, "rb") as f:
        page = f.read()
    plotly_js = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
    version = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:12]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(cache, "babysit", f"live-chart-{version}")
    if os.path.isfile(os.path.join(folder, "plotly.min.js")):
        return folder
    try:
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        parent = os.path.dirname(folder)
    except OSError:  # no writable cache (a locked-down account): a folder of this process's own
        parent = None
    staging = tempfile.mkdtemp(prefix="live-chart-", dir=parent)
    shutil.copyfile(PAGE, os.path.join(staging, "index.html"))
    with importlib.resources.as_file(plotly_js) as source:
        shutil.copyfile(source, os.path.join(staging, "plotly.min.js"))
    os.chmod(staging, 0o755)
    if parent is None:
        return staging
    try:
        os.rename(staging, folder)  # whole or not at all
    except OSError:
        if os.path.isfile(os.path.join(folder, "plotly.min.js")):  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # one cut short: replace it
        try:
            os.rename(staging, folder)
        except OSError:
            return staging
    return folder


_component = components.declare_component("live_chart", path=_frontend())


def live_feed_chart(feed, every, height, key, drawn=None):
    """A chart that fetches its own figures: ``feed`` is the route and query (see live_feed.py), asked
    every ``every`` seconds. Given ``drawn`` (what the page was drawn with), the chart reruns the page
    when the route's answer says that changed."""
    return _component(feed=feed, every=every, drawn=drawn, height=height, key=key, default=None)
