"""The reference agent and the simulator without the real server: a small fake server behind
httpx.MockTransport checks what the agent sends (schemas, signatures, nonces) and answers as
the protocol says."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import PIL.Image
import pytest
import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from typer.testing import CliRunner

from aospmdm import protocol as p
from aospmdm.agent import AgentError, qr
from aospmdm.agent.client import AgentClient, Checkin
from aospmdm.agent.device import KEY_FILE, SYSTEM_APPS, Device, Hardware
from aospmdm.agent.simulator import percentile, simulate
from aospmdm.cli import agent as cli_agent
from aospmdm.cli import app as cli_app

SERVER = "https://mdm.example.com"
TOKEN = "m9YDvINDoudlVeQx3PU9ulw4DPRx-utoQT9jQu-aYwc"
PROFILE = "655ed612-8fe7-42f2-a3c6-5d8c592e81d7"
SSID = "Bühne Café"  # non-ASCII: the QR code holds UTF-8 bytes
REQUIRED = [
    p.RequiredApp(
        package_name="org.aospmdm.agent",  # older than the agent's own version: no downgrade
        display_name="aospmdm agent",
        version_name="24.7.0",
        version_code=240700,
        download_url=f"{SERVER}/device/v1/apps/agent.apk",
        role="agent",
    ),
    p.RequiredApp(
        package_name="org.aospmdm.authenticator",
        display_name="Authenticator",
        version_name="6.2405.3379",
        version_code=2405337901,
        download_url=f"{SERVER}/device/v1/apps/authenticator.apk",
        role="authenticator",
    ),
    p.RequiredApp(
        package_name="org.aospmdm.portal",
        display_name="Company Portal",
        version_name="5.0.6281.0",
        version_code=5062810,
        download_url=f"{SERVER}/device/v1/apps/portal.apk",
        role="companyPortal",
    ),
]

runner = CliRunner()


def payload(**admin: Any) -> dict[str, Any]:
    bundle = {p.SERVER_URL: SERVER, p.ENROLLMENT_TOKEN: TOKEN, p.PROFILE_ID: PROFILE, **admin}
    return {
        p.ADMIN_COMPONENT: "org.aospmdm.agent/.AdminReceiver",
        p.PACKAGE_DOWNLOAD_LOCATION: f"{SERVER}/device/v1/agent.apk",
        p.SIGNATURE_CHECKSUM: "e00_bAoemy1cj056Gz1sni9aixxNfg86a5wtXo8aS3w",
        p.SKIP_ENCRYPTION: False,
        p.LEAVE_ALL_SYSTEM_APPS_ENABLED: True,
        p.WIFI_SSID: SSID,
        p.WIFI_HIDDEN: False,
        p.WIFI_SECURITY_TYPE: "WPA",
        p.WIFI_PASSWORD: "staging-key-1",
        p.ADMIN_EXTRAS_BUNDLE: {k: v for k, v in bundle.items() if v is not None},
    }


def qr_png(path: Path, text: str) -> Path:
    segno.make(text, error="m", micro=False, encoding="utf-8").save(
        path, kind="png", scale=6, border=4
    )
    return path


def compact(extras: dict[str, Any]) -> str:
    return json.dumps(extras, separators=(",", ":"), ensure_ascii=False)


class FakeServer:
    """The /device/v1 contract, as far as the agent can tell: it validates the bodies against
    the protocol schemas, verifies signatures and refuses replayed nonces."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self.enrolls: list[dict[str, Any]] = []
        self.checkins: list[dict[str, Any]] = []
        self.nonces: set[str] = set()
        self.ask_for_apps = False
        self.commands: list[dict[str, object]] = []
        self.results: list[dict[str, Any]] = []
        self.refusal: tuple[int, dict[str, Any]] | None = None
        self.required = list(REQUIRED)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.refusal is not None:
            status, error = self.refusal
            return httpx.Response(status, json={"error": error})
        body = json.loads(request.content)
        if request.url.path == "/device/v1/enroll":
            enroll = p.EnrollRequest.model_validate(body)
            key = load_der_public_key(p.b64url_decode(enroll.public_key))
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert isinstance(key.curve, ec.SECP256R1)
            device_id = str(uuid.uuid4())
            self.keys[device_id] = key
            self.enrolls.append(body)
            answer: p.Message = p.EnrollResponse(
                device_id=device_id,
                device_name=f"AndroidAOSP_{enroll.facts.serial_number}",
                server_time="2024-06-01T12:00:00Z",
                next_check_in_seconds=180,
                required_apps=self.required,
            )
            return httpx.Response(201, json=answer.model_dump(by_alias=True, mode="json"))
        refused = self.check_signature(request)
        if refused:
            return httpx.Response(401, json={"error": {"code": refused, "message": refused}})
        if request.url.path == "/device/v1/results":
            results = p.ResultsRequest.model_validate(body)
            self.results.append(body)
            return httpx.Response(200, json={"outcomes": ["recorded"] * len(results.results)})
        assert request.url.path == "/device/v1/checkin"
        p.CheckinRequest.model_validate(body)
        self.checkins.append(body)
        answer = p.CheckinResponse(
            server_time="2024-06-01T12:00:00Z",
            next_check_in_seconds=180,
            send_installed_apps=self.ask_for_apps,
            commands=self.commands,
        )
        return httpx.Response(200, json=answer.model_dump(by_alias=True, mode="json"))

    def check_signature(self, request: httpx.Request) -> str | None:
        h = request.headers
        key = self.keys.get(h.get(p.HEADER_DEVICE, ""))
        if key is None:
            return "deviceUnknown"
        nonce = h[p.HEADER_NONCE]
        timestamp = int(h[p.HEADER_TIMESTAMP])
        assert p.NONCE_PATTERN.match(nonce)
        if abs(time.time() * 1000 - timestamp) > p.MAX_CLOCK_SKEW_SECONDS * 1000:
            return "signatureStale"
        if nonce in self.nonces:
            return "signatureReplayed"
        signed = p.signing_string(
            request.method, request.url.raw_path.decode(), timestamp, nonce, request.content
        )
        try:
            key.verify(p.b64url_decode(h[p.HEADER_SIGNATURE]), signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "signatureInvalid"
        self.nonces.add(nonce)
        return None


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(server: FakeServer) -> AgentClient:
    return AgentClient(transport=httpx.MockTransport(server))


def enrolled(client: AgentClient, state_dir: Path | None = None) -> Device:
    device = Device.open(state_dir, serial="RW-1") if state_dir else Device(Hardware(serial="RW-1"))
    client.enroll(device, payload())
    device.save()
    return device


# --- the QR code and the JSON export ------------------------------------------------------


def test_reads_the_qr_png(tmp_path: Path) -> None:
    extras = payload()
    assert qr.read(qr_png(tmp_path / "qr.png", compact(extras))) == extras
    assert qr.wifi(extras) == qr.Wifi(SSID, False, "WPA", "staging-key-1")
    assert qr.admin_extras(extras) == qr.AdminExtras(SERVER, TOKEN, PROFILE)


def test_reads_the_json_export_and_its_variants(tmp_path: Path) -> None:
    extras = payload()
    forms = {
        "export.json": {"qrCodeContent": extras, "expirationDate": "2026-12-29T20:16:54Z"},
        # the admin API's qrCodeContent: base64 of the QR text
        "api.json": {"qrCodeContent": base64.b64encode(compact(extras).encode()).decode()},
        "payload.json": extras,
    }
    for name, content in forms.items():
        path = tmp_path / name
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
        assert qr.read(path) == extras, name


def test_a_payload_without_wifi_joins_none(tmp_path: Path) -> None:
    extras = {k: v for k, v in payload().items() if "WIFI" not in k}
    assert qr.wifi(extras) is None
    assert qr.read(qr_png(tmp_path / "qr.png", compact(extras))) == extras


def _error(path: Path) -> AgentError:
    with pytest.raises(AgentError) as caught:
        qr.read(path)
    assert caught.value.status is None
    return caught.value


def test_unusable_files_are_refused_clearly(tmp_path: Path) -> None:
    missing = _error(tmp_path / "nope.png")
    assert missing.code == "qrUnreadable" and "cannot read" in missing.message

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "neither an image nor a JSON export" in _error(text).message

    blank = tmp_path / "blank.png"
    PIL.Image.new("L", (200, 200), 255).save(blank)
    assert _error(blank).message == f"no QR code found in {blank}"

    not_json = qr_png(tmp_path / "url.png", "https://example.com")
    err = _error(not_json)
    assert err.code == "invalidQrCode" and "does not hold a JSON object" in err.message

    broken = tmp_path / "broken.json"
    broken.write_text('{"qrCodeContent": ')
    assert "is not valid JSON" in _error(broken).message

    other = tmp_path / "other.json"
    other.write_text('{"hello": "world"}')
    assert "has no qrCodeContent object" in _error(other).message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({p.ENROLLMENT_TOKEN: None}, f"has no {p.ENROLLMENT_TOKEN} string"),
        ({p.SERVER_URL: None}, f"has no {p.SERVER_URL} string"),
        ({p.ENROLLMENT_TOKEN: 42}, f"has no {p.ENROLLMENT_TOKEN} string"),
        ({p.SERVER_URL: "mdm.example.com"}, "is not an http(s) URL"),
        ({p.PROFILE_ID: 7}, f"{p.PROFILE_ID} is not a string"),
    ],
)
def test_admin_extras_must_be_usable(tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    extras = payload(**change)
    err = _error(qr_png(tmp_path / "qr.png", compact(extras)))
    assert err.code == "invalidQrCode"
    assert reason in err.message


def test_wifi_extras_must_be_usable(tmp_path: Path) -> None:
    extras = payload()
    del extras[p.WIFI_PASSWORD]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(extras))
    assert "comes without a password" in _error(path).message
    extras = {k: v for k, v in payload().items() if k != p.ADMIN_EXTRAS_BUNDLE}
    path.write_text(json.dumps({"qrCodeContent": extras}))
    assert f"has no {p.ADMIN_EXTRAS_BUNDLE} object" in _error(path).message


