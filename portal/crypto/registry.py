"""The registry of sealed fields, so rotation and status can find every one across the app.

Features do not call it: they declare columns with `portal.crypto.fields.sealed_column`,
which registers them when the mappers are configured. `register_sealed` stays public for
stand-in models in tests and benchmarks.

The owner is a column name, a SQL expression (both let rotation filter and page in SQL) or
a Python callable taking the row (rotation then loads ORM objects).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement
from sqlalchemy.orm import QueryableAttribute

from portal.crypto.sealing import Context

Owner = str | ColumnElement[Any] | QueryableAttribute[Any] | Callable[[Any], uuid.UUID]


@dataclass(frozen=True)
class SealedField:
    """One sealed column: where it lives, how its Context is named, who owns each row."""

    model: type
    attr: str
    table: str
    column: str
    owner: Owner
    row_id_attr: str = "id"

    @property
    def blob_column(self) -> Column[Any]:
        return self.model.__mapper__.attrs[self.attr].columns[0]  # type: ignore[attr-defined]

    @property
    def pk_column(self) -> Column[Any]:
        return self.model.__mapper__.attrs[self.row_id_attr].columns[0]  # type: ignore[attr-defined]

    def owner_expression(self) -> ColumnElement[Any] | None:
        """The owner as SQL, or None when only a Python callable knows it."""
        if isinstance(self.owner, str):
            return getattr(self.model, self.owner)
        if isinstance(self.owner, ColumnElement | QueryableAttribute):
            return self.owner  # type: ignore[return-value]
        return None

    def owner_of(self, row: Any) -> uuid.UUID:
        """The owner of an ORM row (any owner form)."""
        if isinstance(self.owner, str):
            return getattr(row, self.owner)
        if callable(self.owner) and not isinstance(self.owner, ColumnElement
                                                   | QueryableAttribute):
            return self.owner(row)
        raise TypeError("owner is a SQL expression; select it instead")

    def context(self, row_id: uuid.UUID) -> Context:
        return Context(self.table, self.column, row_id)

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}"


_fields: dict[tuple[type, str], SealedField] = {}


def register_sealed(model: type, column_attr_name: str, *, owner: Owner,
                    table: str | None = None, column: str | None = None,
                    row_id: str = "id") -> SealedField:
    """Register a sealed column; `table`/`column` must match the Context used to seal it.

    They default to the model's table name and the column's name. Registering the same
    (model, attribute) again replaces the entry, so re-imports are harmless.
    """
    mapper = getattr(model, "__mapper__", None)
    if mapper is None or column_attr_name not in mapper.attrs:
        raise ValueError(f"{model!r} has no mapped attribute {column_attr_name!r}")
    if row_id not in mapper.attrs:
        raise ValueError(f"{model!r} has no row id attribute {row_id!r}")
    if isinstance(owner, str) and owner not in mapper.attrs:
        raise ValueError(f"{model!r} has no owner attribute {owner!r}")
    if not isinstance(owner, str | ColumnElement | QueryableAttribute) and not callable(owner):
        raise TypeError("owner must be a column name, a SQL expression or a callable")
    entry = SealedField(
        model=model,
        attr=column_attr_name,
        table=table or model.__tablename__,  # type: ignore[attr-defined]
        column=column or mapper.attrs[column_attr_name].columns[0].name,
        owner=owner,
        row_id_attr=row_id,
    )
    entry.context(uuid.UUID(int=0))  # validates the names now, not in the middle of a rotation
    _fields[(model, column_attr_name)] = entry
    return entry


def unregister_sealed(model: type, column_attr_name: str) -> None:
    """Remove a registration (tests and benchmarks register temporary models)."""
    _fields.pop((model, column_attr_name), None)


def sealed_fields() -> list[SealedField]:
    """Every registered sealed field, in registration order."""
    return list(_fields.values())
