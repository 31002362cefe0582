"""Use cases of enrollment profiles and their tokens (SPEC.md §3, §4)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.errors import BadRequest, Conflict, Forbidden
from aospmdm.core.permissions import POLICY_AND_PROFILE_MANAGER, Permission
from aospmdm.core.security import decrypt, encrypt, hash_secret, new_secret
from aospmdm.devices import service as devices
from aospmdm.enrollment import device_names, provisioning
from aospmdm.enrollment.models import EnrollmentProfile, EnrollmentToken
from aospmdm.enrollment.schemas import MAX_TOKEN_SECONDS, ProfileCreate, ProfileUpdate
from aospmdm.tenant import access, audit
from aospmdm.tenant import service as tenant
from aospmdm.tenant.access import Actor

READ = "enrollmentProfiles.read"
WRITE = "enrollmentProfiles.write"
permissions.register(
    Permission(READ, "Read enrollment profiles, their tokens and QR codes."),
    Permission(
        WRITE,
        "Create, change and delete enrollment profiles; create, replace and revoke tokens.",
        roles=frozenset({POLICY_AND_PROFILE_MANAGER}),
    ),
)
CATEGORY = "Enrollment"
USERLESS = "corporateOwnedAOSPUserlessDevice"


# --- reading ------------------------------------------------------------------------------


def profile_statement(actor: Actor) -> Select[Any]:
    return access.visible(
        select(EnrollmentProfile).order_by(EnrollmentProfile.name_key),
        EnrollmentProfile,
        actor,
        READ,
    )


def get_profile(
    session: Session, actor: Actor, profile_id: str, perm: str = READ
) -> EnrollmentProfile:
    return access.get_visible(session, EnrollmentProfile, profile_id, actor, perm)


def find_profile(session: Session, actor: Actor, name_or_id: str) -> EnrollmentProfile:
    """A profile by id or by name (case-insensitive), for the CLI."""
    found: EnrollmentProfile | None = session.scalars(
        access.visible(
            select(EnrollmentProfile).where(
                or_(
                    EnrollmentProfile.id == name_or_id,
                    EnrollmentProfile.name_key == name_or_id.strip().lower(),
                )
            ),
            EnrollmentProfile,
            actor,
            READ,
        )
    ).first()
    if found is None:
        raise access.not_found(EnrollmentProfile, name_or_id)
    return found


def current_tokens(
    session: Session, profiles: list[EnrollmentProfile]
) -> dict[str, EnrollmentToken]:
    """The current token of each profile that has one, in one query."""
    ids = [p.current_token_id for p in profiles if p.current_token_id]
    if not ids:
        return {}
    tokens = session.scalars(select(EnrollmentToken).where(EnrollmentToken.id.in_(ids)))
    return {t.profile_id: t for t in tokens if t.profile_id}


def token_is_active(token: EnrollmentToken | None) -> bool:
    return token is not None and token.revoked_at is None and token.expires_at > clock.now()


@dataclass(frozen=True)
class Provisioning:
    """What the QR code of a profile's active token carries."""

    extras: dict[str, Any]
    text: str
    expires_at: datetime

    @property
    def qr_code_content(self) -> str:
        return provisioning.qr_code_content(self.text)


def provisioning_for(
    settings: Settings, profile: EnrollmentProfile, token: EnrollmentToken | None
) -> Provisioning | None:
    """The payload of the profile's token, or None when it has no active token."""
    if token is None or not token_is_active(token):
        return None
    key = settings.instance_key
    wifi = None
    if profile.configure_wifi and profile.wifi_ssid:
        password = (
            decrypt(key, profile.wifi_password_encrypted)
            if profile.wifi_password_encrypted
            else None
        )
        wifi = provisioning.Wifi(
            profile.wifi_ssid, profile.wifi_hidden, profile.wifi_security_type, password
        )
    extras = provisioning.payload(settings, profile.id, decrypt(key, token.secret_encrypted), wifi)
    return Provisioning(extras, provisioning.payload_text(extras), token.expires_at)


