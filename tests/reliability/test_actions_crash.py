"""Remote actions survive crashes (issue 7): a few hundred simulated devices check in,
carry out and confirm actions while the server is killed with SIGKILL again and again. After
the last restart every queued action is done exactly once on its device (restarts counted by
the device, factory resets by its hardware) and its result recorded once (one audit record
per action), and every action an admin was told was queued (204) exists."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from aospmdm import protocol
from aospmdm.agent import AgentError
from aospmdm.agent.client import checkin_async, enroll_async
from aospmdm.agent.device import Device, Hardware
from tests.servers import cli, free_port, quiet_env, start

pytestmark = pytest.mark.reliability
DEVICES = int(os.environ.get("AOSPMDM_CRASH_DEVICES", "200"))
ROUNDS = int(os.environ.get("AOSPMDM_CRASH_ROUNDS", "4"))
CHECKIN_SECONDS = 1.0  # each device checks in about this often (with jitter)
SETTLE_SECONDS = 90  # after the last restart, every action must be finished within this


class Fleet:
    """The simulated devices, checking in from one event loop in a background thread."""

    def __init__(self, base: str, extras: dict[str, object]) -> None:
        self.base, self.extras = base, extras
        self.devices: list[Device] = []
        self.errors: Counter[str] = Counter()
        self.results_sent = 0
        self.stop = threading.Event()
        self.enrolled = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True)

    async def main(self) -> None:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=self.base, timeout=10, limits=limits) as http:
            self.devices = [Device(Hardware(serial=f"CRASH-{n}")) for n in range(DEVICES)]
            slots = asyncio.Semaphore(20)

            async def enroll(device: Device) -> None:
                async with slots:
                    await enroll_async(http, device, self.extras)

            await asyncio.gather(*(enroll(d) for d in self.devices))
            self.enrolled.set()
            await asyncio.gather(*(self.checkins(http, d) for d in self.devices))

    async def checkins(self, http: httpx.AsyncClient, device: Device) -> None:
        rng = random.Random(device.hardware.serial)
        while not self.stop.is_set() and device.state.enrolled:
            await asyncio.sleep(CHECKIN_SECONDS * rng.uniform(0.5, 1.5))
            sent: list[tuple[protocol.Command, protocol.CommandResult]] = []
            try:
                await checkin_async(http, device, sent)
            except AgentError as exc:  # the server is down, or died mid-request
                self.errors[exc.code] += 1
            self.results_sent += len(sent)


def _sqlite(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "aospmdm.db")


def _open_commands(data: Path) -> int:
    with contextlib.closing(_sqlite(data)) as db:
        return int(
            db.execute(
                "SELECT count(*) FROM device_command WHERE state IN ('pending', 'active')"
            ).fetchone()[0]
        )


def test_actions_are_done_once_across_sigkills(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    env = quiet_env(AOSPMDM_PUBLIC_URL=base)
    proc = start(data, port, env)
    fleet: Fleet | None = None
    by_id: dict[str | None, Device] = {}
    acknowledged: Counter[tuple[str, str]] = Counter()  # (device id, action) -> 204s
    kills = 0
    try:
        token = cli(data, "admin", "token", "admin@aospmdm.local", env=env).stdout.split()[-1]
        admin = {"Authorization": f"Bearer {token}"}
        org = httpx.get(f"{base}/beta/organization", headers=admin).json()["value"][0]["id"]
        httpx.post(
            f"{base}/beta/organization/{org}/setMobileDeviceManagementAuthority", headers=admin
        )
        assert cli(data, "license", "set", str(DEVICES), env=env).returncode == 0
        assert cli(data, "profile", "create", "Crash", "--ssid", "s", env=env).returncode == 0
        export = json.loads(cli(data, "token", "export", "Crash", "--out", "-", env=env).stdout)
        fleet = Fleet(base, export["qrCodeContent"])
        fleet.thread.start()
        assert fleet.enrolled.wait(120), "the fleet enrolled"
        began = time.monotonic()
        by_id = {d.state.device_id: d for d in fleet.devices}
        ids = list(by_id)
        # A tenth of the devices are wiped, a tenth deleted; the rest are restarted, often.
        rng = random.Random(7)
        rng.shuffle(ids)
        tenth = max(len(ids) // 10, 1)
        wiped, deleted, restarted = ids[:tenth], ids[tenth : 2 * tenth], ids[2 * tenth :]
        plan = (
            [("wipe", d) for d in wiped]
            + [("delete", d) for d in deleted]
            + [("rebootNow", d) for d in restarted for _ in range(3)]
        )
        rng.shuffle(plan)
        per_round = -(-len(plan) // ROUNDS)
        with httpx.Client(base_url=base, headers=admin, timeout=5) as http:
            for round_ in range(ROUNDS):
                batch = plan[round_ * per_round : (round_ + 1) * per_round]
                kill_at = len(batch) // 3 + rng.randrange(max(len(batch) // 3, 1))
                for n, (action, device_id) in enumerate(batch):
                    path = f"/beta/deviceManagement/managedDevices/{device_id}"
                    try:
                        if action == "delete":
                            r = http.delete(path)
                        else:
                            r = http.post(f"{path}/{action}")
                    except httpx.HTTPError:
                        r = None  # the server died under us: resend after the restart
                    if r is None or r.status_code >= 500:
                        assert r is None, r.text
                        plan.append((action, device_id))
                        continue
                    assert r.status_code == 204, (action, r.status_code, r.text)
                    acknowledged[(device_id, action)] += 1
                    if n == kill_at:  # killed while the admin queues actions
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        kills += 1
                        time.sleep(0.5)  # devices fail to reach it for a moment
                        proc = start(data, port, env)
                # The rest of the plan (what a dead server did not take) goes in the last round.
                if round_ == ROUNDS - 1:
                    for action, device_id in plan[ROUNDS * per_round :]:
                        path = f"/beta/deviceManagement/managedDevices/{device_id}"
                        r = (
                            http.delete(path)
                            if action == "delete"
                            else http.post(f"{path}/{action}")
                        )
                        if r.status_code == 404 and action in ("wipe", "delete"):
                            continue  # the first request went through before the kill
                        assert r.status_code == 204, r.text
                        acknowledged[(device_id, action)] += 1
                time.sleep(0.5)
                # A kill in the middle of the devices' own traffic, too.
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                time.sleep(0.5)
                proc = start(data, port, env)
        queued_in = time.monotonic() - began
        deadline = time.monotonic() + SETTLE_SECONDS
        while _open_commands(data) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _open_commands(data) == 0, "every action finished after the last restart"
        time.sleep(2 * CHECKIN_SECONDS)  # late duplicates, if any, arrive now
    finally:
        if fleet is not None:
            fleet.stop.set()
            fleet.thread.join(30)
        proc.kill()
        proc.wait()

    with contextlib.closing(_sqlite(data)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT id, device_id, action_name, state FROM device_command").fetchall()
        done_audits = Counter(
            json.loads(r[0])["actionId"]
            for r in db.execute(
                "SELECT details FROM audit_event WHERE activity LIKE '%: done on the device'"
            )
        )
        redelivered = db.execute(
            "SELECT count(*) FROM device_command WHERE deliveries > 1"
        ).fetchone()[0]
        remaining = {r[0] for r in db.execute("SELECT id FROM managed_device")}
        confirmed = {
            r[0]
            for r in db.execute(
                "SELECT device_id FROM device_tombstone WHERE confirmed_at IS NOT NULL"
            )
        }
    assert all(state == "done" for _, _, _, state in rows), Counter(r[3] for r in rows)
    assert all(done_audits[command_id] == 1 for command_id, *_ in rows), "each recorded once"
    assert sum(done_audits.values()) == len(rows)
    commands = Counter((device_id, action) for _, device_id, action, _ in rows)
    # Every action the admin was told was queued exists (a repeated wipe is merged).
    for (device_id, action), count in acknowledged.items():
        assert commands[(device_id, action)] >= (1 if action in ("wipe", "delete") else count)
    for device_id in restarted:
        assert by_id[device_id].hardware.reboot_count == commands[(device_id, "rebootNow")]
        assert device_id in remaining
    for device_id in wiped + deleted:
        assert by_id[device_id].hardware.factory_resets == 1, "reset once"
    resets = {d.hardware.serial: d.hardware.factory_resets for d in fleet.devices}
    assert sum(resets.values()) == len(wiped) + len(deleted)
    assert not (set(wiped) | set(deleted)) & remaining
    assert confirmed == set(deleted)
    print(
        f"\ncrash test: {DEVICES} devices, {kills} SIGKILLs in {queued_in:.0f} s; "
        f"{len(rows)} actions "
        f"({dict(Counter(r[2] for r in rows))}) all done, each recorded once; "
        f"{sum(acknowledged.values())} admin requests acknowledged; {redelivered} actions "
        "delivered more than once; "
        f"{fleet.results_sent} results sent by devices (repeats answered from memory); "
        f"restarts on devices {sum(d.hardware.reboot_count for d in fleet.devices)}, "
        f"factory resets {sum(resets.values())}; device errors {dict(fleet.errors)}"
    )