# --- enrollment, signing and the installed apps ---------------------------------------------


def test_enroll_sends_the_facts_and_a_fresh_p256_key(
    server: FakeServer, client: AgentClient
) -> None:
    device = enrolled(client)
    body = server.enrolls[0]
    assert body["enrollmentToken"] == TOKEN
    assert body["profileId"] == PROFILE
    assert body["protocolVersion"] == p.PROTOCOL_VERSION
    assert body["agentVersion"] == "24.9.0"
    assert body["facts"] == {
        "serialNumber": "RW-1",
        "manufacturer": "RealWear",
        "model": "Navigator 500",
        "osVersion": "11",
        "securityPatchLevel": "2024-05-05",
        "isEncrypted": True,
        "isRooted": False,
        # A fresh device has no screen lock.
        "passcodeType": "none",
        "passcodeLength": 0,
        "lockAfterInactivityMinutes": 0,
    }
    # The app list holds the system apps and the agent the setup wizard installed.
    packages = [a["packageName"] for a in body["installedApps"]]
    assert packages == [a.package_name for a in SYSTEM_APPS] + ["org.aospmdm.agent"]
    assert device.key is not None
    sent_key = load_der_public_key(p.b64url_decode(body["publicKey"]))
    assert sent_key.public_numbers() == device.key.public_key().public_numbers()
    # Another device gets another key.
    other = Device(Hardware(serial="RW-2"))
    client.enroll(other, payload())
    assert server.enrolls[1]["publicKey"] != body["publicKey"]


