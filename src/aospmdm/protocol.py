"""The device wire protocol, shared by the server and the agent (docs/protocol.md).

Only the standard library and pydantic/cryptography are used here, so the reference agent
(``aospmdm.agent``) can ship as its own package with this one module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

PROTOCOL_VERSION = 1

# --- the QR provisioning payload --------------------------------------------------------

EXTRA = "android.app.extra."
ADMIN_COMPONENT = EXTRA + "PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME"
PACKAGE_DOWNLOAD_LOCATION = EXTRA + "PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION"
SIGNATURE_CHECKSUM = EXTRA + "PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM"
SKIP_ENCRYPTION = EXTRA + "PROVISIONING_SKIP_ENCRYPTION"
LEAVE_ALL_SYSTEM_APPS_ENABLED = EXTRA + "PROVISIONING_LEAVE_ALL_SYSTEM_APPS_ENABLED"
WIFI_SSID = EXTRA + "PROVISIONING_WIFI_SSID"
WIFI_HIDDEN = EXTRA + "PROVISIONING_WIFI_HIDDEN"
WIFI_SECURITY_TYPE = EXTRA + "PROVISIONING_WIFI_SECURITY_TYPE"
WIFI_PASSWORD = EXTRA + "PROVISIONING_WIFI_PASSWORD"
ADMIN_EXTRAS_BUNDLE = EXTRA + "PROVISIONING_ADMIN_EXTRAS_BUNDLE"
SERVER_URL = "aospmdm.serverUrl"
ENROLLMENT_TOKEN = "aospmdm.enrollmentToken"
PROFILE_ID = "aospmdm.profileId"

# --- request signing ---------------------------------------------------------------------

HEADER_DEVICE = "X-Aospmdm-Device"
HEADER_TIMESTAMP = "X-Aospmdm-Timestamp"  # Unix time in milliseconds
HEADER_NONCE = "X-Aospmdm-Nonce"
HEADER_SIGNATURE = "X-Aospmdm-Signature"  # base64url (no padding) of the DER ECDSA signature
MAX_CLOCK_SKEW_SECONDS = 300
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def signing_string(method: str, path: str, timestamp_ms: int, nonce: str, body: bytes) -> bytes:
    """What a device signs with its key (ECDSA P-256, SHA-256): the method, the path (with
    its query string, if any), the timestamp, the nonce and the SHA-256 of the body, one per
    line."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp_ms}\n{nonce}\n{digest}".encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- versions ----------------------------------------------------------------------------