def active_provisioning(
    session: Session, settings: Settings, actor: Actor, profile_id: str
) -> Provisioning:
    """The payload for QR images and the export; a clear 409 when there is no active token."""
    profile = get_profile(session, actor, profile_id)
    token = current_tokens(session, [profile]).get(profile.id)
    found = provisioning_for(settings, profile, token)
    if found is None:
        state = "expired or was revoked" if token else "has not been created"
        raise Conflict(
            f"Profile '{profile.display_name}' has no active token (it {state}). "
            "Create one with createToken (console: Replace token).",
            code="noActiveToken",
        )
    return found


# --- validation ---------------------------------------------------------------------------

_HEX = set("0123456789abcdefABCDEF")


def _printable(text: str) -> bool:
    return all(32 <= ord(c) <= 126 for c in text)


def check_wifi_key(security: str, key: str | None) -> None:
    """WPA: 8-63 printable ASCII or 64 hex. WEP: 5 or 13 ASCII, or 10 or 26 hex."""
    if security == "none":
        return
    if not key:
        raise BadRequest(
            f"A {security.upper()} network needs its pre-shared key.", target="wifiPassword"
        )
    hexkey = all(c in _HEX for c in key)
    if security == "wpa":
        if (8 <= len(key) <= 63 and _printable(key)) or (len(key) == 64 and hexkey):
            return
        raise BadRequest(
            "A WPA key is 8 to 63 printable ASCII characters, or 64 hexadecimal digits.",
            target="wifiPassword",
        )
    if (len(key) in (5, 13) and _printable(key)) or (len(key) in (10, 26) and hexkey):
        return
    raise BadRequest(
        "A WEP key is 5 or 13 ASCII characters, or 10 or 26 hexadecimal digits.",
        target="wifiPassword",
    )


@dataclass
class _Wifi:
    configure: bool
    ssid: str | None
    hidden: bool
    security: str
    password: str | None


def _check_wifi(w: _Wifi) -> None:
    if not w.configure:
        return
    if not w.ssid or not w.ssid.strip():
        raise BadRequest(
            "An SSID is needed when configureWifi is true: the device joins this network to "
            "download the agent.",
            target="wifiSsid",
        )
    if len(w.ssid.encode()) > 32:
        raise BadRequest("An SSID is at most 32 bytes.", target="wifiSsid")
    check_wifi_key(w.security, w.password)


def _check_name(session: Session, name: str, except_id: str | None = None) -> str:
    if not name:
        raise BadRequest("A profile needs a name.", target="displayName")
    clash = session.scalars(
        select(EnrollmentProfile).where(EnrollmentProfile.name_key == name.lower())
    ).first()
    if clash is not None and clash.id != except_id:
        raise BadRequest(
            f"A profile named '{clash.display_name}' already exists; profile names are unique "
            "(dynamic groups select devices by them).",
            target="displayName",
        )
    return name.lower()


def check_expiry(expires_at: datetime, field: str = "tokenExpirationDateTime") -> datetime:
    if expires_at.tzinfo is None:
        raise BadRequest("Give the time with a time zone, e.g. 2026-12-31T00:00:00Z.", target=field)
    now = clock.now()
    if expires_at <= now:
        raise BadRequest("The token expiration must be in the future.", target=field)
    if expires_at > now + timedelta(seconds=MAX_TOKEN_SECONDS):
        raise BadRequest("A token can be valid for at most 90 days.", target=field)
    return expires_at


# --- changes ------------------------------------------------------------------------------


def _require_mdm_authority(session: Session) -> None:
    if not tenant.mdm_authority_is_set(session):
        raise Conflict(
            "Set the MDM authority first (Tenant admin > MDM authority, or POST "
            "/beta/organization/{id}/setMobileDeviceManagementAuthority); enrollment profiles "
            "need it.",
            code="mdmAuthorityNotSet",
        )


