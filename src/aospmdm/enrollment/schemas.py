"""Admin-API inputs of enrollment profiles (Graph's androidDeviceOwnerEnrollmentProfile)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from aospmdm.core.schemas import READ_ONLY, GraphInput, Timestamp

ODATA_TYPE = "microsoft.graph.androidDeviceOwnerEnrollmentProfile"
MAX_TOKEN_SECONDS = 90 * 24 * 3600  # 7,776,000: Intune's limit
MAX_USAGE_LIMIT = 20_000

PROFILE_READ_ONLY = READ_ONLY | {
    "tokenValue",
    "tokenCreationDateTime",
    "enrolledDeviceCount",
    "enrollmentTokenUsageCount",
    "qrCodeContent",
    "qrCodeImage",
    "wifiPasswordIsSet",
    "enrollmentTokenType",
    "tokenIsActive",
}

Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]
Description = Annotated[str, StringConstraints(max_length=1500)]
Mode = Literal["corporateOwnedAOSPUserlessDevice", "corporateOwnedAOSPUserAssociatedDevice"]
Security = Literal["none", "wpa", "wep"]
Ssid = Annotated[str, StringConstraints(max_length=64)]
Secret = Annotated[str, StringConstraints(max_length=128)]
Template = Annotated[str, StringConstraints(max_length=256)]
UsageLimit = Annotated[int, Field(ge=1, le=MAX_USAGE_LIMIT)]
TagIds = Annotated[list[str], Field(max_length=1000)]


class ProfileCreate(GraphInput):
    odata_type = ODATA_TYPE
    read_only = PROFILE_READ_ONLY

    display_name: Name
    description: Description = ""
    enrollment_mode: Mode = "corporateOwnedAOSPUserlessDevice"
    configure_wifi: bool = True
    wifi_ssid: Ssid | None = None
    wifi_hidden: bool = False
    wifi_security_type: Security = "none"
    wifi_password: Secret | None = None
    device_name_template: Template | None = None
    token_usage_limit: UsageLimit | None = None
    # Beyond Graph's create: when given, the first token is issued at once.
    token_expiration_date_time: Timestamp | None = None
    role_scope_tag_ids: TagIds | None = None


class ProfileUpdate(GraphInput):
    odata_type = ODATA_TYPE
    # The token's expiry changes only through createToken/revokeToken.
    read_only = PROFILE_READ_ONLY | {"tokenExpirationDateTime", "enrollmentMode"}

    display_name: Name | None = None
    description: Description | None = None
    configure_wifi: bool | None = None
    wifi_ssid: Ssid | None = None
    wifi_hidden: bool | None = None
    wifi_security_type: Security | None = None
    # null keeps the stored key (so an object read back can be sent back); "" clears it.
    wifi_password: Secret | None = None
    device_name_template: Template | None = None
    token_usage_limit: UsageLimit | None = None
    role_scope_tag_ids: TagIds | None = None


class CreateToken(GraphInput):
    token_validity_in_seconds: Annotated[int, Field(ge=1, le=MAX_TOKEN_SECONDS)]
