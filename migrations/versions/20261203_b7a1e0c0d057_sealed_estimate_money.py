"""estimate money sealed: no readable total, billed amounts and bill dates sealed

`good_faith_estimates.total_cents` (readable: a proxy for how much care a client is getting)
is dropped: the sealed document already holds every line, and the total is their sum (the
draft's lines, quantity times unit charge, or the issued document's line totals), which is
what the app reads now. Each row's document is opened first and its sum checked against the
stored total: a mismatch stops the upgrade before anything changes. A document whose key was
shredded can never be read again, and its total goes with it.

`gfe_billed_amounts.amount_cents` becomes `amount_sealed` (cents as decimal text) and
`bill_date` becomes `bill_date_sealed` (ISO text), both under the estimate's client's key
(the app orders bills and works out the dispute window in Python). A bill of a client whose
key was shredded (their document never opens again) is not sealed under a new key, which
would keep the amount readable to the practice: it gets SHREDDED, an empty value that
never opens, and its amount and date are gone.

The CHECK constraints on the old columns (`total_not_negative`, `amount_not_negative`) go with
them; no trigger refers to either table. Downgrade opens everything and restores the columns
and their checks (a shredded document's total comes back as 0, a shredded bill's amount 0
and its date the day it was recorded).

Revision ID: b7a1e0c0d057
Revises: b7a1e0c0d047
Create Date: 2026-12-03 07:20:00
"""
import datetime
import json

import sqlalchemy as sa
from alembic import op

# the one part of portal a revision uses (DecryptionError is what its open() raises)
from portal.crypto.migrating import DecryptionError, MigrationKeys

revision = 'b7a1e0c0d057'
down_revision = 'b7a1e0c0d047'
branch_labels = None
depends_on = None

ESTIMATES = 'good_faith_estimates'
BILLS = 'gfe_billed_amounts'
SHREDDED = b''  # never opens (DecryptionError "malformed")
TOTAL_CHECK = f'ck_{ESTIMATES}_total_not_negative'
AMOUNT_CHECK = f'ck_{BILLS}_amount_not_negative'

_ESTIMATES = sa.table(ESTIMATES, sa.column('id', sa.Uuid()), sa.column('client_id', sa.Uuid()),
                      sa.column('status', sa.String()),
                      sa.column('document_sealed', sa.LargeBinary()),
                      sa.column('total_cents', sa.BigInteger()))
_BILLS = sa.table(BILLS, sa.column('id', sa.Uuid()), sa.column('estimate_id', sa.Uuid()),
                  sa.column('amount_cents', sa.BigInteger()),
                  sa.column('amount_sealed', sa.LargeBinary()),
                  sa.column('bill_date', sa.Date()),
                  sa.column('bill_date_sealed', sa.LargeBinary()),
                  sa.column('recorded_at', sa.DateTime()))


def _shredded(error: DecryptionError) -> bool:
    return error.reason == 'shredded'


def _document_total(keys: MigrationKeys, row) -> int | None:
    """The sum of the document's lines (None when its key was shredded), as the app computes
    it: an issued document's line totals, a draft's quantity times unit charge where both
    are known."""
    if row.document_sealed is None:
        return 0
    try:
        data = json.loads(keys.open_text(row.client_id, ESTIMATES, 'document', row.id,
                                         row.document_sealed))
    except DecryptionError as error:
        if _shredded(error):
            return None
        raise RuntimeError(f"estimate {row.id}: its document will not open ({error.reason}); "
                           "nothing was changed") from None
    if row.status == 'draft':
        return sum(line['quantity'] * line['unit_cents'] for line in data.get('lines') or ()
                   if line.get('quantity') is not None and line.get('unit_cents') is not None)
    return sum(int(item['line_total_cents']) for item in data.get('line_items') or ())


def _bills_with_owner(*columns):
    return (sa.select(_BILLS.c.id, _BILLS.c.estimate_id, _BILLS.c.recorded_at, *columns,
                      _ESTIMATES.c.client_id)
            .join(_ESTIMATES, _ESTIMATES.c.id == _BILLS.c.estimate_id))


def _open_bill(keys: MigrationKeys, row, column: str, blob: bytes) -> str | None:
    """A bill's sealed value, or None when its client's key was shredded."""
    if bytes(blob) == SHREDDED:
        return None
    try:
        return keys.open_text(row.client_id, BILLS, column, row.id, blob)
    except DecryptionError as error:
        if _shredded(error):
            return None
        raise RuntimeError(f"bill {row.id}: its {column} will not open ({error.reason}); "
                           "nothing was changed") from None


