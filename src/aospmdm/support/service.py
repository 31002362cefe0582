"""Use cases of support: the logs devices upload, each found by its incident ID, downloaded
by admins through short-lived URLs, and pruned after the retention period."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.errors import BadRequest, DomainError, Forbidden, NotFound, PayloadTooLarge
from aospmdm.core.permissions import HELP_DESK_OPERATOR, Permission
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.support.models import LogUpload
from aospmdm.tenant import access, audit
from aospmdm.tenant.access import Actor

READ = devices.READ
# Logs can hold personal and operational data: reading that an upload exists is a device
# read, fetching its content is a permission of its own.
DOWNLOAD = "devices.logs.download"
permissions.register(
    Permission(
        DOWNLOAD,
        "Download the logs devices upload (they may hold personal or operational data).",
        roles=frozenset({HELP_DESK_OPERATOR}),
    )
)

CATEGORY = "Device"
COMPLETED = "completed"
EXPIRED = "expired"
CONTENT_TYPES = ("application/zip", "text/plain")
DOWNLOAD_URL_FOR = timedelta(minutes=10)
DOWNLOAD_PATH = "/beta/deviceManagement/logCollectionDownloads"

# Crockford's base32: no I, L, O or U, so an ID read out on the phone is not misheard.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 12  # 60 bits from the OS CSPRNG
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupportedMediaType"


# --- incident IDs --------------------------------------------------------------------------


def new_incident_id() -> str:
    """``XXXX-XXXX-XXXX``: 12 characters of Crockford base32 (60 bits), unguessable."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(ID_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, ID_LENGTH, 4))


def normalize_incident_id(text: str) -> str | None:
    """The stored form of an incident ID as a person typed it: any case, dashes and spaces
    optional, I and L read as 1, O as 0 (Crockford). None when it cannot be one."""
    raw = re.sub(r"[\s-]", "", text).upper().translate(_READ_AS)
    if len(raw) != ID_LENGTH or any(c not in ALPHABET for c in raw):
        return None
    return "-".join(raw[i : i + 4] for i in range(0, ID_LENGTH, 4))


# --- the log store -------------------------------------------------------------------------


def logs_dir(settings: Settings) -> Path:
    return settings.data_dir / "logs"


def file_path(settings: Settings, incident_id: str) -> Path:
    return logs_dir(settings) / incident_id


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _check_body(settings: Settings, raw: bytes, content_type: str) -> str:
    """The media type of an acceptable log body; refusals name what is wrong with it."""
    media = _media_type(content_type)
    if media not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Logs are uploaded as application/zip or text/plain, not "
            f"'{media or 'no Content-Type'}'.",
            target="Content-Type",
        )
    if len(raw) > settings.max_log_bytes:
        raise PayloadTooLarge(
            f"The logs are larger than {settings.max_log_bytes} bytes (AOSPMDM_MAX_LOG_BYTES).",
            target="body",
        )
    if not raw:
        raise BadRequest("The request body is empty: send the log file.", target="body")
    if media == "application/zip":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)):
                pass
        except (zipfile.BadZipFile, ValueError, EOFError):
            raise BadRequest(
                "The body is not a zip archive (Content-Type application/zip).",
                target="body",
                code="badZip",
            ) from None
    else:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                "The body is not UTF-8 text (Content-Type text/plain).",
                target="body",
                code="badText",
            ) from None
    return media


def _file_name(name: str | None, incident_id: str, media: str) -> str:
    """The device's file name, reduced to safe characters; else one made from the ID."""
    base = Path((name or "").replace("\\", "/")).name
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", base).strip("._")[:128]
    return clean or f"logs-{incident_id}.{'zip' if media == 'application/zip' else 'txt'}"


