"""Admin-API inputs of managed devices."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from aospmdm.core.schemas import READ_ONLY, GraphInput

Attr = Annotated[str, StringConstraints(max_length=1024)] | None
Name = Annotated[str, StringConstraints(max_length=256)]


class DeviceUpdate(GraphInput):
    """What an admin may set on a device (everything else a device reports itself)."""

    odata_type = "microsoft.graph.managedDevice"
    # Everything a device reports about itself: accepted and ignored, so a device read from
    # the API can be sent back.
    read_only = READ_ONLY | {
        "deviceActionResults",
        "usersLoggedOn",
        "managedDeviceName",
        "enrollmentProfileName",
        "managementState",
        "complianceState",
        "ownerType",
        "managedDeviceOwnerType",
        "deviceEnrollmentType",
        "managementAgent",
        "operatingSystem",
        "osVersion",
        "androidSecurityPatchLevel",
        "manufacturer",
        "model",
        "serialNumber",
        "enrolledDateTime",
        "lastSyncDateTime",
        "isEncrypted",
        "jailBroken",
        "batteryLevelPercentage",
        "userId",
        "userPrincipalName",
        "userDisplayName",
        "emailAddress",
        "roleScopeTagIds",
        "agentVersion",
        "deviceCategoryDisplayName",
        "extensionAttributes",
    }

    device_name: Name | None = None
    device_category: Annotated[str, StringConstraints(max_length=256)] | None = None
    extension_attribute1: Attr = None
    extension_attribute2: Attr = None
    extension_attribute3: Attr = None
    extension_attribute4: Attr = None
    extension_attribute5: Attr = None
    extension_attribute6: Attr = None
    extension_attribute7: Attr = None
    extension_attribute8: Attr = None
    extension_attribute9: Attr = None
    extension_attribute10: Attr = None
    extension_attribute11: Attr = None
    extension_attribute12: Attr = None
    extension_attribute13: Attr = None
    extension_attribute14: Attr = None
    extension_attribute15: Attr = None

    def changes(self) -> dict[str, str | None]:
        """The fields sent, by their Graph names."""
        return {
            type(self).model_fields[name].alias or name: getattr(self, name)
            for name in self.model_fields_set
        }
