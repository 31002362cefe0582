"""Tables of the tenant: one organization, its admins, their credentials, roles and audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id

DEFAULT_SCOPE_TAG_ID = "0"


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(256))
    # Graph's mdmAuthority: "unknown" until set once, then "intune" (the value scripts expect).
    mdm_authority: Mapped[str] = mapped_column(String(16), default="unknown")
    mdm_authority_set_at: Mapped[datetime | None]
    license_count: Mapped[int] = mapped_column(Integer, default=0)
    licenses_consumed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class Admin(Base):
    __tablename__ = "admin"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    password_hash: Mapped[str] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_sign_in_at: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    admin_id: Mapped[str] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ConsoleSession(Base):
    __tablename__ = "console_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    admin_id: Mapped[str] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class SignInFailure(Base):
    """Failed console sign-ins, kept for the throttling window (in the database, so every
    worker of a site counts the same failures)."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (
        Index("ix_sign_in_failure_email_at", "email", "at"),
        Index("ix_sign_in_failure_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class ScopeTag(Base):
    __tablename__ = "scope_tag"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    is_built_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ScopeTagLink(Base):
    """The scope tags on any tagged object: one mechanism for every feature's objects."""

    __tablename__ = "scope_tag_link"
    __table_args__ = (Index("ix_scope_tag_link_tag_id", "tag_id"),)

    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag_id: Mapped[str] = mapped_column(
        ForeignKey("scope_tag.id", ondelete="RESTRICT"), primary_key=True
    )


class RoleDefinition(Base):
    __tablename__ = "role_definition"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    is_built_in: Mapped[bool] = mapped_column(Boolean, default=False)
    # Custom roles only: built-in roles are computed from the permission registry.
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]


class RoleAssignment(Base):
    __tablename__ = "role_assignment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")
    role_definition_id: Mapped[str] = mapped_column(
        ForeignKey("role_definition.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime]


class RoleAssignmentMember(Base):
    __tablename__ = "role_assignment_member"

    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("role_assignment.id", ondelete="CASCADE"), primary_key=True
    )
    admin_id: Mapped[str] = mapped_column(
        ForeignKey("admin.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RoleAssignmentScopeTag(Base):
    """The tags an assignment's members are scoped to; none means they see everything."""

    __tablename__ = "role_assignment_scope_tag"

    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("role_assignment.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[str] = mapped_column(
        ForeignKey("scope_tag.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class AuditEvent(Base):
    """Append-only: no API edits or deletes a row, and the database refuses it too."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_at", "activity_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    activity_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(254), index=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_address: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64), index=True)
    activity: Mapped[str] = mapped_column(String(256))
    operation_type: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(String(16))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_name: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text)
