"""Admin API of policies: /beta/deviceManagement/deviceConfigurations (restrictions and Wi-Fi
profiles), …/deviceCompliancePolicies, the tenant's compliance settings and the reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Body, Request, Response
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.errors import BadRequest
from aospmdm.core.odata import page
from aospmdm.core.schemas import validated
from aospmdm.devices.models import ManagedDevice
from aospmdm.groups import service as groups
from aospmdm.policies import service
from aospmdm.policies.models import COMPLIANCE, RESTRICTIONS, WIFI, Policy, PolicyAssignment
from aospmdm.policies.schemas import (
    COMPLIANCE_SETTINGS,
    COMPLIANCE_TYPE,
    RESTRICTION_SETTINGS,
    RESTRICTIONS_TYPE,
    WIFI_SETTINGS,
    WIFI_TYPE,
    Assign,
    DeviceManagementUpdate,
)
from aospmdm.tenant import access
from aospmdm.tenant.deps import ActorDep, SessionDep, SettingsDep

router = APIRouter(prefix="/beta/deviceManagement")

TYPES = {RESTRICTIONS: RESTRICTIONS_TYPE, WIFI: WIFI_TYPE, COMPLIANCE: COMPLIANCE_TYPE}
KIND_OF_TYPE = {v: k for k, v in TYPES.items()}
COLLECTIONS = {
    "deviceConfigurations": service.CONFIGURATIONS,
    "deviceCompliancePolicies": service.COMPLIANCES,
}


# --- shapes --------------------------------------------------------------------------------


def policies_json(session: Session, rows: Sequence[Policy]) -> list[dict[str, Any]]:
    tags = access.tags_of(session, Policy, [p.id for p in rows])
    return [policy_json(p, tags[p.id]) for p in rows]


def policy_json(p: Policy, tags: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#" + TYPES[p.kind],
        "id": p.id,
        "displayName": p.display_name,
        "description": p.description,
        "version": p.version,
        "createdDateTime": clock.iso(p.created_at),
        "lastModifiedDateTime": clock.iso(p.last_modified_at),
        "roleScopeTagIds": tags,
        "supportsScopeTags": True,
    }
    if p.kind == RESTRICTIONS:
        out.update({s.name: p.settings.get(s.name) for s in RESTRICTION_SETTINGS})
    elif p.kind == WIFI:
        out.update({name: p.settings.get(name) for name in WIFI_SETTINGS})
        out["wiFiSecurityType"] = p.settings.get("wiFiSecurityType") or "open"
        out["proxySettings"] = p.settings.get("proxySettings") or "none"
        # Write-only: the key is never read back.
        out["preSharedKey"] = None
        out["preSharedKeyIsSet"] = p.secret_encrypted is not None
    else:
        out.update({s.name: p.settings.get(s.name) for s in COMPLIANCE_SETTINGS})
        out["scheduledActionsForRule"] = [
            {
                "id": p.id,
                "ruleName": "PasswordRequired",
                "scheduledActionConfigurations": [
                    {"id": f"{p.id}_{n}", **a} for n, a in enumerate(p.scheduled_actions)
                ],
            }
        ]
    return out


def assignment_json(a: PolicyAssignment) -> dict[str, Any]:
    kind = "exclusionGroupAssignmentTarget" if a.exclude else "groupAssignmentTarget"
    return {
        "id": a.id,
        "target": {"@odata.type": f"#microsoft.graph.{kind}", "groupId": a.group_id},
    }


def status_json(policy: Policy, row: dict[str, Any]) -> dict[str, Any]:
    d: ManagedDevice = row["device"]
    return {
        "id": f"{d.id}_{policy.id}",
        "deviceId": d.id,
        "deviceDisplayName": d.device_name,
        "deviceModel": d.model,
        "platform": "androidAOSP",
        "userName": None,
        "userPrincipalName": None,
        "status": row["status"],
        "lastReportedDateTime": clock.iso(row["reported_at"]),
        "complianceGracePeriodExpirationDateTime": clock.iso(row["grace_end"]),
        # Beyond Graph: why, per setting, and which policy's value is in force.
        "settingStates": row["setting_states"],
    }


# --- collections ---------------------------------------------------------------------------


def _kinds(collection: str) -> tuple[str, ...]:
    return COLLECTIONS[collection]


def _input_for_create(collection: str, body: Any) -> Any:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    given = str(body.get("@odata.type") or "").lstrip("#")
    kind = KIND_OF_TYPE.get(given)
    if kind is None or kind not in _kinds(collection):
        allowed = ", ".join("#" + TYPES[k] for k in _kinds(collection))
        raise BadRequest(
            f"@odata.type must name the kind of policy to create: {allowed}.",
            target="@odata.type",
        )
    return kind, validated(service.input_model(kind), body)


def _register(collection: str) -> None:
    base = f"/{collection}"
    kinds = _kinds(collection)

    @router.get(base, name=f"list_{collection}")
    def list_policies(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
        """Policies the admin may see ($top, $skip, $select, $count)."""
        return page(
            session,
            service.policy_statement(actor, kinds),
            request.query_params,
            lambda rows: policies_json(session, rows),
            str(request.url.replace(query="")),
        )

    @router.post(base, status_code=201, name=f"create_{collection}")
    def create_policy(
        session: SessionDep,
        settings: SettingsDep,
        actor: ActorDep,
        body: Any = Body(...),
    ) -> dict[str, Any]:
        """Create a policy of the kind its @odata.type names."""
        actor.require(service.WRITE)
        kind, data = _input_for_create(collection, body)
        policy = service.create_policy(session, settings, actor, kind, data)
        return policies_json(session, [policy])[0]

    @router.get(base + "/{policy_id}", name=f"get_{collection}")
    def get_policy(policy_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
        """One policy; settings that are null are not configured."""
        return policies_json(session, [service.get_policy(session, actor, policy_id, kinds)])[0]

    @router.patch(base + "/{policy_id}", name=f"update_{collection}")
    def update_policy(
        policy_id: str,
        session: SessionDep,
        settings: SettingsDep,
        actor: ActorDep,
        body: Any = Body(...),
    ) -> dict[str, Any]:
        """Change a policy: a setting sent as null becomes not configured."""
        actor.require(service.WRITE)
        policy = service.get_policy(session, actor, policy_id, kinds, service.WRITE)
        data = validated(service.input_model(policy.kind), body)
        policy = service.update_policy(session, settings, actor, policy_id, kinds, data)
        return policies_json(session, [policy])[0]

    @router.delete(base + "/{policy_id}", status_code=204, name=f"delete_{collection}")
    def delete_policy(policy_id: str, session: SessionDep, actor: ActorDep) -> Response:
        """Delete a policy: devices stop receiving it at their next check-in."""
        service.delete_policy(session, actor, policy_id, kinds)
        return Response(status_code=204)

    @router.post(base + "/{policy_id}/assign", name=f"assign_{collection}")
    def assign(
        policy_id: str, body: Assign, session: SessionDep, actor: ActorDep
    ) -> dict[str, Any]:
        """Replace the policy's assignments: included and excluded groups."""
        rows = service.assign(session, actor, policy_id, kinds, body)
        seen = groups.visible_group_ids(session, actor, [a.group_id for a in rows])
        return {"value": [assignment_json(a) for a in rows if a.group_id in seen]}

    @router.get(base + "/{policy_id}/assignments", name=f"assignments_{collection}")
    def assignments(policy_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
        """The groups the policy is assigned to (and excluded from)."""
        policy = service.get_policy(session, actor, policy_id, kinds)
        rows = service.assignments_of(session, [policy.id])[policy.id]
        seen = groups.visible_group_ids(session, actor, [a.group_id for a in rows])
        return {"value": [assignment_json(a) for a in rows if a.group_id in seen]}

    @router.get(base + "/{policy_id}/deviceStatuses", name=f"statuses_{collection}")
    def device_statuses(policy_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
        """Per targeted device: the policy's status, with per-setting reasons."""
        policy = service.get_policy(session, actor, policy_id, kinds)
        rows = service.device_statuses(session, actor, policy)
        return {"value": [status_json(policy, r) for r in rows]}

    @router.get(base + "/{policy_id}/deviceStatusOverview", name=f"overview_{collection}")
    def overview(policy_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
        """Counts of the policy's device statuses."""
        policy = service.get_policy(session, actor, policy_id, kinds)
        counts = service.policy_status_counts(session, actor, policy)
        return {
            "id": policy.id,
            "pendingCount": counts.get("unknown", 0),
            "notApplicableCount": counts.get("notApplicable", 0),
            "successCount": counts.get("compliant", 0),
            "errorCount": counts.get("error", 0),
            "failedCount": counts.get("nonCompliant", 0),
            "conflictCount": counts.get("conflict", 0),
            "lastUpdateDateTime": clock.iso(clock.now()),
            "configurationVersion": policy.version,
        }


for _collection in COLLECTIONS:
    _register(_collection)


# --- tenant settings and fleet reports -------------------------------------------------------


def _settings_json(session: Session) -> dict[str, Any]:
    secure, days = service.compliance_settings(session)
    return {
        "deviceComplianceCheckinThresholdDays": days,
        "isScheduledActionEnabled": True,
        "secureByDefault": secure,
    }


@router.get("")
def get_device_management(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """deviceManagement with its compliance settings."""
    actor.require(service.READ)
    return {"id": "deviceManagement", "settings": _settings_json(session)}


@router.patch("")
def update_device_management(
    body: DeviceManagementUpdate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Change secureByDefault and deviceComplianceCheckinThresholdDays; every device is
    judged again at once."""
    service.update_compliance_settings(session, actor, body.settings)
    return {"id": "deviceManagement", "settings": _settings_json(session)}


@router.get("/deviceCompliancePolicyDeviceStateSummary")
def state_summary(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Fleet counts of devices by compliance state."""
    counts = service.state_summary(session, actor)
    return {
        "id": "deviceCompliancePolicyDeviceStateSummary",
        "compliantDeviceCount": counts["compliant"],
        "nonCompliantDeviceCount": counts["noncompliant"],
        "inGracePeriodCount": counts["inGracePeriod"],
        "unknownDeviceCount": counts["unknown"],
        "notApplicableDeviceCount": 0,
        "remediatedDeviceCount": 0,
        "errorDeviceCount": 0,
        "conflictDeviceCount": 0,
        "configManagerCount": 0,
    }


@router.get("/noncompliantDevicesToRetire")
def retire_list(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Beyond Graph: the retire list, devices a compliance policy's "retire" action put there."""
    return {
        "value": [
            {
                "id": a.id,
                "deviceId": d.id,
                "deviceName": d.device_name,
                "policyId": p.id,
                "policyName": p.display_name,
                "dueDateTime": clock.iso(a.due_at),
                "complianceState": d.compliance_state,
            }
            for a, d, p in service.retire_list(session, actor)
        ]
    }


def _device_states(
    session: Session, actor: Any, device_id: str, kinds: Sequence[str]
) -> dict[str, Any]:
    rows = service.device_policy_states(session, actor, device_id, kinds)
    return {
        "value": [
            {
                "id": r["policy"].id,
                "displayName": r["policy"].display_name,
                "@odata.type": "#microsoft.graph.deviceCompliancePolicyState"
                if r["policy"].kind == COMPLIANCE
                else "#microsoft.graph.deviceConfigurationState",
                "platformType": "androidAOSP",
                "state": r["status"],
                "version": r["policy"].version,
                "settingCount": len(r["setting_states"]),
                "settingStates": r["setting_states"],
                "lastReportedDateTime": clock.iso(r["reported_at"]),
            }
            for r in rows
        ]
    }


@router.get("/managedDevices/{device_id}/deviceCompliancePolicyStates")
def device_compliance_states(
    device_id: str, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """The compliance policies that apply to a device, each with the settings that failed."""
    return _device_states(session, actor, device_id, service.COMPLIANCES)


@router.get("/managedDevices/{device_id}/deviceConfigurationStates")
def device_configuration_states(
    device_id: str, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """The configuration policies that apply to a device, with what it reported per setting."""
    return _device_states(session, actor, device_id, service.CONFIGURATIONS)
