"""Policies on the hot path (issue 6): check-in throughput of a fleet with no policy against
the same fleet with two restrictions policies, a Wi-Fi profile and a compliance policy
assigned through a dynamic group, and the same server's trivial endpoint, all in one run.
Then the time to judge the whole fleet again when a compliance policy changes (PATCH).

Devices in the policy phase have applied the effective policy (their check-ins carry its
version), so this is the steady state: the server works out the effective set, its version,
and the device's compliance at every check-in, and answers without a policy. The last line
is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx

from aospmdm.agent.simulator import percentile
from bench.checkin import CONNECTIONS, SECONDS, Fleet, measured
from bench.loadgen import drive, http_request
from bench.server import ready_to_enroll, running_server

DEVICES = int(os.environ.get("BENCH_POLICY_DEVICES", "1000"))
FACTS = {"passcodeType": "numeric", "passcodeLength": 6, "lockAfterInactivityMinutes": 5}


def steady_bodies(fleet: Fleet, version: str) -> None:
    """Every device now says it applied ``version`` and has a compliant screen lock."""
    for n, (device_id, key, body) in enumerate(fleet.devices):
        request = json.loads(body)
        request["facts"].update(FACTS)
        request["appliedPolicyVersion"] = version
        fleet.devices[n] = (device_id, key, json.dumps(request).encode())


def main() -> None:
    database = "postgresql" if os.environ.get("AOSPMDM_DATABASE_URL") else "sqlite"
    with running_server(keep_database_url=database == "postgresql") as server:
        server.cli("license", "set", str(DEVICES + 10))
        name = f"Bench policies {os.getpid()}"
        token, secret = ready_to_enroll(server, name)
        api = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        )
        t0 = time.perf_counter()
        fleet = Fleet(server.url, secret, DEVICES)
        enroll_s = time.perf_counter() - t0
        host = server.url.split("//", 1)[1]
        health = http_request("GET", "/healthz", host, {}, b"")
        trivial, _, _ = measured(
            server.pid, drive(server.url, lambda _n: health, SECONDS, CONNECTIONS)
        )
        plain, _, _ = measured(server.pid, drive(server.url, fleet.checkin, SECONDS, CONNECTIONS))

        group = api.post(
            "/beta/groups",
            json={
                "displayName": "Bench fleet",
                "mailEnabled": False,
                "securityEnabled": True,
                "groupTypes": ["DynamicMembership"],
                "membershipRule": f'device.enrollmentProfileName -eq "{name}"',
            },
        )
        group.raise_for_status()
        target = {
            "assignments": [
                {
                    "target": {
                        "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                        "groupId": group.json()["id"],
                    }
                }
            ]
        }
        configs = "/beta/deviceManagement/deviceConfigurations"
        compliance = "/beta/deviceManagement/deviceCompliancePolicies"
        restrictions = "#microsoft.graph.aospDeviceOwnerDeviceConfiguration"
        bodies = [
            (
                configs,
                {"@odata.type": restrictions, "displayName": "Camera", "cameraBlocked": True},
            ),
            (
                configs,
                {
                    "@odata.type": restrictions,
                    "displayName": "Passcode",
                    "passwordRequiredType": "numeric",
                    "passwordMinimumLength": 6,
                },
            ),
            (
                configs,
                {
                    "@odata.type": "#microsoft.graph.aospDeviceOwnerWiFiConfiguration",
                    "displayName": "Production Wi-Fi",
                    "ssid": "prod",
                    "wiFiSecurityType": "wpaPersonal",
                    "preSharedKey": "bench pre-shared key",
                },
            ),
            (
                compliance,
                {
                    "@odata.type": "#microsoft.graph.aospDeviceOwnerCompliancePolicy",
                    "displayName": "Baseline",
                    "passwordRequired": True,
                    "passwordMinimumLength": 6,
                    "osMinimumVersion": "10",
                },
            ),
        ]
        ids = []
        for collection, body in bodies:
            created = api.post(collection, json=body)
            created.raise_for_status()
            ids.append((collection, created.json()["id"]))
            t0 = time.perf_counter()
            api.post(f"{collection}/{created.json()['id']}/assign", json=target).raise_for_status()
            assign_s = time.perf_counter() - t0
        # One check-in tells the effective version; the fleet then applies it.
        first = httpx.post(
            server.url + "/device/v1/checkin",
            content=fleet.devices[0][2],
            headers=fleet.headers(0),
        )
        first.raise_for_status()
        version = first.json()["policy"]["version"]
        steady_bodies(fleet, version)
        with_policies, _, _ = measured(
            server.pid, drive(server.url, fleet.checkin, SECONDS, CONNECTIONS)
        )
        collection, policy_id = ids[-1]
        t0 = time.perf_counter()
        api.patch(f"{collection}/{policy_id}", json={"osMinimumVersion": "11"}).raise_for_status()
        reevaluate_s = time.perf_counter() - t0
        summary = api.get("/beta/deviceManagement/deviceCompliancePolicyDeviceStateSummary").json()
    bad = {s: n for s, n in with_policies.statuses.items() if s != 200}
    out = {
        "devices": DEVICES,
        "database": database,
        "trivial_per_s": round(trivial.per_s, 1),
        "checkins_no_policy_per_s": round(plain.per_s, 1),
        "checkins_with_policies_per_s": round(with_policies.per_s, 1),
        "with_policies_p99_ms": round(percentile(with_policies.latencies_ms, 99) or 0, 2),
        "reevaluate_fleet_s": round(reevaluate_s, 3),
        "assign_compliance_s": round(assign_s, 3),
        "compliant_after": summary["compliantDeviceCount"],
    }
    print(
        f"bench/policies.py ({database}; {DEVICES} devices enrolled in {enroll_s:.1f} s, "
        f"{CONNECTIONS} connections, {SECONDS:.0f} s per phase)"
    )
    for label, r in (
        ("GET /healthz", trivial),
        ("check-in, no policy", plain),
        ("check-in, 4 policies", with_policies),
    ):
        print(
            f"  {label:22} {r.per_s:7.0f}/s  p50 {percentile(r.latencies_ms, 50) or 0:6.2f} ms"
            f"  p99 {percentile(r.latencies_ms, 99) or 0:6.2f} ms"
        )
    print(
        f"  with policies / no policy = {with_policies.per_s / plain.per_s:.2f};"
        f" with policies / trivial = {with_policies.per_s / trivial.per_s:.2f};"
        f" non-200 answers: {bad or 'none'}"
    )
    print(
        f"  assigning the compliance policy (judges {DEVICES} devices): {assign_s:.2f} s;"
        f" PATCH of it (judges them again): {reevaluate_s:.2f} s"
        f" ({reevaluate_s / DEVICES * 1000:.2f} ms per device);"
        f" compliant after: {summary['compliantDeviceCount']}"
    )
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
