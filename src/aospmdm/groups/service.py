"""Use cases of device groups: assigned and dynamic groups, live membership, rule checks.

Dynamic memberships are kept live: a device's groups are re-evaluated in the same
transaction as the change that could move it (enroll, a changed fact at check-in, an admin's
edit), and a group's members are recomputed when its rule changes or it is un-paused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, delete, insert, literal, select
from sqlalchemy.orm import Session

from aospmdm.core import clock, permissions
from aospmdm.core.db import Executor
from aospmdm.core.errors import BadRequest, NotFound
from aospmdm.core.permissions import POLICY_AND_PROFILE_MANAGER, Permission
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.groups.models import DYNAMIC, DeviceGroup, GroupMember
from aospmdm.groups.rules import ExpressionCollection, Rule, RuleError, parse
from aospmdm.groups.schemas import Evaluate, GroupCreate, GroupUpdate
from aospmdm.tenant import access, audit
from aospmdm.tenant.access import Actor

READ = "groups.read"
WRITE = "groups.write"
permissions.register(
    Permission(READ, "Read groups and their members."),
    Permission(
        WRITE,
        "Create, change and delete groups; add and remove members of assigned groups.",
        roles=frozenset({POLICY_AND_PROFILE_MANAGER}),
    ),
)
CATEGORY = "Group"

# Called with (db, group id, device ids) after an admin added devices to or removed them from
# a group, or deleted it. Policies listen, to judge those devices' compliance at once (policies
# sits above groups, so groups announces instead of calling).
_membership_listeners: list[Callable[[Executor, str, list[str]], None]] = []


def on_membership_changed(listener: Callable[[Executor, str, list[str]], None]) -> None:
    _membership_listeners.append(listener)


def _announce_members(db: Executor, group_id: str, device_ids: list[str]) -> None:
    if device_ids:
        for listener in _membership_listeners:
            listener(db, group_id, device_ids)


_GROUPS = cast("Table", DeviceGroup.__table__)
_MEMBERS = cast("Table", GroupMember.__table__)


# --- rules --------------------------------------------------------------------------------


def rule_columns() -> dict[str, Any]:
    """Rule property -> SQL over the device table, for narrowing candidates in the database
    (docs/rules.md says what each property holds)."""
    t = devices.TABLE
    columns: dict[str, Any] = {
        "accountEnabled": literal(True),
        "deviceCategory": t.c.device_category,
        "deviceId": t.c.id,
        "objectId": t.c.id,
        "deviceManufacturer": t.c.manufacturer,
        "deviceModel": t.c.model,
        "displayName": t.c.device_name,
        "deviceOSType": literal("AndroidAOSP"),
        "deviceOSVersion": t.c.os_version,
        "deviceOwnership": literal("Company"),
        "deviceManagementAppId": literal(devices.AOSPMDM_APP_ID),
        "devicePhysicalIds": ExpressionCollection([literal("[SerialNumber]:") + t.c.serial_number]),
        "deviceTrustType": literal("Workplace"),
        "enrollmentProfileName": t.c.enrollment_profile_name,
        "isRooted": t.c.is_rooted,
        "managementType": literal("MDM"),
        "profileType": literal("RegisteredDevice"),
        "systemLabels": ExpressionCollection([]),
    }
    for n in range(1, 16):
        key = f"extensionAttribute{n}"
        columns[key] = t.c.extension_attributes[key].as_string()
    return columns


@functools.lru_cache(maxsize=4096)
def compiled(text: str) -> Rule:
    """A parsed rule (cached: a device's groups are evaluated on every relevant change)."""
    return parse(text)


def checked_rule(text: str | None) -> Rule:
    if text is None or not text.strip():
        raise BadRequest("A dynamic group needs a membership rule.", target="membershipRule")
    try:
        return compiled(text)
    except RuleError as exc:
        raise BadRequest(
            f"{exc.message} (at position {exc.position}).",
            target="membershipRule",
            code="invalidMembershipRule",
        ) from None


# --- reading --------------------------------------------------------------------------------


def group_statement(actor: Actor) -> Select[Any]:
    return access.visible(
        select(DeviceGroup).order_by(DeviceGroup.display_name, DeviceGroup.id),
        DeviceGroup,
        actor,
        READ,
    )


def visible_group_ids(session: Session, actor: Actor, group_ids: Sequence[str]) -> set[str]:
    """Which of these groups the admin may see (groups.read scope): assignments to the others
    are kept, and not shown, when a scoped admin replaces a policy's or an app's."""
    if not group_ids or not actor.can(READ):
        return set()
    return set(
        session.scalars(
            group_statement(actor)
            .where(DeviceGroup.id.in_(list(group_ids)))
            .with_only_columns(DeviceGroup.id)
            .order_by(None)
        )
    )


def get_group(session: Session, actor: Actor, group_id: str, perm: str = READ) -> DeviceGroup:
    return access.get_visible(session, DeviceGroup, group_id, actor, perm)


def find_group(session: Session, actor: Actor, name_or_id: str) -> DeviceGroup:
    found: DeviceGroup | None = session.scalars(
        access.visible(
            select(DeviceGroup).where(
                (DeviceGroup.id == name_or_id) | (DeviceGroup.display_name == name_or_id)
            ),
            DeviceGroup,
            actor,
            READ,
        )
    ).first()
    if found is None:
        raise access.not_found(DeviceGroup, name_or_id)
    return found


def members_statement(session: Session, actor: Actor, group_id: str) -> Select[Any]:
    """The group's members that the admin may see (devices.read scope applies)."""
    group = get_group(session, actor, group_id)
    return devices.device_statement(actor).where(
        ManagedDevice.id.in_(select(GroupMember.device_id).where(GroupMember.group_id == group.id))
    )


# --- changes ----------------------------------------------------------------------------

_NICK = re.compile(r"[^A-Za-z0-9._-]+")


def create_group(session: Session, actor: Actor, data: GroupCreate) -> DeviceGroup:
    actor.require(WRITE)
    if data.mail_enabled:
        raise BadRequest(
            "Device groups are not mail-enabled: mailEnabled must be false.", target="mailEnabled"
        )
    if not data.security_enabled:
        raise BadRequest(
            "Device groups are security groups: securityEnabled must be true.",
            target="securityEnabled",
        )
    dynamic = DYNAMIC in data.group_types
    if dynamic:
        checked_rule(data.membership_rule)
    elif data.membership_rule is not None:
        raise BadRequest(
            "Only dynamic groups have a membership rule: add 'DynamicMembership' to "
            "groupTypes, or leave the rule out.",
            target="membershipRule",
        )
    now = clock.now()
    group = DeviceGroup(
        display_name=data.display_name,
        description=data.description,
        mail_nickname=data.mail_nickname or (_NICK.sub("", data.display_name)[:64] or "group"),
        group_types=[DYNAMIC] if dynamic else [],
        membership_rule=data.membership_rule if dynamic else None,
        processing_state=data.membership_rule_processing_state,
        created_at=now,
        last_modified_at=now,
    )
    session.add(group)
    session.flush()
    tags = access.tag_new(session, DeviceGroup, group.id, actor, WRITE, data.role_scope_tag_ids)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Create group",
        operation="Create",
        target_type="group",
        target_id=group.id,
        target_name=group.display_name,
        details={"membershipRule": group.membership_rule, "roleScopeTagIds": tags},
    )
    if dynamic and group.processing_state == "On":
        recompute(session, group.id, group.membership_rule or "")
    return group