def create_profile(
    session: Session, settings: Settings, actor: Actor, data: ProfileCreate
) -> EnrollmentProfile:
    actor.require(WRITE)
    _require_mdm_authority(session)
    if data.enrollment_mode != USERLESS:
        raise BadRequest(
            "Only corporateOwnedAOSPUserlessDevice profiles are supported so far.",
            target="enrollmentMode",
        )
    name_key = _check_name(session, data.display_name)
    _check_wifi(
        _Wifi(
            data.configure_wifi,
            data.wifi_ssid,
            data.wifi_hidden,
            data.wifi_security_type,
            data.wifi_password,
        )
    )
    if data.device_name_template is not None:
        device_names.validate(data.device_name_template)
    expires = (
        check_expiry(data.token_expiration_date_time)
        if data.token_expiration_date_time is not None
        else None
    )
    now = clock.now()
    profile = EnrollmentProfile(
        display_name=data.display_name,
        name_key=name_key,
        description=data.description,
        enrollment_mode=data.enrollment_mode,
        configure_wifi=data.configure_wifi,
        wifi_ssid=data.wifi_ssid if data.configure_wifi else None,
        wifi_hidden=data.wifi_hidden,
        wifi_security_type=data.wifi_security_type,
        wifi_password_encrypted=_encrypted_key(
            settings, data.wifi_security_type, data.wifi_password
        ),
        device_name_template=data.device_name_template,
        token_usage_limit=data.token_usage_limit,
        created_at=now,
        last_modified_at=now,
    )
    session.add(profile)
    session.flush()
    tags = access.tag_new(
        session, EnrollmentProfile, profile.id, actor, WRITE, data.role_scope_tag_ids
    )
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Create enrollment profile",
        operation="Create",
        target_type="androidDeviceOwnerEnrollmentProfile",
        target_id=profile.id,
        target_name=profile.display_name,
        details={"roleScopeTagIds": tags, "wifiSsid": profile.wifi_ssid},
    )
    if expires is not None:
        _issue_token(session, settings, actor, profile, expires)
    return profile


def _encrypted_key(settings: Settings, security: str, key: str | None) -> str | None:
    if security == "none" or not key:
        return None
    return encrypt(settings.instance_key, key)


def update_profile(
    session: Session, settings: Settings, actor: Actor, profile_id: str, data: ProfileUpdate
) -> EnrollmentProfile:
    actor.require(WRITE)
    profile = get_profile(session, actor, profile_id, WRITE)
    given = data.given()
    changes: dict[str, Any] = {}
    if "display_name" in given:
        if data.display_name is None:
            raise BadRequest("A profile needs a name.", target="displayName")
        profile.name_key = _check_name(session, data.display_name, except_id=profile.id)
        if data.display_name != profile.display_name:
            changes["displayName"] = {"old": profile.display_name, "new": data.display_name}
            changes["devicesRenamed"] = devices.rename_profile(
                session, profile.id, data.display_name
            )
        profile.display_name = data.display_name
    if "description" in given:
        profile.description = data.description or ""
        changes["description"] = profile.description
    current_key = (
        decrypt(settings.instance_key, profile.wifi_password_encrypted)
        if profile.wifi_password_encrypted
        else None
    )
    password = current_key
    if "wifi_password" in given and data.wifi_password is not None:
        password = data.wifi_password or None
    wifi = _Wifi(
        configure=profile.configure_wifi if data.configure_wifi is None else data.configure_wifi,
        ssid=profile.wifi_ssid if "wifi_ssid" not in given else data.wifi_ssid,
        hidden=profile.wifi_hidden if data.wifi_hidden is None else data.wifi_hidden,
        security=(
            profile.wifi_security_type
            if data.wifi_security_type is None
            else data.wifi_security_type
        ),
        password=password,
    )
    _check_wifi(wifi)
    profile.configure_wifi = wifi.configure
    profile.wifi_ssid = wifi.ssid if wifi.configure else None
    profile.wifi_hidden = wifi.hidden
    profile.wifi_security_type = wifi.security
    if password != current_key or wifi.security == "none":
        profile.wifi_password_encrypted = _encrypted_key(settings, wifi.security, password)
    for field in ("configure_wifi", "wifi_ssid", "wifi_hidden", "wifi_security_type"):
        if field in given:
            changes[field] = given[field]
    if "wifi_password" in given and data.wifi_password is not None:
        changes["wifiPassword"] = "changed"
    if "device_name_template" in given:
        if data.device_name_template is not None:
            device_names.validate(data.device_name_template)
        profile.device_name_template = data.device_name_template
        changes["deviceNameTemplate"] = data.device_name_template
    if "token_usage_limit" in given:
        profile.token_usage_limit = data.token_usage_limit
        changes["tokenUsageLimit"] = data.token_usage_limit
        token = current_tokens(session, [profile]).get(profile.id)
        if token is not None:
            token.usage_limit = data.token_usage_limit
    if data.role_scope_tag_ids is not None:
        changes["roleScopeTagIds"] = access.set_tags(
            session, EnrollmentProfile, profile.id, actor, WRITE, data.role_scope_tag_ids
        )
    profile.last_modified_at = clock.now()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Update enrollment profile",
        operation="Patch",
        target_type="androidDeviceOwnerEnrollmentProfile",
        target_id=profile.id,
        target_name=profile.display_name,
        details=changes,
    )
    return profile


