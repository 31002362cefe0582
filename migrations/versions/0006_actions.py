"""actions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 23:58:53.999134
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_command",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("action_name", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column("started_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_updated_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("result_message", sa.String(length=1024), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_command")),
    )
    with op.batch_alter_table("device_command", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_command_device_state", ["device_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_device_command_state_updated", ["state", "last_updated_at"], unique=False
        )

    op.create_table(
        "device_tombstone",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("serial_number", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("enrolled_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_tombstone")),
    )
    with op.batch_alter_table("request_nonce", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_request_nonce_device_id_managed_device"), type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("request_nonce", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_request_nonce_device_id_managed_device"),
            "managed_device",
            ["device_id"],
            ["id"],
            ondelete="CASCADE",
        )

    op.drop_table("device_tombstone")
    with op.batch_alter_table("device_command", schema=None) as batch_op:
        batch_op.drop_index("ix_device_command_state_updated")
        batch_op.drop_index("ix_device_command_device_state")

    op.drop_table("device_command")
