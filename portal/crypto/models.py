"""Wrapped per-client data keys and one canary per master key.

Master keys never enter the database: a data key row holds only the data key wrapped by a
master key, and the id of that master key, so rotation knows which rows still depend on it.
"""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import new_id, utcnow
from portal.extensions import db


class DataKey(db.Model):
    """A client's 256-bit data key, wrapped; NULL `wrapped` means crypto-shredded."""

    __tablename__ = "data_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                index=True)
    master_key_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Retired: no longer used for new seals, still opens the blobs that name it.
    retired_at: Mapped[datetime | None]
    shredded_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # ids only, never the wrapped bytes
        state = "shredded" if self.shredded_at else "retired" if self.retired_at else "live"
        return f"<DataKey {self.id} owner={self.owner_id} master={self.master_key_id} {state}>"


class KeyCanary(db.Model):
    """A known value wrapped by one master key: proves at start-up the key is the right one."""

    __tablename__ = "key_canaries"

    master_key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<KeyCanary {self.master_key_id}>"