def _spool(settings: Settings, raw: bytes) -> Path:
    directory = logs_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".upload.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def receive(
    session: Session,
    settings: Settings,
    actor: Actor,
    device_id: str,
    device_name: str,
    raw: bytes,
    content_type: str,
    file_name: str | None,
) -> LogUpload:
    """Keep a device's uploaded logs under a new incident ID. A refusal leaves nothing: the
    file is moved into place last."""
    media = _check_body(settings, raw, content_type)
    incident_id = new_incident_id()
    while session.get(LogUpload, incident_id) is not None:  # 60 bits: practically never
        incident_id = new_incident_id()
    now = clock.now()
    upload = LogUpload(
        id=incident_id,
        device_id=device_id,
        device_name=device_name,
        status=COMPLETED,
        requested_at=now,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        content_type=media,
        file_name=_file_name(file_name, incident_id, media),
        expires_at=now + timedelta(days=settings.log_retention_days),
    )
    session.add(upload)
    session.flush()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Upload device logs",
        operation="Create",
        target_type="managedDevice",
        target_id=device_id,
        target_name=device_name,
        details={
            "incidentId": incident_id,
            "size": upload.size,
            "sha256": upload.sha256,
            "contentType": media,
            "fileName": upload.file_name,
        },
    )
    source = _spool(settings, raw)
    try:
        os.replace(source, file_path(settings, incident_id))
    finally:
        source.unlink(missing_ok=True)
    return upload


# --- reading ---------------------------------------------------------------------------------


def _check_device(session: Session, actor: Actor, device_id: str, perm: str) -> None:
    """The device must be visible to the actor for ``perm``. The logs of a device that is
    gone (deleted or wiped) have no scope tags left: only admins unscoped for ``perm``
    see them."""
    actor.require(perm)
    if "\x00" in device_id or len(device_id) > 64:
        raise access.not_found(ManagedDevice, device_id.replace("\x00", "")[:64])
    if session.get(ManagedDevice, device_id) is not None:
        access.get_visible(session, ManagedDevice, device_id, actor, perm)
    elif actor.scope(perm) is not None:
        raise access.not_found(ManagedDevice, device_id.replace("\x00", ""))


def logs_of_device(session: Session, actor: Actor, device_id: str) -> list[LogUpload]:
    """The device's log uploads, newest first (404 for a device out of scope, or one that
    never existed and left no logs)."""
    _check_device(session, actor, device_id, READ)
    rows = list(
        session.scalars(
            select(LogUpload)
            .where(LogUpload.device_id == device_id)
            .order_by(LogUpload.requested_at.desc(), LogUpload.id)
        )
    )
    if not rows and session.get(ManagedDevice, device_id) is None:
        raise access.not_found(ManagedDevice, device_id)
    return rows


def _not_found(incident_id: str) -> NotFound:
    return NotFound(
        f"No log upload with incident ID '{incident_id}' exists, or you may not see it."
    )


def find_incident(session: Session, actor: Actor, incident_id: str, perm: str = READ) -> LogUpload:
    """A log upload by its incident ID as a person typed it (any case, dashes optional);
    403 without the permission, 404 when missing or its device is out of scope."""
    actor.require(perm)
    key = normalize_incident_id(incident_id)
    upload = session.get(LogUpload, key) if key else None
    if upload is None:
        raise _not_found(incident_id.replace("\x00", "")[:64])
    try:
        _check_device(session, actor, upload.device_id, perm)
    except NotFound:
        raise _not_found(incident_id) from None
    return upload


# --- downloads -----------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.instance_key, salt="aospmdm.support.logDownload")


def _holder(actor: Actor) -> str:
    return actor.admin_id or actor.name


def create_download_url(
    session: Session, settings: Settings, actor: Actor, incident_id: str
) -> str:
    """A URL to the logs, valid for 10 minutes and only for this admin, who must still be
    signed in (Bearer token or console session) when fetching it."""
    upload = _downloadable(session, actor, incident_id)
    expires = clock.now() + DOWNLOAD_URL_FOR
    token = _serializer(settings).dumps(
        {"i": upload.id, "a": _holder(actor), "e": int(expires.timestamp())}
    )
    return f"{settings.public_url.rstrip('/')}{DOWNLOAD_PATH}/{token}"


