"""Admin API of device groups: /beta/groups (Graph's group)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.odata import Field, page
from aospmdm.devices.api import devices_json
from aospmdm.groups import service
from aospmdm.groups.models import DeviceGroup
from aospmdm.groups.schemas import ODATA_TYPE, Evaluate, GroupCreate, GroupUpdate, MemberRef
from aospmdm.tenant import access
from aospmdm.tenant.deps import ActorDep, SessionDep

router = APIRouter(prefix="/beta/groups")
FILTER_FIELDS = {
    "displayName": Field(DeviceGroup.display_name),
    "mailNickname": Field(DeviceGroup.mail_nickname),
}


def groups_json(session: Session, rows: Sequence[DeviceGroup]) -> list[dict[str, Any]]:
    tags = access.tags_of(session, DeviceGroup, [g.id for g in rows])
    return [
        {
            "@odata.type": "#" + ODATA_TYPE,
            "id": g.id,
            "displayName": g.display_name,
            "description": g.description,
            "mailEnabled": False,
            "mailNickname": g.mail_nickname,
            "securityEnabled": True,
            "groupTypes": g.group_types,
            "membershipRule": g.membership_rule,
            "membershipRuleProcessingState": g.processing_state if g.is_dynamic else None,
            "roleScopeTagIds": tags[g.id],
            "createdDateTime": clock.iso(g.created_at),
            "renewedDateTime": clock.iso(g.last_modified_at),
        }
        for g in rows
    ]


@router.get("")
def list_groups(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Groups the admin may see ($filter on displayName, mailNickname; $top; $skip)."""
    return page(
        session,
        service.group_statement(actor),
        request.query_params,
        lambda rows: groups_json(session, rows),
        str(request.url.replace(query="")),
        fields=FILTER_FIELDS,
    )


@router.post("", status_code=201)
def create_group(body: GroupCreate, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """A new assigned (groupTypes []) or dynamic (["DynamicMembership"]) device group."""
    return groups_json(session, [service.create_group(session, actor, body)])[0]


@router.post("/evaluateDynamicMembership")
def evaluate_rule(body: Evaluate, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Whether a device matches a rule, with each expression's result."""
    return service.evaluate(session, actor, body)


@router.get("/{group_id}")
def get_group(group_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One group."""
    return groups_json(session, [service.get_group(session, actor, group_id)])[0]


@router.patch("/{group_id}")
def update_group(
    group_id: str, body: GroupUpdate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Change a group; a new rule or un-pausing recomputes its members at once."""
    return groups_json(session, [service.update_group(session, actor, group_id, body)])[0]


@router.delete("/{group_id}", status_code=204)
def delete_group(group_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Delete a group (its devices are untouched)."""
    service.delete_group(session, actor, group_id)
    return Response(status_code=204)


@router.get("/{group_id}/members")
def members(
    group_id: str, request: Request, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """The group's devices, in the managedDevice shape."""
    return page(
        session,
        service.members_statement(session, actor, group_id),
        request.query_params,
        lambda rows: devices_json(session, rows),
        str(request.url.replace(query="")),
    )


@router.post("/{group_id}/members/$ref", status_code=204)
def add_member(group_id: str, body: MemberRef, session: SessionDep, actor: ActorDep) -> Response:
    """Add a device to an assigned group: {"@odata.id": ".../managedDevices/{id}"}."""
    service.add_member(session, actor, group_id, service.device_id_of_ref(body.odata_id))
    return Response(status_code=204)


@router.delete("/{group_id}/members/{device_id}/$ref", status_code=204)
def remove_member(group_id: str, device_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Remove a device from an assigned group."""
    service.remove_member(session, actor, group_id, device_id)
    return Response(status_code=204)


@router.post("/{group_id}/evaluateDynamicMembership")
def evaluate_group(
    group_id: str, body: Evaluate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Whether a device matches this group's rule, with each expression's result."""
    return service.evaluate(session, actor, body, group_id)
