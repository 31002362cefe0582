"""Use cases of remote actions: wipe, delete, remote lock, reset passcode and restart, on a
command queue that is a table.

Delivery is at least once: an open command (pending, or active once the device accepted it)
is sent at every check-in until the device sends a final result. A result is recorded once;
duplicate, unknown and other devices' results change nothing. Terminal states never change.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from aospmdm import protocol
from aospmdm.actions import wakeups
from aospmdm.actions.models import (
    ACTIVE,
    CANCELED,
    DONE,
    FAILED,
    NOT_SUPPORTED,
    OPEN,
    PENDING,
    TERMINAL,
    DeviceCommand,
    DeviceTombstone,
)
from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.db import Executor, new_id
from aospmdm.core.errors import BadRequest, Conflict, NotFound
from aospmdm.core.permissions import HELP_DESK_OPERATOR, Permission
from aospmdm.core.security import decrypt, encrypt
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.policies import service as policies
from aospmdm.tenant import access, audit
from aospmdm.tenant import service as tenant
from aospmdm.tenant.access import Actor

CATEGORY = "DeviceAction"
_COMMANDS = cast("Table", DeviceCommand.__table__)
_TOMBSTONES = cast("Table", DeviceTombstone.__table__)
PASSCODE_SHOWN_FOR = timedelta(days=7)
RESET_PASSCODE = "devices.resetPasscode"
FINISHED_KEPT_FOR = timedelta(days=90)


@dataclass(frozen=True)
class Action:
    name: str  # Graph's action name
    permission: str
    command: str  # what the device is sent (protocol.COMMAND_TYPES)
    expires_after: timedelta
    merge: bool  # a second identical open request joins the first
    needs_passcode_policy: bool = False


ACTIONS = {
    a.name: a
    for a in (
        Action("wipe", "devices.wipe", "wipe", timedelta(days=30), merge=True),
        Action("delete", "devices.delete", "factoryReset", timedelta(days=365), merge=True),
        Action(
            "remoteLock",
            "devices.remoteLock",
            "remoteLock",
            timedelta(days=1),
            merge=True,
            needs_passcode_policy=True,
        ),
        Action(
            "resetPasscode",
            "devices.resetPasscode",
            "resetPasscode",
            timedelta(days=1),
            merge=False,
            needs_passcode_policy=True,
        ),
        Action("rebootNow", "devices.rebootNow", "rebootNow", timedelta(days=1), merge=False),
        # Shared devices: end the signed-in worker's session (users/ ends it at once through
        # on_queued; the command makes the device forget the worker).
        Action("signOutUser", "devices.endSession", "signOut", timedelta(days=1), merge=True),
    )
}
_HELP_DESK = frozenset({HELP_DESK_OPERATOR})
permissions.register(
    Permission("devices.wipe", "Wipe devices (factory reset, then remove them)."),
    Permission("devices.delete", "Delete devices (they are told to factory reset)."),
    Permission("devices.remoteLock", "Lock devices remotely.", roles=_HELP_DESK),
    Permission(
        "devices.resetPasscode",
        "Reset a device's passcode and see the temporary one.",
        roles=_HELP_DESK,
    ),
    Permission("devices.rebootNow", "Restart devices remotely.", roles=_HELP_DESK),
    Permission(
        "devices.endSession",
        "Sign the worker out of a shared device remotely.",
        roles=_HELP_DESK,
    ),
)

# What a feature above actions does the moment an action of its is queued (or merged with
# an open one), in the same transaction: called with (session, actor, device id).
_on_queued: dict[str, list[Callable[[Session, Actor, str], None]]] = {}


def on_queued(name: str, listener: Callable[[Session, Actor, str], None]) -> None:
    _on_queued.setdefault(name, []).append(listener)


def action(name: str) -> Action:
    found = ACTIONS.get(name)
    if found is None:
        raise BadRequest(f"actionName must be one of {', '.join(ACTIONS)}.", target="actionName")
    return found


# --- requests ------------------------------------------------------------------------------


def _new_passcode(db: Executor, device_id: str) -> str:
    """Digits meeting the device's passcode policy: its minimum length (at least 6), and
    for numericComplex no run of repeating or ordered digits (as Android checks)."""
    restrictions = policies.effective_restrictions(db, device_id)
    length = max(6, int(restrictions.get("passwordMinimumLength") or 0))
    while True:
        code = "".join(secrets.choice("0123456789") for _ in range(length))
        if restrictions.get("passwordRequiredType") != "numericComplex" or _complex(code):
            return code


def _complex(code: str) -> bool:
    steps = [int(b) - int(a) for a, b in itertools.pairwise(code)]
    run = 1
    for prev, step in itertools.pairwise(steps):
        run = run + 1 if step == prev and abs(step) <= 1 else 1
        if run >= 3:
            return False
    return True


def request(
    session: Session, settings: Settings, actor: Actor, device_id: str, name: str
) -> DeviceCommand:
    """Queue an action for a device (Graph's managedDevice actions answer 204 once queued)."""
    spec = action(name)
    actor.require(spec.permission)
    device = access.get_visible(session, ManagedDevice, device_id, actor, spec.permission)
    # Serializes the requests of one device: a second identical request waits here, then
    # finds the first one's command and merges with it (and a concurrent delete or wipe is
    # seen). On SQLite the write lock already serializes writers.
    device = _lock_device(session, device.id) or _gone(device_id)
    if spec.name == "delete":
        return _delete(session, actor, device)
    if device.management_state == "wipePending" and spec.name != "wipe":
        raise Conflict(
            "A wipe is pending on this device: no other action can be queued.",
            code="wipePending",
        )
    if spec.needs_passcode_policy and not policies.is_passcode_policy_assigned(session, device.id):
        raise Conflict(
            f"{spec.name} needs a passcode policy: assign a device restrictions policy with "
            "passwordRequiredType numeric or numericComplex to this device first.",
            code="passcodePolicyRequired",
        )
    for listener in _on_queued.get(spec.name, ()):
        listener(session, actor, device.id)
    now = clock.now()
    if spec.merge:
        existing = session.scalars(
            select(DeviceCommand).where(
                DeviceCommand.device_id == device.id,
                DeviceCommand.action_name == spec.name,
                DeviceCommand.state.in_(OPEN),
            )
        ).first()
        if existing is not None:
            _audit(session, actor, existing, "merged with the open request")
            return existing
    secret = None
    if spec.name == "resetPasscode":
        secret = encrypt(settings.instance_key, _new_passcode(session, device.id))
    command = DeviceCommand(
        id=new_id(),
        device_id=device.id,
        device_name=device.device_name,
        action_name=spec.name,
        state=PENDING,
        secret_encrypted=secret,
        requested_by=actor.name,
        started_at=now,
        last_updated_at=now,
        expires_at=now + spec.expires_after,
        deliveries=0,
        details={},
    )
    session.add(command)
    if spec.name == "wipe":
        device.management_state = "wipePending"
    session.flush()
    _audit(session, actor, command, "queued")
    wakeups.announce(session, device.id)
    return command


def _lock_device(session: Session, device_id: str) -> ManagedDevice | None:
    """The device row, locked for the rest of the transaction (SELECT ... FOR UPDATE) and
    read afresh; None once it is gone."""
    return session.scalars(
        select(ManagedDevice)
        .where(ManagedDevice.id == device_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _gone(device_id: str) -> NoReturn:
    raise access.not_found(ManagedDevice, device_id)


def _delete(session: Session, actor: Actor, device: ManagedDevice) -> DeviceCommand:
    """Delete at once: the device leaves the list and its license is freed; a tombstone keeps
    its key so its next check-in is told to factory reset."""
    now = clock.now()
    session.execute(
        update(_COMMANDS)
        .where(_COMMANDS.c.device_id == device.id, _COMMANDS.c.state.in_(OPEN))
        .values(state=CANCELED, last_updated_at=now, result_message="The device was deleted.")
    )
    command = DeviceCommand(
        id=new_id(),
        device_id=device.id,
        device_name=device.device_name,
        action_name="delete",
        state=PENDING,
        requested_by=actor.name,
        started_at=now,
        last_updated_at=now,
        expires_at=now + ACTIONS["delete"].expires_after,
        deliveries=0,
        details={},
    )
    session.add(command)
    session.add(
        DeviceTombstone(
            device_id=device.id,
            device_name=device.device_name,
            serial_number=device.serial_number,
            public_key=device.public_key,
            enrolled_at=device.enrolled_at,
            deleted_at=now,
            confirmed_at=None,
        )
    )
    _remove_device(session, device.id)
    session.flush()
    _audit(session, actor, command, "device deleted; factory reset queued")
    wakeups.announce(session, device.id)
    return command


def _remove_device(db: Executor, device_id: str) -> None:
    access.untag(db, ManagedDevice, device_id)
    db.execute(delete(devices.TABLE).where(devices.TABLE.c.id == device_id))
    tenant.release_license(db)


def cancel(session: Session, actor: Actor, device_id: str, command_id: str) -> DeviceCommand:
    """Cancel a pending action (one the device has not accepted yet). One conditional
    UPDATE decides: a device that accepted the action meanwhile wins (409)."""
    if "\x00" in command_id or "\x00" in device_id:  # PostgreSQL cannot even compare it
        raise NotFound(f"No action '{command_id.replace(chr(0), '')}' exists on this device.")
    command = session.get(DeviceCommand, command_id)
    if command is None or command.device_id != device_id:
        raise NotFound(f"No action '{command_id}' exists on device '{device_id}'.")
    spec = ACTIONS[command.action_name]
    actor.require(spec.permission)
    device = access.get_visible(session, ManagedDevice, device_id, actor, spec.permission)
    # Device row first, then the command: the order a check-in takes them in.
    device = _lock_device(session, device.id) or _gone(device_id)
    changed = session.execute(
        update(_COMMANDS)
        .where(_COMMANDS.c.id == command.id, _COMMANDS.c.state == PENDING)
        .values(state=CANCELED, last_updated_at=clock.now())
    )
    session.refresh(command)
    if not getattr(changed, "rowcount", 0):
        raise Conflict(
            f"Only a pending action can be canceled; this one is {command.state}.",
            code="actionNotPending",
        )
    if command.action_name == "wipe":
        device.management_state = "managed"
    _audit(session, actor, command, "canceled")
    return command


def cancel_open(db: Executor, actor: Actor, device_id: str, action_name: str, why: str) -> int:
    """Cancel the device's open actions of one kind that have become moot (audited); returns
    how many. An action the device already accepted is left to finish."""
    rows = db.execute(
        select(_COMMANDS).where(
            _COMMANDS.c.device_id == device_id,
            _COMMANDS.c.action_name == action_name,
            _COMMANDS.c.state == PENDING,
        )
    ).all()
    for row in rows:
        changed = db.execute(
            update(_COMMANDS)
            .where(_COMMANDS.c.id == row.id, _COMMANDS.c.state == PENDING)
            .values(state=CANCELED, last_updated_at=clock.now(), result_message=why[:1024])
        )
        if getattr(changed, "rowcount", 0):
            _audit(db, actor, row, f"canceled ({why})")
    return len(rows)


def _audit(db: Executor, actor: Actor, command: DeviceCommand | Any, what: str) -> None:
    audit.record(
        db,
        actor,
        category=CATEGORY,
        activity=f"{command.action_name}: {what}",
        operation="Action",
        target_type="managedDevice",
        target_id=command.device_id,
        target_name=command.device_name,
        details={"actionId": command.id, "actionName": command.action_name},
    )


def carry_out_compliance_locks(session: Session) -> int:
    """Periodic: the remote locks that noncompliance actions recorded become commands on the
    queue (merged with an open lock). A device without a passcode policy cannot be locked:
    that action is canceled, and audited."""
    queued = 0
    for row in policies.pending_locks(session):
        # Locked as request() does, so a lock an admin requests meanwhile merges with it.
        device = _lock_device(session, row.device_id)
        if device is None or not policies.is_passcode_policy_assigned(session, row.device_id):
            policies.close_compliance_actions(session, [row.id], "canceled")
            audit.record(
                session,
                access.SYSTEM,
                category=CATEGORY,
                activity="remoteLock: not possible without a passcode policy",
                operation="Action",
                result="failure",
                target_type="managedDevice",
                target_id=row.device_id,
            )
            continue
        open_lock = session.scalars(
            select(DeviceCommand).where(
                DeviceCommand.device_id == device.id,
                DeviceCommand.action_name == "remoteLock",
                DeviceCommand.state.in_(OPEN),
            )
        ).first()
        if open_lock is None:
            now = clock.now()
            command = DeviceCommand(
                id=new_id(),
                device_id=device.id,
                device_name=device.device_name,
                action_name="remoteLock",
                state=PENDING,
                requested_by=access.SYSTEM.name,
                started_at=now,
                last_updated_at=now,
                expires_at=now + ACTIONS["remoteLock"].expires_after,
                deliveries=0,
                details={"compliancePolicyId": row.policy_id},
            )
            session.add(command)
            session.flush()
            _audit(session, access.SYSTEM, command, "queued by a compliance policy")
            wakeups.announce(session, device.id)
            queued += 1
        policies.close_compliance_actions(session, [row.id], "done")
    return queued


# --- the device side -------------------------------------------------------------------------


def open_commands(
    db: Executor,
    settings: Settings,
    device_id: str,
    now: datetime,
    actions: Sequence[str] | None = None,
) -> list[protocol.Command]:
    """The device's open commands (only those of ``actions`` if given), oldest first;
    expired ones fail here instead."""
    stmt = select(_COMMANDS).where(_COMMANDS.c.device_id == device_id, _COMMANDS.c.state.in_(OPEN))
    if actions is not None:
        stmt = stmt.where(_COMMANDS.c.action_name.in_(list(actions)))
    rows = list(db.execute(stmt.order_by(_COMMANDS.c.started_at, _COMMANDS.c.id)))
    out: list[protocol.Command] = []
    for row in rows:
        if row.expires_at <= now:
            _expire(db, row, now)
            continue
        payload = {}
        if row.action_name == "resetPasscode" and row.secret_encrypted:
            payload["passcode"] = decrypt(settings.instance_key, row.secret_encrypted)
        out.append(
            protocol.Command(
                id=row.id,
                type=ACTIONS[row.action_name].command,
                payload=payload,
                expires_at=clock.iso(row.expires_at),
            )
        )
    if out:
        db.execute(
            update(_COMMANDS)
            .where(_COMMANDS.c.id.in_([c.id for c in out]))
            .values(deliveries=_COMMANDS.c.deliveries + 1)
        )
    return out


def _expire(db: Executor, row: Any, now: datetime) -> None:
    """Fail an expired open action, audited; an expired factory reset of a deleted device
    ends its tombstone as any other final result does."""
    changed = db.execute(
        update(_COMMANDS)
        .where(_COMMANDS.c.id == row.id, _COMMANDS.c.state.in_(OPEN))
        .values(
            state=FAILED,
            last_updated_at=now,
            result_message="Expired before the device confirmed it.",
        )
    )
    if not getattr(changed, "rowcount", 0):
        return
    _audit(db, access.SYSTEM, row, "failed (expired)")
    if row.action_name == "delete":
        _end_tombstone(db, row.device_id, now)


def _end_tombstone(db: Executor, device_id: str, now: datetime) -> None:
    """The deleted device's factory reset is over (done, failed, not supported or expired):
    its credential is refused from now on."""
    db.execute(
        update(_TOMBSTONES)
        .where(_TOMBSTONES.c.device_id == device_id, _TOMBSTONES.c.confirmed_at.is_(None))
        .values(confirmed_at=now)
    )


def _cancel_others(db: Executor, actor: Actor, device_id: str, keep: str, why: str) -> None:
    """Cancel the device's other open actions, each audited."""
    now = clock.now()
    for other in list(
        db.execute(
            select(_COMMANDS).where(
                _COMMANDS.c.device_id == device_id,
                _COMMANDS.c.state.in_(OPEN),
                _COMMANDS.c.id != keep,
            )
        )
    ):
        changed = db.execute(
            update(_COMMANDS)
            .where(_COMMANDS.c.id == other.id, _COMMANDS.c.state.in_(OPEN))
            .values(state=CANCELED, last_updated_at=now, result_message=why)
        )
        if getattr(changed, "rowcount", 0):
            _audit(db, actor, other, f"canceled ({why.rstrip('.').lower()})")


_FINAL = {"done": DONE, "failed": FAILED, "notSupported": NOT_SUPPORTED}
# The states a result may move an action from: a final result ends an open action; accepted
# only moves a pending one on (an active or finished one stays).
_FROM = {ACTIVE: (PENDING,), DONE: OPEN, FAILED: OPEN, NOT_SUPPORTED: OPEN}


def record_results(
    db: Executor, device_id: str, results: Sequence[protocol.CommandResult], actor: Actor
) -> list[str]:
    """Store a device's results: each is recorded once. Unknown ids and other devices'
    commands are ignored (and audited), never touching another queued command."""
    now = clock.now()
    outcomes: list[str] = []
    for result in results:
        outcome, row, new_state = _record_one(db, device_id, result, now)
        outcomes.append(outcome)
        if row is None:
            audit.record(
                db,
                actor,
                category=CATEGORY,
                activity="Result for an unknown action ignored",
                operation="Action",
                result="failure",
                target_type="managedDevice",
                target_id=device_id,
                details={"actionId": result.command_id, "status": result.status},
            )
            continue
        if outcome != "recorded" or new_state is None:
            continue
        _audit(db, actor, row, f"{new_state} on the device")
        if new_state == DONE and row.action_name == "wipe":
            _cancel_others(db, actor, device_id, row.id, "The device was wiped.")
            _remove_device(db, device_id)
        if new_state in _FINAL.values() and row.action_name == "delete":
            _end_tombstone(db, device_id, now)
        if row.action_name == "wipe" and new_state in (FAILED, NOT_SUPPORTED):
            db.execute(
                update(devices.TABLE)
                .where(devices.TABLE.c.id == device_id)
                .values(management_state="managed")
            )
    return outcomes


def _record_one(
    db: Executor, device_id: str, result: protocol.CommandResult, now: datetime
) -> tuple[str, Any, str | None]:
    """(outcome, the action's row, its new state). Each UPDATE is conditioned on the states
    the action may move from, so of two racing results each lands or is refused by what the
    other wrote; "duplicate" only when the action really is finished or already there."""
    for _ in range(3):
        row = db.execute(
            select(_COMMANDS).where(
                _COMMANDS.c.id == result.command_id, _COMMANDS.c.device_id == device_id
            )
        ).first()
        if row is None:
            return "unknown", None, None
        if row.state in TERMINAL:
            return "duplicate", row, None
        if result.status == "notNow":
            changed = db.execute(
                update(_COMMANDS)
                .where(_COMMANDS.c.id == row.id, _COMMANDS.c.state.in_(OPEN))
                .values(last_updated_at=now, result_message=result.message or "Not now.")
            )
            if getattr(changed, "rowcount", 0):
                return "recorded", row, None
            continue
        new_state = ACTIVE if result.status == "accepted" else _FINAL[result.status]
        if new_state == row.state or row.state not in _FROM[new_state]:
            return "duplicate", row, None
        changed = db.execute(
            update(_COMMANDS)
            .where(_COMMANDS.c.id == row.id, _COMMANDS.c.state.in_(_FROM[new_state]))
            .values(state=new_state, last_updated_at=now, result_message=result.message or None)
        )
        if getattr(changed, "rowcount", 0):
            return "recorded", row, new_state
        # Another result changed it meanwhile: look again.
    return "duplicate", row, None


def has_work(db: Executor, device_id: str) -> bool:
    """Whether the device has an open command it was not sent yet (what a waiting device is
    woken for). One already sent is sent again at its next check-in anyway (at least once);
    counting it would make a device that answered "notNow" come back at once, over and over."""
    return (
        db.execute(
            select(_COMMANDS.c.id)
            .where(
                _COMMANDS.c.device_id == device_id,
                _COMMANDS.c.state.in_(OPEN),
                _COMMANDS.c.deliveries == 0,
            )
            .limit(1)
        ).first()
        is not None
    )


def tombstone(db: Executor, device_id: str) -> Any:
    """A deleted device that has not confirmed its factory reset yet, or None."""
    return db.execute(
        select(_TOMBSTONES).where(
            _TOMBSTONES.c.device_id == device_id, _TOMBSTONES.c.confirmed_at.is_(None)
        )
    ).first()


# --- reading --------------------------------------------------------------------------------


def action_results(
    session: Session, settings: Settings | None, actor: Actor | None, device_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Graph's deviceActionResults per device, newest first. The temporary passcode of a
    reset is shown for 7 days to admins who may reset the passcode of that device (within
    their scope)."""
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in device_ids}
    if not device_ids:
        return out
    shown = passcode_devices(session, actor, device_ids) if settings is not None else set()
    oldest_shown = clock.now() - PASSCODE_SHOWN_FOR
    for c in session.scalars(
        select(DeviceCommand)
        .where(DeviceCommand.device_id.in_(list(device_ids)))
        .order_by(DeviceCommand.started_at.desc(), DeviceCommand.id)
    ):
        item: dict[str, Any] = {
            "id": c.id,
            "actionName": c.action_name,
            "actionState": c.state,
            "startDateTime": clock.iso(c.started_at),
            "lastUpdatedDateTime": clock.iso(c.last_updated_at),
            "requestedBy": c.requested_by,
            "message": c.result_message,
        }
        if c.action_name == "resetPasscode":
            item["@odata.type"] = "#microsoft.graph.resetPasscodeActionResult"
            item["passcode"] = (
                decrypt(settings.instance_key, c.secret_encrypted)
                if settings is not None
                and c.device_id in shown
                and c.secret_encrypted
                and c.started_at > oldest_shown
                else None
            )
        out[c.device_id].append(item)
    return out


def passcode_devices(session: Session, actor: Actor | None, device_ids: Sequence[str]) -> set[str]:
    """Those of the devices whose temporary passcode this admin may see: the ones it may
    reset the passcode of."""
    if actor is None or not actor.can(RESET_PASSCODE) or not device_ids:
        return set()
    ids = [d for d in device_ids if "\x00" not in d]
    stmt = select(ManagedDevice.id).where(ManagedDevice.id.in_(ids))
    return set(session.scalars(access.visible(stmt, ManagedDevice, actor, RESET_PASSCODE)))


def prune(session: Session) -> None:
    """Periodic: erase temporary passcodes after 7 days, fail expired actions, and forget
    finished actions after the retention period."""
    now = clock.now()
    session.execute(
        update(_COMMANDS)
        .where(
            _COMMANDS.c.secret_encrypted.is_not(None),
            _COMMANDS.c.started_at < now - PASSCODE_SHOWN_FOR,
        )
        .values(secret_encrypted=None)
    )
    for row in list(
        session.execute(
            select(_COMMANDS).where(_COMMANDS.c.state.in_(OPEN), _COMMANDS.c.expires_at <= now)
        )
    ):
        _expire(session, row, now)
    session.execute(
        delete(_COMMANDS).where(
            _COMMANDS.c.state.in_(sorted(TERMINAL)),
            _COMMANDS.c.last_updated_at < now - FINISHED_KEPT_FOR,
        )
    )
