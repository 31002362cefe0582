"""Talking to the server: enrollment, signed check-ins and command results
(docs/protocol.md).

Each exchange is built and its answer applied to the device here, once, for both the
synchronous client the CLI uses and the asynchronous calls the simulator makes. Tests point
either at an app in the same process by passing an httpx transport (or a ready client, such
as Starlette's TestClient).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from aospmdm import protocol as p

from . import DEFAULT_AGENT_VERSION, AgentError, actions, apps, qr, sessions
from .device import Device, SignedInUser, merged_apps, new_key, public_key_b64, version_code

ENROLL_PATH = "/device/v1/enroll"
CHECKIN_PATH = "/device/v1/checkin"
WAIT_PATH = "/device/v1/wait"
# The server holds a wait about a minute; the request may take this long before it is
# given up (and asked again).
WAIT_TIMEOUT_SECONDS = 90.0
RESULTS_PATH = "/device/v1/results"
TIMEOUT_SECONDS = 30.0
# After applying a policy the agent checks in again at once to report on it; if that answer
# brings yet another policy, again, up to this many times. A report still unsent after them
# travels with the next scheduled check-in.
MAX_POLICY_REPORTS = 3

_R = TypeVar("_R", bound=BaseModel)


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
        # The server holds the list sent with the enrollment; the first check-in sends the
        # whole list again, and later ones only what changed since the list it accepted.
        state.acked_apps_hash = p.installed_apps_hash(self.apps)
        state.acked_apps = None
        roles = {a.role: a.package_name for a in answer.required_apps}
        state.agent_package = roles.get("agent", self.agent_package)
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
            if app.package_name == state.agent_package:
                state.agent_version = app.version_name
        return answer


class Checkin:
    """One signed check-in: report the facts, the apps hash (with the changes to the list
    the server last accepted, or the whole list when the device does not know that one or
    the server asked for it), the policy version in force and any report on it not yet
    delivered, then apply the answer: the schedule, a new policy, any commands and app work.

    App work that needs a download is left in ``downloads``: the caller downloads each APK
    and hands it to ``installed``; ``results()`` is then the POST of all results (with those
    the device still owed). ``report_due`` says afterwards whether the device applied a
    policy whose report it should deliver now, with another check-in (``AgentClient.checkin``
    does)."""

    def __init__(self, device: Device):
        state = device.state
        if not state.enrolled or state.server_url is None:
            raise AgentError(
                "notEnrolled", "this device is not enrolled: enroll it first (aospmdm agent enroll)"
            )
        self.device = device
        self.apps_hash, apps, changes = device.inventory()
        self.sent_apps = apps is not None or changes is not None
        # The list the server holds once it accepts this check-in.
        self.apps_list = list(state.installed_apps)
        self.sent_report = device.report_to_send()
        agent_version = state.agent_version or DEFAULT_AGENT_VERSION
        request = p.CheckinRequest(
            agent_version=agent_version,
            facts=device.facts(),
            installed_apps_hash=self.apps_hash,
            installed_apps=apps,
            installed_apps_changes=changes,
            applied_policy_version=state.applied_policy_version,
            policy_report=self.sent_report,
        )
        self.request = request
        self.call = _signed(device, CHECKIN_PATH, request)
        # The results of the commands and app work the answer brings, to send at once, and
        # the installs to download first (``finish``).
        self.command_results: list[p.CommandResult] = []
        self.app_results: list[p.CommandResult] = []
        self.downloads: list[p.AppWork] = []

    def finish(self, response: httpx.Response) -> p.CheckinResponse:
        answer = _answer(response, 200, p.CheckinResponse)
        state = self.device.state
        if self.sent_apps and not answer.send_installed_apps:
            state.acked_apps_hash = self.apps_hash
            state.acked_apps = self.apps_list
        state.send_installed_apps = answer.send_installed_apps
        state.next_check_in_seconds = answer.next_check_in_seconds
        state.last_check_in_ms = int(time.time() * 1000)
        if self.sent_report is not None and self.sent_report is state.policy_report:
            state.policy_report_delivered = True
        if answer.policy is not None:
            self.device.apply_policy(answer.policy)
        self.command_results = actions.handle(self.device, answer.commands)
        self.app_results, self.downloads = apps.handle(self.device, answer.apps)
        return answer

    def installed(self, work: p.AppWork, download: apps.Download | apps.AppFailure) -> None:
        """Install one downloaded APK (or report its failed download)."""
        result = apps.install(self.device, work, download)
        if result is not None:
            self.app_results.append(result)

    def results(self) -> Results | None:
        """The POST of the results the answer's work produced, with the app results the
        device still owes (None when there are none)."""
        sent = {r.command_id for r in self.app_results}
        owed = [r for r in self.device.state.owed_app_results if r.command_id not in sent]
        results = [*self.command_results, *self.app_results, *owed]
        if not results:
            return None
        return Results(self.device, results[: Results.MAX])

    @property
    def report_due(self) -> bool:
        return self.device.report_to_send() is not None

    @property
    def closing(self) -> bool:
        """The agent downloaded its own update: it closes now (no further check-in)."""
        return self.device.state.pending_self_update is not None


class Results:
    """One signed POST of command results. Before it is sent, the device is saved: what the
    commands changed, the results kept for a command delivered again, and a wipe's pending
    marker. When the server has the results (a ``2xx``; for a wipe also ``401
    deviceUnknown``: it already removed the device), ``finish`` carries out a pending wipe.

    ``Results.owed(device)`` is the confirmation a wipe interrupted by a crash still owes."""

    MAX = 100  # results in one request

    def __init__(self, device: Device, results: list[p.CommandResult]):
        self.device = device
        self.results = results
        self.call = _signed(device, RESULTS_PATH, p.ResultsRequest(results=results))

    @classmethod
    def owed(cls, device: Device) -> Results | None:
        results = actions.wipe_results(device)
        return cls(device, results) if results else None

    def answered(self, commands: list[p.Command]) -> list[tuple[p.Command, p.CommandResult]]:
        """Each result with the command it answers."""
        by_id = {c.id: c for c in commands}
        return [(by_id[r.command_id], r) for r in self.results if r.command_id in by_id]

    def finish(self, response: httpx.Response) -> p.ResultsResponse | None:
        """The server's outcomes, or None when the device was wiped on a ``401
        deviceUnknown``."""
        wiping = self.device.state.pending_wipe is not None
        if wiping and response.status_code == 401 and _code(response) == "deviceUnknown":
            self.device.factory_reset()
            return None
        if not 200 <= response.status_code < 300:
            raise _refusal(response, 200)
        outcome = _answer(response, response.status_code, p.ResultsResponse)
        if wiping:
            self.device.factory_reset()
            return outcome
        # The server has the app results the device owed.
        sent = set(map(id, self.results))
        state = self.device.state
        state.owed_app_results = [r for r in state.owed_app_results if id(r) not in sent]
        return outcome


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
        # The command results the last ``checkin`` sent, with the command each answers.
        self.results: list[tuple[p.Command, p.CommandResult]] = []
        # The app work results the last ``checkin`` sent.
        self.app_results: list[p.CommandResult] = []

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
        """Check in and do the work the answer brings: carry out its commands and send their
        results at once (a wipe: confirm, then reset); apply a policy and report on it at
        once in further check-ins (at most ``MAX_POLICY_REPORTS``). The device is saved
        before each further request, so that a failed one leaves it with the work done and
        what it owes the server kept. Returns the last answer.

        A wipe left pending by an earlier run is finished first (``resume``); the check-in
        is then refused as ``notEnrolled``."""
        self.results = []
        self.app_results = []
        self.resume(device)
        apps.apply_self_update(device)
        exchange = Checkin(device)
        answer = self._finish(exchange)
        for _ in range(MAX_POLICY_REPORTS):
            if not exchange.report_due or exchange.closing:
                break
            device.save()
            exchange = Checkin(device)
            answer = self._finish(exchange)
        return answer

    def resume(self, device: Device) -> bool:
        """Finish a wipe that an earlier run confirmed (or was about to) but did not carry
        out: send its result again, then reset. True when it did."""
        owed = Results.owed(device)
        if owed is None:
            return False
        owed.finish(self._send(owed.call))
        return True

    def _finish(self, exchange: Checkin) -> p.CheckinResponse:
        answer = exchange.finish(self._send(exchange.call))
        for work in exchange.downloads:
            exchange.installed(work, self.download(exchange.device, work))
        results = exchange.results()
        exchange.device.save()
        if results is not None:
            results.finish(self._send(results.call))
            self.results += results.answered(answer.commands)
            self.app_results += [r for r in results.results if apps.is_app_work(r.command_id)]
        return answer

    def download(self, device: Device, work: p.AppWork) -> apps.Download | apps.AppFailure:
        """Download the APK of ``work`` (a signed GET from the device's server), checking
        its size and SHA-256 as it arrives."""
        try:
            sink = apps.Sink(device, work)
            url, headers = _download_request(device, work, sink)
            with self.http.stream("GET", url, headers=headers) as response:
                sink.start(response.status_code)
                for chunk in response.iter_bytes():
                    sink.write(chunk)
            return sink.finish()
        except apps.AppFailure as failure:
            return failure
        except (httpx.HTTPError, OSError) as exc:
            sink.abort()
            return apps.AppFailure(p.APP_DOWNLOAD_FAILED, f"The download failed: {exc}")

    def wait(self, device: Device) -> bool:
        """Keep the long poll open: True as soon as the server has work for the device
        (check in now), False when the wait ran out."""
        state = device.state
        if not state.enrolled or state.server_url is None:
            raise AgentError("notEnrolled", "this device is not enrolled: enroll it first")
        call = Call(
            "GET",
            state.server_url.rstrip("/") + WAIT_PATH,
            b"",
            device.signed_headers("GET", WAIT_PATH, b""),
        )
        try:
            response = self.http.request(
                call.method, call.url, headers=call.headers, timeout=WAIT_TIMEOUT_SECONDS
            )
        except httpx.TimeoutException:
            return False
        except httpx.HTTPError as exc:
            raise _unreachable(call, exc) from exc
        return _answer(response, 200, p.WaitResponse).work

    def upload_logs(
        self, device: Device, body: bytes, content_type: str, file_name: str | None = None
    ) -> p.LogUploadResponse:
        """Upload logs (the raw zip or UTF-8 text, signed as it is); the answer holds the
        incident ID the user gives the help desk."""
        # Header values are ASCII: other characters of the name are dropped.
        ascii_name = "".join(c for c in file_name or "" if c.isascii() and c.isprintable())
        extra = {p.HEADER_LOG_NAME: ascii_name} if ascii_name else {}
        call = _signed_body(device, p.LOGS_PATH, body, {"Content-Type": content_type, **extra})
        return _answer(self._send(call), 201, p.LogUploadResponse)

    # --- shared-device sessions (docs/protocol.md §14) ---------------------------------

    def sign_in(self, device: Device, upn: str, password: str) -> p.SessionResponse:
        """Sign a worker in on the device; it keeps the session (and its token). A new
        sign-in replaces the previous worker's session."""
        exchange = sessions.SignIn(device, upn, password)
        answer = _answer(self._send(Call(**vars(exchange.call))), 201, p.SessionResponse)
        exchange.finish(answer)
        return answer

    def sign_out(self, device: Device) -> SignedInUser | None:
        """Global sign-out: the session ends for every app; the device then forgets the
        worker (returned; None when no one was signed in)."""
        exchange = sessions.SignOut(device)
        response = self._send(Call(**vars(exchange.call)))
        if response.status_code != 204:
            raise _refusal(response, 204)
        return exchange.finish()

    def introspect(self, device: Device, token: str) -> p.IntrospectionResponse:
        """Ask the server whether a session token is active (as a participating app does,
        through the device)."""
        exchange = sessions.Introspect(device, token)
        return _answer(self._send(Call(**vars(exchange.call))), 200, p.IntrospectionResponse)

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


async def checkin_async(
    http: httpx.AsyncClient,
    device: Device,
    results: list[tuple[p.Command, p.CommandResult]] | None = None,
) -> p.CheckinResponse:
    """``AgentClient.checkin`` for the simulator's in-memory devices; the command results
    it sent are added to ``results``."""
    owed = Results.owed(device)
    if owed is not None:
        owed.finish(await _send_async(http, owed.call))
    apps.apply_self_update(device)
    sent = results if results is not None else []
    exchange = Checkin(device)
    answer = await _finish_async(http, exchange, sent)
    for _ in range(MAX_POLICY_REPORTS):
        if not exchange.report_due or exchange.closing:
            break
        exchange = Checkin(device)
        answer = await _finish_async(http, exchange, sent)
    return answer


async def _finish_async(
    http: httpx.AsyncClient, exchange: Checkin, sent: list[tuple[p.Command, p.CommandResult]]
) -> p.CheckinResponse:
    answer = exchange.finish(await _send_async(http, exchange.call))
    for work in exchange.downloads:
        exchange.installed(work, await _download_async(http, exchange.device, work))
    results = exchange.results()
    exchange.device.save()
    if results is not None:
        results.finish(await _send_async(http, results.call))
        sent += results.answered(answer.commands)
    return answer


async def _download_async(
    http: httpx.AsyncClient, device: Device, work: p.AppWork
) -> apps.Download | apps.AppFailure:
    try:
        sink = apps.Sink(device, work)
        url, headers = _download_request(device, work, sink)
        async with http.stream("GET", url, headers=headers) as response:
            sink.start(response.status_code)
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
        return sink.finish()
    except apps.AppFailure as failure:
        return failure
    except (httpx.HTTPError, OSError) as exc:
        sink.abort()
        return apps.AppFailure(p.APP_DOWNLOAD_FAILED, f"The download failed: {exc}")


def _download_request(
    device: Device, work: p.AppWork, sink: apps.Sink
) -> tuple[str, dict[str, str]]:
    """The URL and headers of an APK download: signed when it is the device's own server
    (the device never signs for another host), with ``Range`` to resume a partial file."""
    url = work.download_url or ""
    server = (device.state.server_url or "").rstrip("/")
    headers = {**sink.range_headers()}
    if server and (url == server or url.startswith(server + "/")):
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        version = device.state.agent_version or DEFAULT_AGENT_VERSION
        headers["User-Agent"] = _headers(device, version)["User-Agent"]
        headers.update(device.signed_headers("GET", path, b""))
    return url, headers


async def _send_async(http: httpx.AsyncClient, call: Call) -> httpx.Response:
    try:
        return await http.request(call.method, call.url, content=call.body, headers=call.headers)
    except httpx.HTTPError as exc:
        raise _unreachable(call, exc) from exc


def _json(message: p.Message) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_none=True).encode()


def _signed(device: Device, route: str, message: p.Message) -> Call:
    """A signed POST of ``message`` to ``route`` of the device's server (§4)."""
    state = device.state
    if state.server_url is None:
        raise AgentError("notEnrolled", "this device is not enrolled: run aospmdm agent enroll")
    url = state.server_url + route
    body = _json(message)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    version = state.agent_version or DEFAULT_AGENT_VERSION
    headers = {**_headers(device, version), **device.signed_headers("POST", path, body)}
    return Call("POST", url, body, headers)


def _signed_body(device: Device, route: str, body: bytes, headers: dict[str, str]) -> Call:
    """A signed POST of raw ``body`` bytes (not JSON) to ``route``, with extra ``headers``."""
    state = device.state
    if state.server_url is None:
        raise AgentError("notEnrolled", "this device is not enrolled: run aospmdm agent enroll")
    url = state.server_url + route
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    version = state.agent_version or DEFAULT_AGENT_VERSION
    signed = {**_headers(device, version), **headers, **device.signed_headers("POST", path, body)}
    return Call("POST", url, body, signed)


def _code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


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
