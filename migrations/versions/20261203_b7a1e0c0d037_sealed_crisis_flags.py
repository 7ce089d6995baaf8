"""crisis flags sealed with the message and the conversation

Every message gets `crisis_sealed` ("1" or "0", sealed under the thread's client's key) and
every thread `crisis_sealed` (its whole crisis state as fixed-width JSON, see
portal/messaging/crisis_state.py), sealed from the old readable columns, which are dropped
with the escalation index. Downgrade opens them and restores the columns.

The state's encoding is copied here (short keys, compact JSON padded with spaces to 240
bytes), not imported: a revision must keep working when the application module changes.

Revision ID: b7a1e0c0d037
Revises: b7a1e0c0d027
Create Date: 2026-12-03 07:00:00
"""
import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from portal.crypto.migrating import MigrationKeys

revision = 'b7a1e0c0d037'
down_revision = 'b7a1e0c0d027'
branch_labels = None
depends_on = None

WIDTH = 240
BATCH = 1000
ESCALATE_INDEX = 'ix_message_threads_crisis_escalate'
ACK_FK = 'fk_message_threads_crisis_acknowledged_by_id_users'
_TIME = sa.DateTime(timezone=True)

_OLD_THREADS = sa.table(
    'message_threads', sa.column('id', sa.Uuid()), sa.column('client_id', sa.Uuid()),
    sa.column('crisis_flagged_at', _TIME), sa.column('crisis_message_id', sa.Uuid()),
    sa.column('crisis_acknowledged_at', _TIME),
    sa.column('crisis_acknowledged_by_id', sa.Uuid()), sa.column('crisis_escalate_at', _TIME),
    sa.column('crisis_escalations', sa.Integer()), sa.column('crisis_sealed', sa.LargeBinary()))
_OLD_MESSAGES = sa.table(
    'messages', sa.column('id', sa.Uuid()), sa.column('thread_id', sa.Uuid()),
    sa.column('crisis_flag', sa.Boolean()), sa.column('crisis_sealed', sa.LargeBinary()))


def _utc(value):
    if value is None:
        return None
    if isinstance(value, str):  # SQLite through a plain table construct, to be safe
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _encode(row) -> str:
    data = {"f": _time_text(row.crisis_flagged_at),
            "m": str(row.crisis_message_id) if row.crisis_message_id else None,
            "a": _time_text(row.crisis_acknowledged_at),
            "b": str(row.crisis_acknowledged_by_id) if row.crisis_acknowledged_by_id else None,
            "e": _time_text(row.crisis_escalate_at), "n": int(row.crisis_escalations or 0)}
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > WIDTH:
        raise ValueError("crisis state longer than its fixed width")
    return text.ljust(WIDTH)


def _time_text(value):
    value = _utc(value)
    return value.isoformat() if value is not None else None


def _decode(text: str) -> dict:
    data = json.loads(text)
    return {"crisis_flagged_at": _parse(data.get("f")),
            "crisis_message_id": uuid.UUID(data["m"]) if data.get("m") else None,
            "crisis_acknowledged_at": _parse(data.get("a")),
            "crisis_acknowledged_by_id": uuid.UUID(data["b"]) if data.get("b") else None,
            "crisis_escalate_at": _parse(data.get("e")),
            "crisis_escalations": int(data.get("n") or 0)}


