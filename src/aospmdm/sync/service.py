"""The device protocol's use cases: enroll, authenticate a signed request, check in.

The check-in is the hot path: one short transaction that reads the device, records the nonce,
writes what changed in one UPDATE, and answers with the work due and the next check-in time.
"""

from __future__ import annotations

import functools
import random
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from aospmdm import protocol
from aospmdm.actions import service as actions
from aospmdm.apps import service as apps
from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.db import Executor, dialect_name
from aospmdm.core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unauthorized,
)
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.enrollment import device_names
from aospmdm.enrollment import service as enrollment
from aospmdm.enrollment.models import EnrollmentProfile
from aospmdm.policies import service as policies
from aospmdm.support import service as support
from aospmdm.sync.models import NONCES, RequestNonce
from aospmdm.tenant import access, audit
from aospmdm.tenant import service as tenant
from aospmdm.users import service as users

# --- the check-in schedule (Intune's) -------------------------------------------------------

FAST = (timedelta(minutes=15), 3 * 60)  # every 3 min for the first 15 min
MEDIUM = (timedelta(minutes=15) + timedelta(hours=2), 15 * 60)  # then every 15 min for 2 h
SLOW = 8 * 3600  # then about every 8 h
JITTER = 0.1


def next_check_in_seconds(
    enrolled_at: datetime, now: datetime, rng: random.Random | None = None
) -> int:
    """Seconds until the next scheduled check-in, with ±10% jitter so a fleet enrolled
    together does not check in together."""
    age = now - enrolled_at
    if age < FAST[0]:
        base = FAST[1]
    elif age < MEDIUM[0]:
        base = MEDIUM[1]
    else:
        base = SLOW
    r = (rng or _rng).uniform(-JITTER, JITTER)
    return max(1, round(base * (1 + r)))


_rng = random.Random()


# --- refusals ----------------------------------------------------------------------------


class UpgradeRequired(DomainError):
    status = 426
    code = "agentUpdateRequired"

    def __init__(self, settings: Settings, version: str, current: tuple[str, str]):
        name, url = current
        super().__init__(
            f"Agent {version} is older than the minimum {settings.minimum_agent_version}. "
            f"Install the agent {name} from {url}, then try again.",
        )
        self.minimum = settings.minimum_agent_version
        self.url = url

    def body(self) -> dict[str, object]:
        body = super().body()
        body["error"].update({"minimumVersion": self.minimum, "downloadUrl": self.url})
        return body


def check_agent_version(db: Executor, settings: Settings, version: str) -> None:
    """Refuse an agent below the minimum version, pointing at the catalog's current agent."""
    found = protocol.parse_version(version)
    minimum = protocol.parse_version(settings.minimum_agent_version)
    if found is None or minimum is None or found < minimum:
        raise UpgradeRequired(settings, version, apps.current_agent(db, settings))


def check_protocol(version: int) -> None:
    if version != protocol.PROTOCOL_VERSION:
        raise BadRequest(
            f"Protocol version {version} is not spoken here; this server speaks "
            f"{protocol.PROTOCOL_VERSION}.",
            target="protocolVersion",
            code="protocolVersionUnsupported",
        )


# --- required apps -------------------------------------------------------------------------


def required_apps(db: Executor, settings: Settings) -> list[protocol.RequiredApp]:
    """The agent, the authenticator and the company portal at their catalog versions."""
    return apps.required_apps(db, settings)


# --- enroll ------------------------------------------------------------------------------


def _checked_public_key(text: str) -> ec.EllipticCurvePublicKey:
    try:
        key = load_der_public_key(protocol.b64url_decode(text))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BadRequest(
            "publicKey must be an ECDSA P-256 public key (SubjectPublicKeyInfo DER, base64url).",
            target="publicKey",
        )
    return key


def enroll(
    session: Session, settings: Settings, body: protocol.EnrollRequest, address: str
) -> tuple[ManagedDevice, int]:
    """Enroll a device in one transaction: any refusal leaves nothing behind (no device, no
    license used, no usage counted). Returns the device and its next check-in delay."""
    check_protocol(body.protocol_version)
    check_agent_version(session, settings, body.agent_version)
    _checked_public_key(body.public_key)
    profile, token = enrollment.token_for_enrollment(session, body.enrollment_token)
    if body.profile_id is not None and body.profile_id != profile.id:
        raise BadRequest(
            "profileId is not the profile of this enrollment token; send the values from "
            "the same QR code.",
            target="profileId",
        )
    if not tenant.mdm_authority_is_set(session):
        raise Conflict(
            "The MDM authority is not set on this server; ask your admin to set it.",
            code="mdmAuthorityNotSet",
        )
    enrollment.count_enrollment(session, profile, token)
    if not tenant.consume_license(session):
        raise Conflict(
            "No device license is free: every license is in use. Ask your admin to add "
            "licenses or to remove devices that are no longer used.",
            code="noDeviceLicense",
        )
    now = clock.now()
    name = device_names.render(
        profile.device_name_template,
        serial=body.facts.serial_number,
        device_type=body.facts.model,
        enrolled_at=now,
        rand=lambda n: "".join(secrets.choice("0123456789") for _ in range(n)),
    )
    device = devices.enroll_device(
        session,
        name=name,
        profile_id=profile.id,
        profile_name=profile.display_name,
        profile_model=EnrollmentProfile,
        facts=body.facts,
        agent_version=body.agent_version,
        public_key=body.public_key,
        apps=body.installed_apps,
        now=now,
    )
    audit.record(
        session,
        device_actor(device, address),
        category="Device",
        activity="Enroll device",
        operation="Create",
        target_type="managedDevice",
        target_id=device.id,
        target_name=device.device_name,
        details={
            "enrollmentProfile": profile.display_name,
            "serialNumber": device.serial_number,
            "tokenValue": token.value,
        },
    )
    return device, next_check_in_seconds(device.enrolled_at, now)


