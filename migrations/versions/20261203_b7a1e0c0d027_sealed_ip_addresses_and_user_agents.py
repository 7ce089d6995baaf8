"""sealed IP addresses, user agents, outbox templates and subjects; keyed sign-in sources

Revision ID: b7a1e0c0d027
Revises: b7a1e0c0d017
Create Date: 2026-12-03 07:00:00

Needs the portal's keys (`flask --app wsgi db upgrade`; see portal/crypto/migrating.py).

1. `user_sessions.ip` / `user_agent` and `policy_acceptances.ip` are sealed under the
   account's data key into `ip_sealed` / `user_agent_sealed`, then dropped.
2. `signin_attempts` is rebuilt: its integer id becomes a UUID (the sealed values' associated
   data names the row), the IP address and user agent are sealed, and `source_digest` is the
   HMAC ("signin-source" subkey of PORTAL_INDEX_KEY) of the account id and the address, which
   the per-source sign-in rules compare.
3. `mail_outbox.template` and `subject` are sealed into `template_sealed` / `subject_sealed`
   padded with NULs to NAME_BLOCK bytes (a thief must not tell a crisis escalation from any
   other mail), and each body is sealed again padded to whole blocks of BODY_BLOCK bytes, as
   `portal.mail` does now.
   A row without an account (user_id NULL) cannot be opened, so it was never deliverable:
   it is deleted.

The downgrade opens everything back into the readable columns (a value that will not open,
its key shredded, becomes NULL; an outbox row's template and subject become '').
"""
import uuid

import sqlalchemy as sa
from alembic import op

# The one part of portal a revision uses (DecryptionError: what will not open).
from portal.crypto.migrating import DecryptionError, MigrationKeys

revision = 'b7a1e0c0d027'
down_revision = 'b7a1e0c0d017'
branch_labels = None
depends_on = None

CHUNK = 500
# portal.mail.models.BODY_BLOCK and NAME_BLOCK when this revision was written.
BODY_BLOCK = 4096
NAME_BLOCK = 128
SOURCE_DIGEST = "signin-source"
BODIES = ("body_text_sealed", "body_html_sealed")


def _table(name, *columns):
    return sa.table(name, sa.column("id", sa.Uuid()), sa.column("user_id", sa.Uuid()), *columns)


SESSIONS_OLD = _table("user_sessions", sa.column("ip", sa.String()),
                      sa.column("user_agent", sa.String()))
SESSIONS_NEW = _table("user_sessions", sa.column("ip_sealed", sa.LargeBinary()),
                      sa.column("user_agent_sealed", sa.LargeBinary()))
ACCEPTANCES_OLD = _table("policy_acceptances", sa.column("ip", sa.String()))
ACCEPTANCES_NEW = _table("policy_acceptances", sa.column("ip_sealed", sa.LargeBinary()))
OUTBOX = _table("mail_outbox", sa.column("template", sa.String()),
                sa.column("subject", sa.String()),
                sa.column("template_sealed", sa.LargeBinary()),
                sa.column("subject_sealed", sa.LargeBinary()),
                *(sa.column(name, sa.LargeBinary()) for name in BODIES))
ATTEMPTS_OLD = sa.table("signin_attempts", sa.column("id", sa.Integer()),
                        sa.column("user_id", sa.Uuid()),
                        sa.column("at", sa.DateTime(timezone=True)),
                        sa.column("ip", sa.String()), sa.column("user_agent", sa.String()),
                        sa.column("outcome", sa.String()))
ATTEMPTS_NEW = sa.table("signin_attempts", sa.column("id", sa.Uuid()),
                        sa.column("user_id", sa.Uuid()),
                        sa.column("at", sa.DateTime(timezone=True)),
                        sa.column("ip_sealed", sa.LargeBinary()),
                        sa.column("user_agent_sealed", sa.LargeBinary()),
                        sa.column("source_digest", sa.LargeBinary()),
                        sa.column("outcome", sa.String()))


def _seal(keys, owner, table, column, row_id, text):
    return None if text is None else keys.seal(owner, table, column, row_id, text)


def _open(keys, owner, table, column, row_id, blob):
    if blob is None:
        return None
    try:
        return keys.open_text(owner, table, column, row_id, blob)
    except (DecryptionError, UnicodeDecodeError):
        return None


def _update_rows(bind, table, updates: list[dict]) -> None:
    """UPDATE table SET <the dict's other keys> WHERE id = <its "row_id">, in chunks."""
    if not updates:
        return
    names = [name for name in updates[0] if name != "row_id"]
    stmt = (sa.update(table).where(table.c.id == sa.bindparam("row_id"))
            .values({name: sa.bindparam(f"new_{name}") for name in names}))
    params = [{"row_id": change["row_id"], **{f"new_{name}": change[name] for name in names}}
              for change in updates]
    for start in range(0, len(params), CHUNK):
        bind.execute(stmt, params[start:start + CHUNK])