def _parse(value):
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _batches(bind, stmt, key):
    """Rows of `stmt` in keyset batches by `key` (a column of the statement)."""
    after = None
    while True:
        page = stmt.order_by(key).limit(BATCH)
        if after is not None:
            page = page.where(key > after)
        rows = bind.execute(page).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def upgrade():
    bind = op.get_bind()
    keys = MigrationKeys(bind)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crisis_sealed', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('message_threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crisis_sealed', sa.LargeBinary(), nullable=True))

    t, m = _OLD_THREADS, _OLD_MESSAGES
    set_message = (sa.update(m).where(m.c.id == sa.bindparam('row_id'))
                   .values(crisis_sealed=sa.bindparam('blob')))
    messages = (sa.select(m.c.id, m.c.crisis_flag, t.c.client_id)
                .join(t, t.c.id == m.c.thread_id))
    for rows in _batches(bind, messages, m.c.id):
        bind.execute(set_message, [
            {'row_id': row.id,
             'blob': keys.seal(row.client_id, 'messages', 'crisis', row.id,
                               '1' if row.crisis_flag else '0')} for row in rows])

    set_thread = (sa.update(t).where(t.c.id == sa.bindparam('row_id'))
                  .values(crisis_sealed=sa.bindparam('blob')))
    threads = sa.select(t.c.id, t.c.client_id, t.c.crisis_flagged_at, t.c.crisis_message_id,
                        t.c.crisis_acknowledged_at, t.c.crisis_acknowledged_by_id,
                        t.c.crisis_escalate_at, t.c.crisis_escalations)
    for rows in _batches(bind, threads, t.c.id):
        bind.execute(set_thread, [
            {'row_id': row.id,
             'blob': keys.seal(row.client_id, 'message_threads', 'crisis', row.id,
                               _encode(row))} for row in rows])

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('crisis_sealed', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('crisis_flag')
    with op.batch_alter_table('message_threads', schema=None) as batch_op:
        batch_op.alter_column('crisis_sealed', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_constraint(ACK_FK, type_='foreignkey')
        batch_op.drop_index(ESCALATE_INDEX,
                            postgresql_where=sa.text('crisis_escalate_at IS NOT NULL'),
                            sqlite_where=sa.text('crisis_escalate_at IS NOT NULL'))
        for name in ('crisis_flagged_at', 'crisis_message_id', 'crisis_acknowledged_at',
                     'crisis_acknowledged_by_id', 'crisis_escalate_at', 'crisis_escalations'):
            batch_op.drop_column(name)


def downgrade():
    bind = op.get_bind()
    keys = MigrationKeys(bind)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crisis_flag', sa.Boolean(), nullable=True))
    with op.batch_alter_table('message_threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crisis_flagged_at', _TIME, nullable=True))
        batch_op.add_column(sa.Column('crisis_message_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('crisis_acknowledged_at', _TIME, nullable=True))
        batch_op.add_column(sa.Column('crisis_acknowledged_by_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('crisis_escalate_at', _TIME, nullable=True))
        batch_op.add_column(sa.Column('crisis_escalations', sa.Integer(), nullable=False,
                                      server_default='0'))

    t, m = _OLD_THREADS, _OLD_MESSAGES
    set_message = (sa.update(m).where(m.c.id == sa.bindparam('row_id'))
                   .values(crisis_flag=sa.bindparam('flag')))
    messages = (sa.select(m.c.id, m.c.crisis_sealed, t.c.client_id)
                .join(t, t.c.id == m.c.thread_id))
    for rows in _batches(bind, messages, m.c.id):
        bind.execute(set_message, [
            {'row_id': row.id,
             'flag': keys.open_text(row.client_id, 'messages', 'crisis', row.id,
                                    row.crisis_sealed) == '1'} for row in rows])

    set_thread = (sa.update(t).where(t.c.id == sa.bindparam('row_id')).values(
        **{name: sa.bindparam(f'new_{name}') for name in (
            'crisis_flagged_at', 'crisis_message_id', 'crisis_acknowledged_at',
            'crisis_acknowledged_by_id', 'crisis_escalate_at', 'crisis_escalations')}))
    threads = sa.select(t.c.id, t.c.client_id, t.c.crisis_sealed)
    for rows in _batches(bind, threads, t.c.id):
        bind.execute(set_thread, [
            {'row_id': row.id,
             **{f'new_{name}': value for name, value in _decode(keys.open_text(
                 row.client_id, 'message_threads', 'crisis', row.id,
                 row.crisis_sealed)).items()}} for row in rows])

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('crisis_flag', existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_column('crisis_sealed')
    with op.batch_alter_table('message_threads', schema=None) as batch_op:
        batch_op.drop_column('crisis_sealed')
        batch_op.create_index(ESCALATE_INDEX, ['crisis_escalate_at'], unique=False,
                              postgresql_where=sa.text('crisis_escalate_at IS NOT NULL'),
                              sqlite_where=sa.text('crisis_escalate_at IS NOT NULL'))
        batch_op.create_foreign_key(ACK_FK, 'users', ['crisis_acknowledged_by_id'], ['id'],
                                    ondelete='RESTRICT')
