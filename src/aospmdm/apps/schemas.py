"""Inputs of the apps API: app properties, and Graph's assign body."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from aospmdm.core.schemas import READ_ONLY, GraphInput
from aospmdm.policies.schemas import GroupTarget

Name = Annotated[str, StringConstraints(max_length=256)]

# Properties an app read from the API carries that are not changed through it.
APP_READ_ONLY = READ_ONLY | {
    "packageId",
    "versionName",
    "versionCode",
    "fileName",
    "size",
    "sha256",
    "signingCertificateSha256",
    "minimumSupportedOperatingSystem",
    "minSdkVersion",
    "warnings",
    "role",
    "isRequiredApp",
    "uploadState",
    "publishingState",
    "isAssigned",
    "versions",
}


class AppUpdate(GraphInput):
    odata_type = "#microsoft.graph.androidLobApp"
    read_only = APP_READ_ONLY

    display_name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=1500)] | None = None
    publisher: Name | None = None
    role_scope_tag_ids: Annotated[list[str], Field(max_length=100)] | None = None


class AppAssignment(GraphInput):
    odata_type = "#microsoft.graph.mobileAppAssignment"
    read_only = READ_ONLY | {"settings", "source", "sourceId"}

    intent: Literal["required", "uninstall"]
    target: GroupTarget


class AppAssign(GraphInput):
    mobile_app_assignments: Annotated[list[AppAssignment], Field(max_length=200)]
