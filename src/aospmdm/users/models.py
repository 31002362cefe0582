"""Tables of the worker directory and of shared-device sessions.

The directory is local (users with argon2-hashed passwords), behind one small interface in
``service.py`` (find a user, check a password), so that an external OIDC identity provider can
replace it: ``source`` and ``external_id`` say where a user comes from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id


class DirectoryUser(Base):
    __tablename__ = "directory_user"
    __graph_name__ = "user"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Stored lower-case: sign-in names compare case-insensitively, as in Entra.
    user_principal_name: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    account_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # argon2; None for a user whose password lives elsewhere (an external provider).
    password_hash: Mapped[str | None] = mapped_column(Text)
    # "local" today; an external provider's name later, with the user's id there.
    source: Mapped[str] = mapped_column(String(32), default="local")
    external_id: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]


class DeviceSession(Base):
    """A worker signed in on a shared device. The token (SHA-256 stored) is what the
    participating apps present; sign-out, a new sign-in on the device, expiry or an admin
    ends it for every app at once."""

    __tablename__ = "device_session"
    __table_args__ = (
        Index("ix_device_session_device_ended", "device_id", "ended_at"),
        Index("ix_device_session_user_started", "user_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Not foreign keys: the history outlives a wiped device or a deleted user.
    device_id: Mapped[str] = mapped_column(String(36))
    device_name: Mapped[str] = mapped_column(String(256))
    user_id: Mapped[str] = mapped_column(String(36))
    user_principal_name: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # signOut | replaced | admin | expired | userDisabled | deviceRemoved
    ended_reason: Mapped[str | None] = mapped_column(String(32))


class DeviceSignInFailure(Base):
    """Failed worker sign-ins on devices, kept for the throttling window (in the database,
    so every worker process counts the same failures)."""

    __tablename__ = "device_sign_in_failure"
    __table_args__ = (
        Index("ix_device_sign_in_failure_upn_at", "user_principal_name", "at"),
        Index("ix_device_sign_in_failure_device_at", "device_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_principal_name: Mapped[str] = mapped_column(String(254))
    device_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(32))
