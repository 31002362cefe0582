"""enrollment profiles and tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:11:29.178231
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrollment_profile",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1500), nullable=False),
        sa.Column("enrollment_mode", sa.String(length=64), nullable=False),
        sa.Column("configure_wifi", sa.Boolean(), nullable=False),
        sa.Column("wifi_ssid", sa.String(length=32), nullable=True),
        sa.Column("wifi_hidden", sa.Boolean(), nullable=False),
        sa.Column("wifi_security_type", sa.String(length=8), nullable=False),
        sa.Column("wifi_password_encrypted", sa.Text(), nullable=True),
        sa.Column("device_name_template", sa.String(length=63), nullable=True),
        sa.Column("token_usage_limit", sa.Integer(), nullable=True),
        sa.Column("current_token_id", sa.String(length=36), nullable=True),
        sa.Column("enrolled_device_count", sa.Integer(), nullable=False),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_profile")),
        sa.UniqueConstraint("name_key", name=op.f("uq_enrollment_profile_name_key")),
    )
    op.create_table(
        "enrollment_token",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("profile_id", sa.String(length=36), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("usage_limit", sa.Integer(), nullable=True),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["enrollment_profile.id"],
            name=op.f("fk_enrollment_token_profile_id_enrollment_profile"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_token")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_enrollment_token_secret_hash")),
        sa.UniqueConstraint("value", name=op.f("uq_enrollment_token_value")),
    )
    with op.batch_alter_table("enrollment_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollment_token_profile_id"), ["profile_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollment_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_token_profile_id"))

    op.drop_table("enrollment_token")
    op.drop_table("enrollment_profile")