def upgrade():
    bind = op.get_bind()
    # Everything is computed before any table changes, so a refusal leaves the database as
    # it was.
    estimates = bind.execute(sa.select(_ESTIMATES.c.id, _ESTIMATES.c.client_id,
                                       _ESTIMATES.c.status, _ESTIMATES.c.document_sealed,
                                       _ESTIMATES.c.total_cents)).all()
    bills = bind.execute(_bills_with_owner(_BILLS.c.amount_cents, _BILLS.c.bill_date)).all()
    keys = MigrationKeys(bind) if estimates or bills else None
    shredded = set()
    for row in estimates:
        total = _document_total(keys, row)
        if total is None:
            shredded.add(row.id)
        elif total != row.total_cents:
            raise RuntimeError(
                f"estimate {row.id}: its stored total ({row.total_cents}) is not the sum of "
                f"its document's lines ({total}); the total is dropped in favour of the "
                "document, so investigate first. Nothing was changed.")
    sealed = []
    for row in bills:
        # MigrationKeys would make a new key for a shredded client: their bills get SHREDDED.
        if row.estimate_id in shredded:
            sealed.append({'b_id': row.id, 'amount_sealed': SHREDDED,
                           'bill_date_sealed': SHREDDED})
            continue
        sealed.append({
            'b_id': row.id,
            'amount_sealed': keys.seal(row.client_id, BILLS, 'amount', row.id,
                                       str(int(row.amount_cents))),
            'bill_date_sealed': keys.seal(row.client_id, BILLS, 'bill_date', row.id,
                                          row.bill_date.isoformat())})

    with op.batch_alter_table(BILLS, schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_sealed', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('bill_date_sealed', sa.LargeBinary(), nullable=True))
    if sealed:
        bind.execute(sa.update(_BILLS).where(_BILLS.c.id == sa.bindparam('b_id'))
                     .values(amount_sealed=sa.bindparam('amount_sealed'),
                             bill_date_sealed=sa.bindparam('bill_date_sealed')), sealed)
    with op.batch_alter_table(BILLS, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(AMOUNT_CHECK), type_='check')
        batch_op.drop_column('amount_cents')
        batch_op.drop_column('bill_date')
        batch_op.alter_column('amount_sealed', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column('bill_date_sealed', existing_type=sa.LargeBinary(),
                              nullable=False)
    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(TOTAL_CHECK), type_='check')
        batch_op.drop_column('total_cents')


def downgrade():
    bind = op.get_bind()
    estimates = bind.execute(sa.select(_ESTIMATES.c.id, _ESTIMATES.c.client_id,
                                       _ESTIMATES.c.status, _ESTIMATES.c.document_sealed)).all()
    bills = bind.execute(_bills_with_owner(_BILLS.c.amount_sealed,
                                           _BILLS.c.bill_date_sealed)).all()
    keys = MigrationKeys(bind) if estimates or bills else None
    totals = []
    for row in estimates:
        total = _document_total(keys, row)
        totals.append({'b_id': row.id, 'total_cents': 0 if total is None else total})
    amounts = []
    for row in bills:
        # A shredded client's amount and date are gone for good.
        amount = _open_bill(keys, row, 'amount', row.amount_sealed)
        day = _open_bill(keys, row, 'bill_date', row.bill_date_sealed)
        amounts.append({'b_id': row.id, 'amount_cents': 0 if amount is None else int(amount),
                        'bill_date': (row.recorded_at.date() if day is None
                                      else datetime.date.fromisoformat(day))})

    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.add_column(sa.Column('total_cents', sa.BigInteger(), nullable=True))
    with op.batch_alter_table(BILLS, schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('bill_date', sa.Date(), nullable=True))
    if totals:
        bind.execute(sa.update(_ESTIMATES).where(_ESTIMATES.c.id == sa.bindparam('b_id'))
                     .values(total_cents=sa.bindparam('total_cents')), totals)
    if amounts:
        bind.execute(sa.update(_BILLS).where(_BILLS.c.id == sa.bindparam('b_id'))
                     .values(amount_cents=sa.bindparam('amount_cents'),
                             bill_date=sa.bindparam('bill_date')), amounts)
    with op.batch_alter_table(ESTIMATES, schema=None) as batch_op:
        batch_op.alter_column('total_cents', existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_check_constraint(batch_op.f(TOTAL_CHECK), 'total_cents >= 0')
    with op.batch_alter_table(BILLS, schema=None) as batch_op:
        batch_op.drop_column('amount_sealed')
        batch_op.drop_column('bill_date_sealed')
        batch_op.alter_column('amount_cents', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('bill_date', existing_type=sa.Date(), nullable=False)
        batch_op.create_check_constraint(batch_op.f(AMOUNT_CHECK), 'amount_cents >= 0')
