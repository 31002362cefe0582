"""Use cases of managed devices: the record, its facts and its discovered apps."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from aospmdm import protocol
from aospmdm.core import permissions
from aospmdm.core.db import Executor
from aospmdm.core.errors import BadRequest, NotFound
from aospmdm.core.odata import Field
from aospmdm.core.permissions import (
    HELP_DESK_OPERATOR,
    POLICY_AND_PROFILE_MANAGER,
    Permission,
)
from aospmdm.devices.models import DeviceApp, ManagedDevice
from aospmdm.tenant import access, audit
from aospmdm.tenant.access import Actor

READ = "devices.read"
WRITE = "devices.write"
permissions.register(
    Permission(READ, "Read devices, their properties and discovered apps."),
    Permission(
        WRITE,
        "Rename devices and set their category and extension attributes.",
        roles=frozenset({HELP_DESK_OPERATOR, POLICY_AND_PROFILE_MANAGER}),
    ),
)

# Called with (db, device id) after a device is created or a property that rules can select
# on changed. Groups listens, to keep dynamic memberships live; devices cannot import groups
# (it sits below them), so it announces instead.
_listeners: list[Callable[[Executor, str], None]] = []


def on_rule_properties_changed(listener: Callable[[Executor, str], None]) -> None:
    _listeners.append(listener)


def _announce(db: Executor, device_id: str) -> None:
    for listener in _listeners:
        listener(db, device_id)


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


def _visible_ids(actor: Actor) -> Select[Any]:
    return device_statement(actor).with_only_columns(ManagedDevice.id).order_by(None)


def detected_apps_statement(actor: Actor) -> Select[Any]:
    """Every app at every version on the devices the admin may see, with how many have it
    (Graph's fleet-wide detectedApps)."""
    a = DeviceApp
    return cast(
        "Select[Any]",
        select(
            a.package_name,
            a.version_name,
            func.max(a.display_name).label("display_name"),
            func.max(a.version_code).label("version_code"),
            func.max(a.size_in_bytes).label("size_in_bytes"),
            func.count(a.device_id).label("device_count"),
        )
        .where(a.device_id.in_(_visible_ids(actor)))
        .group_by(a.package_name, a.version_name)
        .order_by(func.max(a.display_name), a.package_name, a.version_name),
    )


def find_detected_app(session: Session, actor: Actor, app_id: str) -> Any:
    """One fleet-wide detected app by its id (404 when no visible device has it)."""
    if len(app_id) == 32:
        for row in session.execute(detected_apps_statement(actor)):
            if detected_app_id(row.package_name, row.version_name) == app_id:
                return row
    raise NotFound(f"No detectedApp with id '{app_id.replace(chr(0), '')}' exists.")


def devices_with_app(actor: Actor, package_name: str, version_name: str) -> Select[Any]:
    """The devices the admin may see that have this app at this version."""
    having = select(DeviceApp.device_id).where(
        DeviceApp.package_name == package_name, DeviceApp.version_name == version_name
    )
    return device_statement(actor).where(ManagedDevice.id.in_(having))


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
    _announce(session, device.id)
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
        "passcode_type": facts.passcode_type,
        "passcode_length": facts.passcode_length,
        "lock_after_inactivity_minutes": facts.lock_after_inactivity_minutes,
    }


_APPS = cast("Table", DeviceApp.__table__)


def _app_row(device_id: str, a: protocol.InstalledApp) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "package_name": a.package_name,
        "version_name": a.version_name,
        "version_code": a.version_code,
        "display_name": a.display_name,
        "size_in_bytes": a.size_in_bytes,
    }


def _write_apps(db: Executor, device_id: str, apps: Sequence[protocol.InstalledApp]) -> None:
    unique = {a.package_name: a for a in apps}
    if unique:
        db.execute(insert(_APPS), [_app_row(device_id, a) for a in unique.values()])


_STORED_APPS = select(
    _APPS.c.package_name,
    _APPS.c.version_name,
    _APPS.c.version_code,
    _APPS.c.display_name,
    _APPS.c.size_in_bytes,
).where(_APPS.c.device_id == bindparam("device_id"))


