"""apps

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:01:34.084956
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mobile_app",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("package_name", sa.String(length=256), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1500), nullable=False),
        sa.Column("publisher", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mobile_app")),
        sa.UniqueConstraint("package_name", name=op.f("uq_mobile_app_package_name")),
    )
    op.create_table(
        "device_app_status",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("install_state", sa.String(length=16), nullable=False),
        sa.Column("work", sa.String(length=16), nullable=False),
        sa.Column("version_code", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_updated_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["mobile_app.id"],
            name=op.f("fk_device_app_status_app_id_mobile_app"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["managed_device.id"],
            name=op.f("fk_device_app_status_device_id_managed_device"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "app_id", name=op.f("pk_device_app_status")),
    )
    with op.batch_alter_table("device_app_status", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_app_status_app_id"), ["app_id"], unique=False)

    op.create_table(
        "mobile_app_assignment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("intent", sa.String(length=16), nullable=False),
        sa.Column("exclude", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["mobile_app.id"],
            name=op.f("fk_mobile_app_assignment_app_id_mobile_app"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["device_group.id"],
            name=op.f("fk_mobile_app_assignment_group_id_device_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mobile_app_assignment")),
    )
    with op.batch_alter_table("mobile_app_assignment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mobile_app_assignment_app_id"), ["app_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mobile_app_assignment_group_id"), ["group_id"], unique=False
        )

    op.create_table(
        "mobile_app_version",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("version_name", sa.String(length=256), nullable=False),
        sa.Column("version_code", sa.BigInteger(), nullable=False),
        sa.Column("min_sdk", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_name", sa.String(length=256), nullable=False),
        sa.Column("signing_cert_sha256", sa.String(length=64), nullable=True),
        sa.Column("external_url", sa.String(length=2048), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("uploaded_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["mobile_app.id"],
            name=op.f("fk_mobile_app_version_app_id_mobile_app"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mobile_app_version")),
        sa.UniqueConstraint(
            "app_id", "version_code", name=op.f("uq_mobile_app_version_app_id_version_code")
        ),
    )
    with op.batch_alter_table("mobile_app_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mobile_app_version_app_id"), ["app_id"], unique=False)

    with op.batch_alter_table("device_app", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("size_in_bytes", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("device_app", schema=None) as batch_op:
        batch_op.drop_column("size_in_bytes")

    with op.batch_alter_table("mobile_app_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mobile_app_version_app_id"))

    op.drop_table("mobile_app_version")
    with op.batch_alter_table("mobile_app_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mobile_app_assignment_group_id"))
        batch_op.drop_index(batch_op.f("ix_mobile_app_assignment_app_id"))

    op.drop_table("mobile_app_assignment")
    with op.batch_alter_table("device_app_status", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_app_status_app_id"))

    op.drop_table("device_app_status")
    op.drop_table("mobile_app")
