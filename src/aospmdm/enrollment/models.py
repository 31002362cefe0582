"""Tables of enrollment: profiles and the tokens they issued (current and past)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id


class EnrollmentProfile(Base):
    __tablename__ = "enrollment_profile"
    __graph_name__ = "androidDeviceOwnerEnrollmentProfile"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(256))
    # Lower-cased name: names are unique whatever their case (dynamic-group rules compare
    # them case-insensitively, so two profiles differing only in case would be one group).
    name_key: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(String(1500), default="")
    enrollment_mode: Mapped[str] = mapped_column(String(64))
    configure_wifi: Mapped[bool] = mapped_column(Boolean, default=True)
    wifi_ssid: Mapped[str | None] = mapped_column(String(32))
    wifi_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    wifi_security_type: Mapped[str] = mapped_column(String(8), default="none")
    # Encrypted with the instance key: it is shown again inside the QR code.
    wifi_password_encrypted: Mapped[str | None] = mapped_column(Text)
    device_name_template: Mapped[str | None] = mapped_column(String(63))
    token_usage_limit: Mapped[int | None] = mapped_column(Integer)
    current_token_id: Mapped[str | None] = mapped_column(String(36))
    enrolled_device_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]


class EnrollmentToken(Base):
    """Every token a profile issued. Only the profile's current one may enroll; the others
    stay so that an old QR is recognised and refused with the right reason."""

    __tablename__ = "enrollment_token"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # None once the profile is deleted: the token is then revoked, and refused as such.
    profile_id: Mapped[str | None] = mapped_column(
        ForeignKey("enrollment_profile.id", ondelete="SET NULL"), index=True
    )
    # The secret that enrolls: its SHA-256 for the check, and encrypted to show the QR again.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # The plain-text reference shown to admins (tokenValue); it cannot enroll.
    value: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    usage_limit: Mapped[int | None] = mapped_column(Integer)
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
