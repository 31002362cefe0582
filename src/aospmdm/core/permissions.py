"""The one registry of permissions. Each feature registers its own when it is imported.

Built-in roles are not stored lists: they are rules over this registry, so a permission that a
later feature registers reaches the right built-in roles without a migration (SPEC.md §2):
Intune Administrator has everything; every ``*.read`` permission goes to all four built-in
roles; a write permission names the other built-in roles that have it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

INTUNE_ADMINISTRATOR = "Intune Administrator"
POLICY_AND_PROFILE_MANAGER = "Policy and Profile Manager"
HELP_DESK_OPERATOR = "Help Desk Operator"
READ_ONLY_OPERATOR = "Read Only Operator"

BUILTIN_ROLES: dict[str, str] = {
    INTUNE_ADMINISTRATOR: "Manages every part of aospmdm.",
    POLICY_AND_PROFILE_MANAGER: (
        "Manages enrollment profiles, groups, policies and apps; reads devices."
    ),
    HELP_DESK_OPERATOR: (
        "Reads everything; remotely locks, resets passcodes and restarts devices. "
        "Cannot wipe or delete."
    ),
    READ_ONLY_OPERATOR: "Reads everything; changes nothing.",
}

_NAMESPACE = uuid.UUID("8d1b2c4e-5a3f-4e7d-9c61-2b0a7f3e9d10")


def builtin_role_id(name: str) -> str:
    """Built-in roles have the same id on every installation, so scripts can name them."""
    return str(uuid.uuid5(_NAMESPACE, name))


@dataclass(frozen=True)
class Permission:
    name: str
    description: str
    # Built-in roles besides Intune Administrator (and, for reads, all of them) that have it.
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_read(self) -> bool:
        return self.name.endswith(".read")


_registry: dict[str, Permission] = {}


def register(*perms: Permission) -> None:
    for perm in perms:
        for role in perm.roles:
            if role not in BUILTIN_ROLES:
                raise ValueError(f"unknown built-in role {role!r}")
        existing = _registry.get(perm.name)
        if existing is not None and existing != perm:
            raise ValueError(f"permission {perm.name!r} registered twice, differently")
        _registry[perm.name] = perm


def all_permissions() -> list[Permission]:
    return sorted(_registry.values(), key=lambda p: p.name)


def is_permission(name: str) -> bool:
    return name in _registry


def builtin_role_permissions(role: str) -> set[str]:
    if role == INTUNE_ADMINISTRATOR:
        return set(_registry)
    return {p.name for p in _registry.values() if p.is_read or role in p.roles}
