"""The device properties a rule may use, their types, and the operators each type allows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class PropertyType(Enum):
    STRING = "string"
    BOOL = "bool"
    COLLECTION = "string collection"


@dataclass(frozen=True)
class Property:
    name: str  # camelCase, as Entra spells it
    type: PropertyType


_STRINGS = [
    "deviceCategory",
    "deviceId",
    "deviceManufacturer",
    "deviceModel",
    "displayName",
    "deviceOSType",
    "deviceOSVersion",
    "deviceOwnership",
    "deviceManagementAppId",
    "deviceTrustType",
    "enrollmentProfileName",
    *(f"extensionAttribute{i}" for i in range(1, 16)),
    "managementType",
    "objectId",
    "profileType",
]
_BOOLS = ["accountEnabled", "isRooted"]
_COLLECTIONS = ["devicePhysicalIds", "systemLabels"]

DEVICE_PROPERTIES: dict[str, Property] = {
    p.name.lower(): p
    for p in [
        *(Property(n, PropertyType.STRING) for n in _STRINGS),
        *(Property(n, PropertyType.BOOL) for n in _BOOLS),
        *(Property(n, PropertyType.COLLECTION) for n in _COLLECTIONS),
    ]
}
"""Every supported device property, keyed by its lower-cased name."""

# Entra documents memberOf for devices but is retiring it; it is refused with its own reason.
RETIRED_PROPERTIES = {"memberof": "memberOf"}

# Comparison operators, canonical spelling (without the hyphen).
STRING_OPERATORS = (
    "eq",
    "ne",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
    "contains",
    "notContains",
    "match",
    "notMatch",
    "in",
    "notIn",
)
QUANTIFIERS = ("any", "all")
LOGICAL_OPERATORS = ("and", "or", "not")
# Known to Entra but only for user properties of type dateTime, which devices do not have.
DATETIME_OPERATORS = ("le", "ge")

ALLOWED_OPERATORS: dict[PropertyType, frozenset[str]] = {
    PropertyType.STRING: frozenset(STRING_OPERATORS),
    PropertyType.BOOL: frozenset({"eq", "ne"}),
    PropertyType.COLLECTION: frozenset(STRING_OPERATORS + QUANTIFIERS),
}

# Each negative operator is exactly `-not` of its positive twin: so it is true on null.
NEGATIONS = {
    "ne": "eq",
    "notStartsWith": "startsWith",
    "notEndsWith": "endsWith",
    "notContains": "contains",
    "notMatch": "match",
    "notIn": "in",
}

OPERATORS: dict[str, str] = {
    op.lower(): op for op in STRING_OPERATORS + QUANTIFIERS + LOGICAL_OPERATORS + DATETIME_OPERATORS
}
"""Canonical spelling of every operator word, keyed by its lower-cased form."""


def lookup(name: str) -> Property | None:
    """The device property called `name` (case-insensitive), or None."""
    return DEVICE_PROPERTIES.get(name.lower())
