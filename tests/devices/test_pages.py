"""The device console through HTTP: the Devices list with its profile filter and paging, a
device's Overview (properties, agent and authenticator versions, the supported-device flag),
its Discovered apps tab, and RBAC on each page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from aospmdm import protocol
from aospmdm.core import clock
from aospmdm.devices import service as devices
from aospmdm.enrollment.models import EnrollmentProfile
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from aospmdm.tenant.schemas import RoleDefinitionCreate
from tests.conftest import PASSWORD, Env
from tests.sync.device import APPS, Device, secret_of
from tests.web.test_sign_in import sign_in

PROFILES = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
DEVICES = "/beta/deviceManagement/managedDevices"
BASE = "/console/devices"
ENROLLMENT = "/console/devices/enrollment/aosp-userless"


@pytest.fixture
def ready(env: Env) -> Env:
    """MDM authority set, licenses to spare, and the full admin signed in to the console."""
    r = env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    assert r.status_code == 204
    with env.db() as s:
        tenant.set_license_count(s, access.cli_actor(), 200)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return env


def profile(env: Env, name: str, tags: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": name,
        "wifiSsid": "staging",
        "deviceNameTemplate": "RW-{{SERIAL}}",
        "tokenExpirationDateTime": clock.iso(clock.now() + timedelta(days=30)),
    }
    if tags:
        body["roleScopeTagIds"] = tags
    r = env.call("POST", PROFILES, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def required_apps(env: Env) -> list[protocol.InstalledApp]:
    s = env.settings
    return [
        protocol.InstalledApp(
            package_name=s.agent_package,
            version_name="24.9.0",
            version_code=240900,
            display_name="aospmdm agent",
        ),
        protocol.InstalledApp(
            package_name=s.authenticator_package,
            version_name="6.2409.1",
            version_code=62409010,
            display_name="Authenticator",
        ),
    ]


def enroll(env: Env, p: dict[str, Any], serial: str, **facts: Any) -> Device:
    """Enroll a device through the protocol, with the required apps and a launcher."""
    dev = Device(env.client, serial=serial)
    dev.apps = [*required_apps(env), *APPS]
    body = dev.facts(**facts).model_dump(by_alias=True, mode="json")
    r = dev.enroll(secret_of(p), facts=body)
    assert r.status_code == 201, r.text
    return dev


def api_device(env: Env, dev: Device) -> dict[str, Any]:
    r = env.call("GET", f"{DEVICES}/{dev.device_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def listed(page: str) -> list[str]:
    """The device names in the list, in order."""
    return re.findall(r'<a href="/console/devices/[0-9a-f-]{36}">([^<]+)</a>', page)


def test_list_shows_devices_with_model_os_and_last_check_in(ready: Env) -> None:
    line1 = profile(ready, "Line 1 headsets")
    line2 = profile(ready, "Line 2 headsets")
    a = enroll(ready, line1, "NAV-A", os_version="11.3")
    enroll(ready, line1, "NAV-B")
    enroll(ready, line2, "HMT-C", model="HMT-1", os_version="11.2")
    clock.advance(600)
    r = a.signed("/device/v1/checkin", a.checkin_body(os_version="11.4"))
    assert r.status_code == 200, r.text

    r = ready.client.get(BASE)
    assert r.status_code == 200
    page = r.text
    assert "Enrollment &gt; Android &gt; AOSP &gt; Corporate-owned, userless devices" in page
    assert f'href="{ENROLLMENT}"' in page
    assert listed(page) == ["RW-HMT-C", "RW-NAV-A", "RW-NAV-B"]
    assert f'href="{BASE}/{a.device_id}"' in page
    row = page.split(">RW-NAV-A</a>")[1].split("</tr>")[0]
    last_sync = api_device(ready, a)["lastSyncDateTime"]
    # The OS version and last check-in are those of the latest check-in.
    for shown in ("RealWear", "Navigator 500", "11.4", "Line 1 headsets", "Managed"):
        assert f"<td>{shown}</td>" in row, shown
    assert f"<td>{last_sync[:19]}Z</td>" in row, "last check-in, to the second"
    assert "HMT-1" in page and "Line 2 headsets" in page
    assert "Devices 1 to 3 of 3" in page

    # The filter offers the profiles of the devices, and narrows the list to one.
    assert '<select id="profile" name="profile">' in page
    assert '<option value="Line 1 headsets">' in page and '<option value="Line 2 headsets">' in page
    r = ready.client.get(BASE, params={"profile": "Line 1 headsets"})
    assert r.status_code == 200
    assert listed(r.text) == ["RW-NAV-A", "RW-NAV-B"]
    assert '<option value="Line 1 headsets" selected>' in r.text
    assert listed(ready.client.get(BASE, params={"profile": "Line 2 headsets"}).text) == [
        "RW-HMT-C"
    ]
    none = ready.client.get(BASE, params={"profile": "Gone"})
    assert none.status_code == 200 and listed(none.text) == []
    assert "No devices enrolled with the profile Gone." in none.text


def test_list_pages_by_100(ready: Env) -> None:
    p = profile(ready, "Warehouse")
    other = profile(ready, "Office")
    facts = Device(ready.client).facts()
    with ready.db() as s:
        for i, prof in [(i, p) for i in range(105)] + [(999, other)]:
            devices.enroll_device(
                s,
                name=f"DEV-{i:04d}",
                profile_id=prof["id"],
                profile_name=prof["displayName"],
                profile_model=EnrollmentProfile,
                facts=facts.model_copy(update={"serial_number": f"S{i}"}),
                agent_version="24.9.0",
                public_key="unused",
                apps=[],
                now=clock.now(),
            )
    first = ready.client.get(BASE, params={"profile": "Warehouse"}).text
    names = listed(first)
    assert names == [f"DEV-{i:04d}" for i in range(100)]
    assert "Devices 1 to 100 of 105" in first
    assert 'href="/console/devices?profile=Warehouse&amp;skip=100" rel="next"' in first
    assert 'rel="prev"' not in first
    second = ready.client.get(BASE, params={"profile": "Warehouse", "skip": 100}).text
    assert listed(second) == [f"DEV-{i:04d}" for i in range(100, 105)]
    assert "Devices 101 to 105 of 105" in second
    assert 'href="/console/devices?profile=Warehouse" rel="prev"' in second
    assert 'rel="next"' not in second
    everything = ready.client.get(BASE, params={"skip": 100}).text
    assert listed(everything) == [f"DEV-{i:04d}" for i in range(100, 105)] + ["DEV-0999"]
    assert ready.client.get(BASE, params={"skip": -1}).status_code == 400


def test_device_page_shows_properties_and_the_agent_and_authenticator(ready: Env) -> None:
    plant = ready.tag("Plant 7")
    p = profile(ready, "Line 7 headsets", tags=[plant])
    dev = enroll(ready, p, "NAV500-0042", battery_level=64)
    r = ready.client.get(f"{BASE}/{dev.device_id}")
    assert r.status_code == 200
    page = r.text
    d = api_device(ready, dev)
    for label, value in (
        ("Device name", "RW-NAV500-0042"),
        ("Serial number", "NAV500-0042"),
        ("Manufacturer", "RealWear"),
        ("Model", "Navigator 500"),
        ("OS version", "11"),
        ("In Intune&#39;s supported devices", "Yes (minimum firmware 1.1)"),
        ("Security patch level", "2024-05-05"),
        ("Enrollment profile", "Line 7 headsets"),
        ("Enrolled (UTC)", d["enrolledDateTime"][:19] + "Z"),
        ("Last check-in (UTC)", d["lastSyncDateTime"][:19] + "Z"),
        ("Management state", "Managed"),
        ("Compliance state", "Unknown"),
        ("Agent version", "24.9.0"),
        ("Encryption", "Encrypted"),
        ("Rooted", "No"),
        ("Battery", "64%"),
        ("Scope tags", "Plant 7"),
    ):
        assert f"<dt>{label}</dt><dd>{value}</dd>" in page, label
    assert 'id="unsupported"' not in page, "a Navigator 500 is on Intune's list"

    # The versions of the agent and the authenticator, from the device's discovered apps.
    required = page.split('id="required-apps"')[1].split("</table>")[0]
    s = ready.settings
    assert f"<code>{s.agent_package}</code>" in required and "<td>24.9.0</td>" in required
    assert f"<code>{s.authenticator_package}</code>" in required
    assert "<td>6.2409.1</td>" in required and "<td>62409010</td>" in required

    # Tabs: Overview and Discovered apps.
    assert f'<a href="{BASE}/{dev.device_id}" aria-current="page">Overview</a>' in page
    assert f'<a href="{BASE}/{dev.device_id}/apps">Discovered apps</a>' in page


def test_device_page_flags_a_model_or_firmware_outside_intunes_list(ready: Env) -> None:
    p = profile(ready, "Mixed")
    pixel = enroll(ready, p, "PIXEL-1", manufacturer="Google", model="Pixel 7", os_version="14")
    old = enroll(ready, p, "HMT-OLD", model="HMT-1", os_version="10.9")
    fine = enroll(ready, p, "HMT-NEW", model="hmt-1", os_version="11.10")

    page = ready.client.get(f"{BASE}/{pixel.device_id}").text
    flag = page.split('id="unsupported"')[1].split("</p>")[0]
    assert "Google Pixel 7 is not in Intune&#39;s list of supported AOSP devices." in flag
    assert "managed all the same" in flag
    page = ready.client.get(f"{BASE}/{old.device_id}").text
    assert "Firmware 10.9 is older than the minimum 11.2 for this model." in page
    assert 'id="unsupported"' not in ready.client.get(f"{BASE}/{fine.device_id}").text
    # Flagged, never refused: the devices are enrolled and check in.
    assert pixel.checkin().status_code == 200


def test_discovered_apps_tab_lists_each_application_version(ready: Env) -> None:
    dev = enroll(ready, profile(ready, "Line 1"), "NAV-1")
    r = ready.client.get(f"{BASE}/{dev.device_id}/apps")
    assert r.status_code == 200
    page = r.text
    assert "<th>Application Version</th>" in page
    assert "<th>Application</th>" in page and "<th>Version code</th>" in page
    assert f'<a href="{BASE}/{dev.device_id}/apps" aria-current="page">Discovered apps</a>' in page
    rows = re.findall(
        r"<tr>\s*<td>([^<]*)</td>\s*<td><code>([^<]*)</code></td>\s*<td>([^<]*)</td>"
        r"\s*<td>([^<]*)</td>",
        page,
    )
    s = ready.settings
    assert sorted(rows) == sorted(
        [
            ("aospmdm agent", s.agent_package, "24.9.0", "240900"),
            ("Authenticator", s.authenticator_package, "6.2409.1", "62409010"),
            ("Launcher", "com.realwear.launcher", "2.1.0", "210"),
        ]
    )


def test_scoped_admin_sees_only_devices_of_their_tags(ready: Env) -> None:
    a = ready.tag("Plant A")
    b = ready.tag("Plant B")
    mine = enroll(ready, profile(ready, "Plant A headsets", tags=[a]), "A-1")
    other = enroll(ready, profile(ready, "Plant B headsets", tags=[b]), "B-1")
    ready.admin("Read Only Operator", tags=["Plant A"], email="a-reader@example.com")
    ready.client.cookies.clear()
    assert sign_in(ready.client, "a-reader@example.com", PASSWORD).status_code == 303

    page = ready.client.get(BASE).text
    assert listed(page) == ["RW-A-1"]
    assert "Plant B headsets" not in page, "not even as a filter choice"
    assert listed(ready.client.get(BASE, params={"profile": "Plant B headsets"}).text) == []
    assert ready.client.get(f"{BASE}/{mine.device_id}").status_code == 200
    assert ready.client.get(f"{BASE}/{mine.device_id}/apps").status_code == 200
    for path in (f"{BASE}/{other.device_id}", f"{BASE}/{other.device_id}/apps"):
        r = ready.client.get(path)
        assert r.status_code == 404, path
        assert "RW-B-1" not in r.text


def test_admin_without_devices_read_is_refused(ready: Env) -> None:
    dev = enroll(ready, profile(ready, "Line 1"), "NAV-1")
    with ready.db() as s:
        role = RoleDefinitionCreate.model_validate(
            {
                "displayName": "Enrollment only",
                "rolePermissions": [
                    {"resourceActions": [{"allowedResourceActions": ["enrollmentProfiles.read"]}]}
                ],
            }
        )
        tenant.create_role(s, access.cli_actor(), role)
    ready.admin("Enrollment only", email="enroller@example.com")
    ready.client.cookies.clear()
    assert sign_in(ready.client, "enroller@example.com", PASSWORD).status_code == 303

    for path in (f"{BASE}/{dev.device_id}", f"{BASE}/{dev.device_id}/apps"):
        r = ready.client.get(path)
        assert r.status_code == 403, path
        assert "devices.read" in r.text and "RW-NAV-1" not in r.text
    # The overview refuses the list but keeps the way to enrollment.
    r = ready.client.get(BASE)
    assert r.status_code == 403
    assert "devices.read" in r.text and "RW-NAV-1" not in r.text
    assert f'href="{ENROLLMENT}"' in r.text
    assert ready.client.get(ENROLLMENT).status_code == 200
    refused = ready.audit(**{"$filter": "activityOperationType eq 'Refused'"})
    activities = {e["activity"] for e in refused}
    assert {f"GET {BASE}", f"GET {BASE}/{dev.device_id}"} <= activities


def test_unknown_device_is_not_found_and_the_console_needs_sign_in(ready: Env) -> None:
    assert ready.client.get(f"{BASE}/00000000-0000-0000-0000-000000000000").status_code == 404
    ready.client.cookies.clear()
    r = ready.client.get(BASE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
