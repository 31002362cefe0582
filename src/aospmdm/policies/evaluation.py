"""The rules of policies, without the database: merging overlapping policies into what one
device must enforce, and judging a device's facts against compliance settings.

Everything here is a pure function of its arguments, so the rules can be tested as a table
and with generated data (tests/policies/test_evaluation.py)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from aospmdm import protocol
from aospmdm.policies.models import COMPLIANCE, RESTRICTIONS, WIFI
from aospmdm.policies.schemas import BY_KIND, PASSWORD_TYPES

EMPTY_VERSION = "0"  # the version of "no policy": what a fresh device has applied


@dataclass(frozen=True)
class PolicyRow:
    id: str
    kind: str
    display_name: str
    settings: dict[str, Any]
    version: int
    created_at: datetime
    secret_encrypted: str | None = None
    scheduled_actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Effective:
    """What one device must enforce, and which policy each part came from."""

    policy: protocol.EffectivePolicy
    # restriction setting -> the policy whose value is applied
    winners: dict[str, PolicyRow]
    # ssid -> the policy whose network is applied
    wifi_winners: dict[str, PolicyRow]
    # ssid -> the policies that disagree about it (none of them is applied)
    conflicts: dict[str, list[PolicyRow]]

    @property
    def version(self) -> str:
        return self.policy.version


def _ordered(policies: Sequence[PolicyRow], kind: str) -> list[PolicyRow]:
    # Ties go to the oldest policy, so the same set always names the same winner.
    return sorted((p for p in policies if p.kind == kind), key=lambda p: (p.created_at, p.id))


def merge_restrictions(
    policies: Sequence[PolicyRow],
) -> tuple[dict[str, Any], dict[str, PolicyRow]]:
    """The most restrictive value of each setting any of the policies configures."""
    catalog = BY_KIND[RESTRICTIONS]
    values: dict[str, Any] = {}
    winners: dict[str, PolicyRow] = {}
    for policy in _ordered(policies, RESTRICTIONS):
        for name, value in policy.settings.items():
            setting = catalog.get(name)
            if setting is None or value is None:
                continue
            if name not in values:
                values[name], winners[name] = value, policy
                continue
            stricter = setting.stricter_of(values[name], value)
            if stricter != values[name]:
                values[name], winners[name] = stricter, policy
    return values, winners


def wifi_network(policy: PolicyRow, decrypt: Callable[[str], str]) -> protocol.WifiNetwork:
    s = policy.settings
    proxy = None
    kind = s.get("proxySettings") or "none"
    if kind == "manual":
        proxy = protocol.WifiProxy(
            type="manual",
            host=s.get("proxyManualAddress"),
            port=s.get("proxyManualPort"),
            exclusion_list=list(s.get("proxyExclusionList") or []),
        )
    elif kind == "automatic":
        proxy = protocol.WifiProxy(
            type="automatic", pac_url=s.get("proxyAutomaticConfigurationUrl")
        )
    security = s.get("wiFiSecurityType") or "open"
    key = None
    if security != "open" and policy.secret_encrypted:
        key = decrypt(policy.secret_encrypted)
    return protocol.WifiNetwork(
        ssid=s["ssid"],
        network_name=s.get("networkName") or s["ssid"],
        security_type=security,
        pre_shared_key=key,
        connect_automatically=bool(s.get("connectAutomatically")),
        hidden=bool(s.get("connectWhenNetworkNameIsHidden")),
        proxy=proxy,
    )


def effective(policies: Sequence[PolicyRow], decrypt: Callable[[str], str]) -> Effective:
    """Merge the configuration policies assigned to a device. Wi-Fi profiles for one SSID
    that differ in anything have no order between them: that is a conflict, and none of
    them is applied."""
    restrictions, winners = merge_restrictions(policies)
    by_ssid: dict[str, list[tuple[PolicyRow, protocol.WifiNetwork]]] = {}
    for policy in _ordered(policies, WIFI):
        if policy.settings.get("ssid"):
            by_ssid.setdefault(policy.settings["ssid"], []).append(
                (policy, wifi_network(policy, decrypt))
            )
    networks: list[protocol.WifiNetwork] = []
    wifi_winners: dict[str, PolicyRow] = {}
    conflicts: dict[str, list[PolicyRow]] = {}
    for ssid, found in sorted(by_ssid.items()):
        if len({n.model_dump_json() for _, n in found}) > 1:
            conflicts[ssid] = [p for p, _ in found]
        else:
            networks.append(found[0][1])
            wifi_winners[ssid] = found[0][0]
    configurations = [p for p in policies if p.kind in (RESTRICTIONS, WIFI)]
    version = _version(configurations, restrictions, networks, wifi_winners)
    return Effective(
        protocol.EffectivePolicy(
            version=version, restrictions=restrictions, wifi_networks=networks
        ),
        winners,
        wifi_winners,
        conflicts,
    )


def _version(
    policies: Sequence[PolicyRow],
    restrictions: dict[str, Any],
    networks: list[protocol.WifiNetwork],
    wifi_winners: dict[str, PolicyRow],
) -> str:
    """The effective policy's version. It covers which configuration policies apply, at
    which versions, as well as what they merge to: a policy newly assigned (even one whose
    values are already in force) or in conflict makes a new version, so the device reports
    on it."""
    if not policies:
        return EMPTY_VERSION
    # The key itself stays out of the hash (the version is stored and sent in the clear); the
    # policy's id and version stand for it, and change whenever the key does.
    nets = []
    for n in networks:
        winner = wifi_winners[n.ssid]
        nets.append(
            {**n.model_dump(exclude={"pre_shared_key"}), "key": f"{winner.id}:{winner.version}"}
        )
    applied = sorted(f"{p.id}:{p.version}" for p in policies)
    text = json.dumps(
        {"p": applied, "r": restrictions, "w": nets}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- compliance -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What compliance reads of a device."""

    os_version: str
    security_patch_level: str
    is_rooted: bool | None
    is_encrypted: bool | None
    passcode_type: str | None
    passcode_length: int | None
    lock_after_inactivity_minutes: int | None


