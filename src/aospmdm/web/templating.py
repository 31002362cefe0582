"""Jinja2 templates for every console page, and the navigation they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from aospmdm.core import clock
from aospmdm.core.errors import DomainError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["iso"] = clock.iso

# (label, path or None until the feature that serves it exists)
NAV: list[tuple[str, str | None]] = [
    ("Home", "/console"),
    ("Devices", "/console/devices"),
    ("Groups", "/console/groups"),
    ("Apps", "/console/apps"),
    ("Policies", "/console/policies"),
    ("Tenant admin", "/console/tenant"),
    ("Troubleshooting + Support", "/console/support"),
]
# A section's own pages, shown on that section's pages under the main navigation.
SUBNAV: dict[str, list[tuple[str, str]]] = {
    "Apps": [
        ("All apps", "/console/apps"),
        ("Discovered apps", "/console/apps/discovered"),
    ],
    "Policies": [
        ("Configuration", "/console/policies/configuration"),
        ("Compliance", "/console/policies/compliance"),
    ],
}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("nav", NAV)
    context.setdefault("subnav", SUBNAV)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def done(path: str, notice: str) -> RedirectResponse:
    """After a successful form post: back to a page that shows the notice (post/redirect/get)."""
    return RedirectResponse(f"{path}?notice={quote(notice)}", status_code=303)


def reraise_page_refusal(exc: DomainError) -> None:
    """Not allowed and not found are whole-page answers; other refusals go next to the form."""
    if exc.status in (403, 404):
        raise exc
