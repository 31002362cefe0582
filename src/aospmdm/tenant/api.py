"""Admin API of the tenant: organization, licenses, roles, role assignments, scope tags, audit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from aospmdm.core import clock, permissions
from aospmdm.core.errors import NotFound
from aospmdm.core.odata import page, parse_query
from aospmdm.tenant import access, audit, service
from aospmdm.tenant.deps import ActorDep, SessionDep
from aospmdm.tenant.models import AuditEvent, Organization, RoleAssignment, RoleDefinition, ScopeTag
from aospmdm.tenant.schemas import (
    OrganizationUpdate,
    RoleAssignmentCreate,
    RoleDefinitionCreate,
    RoleDefinitionUpdate,
    ScopeTagCreate,
    ScopeTagUpdate,
)

router = APIRouter(prefix="/beta")
DM = "/deviceManagement"
SKU_ID = "5e7d6a80-4ad2-4c1c-9e8f-a05a0c0de7a1"


def _list_base(request: Request) -> str:
    return str(request.url.replace(query=""))


# --- organization and licenses ----------------------------------------------------------


def organization_json(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "displayName": org.display_name,
        "mobileDeviceManagementAuthority": org.mdm_authority,
        "createdDateTime": clock.iso(org.created_at),
    }


@router.get("/organization")
def list_organization(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The one organization of this installation."""
    actor.require("organization.read")
    parse_query(request.query_params)
    return {"value": [organization_json(service.organization(session))]}


