"""Shared-device sessions on the agent (docs/protocol.md §14): a worker signs in with their
credentials and the device keeps the session token the participating apps use; sign-out
ends it for every app at once. An admin's remote sign-out arrives as the ``signOut``
command: the server already ended the session, the device forgets the worker.

Pure of the network, as ``actions.py``: each exchange builds its signed request; the client
sends it and hands the answer to ``finish``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from aospmdm import protocol as p

from . import DEFAULT_AGENT_VERSION, AgentError, actions
from .device import Device, SignedInUser


def _url_and_path(device: Device, route: str) -> tuple[str, str]:
    state = device.state
    if not state.enrolled or state.server_url is None:
        raise AgentError("notEnrolled", "this device is not enrolled: run aospmdm agent enroll")
    url = state.server_url.rstrip("/") + route
    parts = urlsplit(url)
    return url, parts.path + (f"?{parts.query}" if parts.query else "")


def _signed_call(device: Device, method: str, route: str, body: bytes, content_type: str) -> Call:
    url, path = _url_and_path(device, route)
    version = device.state.agent_version or DEFAULT_AGENT_VERSION
    hw = device.hardware
    agent = f"aospmdm-agent/{version} (Android {hw.os_version}; {hw.manufacturer} {hw.model})"
    headers = {
        "Content-Type": content_type,
        "User-Agent": agent.encode("ascii", "replace").decode(),
        **device.signed_headers(method, path, body),
    }
    return Call(method, url, body, headers)


@dataclass(frozen=True)
class Call:
    """One HTTP request, ready to send (as ``client.Call``, which imports this module)."""

    method: str
    url: str
    body: bytes
    headers: dict[str, str]


class SignIn:
    """POST /device/v1/sessions with the worker's credentials; on success the device keeps
    the session (its token too). A refusal leaves the device as it was."""

    def __init__(self, device: Device, upn: str, password: str):
        self.device = device
        body = p.SignInRequest(user_principal_name=upn, password=password)
        raw = body.model_dump_json(by_alias=True).encode()
        self.call = _signed_call(device, "POST", p.SESSIONS_PATH, raw, "application/json")

    def finish(self, answer: p.SessionResponse) -> SignedInUser:
        user = SignedInUser(
            user_id=answer.user_id,
            user_principal_name=answer.user_principal_name,
            display_name=answer.display_name,
            expires_date_time=answer.expires_date_time,
            session_token=answer.session_token,
        )
        self.device.state.signed_in_user = user
        return user


class SignOut:
    """DELETE /device/v1/sessions/current: global sign-out. The device forgets the worker
    once the server confirms (204)."""

    def __init__(self, device: Device):
        self.device = device
        self.call = _signed_call(device, "DELETE", p.CURRENT_SESSION_PATH, b"", "application/json")

    def finish(self) -> SignedInUser | None:
        user = self.device.state.signed_in_user
        self.device.state.signed_in_user = None
        return user


class Introspect:
    """What a participating app asks through the device (signed by it): is this session
    token active? RFC 7662, form-encoded."""

    def __init__(self, device: Device, token: str):
        raw = urlencode({"token": token}).encode()
        self.call = _signed_call(
            device, "POST", p.INTROSPECT_PATH, raw, "application/x-www-form-urlencoded"
        )


def sign_out_command(device: Device, command: p.Command) -> p.CommandResult:
    """The admin signed the worker out: the server ended the session already; the device
    forgets the worker (done also when no one was signed in)."""
    device.state.signed_in_user = None
    return p.CommandResult(command_id=command.id, status="done")


actions.COMMAND_HANDLERS[p.SIGN_OUT_COMMAND] = sign_out_command