def device_actor(device: ManagedDevice | devices.DeviceState, address: str | None) -> access.Actor:
    return access.Actor(
        name=f"device:{device.id}",
        type="device",
        address=address,
    )


# --- signed requests ---------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _public_key(text: str) -> ec.EllipticCurvePublicKey:
    # A parsed copy of a key the database holds, so a check-in need not parse DER again.
    return _checked_public_key(text)


def authenticate(
    db: Executor, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> devices.DeviceState:
    """The device a signed request comes from; stale, replayed and forged requests are
    refused (401) with a code that says which."""
    device_id = headers.get(protocol.HEADER_DEVICE, "")
    ts_text = headers.get(protocol.HEADER_TIMESTAMP, "")
    nonce = headers.get(protocol.HEADER_NONCE, "")
    signature = headers.get(protocol.HEADER_SIGNATURE, "")
    if not (device_id and ts_text and nonce and signature):
        raise Unauthorized(
            "This request must be signed: send the X-Aospmdm-Device, -Timestamp, -Nonce and "
            "-Signature headers (docs/protocol.md).",
            code="signatureMissing",
        )
    if (
        not (ts_text.isascii() and ts_text.isdigit())
        or len(ts_text) > 15
        or not protocol.NONCE_PATTERN.match(nonce)
        or len(device_id) > 64
    ):
        raise Unauthorized("The signature headers are malformed.", code="signatureInvalid")
    now = clock.now()
    skew = abs(now.timestamp() - int(ts_text) / 1000)
    if skew > protocol.MAX_CLOCK_SKEW_SECONDS:
        raise Unauthorized(
            f"The request's timestamp is more than {protocol.MAX_CLOCK_SKEW_SECONDS} s from "
            "the server's clock; check the device's time.",
            code="signatureStale",
        )
    device = devices.device_state(db, device_id) or _tombstoned(db, device_id)
    if device is None:
        raise Unauthorized(
            "This device is not enrolled here (it may have been deleted); enroll it again.",
            code="deviceUnknown",
        )
    try:
        _public_key(device.public_key).verify(
            protocol.b64url_decode(signature),
            protocol.signing_string(method, path, int(ts_text), nonce, body),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError):
        raise Unauthorized(
            "The request's signature does not match this device's key.",
            code="signatureInvalid",
        ) from None
    # One statement that both records the nonce and tells whether it was seen before.
    insert = pg_insert if dialect_name(db) == "postgresql" else sqlite_insert
    recorded = db.execute(
        insert(NONCES)
        .values(device_id=device.id, nonce=nonce, at=now)
        .on_conflict_do_nothing()
        .returning(NONCES.c.nonce)
    ).first()
    if recorded is None:
        raise Unauthorized(
            "This request was already received (replayed nonce).", code="signatureReplayed"
        )
    return device


def _tombstoned(db: Executor, device_id: str) -> devices.DeviceState | None:
    row = actions.tombstone(db, device_id)
    if row is None:
        return None
    return devices.DeviceState(
        id=row.device_id,
        device_name=row.device_name,
        enrolled_at=row.enrolled_at,
        agent_version="",
        public_key=row.public_key,
        installed_apps_hash=None,
        serial_number=row.serial_number,
        manufacturer="",
        model="",
        os_version="",
        security_patch_level="",
        battery_level=None,
        is_encrypted=None,
        is_rooted=None,
        passcode_type=None,
        passcode_length=None,
        lock_after_inactivity_minutes=None,
        applied_policy_version=None,
        last_sync_at=row.deleted_at,
        compliance_state="unknown",
        deleted=True,
    )


def prune_nonces(session: Session) -> int:
    """Forget nonces older than the skew window: their requests are refused as stale anyway."""
    cutoff = clock.now() - timedelta(seconds=2 * protocol.MAX_CLOCK_SKEW_SECONDS)
    result = session.execute(delete(RequestNonce).where(RequestNonce.at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# --- check in ----------------------------------------------------------------------------


def check_in(
    db: Executor,
    settings: Settings,
    device: devices.DeviceState,
    body: protocol.CheckinRequest,
) -> protocol.CheckinResponse:
    check_protocol(body.protocol_version)
    check_agent_version(db, settings, body.agent_version)
    if body.facts.serial_number != device.serial_number:
        raise BadRequest(
            "The serial number differs from the one this device enrolled with.",
            target="facts.serialNumber",
        )
    now = clock.now()
    if device.deleted:
        # Deleted by an admin: nothing is recorded; the device is only told to reset (its
        # factory reset is the one command it may still get).
        return protocol.CheckinResponse(
            server_time=clock.iso(now) or "",
            next_check_in_seconds=next_check_in_seconds(device.enrolled_at, now),
            commands=actions.open_commands(db, settings, device.id, now, actions=("delete",)),
        )
    missing = devices.record_check_in(
        db,
        device,
        facts=body.facts,
        agent_version=body.agent_version,
        apps_hash=body.installed_apps_hash,
        apps=body.installed_apps,
        applied_policy_version=body.applied_policy_version,
        now=now,
        changes=body.installed_apps_changes,
    )
    policy = policies.for_check_in(
        db,
        settings,
        device,
        body.facts,
        body.applied_policy_version,
        body.policy_report,
        now,
    )
    return protocol.CheckinResponse(
        server_time=clock.iso(now) or "",
        next_check_in_seconds=next_check_in_seconds(device.enrolled_at, now),
        send_installed_apps=missing,
        policy=policy,
        commands=actions.open_commands(db, settings, device.id, now),
        apps=apps.work_for(db, settings, device.id, now),
    )


def results(
    db: Executor,
    settings: Settings,
    device: devices.DeviceState,
    body: protocol.ResultsRequest,
    address: str | None,
) -> protocol.ResultsResponse:
    """The device's results for its commands and its app work, each recorded once."""
    actor = device_actor(device, address)
    app_results = [r for r in body.results if apps.is_app_result(r.command_id)]
    command_results = [r for r in body.results if not apps.is_app_result(r.command_id)]
    outcome_of: dict[int, str] = {}
    if command_results:
        done = actions.record_results(db, device.id, command_results, actor)
        outcome_of.update(zip(map(id, command_results), done, strict=True))
    if app_results and not device.deleted:
        done = apps.record_results(db, settings, device.id, app_results, actor)
        outcome_of.update(zip(map(id, app_results), done, strict=True))
    return protocol.ResultsResponse(
        outcomes=[outcome_of.get(id(r), "unknown") for r in body.results]
    )


def download(
    db: Executor, settings: Settings, device: devices.DeviceState, version_id: str
) -> tuple[Path, str, str]:
    """The file of an app version a device downloads: (path, file name, sha256). A deleted
    device gets nothing but its reset; others only the apps that apply to them."""
    found = None if device.deleted else apps.file_for_download(db, settings, device.id, version_id)
    if found is None:
        raise NotFound(f"No app file with id '{version_id}' exists.")
    return found


def upload_logs(
    session: Session,
    settings: Settings,
    device: devices.DeviceState,
    raw: bytes,
    content_type: str,
    file_name: str | None,
    address: str | None,
) -> protocol.LogUploadResponse:
    """Keep the logs a device uploads; answer the incident ID. A deleted device may only
    reset: its logs are refused."""
    if device.deleted:
        raise Forbidden(
            "This device was deleted by an admin: it may only factory-reset, and its logs "
            "are not accepted.",
            code="deviceDeleted",
        )
    upload = support.receive(
        session,
        settings,
        device_actor(device, address),
        device.id,
        device.device_name,
        raw,
        content_type,
        file_name,
    )
    return protocol.LogUploadResponse(
        incident_id=upload.id,
        size=upload.size,
        sha256=upload.sha256,
        expires_date_time=clock.iso(upload.expires_at) or "",
    )


# --- shared-device sessions (docs/protocol.md §14) -------------------------------------------


def sign_in(
    session: Session,
    settings: Settings,
    device: devices.DeviceState,
    body: protocol.SignInRequest,
    address: str | None,
) -> protocol.SessionResponse | DomainError:
    """A worker signs in on the device. A refusal is returned, not raised, so that the
    failure it records (for throttling) and its audit record are committed."""
    actor = device_actor(device, address)
    outcome = users.sign_in(
        session, settings, device, actor, body.user_principal_name, body.password
    )
    if outcome.refusal is not None:
        return outcome.refusal
    assert outcome.session is not None and outcome.user is not None and outcome.token
    return protocol.SessionResponse(
        session_token=outcome.token,
        user_id=outcome.user.id,
        user_principal_name=outcome.user.user_principal_name,
        display_name=outcome.user.display_name,
        expires_date_time=clock.iso(outcome.session.expires_at) or "",
    )


def sign_out(session: Session, device: devices.DeviceState, address: str | None) -> None:
    """Global sign-out: the device's session ends for every app on it."""
    users.sign_out(session, device, device_actor(device, address))


def introspect(session: Session, device: devices.DeviceState, token: str) -> dict[str, object]:
    """RFC 7662 introspection of a session token, asked by (an app on) the device it belongs
    to: a token of another device, or asked by a deleted device, is not active."""
    if device.deleted:
        return {"active": False}
    return users.introspect(session, device.id, token)
