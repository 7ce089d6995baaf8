"""The database layer: the model base and types, the session, transactions, SQLite's writer
queue and each connection's set-up.

`from portal.db import Base, utcnow, new_id` for models; `portal.db.transactions` for how a
transaction begins and commits (`write_transaction`); `portal.db.connections` sets up each
connection; `portal.db.guards` refuses bulk changes to rows that never change. The `db`
instance is made here, with the base it needs, and handed on by `portal.extensions`, where
the rest of the app takes it from.
"""

from flask_sqlalchemy import SQLAlchemy

from portal.db.model import NAMING_CONVENTION, Base, new_id, utcnow
from portal.db.types import UTCDateTime

db = SQLAlchemy(model_class=Base)

__all__ = ["NAMING_CONVENTION", "Base", "UTCDateTime", "db", "new_id", "utcnow"]
