"""The database layer: the model base and types, transactions, SQLite's writer queue.

`from portal.db import Base, utcnow, new_id` for models; `portal.db.transactions` for how a
transaction begins and commits (`write_transaction`); `portal.db.connections` sets up each
connection. The `db` instance itself is in `portal.extensions` with the other extensions.
"""

from portal.db.model import NAMING_CONVENTION, Base, new_id, utcnow
from portal.db.types import UTCDateTime

__all__ = ["NAMING_CONVENTION", "Base", "UTCDateTime", "new_id", "utcnow"]
