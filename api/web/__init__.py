"""scaleplan's web pages, served by the same ``python -m api`` process as the JSON API (see docs/web.md).

Server-rendered HTML (Jinja2 templates and static assets inside this package) with inline SVG pictures drawn
on the server; the one small script only hides the budget inputs that the chosen budget does not use.
"""

from api.web.pages import WebController

__all__ = ["WebController"]