def test_enroll_installs_the_required_apps_and_joins_the_wifi(client: AgentClient) -> None:
    device = enrolled(client)
    status = device.status()
    assert status["enrolled"] is True
    assert status["serverUrl"] == SERVER
    assert status["wifiSsid"] == SSID
    apps = {a["packageName"]: a for a in status["installedApps"]}
    assert apps["org.aospmdm.authenticator"]["versionName"] == "6.2405.3379"
    assert apps["org.aospmdm.portal"]["versionCode"] == 5062810
    # The agent's own, newer version is not replaced by the older required one.
    assert apps["org.aospmdm.agent"] == {
        "packageName": "org.aospmdm.agent",
        "versionName": "24.9.0",
        "versionCode": 240900,
    }
    assert status["agentVersion"] == "24.9.0"


def test_a_newer_required_agent_replaces_the_running_one(
    server: FakeServer, client: AgentClient
) -> None:
    server.required[0] = server.required[0].model_copy(
        update={"version_name": "25.1.0", "version_code": 250100}
    )
    device = enrolled(client)
    client.checkin(device)
    assert server.checkins[-1]["agentVersion"] == "25.1.0"
    agent = [
        a for a in server.checkins[-1]["installedApps"] if a["packageName"] == "org.aospmdm.agent"
    ]
    assert [(a["versionName"], a["versionCode"]) for a in agent] == [("25.1.0", 250100)]


