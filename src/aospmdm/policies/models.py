"""Tables of policies: restrictions, Wi-Fi and compliance policies, their assignments, what
each device reported or was found to be, and what noncompliance set in motion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id

RESTRICTIONS = "restrictions"
WIFI = "wifi"
COMPLIANCE = "compliance"
CONFIGURATION_KINDS = (RESTRICTIONS, WIFI)


class Policy(Base):
    """One policy of any kind; ``settings`` holds only the configured settings (Graph names),
    so an absent setting is "not configured"."""

    __tablename__ = "policy"
    __graph_name__ = "policy"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    display_name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(String(1500), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A Wi-Fi profile's pre-shared key, encrypted with the instance key (write-only).
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # Compliance: Graph's scheduledActionConfigurations (actionType, gracePeriodHours, …).
    scheduled_actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]


class PolicyAssignment(Base):
    __tablename__ = "policy_assignment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    policy_id: Mapped[str] = mapped_column(ForeignKey("policy.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("device_group.id", ondelete="CASCADE"), index=True
    )
    # An exclusion target: devices in this group do not get the policy, whatever else
    # targets them.
    exclude: Mapped[bool] = mapped_column(Boolean, default=False)


class DevicePolicyState(Base):
    """A policy's status on one device: for configurations, what the device reported for the
    policy's version; for compliance, the server's evaluation of the device's facts."""

    __tablename__ = "device_policy_state"
    __table_args__ = (Index("ix_device_policy_state_next_action_at", "next_action_at"),)

    device_id: Mapped[str] = mapped_column(
        ForeignKey("managed_device.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("policy.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Graph's complianceStatus: compliant | nonCompliant | error | conflict | notApplicable |
    # unknown.
    status: Mapped[str] = mapped_column(String(16))
    policy_version: Mapped[int] = mapped_column(Integer)
    # Per setting: setting, state, currentValue, reason and the policy that won it.
    setting_states: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reported_at: Mapped[datetime]
    # Compliance: when the device became noncompliant with this policy (grace periods count
    # from here), which scheduled actions have run since, and when the next one is due.
    noncompliant_since: Mapped[datetime | None]
    actions_done: Mapped[list[str]] = mapped_column(JSON, default=list)
    next_action_at: Mapped[datetime | None]


class ComplianceAction(Base):
    """A noncompliance action that came due: a remote lock for the command queue, a place on
    the retire list, or a notification (whose mail is in the outbox)."""

    __tablename__ = "compliance_action"
    __table_args__ = (Index("ix_compliance_action_device_type", "device_id", "action_type"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(ForeignKey("managed_device.id", ondelete="CASCADE"))
    policy_id: Mapped[str] = mapped_column(ForeignKey("policy.id", ondelete="CASCADE"))
    # remoteLock | retire | notification
    action_type: Mapped[str] = mapped_column(String(32))
    # pending (waiting for its carrier: the command queue, the admin) | done | canceled
    state: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ComplianceSettings(Base):
    """Tenant-wide compliance settings (Graph's deviceManagement.settings); one row."""

    __tablename__ = "compliance_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secure_by_default: Mapped[bool] = mapped_column(Boolean, default=False)
    checkin_threshold_days: Mapped[int] = mapped_column(Integer, default=30)


class OutboxMail(Base):
    """A notification to send by SMTP when it is configured."""

    __tablename__ = "outbox_mail"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(512))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1024))
    # A sender took it until then (no other worker sends it meanwhile).
    claimed_until: Mapped[datetime | None]
