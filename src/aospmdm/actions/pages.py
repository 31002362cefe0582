"""Console pages of remote actions, in Intune's words: the device page's action buttons (Wipe,
Delete, Remote lock, Reset passcode, Restart), each with a confirmation (Wipe asks the admin
to answer "Yes"), its "Action status" panel (the history, Cancel for a pending action, and the
temporary passcode of a reset for admins who may reset passcodes), bulk actions on the device
list with a result per device, and the fleet "Device actions" report.

A refusal (no passcode policy, a pending wipe...) comes back on the confirmation page in words;
not allowed and not found are whole-page answers.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from aospmdm.actions import service
from aospmdm.actions.models import PENDING, DeviceCommand
from aospmdm.core.errors import DomainError, NotFound
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.devices.pages import when, words
from aospmdm.tenant.deps import Console, ConsoleDep, ConsoleFormDep, SessionDep, SettingsDep
from aospmdm.web.templating import done, render, reraise_page_refusal, templates

router = APIRouter(prefix="/console/devices")
SECTION = "Devices"
BASE = "/console/devices"
REPORT = "/console/devices/actions"
BULK = "/console/devices/actions/bulk"
PAGE_SIZE = 100
MAX_BULK = 1000

# Graph's action names in the console's words, in the order of the device page's buttons.
LABELS = {
    "wipe": "Wipe",
    "delete": "Delete",
    "remoteLock": "Remote lock",
    "resetPasscode": "Reset passcode",
    "rebootNow": "Restart",
}
# The bulk select offers them in Intune's bulk order.
BULK_ORDER = ("remoteLock", "rebootNow", "resetPasscode", "wipe", "delete")
STATES = ("pending", "active", "done", "failed", "canceled", "notSupported")
EXPLAIN = {
    "wipe": "The device is factory reset: its data, settings and enrollment are erased. Its "
    "management state is Wipe pending until it confirms; then it leaves the device list.",
    "delete": "The device leaves the device list at once and its license is freed. Its next "
    "check-in tells it to factory reset.",
    "remoteLock": "The device locks its screen. It needs a passcode policy assigned to it.",
    "resetPasscode": "The device gets a new temporary numeric passcode, shown in its action "
    "status for 7 days to admins who may reset its passcode. It needs a passcode policy.",
    "rebootNow": "The device restarts.",
}

_Short = Annotated[str, Form(max_length=32)]


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _time(value: str | None) -> str:
    """An ISO time from the service, to the second."""
    if not value:
        return "—"
    return value.split(".")[0].removesuffix("Z") + "Z"


def _device_url(device_id: str) -> str:
    return f"{BASE}/{device_id}"


def _page(
    request: Request, console: Console, template: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    return render(
        request,
        f"actions/{template}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        report=REPORT,
        bulk=BULK,
        labels=LABELS,
        explain=EXPLAIN,
        words=words,
        when=when,
        **ctx,
    )


def _spec(name: str) -> service.Action:
    spec = service.ACTIONS.get(name)
    if spec is None:
        raise NotFound(f"There is no device action '{name}'.")
    return spec


def allowed_actions(console: Console) -> list[str]:
    """The actions this admin may take, in the device page's order."""
    return [n for n in LABELS if console.actor.can(service.ACTIONS[n].permission)]


# --- the device page's panel ---------------------------------------------------------------


def device_action_panel(
    request: Request, console: Console, device: ManagedDevice
) -> dict[str, Any]:
    """What the device page's actions section shows: the buttons this admin may use and the
    action history (read in the request's own unit of work, the one the device came from)."""
    session = object_session(device)
    history: list[dict[str, Any]] = []
    show_passcode = False
    if session is not None:
        settings = request.app.state.settings
        history = service.action_results(session, settings, console.actor, [device.id])[device.id]
        # Within the admin's resetPasscode scope only, as the API's action results.
        show_passcode = device.id in service.passcode_devices(session, console.actor, [device.id])
    for item in history:
        item["label"] = _label(item["actionName"])
        item["started"] = _time(item["startDateTime"])
        item["updated"] = _time(item["lastUpdatedDateTime"])
        spec = service.ACTIONS.get(item["actionName"])
        item["can_cancel"] = (
            item["actionState"] == PENDING
            and spec is not None
            and console.actor.can(spec.permission)
        )
    return {
        "buttons": allowed_actions(console),
        "labels": LABELS,
        "history": history,
        "show_passcode": show_passcode,
        "notice": request.query_params.get("notice"),
    }


templates.env.globals["device_action_panel"] = device_action_panel


# --- one device: confirm, carry out, cancel -------------------------------------------------