def test_checkin_signature_verifies_against_the_signing_string(
    server: FakeServer, client: AgentClient
) -> None:
    device = enrolled(client)
    exchange = Checkin(device)
    call = exchange.call
    h = call.headers
    assert h[p.HEADER_DEVICE] == device.state.device_id
    assert p.NONCE_PATTERN.match(h[p.HEADER_NONCE])
    assert abs(int(h[p.HEADER_TIMESTAMP]) - time.time() * 1000) < 5000
    signed = p.signing_string(
        "POST", "/device/v1/checkin", int(h[p.HEADER_TIMESTAMP]), h[p.HEADER_NONCE], call.body
    )
    public = server.keys[h[p.HEADER_DEVICE]]
    public.verify(p.b64url_decode(h[p.HEADER_SIGNATURE]), signed, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(
            p.b64url_decode(h[p.HEADER_SIGNATURE]), signed + b" ", ec.ECDSA(hashes.SHA256())
        )
    # And the fake server, which checks every check-in the same way, accepts it.
    answer = exchange.finish(client.http.request("POST", call.url, content=call.body, headers=h))
    assert answer.next_check_in_seconds == 180
    # Each request has its own nonce.
    client.checkin(device)
    assert len(server.nonces) == 2


def test_installed_apps_travel_only_when_changed_or_asked_for(
    server: FakeServer, client: AgentClient
) -> None:
    device = enrolled(client)

    def checkin() -> dict[str, Any]:
        client.checkin(device)
        return server.checkins[-1]

    # The required apps were installed after the enrollment sent its list.
    first = checkin()
    assert first["installedAppsHash"] == p.installed_apps_hash(device.state.installed_apps)
    assert len(first["installedApps"]) == len(SYSTEM_APPS) + len(REQUIRED)
    assert "installedApps" not in checkin()
    assert checkin()["installedAppsHash"] == first["installedAppsHash"]

    device.install(
        [p.InstalledApp(package_name="com.example.scanner", version_name="1.0", version_code=1)]
    )
    changed = checkin()
    assert changed["installedAppsHash"] != first["installedAppsHash"]
    # Only the change travels, against the list the server accepted.
    assert "installedApps" not in changed
    delta = changed["installedAppsChanges"]
    assert delta["baseHash"] == first["installedAppsHash"]
    assert [a["packageName"] for a in delta["upserted"]] == ["com.example.scanner"]
    assert "installedApps" not in checkin()

    # The server lost the list: it asks, and gets it once more.
    server.ask_for_apps = True
    assert "installedApps" not in checkin()
    server.ask_for_apps = False
    assert "installedApps" in checkin()
    assert "installedApps" not in checkin()


def test_a_refused_checkin_keeps_the_apps_unacknowledged(
    server: FakeServer, client: AgentClient
) -> None:
    device = enrolled(client)
    server.refusal = (401, {"code": "signatureStale", "message": "check the clock"})
    with pytest.raises(AgentError) as caught:
        client.checkin(device)
    assert (caught.value.code, caught.value.status) == ("signatureStale", 401)
    server.refusal = None
    client.checkin(device)
    assert "installedApps" in server.checkins[-1]


def test_unknown_commands_are_ignored(server: FakeServer, client: AgentClient) -> None:
    device = enrolled(client)
    server.commands = [{"type": "fromTheFuture", "id": "1"}]
    assert [c.id for c in client.checkin(device).commands] == ["1"]
    assert device.state.enrolled
    [posted] = server.results
    assert posted["results"] == [
        {"commandId": "1", "status": "notSupported", "message": posted["results"][0]["message"]}
    ]


# --- refusals --------------------------------------------------------------------------------


def test_refused_enrollment_names_the_code_and_changes_nothing(
    server: FakeServer, client: AgentClient, tmp_path: Path
) -> None:
    server.refusal = (
        426,
        {
            "code": "agentUpdateRequired",
            "message": "This agent is too old to enroll.",
            "minimumVersion": "24.7.0",
            "downloadUrl": f"{SERVER}/device/v1/agent.apk",
        },
    )
    device = Device.open(tmp_path / "dev")
    before = device.state.model_copy(deep=True)
    with pytest.raises(AgentError) as caught:
        client.enroll(device, payload(), agent_version="24.6.0")
    err = caught.value
    assert (err.code, err.status) == ("agentUpdateRequired", 426)
    assert "24.7.0" in err.message and f"{SERVER}/device/v1/agent.apk" in err.message
    assert err.details["minimumVersion"] == "24.7.0"
    assert device.state == before and device.key is None
    assert list((tmp_path / "dev").iterdir()) == []


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (httpx.Response(500, text="<html>Internal Server Error</html>"), "serverError"),
        (httpx.Response(404, text="Not Found"), "httpError"),
        (httpx.Response(200, json={"deviceId": "x"}), "unexpectedResponse"),
        (httpx.Response(201, json={"deviceId": "x"}), "unexpectedResponse"),
    ],
)
def test_answers_without_an_error_code(response: httpx.Response, code: str) -> None:
    client = AgentClient(transport=httpx.MockTransport(lambda _: response))
    with pytest.raises(AgentError) as caught:
        client.enroll(Device(Hardware(serial="X")), payload())
    assert caught.value.code == code
    assert caught.value.status == response.status_code


