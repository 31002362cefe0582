"""Console pages of apps, after Intune's Apps blade: All apps (the catalog: the required apps
and the uploaded APKs, with each one's current version, whether it is assigned and its
install counts), Upload (a new app, or a new version of one already in the catalog), an app's
Properties with every version, its Assignments (required, uninstall or excluded groups) and
its Device install status, Delete; and the fleet's Discovered apps report (every app at every
version on the devices the admin may see, with device counts, and the devices that have one).

Everything is plain HTML forms; the upload is a multipart form. A refusal from the service (a
bad file, a versionCode that is not higher, a file over the size cap) comes back on the form
with its message.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aospmdm.apps import service
from aospmdm.apps.models import REQUIRED, UNINSTALL, MobileApp, MobileAppVersion
from aospmdm.core.errors import BadRequest, DomainError, Forbidden
from aospmdm.devices import service as devices
from aospmdm.devices.pages import size_text, when, words
from aospmdm.groups import service as groups
from aospmdm.groups.models import DeviceGroup
from aospmdm.tenant import access
from aospmdm.tenant.access import Actor
from aospmdm.tenant.deps import Console, ConsoleDep, ConsoleFormDep, SessionDep, SettingsDep
from aospmdm.tenant.models import ScopeTag
from aospmdm.web.templating import done, render, reraise_page_refusal

router = APIRouter(prefix="/console/apps")
SECTION = "Apps"
BASE = "/console/apps"
UPLOAD = f"{BASE}/upload"
DISCOVERED = f"{BASE}/discovered"
DEVICES = "/console/devices"
PAGE_SIZE = 100
ROLE_LABELS = {
    "agent": "Agent",
    "authenticator": "Authenticator",
    "companyPortal": "Company Portal",
}
# Install states in the order the counts are shown.
STATES = ("installed", "failed", "pending", "notInstalled", "uninstallFailed")

_Text = Annotated[str, Form(max_length=1500)]
_Name = Annotated[str, Form(max_length=256)]
_Ids = Annotated[list[str] | None, Form(max_length=200)]


# --- helpers ----------------------------------------------------------------------------------


def _page(
    request: Request, console: Console, name: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    ctx.setdefault("field_errors", {})
    return render(
        request,
        f"apps/{name}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        devices_base=DEVICES,
        can_write=console.actor.can(service.WRITE),
        role_labels=ROLE_LABELS,
        states=STATES,
        words=words,
        when=when,
        size_text=size_text,
        **ctx,
    )


def _app_url(app_id: str, rest: str = "") -> str:
    return f"{BASE}/{quote(app_id, safe='')}{rest}"


def _tag_names(session: Session, app_id: str) -> list[str]:
    ids = access.tags_of(session, MobileApp, [app_id])[app_id]
    if not ids:
        return []
    rows = session.execute(select(ScopeTag.id, ScopeTag.display_name).where(ScopeTag.id.in_(ids)))
    names: dict[str, str] = {tag_id: name for tag_id, name in rows}
    return [names.get(i, i) for i in ids]


def _visible_groups(session: Session, actor: Actor) -> list[DeviceGroup] | None:
    """The groups the admin may assign to (None: the admin cannot read groups)."""
    try:
        return list(session.scalars(groups.group_statement(actor)))
    except Forbidden:
        return None


def _group_names(session: Session, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(DeviceGroup.id, DeviceGroup.display_name).where(DeviceGroup.id.in_(ids))
    )
    return {gid: name for gid, name in rows}


def _statuses(session: Session, actor: Actor, app: MobileApp) -> list[dict[str, Any]] | None:
    """The app's install state on each device (None: the admin cannot read devices)."""
    try:
        return service.device_statuses(session, actor, app)
    except Forbidden:
        return None


def _assignment_rows(session: Session, actor: Actor, app: MobileApp) -> list[dict[str, Any]]:
    """The app's assignments to the groups the admin may see: group, intent, excluded."""
    rows = service.assignments_of(session, [app.id])[app.id]
    seen = groups.visible_group_ids(session, actor, [a.group_id for a in rows])
    names = _group_names(session, sorted(seen))
    shown = [
        {
            "group_id": a.group_id,
            "group": names.get(a.group_id, a.group_id),
            "intent": "Excluded" if a.exclude else words(a.intent),
        }
        for a in rows
        if a.group_id in seen
    ]
    # Required, then Uninstall, then Excluded; by group name within each.
    order = {"Required": 0, "Uninstall": 1, "Excluded": 2}
    return sorted(shown, key=lambda r: (order.get(r["intent"], 3), r["group"].lower()))


def _version_line(version: MobileAppVersion) -> str:
    return f"{version.version_name or '—'} ({version.version_code})"


