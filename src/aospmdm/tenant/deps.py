"""Request dependencies: the unit of work, and who is calling (bearer token or console cookie).

``SessionDep`` is one transaction per request, committed before the response is sent (so a
failed commit is an error response, never a false success). ``ActorDep`` authenticates a
bearer token; ``ConsoleDep`` a console session cookie, and ``ConsoleFormDep`` also checks the
form's CSRF token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request
from itsdangerous import BadSignature, Signer
from sqlalchemy.orm import Session

from aospmdm.core.config import Settings
from aospmdm.core.errors import Forbidden, Unauthorized
from aospmdm.core.security import same
from aospmdm.tenant import access, service
from aospmdm.tenant.access import Actor
from aospmdm.tenant.models import Admin, ConsoleSession

COOKIE = "aospmdm_session"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session, session.begin():
        yield session


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def current_actor(request: Request, session: SessionDep) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Authentication needed: send 'Authorization: Bearer <token>'. An operator creates "
            "a token with 'aospmdm admin token EMAIL'.",
            code="InvalidAuthenticationToken",
        )
    admin = service.admin_for_token(session, token.strip())
    if admin is None:
        raise Unauthorized(
            "The bearer token is unknown, revoked, or its admin is disabled.",
            code="InvalidAuthenticationToken",
        )
    actor = access.actor_for_admin(session, admin, client_address(request))
    request.state.actor = actor
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]


class SignInRequired(Exception):
    """The console needs a signed-in admin: the handler redirects to the sign-in page."""


@dataclass(frozen=True)
class Console:
    actor: Actor
    admin: Admin
    row: ConsoleSession

    @property
    def csrf_token(self) -> str:
        return self.row.csrf_token


def signer(settings: Settings) -> Signer:
    return Signer(settings.instance_key, salt="aospmdm.console.session")


def current_console(request: Request, session: SessionDep, settings: SettingsDep) -> Console:
    raw = request.cookies.get(COOKIE)
    if not raw:
        raise SignInRequired
    try:
        token = signer(settings).unsign(raw).decode()
    except BadSignature:
        raise SignInRequired from None
    found = service.console_session(session, settings, token)
    if found is None:
        raise SignInRequired
    admin, row = found
    actor = access.actor_for_admin(session, admin, client_address(request))
    request.state.actor = actor
    return Console(actor=actor, admin=admin, row=row)


ConsoleDep = Annotated[Console, Depends(current_console)]


def console_form(console: ConsoleDep, csrf_token: Annotated[str, Form()] = "") -> Console:
    """A console form post: it must carry the session's CSRF token."""
    if not csrf_token or not same(csrf_token, console.csrf_token):
        raise Forbidden(
            "The form's security token is missing or stale. Reload the page and try again.",
            code="csrfTokenInvalid",
        )
    return console


ConsoleFormDep = Annotated[Console, Depends(console_form)]
