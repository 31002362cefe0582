"""Tables of the device protocol."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Index, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base


class RequestNonce(Base):
    """Nonces of signed device requests inside the clock-skew window: a replay is refused.
    Rows older than the window are pruned (they can no longer pass the timestamp check)."""

    __tablename__ = "request_nonce"
    __table_args__ = (Index("ix_request_nonce_at", "at"),)

    # Not a foreign key: a deleted device's tombstone signs requests too (remote actions).
    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime]


NONCES = cast("Table", RequestNonce.__table__)