def _stored_apps(db: Executor, device_id: str) -> list[protocol.InstalledApp]:
    return [
        protocol.InstalledApp.model_construct(**row._mapping)
        for row in db.execute(_STORED_APPS, {"device_id": device_id})
    ]


def _store_inventory(
    db: Executor,
    device_id: str,
    stored: Sequence[protocol.InstalledApp],
    apps: Sequence[protocol.InstalledApp],
) -> None:
    """Write only what differs between the stored list and the device's."""
    before = {a.package_name: a for a in stored}
    after = {a.package_name: a for a in apps}
    gone = [p for p in before if p not in after]
    changed = [a for p, a in after.items() if before.get(p) != a]
    if gone or changed:
        db.execute(
            delete(_APPS).where(
                _APPS.c.device_id == device_id,
                _APPS.c.package_name.in_(gone + [a.package_name for a in changed]),
            )
        )
    if changed:
        db.execute(insert(_APPS), [_app_row(device_id, a) for a in changed])


def _inventory(
    db: Executor,
    device: DeviceState,
    apps_hash: str,
    apps: Sequence[protocol.InstalledApp] | None,
    changes: protocol.AppChanges | None,
) -> bool:
    """Store the inventory a check-in brought, if it matches its hash. Returns whether it
    did (otherwise the device is asked for the whole list)."""
    if apps is None and (changes is None or changes.base_hash != device.installed_apps_hash):
        return False
    stored = _stored_apps(db, device.id)
    if apps is None and changes is not None:
        apps = protocol.apply_app_changes(stored, changes)
    if apps is None or protocol.installed_apps_hash(apps) != apps_hash:
        return False
    _store_inventory(db, device.id, stored, apps)
    return True


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
    "passcode_type",
    "passcode_length",
    "lock_after_inactivity_minutes",
    "applied_policy_version",
    "last_sync_at",
    "compliance_state",
)
TABLE = cast("Table", ManagedDevice.__table__)


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
    passcode_type: str | None
    passcode_length: int | None
    lock_after_inactivity_minutes: int | None
    applied_policy_version: str | None
    last_sync_at: datetime
    compliance_state: str
    # A device an admin deleted that has not confirmed its factory reset (remote actions
    # keep a tombstone with its key): it may only be told to reset.
    deleted: bool = False


# Built once: on the hot path, building a statement costs more than SQLite takes to run it.
_STATE_OF = select(*(TABLE.c[c] for c in _STATE_COLUMNS)).where(TABLE.c.id == bindparam("id"))


def device_state(db: Executor, device_id: str) -> DeviceState | None:
    row = db.execute(_STATE_OF, {"id": device_id}).first()
    return DeviceState(**row._mapping) if row is not None else None


def record_check_in(
    db: Executor,
    device: DeviceState,
    *,
    facts: protocol.DeviceFacts,
    agent_version: str,
    apps_hash: str,
    apps: Sequence[protocol.InstalledApp] | None,
    applied_policy_version: str | None,
    now: datetime,
    changes: protocol.AppChanges | None = None,
) -> bool:
    """Store what a check-in reported, writing only what changed. Returns whether the server
    still lacks the app list for the reported hash (the device then sends it next time)."""
    values: dict[str, Any] = {"last_sync_at": now}
    for column, value in _fact_columns(facts).items():
        if getattr(device, column) != value:
            values[column] = value
    if device.agent_version != agent_version:
        values["agent_version"] = agent_version
    if applied_policy_version is not None and (
        applied_policy_version != device.applied_policy_version
    ):
        values["applied_policy_version"] = applied_policy_version
    missing_apps = False
    if apps_hash != device.installed_apps_hash:
        if _inventory(db, device, apps_hash, apps, changes):
            values["installed_apps_hash"] = apps_hash
        else:
            missing_apps = True
    # One UPDATE by primary key, as a Core statement: the ORM's bookkeeping costs more than
    # the statement itself on this path.
    db.execute(update(TABLE).where(TABLE.c.id == device.id).values(**values))
    if RULE_COLUMNS.intersection(values):
        _announce(db, device.id)
    return missing_apps


