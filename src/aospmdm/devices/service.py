"""Use cases of managed devices: the record, its facts and its discovered apps."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from aospmdm import protocol
from aospmdm.core import permissions
from aospmdm.core.db import Executor
from aospmdm.core.odata import Field
from aospmdm.core.permissions import Permission
from aospmdm.devices.models import DeviceApp, ManagedDevice
from aospmdm.tenant import access
from aospmdm.tenant.access import Actor

READ = "devices.read"
permissions.register(Permission(READ, "Read devices, their properties and discovered apps."))

FILTER_FIELDS = {
    "deviceName": Field(ManagedDevice.device_name),
    "enrollmentProfileName": Field(ManagedDevice.enrollment_profile_name),
    "serialNumber": Field(ManagedDevice.serial_number),
    "manufacturer": Field(ManagedDevice.manufacturer),
    "model": Field(ManagedDevice.model),
    "osVersion": Field(ManagedDevice.os_version),
    "androidSecurityPatchLevel": Field(ManagedDevice.security_patch_level),
    "managementState": Field(ManagedDevice.management_state),
    "complianceState": Field(ManagedDevice.compliance_state),
    "enrolledDateTime": Field(ManagedDevice.enrolled_at, "datetime"),
    "lastSyncDateTime": Field(ManagedDevice.last_sync_at, "datetime"),
}


def device_statement(actor: Actor) -> Select[Any]:
    return access.visible(
        select(ManagedDevice).order_by(ManagedDevice.device_name, ManagedDevice.id),
        ManagedDevice,
        actor,
        READ,
    )


def get_device(session: Session, actor: Actor, device_id: str) -> ManagedDevice:
    return access.get_visible(session, ManagedDevice, device_id, actor, READ)


def apps_of(session: Session, device_id: str) -> list[DeviceApp]:
    return list(
        session.scalars(
            select(DeviceApp)
            .where(DeviceApp.device_id == device_id)
            .order_by(DeviceApp.display_name, DeviceApp.package_name)
        )
    )


def detected_app_id(package_name: str, version_name: str) -> str:
    """A stable id for one app at one version, the same on every device (Graph's
    detectedApp is per app and version)."""
    return hashlib.sha256(f"{package_name}\x00{version_name}".encode()).hexdigest()[:32]


def enroll_device(
    session: Session,
    *,
    name: str,
    profile_id: str,
    profile_name: str,
    profile_model: Any,
    facts: protocol.DeviceFacts,
    agent_version: str,
    public_key: str,
    apps: Sequence[protocol.InstalledApp],
    now: datetime,
) -> ManagedDevice:
    """Create the managed device; it inherits the scope tags of its enrollment profile."""
    device = ManagedDevice(
        device_name=name,
        enrollment_profile_id=profile_id,
        enrollment_profile_name=profile_name,
        enrolled_at=now,
        last_sync_at=now,
        agent_version=agent_version,
        public_key=public_key,
        installed_apps_hash=protocol.installed_apps_hash(apps),
        **_fact_columns(facts),
    )
    session.add(device)
    session.flush()
    access.copy_tags(session, profile_model, profile_id, ManagedDevice, device.id)
    _write_apps(session, device.id, apps)
    return device


def _fact_columns(facts: protocol.DeviceFacts) -> dict[str, Any]:
    return {
        "serial_number": facts.serial_number,
        "manufacturer": facts.manufacturer,
        "model": facts.model,
        "os_version": facts.os_version,
        "security_patch_level": facts.security_patch_level,
        "battery_level": facts.battery_level,
        "is_encrypted": facts.is_encrypted,
        "is_rooted": facts.is_rooted,
    }


def _write_apps(db: Executor, device_id: str, apps: Sequence[protocol.InstalledApp]) -> None:
    unique = {a.package_name: a for a in apps}
    if unique:
        db.execute(
            insert(_APPS),
            [
                {
                    "device_id": device_id,
                    "package_name": a.package_name,
                    "version_name": a.version_name,
                    "version_code": a.version_code,
                    "display_name": a.display_name or a.package_name,
                }
                for a in unique.values()
            ],
        )


_STATE_COLUMNS = (
    "id",
    "device_name",
    "enrolled_at",
    "agent_version",
    "public_key",
    "installed_apps_hash",
    "serial_number",
    "manufacturer",
    "model",
    "os_version",
    "security_patch_level",
    "battery_level",
    "is_encrypted",
    "is_rooted",
)
_TABLE = cast("Table", ManagedDevice.__table__)
_APPS = cast("Table", DeviceApp.__table__)


@dataclass(frozen=True)
class DeviceState:
    """What the check-in needs of a device, read with one Core query (no ORM bookkeeping on
    the hot path)."""

    id: str
    device_name: str
    enrolled_at: datetime
    agent_version: str
    public_key: str
    installed_apps_hash: str | None
    serial_number: str
    manufacturer: str
    model: str
    os_version: str
    security_patch_level: str
    battery_level: int | None
    is_encrypted: bool | None
    is_rooted: bool | None


def device_state(db: Executor, device_id: str) -> DeviceState | None:
    row = db.execute(
        select(*(_TABLE.c[c] for c in _STATE_COLUMNS)).where(_TABLE.c.id == device_id)
    ).first()
    return DeviceState(**row._mapping) if row is not None else None


def record_check_in(
    db: Executor,
    device: DeviceState,
    *,
    facts: protocol.DeviceFacts,
    agent_version: str,
    apps_hash: str,
    apps: Sequence[protocol.InstalledApp] | None,
    now: datetime,
) -> bool:
    """Store what a check-in reported, writing only what changed. Returns whether the server
    still lacks the app list for the reported hash (the device then sends it next time)."""
    values: dict[str, Any] = {"last_sync_at": now}
    for column, value in _fact_columns(facts).items():
        if getattr(device, column) != value:
            values[column] = value
    if device.agent_version != agent_version:
        values["agent_version"] = agent_version
    missing_apps = False
    if apps_hash != device.installed_apps_hash:
        if apps is not None and protocol.installed_apps_hash(apps) == apps_hash:
            db.execute(delete(_APPS).where(_APPS.c.device_id == device.id))
            _write_apps(db, device.id, apps)
            values["installed_apps_hash"] = apps_hash
        else:
            missing_apps = True
    # One UPDATE by primary key, as a Core statement: the ORM's bookkeeping costs more than
    # the statement itself on this path.
    db.execute(update(_TABLE).where(_TABLE.c.id == device.id).values(**values))
    return missing_apps


def rename_profile(session: Session, profile_id: str, new_name: str) -> int:
    """A renamed enrollment profile renames the enrollmentProfileName of its devices."""
    result = session.execute(
        update(ManagedDevice)
        .where(ManagedDevice.enrollment_profile_id == profile_id)
        .values(enrollment_profile_name=new_name)
    )
    return int(getattr(result, "rowcount", 0) or 0)
