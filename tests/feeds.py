"""The live charts' route, asked as a chart in the page asks it, for AppTest tests (which draw no frame).

``fetch(feed)`` answers a chart's ``feed`` (its route and query, as the page gave it) through the real
route (babysit/ui/live_feed.py), with the server's manager, as the frame's own request would be answered.
"""

import json

from starlette.requests import Request

from babysit.ui.live_feed import routes
from babysit.ui.state import made_manager


def fetch(feed, manager=made_manager):
    """(status code, answer as a dict) for ``feed``, e.g. "babysit/live/<id>/cost?axis=step", answered
    with the runs ``manager()`` gives (by default the server's, as the page's pages made it)."""
    path, _, query = feed.partition("?")
    (route,) = routes(manager)
    scope = {"type": "http", "method": "GET", "path": "/" + path, "query_string": query.encode(), "headers": []}
    _, child = route.matches(scope)
    response = route.endpoint(Request({**scope, **child}))
    return response.status_code, json.loads(response.body)


def charts(at):
    """{component key: its arguments} for every live chart on the page AppTest drew."""
    return {c.key: json.loads(c.proto.json_args) for c in at.get("component_instance")}


def cost_answer(at):
    (args,) = [a for key, a in charts(at).items() if key.endswith(":cost")]
    code, body = fetch(args["feed"])
    assert code == 200, body
    return body


def status_line(at):
    """The status line the page's cost chart shows, bold parts marked as in Markdown."""
    return "".join(f"**{text}**" if bold else text for text, bold in cost_answer(at)["status"])
