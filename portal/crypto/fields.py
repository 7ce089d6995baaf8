"""Sealed columns, declared once on the model.

    email_sealed: Mapped[bytes] = sealed_column(owner="id")
    body_sealed: Mapped[bytes] = sealed_column(owner=lambda: select(Thread.client_id)...)

The declaration is all there is: sealing and opening build the value's `Context` from it
(`context_for(User.email_sealed, user.id)`), and the registry that rotation, status and
shredding walk is derived from it when the mappers are configured (Superset derives its
encrypted columns from the schema the same way).

The associated data follows one rule: the table's name and the column's name without its
`_sealed` suffix (`users.email`). `context_name` exists for the one table sealed before the
rule (mail_outbox, whose queued mail would not open under a new name).

`owner` names whose data key seals the value: a column of the same row, or a function that
returns a SQL expression for it (called once the models exist). `load_rows=True` makes
rotation load ORM objects instead of updating in SQL, so model events (the freeze guard of
an issued estimate) see every re-seal.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, event
from sqlalchemy.orm import Mapper, deferred, mapped_column

from portal.crypto.registry import register_sealed
from portal.crypto.sealing import Context

SEALED = "portal_sealed"
SUFFIX = "_sealed"


@dataclass(frozen=True)
class SealedSpec:
    owner: str | Callable[[], Any]
    load_rows: bool = False
    context_name: str | None = None


def sealed_column(*, owner: str | Callable[[], Any], lazy: bool = False,
                  load_rows: bool = False, context_name: str | None = None) -> Any:
    """Declare a sealed column (LargeBinary); `lazy` defers loading it (large files)."""
    column = mapped_column(LargeBinary, info={SEALED: SealedSpec(owner, load_rows,
                                                                   context_name)})
    return deferred(column) if lazy else column


def context_name(column_name: str, spec: SealedSpec) -> str:
    """The column part of the associated data: the name without `_sealed`."""
    if spec.context_name:
        return spec.context_name
    if not column_name.endswith(SUFFIX):
        raise ValueError(f"a sealed column's name ends in {SUFFIX!r}: {column_name!r}")
    return column_name[:-len(SUFFIX)]


_names: dict[Any, tuple[str, str]] = {}


def context_for(attribute: Any, row_id: uuid.UUID) -> Context:
    """The Context of the value a sealed column (`Model.attr`) holds for one row."""
    names = _names.get(attribute)
    if names is None:
        column = attribute.property.columns[0]
        names = (column.table.name, context_name(column.name, column.info[SEALED]))
        _names[attribute] = names
    return Context(names[0], names[1], row_id)


@event.listens_for(Mapper, "mapper_configured")
def _register_declared(mapper: Mapper, cls: type) -> None:
    """Register every column the model declares sealed (run once per mapped class)."""
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        spec = column.info.get(SEALED)
        if spec is None:
            continue
        owner: Any = spec.owner
        if callable(owner):
            owner = owner()
        if spec.load_rows:
            owner = _row_attribute(owner)
        register_sealed(cls, attr.key, owner=owner, table=column.table.name,
                        column=context_name(column.name, spec))


def _row_attribute(name: str) -> Callable[[Any], uuid.UUID]:
    def owner_of(row: Any) -> uuid.UUID:
        return getattr(row, name)
    return owner_of
