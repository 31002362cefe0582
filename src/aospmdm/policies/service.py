"""Use cases of policies: restrictions, Wi-Fi profiles and compliance policies; assignment to
groups; what a device receives at check-in; compliance evaluation; status reports.

Configuration policies (restrictions, Wi-Fi) are merged per device into one effective policy
with a version: a device gets it at check-in when its applied version differs, and reports
per setting what it did. Compliance is judged here, on the server, from the facts a device
reports: at every check-in, when a policy or its assignments change, and by a periodic job
(grace periods that run out, statuses that grow older than the validity period).
"""

from __future__ import annotations

import smtplib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from aospmdm import protocol
from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.db import Executor, dialect_name, new_id, transaction
from aospmdm.core.errors import BadRequest, Forbidden
from aospmdm.core.permissions import POLICY_AND_PROFILE_MANAGER, Permission
from aospmdm.core.security import decrypt, encrypt
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.groups import service as groups
from aospmdm.groups.models import GroupMember
from aospmdm.policies import evaluation
from aospmdm.policies.evaluation import Effective, Facts, PolicyRow
from aospmdm.policies.models import (
    COMPLIANCE,
    CONFIGURATION_KINDS,
    RESTRICTIONS,
    WIFI,
    ComplianceAction,
    ComplianceSettings,
    DevicePolicyState,
    OutboxMail,
    Policy,
    PolicyAssignment,
)
from aospmdm.policies.schemas import (
    Assign,
    ComplianceInput,
    PolicyBase,
    RestrictionsInput,
    SettingsUpdate,
    WifiInput,
)
from aospmdm.tenant import access, audit
from aospmdm.tenant.access import Actor

READ = "policies.read"
WRITE = "policies.write"
permissions.register(
    Permission(READ, "Read configuration and compliance policies and their device statuses."),
    Permission(
        WRITE,
        "Create, change, assign and delete configuration and compliance policies, and change "
        "the tenant's compliance settings.",
        roles=frozenset({POLICY_AND_PROFILE_MANAGER}),
    ),
)
CATEGORY = "DeviceConfiguration"
COMPLIANCE_CATEGORY = "DeviceCompliancePolicy"
CONFIGURATIONS = CONFIGURATION_KINDS
COMPLIANCES = (COMPLIANCE,)
_POLICIES = cast("Table", Policy.__table__)
_ASSIGNMENTS = cast("Table", PolicyAssignment.__table__)
_STATES = cast("Table", DevicePolicyState.__table__)
_MEMBERS = cast("Table", GroupMember.__table__)
_ACTIONS = cast("Table", ComplianceAction.__table__)
_SETTINGS = cast("Table", ComplianceSettings.__table__)
_OUTBOX = cast("Table", OutboxMail.__table__)
DEFAULT_ACTIONS: list[dict[str, Any]] = [
    {
        "actionType": "block",
        "gracePeriodHours": 0,
        "notificationTemplateId": None,
        "notificationMessageCCList": [],
    }
]
CHUNK = 500


def _category(kind: str) -> str:
    return COMPLIANCE_CATEGORY if kind == COMPLIANCE else CATEGORY


# --- reading ---------------------------------------------------------------------------------


def policy_statement(actor: Actor, kinds: Sequence[str]) -> Select[Any]:
    return access.visible(
        select(Policy).where(Policy.kind.in_(list(kinds))).order_by(Policy.display_name, Policy.id),
        Policy,
        actor,
        READ,
    )


def get_policy(
    session: Session, actor: Actor, policy_id: str, kinds: Sequence[str], perm: str = READ
) -> Policy:
    policy = access.get_visible(session, Policy, policy_id, actor, perm)
    if policy.kind not in kinds:
        raise access.not_found(Policy, policy_id)
    return policy


def find_policy(session: Session, actor: Actor, name_or_id: str) -> Policy:
    found: Policy | None = session.scalars(
        access.visible(
            select(Policy)
            .where((Policy.id == name_or_id) | (Policy.display_name == name_or_id))
            .order_by(Policy.created_at),
            Policy,
            actor,
            READ,
        )
    ).first()
    if found is None:
        raise access.not_found(Policy, name_or_id)
    return found


def assignments_of(
    session: Session, policy_ids: Sequence[str]
) -> dict[str, list[PolicyAssignment]]:
    out: dict[str, list[PolicyAssignment]] = {p: [] for p in policy_ids}
    if policy_ids:
        for a in session.scalars(
            select(PolicyAssignment)
            .where(PolicyAssignment.policy_id.in_(list(policy_ids)))
            .order_by(PolicyAssignment.exclude, PolicyAssignment.group_id)
        ):
            out[a.policy_id].append(a)
    return out


# --- changes --------------------------------------------------------------------------------

_INPUTS: dict[str, type[PolicyBase]] = {
    RESTRICTIONS: RestrictionsInput,
    WIFI: WifiInput,
    COMPLIANCE: ComplianceInput,
}


def input_model(kind: str) -> type[PolicyBase]:
    return _INPUTS[kind]


def _check_wifi(settings: dict[str, Any], key_set: bool) -> None:
    if not settings.get("ssid"):
        raise BadRequest("A Wi-Fi profile needs the network's SSID.", target="ssid")
    security = settings.get("wiFiSecurityType") or "open"
    if security != "open" and not key_set:
        raise BadRequest(f"A {security} network needs its pre-shared key.", target="preSharedKey")
    proxy = settings.get("proxySettings") or "none"
    if proxy == "manual" and not (
        settings.get("proxyManualAddress") and settings.get("proxyManualPort")
    ):
        raise BadRequest(
            "A manual proxy needs proxyManualAddress and proxyManualPort.",
            target="proxyManualAddress",
        )
    if proxy == "automatic":
        url = settings.get("proxyAutomaticConfigurationUrl") or ""
        if not url.startswith(("http://", "https://")):
            raise BadRequest(
                "An automatic proxy needs the http(s) URL of its PAC file.",
                target="proxyAutomaticConfigurationUrl",
            )


