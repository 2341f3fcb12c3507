"""The web UI's HTML, from the templates shipped in the package: the only jinja2 importer.

Autoescaping is on for every template, so whatever reaches one (a process name, a user name,
a message) is text, never markup. The pages hold no data of the processes: their scripts
fetch it from the live stream and write it with textContent, never as HTML.
"""

from __future__ import annotations

from typing import Any

import jinja2

from sentinel import __version__

# No inline script or style anywhere: scripts and styles come from /ui/static only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Pages:
    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("sentinel.api.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, template: str, **context: Any) -> str:
        return self._env.get_template(template).render(version=__version__, **context)
