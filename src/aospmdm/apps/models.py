"""Tables of the app catalog: apps, their versions (APK files kept by SHA-256 under the data
directory), their assignments to groups, and each app's install status on each device.

App work is not queued per device: the check-in computes it from the assignments, the
catalog and the device's inventory. ``DeviceAppStatus`` only remembers what the device
said, so a failure can be shown and retried with backoff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id

# The apps every device has (the enrollment answer lists them), present in every catalog.
ROLES = ("agent", "authenticator", "companyPortal")
REQUIRED, UNINSTALL = "required", "uninstall"
INTENTS = (REQUIRED, UNINSTALL)
# Graph's resultantAppState subset that userless devices can be in.
INSTALLED = "installed"
FAILED = "failed"
NOT_INSTALLED = "notInstalled"
PENDING = "pending"
UNINSTALL_FAILED = "uninstallFailed"
INSTALL_STATES = (INSTALLED, FAILED, NOT_INSTALLED, PENDING, UNINSTALL_FAILED)


class MobileApp(Base):
    __tablename__ = "mobile_app"
    __graph_name__ = "mobileApp"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    package_name: Mapped[str] = mapped_column(String(256), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(String(1500), default="")
    publisher: Mapped[str] = mapped_column(String(256), default="")
    # agent | authenticator | companyPortal for the required apps; None for uploaded ones.
    role: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]


class MobileAppVersion(Base):
    """One version of an app. An uploaded one has its file (``sha256``); a required app's
    version as provisioned (from the operator settings) may only have a download URL."""

    __tablename__ = "mobile_app_version"
    __table_args__ = (UniqueConstraint("app_id", "version_code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("mobile_app.id", ondelete="CASCADE"), index=True)
    version_name: Mapped[str] = mapped_column(String(256))
    version_code: Mapped[int] = mapped_column(BigInteger)
    min_sdk: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(256), default="")
    signing_cert_sha256: Mapped[str | None] = mapped_column(String(64))
    external_url: Mapped[str | None] = mapped_column(String(2048))
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    uploaded_at: Mapped[datetime]
    uploaded_by: Mapped[str] = mapped_column(String(254))


class MobileAppAssignment(Base):
    __tablename__ = "mobile_app_assignment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("mobile_app.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("device_group.id", ondelete="CASCADE"), index=True
    )
    intent: Mapped[str] = mapped_column(String(16))
    exclude: Mapped[bool] = mapped_column(Boolean, default=False)


class DeviceAppStatus(Base):
    """An app's install state on one device, as the device last reported it (or, for
    ``pending``, since the work was first sent)."""

    __tablename__ = "device_app_status"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("managed_device.id", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(
        ForeignKey("mobile_app.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    install_state: Mapped[str] = mapped_column(String(16))
    # install | uninstall: what was asked; and the version it was about.
    work: Mapped[str] = mapped_column(String(16))
    version_code: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(String(1024), default="")
    # Failures in a row for this work; the next try waits until next_attempt_at.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_updated_at: Mapped[datetime]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
