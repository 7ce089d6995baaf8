"""emergency grants by keyed index, keyed estimate PDF digests

Emergency grants: `client_id` (whose record was opened, readable) becomes `client_index`, the
HMAC-SHA256 of the client's id under the "emergency-index" subkey of PORTAL_INDEX_KEY, and
`client_sealed`, the id sealed under the administrator's data key; the written reason, sealed
under the client's key until now, is opened and sealed again under the administrator's
(the row has no client id to name its owner any more: see the model's docstring). A reason
whose key was shredded never opens again, and is carried over as it is.

Estimates: `pdf_sha256` (a plain SHA-256 of a deterministic PDF, which lets anyone holding the
database test guesses at the sealed content) becomes `pdf_digest`, the HMAC-SHA256 of the row
id and the PDF under the "estimate-pdf" subkey. Each frozen PDF is opened and checked against
its old SHA-256 first: a PDF that does not match stops the upgrade before anything changes
(re-keying it would make a tampered PDF look genuine). A PDF whose key was shredded can never
be checked again: its digest becomes UNREADABLE, which no download accepts.

The emergency events of the audit trail were rewritten by b7a1e0c0d017. Downgrade opens and
restores everything (the reason under the client's key again).

Revision ID: b7a1e0c0d047
Revises: b7a1e0c0d037
Create Date: 2026-12-03 07:00:00
"""
import hashlib
import uuid

import sqlalchemy as sa
from alembic import op

# the one part of portal a revision uses (DecryptionError is what its open() raises)
from portal.crypto.migrating import DecryptionError, MigrationKeys

revision = 'b7a1e0c0d047'
down_revision = 'b7a1e0c0d037'
branch_labels = None
depends_on = None

GRANTS = 'emergency_access_grants'
ESTIMATES = 'good_faith_estimates'
INDEX = 'emergency-index'
PDF_DIGEST = 'estimate-pdf'
# What a digest or an old SHA-256 becomes when the PDF's key was shredded: never a hex digest.
UNREADABLE = 'unreadable: data key shredded'
CHECK_NAME = f'ck_{ESTIMATES}_issued_is_complete'
CHECK_SQL = ("status = 'draft' OR (number IS NOT NULL AND {} IS NOT NULL "
             "AND pdf_sealed IS NOT NULL AND issue_date IS NOT NULL)")
CLIENT_FK = 'fk_emergency_access_grants_client_id_users'
ADMIN_CLIENT_INDEX = 'ix_emergency_access_grants_admin_client'
CLIENT_INDEX = 'ix_emergency_access_grants_client'

_GRANTS = sa.table(GRANTS, sa.column('id', sa.Uuid()), sa.column('admin_id', sa.Uuid()),
                   sa.column('client_id', sa.Uuid()), sa.column('client_index', sa.LargeBinary()),
                   sa.column('client_sealed', sa.LargeBinary()),
                   sa.column('reason_sealed', sa.LargeBinary()))
_ESTIMATES = sa.table(ESTIMATES, sa.column('id', sa.Uuid()), sa.column('client_id', sa.Uuid()),
                      sa.column('pdf_sealed', sa.LargeBinary()),
                      sa.column('pdf_sha256', sa.String()), sa.column('pdf_digest', sa.String()))


def _reseal(keys: MigrationKeys, blob: bytes, *, opener: uuid.UUID, sealer: uuid.UUID,
            row_id: uuid.UUID) -> bytes:
    """A grant's reason, opened under one owner's key and sealed under the other's; a reason
    whose key was shredded stays as it is (it could never open again anyway)."""
    try:
        reason = keys.open(opener, GRANTS, 'reason', row_id, blob)
    except DecryptionError as error:
        if error.reason == 'shredded':
            return bytes(blob)
        raise RuntimeError(f"emergency grant {row_id}: its reason will not open "
                           f"({error.reason}); nothing was changed") from None
    return keys.seal(sealer, GRANTS, 'reason', row_id, reason)


def _open_pdf(keys: MigrationKeys, row) -> bytes | None:
    """An issued estimate's frozen PDF, or None when its key was shredded."""
    try:
        return keys.open(row.client_id, ESTIMATES, 'pdf', row.id, row.pdf_sealed)
    except DecryptionError as error:
        if error.reason == 'shredded':
            return None
        raise RuntimeError(f"estimate {row.id}: its frozen PDF will not open ({error.reason}); "
                           "nothing was changed") from None