@dataclass(frozen=True)
class SettingResult:
    setting: str
    status: str  # compliant | nonCompliant
    current: Any
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "state": self.status,
            "currentValue": value_text(self.current),
            "reason": self.reason,
        }


def value_text(value: Any) -> str | None:
    """A setting's value as Graph's settingStates show it: text, booleans lower-case."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_LEADING_VERSION = re.compile(r"^\s*(\d{1,6}(?:\.\d{1,6}){0,3})")


def os_version_tuple(text: str) -> tuple[int, ...] | None:
    """'13' -> (13, 0, 0, 0); '12.1.0 QPR1' -> (12, 1, 0, 0); None when it starts with no
    number."""
    m = _LEADING_VERSION.match(text or "")
    if not m:
        return None
    parts = [int(p) for p in m[1].split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def patch_level(text: str) -> date | None:
    try:
        return date.fromisoformat((text or "").strip()[:10])
    except ValueError:
        return None


def _passcode_rank(kind: str | None) -> int:
    return protocol.PASSCODE_TYPES.index(kind) if kind in protocol.PASSCODE_TYPES else -1


def check_compliance(settings: dict[str, Any], facts: Facts) -> list[SettingResult]:
    """Judge a device's facts against each configured compliance setting. A setting whose
    fact the device did not report is ``unknown``: not compliant, but no grounds for the
    noncompliance actions either (an older agent, or a device that has not checked in since
    the policy arrived)."""
    out: list[SettingResult] = []

    def result(name: str, ok: bool | None, current: Any, reason: str) -> None:
        if ok is None:
            out.append(SettingResult(name, "unknown", None, "The device has not reported this."))
        else:
            status = "compliant" if ok else "nonCompliant"
            out.append(SettingResult(name, status, current, "" if ok else reason))

    def known(value: Any, ok: Callable[[Any], bool]) -> bool | None:
        return None if value is None else ok(value)

    if settings.get("securityBlockJailbrokenDevices"):
        result(
            "securityBlockJailbrokenDevices",
            known(facts.is_rooted, lambda rooted: not rooted),
            facts.is_rooted,
            "The device is rooted.",
        )
    found = os_version_tuple(facts.os_version)
    for name, low in (("osMinimumVersion", True), ("osMaximumVersion", False)):
        wanted = settings.get(name)
        if not wanted:
            continue
        limit = os_version_tuple(wanted)
        if not facts.os_version.strip():
            result(name, None, None, "")
        elif found is None or limit is None:
            result(
                name,
                False,
                facts.os_version,
                f"The OS version {facts.os_version!r} cannot be compared.",
            )
        elif low:
            result(
                name,
                found >= limit,
                facts.os_version,
                f"OS version {facts.os_version} is older than the minimum {wanted}.",
            )
        else:
            result(
                name,
                found <= limit,
                facts.os_version,
                f"OS version {facts.os_version} is newer than the maximum {wanted}.",
            )
    wanted = settings.get("minAndroidSecurityPatchLevel")
    if wanted:
        have = patch_level(facts.security_patch_level)
        result(
            "minAndroidSecurityPatchLevel",
            None
            if not facts.security_patch_level
            else have is not None and have >= date.fromisoformat(wanted),
            facts.security_patch_level,
            f"Security patch level {facts.security_patch_level} is older than {wanted}.",
        )
    kind = facts.passcode_type
    has_passcode = None if kind is None else kind != "none"
    if settings.get("passwordRequired"):
        result("passwordRequired", has_passcode, kind, "No passcode is set.")
    required = settings.get("passwordRequiredType")
    if required in PASSWORD_TYPES and required != "deviceDefault":
        result(
            "passwordRequiredType",
            known(kind, lambda k: _passcode_rank(k) >= _passcode_rank(required)),
            kind,
            f"The passcode is {kind}; {required} or stronger is required.",
        )
    length = settings.get("passwordMinimumLength")
    if length is not None:
        have_length = 0 if kind == "none" else facts.passcode_length
        result(
            "passwordMinimumLength",
            known(have_length, lambda n: n >= length),
            have_length,
            f"The passcode has {have_length} characters; at least {length} are required.",
        )
    minutes = settings.get("passwordMinutesOfInactivityBeforeLock")
    if minutes is not None:
        have_minutes = facts.lock_after_inactivity_minutes
        result(
            "passwordMinutesOfInactivityBeforeLock",
            None
            if has_passcode is None or have_minutes is None
            else has_passcode and 0 < have_minutes <= minutes,
            have_minutes,
            f"The device locks after {have_minutes} minutes of inactivity (0: never) with "
            f"{'a' if has_passcode else 'no'} passcode; a passcode and at most {minutes} "
            "minutes are required.",
        )
    if settings.get("storageRequireEncryption"):
        result(
            "storageRequireEncryption",
            known(facts.is_encrypted, bool),
            facts.is_encrypted,
            "Storage is not encrypted.",
        )
    return out


def action_key(index: int, action: dict[str, Any]) -> str:
    """What marks an action as done: what it is, not where it sits in the list, so an admin
    who adds or reorders actions does not make done ones run again."""
    del index
    cc = ",".join(sorted(action.get("notificationMessageCCList") or []))
    return f"{action['actionType']}:{int(action.get('gracePeriodHours') or 0)}:{cc}"


def block_due(actions: Sequence[dict[str, Any]], since: datetime) -> datetime:
    """When a noncompliant device is marked noncompliant: after the block action's grace
    period (every compliance policy has one; without it, at once)."""
    hours = min(
        (int(a.get("gracePeriodHours") or 0) for a in actions if a["actionType"] == "block"),
        default=0,
    )
    return since + timedelta(hours=hours)


def due_actions(
    actions: Sequence[dict[str, Any]], since: datetime, done: Sequence[str], now: datetime
) -> tuple[list[tuple[str, dict[str, Any], datetime]], datetime | None]:
    """The scheduled actions due by ``now`` that have not run since ``since``, and when the
    next one falls due (None: nothing left)."""
    due: list[tuple[str, dict[str, Any], datetime]] = []
    upcoming: list[datetime] = []
    for n, action in enumerate(actions):
        key = action_key(n, action)
        if key in done:
            continue
        at = since + timedelta(hours=int(action.get("gracePeriodHours") or 0))
        if at <= now:
            due.append((key, action, at))
        else:
            upcoming.append(at)
    return due, min(upcoming, default=None)


def device_compliance(
    policies: Sequence[tuple[str, datetime | None]],
    *,
    secure_by_default: bool,
    stale: bool,
    now: datetime,
) -> str:
    """A device's complianceState from its compliance policies' statuses, each with the time
    its block action falls due (None while compliant)."""
    if stale:
        return "noncompliant"
    if not policies:
        return "noncompliant" if secure_by_default else "compliant"
    in_grace = unknown = False
    for status, blocked_at in policies:
        if status == "nonCompliant":
            if blocked_at is None or blocked_at <= now:
                return "noncompliant"
            in_grace = True
        elif status == "unknown":
            unknown = True
    if in_grace:
        return "inGracePeriod"
    return "unknown" if unknown else "compliant"


STATUS_ORDER = ("error", "conflict", "nonCompliant", "unknown", "compliant", "notApplicable")


def worst(statuses: Sequence[str]) -> str:
    """The status that speaks for several (a policy with an error is in error)."""
    if not statuses:
        return "notApplicable"
    return min(statuses, key=STATUS_ORDER.index)


__all__ = ["COMPLIANCE", "Effective", "Facts", "PolicyRow", "SettingResult"]