def _check_key(security: str, key: str) -> None:
    if not (key.isascii() and key.isprintable()):
        raise BadRequest(
            "A Wi-Fi key is printable ASCII (WPA passphrases and WEP keys cannot hold other "
            "characters).",
            target="preSharedKey",
        )
    if security == "wep" and not (
        len(key) in (5, 13)
        or (len(key) in (10, 26) and all(c in "0123456789abcdefABCDEF" for c in key))
    ):
        raise BadRequest(
            "A WEP key is 5 or 13 characters, or 10 or 26 hexadecimal digits.",
            target="preSharedKey",
        )
    if security == "wpaPersonal" and not (
        8 <= len(key) <= 63 or (len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key))
    ):
        raise BadRequest(
            "A WPA pre-shared key is 8 to 63 characters (or 64 hexadecimal digits).",
            target="preSharedKey",
        )


def _check_compliance(settings: dict[str, Any]) -> None:
    low, high = settings.get("osMinimumVersion"), settings.get("osMaximumVersion")
    if low and high:
        a, b = evaluation.os_version_tuple(low), evaluation.os_version_tuple(high)
        if a is not None and b is not None and a > b:
            raise BadRequest(
                f"osMinimumVersion {low} is above osMaximumVersion {high}.",
                target="osMinimumVersion",
            )


def _scheduled_actions(data: ComplianceInput) -> list[dict[str, Any]] | None:
    """Graph's scheduledActionsForRule, flattened to its configurations; "mark noncompliant"
    (block) is always there, as in Intune, after 0 hours unless said otherwise."""
    if data.scheduled_actions_for_rule is None:
        return None
    configs = [
        {
            "actionType": c.action_type,
            "gracePeriodHours": c.grace_period_hours,
            "notificationTemplateId": c.notification_template_id,
            "notificationMessageCCList": list(c.notification_message_cc_list),
        }
        for rule in data.scheduled_actions_for_rule
        for c in rule.scheduled_action_configurations
    ]
    blocks = [c for c in configs if c["actionType"] == "block"]
    if len(blocks) > 1:
        raise BadRequest(
            "Only one 'block' (mark device noncompliant) action can be scheduled.",
            target="scheduledActionsForRule",
        )
    for n, c in enumerate(configs):
        if c["actionType"] == "notification" and not c["notificationMessageCCList"]:
            raise BadRequest(
                "A notification action needs the mail addresses to notify "
                "(notificationMessageCCList): userless devices have no user to mail.",
                target=f"scheduledActionsForRule.0.scheduledActionConfigurations.{n}."
                "notificationMessageCCList",
            )
    if not blocks:
        configs.insert(0, dict(DEFAULT_ACTIONS[0]))
    return configs


def _apply_settings(policy: Policy, data: PolicyBase, settings: Settings) -> dict[str, Any]:
    """Write the given settings into the policy; returns {setting: {old, new}}."""
    changes: dict[str, Any] = {}
    stored = dict(policy.settings)
    for name, value in data.configured().items():
        old = stored.get(name)
        if value is None:
            stored.pop(name, None)
        else:
            stored[name] = value
        if old != value:
            changes[name] = {"old": old, "new": value}
    if isinstance(data, WifiInput):
        key = data.pre_shared_key
        security = stored.get("wiFiSecurityType") or "open"
        if key:
            if security == "open":
                raise BadRequest("An open network has no pre-shared key.", target="preSharedKey")
            _check_key(security, key)
            policy.secret_encrypted = encrypt(settings.instance_key, key)
            changes["preSharedKey"] = "(changed)"
        elif key == "" or security == "open":
            if policy.secret_encrypted is not None:
                changes["preSharedKey"] = "(cleared)"
            policy.secret_encrypted = None
        elif policy.secret_encrypted is not None and "wiFiSecurityType" in changes:
            # The kept key must suit the new security type, or devices get one they reject.
            _check_key(security, decrypt(settings.instance_key, policy.secret_encrypted))
        _check_wifi(stored, policy.secret_encrypted is not None)
    if isinstance(data, ComplianceInput):
        _check_compliance(stored)
        actions = _scheduled_actions(data)
        if actions is not None and actions != policy.scheduled_actions:
            changes["scheduledActionsForRule"] = actions
            policy.scheduled_actions = actions
    policy.settings = stored
    return changes


def create_policy(
    session: Session, settings: Settings, actor: Actor, kind: str, data: PolicyBase
) -> Policy:
    actor.require(WRITE)
    if not data.display_name:
        raise BadRequest("A policy needs a name.", target="displayName")
    now = clock.now()
    policy = Policy(
        kind=kind,
        display_name=data.display_name,
        description=data.description or "",
        settings={},
        scheduled_actions=list(DEFAULT_ACTIONS) if kind == COMPLIANCE else [],
        version=1,
        created_at=now,
        last_modified_at=now,
    )
    _apply_settings(policy, data, settings)
    session.add(policy)
    session.flush()
    tags = access.tag_new(session, Policy, policy.id, actor, WRITE, data.role_scope_tag_ids)
    audit.record(
        session,
        actor,
        category=_category(kind),
        activity="Create policy",
        operation="Create",
        target_type=_graph_type(kind),
        target_id=policy.id,
        target_name=policy.display_name,
        details={"settings": policy.settings, "roleScopeTagIds": tags},
    )
    return policy


