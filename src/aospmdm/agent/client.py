"""Talking to the server: enrollment and signed check-ins (docs/protocol.md).

Each exchange is built and its answer applied to the device here, once, for both the
synchronous client the CLI uses and the asynchronous calls the simulator makes. Tests point
either at an app in the same process by passing an httpx transport (or a ready client, such
as Starlette's TestClient).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from aospmdm import protocol as p

from . import DEFAULT_AGENT_VERSION, AgentError, qr
from .device import Device, merged_apps, new_key, public_key_b64, version_code

ENROLL_PATH = "/device/v1/enroll"
CHECKIN_PATH = "/device/v1/checkin"
TIMEOUT_SECONDS = 30.0
# After applying a policy the agent checks in again at once to report on it; if that answer
# brings yet another policy, again, up to this many times. A report still unsent after them
# travels with the next scheduled check-in.
MAX_POLICY_REPORTS = 3

_R = TypeVar("_R", bound=BaseModel)

CommandHandler = Callable[[Device, dict[str, object]], None]
# What the agent does for each command type it knows; it ignores the others, so that a
# server newer than the agent cannot stop it from checking in.
COMMAND_HANDLERS: dict[str, CommandHandler] = {}


@dataclass(frozen=True)
class Call:
    """One HTTP request, ready to send."""

    method: str
    url: str
    body: bytes
    headers: dict[str, str]


class Enroll:
    """Enrollment from a provisioning payload: make the key, present the token; on success,
    keep the device id, the Wi-Fi network joined and the key, and install and open the
    required apps.

    The device changes only when the server accepts it, so a refused enrollment leaves it
    (and its state directory) as it was; the caller saves it."""

    def __init__(self, device: Device, extras: dict[str, Any], agent_version: str):
        if device.state.enrolled:
            raise AgentError(
                "alreadyEnrolled",
                f"this device is already enrolled as {device.state.device_id}: "
                "factory-reset it before enrolling it again",
            )
        self.device = device
        self.agent_version = agent_version
        self.admin = qr.admin_extras(extras)
        self.wifi = qr.wifi(extras)
        self.key = new_key()
        # The setup wizard installed the agent before handing it the admin extras.
        self.agent_package = qr.agent_package(extras)
        agent = p.InstalledApp(
            package_name=self.agent_package,
            version_name=agent_version,
            version_code=version_code(agent_version),
            display_name="aospmdm agent",
        )
        self.apps = merged_apps(device.state.installed_apps, [agent])
        request = p.EnrollRequest(
            agent_version=agent_version,
            enrollment_token=self.admin.enrollment_token,
            profile_id=self.admin.profile_id,
            public_key=public_key_b64(self.key),
            facts=device.facts(),
            installed_apps=self.apps,
        )
        url = self.admin.server_url + ENROLL_PATH
        self.call = Call("POST", url, _json(request), _headers(device, agent_version))

    def finish(self, response: httpx.Response) -> p.EnrollResponse:
        answer = _answer(response, 201, p.EnrollResponse)
        device, state = self.device, self.device.state
        device.adopt_key(self.key)
        state.enrolled = True
        state.device_id = answer.device_id
        state.device_name = answer.device_name
        state.server_url = self.admin.server_url
        state.profile_id = self.admin.profile_id
        state.agent_version = self.agent_version
        state.wifi_ssid = self.wifi.ssid if self.wifi else None
        state.next_check_in_seconds = answer.next_check_in_seconds
        state.installed_apps = self.apps
        # The server holds the list sent with the enrollment.
        state.acked_apps_hash = p.installed_apps_hash(self.apps)
        device.install(
            p.InstalledApp(
                package_name=a.package_name,
                version_name=a.version_name,
                version_code=a.version_code,
                display_name=a.display_name,
            )
            for a in answer.required_apps
        )
        # A newer agent among the required apps replaced this one: it reports its version.
        for app in state.installed_apps:
            if app.package_name == self.agent_package:
                state.agent_version = app.version_name
        return answer


class Checkin:
    """One signed check-in: report the facts, the apps hash (the app list only when the
    server lacks it), the policy version in force and any report on it not yet delivered,
    then apply the answer: the schedule, a new policy and any commands.

    ``report_due`` says afterwards whether the device applied a policy whose report it should
    deliver now, with another check-in (``AgentClient.checkin`` does)."""

    def __init__(self, device: Device):
        state = device.state
        if not state.enrolled or state.server_url is None:
            raise AgentError(
                "notEnrolled", "this device is not enrolled: enroll it first (aospmdm agent enroll)"
            )
        self.device = device
        self.apps_hash, apps = device.apps_to_send()
        self.sent_apps = apps is not None
        self.sent_report = device.report_to_send()
        agent_version = state.agent_version or DEFAULT_AGENT_VERSION
        request = p.CheckinRequest(
            agent_version=agent_version,
            facts=device.facts(),
            installed_apps_hash=self.apps_hash,
            installed_apps=apps,
            applied_policy_version=state.applied_policy_version,
            policy_report=self.sent_report,
        )
        url = state.server_url + CHECKIN_PATH
        body = _json(request)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            **_headers(device, agent_version),
            **device.signed_headers("POST", path, body),
        }
        self.call = Call("POST", url, body, headers)

    def finish(self, response: httpx.Response) -> p.CheckinResponse:
        answer = _answer(response, 200, p.CheckinResponse)
        state = self.device.state
        if self.sent_apps:
            state.acked_apps_hash = self.apps_hash
        state.send_installed_apps = answer.send_installed_apps
        state.next_check_in_seconds = answer.next_check_in_seconds
        state.last_check_in_ms = int(time.time() * 1000)
        if self.sent_report is not None and self.sent_report is state.policy_report:
            state.policy_report_delivered = True
        if answer.policy is not None:
            self.device.apply_policy(answer.policy)
        for command in answer.commands:
            handler = COMMAND_HANDLERS.get(str(command.get("type")))
            if handler is not None:
                handler(self.device, command)
        return answer

    @property
    def report_due(self) -> bool:
        return self.device.report_to_send() is not None


class AgentClient:
    """The synchronous client: ``with AgentClient() as c: c.enroll(device, extras)``.

    ``transport`` (e.g. ``httpx.MockTransport``) or ``http`` (a ready ``httpx.Client``, e.g.
    Starlette's ``TestClient``) send the requests somewhere other than the network."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ):
        self._owned = http is None
        self.http = http or httpx.Client(transport=transport, timeout=timeout)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def enroll(
        self, device: Device, extras: dict[str, Any], agent_version: str = DEFAULT_AGENT_VERSION
    ) -> p.EnrollResponse:
        exchange = Enroll(device, extras, agent_version)
        return exchange.finish(self._send(exchange.call))

    def checkin(self, device: Device) -> p.CheckinResponse:
        """Check in; when the answer brings a policy, apply it and report on it at once in
        further check-ins (at most ``MAX_POLICY_REPORTS``). The device is saved before each
        of those, so that a failed report leaves it with the policy applied and the report
        kept for the next check-in. Returns the last answer."""
        exchange = Checkin(device)
        answer = exchange.finish(self._send(exchange.call))
        for _ in range(MAX_POLICY_REPORTS):
            if not exchange.report_due:
                break
            device.save()
            exchange = Checkin(device)
            answer = exchange.finish(self._send(exchange.call))
        return answer

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self.http.request(call.method, call.url, content=call.body, headers=call.headers)
        except httpx.HTTPError as exc:
            raise _unreachable(call, exc) from exc


async def enroll_async(
    http: httpx.AsyncClient,
    device: Device,
    extras: dict[str, Any],
    agent_version: str = DEFAULT_AGENT_VERSION,
) -> p.EnrollResponse:
    exchange = Enroll(device, extras, agent_version)
    return exchange.finish(await _send_async(http, exchange.call))


async def checkin_async(http: httpx.AsyncClient, device: Device) -> p.CheckinResponse:
    """``AgentClient.checkin`` for the simulator's in-memory devices."""
    exchange = Checkin(device)
    answer = exchange.finish(await _send_async(http, exchange.call))
    for _ in range(MAX_POLICY_REPORTS):
        if not exchange.report_due:
            break
        exchange = Checkin(device)
        answer = exchange.finish(await _send_async(http, exchange.call))
    return answer


async def _send_async(http: httpx.AsyncClient, call: Call) -> httpx.Response:
    try:
        return await http.request(call.method, call.url, content=call.body, headers=call.headers)
    except httpx.HTTPError as exc:
        raise _unreachable(call, exc) from exc


def _json(message: p.Message) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_none=True).encode()


