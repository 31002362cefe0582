"""The reference agent applies policies (docs/protocol.md §10): restrictions, the screen lock
and Wi-Fi networks on the simulated device, the report it sends at once, and what status
shows; first against hand-made policies and a fake server, then end to end against the real
server's policies."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aospmdm import protocol as p
from aospmdm.agent import AgentError, qr
from aospmdm.agent.client import MAX_POLICY_REPORTS, AgentClient
from aospmdm.agent.device import Device, Hardware
from aospmdm.agent.policy import (
    CONTROLS,
    longest_sequence,
    new_passcode,
    passcode_meets,
    passcode_requirement,
    passcode_type,
)
from aospmdm.agent.simulator import simulate
from aospmdm.cli import agent as cli_agent
from aospmdm.cli import app as cli_app
from tests.agent.fleet import Fleet, make_fleet
from tests.agent.test_agent import SSID, FakeServer, compact, enrolled, payload, qr_png
from tests.conftest import Env

runner = CliRunner()
KEY = "warehouse-key-1"


def policy(
    version: str = "a1", wifi: list[dict[str, Any]] | None = None, **restrictions: Any
) -> p.EffectivePolicy:
    return p.EffectivePolicy.model_validate(
        {"version": version, "restrictions": restrictions, "wifiNetworks": wifi or []}
    )


def network(ssid: str = "Warehouse", **over: Any) -> dict[str, Any]:
    return {
        "ssid": ssid,
        "networkName": f"{ssid} network",
        "securityType": "wpaPersonal",
        "preSharedKey": KEY,
        "connectAutomatically": True,
        "hidden": False,
        "proxy": None,
        **over,
    }


def device(**hardware: Any) -> Device:
    return Device(Hardware(serial="RW-1", **hardware))


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def settings(report: p.PolicyReport) -> dict[str, tuple[str, Any]]:
    return {s.name: (s.state, s.current_value) for s in report.settings}


# --- the screen lock -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "longest"),
    [
        ("", 0),
        ("7", 1),
        ("70", 2),
        ("1111", 4),
        ("1234", 4),
        ("4321", 4),
        ("2468", 4),  # Android counts any even step
        ("1112", 3),
        ("9071", 2),
        ("120345", 3),
        ("5839012", 3),  # 9-0-1-2: 0, 1, 2 step by one after a jump
    ],
)
def test_longest_sequence_counts_like_android(digits: str, longest: int) -> None:
    assert longest_sequence(digits) == longest


@pytest.mark.parametrize(
    ("passcode", "kind"),
    [
        (None, "none"),
        ("", "none"),
        ("1234", "numeric"),
        ("0000", "numeric"),
        ("2580", "numericComplex"),
        ("123945", "numericComplex"),
        ("hello", "alphabetic"),
        ("hello42", "alphanumeric"),
        ("hello 42!", "alphanumericWithSymbols"),
    ],
)
def test_passcode_types(passcode: str | None, kind: str) -> None:
    assert passcode_type(passcode) == kind


def test_passcode_requirements_and_what_meets_them() -> None:
    assert passcode_requirement({}) is None
    assert passcode_requirement({"passwordRequiredType": "deviceDefault"}) is None
    assert passcode_requirement({"passwordRequiredType": "numeric"}) == ("numeric", 4)
    assert passcode_requirement({"passwordMinimumLength": 6}) == ("numeric", 6)
    assert passcode_requirement(
        {"passwordRequiredType": "numericComplex", "passwordMinimumLength": 8}
    ) == ("numericComplex", 8)
    assert passcode_meets("123456", "numeric", 6)
    assert not passcode_meets("12345", "numeric", 6)
    assert not passcode_meets("123456", "numericComplex", 6)
    assert passcode_meets("hello42x", "numericComplex", 6), "stronger types meet weaker ones"
    assert not passcode_meets(None, "numeric", 4)


@pytest.mark.parametrize("length", [4, 6, 16])
def test_new_passcodes_are_pins_that_meet_the_requirement(length: int) -> None:
    for _ in range(50):
        pin = new_passcode("numericComplex", length)
        assert len(pin) == length and pin.isdigit()
        assert longest_sequence(pin) <= 3
        assert passcode_type(pin) == "numericComplex"
        numeric = new_passcode("numeric", length)
        assert len(numeric) == length and numeric.isdigit()


# --- applying restrictions -------------------------------------------------------------------


def test_a_policy_is_enforced_and_reported_setting_by_setting() -> None:
    d = device()
    report = d.apply_policy(
        policy(
            cameraBlocked=True,
            securityAllowDebuggingFeatures=False,
            passwordRequiredType="numeric",
            passwordMinimumLength=6,
            passwordMinutesOfInactivityBeforeScreenTimeout=5,
            passwordSignInFailureCountBeforeFactoryReset=8,
        )
    )
    assert report.version == "a1"
    assert settings(report) == {
        "cameraBlocked": ("applied", True),
        "securityAllowDebuggingFeatures": ("applied", False),
        "passwordRequiredType": ("applied", "numeric"),
        "passwordMinimumLength": ("applied", 6),
        "passwordMinutesOfInactivityBeforeScreenTimeout": ("applied", 5),
        "passwordSignInFailureCountBeforeFactoryReset": ("applied", 8),
    }
    assert report.settings[0].name == "cameraBlocked", "in the policy's order"
    assert d.state.applied_policy_version == "a1"
    assert d.state.restrictions["cameraBlocked"] is True
    # The worker was prompted for a 6-digit PIN; the device reports its new screen lock.
    facts = d.facts()
    assert facts.passcode_type in ("numeric", "numericComplex")
    assert facts.passcode_length == 6
    assert facts.lock_after_inactivity_minutes == 5
    assert d.state.passcode is not None and d.state.passcode.isdigit()
    assert d.report_to_send() == report


def test_a_passcode_that_meets_the_policy_is_kept_and_a_weak_one_replaced() -> None:
    d = device()
    d.state.passcode = "905718"
    d.apply_policy(policy(passwordRequiredType="numeric", passwordMinimumLength=6))
    assert d.state.passcode == "905718"
    d.state.passcode = "123456"
    d.apply_policy(policy("a2", passwordRequiredType="numericComplex"))
    assert d.state.passcode != "123456"
    assert passcode_type(d.state.passcode) == "numericComplex"
    assert len(d.state.passcode or "") == 4, "at least 4, the policy sets no length"
    d.state.passcode = "hello"
    d.apply_policy(policy("a3", passwordMinimumLength=8))
    assert len(d.state.passcode or "") == 8 and d.facts().passcode_length == 8


def test_restrictions_the_policy_leaves_out_return_to_the_device_default() -> None:
    d = device()
    d.apply_policy(
        policy(
            cameraBlocked=True,
            passwordMinimumLength=6,
            passwordMinutesOfInactivityBeforeScreenTimeout=5,
        )
    )
    passcode = d.state.passcode
    report = d.apply_policy(policy("b2", bluetoothBlocked=True))
    assert d.state.restrictions == {"bluetoothBlocked": True}
    assert settings(report) == {"bluetoothBlocked": ("applied", True)}
    # The screen timeout is the worker's own again; the passcode the worker set stays.
    assert d.facts().lock_after_inactivity_minutes == 0
    assert d.state.passcode == passcode
    d.apply_policy(policy("0"))
    assert d.state.restrictions == {} and d.state.applied_policy_version == "0"


def test_the_policy_shortens_but_never_lengthens_the_workers_own_timeout() -> None:
    d = device()
    d.state.lock_after_inactivity_minutes = 2
    d.apply_policy(policy(passwordMinutesOfInactivityBeforeScreenTimeout=10))
    assert d.facts().lock_after_inactivity_minutes == 2
    d.state.lock_after_inactivity_minutes = 30
    assert d.facts().lock_after_inactivity_minutes == 10


def test_unknown_unsupported_failing_and_invalid_settings_are_reported_not_applied() -> None:
    d = device(unsupported_settings=["bluetoothBlocked"])
    d.apply_policy(policy("c1", screenCaptureBlocked=True))
    # The control breaks after the first policy set it.
    d.hardware.failing_settings = ["screenCaptureBlocked", "passwordRequiredType"]
    report = d.apply_policy(
        policy(
            "c2",
            cameraBlocked=True,
            bluetoothBlocked=True,
            screenCaptureBlocked=False,
            passwordRequiredType="numericComplex",
            passwordMinimumLength=40,
            storageBlockUsbFileTransfer="yes",
            usbMassStorageBlocked=True,  # a setting from a newer server
        )
    )
    got = {s.name: s for s in report.settings}
    assert {n: (s.state, s.current_value) for n, s in got.items()} == {
        "cameraBlocked": ("applied", True),
        "bluetoothBlocked": ("notSupported", None),
        # The device refused: the value in force is the earlier policy's, or the default.
        "screenCaptureBlocked": ("failed", True),
        "passwordRequiredType": ("failed", "deviceDefault"),
        "passwordMinimumLength": ("failed", None),
        "storageBlockUsbFileTransfer": ("failed", False),
        "usbMassStorageBlocked": ("notSupported", None),
    }
    assert got["bluetoothBlocked"].message == "This device has no bluetoothBlocked."
    assert got["usbMassStorageBlocked"].message == "This agent has no usbMassStorageBlocked."
    assert got["passwordMinimumLength"].message == (
        "passwordMinimumLength takes a whole number from 4 to 16."
    )
    assert got["storageBlockUsbFileTransfer"].message == (
        "storageBlockUsbFileTransfer takes true or false."
    )
    assert got["screenCaptureBlocked"].message == "The device refused to set screenCaptureBlocked."
    assert d.state.restrictions == {"cameraBlocked": True, "screenCaptureBlocked": True}
    # Nothing in force requires a passcode, so none was set.
    assert d.state.passcode is None and d.facts().passcode_type == "none"
    assert "usbMassStorageBlocked" not in CONTROLS


def test_a_policy_that_cannot_be_reported_on_is_refused_and_changes_nothing() -> None:
    d = device()
    d.apply_policy(policy(cameraBlocked=True))
    before = d.state.model_copy(deep=True)
    with pytest.raises(AgentError) as caught:
        d.apply_policy(policy("NOT-HEX", cameraBlocked=False))
    assert caught.value.code == "unexpectedResponse"
    assert "NOT-HEX" in caught.value.message
    assert d.state == before


def test_hardware_options_name_known_controls(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as caught:
        Device.open(tmp_path, unsupported_settings=["cameraBlock"])
    assert caught.value.code == "badHardware"
    assert "'cameraBlock' is not one of cameraBlocked" in caught.value.message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="'cameraBlock' is not one of cameraBlocked"):
        Hardware(serial="X", unsupported_settings=["cameraBlock"])
    twice = Hardware(serial="X", failing_settings=["wifiNetworks", "wifiNetworks"])
    assert twice.failing_settings == ["wifiNetworks"]


# --- Wi-Fi -------------------------------------------------------------------------------------


def test_policy_networks_are_saved_replaced_and_forgotten_beside_the_provisioning_one() -> None:
    d = device()
    d.state.wifi_ssid = SSID  # joined at provisioning
    report = d.apply_policy(
        policy(
            wifi=[
                network("Warehouse"),
                network(
                    "Office",
                    securityType="open",
                    preSharedKey=None,
                    proxy={"type": "automatic", "pacUrl": "http://proxy.example.com/pac"},
                ),
            ]
        )
    )
    assert [(w.ssid, w.state) for w in report.wifi_networks] == [
        ("Warehouse", "applied"),
        ("Office", "applied"),
    ]
    assert [n.ssid for n in d.state.policy_wifi_networks] == ["Warehouse", "Office"]
    assert d.state.policy_wifi_networks[0].pre_shared_key == KEY
    report = d.apply_policy(policy("d2", wifi=[network("Warehouse", hidden=True)]))
    assert [(w.ssid, w.state) for w in report.wifi_networks] == [("Warehouse", "applied")]
    assert [(n.ssid, n.hidden) for n in d.state.policy_wifi_networks] == [("Warehouse", True)]
    assert d.state.wifi_ssid == SSID, "the provisioning network is not the policy's to remove"
    d.apply_policy(policy("d3"))
    assert d.state.policy_wifi_networks == [] and d.state.wifi_ssid == SSID


def test_networks_the_device_cannot_save_are_reported() -> None:
    d = device()
    d.apply_policy(policy(wifi=[network("Warehouse")]))
    report = d.apply_policy(
        policy(
            "e2",
            wifi=[
                network("Warehouse", preSharedKey=None),  # failed: the earlier one stays
                network("Lab", securityType="wpaEnterprise"),
                network("Dock", securityType="wep", preSharedKey="abcde"),
                network("Yard", proxy={"type": "manual", "host": "proxy.example.com"}),
            ],
        )
    )
    got = {w.ssid: (w.state, w.message) for w in report.wifi_networks}
    assert got == {
        "Warehouse": (
            "failed",
            "A WPA network needs a key of 8-63 ASCII characters or 64 hex digits.",
        ),
        "Lab": ("notSupported", "The security type 'wpaEnterprise' is not supported."),
        "Dock": ("applied", ""),
        "Yard": ("failed", "A manual proxy needs a host and a port from 1 to 65535."),
    }
    saved = {n.ssid: n for n in d.state.policy_wifi_networks}
    assert set(saved) == {"Warehouse", "Dock"}
    assert saved["Warehouse"].pre_shared_key == KEY

    no_wifi = device(unsupported_settings=["wifiNetworks"])
    report = no_wifi.apply_policy(policy(wifi=[network()]))
    assert [(w.state, w.message) for w in report.wifi_networks] == [
        ("notSupported", "This device has no Wi-Fi.")
    ]
    refusing = device(failing_settings=["wifiNetworks"])
    report = refusing.apply_policy(policy(wifi=[network()]))
    assert [w.state for w in report.wifi_networks] == ["failed"]
    assert no_wifi.state.policy_wifi_networks == refusing.state.policy_wifi_networks == []


# --- state and status ---------------------------------------------------------------------------


def test_the_policy_survives_in_the_state_dir_and_a_factory_reset_erases_it(
    tmp_path: Path,
) -> None:
    d = Device.open(tmp_path, serial="RW-1", unsupported_settings=["bluetoothBlocked"])
    d.apply_policy(policy(wifi=[network()], cameraBlocked=True, passwordMinimumLength=6))
    d.save()
    again = Device.load(tmp_path)
    assert again.state == d.state and again.hardware == d.hardware
    assert again.facts() == d.facts()
    assert again.report_to_send() == d.report_to_send()
    assert (tmp_path / "state.json").stat().st_mode & 0o077 == 0, "it holds keys and passcode"
    again.factory_reset()
    st = Device.load(tmp_path)
    assert st.state.applied_policy_version == "0" and st.state.restrictions == {}
    assert st.state.policy_wifi_networks == [] and st.state.passcode is None
    assert st.report_to_send() is None
    assert st.hardware.unsupported_settings == ["bluetoothBlocked"], "hardware stays"
    # Reopening with other hardware options replaces them; without, keeps them.
    assert Device.open(tmp_path).hardware.unsupported_settings == ["bluetoothBlocked"]
    reopened = Device.open(tmp_path, unsupported_settings=["cameraBlocked"])
    assert reopened.hardware.unsupported_settings == ["cameraBlocked"]


def test_status_shows_the_policy_in_force_but_never_the_wifi_keys() -> None:
    d = device()
    status = d.status()
    assert status["screenLock"] == {
        "passcodeSet": False,
        "passcodeType": "none",
        "passcodeLength": 0,
        "lockAfterInactivityMinutes": 0,
    }
    assert status["policy"] == {
        "appliedVersion": "0",
        "restrictions": {},
        "wifiNetworks": [],
        "report": None,
    }
    d.apply_policy(
        policy(
            wifi=[network(proxy={"type": "manual", "host": "10.0.0.1", "port": 3128})],
            cameraBlocked=True,
            passwordRequiredType="numericComplex",
            passwordMinimumLength=6,
            passwordMinutesOfInactivityBeforeScreenTimeout=5,
            fromTheFuture=1,
        )
    )
    status = d.status()
    assert status["screenLock"]["passcodeSet"] is True
    assert status["screenLock"]["passcodeType"] == "numericComplex"
    assert status["screenLock"]["passcodeLength"] == 6
    assert status["screenLock"]["lockAfterInactivityMinutes"] == 5
    pol = status["policy"]
    assert pol["appliedVersion"] == "a1"
    assert pol["restrictions"] == {
        "cameraBlocked": True,
        "passwordRequiredType": "numericComplex",
        "passwordMinimumLength": 6,
        "passwordMinutesOfInactivityBeforeScreenTimeout": 5,
    }
    assert pol["wifiNetworks"] == [
        {
            "ssid": "Warehouse",
            "networkName": "Warehouse network",
            "securityType": "wpaPersonal",
            "connectAutomatically": True,
            "hidden": False,
            "proxy": {
                "type": "manual",
                "host": "10.0.0.1",
                "port": 3128,
                "exclusionList": [],
                "pacUrl": None,
            },
            "preSharedKeySet": True,
        }
    ]
    assert pol["report"]["delivered"] is False
    assert {s["name"]: s["state"] for s in pol["report"]["settings"]}["fromTheFuture"] == (
        "notSupported"
    )
    assert KEY not in json.dumps(status)


# --- check-ins: the report goes out at once ------------------------------------------------------


class PolicyServer:
    """The fake server, plus a policy: delivered in a check-in's answer whenever the version
    the device says it applied differs, as the real server does."""

    def __init__(self, fake: FakeServer, *policies: p.EffectivePolicy):
        self.fake = fake
        self.policies = list(policies)  # the next one is handed out after each delivery
        self.down_after: int | None = None

    @property
    def current(self) -> p.EffectivePolicy | None:
        return self.policies[0] if self.policies else None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down_after is not None and len(self.fake.checkins) >= self.down_after:
            raise httpx.ConnectError("connection refused", request=request)
        response = self.fake(request)
        if request.url.path != "/device/v1/checkin" or response.status_code != 200:
            return response
        body = response.json()
        sent = self.fake.checkins[-1]
        current = self.current
        if current is not None and sent.get("appliedPolicyVersion") != current.version:
            body["policy"] = current.model_dump(by_alias=True, mode="json")
            if len(self.policies) > 1:
                self.policies.pop(0)
        return httpx.Response(200, json=body)


def test_a_checkin_that_brings_a_policy_reports_on_it_at_once(server: FakeServer) -> None:
    served = PolicyServer(server, policy("f1", wifi=[network()], cameraBlocked=True))
    client = AgentClient(transport=httpx.MockTransport(served))
    d = enrolled(client)
    answer = client.checkin(d)
    assert answer.policy is None, "the last answer: to the report"
    first, report = server.checkins
    assert first["appliedPolicyVersion"] == "0" and "policyReport" not in first
    assert report["appliedPolicyVersion"] == "f1"
    assert report["policyReport"] == {
        "version": "f1",
        "settings": [
            {"name": "cameraBlocked", "state": "applied", "currentValue": True, "message": ""}
        ],
        "wifiNetworks": [{"ssid": "Warehouse", "state": "applied", "message": ""}],
    }
    assert d.state.policy_report_delivered and d.report_to_send() is None
    # Later check-ins say which version is in force, without the report.
    client.checkin(d)
    assert len(server.checkins) == 3
    assert server.checkins[-1]["appliedPolicyVersion"] == "f1"
    assert "policyReport" not in server.checkins[-1]


def test_policies_that_keep_coming_are_reported_a_few_rounds_at_most(server: FakeServer) -> None:
    versions = [f"{n:x}0" for n in range(1, 10)]
    served = PolicyServer(
        server, *(policy(v, cameraBlocked=n % 2 == 1) for n, v in enumerate(versions))
    )
    client = AgentClient(transport=httpx.MockTransport(served))
    d = enrolled(client)
    client.checkin(d)
    assert len(server.checkins) == 1 + MAX_POLICY_REPORTS
    reports = [c["policyReport"]["version"] for c in server.checkins[1:]]
    assert reports == versions[:MAX_POLICY_REPORTS]
    # The report on the last one applied waits for the next check-in.
    assert d.state.applied_policy_version == versions[MAX_POLICY_REPORTS]
    assert d.report_to_send() is not None
    served.policies = [policy(versions[MAX_POLICY_REPORTS])]
    client.checkin(d)
    assert server.checkins[-1]["policyReport"]["version"] == versions[MAX_POLICY_REPORTS]
    assert d.report_to_send() is None


def test_a_report_that_could_not_be_sent_goes_with_the_next_checkin(
    server: FakeServer, tmp_path: Path
) -> None:
    served = PolicyServer(server, policy("a7", passwordMinimumLength=6))
    client = AgentClient(transport=httpx.MockTransport(served))
    d = enrolled(client, tmp_path)
    served.down_after = 1  # the network drops after the check-in that brought the policy
    with pytest.raises(AgentError, match="networkError"):
        client.checkin(d)
    # Saved before the report was sent: the policy is in force on disk, the report kept.
    kept = Device.load(tmp_path)
    assert kept.state.applied_policy_version == "a7"
    assert kept.facts().passcode_length == 6
    assert kept.report_to_send() is not None
    served.down_after = None
    client.checkin(kept)
    assert server.checkins[-1]["appliedPolicyVersion"] == "a7"
    assert server.checkins[-1]["policyReport"]["version"] == "a7"
    assert kept.report_to_send() is None


def test_checkins_report_the_screen_lock_the_policy_brought(server: FakeServer) -> None:
    served = PolicyServer(
        server,
        policy(
            "b1",
            passwordRequiredType="numericComplex",
            passwordMinimumLength=8,
            passwordMinutesOfInactivityBeforeScreenTimeout=3,
        ),
    )
    client = AgentClient(transport=httpx.MockTransport(served))
    d = enrolled(client)
    client.checkin(d)
    before, after = server.checkins[0]["facts"], server.checkins[1]["facts"]
    assert (before["passcodeType"], before["passcodeLength"]) == ("none", 0)
    assert before["lockAfterInactivityMinutes"] == 0
    assert (after["passcodeType"], after["passcodeLength"]) == ("numericComplex", 8)
    assert after["lockAfterInactivityMinutes"] == 3


# --- the command line and the simulator ----------------------------------------------------------


@pytest.fixture
def cli_served(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> PolicyServer:
    served = PolicyServer(
        server,
        policy(
            "c0ffee",
            wifi=[network()],
            cameraBlocked=True,
            bluetoothBlocked=True,
            passwordMinimumLength=6,
            fromTheFuture=True,
        ),
    )
    transport = httpx.MockTransport(served)
    monkeypatch.setattr(
        cli_agent, "AgentClient", functools.partial(AgentClient, transport=transport)
    )
    monkeypatch.setattr(cli_agent, "simulate", functools.partial(simulate, transport=transport))
    return served


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_cli_checkin_applies_and_reports_and_status_shows_it(
    cli_served: PolicyServer, tmp_path: Path
) -> None:
    qr_file = qr_png(tmp_path / "qr.png", compact(payload()))
    state = str(tmp_path / "device")
    cli(
        "agent",
        "enroll",
        "--qr",
        str(qr_file),
        "--state-dir",
        state,
        "--unsupported-setting",
        "bluetoothBlocked",
        "--failing-setting",
        "cameraBlocked",
    )
    out = cli("agent", "checkin", "--state-dir", state)
    assert (
        "applied policy c0ffee (1 applied, 1 failed, 2 notSupported; 1 of 1 Wi-Fi networks "
        "saved); reported"
    ) in out
    sent = cli_served.fake.checkins[-1]["policyReport"]
    assert {s["name"]: s["state"] for s in sent["settings"]} == {
        "cameraBlocked": "failed",
        "bluetoothBlocked": "notSupported",
        "passwordMinimumLength": "applied",
        "fromTheFuture": "notSupported",
    }
    assert sent["wifiNetworks"] == [{"ssid": "Warehouse", "state": "applied", "message": ""}]
    status = json.loads(cli("agent", "status", "--state-dir", state))
    assert status["policy"]["appliedVersion"] == "c0ffee"
    assert status["policy"]["restrictions"] == {"passwordMinimumLength": 6}
    assert status["policy"]["report"]["delivered"] is True
    assert status["screenLock"]["passcodeSet"] is True
    assert status["screenLock"]["passcodeLength"] == 6
    assert [n["ssid"] for n in status["policy"]["wifiNetworks"]] == ["Warehouse"]
    assert status["unsupportedSettings"] == ["bluetoothBlocked"]
    assert status["failingSettings"] == ["cameraBlocked"]
    assert KEY not in json.dumps(status)
    # Nothing new: no policy line.
    assert "applied policy" not in cli("agent", "checkin", "--state-dir", state)


def test_cli_refuses_an_unknown_hardware_setting(cli_served: PolicyServer, tmp_path: Path) -> None:
    qr_file = qr_png(tmp_path / "qr.png", compact(payload()))
    out = cli(
        "agent",
        "enroll",
        "--qr",
        str(qr_file),
        "--state-dir",
        str(tmp_path / "device"),
        "--unsupported-setting",
        "camera",
        code=2,
    )
    assert out.startswith("error: badHardware: ") and "'camera' is not one of" in out
    assert cli_served.fake.enrolls == []


def test_simulated_fleets_apply_and_report_policies(server: FakeServer) -> None:
    served = PolicyServer(server, policy("5eed", passwordMinimumLength=6, cameraBlocked=True))
    report = asyncio.run(
        simulate(
            payload(),
            devices=4,
            duration=0.3,
            concurrency=4,
            interval=0.05,
            progress=False,
            transport=httpx.MockTransport(served),
        )
    )
    assert report.errors == {} and report.policies_applied == 4
    reports = [c for c in server.checkins if "policyReport" in c]
    assert sorted(c["facts"]["serialNumber"] for c in reports) == [f"SIM-{n}" for n in range(1, 5)]
    for c in reports:
        assert c["facts"]["passcodeLength"] == 6
        assert c["policyReport"]["settings"][1] == {
            "name": "cameraBlocked",
            "state": "applied",
            "currentValue": True,
            "message": "",
        }
    later = [c for c in server.checkins if c["appliedPolicyVersion"] == "5eed"]
    assert len(later) > len(reports), "the devices went on checking in with the policy in force"


# --- end to end: the real server's policies ------------------------------------------------------

C = "/beta/deviceManagement/deviceConfigurations"
CP = "/beta/deviceManagement/deviceCompliancePolicies"
D = "/beta/deviceManagement/managedDevices"
PROFILE_NAME = "Factory 1 devices"


@pytest.fixture
def fleet(env: Env, tmp_path: Path) -> Fleet:
    return make_fleet(env, tmp_path, PROFILE_NAME, "Factory 1")


def restrictions(fleet: Fleet, **settings: Any) -> str:
    return fleet.policy(
        C, "aospDeviceOwnerDeviceConfiguration", displayName="Lock down", **settings
    )


def test_the_agent_makes_a_device_compliant_with_the_server_policies(fleet: Fleet) -> None:
    config = restrictions(
        fleet,
        cameraBlocked=True,
        passwordRequiredType="numeric",
        passwordMinimumLength=6,
        passwordMinutesOfInactivityBeforeScreenTimeout=5,
    )
    wifi = fleet.policy(
        C,
        "aospDeviceOwnerWiFiConfiguration",
        displayName="Warehouse Wi-Fi",
        networkName="Warehouse",
        ssid="Warehouse",
        wiFiSecurityType="wpaPersonal",
        preSharedKey=KEY,
        connectAutomatically=True,
    )
    compliance = fleet.policy(
        CP,
        "aospDeviceOwnerCompliancePolicy",
        displayName="PIN of six",
        passwordRequired=True,
        passwordRequiredType="numeric",
        passwordMinimumLength=6,
        passwordMinutesOfInactivityBeforeLock=15,
    )
    d = fleet.device("RW-E2E-1")
    assert d.facts().passcode_type == "none"
    # One check-in: the policy comes, the worker sets a PIN, the report goes back.
    fleet.agent.checkin(d)
    assert d.state.restrictions["cameraBlocked"] is True
    assert d.facts().passcode_length == 6
    assert d.facts().lock_after_inactivity_minutes == 5
    assert [(n.ssid, n.pre_shared_key) for n in d.state.policy_wifi_networks] == [
        ("Warehouse", KEY)
    ]
    assert d.state.wifi_ssid == "Staging"
    assert d.report_to_send() is None

    device_id = d.state.device_id
    assert device_id is not None
    status = fleet.statuses(C, config)[device_id]
    assert status["status"] == "compliant"
    states = {s["setting"]: s for s in status["settingStates"]}
    assert states["cameraBlocked"]["state"] == "compliant"
    assert states["passwordMinimumLength"]["currentValue"] == "6"
    assert fleet.statuses(C, wifi)[device_id]["status"] == "compliant"
    assert fleet.statuses(CP, compliance)[device_id]["status"] == "compliant"
    assert fleet.compliance_state(d) == "compliant"
    managed = fleet.env.call("GET", f"{D}/{device_id}").json()
    assert managed["complianceState"] == "compliant"


def test_failed_and_unsupported_settings_reach_the_server(fleet: Fleet) -> None:
    config = restrictions(fleet, cameraBlocked=True, bluetoothBlocked=True)
    failing = fleet.device("RW-E2E-2", failing_settings=["cameraBlocked"])
    lacking = fleet.device("RW-E2E-3", unsupported_settings=["cameraBlocked"])
    fleet.agent.checkin(failing)
    fleet.agent.checkin(lacking)
    statuses = fleet.statuses(C, config)
    bad = statuses[str(failing.state.device_id)]
    assert bad["status"] == "error"
    camera = {s["setting"]: s for s in bad["settingStates"]}["cameraBlocked"]
    # The camera is still the device's default (not blocked); the server words the value.
    assert (camera["state"], camera["currentValue"].lower()) == ("error", "false")
    assert camera["reason"] == "The device refused to set cameraBlocked."
    lack = {s["setting"]: s for s in statuses[str(lacking.state.device_id)]["settingStates"]}
    assert lack["cameraBlocked"]["state"] == "notApplicable"
    assert lack["bluetoothBlocked"]["state"] == "compliant"


def test_changed_and_unassigned_policies_reach_the_device(fleet: Fleet) -> None:
    config = restrictions(fleet, cameraBlocked=True, screenCaptureBlocked=True)
    d = fleet.device("RW-E2E-4")
    fleet.agent.checkin(d)
    first = d.state.applied_policy_version
    assert d.state.restrictions == {"cameraBlocked": True, "screenCaptureBlocked": True}
    # cameraBlocked becomes not configured: the camera is the device's own again.
    r = fleet.env.call("PATCH", f"{C}/{config}", json={"cameraBlocked": None})
    assert r.status_code == 200, r.text
    fleet.agent.checkin(d)
    assert d.state.applied_policy_version != first
    assert d.state.restrictions == {"screenCaptureBlocked": True}
    assert fleet.statuses(C, config)[str(d.state.device_id)]["status"] == "compliant"
    # No policy at all: version "0", nothing in force.
    fleet.assign(C, config, [])
    fleet.agent.checkin(d)
    assert d.state.applied_policy_version == "0"
    assert d.state.restrictions == {}
    # And with nothing new, a check-in is a single request that says which version it has.
    before = d.state.last_check_in_ms
    fleet.agent.checkin(d)
    assert d.state.last_check_in_ms != before and d.report_to_send() is None


def test_one_cli_checkin_leaves_the_report_on_the_server(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = restrictions(fleet, passwordRequiredType="numericComplex", passwordMinimumLength=8)
    monkeypatch.setattr(
        cli_agent, "AgentClient", functools.partial(AgentClient, http=fleet.env.client)
    )
    state = str(fleet.tmp_path / "cli-device")
    cli("agent", "enroll", "--qr", str(fleet.png), "--state-dir", state, "--serial", "CLI-P1")
    out = cli("agent", "checkin", "--state-dir", state)
    assert "applied policy " in out and "(2 applied; 0 of 0 Wi-Fi networks saved); reported" in out
    status = json.loads(cli("agent", "status", "--state-dir", state))
    assert status["screenLock"]["passcodeType"] == "numericComplex"
    assert status["screenLock"]["passcodeLength"] == 8
    assert fleet.statuses(C, config)[status["deviceId"]]["status"] == "compliant"


def test_a_simulated_fleet_becomes_compliant(fleet: Fleet) -> None:
    config = restrictions(fleet, passwordMinimumLength=6)
    compliance = fleet.policy(
        CP,
        "aospDeviceOwnerCompliancePolicy",
        displayName="Any PIN of six",
        passwordRequired=True,
        passwordMinimumLength=6,
    )
    report = asyncio.run(
        simulate(
            qr.read(fleet.png),
            devices=3,
            duration=0.5,
            concurrency=3,
            interval=0.1,
            progress=False,
            transport=httpx.ASGITransport(fleet.env.app),
        )
    )
    assert report.errors == {} and report.policies_applied == 3
    assert [s["status"] for s in fleet.statuses(C, config).values()] == ["compliant"] * 3
    assert [s["status"] for s in fleet.statuses(CP, compliance).values()] == ["compliant"] * 3
