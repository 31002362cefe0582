"""Dynamic groups at scale (issue 5): 100,000 devices with varied properties and 50 varied
rules, on SQLite (or PostgreSQL when AOSPMDM_DATABASE_URL names one). Measures a full
recompute of every rule (the database narrows candidates, the evaluator decides) and the
time to update one device's memberships after a property change. The last line is one
JSON object."""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, select, update

from aospmdm.core import clock
from aospmdm.core.db import make_engine, make_sessionmaker, migrate, transaction
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.groups import service as groups
from aospmdm.groups.models import DeviceGroup, GroupMember
from aospmdm.groups.schemas import GroupCreate
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant

DEVICES = int(os.environ.get("BENCH_GROUP_DEVICES", "100000"))
UPDATES = 300
MODELS = [
    "Navigator 500",
    "HMT-1",
    "HMT-1Z1",
    "PICO 4 Enterprise",
    "Quest 3",
    "Vive Focus 3",
    "M400",
    "ARGO",
    "ThinkReality A3",
    "Neo3 Pro",
]
MAKERS = ["RealWear", "PICO", "Meta", "HTC", "Vuzix", "DigiLens", "Lenovo"]
PROFILES = [f"Factory {n} devices" for n in range(1, 21)]
CATEGORIES = [None, "Scanners", "Headsets", "Training", "Spare"]


def rules() -> list[str]:
    out: list[str] = []
    for n, profile in enumerate(PROFILES):
        out.append(f'(device.enrollmentProfileName -eq "{profile}")')
        if n % 2:
            out.append(
                f'device.enrollmentProfileName -eq "{profile}" -and '
                f'device.deviceModel -startsWith "{MODELS[n % len(MODELS)][:3]}"'
            )
    out += [
        'device.deviceModel -in ["HMT-1", "HMT-1Z1", "Navigator 500"]',
        'device.deviceManufacturer -eq "RealWear" -or device.deviceManufacturer -eq "Vuzix"',
        'device.deviceOSVersion -startsWith "12"',
        'device.deviceCategory -eq "Scanners"',
        'device.deviceCategory -ne "Spare" -and device.isRooted -eq false',
        'device.extensionAttribute1 -contains "line"',
        'device.displayName -match "^RW-[0-9]{3}7"',
        'device.devicePhysicalIds -any (_ -startsWith "[SerialNumber]:SN1")',
        'not (device.deviceModel -contains "Quest")',
        'device.deviceOwnership -eq "Company" -and '
        'device.enrollmentProfileName -endsWith "7 devices"',
    ]
    for n, model in enumerate(MODELS):
        out.append(
            f'device.deviceModel -eq "{model}" -and device.deviceOSVersion -ne "{10 + n % 4}"'
        )
    return out[:50]


def main() -> None:
    url = os.environ.get("AOSPMDM_DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite:///{Path(tmp) / 'groups.db'}"
        migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        tenant.ensure_bootstrapped(sessions)
        rng = random.Random(5)
        now = clock.now()
        rows = []
        for n in range(DEVICES):
            rows.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "device_name": f"RW-{n:06d}",
                    "enrollment_profile_name": rng.choice(PROFILES),
                    "enrolled_at": now,
                    "last_sync_at": now,
                    "serial_number": f"SN{n:07d}",
                    "manufacturer": rng.choice(MAKERS),
                    "model": rng.choice(MODELS),
                    "os_version": rng.choice(["10", "11", "12", "12.1", "13"]),
                    "security_patch_level": "2024-05-05",
                    "agent_version": "24.9.0",
                    "public_key": "-",
                    "is_rooted": rng.random() < 0.01,
                    "device_category": rng.choice(CATEGORIES),
                    "extension_attributes": {"extensionAttribute1": f"line {rng.randrange(9)}"}
                    if rng.random() < 0.3
                    else {},
                    "management_state": "managed",
                    "compliance_state": "unknown",
                }
            )
        with transaction(sessions) as s:
            for i in range(0, len(rows), 5000):
                s.execute(insert(ManagedDevice.__table__), rows[i : i + 5000])
        texts = rules()
        actor = access.cli_actor()
        start = time.perf_counter()
        with transaction(sessions) as s:
            for n, text in enumerate(texts):
                groups.create_group(
                    s,
                    actor,
                    GroupCreate.model_validate(
                        {
                            "displayName": f"Rule {n}",
                            "groupTypes": ["DynamicMembership"],
                            "membershipRule": text,
                        }
                    ),
                )
        full = time.perf_counter() - start
        with transaction(sessions) as s:
            ids = list(s.scalars(select(ManagedDevice.id).limit(UPDATES)))
            memberships = s.scalar(select(func.count()).select_from(GroupMember))
        # A fact changes (as at check-in): the device's memberships are re-evaluated in the
        # same transaction, through the hook devices announce changes with.
        table = devices.TABLE
        start = time.perf_counter()
        for n, device_id in enumerate(ids):
            with engine.begin() as conn:
                conn.execute(
                    update(table)
                    .where(table.c.id == device_id)
                    .values(device_category=CATEGORIES[1 + n % 4])
                )
                groups.refresh_device(conn, device_id)
        per_update = (time.perf_counter() - start) / len(ids)
        # The same through an admin's edit (ORM, audit record, scope check).
        start = time.perf_counter()
        for n, device_id in enumerate(ids):
            with transaction(sessions) as s:
                devices.update_device(
                    s, actor, device_id, {"deviceCategory": CATEGORIES[n % 4 + 1]}
                )
        per_edit = (time.perf_counter() - start) / len(ids)
        with transaction(sessions) as s:
            count = s.scalar(select(func.count()).select_from(DeviceGroup))
        engine.dispose()
    database = "postgresql" if os.environ.get("AOSPMDM_DATABASE_URL") else "sqlite"
    print(
        f"bench/groups.py ({database}): {DEVICES} devices, {count} dynamic rules, "
        f"{memberships} memberships after the full recompute"
    )
    print(f"  full recompute of every rule: {full:.2f} s")
    print(
        f"  one device's memberships after a property change (the fact's UPDATE and the "
        f"re-evaluation against every rule, one transaction): {per_update * 1000:.2f} ms"
    )
    print(
        f"  the same through an admin's edit (PATCH managedDevice path: ORM, scope check, "
        f"audit record): {per_edit * 1000:.2f} ms"
    )
    print(
        json.dumps(
            {
                "devices": DEVICES,
                "rules": count,
                "full_recompute_s": round(full, 3),
                "per_device_update_ms": round(per_update * 1000, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