def _headers(device: Device, version: str) -> dict[str, str]:
    hw = device.hardware
    agent = f"aospmdm-agent/{version} (Android {hw.os_version}; {hw.manufacturer} {hw.model})"
    # Header values are ASCII; a model name need not be.
    return {
        "Content-Type": "application/json",
        "User-Agent": agent.encode("ascii", "replace").decode(),
    }


def _unreachable(call: Call, exc: httpx.HTTPError) -> AgentError:
    reason = str(exc) or type(exc).__name__
    return AgentError("networkError", f"cannot reach {call.url}: {reason}")


def _answer(response: httpx.Response, expected: int, model: type[_R]) -> _R:
    if response.status_code != expected:
        raise _refusal(response, expected)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise AgentError(
            "unexpectedResponse",
            f"the server's answer is not a valid {model.__name__}: {exc.errors()[0]['msg']}",
            response.status_code,
        ) from exc


def _refusal(response: httpx.Response, expected: int) -> AgentError:
    """The error a non-``expected`` answer stands for: the server's ``error.code`` and
    message, or what little can be said about an answer without them."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError):
        if status >= 500:
            code = "serverError"
        elif status < 400:
            code = "unexpectedResponse"
        else:
            code = "httpError"
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        detail = f": {text}" if text else ""
        return AgentError(
            code, f"the server answered {status} (expected {expected}){detail}", status
        )
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    if code == "agentUpdateRequired":
        minimum, url = details.get("minimumVersion"), details.get("downloadUrl")
        if minimum and str(minimum) not in message:
            message += f" (minimum version {minimum})"
        if url and str(url) not in message:
            message += f"; download: {url}"
    return AgentError(code, message or f"the server answered {status}", status, details)
