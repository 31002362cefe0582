"""Console pages of Tenant admin: MDM authority, licenses, admins, roles, scope tags, audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from aospmdm.core import permissions
from aospmdm.core.errors import BadRequest, DomainError
from aospmdm.core.odata import compile_filter
from aospmdm.tenant import access, audit, service
from aospmdm.tenant.deps import ConsoleDep, ConsoleFormDep, SessionDep
from aospmdm.tenant.models import AuditEvent, RoleDefinition
from aospmdm.tenant.schemas import ScopeTagCreate
from aospmdm.web.templating import done, render

router = APIRouter(prefix="/console/tenant")
SECTION = "Tenant admin"
AUDIT_PAGE = 100


def _page(request: Request, console: Any, name: str, **ctx: Any) -> HTMLResponse:
    return render(request, f"tenant/{name}", console=console, section=SECTION, **ctx)


@router.get("", response_class=HTMLResponse)
def overview(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Tenant admin: links to each page."""
    return _page(request, console, "index.html")


@router.get("/authority", response_class=HTMLResponse)
def authority(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """The MDM authority, and the button that sets it."""
    console.actor.require("organization.read")
    return _page(
        request, console, "authority.html", org=service.organization(session), notice=notice
    )


@router.post("/authority")
def set_authority(session: SessionDep, console: ConsoleFormDep) -> Response:
    """Set the MDM authority."""
    org = service.organization(session)
    changed = service.set_mdm_authority(session, console.actor, org.id)
    return done(
        "/console/tenant/authority",
        "MDM authority set." if changed else "The MDM authority was already set.",
    )


@router.get("/licenses", response_class=HTMLResponse)
def licenses(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """Device licenses: seats and use."""
    console.actor.require("organization.read")
    return _page(request, console, "licenses.html", org=service.organization(session))


@router.get("/admins", response_class=HTMLResponse)
def admins(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Administrators and their role assignments."""
    people = service.list_admins(session, console.actor)
    rows = list(session.scalars(service.assignment_statement(console.actor)))
    details = service.assignment_details(session, rows)
    roles = {r.id: r.display_name for r in session.scalars(select(RoleDefinition))}
    by_admin: dict[str, list[str]] = {}
    for row in rows:
        members, tags = details[row.id]
        for admin in members:
            scope = ", ".join(tags) if tags else "all scope tags"
            by_admin.setdefault(admin.id, []).append(
                f"{roles.get(row.role_definition_id)} ({scope})"
            )
    tags = list(session.scalars(service.list_scope_tags(session, console.actor)))
    return render(
        request,
        "tenant/admins.html",
        status_code=status,
        console=console,
        section=SECTION,
        admins=people,
        by_admin=by_admin,
        role_names=sorted(roles.values()),
        tags=tags,
        notice=notice,
        error=error,
    )


@router.post("/admins")
def create_admin(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=128)],
    scope_tags: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Add an administrator with a role, optionally scoped to tags."""
    try:
        with session.begin_nested():
            service.create_admin(
                session,
                console.actor,
                email,
                password,
                role_name=role,
                scope_tag_names=[t for t in scope_tags or [] if t],
            )
    except DomainError as exc:
        if exc.status == 403:
            raise
        return admins(request, session, console, error=exc.message, status=exc.status)
    return done("/console/tenant/admins", f"Administrator {email.strip().lower()} added.")


@router.get("/roles", response_class=HTMLResponse)
def roles(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """Roles and their permissions."""
    found = list(session.scalars(service.role_statement(console.actor)))
    return _page(
        request,
        console,
        "roles.html",
        roles=[(r, access.role_permissions(r)) for r in found],
        all_permissions=permissions.all_permissions(),
    )


@router.get("/scope-tags", response_class=HTMLResponse)
def scope_tags(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Scope tags."""
    tags = list(session.scalars(service.list_scope_tags(session, console.actor)))
    return render(
        request,
        "tenant/scope_tags.html",
        status_code=status,
        console=console,
        section=SECTION,
        tags=tags,
        notice=notice,
        error=error,
    )


@router.post("/scope-tags")
def create_scope_tag(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    display_name: Annotated[str, Form(max_length=256)],
    description: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Create a scope tag."""
    try:
        with session.begin_nested():
            data = ScopeTagCreate.model_validate(
                {"displayName": display_name, "description": description}
            )
            service.create_scope_tag(session, console.actor, data)
    except DomainError as exc:
        if exc.status == 403:
            raise
        return scope_tags(request, session, console, error=exc.message, status=exc.status)
    except ValueError as exc:
        return scope_tags(request, session, console, error=str(exc), status=400)
    return done("/console/tenant/scope-tags", f"Scope tag {display_name.strip()} created.")


def _local_time(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"'{value}' is not a date and time.", target=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    category: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
) -> HTMLResponse:
    """The audit log, newest first, filtered by category, actor and time (UTC)."""
    stmt = audit.list_statement(console.actor)
    error = None
    try:
        start, end = _local_time(since, "since"), _local_time(until, "until")
        if category:
            stmt = stmt.where(AuditEvent.category == category)
        if actor:
            stmt = stmt.where(
                compile_filter(
                    "contains(actor/userPrincipalName, '" + actor.replace("'", "''") + "')",
                    audit.FILTER_FIELDS,
                )
            )
        if start:
            stmt = stmt.where(AuditEvent.activity_at >= start)
        if end:
            stmt = stmt.where(AuditEvent.activity_at <= end)
    except BadRequest as exc:
        error = exc.message
    events = list(session.scalars(stmt.limit(AUDIT_PAGE)))
    categories = sorted(set(session.scalars(select(AuditEvent.category).distinct())))
    return _page(
        request,
        console,
        "audit.html",
        events=events,
        categories=categories,
        filters={"category": category, "actor": actor, "since": since, "until": until},
        error=error,
    )
