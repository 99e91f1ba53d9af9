"""Finding the Babysit page's live charts in a browser.

Each live chart is drawn by plotly in a frame of its own (babysit/ui/live_chart.py). The frames are
reached through the page's own document (they are served from the same origin), not through
Playwright's list of frames, which was seen to hold only the main frame after Streamlit switched
pages in the browser.
"""

# every plotly chart drawn in a frame of the page (plotly keeps its traces on the element as .data)
CHARTS = ("[...document.querySelectorAll('iframe')].flatMap(f => {"
          " try { return [...f.contentDocument.querySelectorAll('.js-plotly-plot')]; }"
          " catch (e) { return []; } })")
# the cost chart among them
COST_CHART = f"{CHARTS}.find(g => (g.data || []).some(t => t.name === 'mini-batch cost'))"


def chart_count(page):
    """How many live charts plotly has drawn on the page."""
    return page.evaluate(f"() => {CHARTS}.length")


def cost_chart_box(page, selector):
    """The page-coordinates box of the first element matching selector inside the cost chart (None
    before the chart is drawn), the box a mouse has to aim at."""
    return page.evaluate(f"""() => {{
        const chart = {COST_CHART};
        if (!chart) return null;
        const inner = chart.querySelector({selector!r}).getBoundingClientRect();
        const frame = chart.ownerDocument.defaultView.frameElement.getBoundingClientRect();
        return {{x: frame.x + inner.x, y: frame.y + inner.y, width: inner.width, height: inner.height}};
    }}""")
