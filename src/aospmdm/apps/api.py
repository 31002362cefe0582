"""Admin API of apps: /beta/deviceAppManagement/mobileApps (the catalog, APK uploads,
versions, assignments and install status)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Body, Request, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from aospmdm.apps import service
from aospmdm.apps.models import MobileApp, MobileAppAssignment, MobileAppVersion
from aospmdm.apps.schemas import AppAssign, AppUpdate
from aospmdm.core import clock
from aospmdm.core.errors import BadRequest
from aospmdm.core.odata import page
from aospmdm.core.schemas import validated
from aospmdm.groups import service as groups
from aospmdm.tenant import access
from aospmdm.tenant.deps import ActorDep, SessionDep, SettingsDep

PREFIX = "/beta/deviceAppManagement/mobileApps"
router = APIRouter(prefix=PREFIX)


# --- shapes -----------------------------------------------------------------------------------


def apps_json(session: Session, rows: Sequence[MobileApp]) -> list[dict[str, Any]]:
    ids = [a.id for a in rows]
    tags = access.tags_of(session, MobileApp, ids)
    versions = service.versions_of(session, ids)
    assigned = service.assignments_of(session, ids)
    return [app_json(a, tags[a.id], versions[a.id], bool(assigned[a.id])) for a in rows]


def version_json(v: MobileAppVersion) -> dict[str, Any]:
    return {
        "id": v.id,
        "versionName": v.version_name,
        "versionCode": v.version_code,
        "minSdkVersion": v.min_sdk,
        "size": v.size,
        "fileName": v.file_name or None,
        "sha256": v.sha256,
        "signingCertificateSha256": v.signing_cert_sha256,
        "warnings": v.warnings,
        "uploadedDateTime": clock.iso(v.uploaded_at),
        "uploadedBy": v.uploaded_by,
        # A required app's version as provisioned has no file here, only its download URL.
        "hasFile": v.sha256 is not None,
    }


def app_json(
    a: MobileApp, tags: list[str], versions: list[MobileAppVersion], assigned: bool
) -> dict[str, Any]:
    current = versions[0] if versions else None
    return {
        "@odata.type": service.GRAPH_TYPE,
        "id": a.id,
        "displayName": a.display_name,
        "description": a.description,
        "publisher": a.publisher,
        "createdDateTime": clock.iso(a.created_at),
        "lastModifiedDateTime": clock.iso(a.last_modified_at),
        "isAssigned": assigned or a.role is not None,
        "publishingState": "published",
        "uploadState": 1,
        "roleScopeTagIds": tags,
        "packageId": a.package_name,
        "versionName": current.version_name if current else None,
        "versionCode": str(current.version_code) if current else None,
        "fileName": (current.file_name or None) if current else None,
        "size": current.size if current else 0,
        "minimumSupportedOperatingSystem": _min_os(current.min_sdk if current else None),
        # Beyond Graph: the file's SHA-256 and signer, what the upload noticed, the role of a
        # required app, and every version (newest first).
        "sha256": current.sha256 if current else None,
        "signingCertificateSha256": current.signing_cert_sha256 if current else None,
        "minSdkVersion": current.min_sdk if current else None,
        "warnings": current.warnings if current else [],
        "isRequiredApp": a.role is not None,
        "role": a.role,
        "versions": [version_json(v) for v in versions],
    }


# Android API levels and the release each first shipped in (Graph's androidMinimumOperatingSystem
# names releases, e.g. v8_0).
_RELEASES = {
    21: "v5_0", 22: "v5_1", 23: "v6_0", 24: "v7_0", 25: "v7_1", 26: "v8_0", 27: "v8_1",
    28: "v9_0", 29: "v10_0", 30: "v11_0", 31: "v12_0", 32: "v12_0", 33: "v13_0",
    34: "v14_0", 35: "v15_0",
}  # fmt: skip


def _min_os(sdk: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"@odata.type": "#microsoft.graph.androidMinimumOperatingSystem"}
    if sdk is not None:
        eligible = [level for level in _RELEASES if level <= sdk]
        if eligible:
            out[_RELEASES[max(eligible)]] = True
    return out


def assignment_json(a: MobileAppAssignment) -> dict[str, Any]:
    kind = "exclusionGroupAssignmentTarget" if a.exclude else "groupAssignmentTarget"
    return {
        "@odata.type": "#microsoft.graph.mobileAppAssignment",
        "id": a.id,
        "intent": a.intent,
        "target": {"@odata.type": f"#microsoft.graph.{kind}", "groupId": a.group_id},
        "settings": None,
    }


# --- routes -------------------------------------------------------------------------------------


@router.get("")
def list_apps(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The catalog: the required apps and the uploaded ones the admin may see."""
    return page(
        session,
        service.app_statement(actor),
        request.query_params,
        lambda rows: apps_json(session, rows),
        str(request.url.replace(query="")),
    )


