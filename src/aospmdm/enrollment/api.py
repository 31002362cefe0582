"""Admin API of enrollment profiles: /beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.odata import page
from aospmdm.enrollment import provisioning, service
from aospmdm.enrollment.models import EnrollmentProfile, EnrollmentToken
from aospmdm.enrollment.schemas import ODATA_TYPE, CreateToken, ProfileCreate, ProfileUpdate
from aospmdm.tenant import access
from aospmdm.tenant.deps import ActorDep, SessionDep, SettingsDep

router = APIRouter(prefix="/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles")


def profiles_json(
    session: Session,
    settings: Settings,
    profiles: Sequence[EnrollmentProfile],
    with_image: bool = False,
) -> list[dict[str, Any]]:
    """Graph's shape. The QR image is made only for a single profile: in lists it is null
    (a PNG per row would make listing slow); ask GET /{id} or /{id}/qrCode.png for it."""
    tags = access.tags_of(session, EnrollmentProfile, [p.id for p in profiles])
    tokens = service.current_tokens(session, list(profiles))
    return [_profile_json(settings, p, tokens.get(p.id), tags[p.id], with_image) for p in profiles]


def _profile_json(
    settings: Settings,
    p: EnrollmentProfile,
    token: EnrollmentToken | None,
    tags: list[str],
    with_image: bool,
) -> dict[str, Any]:
    prov = service.provisioning_for(settings, p, token)
    image = None
    if prov is not None and with_image:
        png = provisioning.qr_png(prov.text)
        image = {"type": "image/png", "value": base64.b64encode(png).decode()}
    return {
        "@odata.type": "#" + ODATA_TYPE,
        "id": p.id,
        "displayName": p.display_name,
        "description": p.description,
        "enrollmentMode": p.enrollment_mode,
        "enrollmentTokenType": "default",
        "createdDateTime": clock.iso(p.created_at),
        "lastModifiedDateTime": clock.iso(p.last_modified_at),
        "tokenValue": token.value if token else None,
        "tokenCreationDateTime": clock.iso(token.created_at) if token else None,
        "tokenExpirationDateTime": clock.iso(token.expires_at) if token else None,
        "tokenIsActive": prov is not None,
        "tokenUsageLimit": p.token_usage_limit,
        "enrolledDeviceCount": p.enrolled_device_count,
        "enrollmentTokenUsageCount": token.usage_count if token else 0,
        "qrCodeContent": prov.qr_code_content if prov else None,
        "qrCodeImage": image,
        "roleScopeTagIds": tags,
        "configureWifi": p.configure_wifi,
        "wifiSsid": p.wifi_ssid,
        "wifiHidden": p.wifi_hidden,
        "wifiSecurityType": p.wifi_security_type,
        # Write-only: the key is never read back through the API (it is in the QR itself).
        "wifiPassword": None,
        "wifiPasswordIsSet": p.wifi_password_encrypted is not None,
        "deviceNameTemplate": p.device_name_template,
    }


def _one(session: Session, settings: Settings, profile: EnrollmentProfile) -> dict[str, Any]:
    return profiles_json(session, settings, [profile], with_image=True)[0]


@router.get("")
def list_profiles(
    request: Request, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """Enrollment profiles the admin may see ($top, $skip, $select, $count)."""
    return page(
        session,
        service.profile_statement(actor),
        request.query_params,
        lambda rows: profiles_json(session, settings, rows),
        str(request.url.replace(query="")),
    )


@router.post("", status_code=201)
def create_profile(
    body: ProfileCreate, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """A new profile; with tokenExpirationDateTime, its first token too."""
    return _one(session, settings, service.create_profile(session, settings, actor, body))


@router.get("/{profile_id}")
def get_profile(
    profile_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """One profile, with its QR code while its token is active."""
    return _one(session, settings, service.get_profile(session, actor, profile_id))


@router.patch("/{profile_id}")
def update_profile(
    profile_id: str,
    body: ProfileUpdate,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> dict[str, Any]:
    """Change a profile (the token changes only through createToken / revokeToken)."""
    profile = service.update_profile(session, settings, actor, profile_id, body)
    return _one(session, settings, profile)


@router.delete("/{profile_id}", status_code=204)
def delete_profile(profile_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Delete a profile and revoke its token; its devices stay enrolled."""
    service.delete_profile(session, actor, profile_id)
    return Response(status_code=204)


@router.post("/{profile_id}/createToken", status_code=204)
def create_token(
    profile_id: str,
    body: CreateToken,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> Response:
    """Issue a new token valid for tokenValidityInSeconds (at most 90 days), replacing the
    current one."""
    service.create_token(session, settings, actor, profile_id, body.token_validity_in_seconds)
    return Response(status_code=204)


@router.post("/{profile_id}/revokeToken", status_code=204)
def revoke_token(profile_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Expire the current token now."""
    service.revoke_token(session, actor, profile_id)
    return Response(status_code=204)


@router.get("/{profile_id}/qrCode.png")
def qr_png(
    profile_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """The QR code as PNG (it encodes the provisioning JSON text)."""
    prov = service.active_provisioning(session, settings, actor, profile_id)
    return Response(provisioning.qr_png(prov.text), media_type="image/png", headers=NO_STORE)


@router.get("/{profile_id}/qrCode.svg")
def qr_svg(
    profile_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> Response:
    """The QR code as SVG."""
    prov = service.active_provisioning(session, settings, actor, profile_id)
    return Response(provisioning.qr_svg(prov.text), media_type="image/svg+xml", headers=NO_STORE)


@router.get("/{profile_id}/export")
def export(
    profile_id: str, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """Token > Export: the provisioning JSON as an object, and the token's expiry."""
    prov = service.active_provisioning(session, settings, actor, profile_id)
    return export_body(prov)


def export_body(prov: service.Provisioning) -> dict[str, Any]:
    return {"qrCodeContent": prov.extras, "expirationDate": clock.iso(prov.expires_at)}


# The QR carries a live enrollment secret and Wi-Fi key: no cache may keep it.
NO_STORE = {"Cache-Control": "no-store"}