def update_group(session: Session, actor: Actor, group_id: str, data: GroupUpdate) -> DeviceGroup:
    actor.require(WRITE)
    group = get_group(session, actor, group_id, WRITE)
    given = data.given()
    changes: dict[str, Any] = {}
    if "membership_rule" in given and (group.is_dynamic or data.membership_rule is not None):
        if not group.is_dynamic:
            raise BadRequest("Assigned groups have no membership rule.", target="membershipRule")
        checked_rule(data.membership_rule)
        if data.membership_rule != group.membership_rule:
            changes["membershipRule"] = {"old": group.membership_rule, "new": data.membership_rule}
            group.membership_rule = data.membership_rule
    if data.membership_rule_processing_state is not None:
        if data.membership_rule_processing_state != group.processing_state:
            changes["membershipRuleProcessingState"] = data.membership_rule_processing_state
        group.processing_state = data.membership_rule_processing_state
    for field, column, label in (
        ("display_name", "display_name", "displayName"),
        ("description", "description", "description"),
        ("mail_nickname", "mail_nickname", "mailNickname"),
    ):
        value = given.get(field)
        if field in given and value is not None:
            changes[label] = value
            setattr(group, column, value)
    if data.role_scope_tag_ids is not None:
        changes["roleScopeTagIds"] = access.set_tags(
            session, DeviceGroup, group.id, actor, WRITE, data.role_scope_tag_ids
        )
    group.last_modified_at = clock.now()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Update group",
        operation="Patch",
        target_type="group",
        target_id=group.id,
        target_name=group.display_name,
        details=changes,
    )
    if (
        group.is_dynamic
        and group.processing_state == "On"
        and ("membershipRule" in changes or "membershipRuleProcessingState" in changes)
    ):
        recompute(session, group.id, group.membership_rule or "")
    return group


