"""Admin-API inputs of groups (Graph's group, for device groups)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from aospmdm.core.schemas import READ_ONLY, GraphInput

ODATA_TYPE = "microsoft.graph.group"
GROUP_READ_ONLY = READ_ONLY | {"membershipRuleProcessingStatus", "renewedDateTime"}

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Nickname = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
RuleText = Annotated[str, StringConstraints(max_length=3100)]
GroupTypes = Annotated[list[Literal["DynamicMembership"]], Field(max_length=1)]
State = Literal["On", "Paused"]
TagIds = Annotated[list[str], Field(max_length=1000)]


class GroupCreate(GraphInput):
    odata_type = ODATA_TYPE
    read_only = GROUP_READ_ONLY

    display_name: Name
    description: Annotated[str, StringConstraints(max_length=1024)] = ""
    mail_enabled: bool = False
    mail_nickname: Nickname | None = None
    security_enabled: bool = True
    group_types: GroupTypes = []
    membership_rule: RuleText | None = None
    membership_rule_processing_state: State = "On"
    role_scope_tag_ids: TagIds | None = None


class GroupUpdate(GraphInput):
    odata_type = ODATA_TYPE
    read_only = GROUP_READ_ONLY | {"mailEnabled", "securityEnabled", "groupTypes"}

    display_name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    mail_nickname: Nickname | None = None
    membership_rule: RuleText | None = None
    membership_rule_processing_state: State | None = None
    role_scope_tag_ids: TagIds | None = None


class MemberRef(GraphInput):
    odata_id: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        alias="@odata.id"
    )


class Evaluate(GraphInput):
    member_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    membership_rule: RuleText | None = None