_VERSION = re.compile(r"^(\d{1,6})\.(\d{1,6})\.(\d{1,6})(?:[.+-][0-9A-Za-z.+-]*)?$")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """'24.7.0' -> (24, 7, 0); None when it is not a dotted version."""
    m = _VERSION.match(text.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


# --- messages ------------------------------------------------------------------------------


class Message(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # No NUL characters in text: databases (PostgreSQL) cannot store them.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value


Text = Annotated[str, StringConstraints(max_length=256)]
ShortText = Annotated[str, StringConstraints(max_length=64)]


PackageName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class InstalledApp(Message):
    package_name: PackageName
    version_name: Text = ""
    version_code: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    display_name: Text = ""
    # The installed size (APK and data) when the device knows it; not part of the hash.
    size_in_bytes: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0


# From weakest to strongest (Android's password quality).
PASSCODE_TYPES = (
    "none",
    "numeric",
    "numericComplex",
    "alphabetic",
    "alphanumeric",
    "alphanumericWithSymbols",
)
PasscodeType = Literal[
    "none",
    "numeric",
    "numericComplex",
    "alphabetic",
    "alphanumeric",
    "alphanumericWithSymbols",
]


class DeviceFacts(Message):
    """What a device reports about itself."""

    serial_number: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    manufacturer: Text
    model: Text
    os_version: ShortText
    security_patch_level: ShortText = ""
    battery_level: Annotated[int, Field(ge=0, le=100)] | None = None
    is_encrypted: bool | None = None
    is_rooted: bool | None = None
    # The screen lock as it is now: its kind ("none" when there is no passcode), its length,
    # and the inactivity after which the device locks. Compliance policies read these.
    passcode_type: PasscodeType | None = None
    passcode_length: Annotated[int, Field(ge=0, le=64)] | None = None
    lock_after_inactivity_minutes: Annotated[int, Field(ge=0, le=10080)] | None = None


def installed_apps_hash(apps: Sequence[InstalledApp]) -> str:
    """The hash a device sends instead of its app list when nothing changed."""
    # The size is left out: it is informational, and a device reports it with a new version.
    rows = sorted((a.package_name, a.version_name, a.version_code, a.display_name) for a in apps)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


MAX_APPS = 2000
Apps = Annotated[list[InstalledApp], Field(max_length=MAX_APPS)]
AppsHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class AppChanges(Message):
    """The inventory as changes to the list the server last accepted (``base_hash``): apps
    installed or updated since, and packages removed since."""

    base_hash: AppsHash
    upserted: Apps = []
    removed: Annotated[list[PackageName], Field(max_length=MAX_APPS)] = []


def apply_app_changes(apps: Sequence[InstalledApp], changes: AppChanges) -> list[InstalledApp]:
    """The list ``changes`` turn ``apps`` into."""
    by_package = {a.package_name: a for a in apps}
    for package in changes.removed:
        by_package.pop(package, None)
    for app in changes.upserted:
        by_package[app.package_name] = app
    return list(by_package.values())


class EnrollRequest(Message):
    protocol_version: int = PROTOCOL_VERSION
    agent_version: ShortText
    enrollment_token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    profile_id: ShortText | None = None
    # The device's own key: SubjectPublicKeyInfo DER, base64url; ECDSA P-256.
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    facts: DeviceFacts
    installed_apps: Apps = []


class Answer(Message):
    """A server's answer: a device ignores properties it does not know, so later servers can
    add some without breaking older agents."""

    model_config = ConfigDict(extra="ignore")


class RequiredApp(Answer):
    """An app every enrolled device installs and opens (the agent, an authenticator and a
    company portal)."""

    package_name: str
    display_name: str
    version_name: str
    version_code: int
    download_url: str
    role: str  # agent | authenticator | companyPortal


class EnrollResponse(Answer):
    device_id: str
    device_name: str
    server_time: str
    next_check_in_seconds: int
    required_apps: list[RequiredApp]


# --- policies -------------------------------------------------------------------------------

PolicyVersion = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$")]


class SettingReport(Message):
    """What the device did with one restriction of the policy it applied."""

    name: ShortText
    # applied: in force now; failed: the device tried and could not; notSupported: this
    # device has no such control.
    state: Literal["applied", "failed", "notSupported"]
    current_value: bool | int | ShortText | None = None
    message: Text = ""


class WifiReport(Message):
    ssid: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    state: Literal["applied", "failed", "notSupported"]
    message: Text = ""


class PolicyReport(Message):
    """Sent with the first check-in after the device applied a policy version."""

    version: PolicyVersion
    settings: Annotated[list[SettingReport], Field(max_length=100)] = []
    wifi_networks: Annotated[list[WifiReport], Field(max_length=100)] = []


class CheckinRequest(Message):
    protocol_version: int = PROTOCOL_VERSION
    agent_version: ShortText
    facts: DeviceFacts
    installed_apps_hash: AppsHash
    # When the hash changed since the list the server last accepted: the changes to that
    # list (``installedAppsChanges``), or the whole list (``installedApps``; always when the
    # server asked for it with ``sendInstalledApps``).
    installed_apps: Apps | None = None
    installed_apps_changes: AppChanges | None = None
    # The version of the policy in force on the device ("0", "" or absent: none yet).
    applied_policy_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    policy_report: PolicyReport | None = None


class WifiProxy(Answer):
    type: str  # manual | automatic
    host: str | None = None
    port: int | None = None
    exclusion_list: list[str] = []
    pac_url: str | None = None


class WifiNetwork(Answer):
    ssid: str
    network_name: str
    security_type: str  # open | wep | wpaPersonal
    pre_shared_key: str | None = None
    connect_automatically: bool = False
    hidden: bool = False
    proxy: WifiProxy | None = None


class EffectivePolicy(Answer):
    """Everything the device must enforce, merged from the policies assigned to it. A
    restriction that is absent is not configured: the device's own default holds."""

    version: str
    restrictions: dict[str, bool | int | str] = {}
    wifi_networks: list[WifiNetwork] = []


# --- commands (remote actions) -------------------------------------------------------------

# What a device may be asked to do. "factoryReset" is sent to a device an admin deleted.
COMMAND_TYPES = ("wipe", "factoryReset", "remoteLock", "resetPasscode", "rebootNow")


class Command(Answer):
    """A remote action for the device. It is sent again at every check-in until the device
    sends a final result for it (delivery is at least once; the id makes it idempotent)."""

    id: str
    type: str  # one of COMMAND_TYPES; an agent answers notSupported to others
    # resetPasscode: {"passcode": "<digits>"}: the temporary passcode to set.
    payload: dict[str, str] = {}
    expires_at: str | None = None


class CommandResult(Message):
    """The result of a command, or of app work (its id starts with ``app:``)."""

    command_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    # accepted: started (for wipe: persisted and about to reset); done | failed |
    # notSupported: final; notNow: ask again later (the command stays pending).
    status: Literal["accepted", "done", "failed", "notNow", "notSupported"]
    message: Text = ""
    # App work that failed: one of APP_ERRORS.
    error_code: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None


class ResultsRequest(Message):
    results: Annotated[list[CommandResult], Field(min_length=1, max_length=100)]


class ResultsResponse(Answer):
    # Per result, in order: recorded (it changed the command), duplicate (already recorded),
    # unknown (no such command for this device: ignored).
    outcomes: list[str]


class WaitResponse(Answer):
    """GET /device/v1/wait: ``work`` is true as soon as the device has something to do (check
    in now), false when the wait ran out (ask again)."""

    work: bool


# --- apps ------------------------------------------------------------------------------------

# Intune-style error codes (hex, as Intune shows them) for app work that failed on a device.
APP_DOWNLOAD_FAILED = 0x87D30065
APP_HASH_MISMATCH = 0x87D30067
APP_INSTALL_FAILED = 0x87D1041C
APP_DOWNGRADE = 0x87D13B64
APP_SIGNATURE_MISMATCH = 0x87D13B65
APP_SDK_TOO_LOW = 0x87D13B66
APP_UNINSTALL_FAILED = 0x87D13B67
APP_ERRORS: dict[int, str] = {
    APP_DOWNLOAD_FAILED: "The download failed.",
    APP_HASH_MISMATCH: "The downloaded file's SHA-256 differs from the catalog's.",
    APP_INSTALL_FAILED: "The package installer refused the app.",
    APP_DOWNGRADE: "A newer version is installed: Android does not downgrade apps.",
    APP_SIGNATURE_MISMATCH: "The APK is signed with another key than the installed app.",
    APP_SDK_TOO_LOW: "The device's Android version is older than the app's minimum.",
    APP_UNINSTALL_FAILED: "The app could not be removed.",
}


def app_work_id(work: str, app_id: str, version_code: int) -> str:
    """The id of a piece of app work, under which its result comes back."""
    return f"app:{work[0]}:{app_id}:{version_code}"


class AppWork(Answer):
    """An app the device must install (or update to this version) or remove. It is not
    queued: every check-in computes it again from the assignments and the device's inventory,
    until the inventory shows it done or the device reported a failure (retried later)."""

    id: str  # app_work_id(...): the result for it goes to /device/v1/results
    type: str  # install | uninstall
    app_id: str
    package_name: str
    display_name: str = ""
    version_name: str = ""
    version_code: int = 0
    # install: where to download the APK (signed GET, Range supported), its SHA-256 (hex)
    # and size, and the certificate the APK is signed with (None: unsigned).
    download_url: str | None = None
    sha256: str | None = None
    size: int | None = None
    signing_cert_sha256: str | None = None
    min_sdk: int | None = None


class CheckinResponse(Answer):
    server_time: str
    next_check_in_seconds: int
    # The server lacks the list for the hash the device sent: send it next time.
    send_installed_apps: bool = False
    # Present only when it differs from the version the device said it applied.
    policy: EffectivePolicy | None = None
    commands: list[Command] = []
    apps: list[AppWork] = []


# --- shared-device sessions (docs/protocol.md §14) ---------------------------------------------

SESSIONS_PATH = "/device/v1/sessions"
CURRENT_SESSION_PATH = "/device/v1/sessions/current"
INTROSPECT_PATH = "/sso/v1/introspect"
# The command the server sends when an admin ends the device's session remotely: the agent
# forgets the signed-in worker (the server already ended the session).
SIGN_OUT_COMMAND = "signOut"


class SignInRequest(Message):
    """POST /device/v1/sessions: a worker signs in on the shared device."""

    user_principal_name: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class SessionResponse(Answer):
    """The session: its token is what the participating apps present (SSO) until it ends."""

    session_token: str
    user_id: str
    user_principal_name: str
    display_name: str
    expires_date_time: str


class IntrospectionResponse(BaseModel):
    """RFC 7662's answer (snake_case names, as the RFC spells them): only ``active`` when the
    token is not active."""

    model_config = ConfigDict(extra="ignore")

    active: bool
    sub: str | None = None
    username: str | None = None
    name: str | None = None
    exp: int | None = None
    iat: int | None = None
    device_id: str | None = None
    token_type: str | None = None


# --- log upload (docs/protocol.md §15) ----------------------------------------------------------

LOGS_PATH = "/device/v1/logs"
# The file name the device gives its logs (optional; the server keeps a sanitized copy).
HEADER_LOG_NAME = "X-Aospmdm-Log-Name"
LOG_CONTENT_TYPES = ("application/zip", "text/plain")


class LogUploadResponse(Answer):
    """POST /device/v1/logs: the incident ID the user reads out to the help desk."""

    incident_id: str
    size: int
    sha256: str
    expires_date_time: str