def test_an_unreachable_server_is_a_network_error() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = AgentClient(transport=httpx.MockTransport(down))
    with pytest.raises(AgentError) as caught:
        client.enroll(Device(Hardware(serial="X")), payload())
    assert caught.value.code == "networkError"
    assert f"cannot reach {SERVER}/device/v1/enroll" in caught.value.message


def test_enrolled_devices_do_not_enroll_twice_and_others_do_not_check_in(
    client: AgentClient,
) -> None:
    device = enrolled(client)
    with pytest.raises(AgentError, match="alreadyEnrolled"):
        client.enroll(device, payload())
    with pytest.raises(AgentError, match="notEnrolled"):
        client.checkin(Device(Hardware(serial="X")))


# --- state and factory reset -----------------------------------------------------------------


def test_state_round_trips_through_the_state_dir(client: AgentClient, tmp_path: Path) -> None:
    device = enrolled(client, tmp_path)
    client.checkin(device)
    device.save()
    again = Device.load(tmp_path)
    assert again.state == device.state
    assert again.hardware == device.hardware
    assert again.key is not None and device.key is not None
    assert again.key.private_numbers() == device.key.private_numbers()
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o077 == 0
    # The reloaded device signs as the same device: the server accepts its check-in.
    client.checkin(again)


def test_factory_reset_keeps_the_hardware_and_erases_the_enrollment(
    client: AgentClient, tmp_path: Path
) -> None:
    device = enrolled(client, tmp_path)
    device.state.locked, device.state.passcode = True, "123456"
    device.hardware.reboot_count = 3
    device.save()
    device.factory_reset()
    for d in (device, Device.load(tmp_path)):
        status = d.status()
        assert status["enrolled"] is False
        assert status["deviceId"] is None
        assert status["serverUrl"] is None
        assert status["wifiSsid"] is None
        assert status["locked"] is False and status["passcode"] is None
        assert status["rebootCount"] == 3 and status["factoryResets"] == 1
        assert status["serialNumber"] == "RW-1"
        assert [a["packageName"] for a in status["installedApps"]] == [
            a.package_name for a in SYSTEM_APPS
        ]
        assert d.key is None
    assert not (tmp_path / KEY_FILE).exists()
    # It enrolls again as a new device, with a new key, and the counters stay.
    client.enroll(device, payload())
    device.save()
    assert Device.load(tmp_path).status()["factoryResets"] == 1


