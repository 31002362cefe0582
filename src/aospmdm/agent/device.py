"""The simulated AOSP device: its hardware, what enrollment gave it, its key and its apps.

A device with a state directory keeps them there, so that each CLI command picks up where the
last one left off:

- ``hardware.json``: what a factory reset does not touch (the serial number, the model and
  firmware, and the counters a real device keeps in hardware: reboots, factory resets);
- ``state.json``: everything a factory reset erases (the enrollment, the Wi-Fi networks,
  installed apps other than the system ones, the lock and the passcode, the policy in force,
  the results of the commands handled and a wipe confirmed but not yet carried out);
- ``device-key.pem``: the device's private key, created at enrollment (the Android keystore's
  job on a real device), erased by a factory reset.

The fleet simulator runs devices without a directory: their state lives in memory only.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from aospmdm import protocol as p

from . import AgentError
from .policy import (
    CONTROLS,
    HARDWARE_CONTROLS,
    WIFI_NETWORKS,
    Value,
    new_passcode,
    passcode_meets,
    passcode_requirement,
    passcode_type,
    wifi_problem,
)

STATE_FILE = "state.json"
HARDWARE_FILE = "hardware.json"
KEY_FILE = "device-key.pem"
_M = TypeVar("_M", bound=BaseModel)


def _system_app(package: str, version_name: str, version_code: int, name: str) -> p.InstalledApp:
    return p.InstalledApp(
        package_name=package,
        version_name=version_name,
        version_code=version_code,
        display_name=name,
    )


# What the firmware ships with; a factory reset brings these back as they were.
SYSTEM_APPS: tuple[p.InstalledApp, ...] = (
    _system_app("com.android.settings", "11", 30, "Settings"),
    _system_app("com.android.camera2", "2.0.002", 20002, "Camera"),
    _system_app("com.android.documentsui", "11", 30, "Files"),
    _system_app("com.android.webview", "83.0.4103.120", 410312001, "Android System WebView"),
)


class _StateFile(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=True
    )


class Hardware(_StateFile):
    """What survives a factory reset."""

    serial: str = Field(min_length=1, max_length=128)
    manufacturer: str = "RealWear"
    model: str = "Navigator 500"
    os_version: str = "11"
    security_patch: str = "2024-05-05"
    reboot_count: int = Field(default=0, ge=0)
    factory_resets: int = Field(default=0, ge=0)
    # Controls this device lacks (reported notSupported, never applied) and controls that
    # refuse what a policy sets (reported failed): restriction names, or "wifiNetworks" for
    # saving Wi-Fi networks.
    unsupported_settings: list[str] = []
    failing_settings: list[str] = []
    # The device is in use: it answers notNow to the commands of its next this many
    # check-ins that bring any.
    busy_checkins: int = Field(default=0, ge=0)
    # The Android API level (None: the one of ``os_version``, see ``sdk_level``).
    sdk: int | None = Field(default=None, ge=1, le=1000)
    # How many times the agent closed to update itself and came back.
    agent_restarts: int = Field(default=0, ge=0)

    @field_validator("unsupported_settings", "failing_settings")
    @classmethod
    def _known_controls(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in HARDWARE_CONTROLS:
                raise ValueError(f"{name!r} is not one of {', '.join(HARDWARE_CONTROLS)}")
        return list(dict.fromkeys(names))


class Enrollment(_StateFile):
    """What a factory reset erases: a freshly reset device has exactly these defaults."""

    enrolled: bool = False
    device_id: str | None = None
    device_name: str | None = None
    server_url: str | None = None
    profile_id: str | None = None
    private_key_file: str | None = None
    agent_version: str | None = None
    wifi_ssid: str | None = None
    installed_apps: list[p.InstalledApp] = Field(default_factory=lambda: list(SYSTEM_APPS))
    # The hash of the app list the server last accepted, the list itself (None: unknown, the
    # next check-in sends the whole list), and whether the server asked for the whole list.
    acked_apps_hash: str | None = None
    acked_apps: list[p.InstalledApp] | None = None
    send_installed_apps: bool = False
    # The agent's own package (its self-updates close and restart it), and the signing
    # certificate (SHA-256, hex) each app was installed with: an update must match it.
    agent_package: str | None = None
    app_signers: dict[str, str] = {}
    # An update of the agent itself, downloaded and verified, applied when it restarts; and
    # the results of app work it owes the server (sent with the next check-in).
    pending_self_update: PendingSelfUpdate | None = None
    owed_app_results: list[p.CommandResult] = []
    next_check_in_seconds: int | None = None
    last_check_in_ms: int | None = None
    locked: bool = False
    passcode: str | None = None
    # The worker's own screen timeout in minutes (0: never), which a policy may shorten.
    lock_after_inactivity_minutes: int = Field(default=0, ge=0)
    # The policy in force: its version ("0": none yet), the restrictions of it the device
    # applied, and the Wi-Fi networks it saved (beside the provisioning network above).
    applied_policy_version: str = "0"
    restrictions: dict[str, bool | int | str] = {}
    policy_wifi_networks: list[p.WifiNetwork] = []
    # The report on the applied version, and whether a check-in delivered it yet.
    policy_report: p.PolicyReport | None = None
    policy_report_delivered: bool = False
    # The final results of the commands handled lately, oldest first: a command delivered
    # again gets its result again instead of being carried out twice.
    command_results: list[p.CommandResult] = []
    pending_wipe: PendingWipe | None = None
    # The worker signed in on this shared device, with the session token the participating
    # apps use (docs/protocol.md §14); None: no one is signed in.
    signed_in_user: SignedInUser | None = None


class SignedInUser(_StateFile):
    """The worker signed in on the device and their session: the token is kept in the
    state, readable by its owner only, and never printed."""

    user_id: str
    user_principal_name: str
    display_name: str
    expires_date_time: str
    session_token: str


class PendingWipe(_StateFile):
    """A wipe the device accepted: kept before it confirms, so that a crash between the
    confirmation and the reset cannot lose it; the reset erases it."""

    command_ids: list[str] = Field(min_length=1)
    # The counter before this reset, so that a reset interrupted after counting is not
    # counted twice.
    factory_resets: int = Field(ge=0)


class PendingSelfUpdate(_StateFile):
    """An update of the agent, verified and kept before the agent closes, so that it is
    installed when the agent starts again even if it crashed in between."""

    work: p.AppWork
    # The verified APK in the state directory (None for an in-memory device).
    file: str | None = None


# Android versions and their API levels; a version not listed is taken as DEFAULT_SDK.
SDK_LEVELS = {
    "8": 26,
    "8.0": 26,
    "8.1": 27,
    "9": 28,
    "10": 29,
    "11": 30,
    "12": 31,
    "12L": 32,
    "13": 33,
    "14": 34,
    "15": 35,
    "16": 36,
}
DEFAULT_SDK = 34


def sdk_level(hardware: Hardware) -> int:
    """The device's Android API level: its own, or the one of its Android version."""
    if hardware.sdk is not None:
        return hardware.sdk
    version = hardware.os_version.strip()
    for key in (version, ".".join(version.split(".")[:2]), version.split(".")[0]):
        if key in SDK_LEVELS:
            return SDK_LEVELS[key]
    return DEFAULT_SDK