def update_policy(
    session: Session,
    settings: Settings,
    actor: Actor,
    policy_id: str,
    kinds: Sequence[str],
    data: PolicyBase,
) -> Policy:
    actor.require(WRITE)
    policy = get_policy(session, actor, policy_id, kinds, WRITE)
    if not isinstance(data, _INPUTS[policy.kind]):
        raise BadRequest(
            f"This policy is a {_graph_type(policy.kind)}; its kind cannot change.",
            target="@odata.type",
        )
    changes = _apply_settings(policy, data, settings)
    if data.display_name is not None and data.display_name != policy.display_name:
        changes["displayName"] = {"old": policy.display_name, "new": data.display_name}
        policy.display_name = data.display_name
    if data.description is not None and data.description != policy.description:
        changes["description"] = data.description
        policy.description = data.description
    if data.role_scope_tag_ids is not None:
        before = access.tags_of(session, Policy, [policy.id])[policy.id]
        after = access.set_tags(session, Policy, policy.id, actor, WRITE, data.role_scope_tag_ids)
        if sorted(after) != sorted(before):
            changes["roleScopeTagIds"] = after
    if changes:
        policy.last_modified_at = clock.now()
    if any(k not in ("displayName", "description", "roleScopeTagIds") for k in changes):
        # The version counts changes of what devices enforce or are judged by: a new name
        # does not send the policy to every device again.
        policy.version += 1
    session.flush()
    audit.record(
        session,
        actor,
        category=_category(policy.kind),
        activity="Update policy",
        operation="Patch",
        target_type=_graph_type(policy.kind),
        target_id=policy.id,
        target_name=policy.display_name,
        details=changes,
    )
    if policy.kind == COMPLIANCE and any(
        k not in ("displayName", "description", "roleScopeTagIds") for k in changes
    ):
        reevaluate_policy(session, policy.id)
    return policy


def delete_policy(session: Session, actor: Actor, policy_id: str, kinds: Sequence[str]) -> None:
    actor.require(WRITE)
    policy = get_policy(session, actor, policy_id, kinds, WRITE)
    affected = _devices_with_state(session, policy.id)
    access.untag(session, Policy, policy.id)
    session.execute(delete(_STATES).where(_STATES.c.policy_id == policy.id))
    session.execute(
        update(_ACTIONS)
        .where(_ACTIONS.c.policy_id == policy.id, _ACTIONS.c.state == "pending")
        .values(state="canceled")
    )
    audit.record(
        session,
        actor,
        category=_category(policy.kind),
        activity="Delete policy",
        operation="Delete",
        target_type=_graph_type(policy.kind),
        target_id=policy.id,
        target_name=policy.display_name,
    )
    kind = policy.kind
    session.delete(policy)
    session.flush()
    if kind == COMPLIANCE:
        evaluate_compliance(session, affected)


def assign(
    session: Session, actor: Actor, policy_id: str, kinds: Sequence[str], data: Assign
) -> list[PolicyAssignment]:
    """Replace the policy's assignments (Graph's assign action): include and exclude groups."""
    actor.require(WRITE)
    policy = get_policy(session, actor, policy_id, kinds, WRITE)
    wanted: dict[str, bool] = {}
    for n, item in enumerate(data.assignments):
        gid = item.target.group_id
        exclude = item.target.odata_type_.endswith("exclusionGroupAssignmentTarget")
        try:
            groups.get_group(session, actor, gid)
        except Exception as exc:
            if getattr(exc, "status", None) in (403, 404):
                raise BadRequest(
                    f"Group '{gid}' does not exist, or you may not see it.",
                    target=f"assignments.{n}.target.groupId",
                ) from None
            raise
        if gid in wanted and wanted[gid] != exclude:
            raise BadRequest(
                f"Group '{gid}' is both included and excluded.",
                target=f"assignments.{n}.target.groupId",
            )
        wanted[gid] = exclude
    # A scoped admin replaces only the assignments it can see: those to groups outside its
    # scope stay (as scope tags do), so it cannot undo what other admins assigned.
    current = assignments_of(session, [policy.id])[policy.id]
    seen = groups.visible_group_ids(session, actor, [a.group_id for a in current])
    kept = [a for a in current if a.group_id not in seen and a.group_id not in wanted]
    before = _devices_with_state(session, policy.id) | set(
        session.scalars(targeted_device_ids(policy.id))
    )
    session.execute(delete(_ASSIGNMENTS).where(_ASSIGNMENTS.c.policy_id == policy.id))
    rows = [PolicyAssignment(policy_id=policy.id, group_id=g, exclude=x) for g, x in wanted.items()]
    rows += [
        PolicyAssignment(policy_id=policy.id, group_id=a.group_id, exclude=a.exclude) for a in kept
    ]
    session.add_all(rows)
    session.flush()
    audit.record(
        session,
        actor,
        category=_category(policy.kind),
        activity="Assign policy",
        operation="Action",
        target_type=_graph_type(policy.kind),
        target_id=policy.id,
        target_name=policy.display_name,
        details={
            "include": [g for g, x in wanted.items() if not x],
            "exclude": [g for g, x in wanted.items() if x],
        },
    )
    if policy.kind == COMPLIANCE:
        evaluate_compliance(session, before | set(session.scalars(targeted_device_ids(policy.id))))
    return rows


def _graph_type(kind: str) -> str:
    return {
        RESTRICTIONS: "aospDeviceOwnerDeviceConfiguration",
        WIFI: "aospDeviceOwnerWiFiConfiguration",
        COMPLIANCE: "aospDeviceOwnerCompliancePolicy",
    }[kind]


