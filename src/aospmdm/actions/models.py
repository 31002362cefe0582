"""The command queue: one row per remote action on one device (NanoMDM, zentral)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id

PENDING = "pending"
ACTIVE = "active"
DONE = "done"
FAILED = "failed"
CANCELED = "canceled"
NOT_SUPPORTED = "notSupported"
TERMINAL = frozenset({DONE, FAILED, CANCELED, NOT_SUPPORTED})
OPEN = (PENDING, ACTIVE)


class DeviceCommand(Base):
    """A remote action. It stays open (pending, then active once the device accepted it)
    until a final result is stored; terminal states never change. The device id is not a
    foreign key: a wiped device is removed, and its actions stay as history."""

    __tablename__ = "device_command"
    __table_args__ = (
        Index("ix_device_command_device_state", "device_id", "state"),
        Index("ix_device_command_state_updated", "state", "last_updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(String(36))
    device_name: Mapped[str] = mapped_column(String(256))
    # Graph's action names: wipe | delete | remoteLock | resetPasscode | rebootNow
    action_name: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    # resetPasscode: the temporary passcode, encrypted; erased after it was shown long enough.
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(254))
    started_at: Mapped[datetime]
    last_updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # How many times it was sent, and what the device said last.
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    result_message: Mapped[str | None] = mapped_column(String(1024))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeviceTombstone(Base):
    """A device an admin deleted: it is gone from the list and its license is free, but its
    key is kept so its next check-in gets a factory-reset command, until it confirms."""

    __tablename__ = "device_tombstone"

    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_name: Mapped[str] = mapped_column(String(256))
    serial_number: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(Text)
    enrolled_at: Mapped[datetime]
    deleted_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