def update_device(
    session: Session, actor: Actor, device_id: str, changes: Mapping[str, Any]
) -> ManagedDevice:
    """An admin's edit of a device's name, category or extension attributes; dynamic
    memberships follow at once."""
    actor.require(WRITE)
    device = access.get_visible(session, ManagedDevice, device_id, actor, WRITE)
    before = {
        "deviceName": device.device_name,
        "deviceCategory": device.device_category,
        **device.extension_attributes,
    }
    if "deviceName" in changes:
        name = (changes["deviceName"] or "").strip()
        if not name:
            raise BadRequest("A device needs a name.", target="deviceName")
        device.device_name = name
        changes = {**changes, "deviceName": name}
    if "deviceCategory" in changes:
        device.device_category = changes["deviceCategory"] or None
    attrs = dict(device.extension_attributes)
    for key, value in changes.items():
        if key.startswith("extensionAttribute"):
            if value:
                attrs[key] = value
            else:
                attrs.pop(key, None)
    device.extension_attributes = attrs
    session.flush()
    audit.record(
        session,
        actor,
        category="Device",
        activity="Update device",
        operation="Patch",
        target_type="managedDevice",
        target_id=device.id,
        target_name=device.device_name,
        details={k: {"old": before.get(k), "new": v} for k, v in changes.items()},
    )
    _announce(session, device.id)
    return device


def rename_profile(session: Session, profile_id: str, new_name: str) -> int:
    """A renamed enrollment profile renames the enrollmentProfileName of its devices, and so
    moves them between dynamic groups."""
    ids = list(
        session.scalars(select(TABLE.c.id).where(TABLE.c.enrollment_profile_id == profile_id))
    )
    if ids:
        session.execute(
            update(TABLE).where(TABLE.c.id.in_(ids)).values(enrollment_profile_name=new_name)
        )
        for device_id in ids:
            _announce(session, device_id)
    return len(ids)


# --- what dynamic-group rules see of a device (docs/rules.md) ---------------------------

AOSPMDM_APP_ID = "0000000a-0000-0000-c000-000000000000"
# Columns a rule property reads; a change to one of them re-evaluates the device's groups.
RULE_COLUMNS = frozenset(
    {
        "device_name",
        "enrollment_profile_name",
        "manufacturer",
        "model",
        "os_version",
        "is_rooted",
        "device_category",
        "extension_attributes",
        "serial_number",
    }
)
_RULE_SELECT = ("id", *sorted(RULE_COLUMNS))


def rule_properties(row: Mapping[Any, Any]) -> dict[str, object]:
    """A device as the rule language sees it, from its columns."""
    attrs: dict[str, str] = row["extension_attributes"] or {}
    props: dict[str, object] = {
        "accountEnabled": True,
        "deviceCategory": row["device_category"],
        "deviceId": row["id"],
        "objectId": row["id"],
        "deviceManufacturer": row["manufacturer"],
        "deviceModel": row["model"],
        "displayName": row["device_name"],
        "deviceOSType": "AndroidAOSP",
        "deviceOSVersion": row["os_version"],
        "deviceOwnership": "Company",
        "deviceManagementAppId": AOSPMDM_APP_ID,
        "devicePhysicalIds": [f"[SerialNumber]:{row['serial_number']}"],
        "deviceTrustType": "Workplace",
        "enrollmentProfileName": row["enrollment_profile_name"],
        "isRooted": row["is_rooted"],
        "managementType": "MDM",
        "profileType": "RegisteredDevice",
        "systemLabels": [],
    }
    for n in range(1, 16):
        props[f"extensionAttribute{n}"] = attrs.get(f"extensionAttribute{n}")
    return props


def rule_rows(device_ids: Sequence[str] | None = None) -> Select[Any]:
    """The columns rules read, for some devices or (None) all of them."""
    stmt = select(*(TABLE.c[c] for c in _RULE_SELECT))
    return stmt if device_ids is None else stmt.where(TABLE.c.id.in_(list(device_ids)))