@router.get("/organization/{org_id}")
def get_organization(org_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The organization by id."""
    return organization_json(service.get_organization(session, actor, org_id))


@router.patch("/organization/{org_id}", status_code=204)
def update_organization(
    org_id: str, body: OrganizationUpdate, session: SessionDep, actor: ActorDep
) -> Response:
    """Rename the organization."""
    service.update_organization(session, actor, org_id, body.display_name)
    return Response(status_code=204)


@router.post("/organization/{org_id}/setMobileDeviceManagementAuthority", status_code=204)
def set_mdm_authority(org_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Set the MDM authority (once; repeating it is a no-op). Enrollment needs it."""
    service.set_mdm_authority(session, actor, org_id)
    return Response(status_code=204)


@router.get("/subscribedSkus")
def subscribed_skus(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Device licenses: the seats (prepaidUnits.enabled) and how many enrolled devices use."""
    actor.require("organization.read")
    parse_query(request.query_params)
    org = service.organization(session)
    return {
        "value": [
            {
                "id": f"{org.id}_{SKU_ID}",
                "skuId": SKU_ID,
                "skuPartNumber": "AOSPMDM_DEVICE",
                "appliesTo": "Company",
                "capabilityStatus": "Enabled",
                "consumedUnits": org.licenses_consumed,
                "prepaidUnits": {
                    "enabled": org.license_count,
                    "suspended": 0,
                    "warning": 0,
                    "lockedOut": 0,
                },
            }
        ]
    }


# --- permissions and role definitions ---------------------------------------------------


@router.get(DM + "/resourceOperations")
def resource_operations(request: Request, actor: ActorDep) -> dict[str, Any]:
    """Every permission a custom role can hold."""
    actor.require("roles.read")
    parse_query(request.query_params)
    return {
        "value": [
            {
                "id": p.name,
                "resourceName": p.name.split(".")[0],
                "actionName": p.name.split(".", 1)[1],
                "description": p.description,
            }
            for p in permissions.all_permissions()
        ]
    }


def role_json(role: RoleDefinition, tags: list[str]) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.deviceAndAppManagementRoleDefinition",
        "id": role.id,
        "displayName": role.display_name,
        "description": role.description,
        "isBuiltIn": role.is_built_in,
        "isBuiltInRoleDefinition": role.is_built_in,
        "rolePermissions": [
            {
                "resourceActions": [
                    {
                        "allowedResourceActions": access.role_permissions(role),
                        "notAllowedResourceActions": [],
                    }
                ]
            }
        ],
        "roleScopeTagIds": [] if role.is_built_in else tags,
        "createdDateTime": clock.iso(role.created_at),
        "lastModifiedDateTime": clock.iso(role.last_modified_at),
    }


def _roles_json(session: Session, roles: Sequence[RoleDefinition]) -> list[dict[str, Any]]:
    tags = access.tags_of(session, RoleDefinition, [r.id for r in roles])
    return [role_json(r, tags[r.id]) for r in roles]


def _role_out(session: Session, role: RoleDefinition) -> dict[str, Any]:
    return _roles_json(session, [role])[0]


@router.get(DM + "/roleDefinitions")
def list_roles(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Built-in and custom roles, with their permissions."""
    return page(
        session,
        service.role_statement(actor),
        request.query_params,
        lambda rows: _roles_json(session, rows),
        _list_base(request),
    )


@router.post(DM + "/roleDefinitions", status_code=201)
def create_role(body: RoleDefinitionCreate, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """A custom role from the permission list."""
    return _role_out(session, service.create_role(session, actor, body))


@router.get(DM + "/roleDefinitions/{role_id}")
def get_role(role_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One role."""
    return _role_out(session, service.get_role(session, actor, role_id))


@router.patch(DM + "/roleDefinitions/{role_id}")
def update_role(
    role_id: str, body: RoleDefinitionUpdate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Change a custom role (built-in roles cannot change)."""
    return _role_out(session, service.update_role(session, actor, role_id, body))


@router.delete(DM + "/roleDefinitions/{role_id}", status_code=204)
def delete_role(role_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Delete a custom role that has no assignments."""
    service.delete_role(session, actor, role_id)
    return Response(status_code=204)


# --- role assignments -------------------------------------------------------------------


def _assignments_json(session: Session, rows: Sequence[RoleAssignment]) -> list[dict[str, Any]]:
    details = service.assignment_details(session, rows)
    out = []
    for row in rows:
        members, tags = details[row.id]
        out.append(
            {
                "@odata.type": "#microsoft.graph.deviceAndAppManagementRoleAssignment",
                "id": row.id,
                "displayName": row.display_name,
                "description": row.description,
                "roleDefinitionId": row.role_definition_id,
                "members": [a.id for a in members],
                "memberUserPrincipalNames": [a.email for a in members],
                "roleScopeTagIds": tags,
                "createdDateTime": clock.iso(row.created_at),
            }
        )
    return out


@router.get(DM + "/roleAssignments")
def list_assignments(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Who holds which role, scoped to which tags."""
    return page(
        session,
        service.assignment_statement(actor),
        request.query_params,
        lambda rows: _assignments_json(session, rows),
        _list_base(request),
    )


@router.post(DM + "/roleAssignments", status_code=201)
def create_assignment(
    body: RoleAssignmentCreate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Assign a role to admins (ids or emails), scoped to tags (none: everything)."""
    row = service.create_role_assignment(session, actor, body)
    return _assignments_json(session, [row])[0]


@router.get(DM + "/roleAssignments/{assignment_id}")
def get_assignment(assignment_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One role assignment."""
    row = service.get_assignment(session, actor, assignment_id)
    return _assignments_json(session, [row])[0]


@router.delete(DM + "/roleAssignments/{assignment_id}", status_code=204)
def delete_assignment(assignment_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Remove a role assignment (never the last Intune Administrator one)."""
    service.delete_role_assignment(session, actor, assignment_id)
    return Response(status_code=204)


# --- scope tags -------------------------------------------------------------------------


def tag_json(tag: ScopeTag) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.roleScopeTag",
        "id": tag.id,
        "displayName": tag.display_name,
        "description": tag.description,
        "isBuiltIn": tag.is_built_in,
    }


@router.get(DM + "/roleScopeTags")
def list_tags(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Scope tags; Default (id "0") always exists."""
    return page(
        session,
        service.list_scope_tags(session, actor),
        request.query_params,
        lambda rows: [tag_json(t) for t in rows],
        _list_base(request),
    )


@router.post(DM + "/roleScopeTags", status_code=201)
def create_tag(body: ScopeTagCreate, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """A new scope tag."""
    return tag_json(service.create_scope_tag(session, actor, body))


@router.get(DM + "/roleScopeTags/{tag_id}")
def get_tag(tag_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One scope tag."""
    return tag_json(service.get_scope_tag(session, actor, tag_id))


@router.patch(DM + "/roleScopeTags/{tag_id}")
def update_tag(
    tag_id: str, body: ScopeTagUpdate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Rename or describe a scope tag."""
    return tag_json(service.update_scope_tag(session, actor, tag_id, body))


@router.delete(DM + "/roleScopeTags/{tag_id}", status_code=204)
def delete_tag(tag_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Delete a scope tag that nothing carries."""
    service.delete_scope_tag(session, actor, tag_id)
    return Response(status_code=204)


# --- audit ------------------------------------------------------------------------------


@router.get(DM + "/auditEvents")
def list_audit(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The audit log, newest first. $filter on activityDateTime, category, actor/…, $top."""
    return page(
        session,
        audit.list_statement(actor),
        request.query_params,
        lambda rows: [audit.to_graph(e) for e in rows],
        _list_base(request),
        fields=audit.FILTER_FIELDS,
    )


@router.get(DM + "/auditEvents/{event_id}")
def get_audit(event_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One audit event."""
    actor.require("audit.read")
    event = session.scalars(select(AuditEvent).where(AuditEvent.id == event_id)).first()
    if event is None:
        raise NotFound(f"No auditEvent with id '{event_id}' exists.")
    return audit.to_graph(event)