def delete_group(session: Session, actor: Actor, group_id: str) -> None:
    actor.require(WRITE)
    group = get_group(session, actor, group_id, WRITE)
    members = list(
        session.scalars(select(GroupMember.device_id).where(GroupMember.group_id == group.id))
    )
    access.untag(session, DeviceGroup, group.id)
    session.delete(group)
    session.flush()
    _announce_members(session, group.id, members)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Delete group",
        operation="Delete",
        target_type="group",
        target_id=group.id,
        target_name=group.display_name,
    )


_DEVICE_REF = re.compile(r"(?:^|/)(?:managedDevices|devices|directoryObjects)/([^/?#]+)/?$")


def device_id_of_ref(ref: str) -> str:
    m = _DEVICE_REF.search(ref.strip())
    if not m:
        raise BadRequest(
            "@odata.id must name a device: https://<server>/beta/deviceManagement/"
            "managedDevices/{id}.",
            target="@odata.id",
        )
    return m.group(1)


def add_member(session: Session, actor: Actor, group_id: str, device_id: str) -> None:
    actor.require(WRITE)
    group = get_group(session, actor, group_id, WRITE)
    if group.is_dynamic:
        raise BadRequest(
            "Members of a dynamic group follow its rule; they cannot be added by hand.",
            code="dynamicGroupMembersReadOnly",
        )
    device = access.get_visible(session, ManagedDevice, device_id, actor, devices.READ)
    if session.get(GroupMember, (group.id, device.id)) is not None:
        raise BadRequest(
            "One or more added object references already exist for the following "
            f"modified properties: 'members' (device {device.id}).",
            target="members",
        )
    session.add(GroupMember(group_id=group.id, device_id=device.id, added_at=clock.now()))
    session.flush()
    _announce_members(session, group.id, [device.id])
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Add member",
        operation="Patch",
        target_type="group",
        target_id=group.id,
        target_name=group.display_name,
        details={"deviceId": device.id, "deviceName": device.device_name},
    )


def remove_member(session: Session, actor: Actor, group_id: str, device_id: str) -> None:
    actor.require(WRITE)
    group = get_group(session, actor, group_id, WRITE)
    if group.is_dynamic:
        raise BadRequest(
            "Members of a dynamic group follow its rule; they cannot be removed by hand.",
            code="dynamicGroupMembersReadOnly",
        )
    access.get_visible(session, ManagedDevice, device_id, actor, devices.READ)
    member = session.get(GroupMember, (group.id, device_id))
    if member is None:
        raise NotFound(f"Device '{device_id}' is not a member of group '{group.display_name}'.")
    session.delete(member)
    session.flush()
    _announce_members(session, group.id, [device_id])
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Remove member",
        operation="Patch",
        target_type="group",
        target_id=group.id,
        target_name=group.display_name,
        details={"deviceId": device_id},
    )


