"""aospmdm policy list / show / assign, on a fresh data directory. The policies themselves are
created through the policies service (the CLI does not create them)."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aospmdm.cli.common import settings_for
from aospmdm.policies import service
from aospmdm.policies.models import COMPLIANCE, RESTRICTIONS, WIFI, PolicyAssignment
from aospmdm.policies.schemas import ComplianceInput, PolicyBase, RestrictionsInput, WifiInput
from aospmdm.tenant import access
from aospmdm.tenant.models import AuditEvent
from tests.cli.inprocess import add_device, db, ok, refused, run

WIFI_KEY = "production-key-4711"


def create_policy(data: Path, kind: str, model: type[PolicyBase], body: dict[str, Any]) -> str:
    with db(data) as s:
        policy = service.create_policy(
            s, settings_for(data), access.cli_actor(), kind, model.model_validate(body)
        )
        return policy.id


def group_id(out: str) -> str:
    # "created assigned group NAME: ID (N members)"
    return out.split(": ")[1].split()[0]


@dataclass
class Site:
    data: Path
    a1: str
    a2: str
    line: str
    spares: str
    camera: str
    wifi: str
    baseline: str


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Devices RW-A1 and RW-A2 in group "Line 1", RW-A2 also in "Spares"; three policies,
    none assigned."""
    data = tmp_path / "data"
    ok(run(data, "migrate"))
    a1, a2 = add_device(data, "A1"), add_device(data, "A2")
    line = group_id(ok(run(data, "group", "create", "Line 1")))
    spares = group_id(ok(run(data, "group", "create", "Spares")))
    for g, d in ((line, a1), (line, a2), (spares, a2)):
        ok(run(data, "group", "add", g, d))
    camera = create_policy(
        data,
        RESTRICTIONS,
        RestrictionsInput,
        {
            "@odata.type": "#microsoft.graph.aospDeviceOwnerDeviceConfiguration",
            "displayName": "Camera off",
            "cameraBlocked": True,
            "passwordRequiredType": "numeric",
            "passwordMinimumLength": 6,
        },
    )
    wifi = create_policy(
        data,
        WIFI,
        WifiInput,
        {
            "@odata.type": "#microsoft.graph.aospDeviceOwnerWiFiConfiguration",
            "displayName": "Production Wi-Fi",
            "ssid": "Plant3",
            "wiFiSecurityType": "wpaPersonal",
            "preSharedKey": WIFI_KEY,
            "connectAutomatically": True,
        },
    )
    baseline = create_policy(
        data,
        COMPLIANCE,
        ComplianceInput,
        {
            "@odata.type": "#microsoft.graph.aospDeviceOwnerCompliancePolicy",
            "displayName": "Baseline",
            "osMinimumVersion": "12",
            "scheduledActionsForRule": [
                {
                    "ruleName": "PasswordRequired",
                    "scheduledActionConfigurations": [
                        {"actionType": "block", "gracePeriodHours": 0},
                        {
                            "actionType": "notification",
                            "gracePeriodHours": 24,
                            "notificationMessageCCList": ["ops@example.com"],
                        },
                    ],
                }
            ],
        },
    )
    return Site(data, a1, a2, line, spares, camera, wifi, baseline)


def line_of(out: str, text: str) -> str:
    (found,) = [line for line in out.splitlines() if text in line]
    return found


def test_list_shows_every_policy_with_its_type_and_filters_by_kind(site: Site) -> None:
    out = ok(run(site.data, "policy", "list"))
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "TYPE", "ID", "VERSION", "GROUPS"]
    camera = line_of(out, site.camera)
    assert camera.startswith("Camera off") and "Device restrictions" in camera
    assert camera.split()[-1] == "-"  # no device is targeted yet
    assert "Wi-Fi" in line_of(out, site.wifi)
    assert "Compliance" in line_of(out, site.baseline)

    configs = ok(run(site.data, "policy", "list", "--kind", "configuration"))
    assert site.camera in configs and site.wifi in configs and site.baseline not in configs
    compliance = ok(run(site.data, "policy", "list", "--kind", "compliance"))
    assert site.baseline in compliance and site.camera not in compliance
    assert run(site.data, "policy", "list", "--kind", "apps").exit_code == 2


def test_list_without_policies(tmp_path: Path) -> None:
    assert ok(run(tmp_path, "policy", "list")).strip() == "no policies"


def test_assign_with_an_exclusion_and_show_the_result(site: Site) -> None:
    out = ok(
        run(site.data, "policy", "assign", "Camera off", "--group", "Line 1", "--exclude", "Spares")
    )
    assert f"include  Line 1 ({site.line})" in out
    assert f"exclude  Spares ({site.spares})" in out
    # Exclusion wins: RW-A2 is in both groups, so only RW-A1 gets the policy; it has not
    # reported yet.
    assert "device status: 1 unknown" in out

    listed = line_of(ok(run(site.data, "policy", "list")), site.camera)
    assert "1 (+1 excluded)" in listed and listed.endswith("1 unknown")

    shown = ok(run(site.data, "policy", "show", site.camera))
    assert "type:" in shown and "Device restrictions" in shown
    assert "Block camera (cameraBlocked):" in line_of(shown, "cameraBlocked")
    assert line_of(shown, "cameraBlocked").split()[-1] == "true"
    assert line_of(shown, "passwordMinimumLength").endswith("6 characters")
    assert "bluetoothBlocked" not in shown  # not configured: left out
    assert f"include  Line 1 ({site.line})" in shown
    assert f"exclude  Spares ({site.spares})" in shown
    device = line_of(shown, site.a1)
    assert device.split()[0] == "RW-A1" and "unknown" in device
    assert site.a2 not in shown

    # Graph semantics: a second assign replaces the first.
    out = ok(run(site.data, "policy", "assign", site.camera, "--group", site.spares))
    assert "Line 1" not in out and f"include  Spares ({site.spares})" in out
    with db(site.data) as s:
        rows = list(
            s.scalars(select(PolicyAssignment).where(PolicyAssignment.policy_id == site.camera))
        )
        assert [(r.group_id, r.exclude) for r in rows] == [(site.spares, False)]

    out = ok(run(site.data, "policy", "assign", "Camera off", "--clear"))
    assert "not assigned to any group" in out
    assert "(not assigned)" in ok(run(site.data, "policy", "show", "Camera off"))


