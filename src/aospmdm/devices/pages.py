"""Console pages of devices: the Devices overview (the device list, filterable by enrollment
profile, and the way to enrollment), a device's Overview (its properties, the versions of
the agent and the authenticator, and a flag when Intune does not list the model or firmware)
and its Discovered apps (the guide's troubleshooting step: find the app, read its
Application Version)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.errors import Forbidden
from aospmdm.devices import service, supported
from aospmdm.devices.models import ManagedDevice
from aospmdm.tenant import access, audit
from aospmdm.tenant.deps import Console, ConsoleDep, SessionDep, SettingsDep
from aospmdm.tenant.models import ScopeTag
from aospmdm.web.templating import render

router = APIRouter(prefix="/console/devices")
SECTION = "Devices"
BASE = "/console/devices"
ENROLLMENT = "/console/devices/enrollment/aosp-userless"
PAGE_SIZE = 100


def words(value: str | None) -> str:
    """A Graph enum value as the console shows it: "wipePending" -> "Wipe pending"."""
    if not value:
        return "—"
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", value).lower()
    return spaced[:1].upper() + spaced[1:]


def when(dt: datetime | None) -> str:
    """A time to the second, in UTC."""
    if dt is None:
        return "—"
    return clock.iso(dt.replace(microsecond=0)) or "—"


def size_text(size: int | None) -> str:
    """A size in bytes as the console shows it: "12.5 MB"; "—" when unknown."""
    if not size:
        return "—"
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _yes_no(value: bool | None, yes: str = "Yes", no: str = "No") -> str:
    return "Unknown" if value is None else (yes if value else no)


def _page(
    request: Request, console: Console, name: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    return render(
        request,
        f"devices/{name}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        enrollment=ENROLLMENT,
        words=words,
        when=when,
        size_text=size_text,
        **ctx,
    )


# --- the Devices overview -------------------------------------------------------------------


def _list_url(profile: str, skip: int) -> str:
    query = {k: v for k, v in (("profile", profile), ("skip", skip)) if v}
    return f"{BASE}?{urlencode(query)}" if query else BASE


def _refused(request: Request, session: Session, console: Console, exc: Forbidden) -> HTMLResponse:
    """Without devices.read the list is refused (and audited, as every refusal is), but the
    way to enrollment stays: an admin may manage enrollment profiles without reading devices."""
    audit.record(
        session,
        console.actor,
        category="Authorization",
        activity=f"{request.method} {request.url.path}"[:256],
        operation="Refused",
        result="failure",
        message=f"{exc.status} {exc.code}: {exc.message}"[:2000],
    )
    return _page(request, console, "index.html", status=exc.status, error=exc.message, rows=None)


@router.get("", response_class=HTMLResponse)
def devices(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    profile: Annotated[str, Query(max_length=256)] = "",
    skip: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Devices: the managed devices this admin may see, 100 a page, filterable by enrollment
    profile; and the way to enrollment."""
    try:
        visible = service.device_statement(console.actor)
    except Forbidden as exc:
        return _refused(request, session, console, exc)
    names = list(
        session.scalars(
            visible.with_only_columns(ManagedDevice.enrollment_profile_name)
            .distinct()
            .order_by(None)
            .order_by(ManagedDevice.enrollment_profile_name)
        )
    )
    if profile and profile not in names:
        names.append(profile)  # keep a stale choice visible, with its empty result
    stmt = visible
    if profile:
        stmt = stmt.where(ManagedDevice.enrollment_profile_name == profile)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.offset(skip).limit(PAGE_SIZE)))
    return _page(
        request,
        console,
        "index.html",
        rows=rows,
        profile=profile,
        profile_names=names,
        total=total,
        first=skip + 1 if rows else 0,
        last=skip + len(rows),
        previous_url=_list_url(profile, max(skip - PAGE_SIZE, 0)) if skip else None,
        next_url=_list_url(profile, skip + PAGE_SIZE) if skip + PAGE_SIZE < total else None,
    )


# --- one device -----------------------------------------------------------------------------


def _tag_names(session: Session, device_id: str) -> list[str]:
    ids = access.tags_of(session, ManagedDevice, [device_id])[device_id]
    if not ids:
        return []
    rows = session.execute(select(ScopeTag.id, ScopeTag.display_name).where(ScopeTag.id.in_(ids)))
    names: dict[str, str] = {tag_id: name for tag_id, name in rows}
    return [names.get(i, i) for i in ids]


@router.get("/{device_id}", response_class=HTMLResponse)
def device_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleDep,
    device_id: str,
) -> HTMLResponse:
    """A device's Overview: its properties, its agent and authenticator versions, and whether
    Intune lists its model and firmware."""
    device = service.get_device(session, console.actor, device_id)
    apps = {a.package_name: a for a in service.apps_of(session, device.id)}
    required = [
        ("Agent", settings.agent_package, apps.get(settings.agent_package)),
        ("Authenticator", settings.authenticator_package, apps.get(settings.authenticator_package)),
    ]
    support = supported.support_of(device.manufacturer, device.model, device.os_version)
    listed = (
        f"Yes (minimum firmware {support.model.minimum_firmware})"
        if support.supported and support.model
        else "No"
    )
    properties = [
        ("Device name", device.device_name),
        ("Serial number", device.serial_number),
        ("Manufacturer", device.manufacturer),
        ("Model", device.model),
        ("Operating system", "Android (AOSP)"),
        ("OS version", device.os_version),
        ("In Intune's supported devices", listed),
        ("Security patch level", device.security_patch_level or "—"),
        ("Ownership", "Corporate"),
        ("Enrollment type", "Corporate-owned, userless devices"),
        ("Enrollment profile", device.enrollment_profile_name),
        ("Enrolled (UTC)", when(device.enrolled_at)),
        ("Last check-in (UTC)", when(device.last_sync_at)),
        ("Management state", words(device.management_state)),
        ("Compliance state", words(device.compliance_state)),
        ("Agent version", device.agent_version),
        ("Encryption", _yes_no(device.is_encrypted, "Encrypted", "Not encrypted")),
        ("Rooted", _yes_no(device.is_rooted)),
        ("Battery", "—" if device.battery_level is None else f"{device.battery_level}%"),
        ("Scope tags", ", ".join(_tag_names(session, device.id))),
    ]
    return _page(
        request,
        console,
        "device.html",
        device=device,
        tab="overview",
        properties=properties,
        required=required,
        support=support,
        source=supported.SOURCE,
        source_url=supported.SOURCE_URL,
    )


@router.get("/{device_id}/apps", response_class=HTMLResponse)
def discovered_apps(
    request: Request, session: SessionDep, console: ConsoleDep, device_id: str
) -> HTMLResponse:
    """Discovered apps: what the device reported installed, with each Application Version."""
    device = service.get_device(session, console.actor, device_id)
    return _page(
        request,
        console,
        "apps.html",
        device=device,
        tab="apps",
        apps=service.apps_of(session, device.id),
    )
