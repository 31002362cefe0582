"""Tables of device groups and their members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base, new_id

DYNAMIC = "DynamicMembership"


class DeviceGroup(Base):
    __tablename__ = "device_group"
    __graph_name__ = "group"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(String(1024), default="")
    mail_nickname: Mapped[str] = mapped_column(String(64))
    # [] is an assigned group, ["DynamicMembership"] a dynamic one (Graph's groupTypes).
    group_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    membership_rule: Mapped[str | None] = mapped_column(Text)
    processing_state: Mapped[str] = mapped_column(String(16), default="On")
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]

    @property
    def is_dynamic(self) -> bool:
        return DYNAMIC in self.group_types


class GroupMember(Base):
    __tablename__ = "group_member"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("device_group.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(
        ForeignKey("managed_device.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime]
