"""Admin-API inputs of the tenant (Graph names)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from aospmdm.core.schemas import READ_ONLY, GraphInput

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Description = Annotated[str, StringConstraints(max_length=1024)]
TagIds = Annotated[list[str], Field(max_length=1000)]


class OrganizationUpdate(GraphInput):
    read_only = READ_ONLY | {"mobileDeviceManagementAuthority"}
    display_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)
    ]


class ScopeTagCreate(GraphInput):
    odata_type = "microsoft.graph.roleScopeTag"
    display_name: Name
    description: Description = ""


class ScopeTagUpdate(GraphInput):
    odata_type = "microsoft.graph.roleScopeTag"
    display_name: Name | None = None
    description: Description | None = None


class ResourceAction(GraphInput):
    allowed_resource_actions: Annotated[list[str], Field(max_length=500)] = []
    not_allowed_resource_actions: Annotated[list[str], Field(max_length=0)] = []


class RolePermission(GraphInput):
    resource_actions: Annotated[list[ResourceAction], Field(max_length=50)] = []


ROLE_READ_ONLY = READ_ONLY | {"isBuiltInRoleDefinition"}


class RoleDefinitionCreate(GraphInput):
    odata_type = "microsoft.graph.deviceAndAppManagementRoleDefinition"
    read_only = ROLE_READ_ONLY
    display_name: Name
    description: Description = ""
    role_permissions: Annotated[list[RolePermission], Field(max_length=50)] = []
    role_scope_tag_ids: TagIds | None = None


class RoleDefinitionUpdate(GraphInput):
    odata_type = "microsoft.graph.deviceAndAppManagementRoleDefinition"
    read_only = ROLE_READ_ONLY
    display_name: Name | None = None
    description: Description | None = None
    role_permissions: Annotated[list[RolePermission], Field(max_length=50)] | None = None
    role_scope_tag_ids: TagIds | None = None


class RoleAssignmentCreate(GraphInput):
    odata_type = "microsoft.graph.deviceAndAppManagementRoleAssignment"
    read_only = READ_ONLY | {"memberUserPrincipalNames"}
    display_name: Name
    description: Description = ""
    role_definition_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    # Admin ids or sign-in emails.
    members: Annotated[list[str], Field(min_length=1, max_length=1000)]
    role_scope_tag_ids: TagIds = []
