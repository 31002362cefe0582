"""The rules of policies without the database: the compliance evaluation table (OS and patch
comparisons, passcode rules, unknown facts), merging (most restrictive wins), and the device's
complianceState from grace periods, the validity period and secureByDefault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aospmdm.policies import evaluation
from aospmdm.policies.evaluation import Facts, PolicyRow
from aospmdm.policies.schemas import RESTRICTION_SETTINGS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = Facts(
    os_version="13",
    security_patch_level="2024-06-05",
    is_rooted=False,
    is_encrypted=True,
    passcode_type="numericComplex",
    passcode_length=6,
    lock_after_inactivity_minutes=5,
)


def facts(**over: Any) -> Facts:
    return Facts(**{**GOOD.__dict__, **over})


def judged(settings: dict[str, Any], f: Facts) -> dict[str, str]:
    return {r.setting: r.status for r in evaluation.check_compliance(settings, f)}


# (settings, facts changes, expected status of the one setting)
TABLE: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"securityBlockJailbrokenDevices": True}, {}, "compliant"),
    ({"securityBlockJailbrokenDevices": True}, {"is_rooted": True}, "nonCompliant"),
    ({"securityBlockJailbrokenDevices": True}, {"is_rooted": None}, "unknown"),
    ({"osMinimumVersion": "13"}, {}, "compliant"),
    ({"osMinimumVersion": "13"}, {"os_version": "12.1"}, "nonCompliant"),
    ({"osMinimumVersion": "12.1"}, {"os_version": "12"}, "nonCompliant"),
    ({"osMinimumVersion": "12.1"}, {"os_version": "12.1.0"}, "compliant"),
    ({"osMinimumVersion": "9"}, {"os_version": "10"}, "compliant"),  # numeric, not text order
    ({"osMinimumVersion": "10"}, {"os_version": "9"}, "nonCompliant"),
    ({"osMinimumVersion": "12"}, {"os_version": "13 QPR1"}, "compliant"),
    ({"osMinimumVersion": "12"}, {"os_version": "unknown"}, "nonCompliant"),
    ({"osMaximumVersion": "13"}, {"os_version": "13.0.1"}, "nonCompliant"),
    ({"osMaximumVersion": "13"}, {"os_version": "13"}, "compliant"),
    ({"osMaximumVersion": "13.1"}, {"os_version": "13.0.9"}, "compliant"),
    ({"minAndroidSecurityPatchLevel": "2024-06-01"}, {}, "compliant"),
    ({"minAndroidSecurityPatchLevel": "2024-06-05"}, {}, "compliant"),
    ({"minAndroidSecurityPatchLevel": "2024-06-06"}, {}, "nonCompliant"),
    ({"minAndroidSecurityPatchLevel": "2024-01-01"}, {"security_patch_level": ""}, "unknown"),
    (
        {"minAndroidSecurityPatchLevel": "2024-01-01"},
        {"security_patch_level": "June"},
        "nonCompliant",
    ),
    ({"passwordRequired": True}, {}, "compliant"),
    ({"passwordRequired": True}, {"passcode_type": "none"}, "nonCompliant"),
    ({"passwordRequired": True}, {"passcode_type": None}, "unknown"),
    ({"passwordRequiredType": "numeric"}, {"passcode_type": "numeric"}, "compliant"),
    ({"passwordRequiredType": "numeric"}, {"passcode_type": "alphanumeric"}, "compliant"),
    ({"passwordRequiredType": "numericComplex"}, {"passcode_type": "numeric"}, "nonCompliant"),
    ({"passwordRequiredType": "numeric"}, {"passcode_type": "none"}, "nonCompliant"),
    ({"passwordMinimumLength": 6}, {}, "compliant"),
    ({"passwordMinimumLength": 7}, {}, "nonCompliant"),
    ({"passwordMinimumLength": 4}, {"passcode_type": "none", "passcode_length": 0}, "nonCompliant"),
    ({"passwordMinutesOfInactivityBeforeLock": 5}, {}, "compliant"),
    ({"passwordMinutesOfInactivityBeforeLock": 4}, {}, "nonCompliant"),
    (
        {"passwordMinutesOfInactivityBeforeLock": 15},
        {"lock_after_inactivity_minutes": 0},
        "nonCompliant",
    ),
    (
        {"passwordMinutesOfInactivityBeforeLock": 15},
        {"lock_after_inactivity_minutes": None},
        "unknown",
    ),
    ({"passwordMinutesOfInactivityBeforeLock": 15}, {"passcode_type": "none"}, "nonCompliant"),
    ({"storageRequireEncryption": True}, {}, "compliant"),
    ({"storageRequireEncryption": True}, {"is_encrypted": False}, "nonCompliant"),
    ({"storageRequireEncryption": True}, {"is_encrypted": None}, "unknown"),
]


@pytest.mark.parametrize(("settings", "over", "expected"), TABLE)
def test_the_evaluation_table(
    settings: dict[str, Any], over: dict[str, Any], expected: str
) -> None:
    [result] = evaluation.check_compliance(settings, facts(**over))
    assert result.status == expected
    assert (result.reason == "") == (expected == "compliant")
    if expected == "unknown":
        assert result.current is None


def test_settings_that_are_off_are_not_evaluated() -> None:
    off = {
        "securityBlockJailbrokenDevices": False,
        "passwordRequired": False,
        "storageRequireEncryption": False,
    }
    assert (
        evaluation.check_compliance(
            off, facts(is_rooted=True, passcode_type="none", is_encrypted=False)
        )
        == []
    )


@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=3),
    st.lists(st.integers(0, 30), min_size=1, max_size=3),
)
def test_os_version_comparison_is_numeric_and_total(a: list[int], b: list[int]) -> None:
    ta = evaluation.os_version_tuple(".".join(map(str, a)))
    tb = evaluation.os_version_tuple(".".join(map(str, b)))
    assert ta is not None and tb is not None
    pad = lambda xs: tuple(xs + [0] * (4 - len(xs)))  # noqa: E731
    assert (ta < tb) == (pad(a) < pad(b))
    minimum = {"osMinimumVersion": ".".join(map(str, b))}
    status = judged(minimum, facts(os_version=".".join(map(str, a))))["osMinimumVersion"]
    assert (status == "compliant") == (pad(a) >= pad(b))


# --- merging ----------------------------------------------------------------------------


def row(n: int, **settings: Any) -> PolicyRow:
    return PolicyRow(
        id=f"p{n}",
        kind="restrictions",
        display_name=f"P{n}",
        settings=settings,
        version=1,
        created_at=T0 + timedelta(minutes=n),
    )


VALUES = {
    s.name: (
        st.booleans()
        if s.kind == "bool"
        else st.integers(s.minimum or 0, s.maximum or 0)
        if s.kind == "int"
        else st.sampled_from(s.choices)
    )
    for s in RESTRICTION_SETTINGS
}
SETTINGS = st.fixed_dictionaries({}, optional=VALUES)  # type: ignore[arg-type]


@given(st.lists(SETTINGS, min_size=1, max_size=4))
def test_merging_takes_the_most_restrictive_value_in_any_order(
    policies: list[dict[str, Any]],
) -> None:
    rows = [row(n, **s) for n, s in enumerate(policies)]
    merged, winners = evaluation.merge_restrictions(rows)
    again, _ = evaluation.merge_restrictions(list(reversed(rows)))
    assert merged == again, "order of assignment does not matter"
    for setting in RESTRICTION_SETTINGS:
        given_values = [p[setting.name] for p in policies if setting.name in p]
        if not given_values:
            assert setting.name not in merged
            continue
        value = merged[setting.name]
        assert value in given_values
        for other in given_values:
            assert setting.stricter_of(value, other) == value
        assert winners[setting.name].settings[setting.name] == value
        # The winner is the oldest policy giving that value.
        first = next(r for r in rows if r.settings.get(setting.name) == value)
        assert winners[setting.name].id == first.id


def test_an_empty_set_has_the_empty_version() -> None:
    eff = evaluation.effective([], lambda s: s)
    assert eff.version == evaluation.EMPTY_VERSION and eff.policy.restrictions == {}
    one = evaluation.effective([row(1, cameraBlocked=True)], lambda s: s)
    assert one.version != evaluation.EMPTY_VERSION and len(one.version) == 16


# --- the device's complianceState --------------------------------------------------------------


def test_compliance_state_table() -> None:
    now = T0
    state = evaluation.device_compliance
    assert state([], secure_by_default=False, stale=False, now=now) == "compliant"
    assert state([("unknown", None)], secure_by_default=False, stale=False, now=now) == "unknown"
    assert (
        state(
            [("unknown", None), ("compliant", None)], secure_by_default=False, stale=False, now=now
        )
        == "unknown"
    )
    assert (
        state(
            [("unknown", None), ("nonCompliant", now)],
            secure_by_default=False,
            stale=False,
            now=now,
        )
        == "noncompliant"
    )
    assert (
        state([("unknown", None)], secure_by_default=False, stale=True, now=now) == "noncompliant"
    )
    assert state([], secure_by_default=True, stale=False, now=now) == "noncompliant"
    assert state([("compliant", None)], secure_by_default=True, stale=False, now=now) == "compliant"
    assert (
        state([("compliant", None)], secure_by_default=False, stale=True, now=now) == "noncompliant"
    )
    later = now + timedelta(hours=2)
    assert (
        state([("nonCompliant", later)], secure_by_default=False, stale=False, now=now)
        == "inGracePeriod"
    )
    assert (
        state([("nonCompliant", now)], secure_by_default=False, stale=False, now=now)
        == "noncompliant"
    )
    assert (
        state(
            [("nonCompliant", later), ("nonCompliant", now)],
            secure_by_default=False,
            stale=False,
            now=now,
        )
        == "noncompliant"
    )


def test_due_actions_run_once_each_after_their_grace() -> None:
    actions = [
        {"actionType": "block", "gracePeriodHours": 24},
        {"actionType": "notification", "gracePeriodHours": 0},
        {"actionType": "remoteLock", "gracePeriodHours": 48},
    ]
    due, nxt = evaluation.due_actions(actions, T0, [], T0)
    assert [k for k, _, _ in due] == ["notification:0:"] and nxt == T0 + timedelta(hours=24)
    done = ["notification:0:"]
    due, nxt = evaluation.due_actions(actions, T0, done, T0 + timedelta(hours=30))
    assert [k for k, _, _ in due] == ["block:24:"] and nxt == T0 + timedelta(hours=48)
    due, nxt = evaluation.due_actions(actions, T0, [*done, "block:24:"], T0 + timedelta(hours=49))
    assert [k for k, _, _ in due] == ["remoteLock:48:"] and nxt is None
    assert evaluation.block_due(actions, T0) == T0 + timedelta(hours=24)
    assert evaluation.block_due([], T0) == T0


def test_worst_status_speaks_for_several() -> None:
    assert evaluation.worst(["compliant", "error", "conflict"]) == "error"
    assert evaluation.worst(["compliant", "notApplicable"]) == "compliant"
    assert evaluation.worst(["notApplicable"]) == "notApplicable"
    assert evaluation.worst(["compliant", "unknown"]) == "unknown"
