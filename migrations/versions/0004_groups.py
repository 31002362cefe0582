"""device groups, members; device category and extension attributes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:08:29.884145
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_group",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("mail_nickname", sa.String(length=64), nullable=False),
        sa.Column("group_types", sa.JSON(), nullable=False),
        sa.Column("membership_rule", sa.Text(), nullable=True),
        sa.Column("processing_state", sa.String(length=16), nullable=False),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_group")),
    )
    op.create_table(
        "group_member",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("added_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["managed_device.id"],
            name=op.f("fk_group_member_device_id_managed_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["device_group.id"],
            name=op.f("fk_group_member_group_id_device_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "device_id", name=op.f("pk_group_member")),
    )
    with op.batch_alter_table("group_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_member_device_id"), ["device_id"], unique=False)

    with op.batch_alter_table("managed_device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_category", sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column(
                "extension_attributes", sa.JSON(), nullable=False, server_default=sa.text("'{}'")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("managed_device", schema=None) as batch_op:
        batch_op.drop_column("extension_attributes")
        batch_op.drop_column("device_category")

    with op.batch_alter_table("group_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_member_device_id"))

    op.drop_table("group_member")
    op.drop_table("device_group")