def upgrade():
    bind = op.get_bind()
    keys = None
    # Everything is computed before any table changes, so a refusal leaves the database as
    # it was.
    grants = bind.execute(sa.select(_GRANTS.c.id, _GRANTS.c.admin_id, _GRANTS.c.client_id,
                                    _GRANTS.c.reason_sealed)).all()
    estimates = bind.execute(sa.select(_ESTIMATES.c.id, _ESTIMATES.c.client_id,
                                       _ESTIMATES.c.pdf_sealed, _ESTIMATES.c.pdf_sha256)
                             .where(_ESTIMATES.c.pdf_sealed.is_not(None))).all()
    if grants or estimates:
        keys = MigrationKeys(bind)
    new_grants = []
    for row in grants:
        new_grants.append({
            'b_id': row.id,
            'client_index': keys.digest(INDEX, row.client_id.bytes),
            'client_sealed': keys.seal(row.admin_id, GRANTS, 'client', row.id,
                                       str(row.client_id)),
            'reason_sealed': _reseal(keys, row.reason_sealed, opener=row.client_id,
                                     sealer=row.admin_id, row_id=row.id)})
    digests = []
    for row in estimates:
        pdf = _open_pdf(keys, row)
        if pdf is None:
            digests.append({'b_id': row.id, 'pdf_digest': UNREADABLE})
            continue
        if row.pdf_sha256 is None or hashlib.sha256(pdf).hexdigest() != row.pdf_sha256:
            raise RuntimeError(
                f"estimate {row.id}: its frozen PDF does not match the SHA-256 stored when it "
                "was issued, so it may have been altered; investigate (the estimates' "
                "download refuses it too) before upgrading. Nothing was changed.")
        digests.append({'b_id': row.id,
                        'pdf_digest': keys.digest(PDF_DIGEST, row.id.bytes + pdf).hex()})

    with op.batch_alter_table(GRANTS, schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_index', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('client_sealed', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.add_column(sa.Column('pdf_digest', sa.String(length=64), nullable=True))

    if new_grants:
        bind.execute(sa.update(_GRANTS).where(_GRANTS.c.id == sa.bindparam('b_id')).values(
            client_index=sa.bindparam('client_index'),
            client_sealed=sa.bindparam('client_sealed'),
            reason_sealed=sa.bindparam('reason_sealed')), new_grants)
    if digests:
        bind.execute(sa.update(_ESTIMATES).where(_ESTIMATES.c.id == sa.bindparam('b_id'))
                     .values(pdf_digest=sa.bindparam('pdf_digest')), digests)

    with op.batch_alter_table(GRANTS, schema=None) as batch_op:
        batch_op.drop_index(ADMIN_CLIENT_INDEX)
        batch_op.drop_index(CLIENT_INDEX)
        batch_op.drop_constraint(batch_op.f(CLIENT_FK), type_='foreignkey')
        batch_op.drop_column('client_id')
        batch_op.alter_column('client_index', existing_type=sa.LargeBinary(length=32),
                              nullable=False)
        batch_op.alter_column('client_sealed', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.create_index(ADMIN_CLIENT_INDEX, ['admin_id', 'client_index', 'expires_at'],
                              unique=False)
        batch_op.create_index(CLIENT_INDEX, ['client_index'], unique=False)
    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(CHECK_NAME), type_='check')
        batch_op.drop_column('pdf_sha256')
        batch_op.create_check_constraint(batch_op.f(CHECK_NAME), CHECK_SQL.format('pdf_digest'))


def downgrade():
    bind = op.get_bind()
    keys = None
    grants = bind.execute(sa.select(_GRANTS.c.id, _GRANTS.c.admin_id, _GRANTS.c.client_index,
                                    _GRANTS.c.client_sealed, _GRANTS.c.reason_sealed)).all()
    estimates = bind.execute(sa.select(_ESTIMATES.c.id, _ESTIMATES.c.client_id,
                                       _ESTIMATES.c.pdf_sealed, _ESTIMATES.c.pdf_digest)
                             .where(_ESTIMATES.c.pdf_sealed.is_not(None))).all()
    if grants or estimates:
        keys = MigrationKeys(bind)
    old_grants = []
    for row in grants:
        try:
            client_id = uuid.UUID(keys.open_text(row.admin_id, GRANTS, 'client', row.id,
                                                 row.client_sealed))
        except DecryptionError as error:
            raise RuntimeError(f"emergency grant {row.id}: whose grant it is will not open "
                               f"({error.reason}); nothing was changed") from None
        if keys.digest(INDEX, client_id.bytes) != bytes(row.client_index):
            raise RuntimeError(f"emergency grant {row.id}: its sealed client does not match "
                               "its index; nothing was changed")
        old_grants.append({'b_id': row.id, 'client_id': client_id,
                           'reason_sealed': _reseal(keys, row.reason_sealed,
                                                    opener=row.admin_id, sealer=client_id,
                                                    row_id=row.id)})
    hashes = []
    for row in estimates:
        pdf = _open_pdf(keys, row)
        if pdf is None:
            hashes.append({'b_id': row.id, 'pdf_sha256': UNREADABLE})
            continue
        if row.pdf_digest != keys.digest(PDF_DIGEST, row.id.bytes + pdf).hex():
            raise RuntimeError(f"estimate {row.id}: its frozen PDF does not match its keyed "
                               "digest; investigate before downgrading. Nothing was changed.")
        hashes.append({'b_id': row.id, 'pdf_sha256': hashlib.sha256(pdf).hexdigest()})

    with op.batch_alter_table(GRANTS, schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_id', sa.Uuid(), nullable=True))
    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.add_column(sa.Column('pdf_sha256', sa.String(length=64), nullable=True))
    if old_grants:
        bind.execute(sa.update(_GRANTS).where(_GRANTS.c.id == sa.bindparam('b_id')).values(
            client_id=sa.bindparam('client_id'),
            reason_sealed=sa.bindparam('reason_sealed')), old_grants)
    if hashes:
        bind.execute(sa.update(_ESTIMATES).where(_ESTIMATES.c.id == sa.bindparam('b_id'))
                     .values(pdf_sha256=sa.bindparam('pdf_sha256')), hashes)

    with op.batch_alter_table(GRANTS, schema=None) as batch_op:
        batch_op.drop_index(CLIENT_INDEX)
        batch_op.drop_index(ADMIN_CLIENT_INDEX)
        batch_op.drop_column('client_sealed')
        batch_op.drop_column('client_index')
        batch_op.alter_column('client_id', existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(batch_op.f(CLIENT_FK), 'users', ['client_id'], ['id'],
                                    ondelete='RESTRICT')
        batch_op.create_index(ADMIN_CLIENT_INDEX, ['admin_id', 'client_id', 'expires_at'],
                              unique=False)
        batch_op.create_index(CLIENT_INDEX, ['client_id'], unique=False)
    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(CHECK_NAME), type_='check')
        batch_op.drop_column('pdf_digest')
        batch_op.create_check_constraint(batch_op.f(CHECK_NAME), CHECK_SQL.format('pdf_sha256'))
