"""A server with an enrollment profile and a dynamic group of the devices it enrolls, and the
reference agent's devices enrolled with it: shared by the agent's end-to-end tests."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from aospmdm.agent import qr
from aospmdm.agent.client import AgentClient
from aospmdm.agent.device import Device
from aospmdm.core import clock
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from tests.conftest import Env

D = "/beta/deviceManagement/managedDevices"


def make_fleet(env: Env, tmp_path: Path, profile_name: str, group_name: str) -> Fleet:
    """A server with an enrollment profile and a dynamic group of the devices it enrolls."""
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    with env.db() as s:
        tenant.set_license_count(s, access.cli_actor(), 20)
    expires = (clock.now() + timedelta(days=7)).isoformat()
    profile = env.call(
        "POST",
        "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles",
        json={
            "displayName": profile_name,
            "wifiSsid": "Staging",
            "wifiSecurityType": "wpa",
            "wifiPassword": "staging-key-1",
            "tokenExpirationDateTime": expires,
        },
    ).json()
    png = tmp_path / "qr.png"
    path = f"/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles/{profile['id']}"
    png.write_bytes(env.call("GET", f"{path}/qrCode.png").content)
    group = env.call(
        "POST",
        "/beta/groups",
        json={
            "displayName": group_name,
            "mailEnabled": False,
            "securityEnabled": True,
            "mailNickname": group_name.lower().replace(" ", ""),
            "groupTypes": ["DynamicMembership"],
            "membershipRule": f'device.enrollmentProfileName -eq "{profile_name}"',
            "membershipRuleProcessingState": "On",
        },
    )
    assert group.status_code == 201, group.text
    return Fleet(env, png, group.json()["id"], tmp_path)


class Fleet:
    """A server with an enrollment profile, a dynamic group of its devices, and helpers to
    make policies for that group and devices that enroll with the profile."""

    def __init__(self, env: Env, png: Path, group_id: str, tmp_path: Path):
        self.env, self.png, self.group_id, self.tmp_path = env, png, group_id, tmp_path
        self.agent = AgentClient(http=env.client)

    def policy(self, collection: str, odata_type: str, **settings: Any) -> str:
        body = {"@odata.type": f"#microsoft.graph.{odata_type}", **settings}
        r = self.env.call("POST", collection, json=body)
        assert r.status_code == 201, r.text
        policy_id = str(r.json()["id"])
        self.assign(collection, policy_id, [self.group_id])
        return policy_id

    def assign(self, collection: str, policy_id: str, groups: list[str]) -> None:
        targets = [
            {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g}}
            for g in groups
        ]
        r = self.env.call("POST", f"{collection}/{policy_id}/assign", json={"assignments": targets})
        assert r.status_code == 200, r.text

    def device(self, serial: str, **hardware: Any) -> Device:
        d = Device.open(self.tmp_path / serial, serial=serial, **hardware)
        self.agent.enroll(d, qr.read(self.png))
        d.save()
        return d

    def statuses(self, collection: str, policy_id: str) -> dict[str, dict[str, Any]]:
        r = self.env.call("GET", f"{collection}/{policy_id}/deviceStatuses")
        assert r.status_code == 200, r.text
        return {s["deviceId"]: s for s in r.json()["value"]}

    def compliance_state(self, d: Device) -> str:
        return str(self.env.call("GET", f"{D}/{d.state.device_id}").json()["complianceState"])
