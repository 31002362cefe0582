"""Live membership against the real device table: a full recompute (database bounds plus the
evaluator for the undecided rows) gives exactly the evaluator's members, on random rules and
devices, on SQLite and PostgreSQL, also when it replaces an earlier rule's members."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from aospmdm.core import clock
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.groups import service as groups
from aospmdm.groups.models import DeviceGroup, GroupMember
from aospmdm.groups.rules import RuleError, parse
from aospmdm.groups.schemas import GroupCreate, GroupUpdate
from aospmdm.tenant import access
from tests.conftest import Env
from tests.groups.test_rules import RULES

TEXT = st.sampled_from(
    [
        "Factory 1",
        "factory 2",
        "STRASSE",
        "Straße",
        "Kiosk",
        "\u017fs",
        "a%b",
        "x_y",
        "",
        "Navigator 500",
        "HMT-1",
        "12.1",
        "ÄÖ",
    ]
)
DEVICE = st.fixed_dictionaries(
    {
        "device_name": TEXT,
        "enrollment_profile_name": TEXT,
        "manufacturer": TEXT,
        "model": TEXT,
        "os_version": TEXT,
        "serial_number": TEXT,
        "is_rooted": st.none() | st.booleans(),
        "device_category": st.none() | TEXT,
        "extension_attributes": st.dictionaries(
            st.sampled_from(["extensionAttribute1", "extensionAttribute7"]), TEXT, max_size=2
        ),
    }
)


def load(env: Env, fleet: list[dict[str, Any]]) -> list[str]:
    now = clock.now()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "enrolled_at": now,
            "last_sync_at": now,
            "agent_version": "24.9.0",
            "public_key": "-",
            "security_patch_level": "",
            "management_state": "managed",
            "compliance_state": "unknown",
        }
        | d
        for d in fleet
    ]
    with env.db() as s:
        s.execute(delete(GroupMember))
        s.execute(delete(DeviceGroup))
        s.execute(delete(ManagedDevice))
        s.execute(insert(ManagedDevice.__table__), rows)
    return [r["id"] for r in rows]


def expected(env: Env, text: str) -> set[str]:
    rule = parse(text)
    with env.db() as s:
        return {
            row.id
            for row in s.execute(devices.rule_rows())
            if rule.matches(devices.rule_properties(row._mapping))
        }


def members(env: Env, gid: str) -> set[str]:
    with env.db() as s:
        return set(s.scalars(select(GroupMember.device_id).where(GroupMember.group_id == gid)))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=RULES, second=RULES, fleet=st.lists(DEVICE, min_size=1, max_size=8))
def test_recompute_equals_the_evaluator(
    env: Env, first: str, second: str, fleet: list[dict[str, Any]]
) -> None:
    try:
        parse(first), parse(second)
    except RuleError:
        return  # the generator can make rules over properties a device rule refuses
    load(env, fleet)
    actor = access.cli_actor()
    with env.db() as s:
        g = groups.create_group(
            s,
            actor,
            GroupCreate.model_validate(
                {"displayName": "g", "groupTypes": ["DynamicMembership"], "membershipRule": first}
            ),
        )
    assert members(env, g.id) == expected(env, first), first
    with env.db() as s:
        groups.update_group(s, actor, g.id, GroupUpdate.model_validate({"membershipRule": second}))
    assert members(env, g.id) == expected(env, second), second