@router.post("", status_code=201)
async def upload_app(
    request: Request, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """Upload an APK as multipart/form-data (``file``; optional ``displayName``,
    ``description``, ``publisher``, ``roleScopeTagIds``). A package already in the catalog
    gets a new version, whose versionCode must be higher (409 otherwise)."""
    actor.require(service.WRITE)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest(
            "Upload the APK as multipart/form-data with the file in the 'file' field.",
            target="file",
            code="unsupportedMediaType",
        )
    form = await request.form(max_files=1, max_fields=110)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("Attach the APK in the 'file' field.", target="file")
        texts = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        unknown = set(texts) - {"displayName", "description", "publisher", "roleScopeTagIds"}
        if unknown:
            field = sorted(unknown)[0]
            raise BadRequest(f"Unknown field '{field}'.", target=field)
        data = AppUpdate.model_validate(
            {
                k: v
                for k, v in {
                    "displayName": form.get("displayName"),
                    "description": form.get("description"),
                    "publisher": form.get("publisher"),
                    "roleScopeTagIds": [
                        t for t in form.getlist("roleScopeTagIds") if isinstance(t, str)
                    ]
                    or None,
                }.items()
                if v is not None
            }
        )
        source = service.spool(settings, iter(lambda: upload.file.read(1 << 20), b""))
        result = service.upload(
            session,
            settings,
            actor,
            source,
            upload.filename or "",
            display_name=data.display_name,
            description=data.description,
            publisher=data.publisher,
            role_scope_tag_ids=data.role_scope_tag_ids,
        )
    finally:
        await form.close()
    return apps_json(session, [result.app])[0]


@router.get("/{app_id}")
def get_app(app_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return apps_json(session, [service.get_app(session, actor, app_id)])[0]


@router.patch("/{app_id}")
def update_app(
    app_id: str, session: SessionDep, actor: ActorDep, body: Any = Body(...)
) -> dict[str, Any]:
    """Change an app's name, description, publisher or scope tags."""
    data = validated(AppUpdate, body)
    changes = {AppUpdate.model_fields[k].alias or k: v for k, v in data.given().items()}
    app = service.update_app(session, actor, app_id, changes)
    return apps_json(session, [app])[0]


@router.delete("/{app_id}", status_code=204)
def delete_app(
    app_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """Delete an uploaded app with its files (devices keep what they installed)."""
    service.delete_app(session, settings, actor, app_id)
    return Response(status_code=204)


@router.post("/{app_id}/assign")
def assign(app_id: str, body: AppAssign, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Replace the app's assignments: required or uninstall, to groups (or excluded)."""
    wanted = [
        service.AssignmentInput(
            group_id=a.target.group_id,
            intent=a.intent,
            exclude=a.target.odata_type_.endswith("exclusionGroupAssignmentTarget"),
        )
        for a in body.mobile_app_assignments
    ]
    rows = service.assign(session, actor, app_id, wanted)
    seen = groups.visible_group_ids(session, actor, [a.group_id for a in rows])
    return {"value": [assignment_json(a) for a in rows if a.group_id in seen]}


@router.get("/{app_id}/assignments")
def assignments(app_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    app = service.get_app(session, actor, app_id)
    rows = service.assignments_of(session, [app.id])[app.id]
    seen = groups.visible_group_ids(session, actor, [a.group_id for a in rows])
    return {"value": [assignment_json(a) for a in rows if a.group_id in seen]}


@router.get("/{app_id}/deviceStatuses")
def device_statuses(app_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The app's install state on each device it applies to (that the admin may see)."""
    app = service.get_app(session, actor, app_id)
    return {"value": service.device_statuses(session, actor, app)}


@router.get("/{app_id}/installSummary")
def install_summary(app_id: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Counts of devices per install state (Graph's mobileAppInstallSummary, simplified)."""
    app = service.get_app(session, actor, app_id)
    counts = service.status_counts(service.device_statuses(session, actor, app))
    return {
        "id": app.id,
        "installedDeviceCount": counts["installed"],
        "failedDeviceCount": counts["failed"] + counts["uninstallFailed"],
        "pendingInstallDeviceCount": counts["pending"],
        "notInstalledDeviceCount": counts["notInstalled"],
    }