# --- targeting ---------------------------------------------------------------------------------


def targeted_device_ids(policy_id: str) -> Select[Any]:
    """The devices a policy applies to: members of an included group and of no excluded one."""
    a, m = _ASSIGNMENTS, _MEMBERS
    included = select(a.c.group_id).where(a.c.policy_id == policy_id, a.c.exclude.is_(False))
    excluded = select(a.c.group_id).where(a.c.policy_id == policy_id, a.c.exclude.is_(True))
    return (
        select(m.c.device_id)
        .where(m.c.group_id.in_(included))
        .where(m.c.device_id.not_in(select(m.c.device_id).where(m.c.group_id.in_(excluded))))
        .group_by(m.c.device_id)
    )


def _devices_with_state(db: Executor, policy_id: str) -> set[str]:
    return set(db.scalars(select(_STATES.c.device_id).where(_STATES.c.policy_id == policy_id)))


_POLICY_COLUMNS = (
    "id",
    "kind",
    "display_name",
    "settings",
    "version",
    "created_at",
    "secret_encrypted",
    "scheduled_actions",
)


def _targeted_statement() -> Select[Any]:
    m, a, p = _MEMBERS, _ASSIGNMENTS, _POLICIES
    mx, ax = m.alias("mx"), a.alias("ax")
    excluded = (
        select(ax.c.policy_id)
        .join(mx, mx.c.group_id == ax.c.group_id)
        .where(ax.c.exclude.is_(True), mx.c.device_id == m.c.device_id, ax.c.policy_id == p.c.id)
    )
    return (
        select(m.c.device_id, *(p.c[c] for c in _POLICY_COLUMNS))
        .join(a, and_(a.c.group_id == m.c.group_id, a.c.exclude.is_(False)))
        .join(p, p.c.id == a.c.policy_id)
        .where(m.c.device_id.in_(bindparam("device_ids", expanding=True)), ~exists(excluded))
    )


# Built once: the check-in runs them every time, and building a statement costs more than
# SQLite takes to run it.
_TARGETED = _targeted_statement()
_STATES_OF = select(_STATES).where(_STATES.c.device_id.in_(bindparam("device_ids", expanding=True)))
_SETTINGS_ROW = select(_SETTINGS.c.secure_by_default, _SETTINGS.c.checkin_threshold_days).where(
    _SETTINGS.c.id == 1
)


def targeted(db: Executor, device_ids: Sequence[str]) -> dict[str, list[PolicyRow]]:
    """The policies assigned to each device, in one query: through an included group, unless
    one of its groups is excluded."""
    out: dict[str, list[PolicyRow]] = {d: [] for d in device_ids}
    if not device_ids:
        return out
    seen: set[tuple[str, str]] = set()
    for row in db.execute(_TARGETED, {"device_ids": list(device_ids)}):
        if (row.device_id, row.id) in seen:  # assigned through two groups
            continue
        seen.add((row.device_id, row.id))
        out[row.device_id].append(PolicyRow(**{c: getattr(row, c) for c in _POLICY_COLUMNS}))
    return out


# Effective policies by the policies they merge (id, version, name, kind): a fleet shares a
# few sets, and merging (with a Wi-Fi key to decrypt) costs more than the check-in's queries.
# Derived data only; a changed policy has a new version, so a stale entry is never read.
_EFFECTIVE: OrderedDict[tuple[Any, ...], Effective] = OrderedDict()
_EFFECTIVE_LOCK = threading.Lock()
_EFFECTIVE_MAX = 1024


def effective_for(settings: Settings, policies: Sequence[PolicyRow]) -> Effective:
    key = (
        settings.instance_key,
        tuple(
            sorted(
                (p.id, p.version, p.display_name, p.kind)
                for p in policies
                if p.kind in CONFIGURATION_KINDS
            )
        ),
    )
    with _EFFECTIVE_LOCK:
        found = _EFFECTIVE.get(key)
        if found is not None:
            _EFFECTIVE.move_to_end(key)
            return found
    eff = evaluation.effective(policies, lambda text: decrypt(settings.instance_key, text))
    with _EFFECTIVE_LOCK:
        _EFFECTIVE[key] = eff
        while len(_EFFECTIVE) > _EFFECTIVE_MAX:
            _EFFECTIVE.popitem(last=False)
    return eff


def effective_restrictions(db: Executor, device_id: str) -> dict[str, Any]:
    """The restrictions in force on a device (merged), e.g. for a temporary passcode that
    must meet them."""
    merged, _ = evaluation.merge_restrictions(targeted(db, [device_id])[device_id])
    return merged


def is_passcode_policy_assigned(db: Executor, device_id: str) -> bool:
    """Whether a restrictions policy requiring a numeric or numeric complex passcode applies
    to the device (remote lock and reset passcode need one)."""
    return any(
        p.kind == RESTRICTIONS
        and p.settings.get("passwordRequiredType") in ("numeric", "numericComplex")
        for p in targeted(db, [device_id])[device_id]
    )


# --- compliance settings ----------------------------------------------------------------------


def compliance_settings(db: Executor) -> tuple[bool, int]:
    """(secureByDefault, deviceComplianceCheckinThresholdDays)."""
    row = db.execute(_SETTINGS_ROW).first()
    return (bool(row[0]), int(row[1])) if row is not None else (False, 30)


