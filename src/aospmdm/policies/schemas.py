"""Admin-API inputs of policies, and the catalog of every setting: its Graph name, its label
and section in the console, its range, and which of two values is the more restrictive."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from aospmdm.core.schemas import READ_ONLY, GraphInput

RESTRICTIONS_TYPE = "microsoft.graph.aospDeviceOwnerDeviceConfiguration"
WIFI_TYPE = "microsoft.graph.aospDeviceOwnerWiFiConfiguration"
COMPLIANCE_TYPE = "microsoft.graph.aospDeviceOwnerCompliancePolicy"

# --- the settings catalog -------------------------------------------------------------------

# Android's password qualities from weakest to strongest; only the first three exist on AOSP.
PASSWORD_TYPES = ("deviceDefault", "numeric", "numericComplex")
GRAPH_PASSWORD_TYPES = (
    "deviceDefault",
    "required",
    "numeric",
    "numericComplex",
    "alphabetic",
    "alphanumeric",
    "alphanumericWithSymbols",
    "lowSecurityBiometric",
    "customPassword",
)
AOSP_PASSWORD_LIMITATION = (
    "Android (AOSP) devices support only the password types deviceDefault, numeric and "
    "numericComplex; {value!r} is a known limitation of AOSP device management (Intune "
    "documents the same), so it cannot be required here."
)


@dataclass(frozen=True)
class Setting:
    """One policy setting. ``stricter`` says which value wins when policies overlap: "true"
    (true blocks more), "false" (false allows less), "max", "min", or "order" (later in
    ``choices`` is stricter)."""

    name: str
    label: str
    section: str
    kind: Literal["bool", "int", "choice", "text"]
    stricter: Literal["true", "false", "max", "min", "order", "none"]
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""

    def stricter_of(self, a: Any, b: Any) -> Any:
        if self.stricter == "true":
            return a or b
        if self.stricter == "false":
            return a and b
        if self.stricter == "max":
            return max(a, b)
        if self.stricter == "min":
            return min(a, b)
        if self.stricter == "order":
            return a if self.choices.index(a) >= self.choices.index(b) else b
        return a


RESTRICTION_SETTINGS = (
    Setting("cameraBlocked", "Block camera", "General", "bool", "true"),
    Setting("screenCaptureBlocked", "Block screen capture", "General", "bool", "true"),
    Setting("factoryResetBlocked", "Block factory reset", "General", "bool", "true"),
    Setting(
        "securityAllowDebuggingFeatures",
        "Allow debugging features",
        "General",
        "bool",
        "false",
    ),
    Setting(
        "storageBlockExternalMedia", "Block mounting external media", "General", "bool", "true"
    ),
    Setting("storageBlockUsbFileTransfer", "Block USB file transfer", "General", "bool", "true"),
    Setting(
        "appsBlockInstallFromUnknownSources",
        "Block app installs from unknown sources",
        "General",
        "bool",
        "true",
    ),
    Setting(
        "passwordRequiredType",
        "Required password type",
        "Password",
        "choice",
        "order",
        choices=PASSWORD_TYPES,
    ),
    Setting(
        "passwordMinimumLength",
        "Minimum password length",
        "Password",
        "int",
        "max",
        minimum=4,
        maximum=16,
        unit="characters",
    ),
    Setting(
        "passwordSignInFailureCountBeforeFactoryReset",
        "Number of sign-in failures before wiping device",
        "Password",
        "int",
        "min",
        minimum=4,
        maximum=11,
    ),
    Setting(
        "passwordMinutesOfInactivityBeforeScreenTimeout",
        "Maximum minutes of inactivity until screen locks",
        "Password",
        "int",
        "min",
        minimum=1,
        maximum=60,
        unit="minutes",
    ),
    Setting(
        "wifiBlockEditConfigurations", "Block Wi-Fi setting changes", "Connectivity", "bool", "true"
    ),
    Setting("bluetoothBlocked", "Block Bluetooth", "Connectivity", "bool", "true"),
    Setting(
        "bluetoothBlockConfiguration",
        "Block Bluetooth configuration",
        "Connectivity",
        "bool",
        "true",
    ),
)

COMPLIANCE_SETTINGS = (
    Setting("securityBlockJailbrokenDevices", "Rooted devices", "Device Health", "bool", "true"),
    Setting("osMinimumVersion", "Minimum OS version", "Device Properties", "text", "none"),
    Setting("osMaximumVersion", "Maximum OS version", "Device Properties", "text", "none"),
    Setting(
        "minAndroidSecurityPatchLevel",
        "Minimum security patch level",
        "Device Properties",
        "text",
        "none",
    ),
    Setting(
        "passwordRequired",
        "Require a password to unlock devices",
        "System Security",
        "bool",
        "true",
    ),
    Setting(
        "passwordRequiredType",
        "Required password type",
        "System Security",
        "choice",
        "order",
        choices=PASSWORD_TYPES,
    ),
    Setting(
        "passwordMinimumLength",
        "Minimum password length",
        "System Security",
        "int",
        "max",
        minimum=4,
        maximum=16,
        unit="characters",
    ),
    Setting(
        "passwordMinutesOfInactivityBeforeLock",
        "Maximum minutes of inactivity before password is required",
        "System Security",
        "int",
        "min",
        minimum=1,
        maximum=480,
        unit="minutes",
    ),
    Setting(
        "storageRequireEncryption",
        "Require encryption of data storage on device",
        "System Security",
        "bool",
        "true",
    ),
)

BY_KIND = {
    "restrictions": {s.name: s for s in RESTRICTION_SETTINGS},
    "compliance": {s.name: s for s in COMPLIANCE_SETTINGS},
}

# --- inputs -----------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Description = Annotated[str, StringConstraints(max_length=1500)]
TagIds = Annotated[list[str], Field(max_length=1000)]
POLICY_READ_ONLY = READ_ONLY | {
    "version",
    "preSharedKeyIsSet",
    "assignments",
    "deviceStatuses",
    "deviceStatusOverview",
    "supportsScopeTags",
}
_OS_VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){0,3}")
_PATCH_LEVEL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _check_password_type(value: str | None) -> str | None:
    if value is not None and value not in PASSWORD_TYPES:
        if value in GRAPH_PASSWORD_TYPES:
            raise ValueError(AOSP_PASSWORD_LIMITATION.format(value=value))
        raise ValueError(f"must be one of {', '.join(PASSWORD_TYPES)}")
    return value


class PolicyBase(GraphInput):
    read_only = POLICY_READ_ONLY
    display_name: Name | None = None
    description: Description | None = None
    role_scope_tag_ids: TagIds | None = None

    def configured(self) -> dict[str, Any]:
        """The settings (Graph names) the admin gave, None meaning "not configured"."""
        names = {s.name for s in self.catalog()}
        return {
            field.alias: getattr(self, key)
            for key, field in type(self).model_fields.items()
            if field.alias in names and key in self.model_fields_set
        }

    @classmethod
    def catalog(cls) -> tuple[Setting, ...]:
        return ()


Bool = bool | None


class RestrictionsInput(PolicyBase):
    """aospDeviceOwnerDeviceConfiguration."""

    odata_type = RESTRICTIONS_TYPE
    camera_blocked: Bool = None
    screen_capture_blocked: Bool = None
    factory_reset_blocked: Bool = None
    security_allow_debugging_features: Bool = None
    storage_block_external_media: Bool = None
    storage_block_usb_file_transfer: Bool = None
    apps_block_install_from_unknown_sources: Bool = None
    password_required_type: str | None = None
    password_minimum_length: Annotated[int, Field(ge=4, le=16)] | None = None
    password_sign_in_failure_count_before_factory_reset: (
        Annotated[int, Field(ge=4, le=11)] | None
    ) = None
    password_minutes_of_inactivity_before_screen_timeout: (
        Annotated[int, Field(ge=1, le=60)] | None
    ) = None
    wifi_block_edit_configurations: Bool = None
    bluetooth_blocked: Bool = None
    bluetooth_block_configuration: Bool = None

    _password_type = field_validator("password_required_type")(_check_password_type)

    @classmethod
    def catalog(cls) -> tuple[Setting, ...]:
        return RESTRICTION_SETTINGS


def _ssid_bytes(value: str) -> str:
    if len(value.encode()) > 32:
        raise ValueError("an SSID is at most 32 bytes (UTF-8)")
    return value


Ssid = Annotated[str, StringConstraints(min_length=1, max_length=32), AfterValidator(_ssid_bytes)]
WIFI_SETTINGS = (
    "networkName",
    "ssid",
    "connectAutomatically",
    "connectWhenNetworkNameIsHidden",
    "wiFiSecurityType",
    "proxySettings",
    "proxyManualAddress",
    "proxyManualPort",
    "proxyAutomaticConfigurationUrl",
    "proxyExclusionList",
)


class WifiInput(PolicyBase):
    """aospDeviceOwnerWiFiConfiguration."""

    odata_type = WIFI_TYPE
    network_name: Annotated[str, StringConstraints(max_length=256)] | None = None
    ssid: Ssid | None = None
    connect_automatically: Bool = None
    connect_when_network_name_is_hidden: Bool = None
    wi_fi_security_type: Literal["open", "wep", "wpaPersonal"] | None = Field(
        default=None, alias="wiFiSecurityType"
    )
    # Write-only; null keeps the stored key, "" clears it.
    pre_shared_key: Annotated[str, StringConstraints(max_length=64)] | None = None
    proxy_settings: Literal["none", "manual", "automatic"] | None = None
    proxy_manual_address: Annotated[str, StringConstraints(max_length=256)] | None = None
    proxy_manual_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    proxy_automatic_configuration_url: Annotated[str, StringConstraints(max_length=2048)] | None = (
        None
    )
    proxy_exclusion_list: (
        Annotated[list[Annotated[str, StringConstraints(max_length=256)]], Field(max_length=100)]
        | None
    ) = None

    def configured(self) -> dict[str, Any]:
        return {
            field.alias: getattr(self, key)
            for key, field in type(self).model_fields.items()
            if field.alias in WIFI_SETTINGS and key in self.model_fields_set
        }


ActionType = Literal["block", "notification", "remoteLock", "retire"]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,189}$")]


class ScheduledActionConfiguration(GraphInput):
    read_only = READ_ONLY
    action_type: str
    grace_period_hours: Annotated[int, Field(ge=0, le=8760)] = 0
    notification_template_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    # Beyond Graph (which takes group ids here): the mail addresses to notify.
    notification_message_cc_list: Annotated[list[Email], Field(max_length=50)] = Field(
        default=[], alias="notificationMessageCCList"
    )

    @field_validator("action_type")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value not in ("block", "notification", "remoteLock", "retire"):
            raise ValueError(
                "must be block (mark noncompliant), remoteLock, retire (add to the retire "
                f"list) or notification; {value!r} is not offered for Android (AOSP) devices"
            )
        return value


class ScheduledActionsForRule(GraphInput):
    read_only = READ_ONLY
    rule_name: Annotated[str, StringConstraints(max_length=128)] | None = None
    scheduled_action_configurations: Annotated[
        list[ScheduledActionConfiguration], Field(max_length=20)
    ] = []


class ComplianceInput(PolicyBase):
    """aospDeviceOwnerCompliancePolicy."""

    odata_type = COMPLIANCE_TYPE
    security_block_jailbroken_devices: Bool = None
    os_minimum_version: Annotated[str, StringConstraints(max_length=16)] | None = None
    os_maximum_version: Annotated[str, StringConstraints(max_length=16)] | None = None
    min_android_security_patch_level: Annotated[str, StringConstraints(max_length=10)] | None = None
    password_required: Bool = None
    password_required_type: str | None = None
    password_minimum_length: Annotated[int, Field(ge=4, le=16)] | None = None
    password_minutes_of_inactivity_before_lock: Annotated[int, Field(ge=1, le=480)] | None = None
    storage_require_encryption: Bool = None
    scheduled_actions_for_rule: (
        Annotated[list[ScheduledActionsForRule], Field(max_length=1)] | None
    ) = None

    _password_type = field_validator("password_required_type")(_check_password_type)

    @field_validator("os_minimum_version", "os_maximum_version")
    @classmethod
    def _os_version(cls, value: str | None) -> str | None:
        if value is not None and not _OS_VERSION.fullmatch(value):
            raise ValueError("must be an Android version such as 12, 13 or 14.1")
        return value

    @field_validator("min_android_security_patch_level")
    @classmethod
    def _patch_level(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if not _PATCH_LEVEL.fullmatch(value):
                    raise ValueError
                date.fromisoformat(value)
            except ValueError:
                raise ValueError("must be a date such as 2024-01-01") from None
        return value

    @classmethod
    def catalog(cls) -> tuple[Setting, ...]:
        return COMPLIANCE_SETTINGS


class GroupTarget(GraphInput):
    read_only = READ_ONLY | {
        "deviceAndAppManagementAssignmentFilterId",
        "deviceAndAppManagementAssignmentFilterType",
        "collectionId",
    }
    odata_type_: Literal[
        "#microsoft.graph.groupAssignmentTarget",
        "#microsoft.graph.exclusionGroupAssignmentTarget",
    ] = Field(alias="@odata.type")
    group_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Assignment(GraphInput):
    read_only = READ_ONLY | {"source", "sourceId", "intent"}
    target: GroupTarget


class Assign(GraphInput):
    assignments: Annotated[list[Assignment], Field(max_length=200)]


class SettingsUpdate(GraphInput):
    """deviceManagement.settings (the compliance ones). Scheduled actions are always on, so
    isScheduledActionEnabled is read-only here."""

    read_only = READ_ONLY | {"isScheduledActionEnabled"}

    device_compliance_checkin_threshold_days: Annotated[int, Field(ge=1, le=120)] | None = None
    secure_by_default: Bool = None


class DeviceManagementUpdate(GraphInput):
    read_only = READ_ONLY | {"subscriptionState", "intuneBrand"}
    settings: SettingsUpdate