def delete_profile(session: Session, actor: Actor, profile_id: str) -> None:
    """Delete a profile. Its token is revoked (an old QR is refused as revoked); devices
    enrolled with it stay enrolled and keep its name."""
    actor.require(WRITE)
    profile = get_profile(session, actor, profile_id, WRITE)
    now = clock.now()
    for token in session.scalars(
        select(EnrollmentToken).where(
            EnrollmentToken.profile_id == profile.id, EnrollmentToken.revoked_at.is_(None)
        )
    ):
        token.revoked_at = now
    access.untag(session, EnrollmentProfile, profile.id)
    session.delete(profile)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Delete enrollment profile",
        operation="Delete",
        target_type="androidDeviceOwnerEnrollmentProfile",
        target_id=profile.id,
        target_name=profile.display_name,
    )


def _plain_reference() -> str:
    """tokenValue: a reference an admin can read out; it is not the secret and cannot enroll."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return "AOSP-" + "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _issue_token(
    session: Session,
    settings: Settings,
    actor: Actor,
    profile: EnrollmentProfile,
    expires_at: datetime,
) -> EnrollmentToken:
    now = clock.now()
    if profile.current_token_id:
        old = session.get(EnrollmentToken, profile.current_token_id)
        if old is not None and old.revoked_at is None:
            old.revoked_at = now
    secret = new_secret()
    token = EnrollmentToken(
        profile_id=profile.id,
        secret_hash=hash_secret(secret),
        secret_encrypted=encrypt(settings.instance_key, secret),
        value=_plain_reference(),
        created_at=now,
        expires_at=expires_at,
        usage_limit=profile.token_usage_limit,
    )
    session.add(token)
    session.flush()
    profile.current_token_id = token.id
    profile.last_modified_at = now
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Create enrollment token",
        operation="Action",
        target_type="androidDeviceOwnerEnrollmentProfile",
        target_id=profile.id,
        target_name=profile.display_name,
        details={"tokenValue": token.value, "tokenExpirationDateTime": clock.iso(expires_at)},
    )
    return token


def create_token(
    session: Session, settings: Settings, actor: Actor, profile_id: str, seconds: int
) -> EnrollmentToken:
    """Graph's createToken: a new token valid for ``seconds``, replacing the current one."""
    actor.require(WRITE)
    profile = get_profile(session, actor, profile_id, WRITE)
    if not 1 <= seconds <= MAX_TOKEN_SECONDS:
        raise BadRequest(
            f"tokenValidityInSeconds must be between 1 and {MAX_TOKEN_SECONDS} (90 days).",
            target="tokenValidityInSeconds",
        )
    expires_at = check_expiry(clock.now() + timedelta(seconds=seconds))
    return _issue_token(session, settings, actor, profile, expires_at)


