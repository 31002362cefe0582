"""managed devices, their apps, request nonces

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:35:02.361925
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managed_device",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("enrollment_profile_id", sa.String(length=36), nullable=True),
        sa.Column("enrollment_profile_name", sa.String(length=256), nullable=False),
        sa.Column("management_state", sa.String(length=32), nullable=False),
        sa.Column("compliance_state", sa.String(length=32), nullable=False),
        sa.Column("enrolled_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sync_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("serial_number", sa.String(length=128), nullable=False),
        sa.Column("manufacturer", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("os_version", sa.String(length=64), nullable=False),
        sa.Column("security_patch_level", sa.String(length=64), nullable=False),
        sa.Column("battery_level", sa.Integer(), nullable=True),
        sa.Column("is_encrypted", sa.Boolean(), nullable=True),
        sa.Column("is_rooted", sa.Boolean(), nullable=True),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("installed_apps_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_managed_device")),
    )
    with op.batch_alter_table("managed_device", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_managed_device_enrollment_profile_id"),
            ["enrollment_profile_id"],
            unique=False,
        )
        batch_op.create_index("ix_managed_device_last_sync_at", ["last_sync_at"], unique=False)
        batch_op.create_index(
            "ix_managed_device_profile_name", ["enrollment_profile_name"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_managed_device_serial_number"), ["serial_number"], unique=False
        )

    op.create_table(
        "device_app",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("package_name", sa.String(length=256), nullable=False),
        sa.Column("version_name", sa.String(length=256), nullable=False),
        sa.Column("version_code", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["managed_device.id"],
            name=op.f("fk_device_app_device_id_managed_device"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "package_name", name=op.f("pk_device_app")),
    )
    with op.batch_alter_table("device_app", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_app_package_name"), ["package_name"], unique=False
        )

    op.create_table(
        "request_nonce",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["managed_device.id"],
            name=op.f("fk_request_nonce_device_id_managed_device"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "nonce", name=op.f("pk_request_nonce")),
    )
    with op.batch_alter_table("request_nonce", schema=None) as batch_op:
        batch_op.create_index("ix_request_nonce_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_nonce", schema=None) as batch_op:
        batch_op.drop_index("ix_request_nonce_at")

    op.drop_table("request_nonce")
    with op.batch_alter_table("device_app", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_app_package_name"))

    op.drop_table("device_app")
    with op.batch_alter_table("managed_device", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_managed_device_serial_number"))
        batch_op.drop_index("ix_managed_device_profile_name")
        batch_op.drop_index("ix_managed_device_last_sync_at")
        batch_op.drop_index(batch_op.f("ix_managed_device_enrollment_profile_id"))

    op.drop_table("managed_device")
