"""The optional database triggers refuse plain-SQL changes to audit events."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from portal.audit import record, verify
from portal.audit.triggers import drop_triggers, install_triggers


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET outcome = 'denied'",
    "DELETE FROM audit_events",
])
def test_triggers_refuse_update_and_delete_but_allow_appends(db, statement):
    record("auth.signin.success")
    db.session.commit()
    with db.engine.begin() as conn:
        install_triggers(conn)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    record("auth.signout")
    db.session.commit()
    assert verify().ok and verify().count == 2
    db.session.commit()  # end the read before another connection writes
    with db.engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(text(statement))  # and a downgrade removes them