# --- All apps -----------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def apps(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """All apps: the catalog with each app's current version, whether it is assigned and its
    install counts."""
    found = list(session.scalars(service.app_statement(console.actor)))
    ids = [a.id for a in found]
    versions = service.versions_of(session, ids)
    assigned = service.assignments_of(session, ids)
    rows = []
    for a in found:
        statuses = _statuses(session, console.actor, a)
        rows.append(
            {
                "app": a,
                "current": versions[a.id][0] if versions[a.id] else None,
                "assigned": a.role is not None or any(not x.exclude for x in assigned[a.id]),
                "counts": None if statuses is None else service.status_counts(statuses),
            }
        )
    return _page(request, console, "index.html", rows=rows, subsection="All apps", notice=notice)


# --- Upload -----------------------------------------------------------------------------------


def _upload_page(
    request: Request,
    session: Session,
    console: Console,
    form: dict[str, Any],
    exc: DomainError | None = None,
) -> HTMLResponse:
    field_errors: dict[str, str] = {}
    error = None
    if exc is not None:
        field = {"file": "file", "displayName": "display_name", "roleScopeTagIds": "scope_tags"}
        name = field.get(exc.target or "")
        if name:
            field_errors[name] = exc.message
        else:
            error = exc.message
    return _page(
        request,
        console,
        "upload.html",
        status=exc.status if exc else 200,
        form=form,
        tags=access.usable_tags(session, console.actor, service.WRITE),
        field_errors=field_errors,
        error=error,
        subsection="All apps",
    )


_BLANK = {"display_name": "", "description": "", "publisher": "", "scope_tags": []}


@router.get("/upload", response_class=HTMLResponse)
def upload_form(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """Upload: an APK file, and optionally the app's name, description, publisher and scope
    tags. An APK of a package already in the catalog adds a version to that app."""
    console.actor.require(service.WRITE)
    return _upload_page(request, session, console, dict(_BLANK))


@router.post("/upload", response_model=None)
def upload(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    file: Annotated[UploadFile | None, File()] = None,
    display_name: _Name = "",
    description: _Text = "",
    publisher: _Name = "",
    scope_tags: Annotated[list[str] | None, Form(max_length=100)] = None,
) -> Response:
    """Read the APK and add it to the catalog; back to the form with the reason if refused."""
    console.actor.require(service.WRITE)
    form: dict[str, Any] = {
        "display_name": display_name,
        "description": description.replace("\r\n", "\n"),
        "publisher": publisher,
        "scope_tags": [t for t in scope_tags or [] if t],
    }
    try:
        if file is None or not file.filename:
            raise BadRequest("Choose the APK file to upload.", target="file")
        source = service.spool(settings, iter(lambda: file.file.read(1 << 20), b""))
        with session.begin_nested():
            result = service.upload(
                session,
                settings,
                console.actor,
                source,
                file.filename,
                display_name=display_name.strip() or None,
                description=form["description"] or None,
                publisher=publisher.strip() or None,
                role_scope_tag_ids=form["scope_tags"] or None,
            )
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _upload_page(request, session, console, form, exc)
    version = _version_line(result.version)
    if result.created:
        notice = f"Uploaded {result.app.display_name} {version}."
    else:
        notice = f"Added version {version} to {result.app.display_name}."
    for warning in result.version.warnings:
        notice += f" Warning: {warning}"
    return done(_app_url(result.app.id), notice)


# --- Discovered apps (fleet) --------------------------------------------------------------------


def _paged(session: Session, stmt: Any, skip: int, url: Any) -> tuple[list[Any], dict[str, Any]]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.execute(stmt.offset(skip).limit(PAGE_SIZE)))
    return rows, {
        "total": total,
        "first": skip + 1 if rows else 0,
        "last": skip + len(rows),
        "previous_url": url(max(skip - PAGE_SIZE, 0)) if skip else None,
        "next_url": url(skip + PAGE_SIZE) if skip + PAGE_SIZE < total else None,
    }


def _skip_url(path: str, skip: int) -> str:
    return f"{path}?{urlencode({'skip': skip})}" if skip else path


@router.get("/discovered", response_class=HTMLResponse)
def discovered(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    skip: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Discovered apps: every app at every version on the devices the admin may see, with
    how many devices have it."""
    stmt = devices.detected_apps_statement(console.actor)
    rows, paging = _paged(session, stmt, skip, lambda s: _skip_url(DISCOVERED, s))
    found = [
        {"id": devices.detected_app_id(r.package_name, r.version_name), "row": r} for r in rows
    ]
    return _page(
        request, console, "discovered.html", rows=found, subsection="Discovered apps", **paging
    )


