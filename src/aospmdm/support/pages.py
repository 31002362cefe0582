"""Console pages of Troubleshooting + Support, after Intune's blade of that name: find a
worker (by user principal name or name) and see their devices, who is signed in where and
their sign-in history; a device's troubleshooting view (last check-in, the agent and
authenticator versions, the signed-in worker and recent sessions, pending actions, recent
errors, compliance reasons and the logs it uploaded); and the search box for an incident ID,
which leads to that log upload and its download.

Not allowed and not found are whole-page answers; an incident ID that matches nothing (or an
upload out of the admin's scope) is said in words on the search page.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from aospmdm.actions import service as actions
from aospmdm.actions.models import OPEN
from aospmdm.actions.pages import LABELS as ACTION_LABELS
from aospmdm.apps import service as apps
from aospmdm.apps.models import DeviceAppStatus, MobileApp
from aospmdm.core import clock
from aospmdm.core.errors import Forbidden, NotFound
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.devices.pages import size_text, when, words
from aospmdm.policies import service as policies
from aospmdm.policies.models import COMPLIANCE
from aospmdm.policies.pages import DEVICE_STATES, setting_rows, status_word
from aospmdm.support import service
from aospmdm.tenant.access import Actor
from aospmdm.tenant.deps import Console, ConsoleDep, SessionDep, SettingsDep
from aospmdm.tenant.models import AuditEvent
from aospmdm.users import service as users
from aospmdm.users.models import DeviceSession, DirectoryUser
from aospmdm.web.templating import render

router = APIRouter(prefix="/console/support")
SECTION = "Troubleshooting + Support"
BASE = "/console/support"
DEVICES = "/console/devices"
AUDIT_READ = "audit.read"
MAX_MATCHES = 50
MAX_SEARCH = 256
RECENT = 10
NO_INCIDENT = "No incident with that ID, or you may not see it."
FAILED_ACTIONS = ("failed", "notSupported")
FAILED_INSTALLS = ("failed", "uninstallFailed")
# Why a session ended, in the console's words.
ENDED = {
    "signOut": "Signed out",
    "replaced": "Another user signed in",
    "admin": "Ended by an admin",
    "expired": "Expired",
    "userDisabled": "User disabled",
    "userDeleted": "User deleted",
    "deviceRemoved": "Device removed",
}

_Search = Annotated[str, Query()]


# --- helpers ----------------------------------------------------------------------------------


def _page(
    request: Request, console: Console, name: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    return render(
        request,
        f"support/{name}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        devices_base=DEVICES,
        can_read_users=console.actor.can(users.READ),
        can_read_devices=console.actor.can(devices.READ),
        can_download=console.actor.can(service.DOWNLOAD),
        ended_words=ENDED,
        words=words,
        when=when,
        size_text=size_text,
        **ctx,
    )


def _quoted(value: str) -> str:
    return quote(value, safe="")


def user_url(user_id: str) -> str:
    return f"{BASE}/users/{_quoted(user_id)}"


def device_url(device_id: str) -> str:
    return f"{BASE}/devices/{_quoted(device_id)}"


def incident_url(incident_id: str) -> str:
    return f"{BASE}/incidents/{_quoted(incident_id)}"


def _usable(text: str) -> str | None:
    """Search text as typed, or None when it cannot match anything (empty, too long, or
    with a NUL, which PostgreSQL cannot even compare)."""
    text = text.strip()
    if not text or len(text) > MAX_SEARCH or "\x00" in text:
        return None
    return text


def _time(value: str | None) -> str:
    """An ISO time from the actions service, to the second."""
    if not value:
        return "—"
    return value.split(".")[0].removesuffix("Z") + "Z"


def _shown(text: str) -> str:
    """Search text to put back in its box."""
    return text.replace("\x00", "")[:MAX_SEARCH]


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _is_open(row: DeviceSession) -> bool:
    return row.ended_at is None and row.expires_at > clock.now()


def _session_rows(rows: list[DeviceSession], visible: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "session": r,
            "open": _is_open(r),
            "device_visible": r.device_id in visible,
            "ended": "Signed in" if _is_open(r) else ENDED.get(r.ended_reason or "", "Expired"),
        }
        for r in rows
    ]


# --- the search page ----------------------------------------------------------------------------


def _matching_users(session: Session, actor: Actor, text: str) -> tuple[list[DirectoryUser], bool]:
    """Users whose user principal name or display name contains the text (any case); and
    whether there were more than shown."""
    pattern = _like(text)
    stmt = users.user_statement(actor).where(
        or_(
            func.lower(DirectoryUser.user_principal_name).like(pattern, escape="\\"),
            func.lower(DirectoryUser.display_name).like(pattern, escape="\\"),
        )
    )
    found = list(session.scalars(stmt.limit(MAX_MATCHES + 1)))
    return found[:MAX_MATCHES], len(found) > MAX_MATCHES


@router.get("", response_class=HTMLResponse, response_model=None)
def support(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    user: _Search = "",
    incident: _Search = "",
) -> Response:
    """Troubleshooting + Support: find a user (an exact user principal name or id goes
    straight to the user; otherwise the users whose name contains the text), and the
    incident ID search box (straight to the log upload, or why not)."""
    actor = console.actor
    if not (actor.can(users.READ) or actor.can(devices.READ)):
        actor.require(users.READ)
    ctx: dict[str, Any] = {"user_query": _shown(user), "incident_query": _shown(incident)}
    if incident.strip():
        actor.require(service.READ)
        text = _usable(incident)
        try:
            if text is None:
                raise NotFound(NO_INCIDENT)
            found = service.find_incident(session, actor, text)
        except NotFound:
            ctx["incident_error"] = NO_INCIDENT
        else:
            return RedirectResponse(incident_url(found.id), status_code=303)
    if user.strip():
        actor.require(users.READ)
        text = _usable(user)
        matches: list[DirectoryUser] = []
        more = False
        if text is not None:
            try:
                exact = users.find_user(session, actor, text)
            except NotFound:
                matches, more = _matching_users(session, actor, text)
            else:
                return RedirectResponse(user_url(exact.id), status_code=303)
        ctx |= {"matches": matches, "more": more}
    return _page(request, console, "index.html", **ctx)


# --- a user --------------------------------------------------------------------------------------


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(
    request: Request, session: SessionDep, console: ConsoleDep, user_id: str
) -> HTMLResponse:
    """A user: who they are, the devices they signed in on (the ones the admin may see),
    where they are signed in now, and their sign-in history."""
    actor = console.actor
    found = users.find_user(session, actor, user_id)
    try:
        device_rows = list(session.scalars(users.devices_of_user(actor, found.id)))
        history = users.sessions_of_user(session, actor, found.id)
    except Forbidden:
        device_rows, history = [], []
        readable = False
    else:
        readable = True
    visible = {d.id for d in device_rows}
    signed_in_on = {r.device_id for r in history if _is_open(r)}
    rows = _session_rows(history, visible)
    return _page(
        request,
        console,
        "user.html",
        user=found,
        devices_readable=readable,
        devices=[{"device": d, "signed_in": d.id in signed_in_on} for d in device_rows],
        current=[r for r in rows if r["open"]],
        history=rows,
    )


# --- a device's troubleshooting view ------------------------------------------------------------


def _failed_installs(session: Session, actor: Actor, device_id: str) -> list[dict[str, Any]] | None:
    """The apps (the admin may see) that failed to install or uninstall on the device
    (None: the admin cannot read apps)."""
    if not actor.can(apps.READ):
        return None
    visible = apps.app_statement(actor).with_only_columns(MobileApp.id).order_by(None)
    rows = session.execute(
        select(DeviceAppStatus, MobileApp.display_name, MobileApp.id)
        .join(MobileApp, MobileApp.id == DeviceAppStatus.app_id)
        .where(
            DeviceAppStatus.device_id == device_id,
            DeviceAppStatus.install_state.in_(FAILED_INSTALLS),
            MobileApp.id.in_(visible),
        )
        .order_by(DeviceAppStatus.last_updated_at.desc())
        .limit(RECENT)
    )
    return [
        {
            "app_id": app_id,
            "app": name,
            "state": words(status.install_state),
            "code": f"0x{status.error_code:08X}" if status.error_code else None,
            "message": status.message,
            "at": status.last_updated_at,
        }
        for status, name, app_id in rows
    ]


def _failed_events(session: Session, actor: Actor, device_id: str) -> list[AuditEvent] | None:
    """The latest refused or failed operations on the device in the audit log, such as
    failed sign-ins (None: the admin cannot read the audit log)."""
    if not actor.can(AUDIT_READ):
        return None
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_id == device_id, AuditEvent.result == "failure")
            .order_by(AuditEvent.activity_at.desc(), AuditEvent.id)
            .limit(RECENT)
        )
    )


def _compliance(session: Session, actor: Actor, device: ManagedDevice) -> dict[str, Any]:
    """Why the device is (not) compliant: the failed settings of each compliance policy that
    applies (None when the admin cannot read policies) and of the default policy."""
    default = [
        r
        for r in setting_rows(COMPLIANCE, policies.default_policy_reasons(session, device))
        if r["failed"]
    ]
    assigned: list[dict[str, Any]] | None
    try:
        states = policies.device_policy_states(session, actor, device.id, policies.COMPLIANCES)
    except Forbidden:
        assigned = None
    else:
        assigned = [
            {
                "policy": s["policy"],
                "word": status_word(COMPLIANCE, s["status"]),
                "failed": [r for r in setting_rows(COMPLIANCE, s["setting_states"]) if r["failed"]],
            }
            for s in states
        ]
    return {
        "state": DEVICE_STATES.get(device.compliance_state, words(device.compliance_state)),
        "default": default,
        "policies": assigned,
    }


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleDep,
    device_id: str,
) -> HTMLResponse:
    """A device's troubleshooting view."""
    actor = console.actor
    device = devices.get_device(session, actor, device_id)
    installed = {a.package_name: a for a in devices.apps_of(session, device.id)}
    history = actions.action_results(session, None, actor, [device.id])[device.id]
    for item in history:
        item["label"] = ACTION_LABELS.get(item["actionName"], words(item["actionName"]))
        item["started"] = _time(item["startDateTime"])
        item["updated"] = _time(item["lastUpdatedDateTime"])
    current = sessions = None
    if actor.can(users.READ):
        current = users.current_session(session, device.id)
        sessions = _session_rows(users.sessions_of_device(session, device.id, RECENT), set())
    return _page(
        request,
        console,
        "device.html",
        device=device,
        agent=installed.get(settings.agent_package),
        authenticator=installed.get(settings.authenticator_package),
        authenticator_package=settings.authenticator_package,
        current=current,
        sessions=sessions,
        pending=[a for a in history if a["actionState"] in OPEN],
        failed_actions=[a for a in history if a["actionState"] in FAILED_ACTIONS][:RECENT],
        failed_installs=_failed_installs(session, actor, device.id),
        failed_events=_failed_events(session, actor, device.id),
        compliance=_compliance(session, actor, device),
        logs=service.logs_of_device(session, actor, device.id),
    )


# --- incidents -----------------------------------------------------------------------------------


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(
    request: Request, session: SessionDep, console: ConsoleDep, incident_id: str
) -> HTMLResponse:
    """A log upload by its incident ID: its device, when, size, expiry and status, and the
    download for admins who may fetch logs."""
    upload = service.find_incident(session, console.actor, incident_id)
    device_visible = (
        session.scalars(
            devices.device_statement(console.actor)
            .with_only_columns(ManagedDevice.id)
            .where(ManagedDevice.id == upload.device_id)
        ).first()
        is not None
    )
    return _page(request, console, "incident.html", upload=upload, device_visible=device_visible)


@router.get("/incidents/{incident_id}/download", response_model=None)
def download(
    session: SessionDep, settings: SettingsDep, console: ConsoleDep, incident_id: str
) -> Response:
    """Download an incident's logs: a short-lived URL for this admin, followed at once."""
    console.actor.require(service.DOWNLOAD)
    url = service.create_download_url(session, settings, console.actor, incident_id)
    # The console's own origin carries the admin's session: go there by path.
    parts = urlsplit(url)
    target = parts.path if parts.path.startswith(service.DOWNLOAD_PATH) else url
    return RedirectResponse(target, status_code=303)
