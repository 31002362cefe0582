"""policies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:32:20.052711
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secure_by_default", sa.Boolean(), nullable=False),
        sa.Column("checkin_threshold_days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_settings")),
    )
    op.create_table(
        "outbox_mail",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1024), nullable=True),
        sa.Column("claimed_until", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_mail")),
    )
    with op.batch_alter_table("outbox_mail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_mail_sent_at"), ["sent_at"], unique=False)

    op.create_table(
        "policy",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1500), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("scheduled_actions", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy")),
    )
    with op.batch_alter_table("policy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_kind"), ["kind"], unique=False)

    op.create_table(
        "compliance_action",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("policy_id", sa.String(length=36), nullable=False),
        sa.Column("action_type", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["managed_device.id"],
            name=op.f("fk_compliance_action_device_id_managed_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policy.id"],
            name=op.f("fk_compliance_action_policy_id_policy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_action")),
    )
    with op.batch_alter_table("compliance_action", schema=None) as batch_op:
        batch_op.create_index(
            "ix_compliance_action_device_type", ["device_id", "action_type"], unique=False
        )

    op.create_table(
        "device_policy_state",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("policy_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("setting_states", sa.JSON(), nullable=False),
        sa.Column("reported_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("noncompliant_since", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("actions_done", sa.JSON(), nullable=False),
        sa.Column("next_action_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["managed_device.id"],
            name=op.f("fk_device_policy_state_device_id_managed_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policy.id"],
            name=op.f("fk_device_policy_state_policy_id_policy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "policy_id", name=op.f("pk_device_policy_state")),
    )
    with op.batch_alter_table("device_policy_state", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_policy_state_next_action_at", ["next_action_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_device_policy_state_policy_id"), ["policy_id"], unique=False
        )

    op.create_table(
        "policy_assignment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("policy_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("exclude", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["device_group.id"],
            name=op.f("fk_policy_assignment_group_id_device_group"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policy.id"],
            name=op.f("fk_policy_assignment_policy_id_policy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_assignment")),
    )
    with op.batch_alter_table("policy_assignment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_assignment_group_id"), ["group_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_assignment_policy_id"), ["policy_id"], unique=False
        )

    with op.batch_alter_table("managed_device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passcode_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("passcode_length", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("lock_after_inactivity_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("applied_policy_version", sa.String(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("managed_device", schema=None) as batch_op:
        batch_op.drop_column("applied_policy_version")
        batch_op.drop_column("lock_after_inactivity_minutes")
        batch_op.drop_column("passcode_length")
        batch_op.drop_column("passcode_type")

    with op.batch_alter_table("policy_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_assignment_policy_id"))
        batch_op.drop_index(batch_op.f("ix_policy_assignment_group_id"))

    op.drop_table("policy_assignment")
    with op.batch_alter_table("device_policy_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_policy_state_policy_id"))
        batch_op.drop_index("ix_device_policy_state_next_action_at")

    op.drop_table("device_policy_state")
    with op.batch_alter_table("compliance_action", schema=None) as batch_op:
        batch_op.drop_index("ix_compliance_action_device_type")

    op.drop_table("compliance_action")
    with op.batch_alter_table("policy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_kind"))

    op.drop_table("policy")
    with op.batch_alter_table("outbox_mail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_mail_sent_at"))

    op.drop_table("outbox_mail")
    op.drop_table("compliance_settings")