@router.get("/discovered/{detected_id}", response_class=HTMLResponse)
def discovered_devices(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    detected_id: str,
    skip: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """The devices (the admin may see) that have one app at one version."""
    app = devices.find_detected_app(session, console.actor, detected_id)
    stmt = devices.devices_with_app(console.actor, app.package_name, app.version_name)
    path = f"{DISCOVERED}/{quote(detected_id, safe='')}"
    rows, paging = _paged(session, stmt, skip, lambda s: _skip_url(path, s))
    return _page(
        request,
        console,
        "discovered_devices.html",
        detected=app,
        devices=[r[0] for r in rows],
        subsection="Discovered apps",
        **paging,
    )


# --- one app ----------------------------------------------------------------------------------


@router.get("/{app_id}", response_class=HTMLResponse)
def app_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    app_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """An app's properties (from its current version), every version, its assignments and
    a summary of its install status."""
    app = service.get_app(session, console.actor, app_id)
    versions = service.versions_of(session, [app.id])[app.id]
    statuses = _statuses(session, console.actor, app)
    return _page(
        request,
        console,
        "app.html",
        app=app,
        tab="properties",
        current=versions[0] if versions else None,
        versions=versions,
        assignments=_assignment_rows(session, console.actor, app),
        counts=None if statuses is None else service.status_counts(statuses),
        tag_names=_tag_names(session, app.id),
        notice=notice,
        subsection="All apps",
    )


def _assignments_page(
    request: Request,
    session: Session,
    console: Console,
    app: MobileApp,
    form: dict[str, list[str]] | None = None,
    exc: DomainError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    rows = _assignment_rows(session, console.actor, app)
    if form is None:
        current = service.assignments_of(session, [app.id])[app.id]
        form = {
            "required": [a.group_id for a in current if not a.exclude and a.intent == REQUIRED],
            "uninstall": [a.group_id for a in current if not a.exclude and a.intent == UNINSTALL],
            "exclude": [a.group_id for a in current if a.exclude],
        }
    return _page(
        request,
        console,
        "assignments.html",
        status=exc.status if exc else 200,
        app=app,
        tab="assignments",
        assignments=rows,
        form=form,
        groups=_visible_groups(session, console.actor),
        error=exc.message if exc else None,
        notice=notice,
        subsection="All apps",
    )


@router.get("/{app_id}/assignments", response_class=HTMLResponse)
def assignments_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    app_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """Assignments: the groups that must have the app (Required), must not (Uninstall), or
    are left out (Excluded)."""
    app = service.get_app(session, console.actor, app_id)
    return _assignments_page(request, session, console, app, notice=notice)


@router.post("/{app_id}/assignments", response_model=None)
def save_assignments(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    app_id: str,
    required: _Ids = None,
    uninstall: _Ids = None,
    exclude: _Ids = None,
) -> Response:
    """Replace the assignments (a group chosen twice is refused in place). Devices get the
    app work at their next check-in."""
    console.actor.require(service.WRITE)
    app = service.get_app(session, console.actor, app_id, service.WRITE)
    form = {
        "required": list(dict.fromkeys(g for g in required or [] if g)),
        "uninstall": list(dict.fromkeys(g for g in uninstall or [] if g)),
        "exclude": list(dict.fromkeys(g for g in exclude or [] if g)),
    }
    # An exclusion leaves the group's devices out of every assignment of the app.
    excluded_intent = REQUIRED if form["required"] or not form["uninstall"] else UNINSTALL
    wanted = (
        [service.AssignmentInput(g, REQUIRED, False) for g in form["required"]]
        + [service.AssignmentInput(g, UNINSTALL, False) for g in form["uninstall"]]
        + [service.AssignmentInput(g, excluded_intent, True) for g in form["exclude"]]
    )
    try:
        with session.begin_nested():
            service.assign(session, console.actor, app.id, wanted)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _assignments_page(request, session, console, app, form, exc)
    return done(
        _app_url(app.id, "/assignments"),
        f"Assignments saved: {len(form['required'])} required, {len(form['uninstall'])} "
        f"uninstall, {len(form['exclude'])} excluded group(s). Devices get the change at "
        "their next check-in.",
    )


@router.get("/{app_id}/status", response_class=HTMLResponse)
def status_page(
    request: Request, session: SessionDep, console: ConsoleDep, app_id: str
) -> HTMLResponse:
    """Device install status: the app's state on each device it applies to."""
    app = service.get_app(session, console.actor, app_id)
    rows = _statuses(session, console.actor, app)
    return _page(
        request,
        console,
        "status.html",
        app=app,
        tab="status",
        rows=rows,
        counts=service.status_counts(rows or []),
        subsection="All apps",
    )


@router.get("/{app_id}/delete", response_class=HTMLResponse)
def delete_form(
    request: Request, session: SessionDep, console: ConsoleDep, app_id: str
) -> HTMLResponse:
    """Delete an app: asks Yes or No."""
    app = service.get_app(session, console.actor, app_id)
    return _page(request, console, "delete.html", app=app, tab="properties", subsection="All apps")


@router.post("/{app_id}/delete", response_model=None)
def delete_app(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    app_id: str,
    answer: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Yes: delete the app and its files (devices keep what they installed). No: back to it.
    A required app is refused with the service's reason."""
    console.actor.require(service.WRITE)
    if answer != "yes":
        return RedirectResponse(_app_url(app_id), status_code=303)
    app = service.get_app(session, console.actor, app_id, service.WRITE)
    name = app.display_name
    try:
        with session.begin_nested():
            service.delete_app(session, settings, console.actor, app.id)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _page(
            request,
            console,
            "delete.html",
            status=exc.status,
            app=app,
            tab="properties",
            error=exc.message,
            subsection="All apps",
        )
    return done(BASE, f"App {name} deleted. Devices keep what they installed.")
