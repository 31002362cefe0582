"""Admin API of remote actions: the managedDevice actions of Graph, bulk executeAction, the
device's action results, and cancelling a pending action."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import Field, StringConstraints

from aospmdm.actions import service
from aospmdm.core.errors import DomainError
from aospmdm.core.schemas import GraphInput
from aospmdm.devices import api as devices_api
from aospmdm.devices import service as devices
from aospmdm.tenant.deps import ActorDep, SessionDep, SettingsDep

router = APIRouter(prefix="/beta/deviceManagement/managedDevices")

# managedDevice.deviceActionResults; the temporary passcode only through
# GET …/{id}/deviceActionResults, which knows who asks.
devices_api.EXTRA_PROPERTIES.append(
    lambda session, ids: {
        d: {"deviceActionResults": r}
        for d, r in service.action_results(session, None, None, ids).items()
    }
)

ActionName = Literal["wipe", "delete", "remoteLock", "resetPasscode", "rebootNow"]
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ExecuteAction(GraphInput):
    action_name: ActionName
    device_ids: Annotated[list[DeviceId], Field(min_length=1, max_length=1000)]


class WipeBody(GraphInput):
    # Graph's wipe parameters; a userless AOSP device has no user data to keep.
    keep_enrollment_data: bool | None = None
    keep_user_data: bool | None = None
    mac_os_unlock_code: str | None = None
    persist_esim_data_plans: bool | None = None


def _queue(name: str, device_id: str, session: Any, settings: Any, actor: Any) -> Response:
    service.request(session, settings, actor, device_id, name)
    return Response(status_code=204)


@router.post("/{device_id}/wipe", status_code=204)
def wipe(
    device_id: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    body: WipeBody | None = None,
) -> Response:
    """Factory reset the device; it is removed once it confirms (managementState
    wipePending until then)."""
    return _queue("wipe", device_id, session, settings, actor)


@router.post("/{device_id}/remoteLock", status_code=204)
def remote_lock(
    device_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """Lock the device (needs a passcode policy assigned to it)."""
    return _queue("remoteLock", device_id, session, settings, actor)


@router.post("/{device_id}/resetPasscode", status_code=204)
def reset_passcode(
    device_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """Set a new temporary numeric passcode (needs a passcode policy); it is shown in the
    action result for 7 days."""
    return _queue("resetPasscode", device_id, session, settings, actor)


@router.post("/{device_id}/rebootNow", status_code=204)
def reboot_now(
    device_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """Restart the device."""
    return _queue("rebootNow", device_id, session, settings, actor)


@router.delete("/{device_id}", status_code=204)
def delete_device(
    device_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """Delete the device at once (its license is freed); its next check-in is told to
    factory reset."""
    return _queue("delete", device_id, session, settings, actor)


@router.get("/{device_id}/deviceActionResults")
def action_results(
    device_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """The device's actions, newest first, with the temporary passcode of a reset (for 7
    days) for admins who may reset this device's passcode."""
    device = devices.get_device(session, actor, device_id)
    return {"value": service.action_results(session, settings, actor, [device.id])[device.id]}


@router.post("/{device_id}/deviceActionResults/{action_id}/cancel", status_code=204)
def cancel(device_id: str, action_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Beyond Graph: cancel an action the device has not accepted yet."""
    service.cancel(session, actor, device_id, action_id)
    return Response(status_code=204)


@router.post("/executeAction")
def execute_action(
    body: ExecuteAction, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """Beyond Graph's one-at-a-time actions: the same action on many devices. Each device
    gets its own result: accepted, or why it was refused; one refusal does not stop the
    others. Without the action's permission at all the whole request is refused (403),
    before any device is looked at."""
    actor.require(service.action(body.action_name).permission)
    out: list[dict[str, Any]] = []
    for device_id in dict.fromkeys(body.device_ids):
        try:
            with session.begin_nested():
                command = service.request(session, settings, actor, device_id, body.action_name)
            out.append({"deviceId": device_id, "status": "accepted", "actionId": command.id})
        except DomainError as exc:
            out.append(
                {
                    "deviceId": device_id,
                    "status": "refused",
                    "error": {"code": exc.code, "message": exc.message},
                }
            )
    return {"value": out}