def new_serial() -> str:
    return secrets.token_hex(6).upper()


def version_code(version: str) -> int:
    """The Android versionCode of an agent version, major * 10000 + minor * 100 + patch
    (24.9.0 -> 240900), the server's default for the agent it requires; 0 for a version that
    is not dotted."""
    parsed = p.parse_version(version)
    if parsed is None:
        return 0
    major, minor, patch = parsed
    return major * 10_000 + minor * 100 + patch


def new_key() -> ec.EllipticCurvePrivateKey:
    """A device key pair: ECDSA P-256, what the Android keystore makes."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public half as the protocol sends it: SubjectPublicKeyInfo DER, base64url."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return p.b64url(der)


def merged_apps(
    current: Iterable[p.InstalledApp], new: Iterable[p.InstalledApp]
) -> list[p.InstalledApp]:
    """The apps after installing (or upgrading to) ``new``; an installed version that is as
    new or newer stays, as Android refuses downgrades."""
    apps = {a.package_name: a for a in current}
    for app in new:
        installed = apps.get(app.package_name)
        if installed is None or installed.version_code < app.version_code:
            apps[app.package_name] = app
    return list(apps.values())


def app_changes(
    before: Iterable[p.InstalledApp], after: Iterable[p.InstalledApp], base_hash: str
) -> p.AppChanges:
    """The changes that turn the list ``before`` (whose hash is ``base_hash``) into
    ``after``."""
    old = {a.package_name: a for a in before}
    new = {a.package_name: a for a in after}
    return p.AppChanges(
        base_hash=base_hash,
        upserted=[a for k, a in new.items() if old.get(k) != a],
        removed=[k for k in old if k not in new],
    )


class Device:
    def __init__(
        self,
        hardware: Hardware,
        state: Enrollment | None = None,
        state_dir: Path | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ):
        self.hardware = hardware
        self.state = state or Enrollment()
        self.state_dir = state_dir
        self.key = key
        self._key_saved = key is not None

    # --- the state directory -----------------------------------------------------------

    @classmethod
    def load(cls, state_dir: Path) -> Device:
        """The device kept in ``state_dir``."""
        hardware_path = state_dir / HARDWARE_FILE
        if not hardware_path.is_file():
            raise AgentError(
                "noDevice",
                f"{state_dir} holds no simulated device (no {HARDWARE_FILE}): "
                "run aospmdm agent enroll --state-dir first",
            )
        hardware = _read(Hardware, hardware_path)
        state_path = state_dir / STATE_FILE
        state = _read(Enrollment, state_path) if state_path.is_file() else Enrollment()
        key = None
        if state.private_key_file is not None:
            key = _read_key(state_dir / state.private_key_file)
        if state.enrolled and key is None:
            raise AgentError("badState", f"{state_path} says enrolled but names no device key")
        return cls(hardware, state, state_dir, key)

    @classmethod
    def open(cls, state_dir: Path, **hardware: str | int | list[str] | None) -> Device:
        """The device in ``state_dir``, made there if there is none. The given hardware
        fields (serial, manufacturer, model, os_version, security_patch, unsupported_settings,
        failing_settings) replace the kept ones, as a firmware update would; the counters
        stay."""
        given = {k: v for k, v in hardware.items() if v is not None}
        # Found out now, not after the server enrolled a device whose key cannot be kept.
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentError("stateNotWritable", f"cannot use {state_dir}: {exc}") from exc
        if not os.access(state_dir, os.W_OK):
            raise AgentError("stateNotWritable", f"cannot write in {state_dir}")
        try:
            device = cls.load(state_dir)
        except AgentError as exc:
            if exc.code != "noDevice":
                raise
            device = cls(_hardware({"serial": new_serial(), **given}), state_dir=state_dir)
        else:
            device.hardware = _hardware({**device.hardware.model_dump(), **given})
        return device

    def save(self) -> None:
        """Write the state to the state directory (nothing to do for an in-memory device)."""
        if self.state_dir is None:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if self.key is not None and not self._key_saved:
                pem = self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                _write_atomic(self.state_dir / KEY_FILE, pem)
                self.state.private_key_file = KEY_FILE
                self._key_saved = True
            _write_atomic(self.state_dir / HARDWARE_FILE, _dump(self.hardware))
            _write_atomic(self.state_dir / STATE_FILE, _dump(self.state))
        except OSError as exc:
            raise AgentError(
                "stateNotWritable", f"cannot write the device state in {self.state_dir}: {exc}"
            ) from exc

    # --- identity and signing -----------------------------------------------------------

    def adopt_key(self, key: ec.EllipticCurvePrivateKey) -> None:
        """Make ``key`` the device's key; it is written with the rest of the state."""
        self.key = key
        self._key_saved = False

    def facts(self) -> p.DeviceFacts:
        hw = self.hardware
        return p.DeviceFacts(
            serial_number=hw.serial,
            manufacturer=hw.manufacturer,
            model=hw.model,
            os_version=hw.os_version,
            security_patch_level=hw.security_patch,
            # Provisioning never asks to skip encryption, and the device is not rooted.
            is_encrypted=True,
            is_rooted=False,
            passcode_type=passcode_type(self.state.passcode),
            passcode_length=len(self.state.passcode or ""),
            lock_after_inactivity_minutes=self.lock_after_inactivity_minutes(),
        )

    def lock_after_inactivity_minutes(self) -> int:
        """When the screen locks itself: the worker's own timeout, shortened to the policy's
        maximum when one is in force (0: never)."""
        own = self.state.lock_after_inactivity_minutes
        limit = self.state.restrictions.get("passwordMinutesOfInactivityBeforeScreenTimeout")
        if not isinstance(limit, int) or isinstance(limit, bool):
            return own
        return min(own, limit) if own > 0 else limit

    def signed_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """The headers that sign one request: ``path`` is the URL path (and query) as the
        server sees it, ``body`` the exact bytes sent."""
        if not self.state.enrolled or self.state.device_id is None or self.key is None:
            raise AgentError("notEnrolled", "this device is not enrolled: run aospmdm agent enroll")
        timestamp = int(time.time() * 1000)
        nonce = p.b64url(os.urandom(16))
        signature = self.key.sign(
            p.signing_string(method, path, timestamp, nonce, body), ec.ECDSA(hashes.SHA256())
        )
        return {
            p.HEADER_DEVICE: self.state.device_id,
            p.HEADER_TIMESTAMP: str(timestamp),
            p.HEADER_NONCE: nonce,
            p.HEADER_SIGNATURE: p.b64url(signature),
        }

    # --- apps ------------------------------------------------------------------------------

    def install(self, apps: Iterable[p.InstalledApp]) -> None:
        self.state.installed_apps = merged_apps(self.state.installed_apps, apps)

    def apps_to_send(self) -> tuple[str, list[p.InstalledApp] | None]:
        """The installed-apps hash for a check-in, and the whole list only when the server
        has not accepted this hash yet (and cannot take changes) or asked for the list."""
        digest, apps, _ = self.inventory()
        return digest, apps

    def inventory(self) -> tuple[str, list[p.InstalledApp] | None, p.AppChanges | None]:
        """What a check-in says of the installed apps: their hash, and when the server has
        not accepted that hash yet either the changes to the list it last accepted or, when
        the device does not know that list or the server asked for it, the whole list."""
        st = self.state
        digest = p.installed_apps_hash(st.installed_apps)
        if st.send_installed_apps:
            return digest, list(st.installed_apps), None
        if digest == st.acked_apps_hash:
            return digest, None, None
        acked = st.acked_apps
        if (
            acked is None
            or st.acked_apps_hash is None
            or p.installed_apps_hash(acked) != st.acked_apps_hash
        ):
            return digest, list(st.installed_apps), None
        return digest, None, app_changes(acked, st.installed_apps, st.acked_apps_hash)

    # --- policies ------------------------------------------------------------------------

    def apply_policy(self, policy: p.EffectivePolicy) -> p.PolicyReport:
        """Enforce ``policy`` as far as this device can and keep the report on it, which the
        next check-in delivers. A restriction the policy leaves out returns to the device's
        default; a Wi-Fi network of an earlier policy that this one leaves out is forgotten.
        When the screen lock falls short of the passcode required now, the worker sets a
        passcode that meets it, as the device prompts them to."""
        try:
            settings, restrictions = self._enforce_restrictions(policy)
            wifi, networks = self._enforce_wifi(policy)
            report = p.PolicyReport(version=policy.version, settings=settings, wifi_networks=wifi)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise AgentError(
                "unexpectedResponse",
                f"cannot report on the server's policy {policy.version!r}: "
                f"{'.'.join(map(str, first['loc']))}: {first['msg']}",
            ) from exc
        st = self.state
        st.restrictions = restrictions
        st.policy_wifi_networks = networks
        required = passcode_requirement(restrictions)
        if required is not None and not passcode_meets(st.passcode, *required):
            st.passcode = new_passcode(*required)
        st.applied_policy_version = policy.version
        st.policy_report = report
        st.policy_report_delivered = False
        return report

    def report_to_send(self) -> p.PolicyReport | None:
        """The report on the applied policy while no check-in has delivered it."""
        return None if self.state.policy_report_delivered else self.state.policy_report

    def _enforce_restrictions(
        self, policy: p.EffectivePolicy
    ) -> tuple[list[p.SettingReport], dict[str, Value]]:
        """The report on each restriction of ``policy``, and the restrictions in force after
        it: a setting that failed keeps its earlier value."""
        hw, before = self.hardware, self.state.restrictions
        reports: list[p.SettingReport] = []
        in_force: dict[str, Value] = {}
        for name, value in policy.restrictions.items():
            control = CONTROLS.get(name)
            if control is None or name in hw.unsupported_settings:
                owner = "agent" if control is None else "device"
                reports.append(
                    p.SettingReport(
                        name=name, state="notSupported", message=f"This {owner} has no {name}."
                    )
                )
                continue
            problem = control.problem(value)
            if problem is None and name in hw.failing_settings:
                problem = f"The device refused to set {name}."
            if problem is None:
                in_force[name] = value
                reports.append(p.SettingReport(name=name, state="applied", current_value=value))
                continue
            if name in before:
                in_force[name] = before[name]
            reports.append(
                p.SettingReport(
                    name=name,
                    state="failed",
                    current_value=before.get(name, control.default),
                    message=problem,
                )
            )
        return reports, in_force

    def _enforce_wifi(
        self, policy: p.EffectivePolicy
    ) -> tuple[list[p.WifiReport], list[p.WifiNetwork]]:
        """The report on each Wi-Fi network of ``policy``, and the policy's networks saved
        after it: a network that failed to update keeps its earlier settings."""
        hw = self.hardware
        saved = {n.ssid: n for n in self.state.policy_wifi_networks}
        reports: list[p.WifiReport] = []
        networks: dict[str, p.WifiNetwork] = {}
        for network in policy.wifi_networks:
            problem = wifi_problem(network)
            if WIFI_NETWORKS in hw.unsupported_settings:
                problem = ("notSupported", "This device has no Wi-Fi.")
            elif WIFI_NETWORKS in hw.failing_settings:
                problem = ("failed", "The device refused to save the network.")
            if problem is None:
                networks[network.ssid] = network
                reports.append(p.WifiReport(ssid=network.ssid, state="applied"))
                continue
            state, message = problem
            if state == "failed" and network.ssid in saved:
                networks[network.ssid] = saved[network.ssid]
            reports.append(p.WifiReport(ssid=network.ssid, state=state, message=message))
        return reports, list(networks.values())

    # --- lifecycle ---------------------------------------------------------------------------

    def factory_reset(self) -> None:
        """Erase the enrollment, the key, the Wi-Fi and the apps that did not come with the
        firmware; the hardware and its counters stay."""
        pending = self.state.pending_wipe
        # A reset that a crash interrupted after counting it is not counted again.
        if pending is None or pending.factory_resets == self.hardware.factory_resets:
            self.hardware.factory_resets += 1
        self.state = Enrollment()
        self.key = None
        self._key_saved = False
        # The state first: a key file left behind by a crash is unused and overwritten at
        # the next enrollment, while a state naming a deleted key could not be loaded.
        self.save()
        if self.state_dir is not None:
            (self.state_dir / KEY_FILE).unlink(missing_ok=True)

    def reboot(self) -> None:
        self.hardware.reboot_count += 1

    def status(self) -> dict[str, Any]:
        """What ``aospmdm agent status`` prints."""
        hw, st = self.hardware, self.state
        return {
            "enrolled": st.enrolled,
            "deviceId": st.device_id,
            "deviceName": st.device_name,
            "serverUrl": st.server_url,
            "profileId": st.profile_id,
            "serialNumber": hw.serial,
            "manufacturer": hw.manufacturer,
            "model": hw.model,
            "osVersion": hw.os_version,
            "securityPatchLevel": hw.security_patch,
            "sdkLevel": sdk_level(hw),
            "agentVersion": st.agent_version,
            "agentPackage": st.agent_package,
            "wifiSsid": st.wifi_ssid,
            "installedApps": [
                {
                    "packageName": a.package_name,
                    "versionName": a.version_name,
                    "versionCode": a.version_code,
                }
                for a in st.installed_apps
            ],
            "pendingSelfUpdate": None
            if st.pending_self_update is None
            else {
                "workId": st.pending_self_update.work.id,
                "packageName": st.pending_self_update.work.package_name,
                "versionName": st.pending_self_update.work.version_name,
                "versionCode": st.pending_self_update.work.version_code,
            },
            "agentRestarts": hw.agent_restarts,
            "locked": st.locked,
            "passcode": st.passcode,
            "screenLock": {
                "passcodeSet": bool(st.passcode),
                "passcodeType": passcode_type(st.passcode),
                "passcodeLength": len(st.passcode or ""),
                "lockAfterInactivityMinutes": self.lock_after_inactivity_minutes(),
            },
            "policy": {
                "appliedVersion": st.applied_policy_version,
                "restrictions": dict(st.restrictions),
                # Never the pre-shared keys: only whether a network has one.
                "wifiNetworks": [
                    {
                        **n.model_dump(by_alias=True, exclude={"pre_shared_key"}),
                        "preSharedKeySet": n.pre_shared_key is not None,
                    }
                    for n in st.policy_wifi_networks
                ],
                "report": None
                if st.policy_report is None
                else {
                    "delivered": st.policy_report_delivered,
                    **st.policy_report.model_dump(by_alias=True, exclude={"version"}),
                },
            },
            "unsupportedSettings": list(hw.unsupported_settings),
            "failingSettings": list(hw.failing_settings),
            "rebootCount": hw.reboot_count,
            "factoryResets": hw.factory_resets,
            "busyCheckins": hw.busy_checkins,
            "pendingWipe": None
            if st.pending_wipe is None
            else st.pending_wipe.model_dump(by_alias=True, exclude={"factory_resets"}),
            "lastResults": [r.model_dump(by_alias=True) for r in st.command_results[-10:]],
            # Never the session token.
            "signedInUser": None
            if st.signed_in_user is None
            else st.signed_in_user.model_dump(by_alias=True, exclude={"session_token"}),
            "nextCheckInSeconds": st.next_check_in_seconds,
        }


def _hardware(fields: dict[str, Any]) -> Hardware:
    try:
        return Hardware.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise AgentError("badHardware", f"{first['loc'][0]}: {first['msg']}") from exc


def _dump(model: BaseModel) -> bytes:
    return (model.model_dump_json(by_alias=True, indent=2) + "\n").encode()


def _read(model: type[_M], path: Path) -> _M:
    try:
        return model.model_validate(json.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        raise AgentError("badState", f"cannot read {path}: {exc}") from exc


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise AgentError("badState", f"cannot read the device key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AgentError("badState", f"{path} is not an ECDSA key")
    return key


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, readable by its owner only (the state holds the
    passcode, the key the device's identity)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