def test_a_corrupt_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="noDevice"):
        Device.load(tmp_path)
    (tmp_path / "hardware.json").write_text('{"serial": ""}')
    with pytest.raises(AgentError, match="badState"):
        Device.load(tmp_path)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_server(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    transport = httpx.MockTransport(server)
    monkeypatch.setattr(
        cli_agent, "AgentClient", functools.partial(AgentClient, transport=transport)
    )
    monkeypatch.setattr(cli_agent, "simulate", functools.partial(simulate, transport=transport))
    return server


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_cli_enroll_checkin_run_status(cli_server: FakeServer, tmp_path: Path) -> None:
    qr_file = qr_png(tmp_path / "qr.png", compact(payload()))
    state = str(tmp_path / "device")
    out = cli(
        "agent",
        "enroll",
        "--qr",
        str(qr_file),
        "--state-dir",
        state,
        "--serial",
        "RW-7",
        "--manufacturer",
        "RealWear GmbH ü",
        "--model",
        "Navigator 520",
        "--security-patch",
        "2024-08-01",
    )
    assert "enrolled RealWear GmbH ü Navigator 520 RW-7" in out
    assert f"joined Wi-Fi {SSID}" in out
    assert "installed and opened Company Portal 5.0.6281.0" in out
    assert cli_server.enrolls[0]["facts"]["securityPatchLevel"] == "2024-08-01"

    assert "sent the installed apps" in cli("agent", "checkin", "--state-dir", state)
    out = cli("agent", "run", "--state-dir", state, "--max-checkins", "1")
    assert "installed apps unchanged" in out and "next check-in in 180 s" in out
    assert len(cli_server.checkins) == 2

    status = json.loads(cli("agent", "status", "--state-dir", state))
    assert status["enrolled"] is True
    assert status["deviceId"] in cli_server.keys
    assert status["serverUrl"] == SERVER
    assert status["agentVersion"] == "24.9.0"
    assert status["wifiSsid"] == SSID
    assert status["model"] == "Navigator 520"
    assert isinstance(status["installedApps"], list)
    for app in status["installedApps"]:
        assert set(app) == {"packageName", "versionName", "versionCode"}
        assert isinstance(app["versionName"], str) and isinstance(app["versionCode"], int)
    assert status["locked"] is False
    assert status["passcode"] is None
    assert type(status["rebootCount"]) is int and type(status["factoryResets"]) is int

    out = cli("agent", "enroll", "--qr", str(qr_file), "--state-dir", state, code=2)
    assert out.startswith("error: alreadyEnrolled: ") and out.count("\n") == 1


def test_cli_refusals_exit_2_with_one_line(cli_server: FakeServer, tmp_path: Path) -> None:
    qr_file = tmp_path / "export.json"
    qr_file.write_text(json.dumps({"qrCodeContent": payload()}))
    state = str(tmp_path / "device")
    cli_server.refusal = (
        400,
        {"code": "tokenIsPlainText", "message": "This is the plain-text token: scan the QR code."},
    )
    out = cli("agent", "enroll", "--qr", str(qr_file), "--state-dir", state, code=2)
    assert out == "error: tokenIsPlainText: This is the plain-text token: scan the QR code.\n"
    assert list(Path(state).iterdir()) == []

    out = cli("agent", "checkin", "--state-dir", state, code=2)
    assert out.startswith("error: noDevice: ")
    taken = tmp_path / "file"
    taken.write_text("")
    out = cli("agent", "enroll", "--qr", str(qr_file), "--state-dir", str(taken), code=2)
    assert out.startswith("error: stateNotWritable: cannot use")
    assert cli_server.enrolls == []
    out = cli("agent", "enroll", "--qr", str(tmp_path / "nope.png"), "--state-dir", state, code=2)
    assert out.startswith("error: qrUnreadable: cannot read")


def test_cli_status_after_a_factory_reset(cli_server: FakeServer, tmp_path: Path) -> None:
    qr_file = qr_png(tmp_path / "qr.png", compact(payload()))
    state = tmp_path / "device"
    cli("agent", "enroll", "--qr", str(qr_file), "--state-dir", str(state))
    Device.load(state).factory_reset()
    status = json.loads(cli("agent", "status", "--state-dir", str(state)))
    assert status["enrolled"] is False and status["deviceId"] is None
    assert status["factoryResets"] == 1
    out = cli("agent", "checkin", "--state-dir", str(state), code=2)
    assert out.startswith("error: notEnrolled: ")


def test_cli_simulate(cli_server: FakeServer, tmp_path: Path) -> None:
    qr_file = qr_png(tmp_path / "qr.png", compact(payload()))
    out = cli(
        "simulate",
        "--qr",
        str(qr_file),
        "--devices",
        "3",
        "--duration",
        "0.3",
        "--interval",
        "0.05",
        "--no-progress",
    )
    assert "enrolled:  3 of 3 devices" in out
    assert "errors:    none" in out
    assert "latency:   p50 " in out
    cli_server.refusal = (410, {"code": "tokenExpired", "message": "The token expired."})
    out = cli(
        "simulate",
        "--qr",
        str(qr_file),
        "--devices",
        "2",
        "--duration",
        "0",
        "--no-progress",
        code=2,
    )
    assert "enrolled:  0 of 2 devices" in out
    assert out.splitlines()[-1] == "error: 2 requests failed: tokenExpired 2"


# --- the simulator ---------------------------------------------------------------------------


def test_percentiles_interpolate_like_statistics_quantiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (50, 95, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5  # unsorted input


def test_simulate_enrolls_unique_devices_and_checks_in(server: FakeServer) -> None:
    report = asyncio.run(
        simulate(
            payload(),
            devices=5,
            duration=0.5,
            concurrency=2,
            interval=0,
            progress=True,
            transport=httpx.MockTransport(server),
        )
    )
    serials = sorted(e["facts"]["serialNumber"] for e in server.enrolls)
    assert serials == [f"SIM-{n}" for n in range(1, 6)]
    assert report.enrolled == 5 and report.errors == {}
    assert report.checkins == len(server.checkins) > 5
    assert report.p50_ms is not None and report.p99_ms is not None
    assert report.p50_ms <= report.p95_ms <= report.p99_ms  # type: ignore[operator]
    assert report.checkins_per_s == pytest.approx(report.checkins / report.duration_s)
    assert {c["facts"]["serialNumber"] for c in server.checkins} == set(serials)


def test_simulate_follows_the_schedule(server: FakeServer) -> None:
    report = asyncio.run(
        simulate(
            payload(),
            devices=3,
            duration=0.3,
            concurrency=10,
            interval=None,
            progress=False,
            transport=httpx.MockTransport(server),
        )
    )
    # The schedule says 180 s: one check-in each within 0.3 s, which the devices stay on for.
    assert report.checkins == 3
    assert 0.3 <= report.duration_s < 1


def test_simulate_counts_errors_by_code(server: FakeServer) -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if request.url.path.endswith("/checkin") and calls % 2:
            return httpx.Response(503, text="busy")
        return server(request)

    report = asyncio.run(
        simulate(
            payload(),
            devices=2,
            duration=0.3,
            concurrency=4,
            interval=0.01,
            progress=False,
            transport=httpx.MockTransport(flaky),
        )
    )
    assert report.enrolled == 2
    assert set(report.errors) == {"serverError"}
    assert report.checkins > 0

    server.refusal = (426, {"code": "agentUpdateRequired", "message": "update"})
    report = asyncio.run(
        simulate(
            payload(),
            devices=2,
            duration=0.2,
            concurrency=4,
            interval=0,
            progress=False,
            transport=httpx.MockTransport(server),
            agent_version="1.0.0",
        )
    )
    assert report.enrolled == 0 and report.checkins == 0
    assert report.errors == {"agentUpdateRequired": 2}
    assert report.p50_ms is None
