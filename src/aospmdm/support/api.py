"""Admin API of device logs: Graph's logCollectionRequests of a managed device, their
download URLs, and (beyond Graph) the lookup of an incident ID across the fleet."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from aospmdm.core.errors import NotFound, Unauthorized
from aospmdm.support import service
from aospmdm.tenant.access import Actor
from aospmdm.tenant.deps import (
    COOKIE,
    ActorDep,
    SessionDep,
    SettingsDep,
    SignInRequired,
    current_actor,
    current_console,
)

router = APIRouter(prefix="/beta/deviceManagement")
DEVICE = "/managedDevices/{device_id}/logCollectionRequests"


def _of_device(session: Any, actor: Actor, device_id: str, incident_id: str) -> Any:
    upload = service.find_incident(session, actor, incident_id)
    if upload.device_id != device_id:
        raise NotFound(f"Device '{device_id}' has no log upload with incident ID '{incident_id}'.")
    return upload


@router.get(DEVICE)
def list_log_collection_requests(
    device_id: str, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """The device's log uploads, newest first (deviceLogCollectionResponse)."""
    return {
        "value": [service.to_graph(u) for u in service.logs_of_device(session, actor, device_id)]
    }


@router.get(DEVICE + "/{incident_id}")
def get_log_collection_request(
    device_id: str, incident_id: str, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """One log upload of the device, by its incident ID."""
    return service.to_graph(_of_device(session, actor, device_id, incident_id))


@router.post(DEVICE + "/{incident_id}/createDownloadUrl")
def create_download_url(
    device_id: str, incident_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """A URL to download the logs: valid 10 minutes, for this admin only, who must send
    their credentials (Bearer token or console session) when fetching it."""
    actor.require(service.DOWNLOAD)
    upload = _of_device(session, actor, device_id, incident_id)
    return {"value": service.create_download_url(session, settings, actor, upload.id)}


@router.get("/logCollectionRequests/{incident_id}")
def find_log_collection_request(
    incident_id: str, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Beyond Graph: a log upload by incident ID, whatever its device (the help desk's
    search); any case, dashes optional."""
    return service.to_graph(service.find_incident(session, actor, incident_id))


def _admin(request: Request, session: SessionDep, settings: SettingsDep) -> Actor:
    """The admin fetching a download: by Bearer token, else by console session."""
    if request.headers.get("authorization") or not request.cookies.get(COOKIE):
        return current_actor(request, session)
    try:
        return current_console(request, session, settings).actor
    except SignInRequired:
        raise Unauthorized(
            "Authentication needed: sign in to the console, or send 'Authorization: Bearer "
            "<token>'.",
            code="InvalidAuthenticationToken",
        ) from None


@router.get(service.DOWNLOAD_PATH.removeprefix("/beta/deviceManagement") + "/{token}")
def download(
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: Annotated[Actor, Depends(_admin)],
) -> Response:
    """The file behind a download URL (createDownloadUrl), as an attachment."""
    found = service.open_download(session, settings, actor, token)
    return FileResponse(
        found.path,
        media_type=found.upload.content_type,
        filename=found.upload.file_name,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Aospmdm-Sha256": found.upload.sha256,
        },
    )