def update_compliance_settings(session: Session, actor: Actor, data: SettingsUpdate) -> None:
    actor.require(WRITE)
    if actor.scope(WRITE) is not None:
        raise Forbidden(
            "These settings apply to every device of the tenant: only an admin whose "
            f"'{WRITE}' is not limited to scope tags may change them.",
            code="forbidden",
        )
    row = session.get(ComplianceSettings, 1)
    if row is None:
        row = ComplianceSettings(id=1, secure_by_default=False, checkin_threshold_days=30)
        session.add(row)
    changes: dict[str, Any] = {}
    if data.secure_by_default is not None and data.secure_by_default != row.secure_by_default:
        changes["secureByDefault"] = data.secure_by_default
        row.secure_by_default = data.secure_by_default
    days = data.device_compliance_checkin_threshold_days
    if days is not None and days != row.checkin_threshold_days:
        changes["deviceComplianceCheckinThresholdDays"] = days
        row.checkin_threshold_days = days
    session.flush()
    if not changes:
        return
    audit.record(
        session,
        actor,
        category=COMPLIANCE_CATEGORY,
        activity="Update compliance policy settings",
        operation="Patch",
        target_type="deviceManagementSettings",
        details=changes,
    )
    evaluate_compliance(session, list(session.scalars(select(devices.TABLE.c.id))))


# --- check-in ---------------------------------------------------------------------------------


def facts_of(row: Any) -> Facts:
    return Facts(
        os_version=row.os_version,
        security_patch_level=row.security_patch_level,
        is_rooted=row.is_rooted,
        is_encrypted=row.is_encrypted,
        passcode_type=row.passcode_type,
        passcode_length=row.passcode_length,
        lock_after_inactivity_minutes=row.lock_after_inactivity_minutes,
    )


def for_check_in(
    db: Executor,
    settings: Settings,
    device: devices.DeviceState,
    facts: protocol.DeviceFacts,
    applied_version: str | None,
    report: protocol.PolicyReport | None,
    now: datetime,
) -> protocol.EffectivePolicy | None:
    """A check-in's policy work: store the device's report, judge its compliance, and return
    the effective policy when the device does not have it yet."""
    policies = targeted(db, [device.id])[device.id]
    eff = effective_for(settings, policies)
    states = _states(db, [device.id])[device.id]
    if report is not None and report.version == eff.version == applied_version:
        _record_report(db, device.id, eff, policies, report, states, now)
    _judge(
        db,
        device.id,
        device.device_name,
        facts_of(facts),
        now,
        device.compliance_state,
        [p for p in policies if p.kind == COMPLIANCE],
        {p.id for p in policies},
        states,
        compliance_settings(db),
        now,
    )
    return eff.policy if (applied_version or evaluation.EMPTY_VERSION) != eff.version else None


