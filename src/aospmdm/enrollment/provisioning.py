"""The QR provisioning payload (Android device-owner provisioning extras, SPEC.md §4) and the
QR code that carries it. The QR encodes the JSON text itself: Android's setup wizard reads it.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import segno

from aospmdm import protocol as p
from aospmdm.core.config import Settings

_QR_SECURITY = {"none": "NONE", "wpa": "WPA", "wep": "WEP"}


@dataclass(frozen=True)
class Wifi:
    ssid: str
    hidden: bool
    security: str  # none | wpa | wep
    password: str | None


def signature_checksum(settings: Settings) -> str:
    """URL-safe base64 of the agent's signing-certificate SHA-256, padded or not."""
    raw = bytes.fromhex(settings.agent_signing_cert_sha256)
    text = base64.urlsafe_b64encode(raw).decode()
    return text if settings.agent_checksum_padding else text.rstrip("=")


def payload(settings: Settings, profile_id: str, secret: str, wifi: Wifi | None) -> dict[str, Any]:
    """The provisioning extras for one profile's current token."""
    extras: dict[str, Any] = {
        p.ADMIN_COMPONENT: settings.agent_component,
        p.PACKAGE_DOWNLOAD_LOCATION: settings.resolved_agent_apk_url,
        p.SIGNATURE_CHECKSUM: signature_checksum(settings),
        p.SKIP_ENCRYPTION: False,
        p.LEAVE_ALL_SYSTEM_APPS_ENABLED: True,
    }
    if wifi is not None:
        extras[p.WIFI_SSID] = wifi.ssid
        extras[p.WIFI_HIDDEN] = wifi.hidden
        extras[p.WIFI_SECURITY_TYPE] = _QR_SECURITY[wifi.security]
        if wifi.security != "none" and wifi.password:
            extras[p.WIFI_PASSWORD] = wifi.password
    extras[p.ADMIN_EXTRAS_BUNDLE] = {
        p.SERVER_URL: settings.public_url.rstrip("/"),
        p.ENROLLMENT_TOKEN: secret,
        p.PROFILE_ID: profile_id,
    }
    return extras


def payload_text(extras: dict[str, Any]) -> str:
    """The JSON text the QR code holds (compact: a smaller code scans more easily)."""
    return json.dumps(extras, separators=(",", ":"), ensure_ascii=False)


def qr_code_content(text: str) -> str:
    """Graph's qrCodeContent: base64 of the JSON text."""
    return base64.b64encode(text.encode()).decode()


def _qr(text: str) -> segno.QRCode:
    # UTF-8 always: left alone, segno would pick Latin-1 or Shift_JIS for some SSIDs, and
    # the setup wizard reads the bytes as UTF-8 JSON.
    return segno.make(text, error="m", micro=False, encoding="utf-8")


def qr_png(text: str) -> bytes:
    buf = io.BytesIO()
    _qr(text).save(buf, kind="png", scale=6, border=4)
    return buf.getvalue()


def qr_svg(text: str) -> bytes:
    buf = io.BytesIO()
    _qr(text).save(buf, kind="svg", scale=6, border=4, xmldecl=True, svgns=True)
    return buf.getvalue()
