"""Jinja2 templates for every console page, and the navigation they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from aospmdm.core import clock

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["iso"] = clock.iso

# (label, path or None until the feature that serves it exists)
NAV: list[tuple[str, str | None]] = [
    ("Home", "/console"),
    ("Devices", "/console/devices"),
    ("Groups", "/console/groups"),
    ("Apps", None),
    ("Policies", None),
    ("Tenant admin", "/console/tenant"),
]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("nav", NAV)
    return templates.TemplateResponse(request, name, context, status_code=status_code)