def _states(db: Executor, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {d: {} for d in device_ids}
    if device_ids:
        for row in db.execute(_STATES_OF, {"device_ids": list(device_ids)}):
            out[row.device_id][row.policy_id] = row
    return out


def _write_state(db: Executor, device_id: str, existing: Any, values: dict[str, Any]) -> None:
    if existing is None:
        # An upsert: a device's check-in and an admin's change may judge it at the same time.
        upsert = pg_insert if dialect_name(db) == "postgresql" else sqlite_insert
        stmt = upsert(_STATES).values(device_id=device_id, **values)
        db.execute(
            stmt.on_conflict_do_update(
                index_elements=[_STATES.c.device_id, _STATES.c.policy_id],
                set_={k: stmt.excluded[k] for k in values if k != "policy_id"},
            )
        )
        return
    changed = {k: v for k, v in values.items() if getattr(existing, k) != v and k != "reported_at"}
    if changed:
        db.execute(
            update(_STATES)
            .where(_STATES.c.device_id == device_id, _STATES.c.policy_id == values["policy_id"])
            .values(**changed, reported_at=values["reported_at"])
        )


_REPORT_STATE = {"applied": "compliant", "failed": "error", "notSupported": "notApplicable"}


def _record_report(
    db: Executor,
    device_id: str,
    eff: Effective,
    policies: Sequence[PolicyRow],
    report: protocol.PolicyReport,
    states: dict[str, Any],
    now: datetime,
) -> None:
    """Turn the device's per-setting report into each configuration policy's status."""
    by_setting = {s.name: s for s in report.settings}
    by_ssid = {w.ssid: w for w in report.wifi_networks}
    for policy in policies:
        if policy.kind == RESTRICTIONS:
            rows: list[dict[str, Any]] = []
            for name in policy.settings:
                winner = eff.winners.get(name)
                got = by_setting.get(name)
                state = _REPORT_STATE[got.state] if got is not None else "unknown"
                rows.append(
                    {
                        "setting": name,
                        "state": state,
                        "currentValue": None
                        if got is None
                        else evaluation.value_text(got.current_value),
                        "reason": (
                            got.message
                            if got is not None
                            else "The device did not report this setting."
                        ),
                        "sources": [{"id": winner.id, "displayName": winner.display_name}]
                        if winner
                        else [],
                    }
                )
            status = evaluation.worst([str(r["state"]) for r in rows])
        elif policy.kind == WIFI:
            ssid = policy.settings.get("ssid", "")
            if ssid in eff.conflicts:
                others = [p.display_name for p in eff.conflicts[ssid] if p.id != policy.id]
                status = "conflict"
                reason = (
                    f"Wi-Fi profiles {', '.join(others)} set SSID {ssid!r} differently; "
                    "none is applied."
                )
            else:
                got_wifi = by_ssid.get(ssid)
                status = _REPORT_STATE[got_wifi.state] if got_wifi is not None else "unknown"
                reason = (
                    got_wifi.message
                    if got_wifi is not None
                    else "The device did not report this network."
                )
            rows = [
                {
                    "setting": "ssid",
                    "state": status,
                    "currentValue": ssid,
                    "reason": reason,
                    "sources": [{"id": policy.id, "displayName": policy.display_name}],
                }
            ]
        else:
            continue
        _write_state(
            db,
            device_id,
            states.get(policy.id),
            {
                "policy_id": policy.id,
                "status": status,
                "policy_version": policy.version,
                "setting_states": rows,
                "reported_at": now,
                "noncompliant_since": None,
                "actions_done": [],
                "next_action_at": None,
            },
        )


def _judge(
    db: Executor,
    device_id: str,
    device_name: str,
    facts: Facts,
    last_sync: datetime,
    current: str,
    policies: Sequence[PolicyRow],
    targeted_ids: set[str],
    states: dict[str, Any],
    config: tuple[bool, int],
    now: datetime,
) -> None:
    """Judge one device against its compliance policies, run the noncompliance actions that
    came due, and write what changed (nothing, when nothing did)."""
    secure_by_default, threshold_days = config
    stale_ids = [pid for pid in states if pid not in targeted_ids]
    if stale_ids:  # policies no longer assigned: their status goes with them
        db.execute(
            delete(_STATES).where(
                _STATES.c.device_id == device_id, _STATES.c.policy_id.in_(stale_ids)
            )
        )
        db.execute(
            update(_ACTIONS)
            .where(
                _ACTIONS.c.device_id == device_id,
                _ACTIONS.c.policy_id.in_(stale_ids),
                _ACTIONS.c.state == "pending",
            )
            .values(state="canceled")
        )
    judged: list[tuple[str, datetime | None]] = []
    for policy in policies:
        results = evaluation.check_compliance(policy.settings, facts)
        status = evaluation.worst([r.status for r in results]) if results else "compliant"
        if status == "notApplicable":
            status = "compliant"
        old = states.get(policy.id)
        since: datetime | None = None
        done: list[str] = []
        next_at: datetime | None = None
        blocked_at: datetime | None = None
        if status == "nonCompliant":
            since = old.noncompliant_since if old is not None and old.noncompliant_since else now
            done = list(old.actions_done) if old is not None and old.noncompliant_since else []
            due, next_at = evaluation.due_actions(policy.scheduled_actions, since, done, now)
            for key, action, at in due:
                _fire(db, device_id, device_name, policy, action, at, results, now)
                done.append(key)
            blocked_at = evaluation.block_due(policy.scheduled_actions, since)
        elif old is not None and old.noncompliant_since is not None:
            # Compliant again: off the retire list, and no lock is still owed.
            db.execute(
                update(_ACTIONS)
                .where(
                    _ACTIONS.c.device_id == device_id,
                    _ACTIONS.c.policy_id == policy.id,
                    _ACTIONS.c.state == "pending",
                )
                .values(state="canceled")
            )
        judged.append((status, blocked_at))
        _write_state(
            db,
            device_id,
            old,
            {
                "policy_id": policy.id,
                "status": status,
                "policy_version": policy.version,
                "setting_states": [r.as_json() for r in results],
                "reported_at": now,
                "noncompliant_since": since,
                "actions_done": done,
                "next_action_at": next_at,
            },
        )
    stale = last_sync < now - timedelta(days=threshold_days)
    state = evaluation.device_compliance(
        judged, secure_by_default=secure_by_default, stale=stale, now=now
    )
    if state != current:
        db.execute(
            update(devices.TABLE)
            .where(devices.TABLE.c.id == device_id)
            .values(compliance_state=state)
        )


def _fire(
    db: Executor,
    device_id: str,
    device_name: str,
    policy: PolicyRow,
    action: dict[str, Any],
    due_at: datetime,
    results: Sequence[evaluation.SettingResult],
    now: datetime,
) -> None:
    """A scheduled action came due. Marking noncompliant is the state itself; the others are
    recorded for their carriers (the command queue, the retire list, the outbox)."""
    kind = action["actionType"]
    if kind == "block":
        return
    db.execute(
        insert(_ACTIONS).values(
            id=new_id(),
            device_id=device_id,
            policy_id=policy.id,
            action_type=kind,
            state="done" if kind == "notification" else "pending",
            due_at=due_at,
            created_at=now,
        )
    )
    if kind == "notification":
        reasons = "\n".join(
            f"- {r.setting}: {r.reason}" for r in results if r.status != "compliant"
        )
        db.execute(
            insert(_OUTBOX).values(
                id=new_id(),
                recipients=list(action.get("notificationMessageCCList") or []),
                subject=f"Device {device_name} is not compliant with {policy.display_name}",
                body=(
                    f"The device {device_name} ({device_id}) does not meet the compliance "
                    f"policy {policy.display_name}:\n{reasons}\n"
                ),
                created_at=now,
                sent_at=None,
                attempts=0,
                last_error=None,
            )
        )
    audit.record(
        db,
        access.SYSTEM,
        category=COMPLIANCE_CATEGORY,
        activity={
            "remoteLock": "Compliance action: remote lock",
            "retire": "Compliance action: add to retire list",
            "notification": "Compliance action: notify",
        }.get(kind, f"Compliance action: {kind}"),
        operation="Action",
        target_type="managedDevice",
        target_id=device_id,
        target_name=device_name,
        details={"policyId": policy.id, "policy": policy.display_name, "actionType": kind},
    )


# --- batch evaluation -----------------------------------------------------------------------


def evaluate_compliance(
    db: Executor, device_ids: Iterable[str], now: datetime | None = None
) -> int:
    """Judge these devices again from their stored facts (after a policy, its assignments or
    the tenant settings changed, or when time moved on). Returns how many were judged."""
    now = now or clock.now()
    ids = sorted(set(device_ids))
    config = compliance_settings(db)
    t = devices.TABLE
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if dialect_name(db) == "postgresql":
            # The device rows first, in id order, as a check-in locks its device row before
            # its states: the two cannot deadlock, and a check-in judging the same device
            # waits and then reads what this evaluation wrote (no action fires twice).
            db.execute(select(t.c.id).where(t.c.id.in_(chunk)).order_by(t.c.id).with_for_update())
        rows = list(
            db.execute(
                select(
                    t.c.id,
                    t.c.device_name,
                    t.c.last_sync_at,
                    t.c.compliance_state,
                    t.c.os_version,
                    t.c.security_patch_level,
                    t.c.is_rooted,
                    t.c.is_encrypted,
                    t.c.passcode_type,
                    t.c.passcode_length,
                    t.c.lock_after_inactivity_minutes,
                ).where(t.c.id.in_(chunk))
            )
        )
        policies = targeted(db, chunk)
        states = _states(db, chunk)
        for row in rows:
            mine = policies[row.id]
            _judge(
                db,
                row.id,
                row.device_name,
                facts_of(row),
                row.last_sync_at,
                row.compliance_state,
                [p for p in mine if p.kind == COMPLIANCE],
                {p.id for p in mine},
                {k: v for k, v in states[row.id].items()},
                config,
                now,
            )
    return len(ids)


def reevaluate_policy(db: Executor, policy_id: str) -> None:
    evaluate_compliance(
        db, _devices_with_state(db, policy_id) | set(db.scalars(targeted_device_ids(policy_id)))
    )


def _membership_changed(db: Executor, group_id: str, device_ids: list[str]) -> None:
    """Devices an admin moved in or out of a group may have gained or lost a compliance
    policy: judge them now, not at their next check-in."""
    del group_id  # the group may be gone already (deleted, with its assignments)
    if db.execute(select(_POLICIES.c.id).where(_POLICIES.c.kind == COMPLIANCE).limit(1)).first():
        evaluate_compliance(db, device_ids)


groups.on_membership_changed(_membership_changed)


def compliance_job(session: Session) -> int:
    """Periodic: devices whose status outgrew the validity period become noncompliant, and
    noncompliance actions whose grace period ran out are carried out."""
    now = clock.now()
    _, days = compliance_settings(session)
    t = devices.TABLE
    stale = select(t.c.id).where(
        t.c.last_sync_at < now - timedelta(days=days), t.c.compliance_state != "noncompliant"
    )
    due = select(_STATES.c.device_id).where(_STATES.c.next_action_at <= now)
    in_grace = select(t.c.id).where(t.c.compliance_state == "inGracePeriod")
    ids = set(session.scalars(stale)) | set(session.scalars(due)) | set(session.scalars(in_grace))
    # Group memberships changed since (a device removed from or added to a group by hand, a
    # group deleted): devices judged by a policy that no longer targets them, and devices a
    # policy targets that it has not judged.
    for policy_id in session.scalars(select(Policy.id).where(Policy.kind == COMPLIANCE)):
        targeted_now = set(session.scalars(targeted_device_ids(policy_id)))
        ids |= targeted_now ^ _devices_with_state(session, policy_id)
    return evaluate_compliance(session, ids, now)


# --- reports -------------------------------------------------------------------------------------


def device_statuses(session: Session, actor: Actor, policy: Policy) -> list[dict[str, Any]]:
    """Per targeted device: the policy's status there, with per-setting reasons. A device that
    has not reported the policy's current version is ``unknown`` (pending)."""
    stmt = devices.device_statement(actor).where(
        ManagedDevice.id.in_(targeted_device_ids(policy.id))
    )
    rows = list(session.scalars(stmt))
    states = {
        s.device_id: s
        for s in session.scalars(
            select(DevicePolicyState).where(
                DevicePolicyState.policy_id == policy.id,
                DevicePolicyState.device_id.in_([d.id for d in rows]),
            )
        )
    }
    out = []
    for d in rows:
        s = states.get(d.id)
        current = s is not None and s.policy_version == policy.version
        status = s.status if s is not None and current else "unknown"
        grace_end = None
        if policy.kind == COMPLIANCE and s is not None and s.noncompliant_since is not None:
            grace_end = evaluation.block_due(policy.scheduled_actions, s.noncompliant_since)
        out.append(
            {
                "device": d,
                "status": status,
                "reported_at": s.reported_at if s is not None else None,
                "setting_states": s.setting_states if s is not None and current else [],
                "grace_end": grace_end,
            }
        )
    return out


def device_policy_states(
    session: Session, actor: Actor, device_id: str, kinds: Sequence[str]
) -> list[dict[str, Any]]:
    """The policies that apply to one device, each with its status and per-setting states."""
    actor.require(READ)
    device = devices.get_device(session, actor, device_id)
    seen = _visible_policy_ids(session, actor, kinds)
    policies = [
        p for p in targeted(session, [device.id])[device.id] if p.kind in kinds and p.id in seen
    ]
    states = _states(session, [device.id])[device.id]
    out = []
    for p in sorted(policies, key=lambda p: p.display_name):
        s = states.get(p.id)
        current = s is not None and s.policy_version == p.version
        out.append(
            {
                "policy": p,
                "status": s.status if s is not None and current else "unknown",
                "setting_states": s.setting_states if s is not None and current else [],
                "reported_at": s.reported_at if s is not None else None,
            }
        )
    return out


def default_policy_reasons(session: Session, device: ManagedDevice) -> list[dict[str, Any]]:
    """Intune's "Default Device Compliance Policy": the tenant-wide reasons a device can be
    noncompliant with no policy of its own (no policy assigned, status too old)."""
    secure_by_default, days = compliance_settings(session)
    has_policy = any(p.kind == COMPLIANCE for p in targeted(session, [device.id])[device.id])
    now = clock.now()
    active = device.last_sync_at >= now - timedelta(days=days)
    rows = [
        {
            "setting": "isActive",
            "state": "compliant" if active else "nonCompliant",
            "currentValue": clock.iso(device.last_sync_at),
            "reason": "" if active else f"The device has not checked in for more than {days} days.",
        }
    ]
    if secure_by_default:
        rows.append(
            {
                "setting": "hasCompliancePolicyAssigned",
                "state": "compliant" if has_policy else "nonCompliant",
                "currentValue": str(has_policy).lower(),
                "reason": ""
                if has_policy
                else "No compliance policy is assigned, and the tenant marks such devices "
                "noncompliant.",
            }
        )
    return rows


SUMMARY_STATES = ("compliant", "noncompliant", "inGracePeriod", "unknown")


def state_summary(session: Session, actor: Actor) -> dict[str, int]:
    """Fleet counts by complianceState, over the devices the admin may see."""
    actor.require(READ)
    stmt = (
        devices.device_statement(actor)
        .with_only_columns(ManagedDevice.compliance_state, func.count())
        .group_by(ManagedDevice.compliance_state)
        .order_by(None)
    )
    counts = {state: 0 for state in SUMMARY_STATES}
    for state, n in session.execute(stmt):
        counts[state] = counts.get(state, 0) + int(n)
    return counts


def policy_status_counts(session: Session, actor: Actor, policy: Policy) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in device_statuses(session, actor, policy):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def retire_list(
    session: Session, actor: Actor
) -> list[tuple[ComplianceAction, ManagedDevice, Policy]]:
    """Devices a compliance policy put on the retire list (noncompliant past the grace
    period), for an admin to retire (wipe) or forgive."""
    actor.require(READ)
    stmt = (
        select(ComplianceAction, ManagedDevice, Policy)
        .join(ManagedDevice, ManagedDevice.id == ComplianceAction.device_id)
        .join(Policy, Policy.id == ComplianceAction.policy_id)
        .where(ComplianceAction.action_type == "retire", ComplianceAction.state == "pending")
        .order_by(ComplianceAction.created_at)
    )
    visible = set(
        session.scalars(devices.device_statement(actor).with_only_columns(ManagedDevice.id))
    )
    seen = _visible_policy_ids(session, actor, COMPLIANCES)
    return [
        (a, d, p) for a, d, p in session.execute(stmt).all() if d.id in visible and p.id in seen
    ]


def _visible_policy_ids(session: Session, actor: Actor, kinds: Sequence[str]) -> set[str]:
    return set(
        session.scalars(policy_statement(actor, kinds).with_only_columns(Policy.id).order_by(None))
    )


def close_compliance_actions(db: Executor, ids: Sequence[str], state: str) -> None:
    """Mark recorded compliance actions done (handed to their carrier) or canceled."""
    if ids:
        db.execute(
            update(_ACTIONS)
            .where(_ACTIONS.c.id.in_(list(ids)), _ACTIONS.c.state == "pending")
            .values(state=state)
        )


def pending_locks(db: Executor) -> list[Any]:
    """Remote locks that compliance actions recorded, waiting for the command queue."""
    return list(
        db.execute(
            select(_ACTIONS).where(
                _ACTIONS.c.action_type == "remoteLock", _ACTIONS.c.state == "pending"
            )
        )
    )


# --- outbox ------------------------------------------------------------------------------------

MAX_ATTEMPTS = 10
CLAIM = timedelta(minutes=5)


def send_outbox(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Send queued notifications by SMTP, when an SMTP host is configured. Mails are claimed
    in one short transaction and marked in another, so no transaction waits on the mail
    server; a failed send is tried again at a later run, up to MAX_ATTEMPTS times."""
    if not settings.smtp_host:
        return 0
    now = clock.now()
    with transaction(sessions) as session:
        stmt = (
            select(OutboxMail)
            .where(
                OutboxMail.sent_at.is_(None),
                OutboxMail.attempts < MAX_ATTEMPTS,
                or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
            )
            .order_by(OutboxMail.created_at)
            .limit(100)
        )
        if dialect_name(session) == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = list(session.scalars(stmt))
        for mail in claimed:
            mail.attempts += 1
            mail.claimed_until = now + CLAIM
        mails = [(m.id, list(m.recipients), m.subject, m.body) for m in claimed]
    if not mails:
        return 0
    errors: dict[str, str | None] = {}
    try:
        smtp_class = smtplib.SMTP_SSL if settings.smtp_ssl else smtplib.SMTP
        with smtp_class(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            if settings.smtp_starttls and not settings.smtp_ssl:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            for mail_id, recipients, subject, body in mails:
                msg = EmailMessage()
                msg["From"] = settings.smtp_from
                msg["To"] = ", ".join(recipients)
                msg["Subject"] = subject
                msg.set_content(body)
                try:
                    smtp.send_message(msg)
                    errors[mail_id] = None
                except smtplib.SMTPException as exc:
                    errors[mail_id] = f"send: {exc}"
    except (OSError, smtplib.SMTPException) as exc:
        for mail_id, *_ in mails:
            errors.setdefault(mail_id, f"connect: {exc}")
    with transaction(sessions) as session:
        for mail_id, error in errors.items():
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == mail_id)
                .values(
                    sent_at=clock.now() if error is None else None,
                    last_error=None if error is None else error[:1024],
                    claimed_until=None,
                )
            )
    return sum(1 for e in errors.values() if e is None)