# --- membership evaluation ----------------------------------------------------------------


def recompute(db: Executor, group_id: str, rule_text: str) -> None:
    """Rebuild a dynamic group's members. The compiled rule gives two conditions: rows
    meeting the tighter one surely match and rows failing the looser one surely do not (the
    database decides those with set statements); only rows in between (regex, non-ASCII case
    folding) go through the evaluator."""
    rule = compiled(rule_text)
    upper, lower = rule.sql_bounds(rule_columns())
    t, m = devices.TABLE, _MEMBERS
    in_group = select(m.c.device_id).where(m.c.group_id == group_id)
    db.execute(
        delete(m).where(m.c.group_id == group_id, m.c.device_id.not_in(select(t.c.id).where(upper)))
    )
    db.execute(
        insert(m).from_select(
            ["group_id", "device_id", "added_at"],
            select(literal(group_id), t.c.id, literal(clock.now(), type_=m.c.added_at.type)).where(
                lower, t.c.id.not_in(in_group)
            ),
        )
    )
    undecided = list(db.execute(devices.rule_rows().where(upper, ~lower)))
    if undecided:
        current = set(db.scalars(in_group))
        should = {
            row.id for row in undecided if rule.matches(devices.rule_properties(row._mapping))
        }
        ids = {row.id for row in undecided}
        _apply(db, group_id, should - current, (current & ids) - should)


def _apply(db: Executor, group_id: str, added: set[str], removed: set[str]) -> None:
    if removed:
        db.execute(
            delete(_MEMBERS).where(
                _MEMBERS.c.group_id == group_id, _MEMBERS.c.device_id.in_(sorted(removed))
            )
        )
    if added:
        now = clock.now()
        db.execute(
            insert(_MEMBERS),
            [{"group_id": group_id, "device_id": d, "added_at": now} for d in sorted(added)],
        )


def refresh_device(db: Executor, device_id: str) -> None:
    """Re-evaluate one device against every active dynamic group (only dynamic groups have a
    rule), with at most one DELETE and one INSERT."""
    rules = list(
        db.execute(
            select(_GROUPS.c.id, _GROUPS.c.membership_rule).where(
                _GROUPS.c.membership_rule.is_not(None), _GROUPS.c.processing_state == "On"
            )
        )
    )
    if not rules:
        return
    row = db.execute(devices.rule_rows([device_id])).first()
    if row is None:
        return
    props = devices.rule_properties(row._mapping)
    current = set(
        db.scalars(
            select(_MEMBERS.c.group_id).where(
                _MEMBERS.c.device_id == device_id, _MEMBERS.c.group_id.in_([g for g, _ in rules])
            )
        )
    )
    should = {gid for gid, text in rules if compiled(text).matches(props)}
    if current - should:
        db.execute(
            delete(_MEMBERS).where(
                _MEMBERS.c.device_id == device_id, _MEMBERS.c.group_id.in_(sorted(current - should))
            )
        )
    if should - current:
        now = clock.now()
        db.execute(
            insert(_MEMBERS),
            [
                {"group_id": g, "device_id": device_id, "added_at": now}
                for g in sorted(should - current)
            ],
        )


devices.on_rule_properties_changed(refresh_device)


def evaluate(
    session: Session, actor: Actor, data: Evaluate, group_id: str | None = None
) -> dict[str, Any]:
    """Graph's evaluateDynamicMembership: whether a device matches a rule, and why."""
    actor.require(READ)
    if group_id is not None:
        group = get_group(session, actor, group_id)
        if not group.is_dynamic:
            raise BadRequest("This group is assigned, not dynamic: it has no rule to evaluate.")
        text = data.membership_rule or group.membership_rule
    else:
        text = data.membership_rule
    rule = checked_rule(text)
    device = access.get_visible(session, ManagedDevice, data.member_id, actor, devices.READ)
    row = session.execute(devices.rule_rows([device.id])).one()
    props = devices.rule_properties(row._mapping)
    return {
        "membershipRuleEvaluationResult": rule.matches(props),
        "membershipRuleEvaluationDetails": rule.explain(props),
    }