def _confirm_page(
    request: Request,
    console: Console,
    device: ManagedDevice,
    name: str,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    return _page(
        request, console, "confirm.html", status=status, device=device, action_name=name, **ctx
    )


@router.get("/{device_id}/actions/{name}", response_class=HTMLResponse)
def confirm_action(
    request: Request, session: SessionDep, console: ConsoleDep, device_id: str, name: str
) -> HTMLResponse:
    """The confirmation of one action on one device: Yes or No (Wipe: type Yes)."""
    spec = _spec(name)
    console.actor.require(spec.permission)
    device = devices.get_device(session, console.actor, device_id)
    return _confirm_page(request, console, device, name)


@router.post("/{device_id}/actions/{name}", response_model=None)
def take_action(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    device_id: str,
    name: str,
    answer: _Short = "",
    confirm_text: _Short = "",
) -> Response:
    """Yes: queue the action (a refusal is shown in place). No: back to the device."""
    spec = _spec(name)
    console.actor.require(spec.permission)
    if answer != "yes":
        return RedirectResponse(_device_url(device_id), status_code=303)
    device = devices.get_device(session, console.actor, device_id)
    if name == "wipe" and confirm_text.strip().lower() != "yes":
        return _confirm_page(
            request,
            console,
            device,
            name,
            status=400,
            confirm_error='Type "Yes" to confirm the wipe.',
        )
    device_name = device.device_name
    try:
        with session.begin_nested():
            service.request(session, settings, console.actor, device.id, name)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _confirm_page(request, console, device, name, status=exc.status, error=exc.message)
    if name == "delete":
        return done(BASE, f"{device_name} deleted. Its next check-in tells it to factory reset.")
    return done(_device_url(device_id), f"{_label(name)} requested for {device_name}.")


@router.post("/{device_id}/actions/{command_id}/cancel", response_model=None)
def cancel_action(
    session: SessionDep, console: ConsoleFormDep, device_id: str, command_id: str
) -> Response:
    """Cancel a pending action; one the device has already taken says so on the device page."""
    try:
        with session.begin_nested():
            command = service.cancel(session, console.actor, device_id, command_id)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return done(_device_url(device_id), f"Not canceled: {exc.message}")
    return done(_device_url(device_id), f"{_label(command.action_name)} canceled.")


# --- bulk actions from the device list ------------------------------------------------------


def _named_devices(session: Session, console: Console, ids: list[str]) -> list[tuple[str, str]]:
    """(id, name) of the chosen devices; ids this admin cannot see keep their id as name."""
    rows = session.execute(
        devices.device_statement(console.actor)
        .with_only_columns(ManagedDevice.id, ManagedDevice.device_name)
        .where(ManagedDevice.id.in_(ids))
    )
    names = {device_id: name for device_id, name in rows}
    return [(i, names.get(i, i)) for i in ids]


@router.post("/actions/bulk", response_class=HTMLResponse)
def bulk_action(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    action: _Short = "",
    answer: _Short = "",
    confirm_text: _Short = "",
    device_id: Annotated[list[str] | None, Form(max_length=MAX_BULK)] = None,
) -> Response:
    """The same action on the chosen devices: a confirmation first, then a result per device
    (queued, or why it was refused); one refusal does not stop the others."""
    if answer == "no":
        return RedirectResponse(BASE, status_code=303)
    ids = list(dict.fromkeys(i for i in device_id or [] if i))
    chosen = _named_devices(session, console, ids) if ids else []
    ctx: dict[str, Any] = {
        "action": action,
        "chosen": chosen,
        "choices": [n for n in BULK_ORDER if console.actor.can(service.ACTIONS[n].permission)],
    }
    if action not in service.ACTIONS:
        return _page(request, console, "bulk.html", status=400, error="Choose an action.", **ctx)
    console.actor.require(service.ACTIONS[action].permission)
    if not ids:
        return _page(
            request,
            console,
            "bulk.html",
            status=400,
            error="Select one or more devices in the device list first.",
            **ctx,
        )
    if answer != "yes":
        return _page(request, console, "bulk.html", **ctx)
    if action == "wipe" and confirm_text.strip().lower() != "yes":
        return _page(
            request,
            console,
            "bulk.html",
            status=400,
            confirm_error='Type "Yes" to confirm the wipe.',
            **ctx,
        )
    results: list[dict[str, Any]] = []
    for did, name in chosen:
        try:
            with session.begin_nested():
                service.request(session, settings, console.actor, did, action)
            results.append({"id": did, "name": name, "ok": True, "message": "Requested"})
        except DomainError as exc:
            results.append({"id": did, "name": name, "ok": False, "message": exc.message})
    return _page(request, console, "bulk.html", results=results, **ctx)


# --- the fleet report -----------------------------------------------------------------------


def _report_url(action: str, state: str, skip: int) -> str:
    query = {k: v for k, v in (("action", action), ("state", state), ("skip", skip)) if v}
    return f"{REPORT}?{urlencode(query)}" if query else REPORT


@router.get("/actions", response_class=HTMLResponse)
def report(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    action: Annotated[str, Query(max_length=32)] = "",
    state: Annotated[str, Query(max_length=32)] = "",
    skip: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Device actions: every action on the devices this admin may see, newest first,
    filterable by action and state. An admin who sees every device also sees the actions of
    devices that were wiped or deleted since."""
    console.actor.require(devices.READ)
    # Only the values the filters offer (a NUL, for one, PostgreSQL cannot even compare).
    action = action if action in LABELS else ""
    state = state if state in STATES else ""
    stmt = select(DeviceCommand)
    if console.actor.scope(devices.READ) is not None:
        visible = devices.device_statement(console.actor).with_only_columns(ManagedDevice.id)
        stmt = stmt.where(DeviceCommand.device_id.in_(visible.order_by(None)))
    if action:
        stmt = stmt.where(DeviceCommand.action_name == action)
    if state:
        stmt = stmt.where(DeviceCommand.state == state)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(
        session.scalars(
            stmt.order_by(DeviceCommand.started_at.desc(), DeviceCommand.id)
            .offset(skip)
            .limit(PAGE_SIZE)
        )
    )
    present = set(
        session.scalars(
            select(ManagedDevice.id).where(ManagedDevice.id.in_({r.device_id for r in rows}))
        )
    )
    return _page(
        request,
        console,
        "report.html",
        rows=rows,
        present=present,
        action=action,
        state=state,
        states=STATES,
        total=total,
        first=skip + 1 if rows else 0,
        last=skip + len(rows),
        previous_url=_report_url(action, state, max(skip - PAGE_SIZE, 0)) if skip else None,
        next_url=_report_url(action, state, skip + PAGE_SIZE) if skip + PAGE_SIZE < total else None,
    )
