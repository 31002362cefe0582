"""support

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:48:26.595789
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aospmdm.core.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_session",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("user_principal_name", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("started_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_device_session_token_hash")),
    )
    with op.batch_alter_table("device_session", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_session_device_ended", ["device_id", "ended_at"], unique=False
        )
        batch_op.create_index(
            "ix_device_session_user_started", ["user_id", "started_at"], unique=False
        )

    op.create_table(
        "device_sign_in_failure",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_principal_name", sa.String(length=254), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_sign_in_failure")),
    )
    with op.batch_alter_table("device_sign_in_failure", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_sign_in_failure_device_at", ["device_id", "at"], unique=False
        )
        batch_op.create_index(
            "ix_device_sign_in_failure_upn_at", ["user_principal_name", "at"], unique=False
        )

    op.create_table(
        "directory_user",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_principal_name", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("account_enabled", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("created_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_user")),
        sa.UniqueConstraint(
            "user_principal_name", name=op.f("uq_directory_user_user_principal_name")
        ),
    )
    op.create_table(
        "log_upload",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=256), nullable=False),
        sa.Column("expires_at", aospmdm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_upload")),
    )
    with op.batch_alter_table("log_upload", schema=None) as batch_op:
        batch_op.create_index(
            "ix_log_upload_device_requested", ["device_id", "requested_at"], unique=False
        )
        batch_op.create_index("ix_log_upload_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("log_upload", schema=None) as batch_op:
        batch_op.drop_index("ix_log_upload_expires_at")
        batch_op.drop_index("ix_log_upload_device_requested")

    op.drop_table("log_upload")
    op.drop_table("directory_user")
    with op.batch_alter_table("device_sign_in_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_device_sign_in_failure_upn_at")
        batch_op.drop_index("ix_device_sign_in_failure_device_at")

    op.drop_table("device_sign_in_failure")
    with op.batch_alter_table("device_session", schema=None) as batch_op:
        batch_op.drop_index("ix_device_session_user_started")
        batch_op.drop_index("ix_device_session_device_ended")

    op.drop_table("device_session")
