"""Tables of managed devices and what is installed on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id


class ManagedDevice(Base):
    __tablename__ = "managed_device"
    __graph_name__ = "managedDevice"
    __table_args__ = (
        Index("ix_managed_device_profile_name", "enrollment_profile_name"),
        Index("ix_managed_device_last_sync_at", "last_sync_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_name: Mapped[str] = mapped_column(String(256))
    enrollment_profile_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # Copied from the profile (renames follow it); stays when the profile is deleted.
    enrollment_profile_name: Mapped[str] = mapped_column(String(256))
    management_state: Mapped[str] = mapped_column(String(32), default="managed")
    compliance_state: Mapped[str] = mapped_column(String(32), default="unknown")
    enrolled_at: Mapped[datetime]
    last_sync_at: Mapped[datetime]
    serial_number: Mapped[str] = mapped_column(String(128), index=True)
    manufacturer: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    os_version: Mapped[str] = mapped_column(String(64))
    security_patch_level: Mapped[str] = mapped_column(String(64))
    battery_level: Mapped[int | None] = mapped_column(Integer)
    is_encrypted: Mapped[bool | None] = mapped_column(Boolean)
    is_rooted: Mapped[bool | None] = mapped_column(Boolean)
    # The screen lock as reported: kind ("none": no passcode), length, lock-after minutes.
    passcode_type: Mapped[str | None] = mapped_column(String(32))
    passcode_length: Mapped[int | None] = mapped_column(Integer)
    lock_after_inactivity_minutes: Mapped[int | None] = mapped_column(Integer)
    # The version of the effective policy the device last said it applied.
    applied_policy_version: Mapped[str | None] = mapped_column(String(64))
    agent_version: Mapped[str] = mapped_column(String(64))
    # The device's own ECDSA P-256 public key (SubjectPublicKeyInfo DER, base64url).
    public_key: Mapped[str] = mapped_column(Text)
    installed_apps_hash: Mapped[str | None] = mapped_column(String(64))
    # Set by admins; dynamic groups can select on them.
    device_category: Mapped[str | None] = mapped_column(String(256))
    extension_attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class DeviceApp(Base):
    """An app installed on a device, as the device last reported it."""

    __tablename__ = "device_app"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("managed_device.id", ondelete="CASCADE"), primary_key=True
    )
    package_name: Mapped[str] = mapped_column(String(256), primary_key=True, index=True)
    version_name: Mapped[str] = mapped_column(String(256))
    version_code: Mapped[int] = mapped_column(BigInteger)
    # As the device sent it (may be empty: readers show the package name instead).
    display_name: Mapped[str] = mapped_column(String(256))
    size_in_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
