"""Admin API of the worker directory: /beta/users (Graph's user), the devices a user signed in
on, managedDevice.usersLoggedOn, and the remote sign-out of a shared device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response

from aospmdm.actions import service as actions
from aospmdm.core import clock
from aospmdm.core.odata import Field, page
from aospmdm.devices import api as devices_api
from aospmdm.devices import service as devices
from aospmdm.tenant.deps import ActorDep, SessionDep, SettingsDep
from aospmdm.users import service
from aospmdm.users.models import DirectoryUser
from aospmdm.users.schemas import UserCreate, UserUpdate

router = APIRouter(prefix="/beta/users")
device_actions = APIRouter(prefix="/beta/deviceManagement/managedDevices")

FILTER_FIELDS = {
    "userPrincipalName": Field(DirectoryUser.user_principal_name),
    "displayName": Field(DirectoryUser.display_name),
    "accountEnabled": Field(DirectoryUser.account_enabled, "bool"),
    "createdDateTime": Field(DirectoryUser.created_at, "datetime"),
}

devices_api.EXTRA_PROPERTIES.append(
    lambda session, ids: {
        d: {"usersLoggedOn": users} for d, users in service.users_logged_on(session, ids).items()
    }
)


def user_json(u: DirectoryUser) -> dict[str, Any]:
    return {
        "@odata.type": service.GRAPH_TYPE,
        "id": u.id,
        "userPrincipalName": u.user_principal_name,
        "displayName": u.display_name,
        "accountEnabled": u.account_enabled,
        "createdDateTime": clock.iso(u.created_at),
        # Write-only: Graph never returns the password either.
        "passwordProfile": None,
        "userType": "Member",
        # Beyond Graph: where the user comes from ("local": this directory).
        "source": u.source,
        "externalId": u.external_id,
    }


def _users_json(rows: Sequence[DirectoryUser]) -> list[dict[str, Any]]:
    return [user_json(u) for u in rows]


@router.get("")
def list_users(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The directory's users ($filter, $top, $skip, $select, $count)."""
    return page(
        session,
        service.user_statement(actor),
        request.query_params,
        _users_json,
        str(request.url.replace(query="")),
        fields=FILTER_FIELDS,
    )


@router.post("", status_code=201)
def create_user(body: UserCreate, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Add a worker; ``passwordProfile.password`` is required and never returned."""
    user = service.create_user(
        session,
        actor,
        user_principal_name=body.user_principal_name,
        display_name=body.display_name,
        password=body.password_profile.password,
        account_enabled=body.account_enabled,
    )
    return user_json(user)


@router.get("/{id_or_upn}")
def get_user(id_or_upn: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One user, by id or userPrincipalName."""
    return user_json(service.find_user(session, actor, id_or_upn))


@router.patch("/{id_or_upn}")
def update_user(
    id_or_upn: str, body: UserUpdate, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Change a user's name, display name, password or accountEnabled (false ends the
    user's sessions at once)."""
    given = body.given()
    changes = {k: v for k, v in given.items() if k in ("user_principal_name", "display_name")}
    if given.get("account_enabled") is not None:
        changes["account_enabled"] = given["account_enabled"]
    if body.password_profile is not None:
        changes["password"] = body.password_profile.password
    return user_json(service.update_user(session, actor, id_or_upn, changes))


@router.delete("/{id_or_upn}", status_code=204)
def delete_user(id_or_upn: str, session: SessionDep, actor: ActorDep) -> Response:
    """Remove a user; their open sessions end at once."""
    service.delete_user(session, actor, id_or_upn)
    return Response(status_code=204)


@router.get("/{id_or_upn}/managedDevices")
def user_devices(
    id_or_upn: str, request: Request, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """The devices (the admin may see) that the user has signed in on."""
    user = service.find_user(session, actor, id_or_upn)
    return page(
        session,
        service.devices_of_user(actor, user.id),
        request.query_params,
        lambda rows: devices_api.devices_json(session, rows),
        str(request.url.replace(query="")),
        fields=devices.FILTER_FIELDS,
    )


@device_actions.post("/{device_id}/" + service.SIGN_OUT_ACTION, status_code=204)
def sign_out_user(
    device_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """Sign the worker out of a shared device: the session (and its SSO token) ends at once;
    the device is told to forget the worker at its next check-in (devices.endSession)."""
    actions.request(session, settings, actor, device_id, service.SIGN_OUT_ACTION)
    return Response(status_code=204)
