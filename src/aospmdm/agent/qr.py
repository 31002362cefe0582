"""The provisioning payload, read as the setup wizard reads it: from the QR code image (decoded
with zxing-cpp), or from the JSON export that staging tools take instead (docs/protocol.md §1).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import PIL.Image
import zxingcpp

from aospmdm import protocol as p

from . import AgentError


@dataclass(frozen=True)
class AdminExtras:
    """What the agent enrolls with, from the admin extras bundle."""

    server_url: str
    enrollment_token: str
    profile_id: str | None


@dataclass(frozen=True)
class Wifi:
    ssid: str
    hidden: bool
    security_type: str  # NONE | WPA | WEP
    password: str | None


def read(path: Path) -> dict[str, Any]:
    """The provisioning extras in a QR code image or a JSON export, checked to be usable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AgentError("qrUnreadable", f"cannot read {path}: {exc.strerror}") from exc
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        extras = _from_export(path, data)
    else:
        extras = _from_image(path, data)
    validate(extras)
    return extras


def validate(extras: dict[str, Any]) -> None:
    """Refuse a payload the agent could not enroll from, with what is wrong with it."""
    admin_extras(extras)
    wifi(extras)
    agent_package(extras)


def admin_extras(extras: dict[str, Any]) -> AdminExtras:
    bundle = extras.get(p.ADMIN_EXTRAS_BUNDLE)
    if not isinstance(bundle, dict):
        raise _invalid(f"it has no {p.ADMIN_EXTRAS_BUNDLE} object")
    values: dict[str, str] = {}
    for key in (p.SERVER_URL, p.ENROLLMENT_TOKEN):
        value = bundle.get(key)
        if not isinstance(value, str) or not value:
            raise _invalid(f"its admin extras bundle has no {key} string")
        values[key] = value
    server_url = values[p.SERVER_URL]
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(f"{p.SERVER_URL} is not an http(s) URL: {server_url!r}")
    profile_id = bundle.get(p.PROFILE_ID)
    if profile_id is not None and not isinstance(profile_id, str):
        raise _invalid(f"{p.PROFILE_ID} is not a string")
    return AdminExtras(server_url.rstrip("/"), values[p.ENROLLMENT_TOKEN], profile_id)


def wifi(extras: dict[str, Any]) -> Wifi | None:
    """The network the payload tells the device to join, if any."""
    ssid = extras.get(p.WIFI_SSID)
    if ssid is None:
        return None
    hidden = extras.get(p.WIFI_HIDDEN, False)
    security = extras.get(p.WIFI_SECURITY_TYPE, "NONE")
    password = extras.get(p.WIFI_PASSWORD)
    if not isinstance(ssid, str) or not ssid:
        raise _invalid(f"{p.WIFI_SSID} is not a network name")
    if not isinstance(hidden, bool):
        raise _invalid(f"{p.WIFI_HIDDEN} is not true or false")
    if security not in ("NONE", "WPA", "WEP"):
        raise _invalid(f"{p.WIFI_SECURITY_TYPE} is not NONE, WPA or WEP: {security!r}")
    if security != "NONE" and not isinstance(password, str):
        raise _invalid(f"the {security} network {ssid!r} comes without a password")
    return Wifi(ssid, hidden, security, password if isinstance(password, str) else None)


def agent_package(extras: dict[str, Any]) -> str:
    """The agent's package, from its admin component (``package/.Class``)."""
    component = extras.get(p.ADMIN_COMPONENT)
    if not isinstance(component, str) or "/" not in component:
        raise _invalid(f"{p.ADMIN_COMPONENT} is not a package/class component name")
    return component.split("/", 1)[0]


def _invalid(reason: str) -> AgentError:
    return AgentError("invalidQrCode", f"not an aospmdm provisioning payload: {reason}")


def _from_image(path: Path, data: bytes) -> dict[str, Any]:
    try:
        image = PIL.Image.open(io.BytesIO(data))
        image.load()
    except (OSError, PIL.Image.DecompressionBombError) as exc:
        raise AgentError(
            "qrUnreadable", f"{path} is neither an image nor a JSON export: {exc}"
        ) from exc
    found = [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    if not found:
        raise AgentError("qrUnreadable", f"no QR code found in {path}")
    if len(found) > 1:
        raise AgentError("qrUnreadable", f"{path} holds {len(found)} QR codes; expected one")
    try:
        # The code holds the UTF-8 bytes of the JSON text, without an ECI marker.
        payload = json.loads(found[0].bytes.decode("utf-8"))
    except ValueError as exc:
        raise _invalid(f"the QR code in {path} does not hold a JSON object") from exc
    if not isinstance(payload, dict):
        raise _invalid(f"the QR code in {path} does not hold a JSON object")
    return payload


def _from_export(path: Path, data: bytes) -> dict[str, Any]:
    try:
        export = json.loads(data.decode("utf-8-sig"))
    except ValueError as exc:
        raise AgentError("qrUnreadable", f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(export, dict):
        raise _invalid(f"{path} does not hold a JSON object")
    if p.ADMIN_EXTRAS_BUNDLE in export:  # the payload itself, as the QR code holds it
        return export
    content = export.get("qrCodeContent")
    if isinstance(content, str):  # the admin API's form: base64 of the QR text
        try:
            content = json.loads(base64.b64decode(content, validate=True).decode("utf-8"))
        except (ValueError, binascii.Error) as exc:
            raise _invalid(f"qrCodeContent in {path} is not base64 of a JSON object") from exc
    if not isinstance(content, dict):
        raise _invalid(f"{path} has no qrCodeContent object (expected an aospmdm token export)")
    return content