def _framed(value: bytes, block: int = BODY_BLOCK) -> bytes:
    """portal.mail.models.framed: NULs up to a whole number of blocks."""
    return value.ljust(max(1, -(-len(value) // block)) * block, b"\0")


# --- upgrade --------------------------------------------------------------------------------

def upgrade():
    bind = op.get_bind()
    keys = MigrationKeys(bind)
    _seal_sessions(bind, keys)
    _seal_acceptances(bind, keys)
    _rebuild_attempts_sealed(bind, keys)
    _seal_outbox(bind, keys)


def _seal_sessions(bind, keys) -> None:
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip_sealed', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('user_agent_sealed', sa.LargeBinary(), nullable=True))
    rows = bind.execute(sa.select(SESSIONS_OLD).where(
        sa.or_(SESSIONS_OLD.c.ip.is_not(None), SESSIONS_OLD.c.user_agent.is_not(None)))).all()
    _update_rows(bind, SESSIONS_NEW, [
        {"row_id": row.id,
         "ip_sealed": _seal(keys, row.user_id, "user_sessions", "ip", row.id, row.ip),
         "user_agent_sealed": _seal(keys, row.user_id, "user_sessions", "user_agent", row.id,
                                    row.user_agent)}
        for row in rows])
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_column('ip')
        batch_op.drop_column('user_agent')


def _seal_acceptances(bind, keys) -> None:
    with op.batch_alter_table('policy_acceptances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip_sealed', sa.LargeBinary(), nullable=True))
    rows = bind.execute(sa.select(ACCEPTANCES_OLD)
                        .where(ACCEPTANCES_OLD.c.ip.is_not(None))).all()
    _update_rows(bind, ACCEPTANCES_NEW, [
        {"row_id": row.id,
         "ip_sealed": keys.seal(row.user_id, "policy_acceptances", "ip", row.id, row.ip)}
        for row in rows])
    with op.batch_alter_table('policy_acceptances', schema=None) as batch_op:
        batch_op.drop_column('ip')


def _create_attempts(sealed: bool) -> None:
    if sealed:
        columns = [sa.Column('id', sa.Uuid(), nullable=False),
                   sa.Column('user_id', sa.Uuid(), nullable=False),
                   sa.Column('at', sa.DateTime(timezone=True), nullable=False),
                   sa.Column('ip_sealed', sa.LargeBinary(), nullable=True),
                   sa.Column('user_agent_sealed', sa.LargeBinary(), nullable=True),
                   sa.Column('source_digest', sa.LargeBinary(length=32), nullable=True)]
    else:
        columns = [sa.Column('id', sa.Integer(), nullable=False),
                   sa.Column('user_id', sa.Uuid(), nullable=False),
                   sa.Column('at', sa.DateTime(timezone=True), nullable=False),
                   sa.Column('ip', sa.String(length=64), nullable=True),
                   sa.Column('user_agent', sa.String(length=255), nullable=True)]
    op.create_table(
        'signin_attempts', *columns,
        sa.Column('outcome', sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_signin_attempts_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signin_attempts')))
    with op.batch_alter_table('signin_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_signin_attempts_user_at', ['user_id', 'at'], unique=False)
        if sealed:
            batch_op.create_index('ix_signin_attempts_at', ['at'], unique=False)


def _drop_attempts(sealed: bool) -> None:
    with op.batch_alter_table('signin_attempts', schema=None) as batch_op:
        if sealed:
            batch_op.drop_index('ix_signin_attempts_at')
        batch_op.drop_index('ix_signin_attempts_user_at')
    op.drop_table('signin_attempts')


def _insert(bind, table, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        bind.execute(sa.insert(table), rows[start:start + CHUNK])


def _rebuild_attempts_sealed(bind, keys) -> None:
    old = bind.execute(sa.select(ATTEMPTS_OLD)
                       .order_by(ATTEMPTS_OLD.c.at, ATTEMPTS_OLD.c.id)).all()
    new = []
    for row in old:
        row_id = uuid.uuid4()
        new.append({
            "id": row_id, "user_id": row.user_id, "at": row.at, "outcome": row.outcome,
            "ip_sealed": _seal(keys, row.user_id, "signin_attempts", "ip", row_id, row.ip),
            "user_agent_sealed": _seal(keys, row.user_id, "signin_attempts", "user_agent",
                                       row_id, row.user_agent),
            "source_digest": None if row.ip is None else keys.digest(
                SOURCE_DIGEST, row.user_id.bytes + row.ip.encode())})
    _drop_attempts(sealed=False)
    _create_attempts(sealed=True)
    _insert(bind, ATTEMPTS_NEW, new)


def _seal_outbox(bind, keys) -> None:
    bind.execute(sa.delete(OUTBOX).where(OUTBOX.c.user_id.is_(None)))
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template_sealed', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('subject_sealed', sa.LargeBinary(), nullable=True))
    updates = []
    for row in bind.execute(sa.select(OUTBOX)).all():
        change = {"row_id": row.id,
                  "template_sealed": keys.seal(row.user_id, "mail_outbox", "template", row.id,
                                               _framed(row.template.encode(), NAME_BLOCK)),
                  "subject_sealed": keys.seal(row.user_id, "mail_outbox", "subject", row.id,
                                              _framed(row.subject.encode(), NAME_BLOCK))}
        for name in BODIES:
            change[name] = _reframe(keys, row, name, _framed)
        updates.append(change)
    _update_rows(bind, OUTBOX, updates)
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.alter_column('template_sealed', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column('subject_sealed', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('template')
        batch_op.drop_column('subject')


def _reframe(keys, row, name: str, change):
    """A body sealed again after `change` (framing, or unframing); as it was if it will not
    open (its key shredded: nobody will read it)."""
    blob = getattr(row, name)
    if blob is None:
        return None
    try:
        body = keys.open(row.user_id, "mail_outbox", name, row.id, blob)
    except DecryptionError:
        return blob
    return keys.seal(row.user_id, "mail_outbox", name, row.id, change(body))


# --- downgrade ------------------------------------------------------------------------------

def downgrade():
    bind = op.get_bind()
    keys = MigrationKeys(bind)
    _open_outbox(bind, keys)
    _rebuild_attempts_open(bind, keys)
    _open_acceptances(bind, keys)
    _open_sessions(bind, keys)


def _open_outbox(bind, keys) -> None:
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('subject', sa.String(length=200), nullable=True))
    updates = []
    for row in bind.execute(sa.select(OUTBOX)).all():
        change = {"row_id": row.id,
                  "template": (_open(keys, row.user_id, "mail_outbox", "template", row.id,
                                     row.template_sealed) or "").rstrip("\0"),
                  "subject": (_open(keys, row.user_id, "mail_outbox", "subject", row.id,
                                    row.subject_sealed) or "").rstrip("\0")}
        for name in BODIES:
            change[name] = _reframe(keys, row, name, lambda body: body.rstrip(b"\0"))
        updates.append(change)
    _update_rows(bind, OUTBOX, updates)
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.alter_column('template', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('subject', existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_column('subject_sealed')
        batch_op.drop_column('template_sealed')


def _rebuild_attempts_open(bind, keys) -> None:
    new = bind.execute(sa.select(ATTEMPTS_NEW).order_by(ATTEMPTS_NEW.c.at)).all()
    # In time order and without ids: the integer ids are made again by the database.
    old = [{"user_id": row.user_id, "at": row.at, "outcome": row.outcome,
            "ip": _open(keys, row.user_id, "signin_attempts", "ip", row.id, row.ip_sealed),
            "user_agent": _open(keys, row.user_id, "signin_attempts", "user_agent", row.id,
                                row.user_agent_sealed)}
           for row in new]
    _drop_attempts(sealed=True)
    _create_attempts(sealed=False)
    for row in old:  # one by one: the ids must follow the time order
        bind.execute(sa.insert(ATTEMPTS_OLD), row)


def _open_acceptances(bind, keys) -> None:
    with op.batch_alter_table('policy_acceptances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip', sa.String(length=64), nullable=True))
    rows = bind.execute(sa.select(ACCEPTANCES_NEW)
                        .where(ACCEPTANCES_NEW.c.ip_sealed.is_not(None))).all()
    _update_rows(bind, ACCEPTANCES_OLD, [
        {"row_id": row.id, "ip": _open(keys, row.user_id, "policy_acceptances", "ip", row.id,
                                       row.ip_sealed)}
        for row in rows])
    with op.batch_alter_table('policy_acceptances', schema=None) as batch_op:
        batch_op.drop_column('ip_sealed')


def _open_sessions(bind, keys) -> None:
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('user_agent', sa.String(length=255), nullable=True))
    rows = bind.execute(sa.select(SESSIONS_NEW).where(
        sa.or_(SESSIONS_NEW.c.ip_sealed.is_not(None),
               SESSIONS_NEW.c.user_agent_sealed.is_not(None)))).all()
    _update_rows(bind, SESSIONS_OLD, [
        {"row_id": row.id,
         "ip": _open(keys, row.user_id, "user_sessions", "ip", row.id, row.ip_sealed),
         "user_agent": _open(keys, row.user_id, "user_sessions", "user_agent", row.id,
                             row.user_agent_sealed)}
        for row in rows])
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_column('ip_sealed')
        batch_op.drop_column('user_agent_sealed')
