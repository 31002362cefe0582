"""Tables of support: the logs devices upload, each found by its incident ID."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from aospmdm.core.db import Base


class LogUpload(Base):
    """One log upload (Graph's deviceLogCollectionResponse). The file is kept under the data
    directory (``logs/<id>``) until ``expires_at``; the row says where and what it was."""

    __tablename__ = "log_upload"
    __table_args__ = (
        Index("ix_log_upload_device_requested", "device_id", "requested_at"),
        Index("ix_log_upload_expires_at", "expires_at"),
    )

    # The incident ID: short enough to read out on the phone, unique, not guessable.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Not a foreign key: the logs of a wiped device stay until they expire.
    device_id: Mapped[str] = mapped_column(String(36))
    device_name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # completed | expired
    requested_at: Mapped[datetime]
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))  # application/zip | text/plain
    file_name: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime]