def test_show_compliance_policy_with_device_reasons_and_actions(site: Site) -> None:
    ok(run(site.data, "policy", "assign", "Baseline", "--group", "Line 1"))
    shown = ok(run(site.data, "policy", "show", "Baseline"))
    assert "Compliance" in line_of(shown, "type:")
    assert line_of(shown, "(osMinimumVersion):").split()[-1] == "12"
    assert "mark device noncompliant (block) after 0 h" in shown
    assert "send notification (notification) after 24 h to ops@example.com" in shown
    assert "device status: 2 nonCompliant" in shown
    assert "nonCompliant" in line_of(shown, site.a1)
    assert "RW-A1: osMinimumVersion: OS version 11 is older than the minimum 12." in shown


def test_show_never_prints_the_wifi_key(site: Site) -> None:
    shown = ok(run(site.data, "policy", "show", "Production Wi-Fi"))
    assert WIFI_KEY not in shown
    assert line_of(shown, "preSharedKey").endswith("(set; never shown)")
    assert line_of(shown, "ssid").split()[-1] == "Plant3"
    assert line_of(shown, "wiFiSecurityType").split()[-1] == "wpaPersonal"

    ok(run(site.data, "policy", "assign", "Production Wi-Fi", "--group", "Line 1"))
    raw = ok(run(site.data, "policy", "show", site.wifi, "--json"))
    assert WIFI_KEY not in raw
    body = json.loads(raw)
    assert body["@odata.type"] == "#microsoft.graph.aospDeviceOwnerWiFiConfiguration"
    assert body["id"] == site.wifi and body["ssid"] == "Plant3"
    assert body["preSharedKey"] is None and body["preSharedKeyIsSet"] is True
    assert body["assignments"] == [
        {
            "id": body["assignments"][0]["id"],
            "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                "groupId": site.line,
            },
        }
    ]


def test_errors_are_clean_and_change_nothing(site: Site) -> None:
    err = refused(run(site.data, "policy", "show", "No such policy"))
    assert "no policy is named 'No such policy'" in err
    err = refused(run(site.data, "policy", "assign", "Nope", "--group", "Line 1"))
    assert "no policy is named 'Nope'" in err

    ok(run(site.data, "policy", "assign", "Camera off", "--group", "Line 1"))
    err = refused(run(site.data, "policy", "assign", "Camera off", "--group", "Nobody"))
    assert "no group is named 'Nobody'" in err
    err = refused(
        run(
            site.data, "policy", "assign", "Camera off", "--group", "Line 1", "--exclude", site.line
        )
    )
    assert "both included and excluded" in err
    err = refused(run(site.data, "policy", "assign", "Camera off"))
    assert "--group" in err and "--clear" in err
    err = refused(run(site.data, "policy", "assign", "Camera off", "--clear", "--group", "Spares"))
    assert "--clear" in err
    # None of the refusals touched the assignment made before them.
    with db(site.data) as s:
        rows = list(
            s.scalars(select(PolicyAssignment).where(PolicyAssignment.policy_id == site.camera))
        )
        assert [(r.group_id, r.exclude) for r in rows] == [(site.line, False)]


def test_ambiguous_names_need_the_id(site: Site) -> None:
    twin = create_policy(
        site.data,
        RESTRICTIONS,
        RestrictionsInput,
        {"displayName": "Camera off", "screenCaptureBlocked": True},
    )
    err = refused(run(site.data, "policy", "show", "Camera off"))
    assert "2 policies are named 'Camera off'" in err
    assert site.camera in ok(run(site.data, "policy", "show", site.camera))
    assert twin in ok(run(site.data, "policy", "show", twin))

    ok(run(site.data, "group", "create", "Spares"))
    err = refused(run(site.data, "policy", "assign", site.camera, "--group", "Spares"))
    assert "2 groups are named 'Spares'" in err
    ok(run(site.data, "policy", "assign", site.camera, "--group", site.spares))


def test_assign_is_audited_as_the_os_user(site: Site) -> None:
    ok(run(site.data, "policy", "assign", "Baseline", "--group", "Line 1", "--exclude", "Spares"))
    with db(site.data) as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.activity == "Assign policy")))
    (event,) = events
    assert event.actor == f"cli:{getpass.getuser()}" and event.actor_type == "cli"
    assert event.category == "DeviceCompliancePolicy" and event.result == "success"
    assert event.target_id == site.baseline and event.target_name == "Baseline"
    assert event.details == {"include": [site.line], "exclude": [site.spares]}
