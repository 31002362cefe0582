"""A minimal protocol client for server tests: generates a key, enrolls, signs requests.
(The reference agent in aospmdm.agent is the full device; this keeps tests of the server's
refusals free to send what a well-behaved agent never would.)"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aospmdm import protocol
from aospmdm.core import clock

APPS = [
    protocol.InstalledApp(
        package_name="com.realwear.launcher",
        version_name="2.1.0",
        version_code=210,
        display_name="Launcher",
    ),
]


def secret_of(profile: dict[str, Any]) -> str:
    extras = json.loads(base64.b64decode(profile["qrCodeContent"]))
    return str(extras[protocol.ADMIN_EXTRAS_BUNDLE][protocol.ENROLLMENT_TOKEN])


@dataclass
class Device:
    client: httpx.Client
    serial: str = field(default_factory=lambda: "SN" + os.urandom(4).hex().upper())
    agent_version: str = "24.9.0"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    device_id: str | None = None
    apps: list[protocol.InstalledApp] = field(default_factory=lambda: list(APPS))
    # The policy version this device has applied (sent with every check-in).
    applied: str | None = None

    def facts(self, **over: Any) -> protocol.DeviceFacts:
        values = {
            "serial_number": self.serial,
            "manufacturer": "RealWear",
            "model": "Navigator 500",
            "os_version": "11",
            "security_patch_level": "2024-05-05",
            "battery_level": 80,
            "is_encrypted": True,
            "is_rooted": False,
        } | over
        return protocol.DeviceFacts(**values)

    def public_key(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return protocol.b64url(der)

    def enroll(self, token: str, **over: Any) -> httpx.Response:
        body = protocol.EnrollRequest(
            agent_version=over.pop("agent_version", self.agent_version),
            enrollment_token=token,
            public_key=over.pop("public_key", self.public_key()),
            facts=self.facts(),
            installed_apps=self.apps,
        )
        payload = body.model_dump(by_alias=True, mode="json") | over
        r = self.client.post("/device/v1/enroll", json=payload)
        if r.status_code == 201:
            self.device_id = r.json()["deviceId"]
        return r

    def signed(
        self,
        path: str,
        body: bytes,
        *,
        ts: int | None = None,
        nonce: str | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        device_id: str | None = None,
        sign_body: bytes | None = None,
    ) -> httpx.Response:
        ts = ts if ts is not None else int(clock.now().timestamp() * 1000)
        nonce = nonce or protocol.b64url(os.urandom(16))
        text = protocol.signing_string(
            "POST", path, ts, nonce, body if sign_body is None else sign_body
        )
        sig = (key or self.key).sign(text, ec.ECDSA(hashes.SHA256()))
        headers = {
            protocol.HEADER_DEVICE: device_id or self.device_id or "",
            protocol.HEADER_TIMESTAMP: str(ts),
            protocol.HEADER_NONCE: nonce,
            protocol.HEADER_SIGNATURE: protocol.b64url(sig),
            "content-type": "application/json",
        }
        return self.client.post(path, content=body, headers=headers)

    def signed_get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """A signed GET (the wait, app downloads)."""
        ts = int(clock.now().timestamp() * 1000)
        nonce = protocol.b64url(os.urandom(16))
        sig = self.key.sign(
            protocol.signing_string("GET", path, ts, nonce, b""), ec.ECDSA(hashes.SHA256())
        )
        signed = {
            protocol.HEADER_DEVICE: self.device_id or "",
            protocol.HEADER_TIMESTAMP: str(ts),
            protocol.HEADER_NONCE: nonce,
            protocol.HEADER_SIGNATURE: protocol.b64url(sig),
        }
        return self.client.get(path, headers=signed | (headers or {}))

    def checkin_body(
        self,
        send_apps: bool = False,
        applied_policy_version: str | None = None,
        policy_report: protocol.PolicyReport | None = None,
        **facts: Any,
    ) -> bytes:
        req = protocol.CheckinRequest(
            agent_version=self.agent_version,
            facts=self.facts(**facts),
            installed_apps_hash=protocol.installed_apps_hash(self.apps),
            installed_apps=self.apps if send_apps else None,
            applied_policy_version=applied_policy_version,
            policy_report=policy_report,
        )
        return req.model_dump_json(by_alias=True).encode()

    def checkin(self, send_apps: bool = False, **kw: Any) -> httpx.Response:
        body = self.checkin_body(
            send_apps,
            kw.pop("applied_policy_version", self.applied),
            kw.pop("policy_report", None),
            **kw.pop("facts", {}),
        )
        return self.signed("/device/v1/checkin", body, **kw)


def results(device: Device, *pairs: tuple[str, str]) -> httpx.Response:
    """POST signed results: (command id, status) pairs."""
    body = protocol.ResultsRequest(
        results=[protocol.CommandResult(command_id=c, status=st) for c, st in pairs]  # type: ignore[arg-type]
    )
    return device.signed("/device/v1/results", body.model_dump_json(by_alias=True).encode())


def now_ms() -> int:
    return int(time.time() * 1000)