def _downloadable(session: Session, actor: Actor, incident_id: str) -> LogUpload:
    upload = find_incident(session, actor, incident_id, DOWNLOAD)
    if upload.status != COMPLETED or upload.expires_at <= clock.now():
        raise NotFound(
            f"The logs of incident {upload.id} expired on {clock.iso(upload.expires_at)} "
            "and were deleted.",
            code="logsExpired",
        )
    return upload


@dataclass(frozen=True)
class Download:
    upload: LogUpload
    path: Path


def open_download(session: Session, settings: Settings, actor: Actor, token: str) -> Download:
    """The file a download URL stands for, fetched by the admin it was made for (audited).
    A forged URL is not found; an expired one, or another admin's, is refused."""
    try:
        claims: Any = _serializer(settings).loads(token)
        incident_id, holder, expires = str(claims["i"]), str(claims["a"]), int(claims["e"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound("No log download exists at this URL.") from None
    if clock.now().timestamp() >= expires:
        raise Forbidden(
            "This download URL expired: create a new one (createDownloadUrl).",
            code="downloadUrlExpired",
        )
    if holder != _holder(actor):
        raise Forbidden(
            "This download URL was made for another admin: create your own (createDownloadUrl).",
            code="downloadUrlNotYours",
        )
    # Checked again: the admin's roles may have changed since the URL was made.
    upload = _downloadable(session, actor, incident_id)
    path = file_path(settings, upload.id)
    if not path.is_file():
        raise NotFound(f"The file of incident {upload.id} is gone from the log store.")
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Download device logs",
        operation="Action",
        target_type="managedDevice",
        target_id=upload.device_id,
        target_name=upload.device_name,
        details={"incidentId": upload.id, "size": upload.size, "sha256": upload.sha256},
    )
    return Download(upload=upload, path=path)


# --- retention -----------------------------------------------------------------------------


def prune(session: Session, settings: Settings) -> None:
    """Periodic: delete the files of uploads past their expiry (the row stays, ``expired``,
    for another retention period, so the help desk sees the incident existed), then forget
    the rows of those expired that long ago."""
    now = clock.now()
    due = list(
        session.scalars(
            select(LogUpload).where(LogUpload.status == COMPLETED, LogUpload.expires_at <= now)
        )
    )
    for upload in due:
        upload.status = EXPIRED
        with contextlib.suppress(FileNotFoundError):
            file_path(settings, upload.id).unlink()
    session.execute(
        delete(LogUpload).where(
            LogUpload.status == EXPIRED,
            LogUpload.expires_at <= now - timedelta(days=settings.log_retention_days),
        )
    )


# --- Graph shape -----------------------------------------------------------------------------


def to_graph(u: LogUpload) -> dict[str, Any]:
    """Graph's deviceLogCollectionResponse, with a few properties beyond it."""
    return {
        "@odata.type": "#microsoft.graph.deviceLogCollectionResponse",
        "id": u.id,
        # Expired by time even before the hourly prune marks it so.
        "status": EXPIRED if u.expires_at <= clock.now() else u.status,
        "managedDeviceId": u.device_id,
        "requestedDateTimeUTC": clock.iso(u.requested_at),
        "receivedDateTimeUTC": clock.iso(u.requested_at),
        "expirationDateTimeUTC": clock.iso(u.expires_at),
        "initiatedByUserPrincipalName": None,
        "size": float(u.size),
        "sizeInKB": round(u.size / 1024, 3),
        "errorCode": 0,
        # Beyond Graph.
        "deviceName": u.device_name,
        "fileName": u.file_name,
        "contentType": u.content_type,
        "sha256": u.sha256,
    }