def replace_token(
    session: Session, settings: Settings, actor: Actor, profile_id: str, expires_at: datetime
) -> EnrollmentToken:
    """A new token until ``expires_at`` (at most 90 days on): the old QR stops enrolling at
    once; devices already enrolled are not touched."""
    actor.require(WRITE)
    profile = get_profile(session, actor, profile_id, WRITE)
    return _issue_token(session, settings, actor, profile, check_expiry(expires_at))


def revoke_token(session: Session, actor: Actor, profile_id: str) -> None:
    """Expire the current token now. Devices already enrolled are not touched."""
    actor.require(WRITE)
    profile = get_profile(session, actor, profile_id, WRITE)
    token = current_tokens(session, [profile]).get(profile.id)
    now = clock.now()
    if token is None or token.revoked_at is not None:
        return  # nothing to revoke: no change, so nothing to audit
    token.revoked_at = now
    token.expires_at = min(token.expires_at, now)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Revoke enrollment token",
        operation="Action",
        target_type="androidDeviceOwnerEnrollmentProfile",
        target_id=profile.id,
        target_name=profile.display_name,
        details={"tokenValue": token.value},
    )


# --- enrolling a device (called by sync's enroll use case) ---------------------------------


def token_for_enrollment(
    session: Session, secret: str
) -> tuple[EnrollmentProfile, EnrollmentToken]:
    """The profile an enrollment secret enrolls into, or the refusal that says why not."""
    token = session.scalars(
        select(EnrollmentToken).where(EnrollmentToken.secret_hash == hash_secret(secret))
    ).first()
    if token is None:
        if session.scalars(
            select(EnrollmentToken.id).where(EnrollmentToken.value == secret.strip())
        ).first():
            raise BadRequest(
                "This is the plain-text token: it cannot enroll a device. Scan the profile's QR "
                "code, or use its exported JSON.",
                code="tokenIsPlainText",
            )
        raise Forbidden(
            "This enrollment token is not known. Scan the profile's current QR code.",
            code="tokenUnknown",
        )
    profile = session.get(EnrollmentProfile, token.profile_id) if token.profile_id else None
    if profile is None or token.revoked_at is not None or profile.current_token_id != token.id:
        raise Forbidden(
            "This enrollment token was revoked or replaced. Ask your admin for the profile's "
            "current QR code.",
            code="tokenRevoked",
        )
    if token.expires_at <= clock.now():
        raise Forbidden(
            f"This enrollment token expired at {clock.iso(token.expires_at)}. Ask your admin "
            "to replace the token.",
            code="tokenExpired",
        )
    return profile, token


def count_enrollment(session: Session, profile: EnrollmentProfile, token: EnrollmentToken) -> None:
    """Count one enrollment with the token, atomically within its usage limit."""
    result = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == token.id,
            or_(
                EnrollmentToken.usage_limit.is_(None),
                EnrollmentToken.usage_count < EnrollmentToken.usage_limit,
            ),
        )
        .values(usage_count=EnrollmentToken.usage_count + 1)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        raise Forbidden(
            f"This enrollment token reached its limit of {token.usage_limit} devices. Ask your "
            "admin to replace the token or raise the limit.",
            code="tokenUsageLimitReached",
        )
    session.execute(
        update(EnrollmentProfile)
        .where(EnrollmentProfile.id == profile.id)
        .values(enrolled_device_count=EnrollmentProfile.enrolled_device_count + 1)
        .execution_options(synchronize_session=False)
    )
