"""Admin API of managed devices: /beta/deviceManagement/managedDevices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.odata import page
from aospmdm.devices import service
from aospmdm.devices.models import DeviceApp, ManagedDevice
from aospmdm.devices.schemas import DeviceUpdate
from aospmdm.tenant import access
from aospmdm.tenant.deps import ActorDep, SessionDep

router = APIRouter(prefix="/beta/deviceManagement/managedDevices")


def _jailbroken(value: bool | None) -> str:
    return "Unknown" if value is None else ("True" if value else "False")


# Properties that features above devices add to the managedDevice shape (remote actions add
# deviceActionResults): each takes the device ids and returns {id: {property: value}}.
EXTRA_PROPERTIES: list[Callable[[Session, list[str]], dict[str, dict[str, Any]]]] = []


def devices_json(session: Session, rows: Sequence[ManagedDevice]) -> list[dict[str, Any]]:
    ids = [d.id for d in rows]
    tags = access.tags_of(session, ManagedDevice, ids)
    out = [device_json(d, tags[d.id]) for d in rows]
    for extra in EXTRA_PROPERTIES:
        found = extra(session, ids)
        for item in out:
            item.update(found.get(item["id"], {}))
    return out


def device_json(d: ManagedDevice, tags: list[str]) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": d.id,
        "deviceName": d.device_name,
        "managedDeviceName": d.device_name,
        "enrollmentProfileName": d.enrollment_profile_name,
        "managementState": d.management_state,
        "complianceState": d.compliance_state,
        "ownerType": "company",
        "managedDeviceOwnerType": "company",
        "deviceEnrollmentType": "androidAOSPUserlessDeviceEnrollment",
        "managementAgent": "intuneAosp",
        "operatingSystem": "Android",
        "osVersion": d.os_version,
        "androidSecurityPatchLevel": d.security_patch_level,
        "manufacturer": d.manufacturer,
        "model": d.model,
        "serialNumber": d.serial_number,
        "enrolledDateTime": clock.iso(d.enrolled_at),
        "lastSyncDateTime": clock.iso(d.last_sync_at),
        "isEncrypted": bool(d.is_encrypted),
        "jailBroken": _jailbroken(d.is_rooted),
        "batteryLevelPercentage": d.battery_level,
        "userId": None,
        "userPrincipalName": None,
        "userDisplayName": None,
        "emailAddress": None,
        "deviceCategoryDisplayName": d.device_category,
        "roleScopeTagIds": tags,
        # Beyond Graph: the version of the aospmdm agent on the device, and the extension
        # attributes dynamic-group rules select on (Entra keeps these on its device object).
        "agentVersion": d.agent_version,
        "extensionAttributes": {
            f"extensionAttribute{n}": d.extension_attributes.get(f"extensionAttribute{n}")
            for n in range(1, 16)
        },
    }


def detected_app_json(app: DeviceApp | Any, device_count: int = 1) -> dict[str, Any]:
    """Graph's detectedApp: one app at one version (on one device, or fleet-wide)."""
    return {
        "@odata.type": "#microsoft.graph.detectedApp",
        "id": service.detected_app_id(app.package_name, app.version_name),
        "displayName": app.display_name or app.package_name,
        "version": app.version_name,
        "platform": "androidOSP",
        "publisher": None,
        "sizeInByte": app.size_in_bytes,
        "deviceCount": device_count,
        # Beyond Graph: the Android package and version code.
        "packageName": app.package_name,
        "versionCode": app.version_code,
    }


# Fleet-wide discovered apps live beside the devices (Graph: /deviceManagement/detectedApps).
fleet = APIRouter(prefix="/beta/deviceManagement/detectedApps")


@fleet.get("")
def fleet_detected_apps(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Every app at every version on the devices the admin may see, with device counts
    ($top, $skip, $count)."""
    return page(
        session,
        service.detected_apps_statement(actor),
        request.query_params,
        lambda rows: [detected_app_json(r, r.device_count) for r in rows],
        str(request.url.replace(query="")),
        scalars=False,
    )


@fleet.get("/{app_id}")
def fleet_detected_app(app_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    row = service.find_detected_app(session, actor, app_id)
    return detected_app_json(row, row.device_count)


@fleet.get("/{app_id}/managedDevices")
def fleet_app_devices(
    app_id: str, request: Request, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """The devices (the admin may see) that have this app at this version."""
    row = service.find_detected_app(session, actor, app_id)
    return page(
        session,
        service.devices_with_app(actor, row.package_name, row.version_name),
        request.query_params,
        lambda rows: devices_json(session, rows),
        str(request.url.replace(query="")),
        fields=service.FILTER_FIELDS,
    )


@router.get("")
def list_devices(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Managed devices the admin may see ($filter, $top, $skip, $select, $count)."""
    return page(
        session,
        service.device_statement(actor),
        request.query_params,
        lambda rows: devices_json(session, rows),
        str(request.url.replace(query="")),
        fields=service.FILTER_FIELDS,
    )


@router.get("/{device_id}")
def get_device(device_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One managed device."""
    return devices_json(session, [service.get_device(session, actor, device_id)])[0]


@router.patch("/{device_id}")
def update_device(
    device_id: str, body: DeviceUpdate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Set a device's name, category or extension attributes (dynamic groups follow)."""
    device = service.update_device(session, actor, device_id, body.changes())
    return devices_json(session, [device])[0]


@router.get("/{device_id}/detectedApps")
def detected_apps(device_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The apps the device reported installed, with their versions."""
    device = service.get_device(session, actor, device_id)
    return {"value": [detected_app_json(a) for a in service.apps_of(session, device.id)]}
