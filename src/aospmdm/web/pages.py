"""Console shell pages: sign in, sign out, Home."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aospmdm.core.config import Settings
from aospmdm.core.errors import Forbidden
from aospmdm.core.security import new_secret, same
from aospmdm.tenant import service
from aospmdm.tenant.deps import (
    COOKIE,
    ConsoleDep,
    ConsoleFormDep,
    SessionDep,
    SettingsDep,
    client_address,
    signer,
)
from aospmdm.web.templating import render

router = APIRouter(prefix="/console")
LOGIN_CSRF = "aospmdm_login_csrf"


def safe_next(target: str) -> str:
    """Only redirect within the console after sign-in (no open redirects)."""
    if target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console"


def login_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/console/login?next={quote(path)}", status_code=303)


def _login_page(
    request: Request,
    settings: Settings,
    next_: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    token = new_secret()
    response = render(
        request,
        "login.html",
        status_code=status,
        console=None,
        login_csrf=token,
        next=safe_next(next_),
        email=email,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF,
        token,
        httponly=True,
        samesite="strict",
        path="/console",
        secure=settings.public_url.startswith("https://"),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep, next: str = "/console") -> HTMLResponse:
    """The sign-in form."""
    return _login_page(request, settings, next)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    login_csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/console",
) -> Response:
    """Check the password; on success start a console session in a signed cookie."""
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not login_csrf or not same(cookie, login_csrf):
        raise Forbidden("The sign-in form expired. Reload the page and try again.")
    result = service.sign_in(session, settings, email, password, client_address(request))
    if result.session_token is None:
        status = 429 if result.throttled else 401
        return _login_page(request, settings, next, email=email, error=result.error, status=status)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        signer(settings).sign(result.session_token).decode(),
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF, path="/console")
    return response


@router.post("/logout")
def logout(session: SessionDep, console: ConsoleFormDep) -> Response:
    """End this console session."""
    service.sign_out(session, console.actor, console.row)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """Home: the tenant's state at a glance."""
    return render(
        request, "home.html", console=console, section="Home", org=service.organization(session)
    )
