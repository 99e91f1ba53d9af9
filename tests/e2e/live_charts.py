"""Finding the Babysit page's live charts in a browser.

Each live chart is drawn by plotly in a frame of its own (babysit/ui/live_chart.py). The frames are
reached through the page's own document (they are served from the same origin), not through
Playwright's list of frames, which was seen to hold only the main frame after Streamlit switched
pages in the browser.
"""

import time

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


# the status line, which the cost chart's frame shows over the chart (its text, once it has one)
STATUS_LINES = ("[...document.querySelectorAll('iframe')].flatMap(f => {"
                " try { return [...f.contentDocument.querySelectorAll('[data-testid=babysit-status]:not([hidden])')]"
                ".map(e => e.textContent.trim()); } catch (e) { return []; } })")


def status_lines(page):
    """The text of every status line on the page (one, on a live run's page)."""
    return page.evaluate(f"() => {STATUS_LINES}")


def wait_for_status(page, text, timeout=5_000):
    """The page's status line once it is the only one and holds text; AssertionError, with the lines seen,
    if that does not happen within timeout ms."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        lines = status_lines(page)
        if len(lines) == 1 and text in lines[0]:
            return lines[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no single status line holding {text!r} within {timeout / 1000:g} s: {lines!r}")
        page.wait_for_timeout(100)
