"""Rows some tables never let change: what a bulk statement through the session targets.

Mapper events (`before_update`, `before_delete`) guard one row at a time, but `update()` and
`delete()` statements skip them; a `do_orm_execute` listener asks `bulk_target` which of its
guarded models such a statement touches.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session


def bulk_target(orm_execute_state: Any, models: tuple[type, ...]) -> type | None:
    """The guarded model a session's UPDATE or DELETE statement targets, or None."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return None
    mapper = orm_execute_state.bind_mapper
    table = getattr(orm_execute_state.statement, "table", None)
    for model in models:
        if (mapper is not None and mapper.class_ is model) or table is model.__table__:
            return model
    return None


@dataclass(frozen=True)
class HistoryWords:
    """What a history table says to code that tries to rewrite it (one line each)."""

    changed: str  # a column outside `may_change` moved
    deleted: str  # a row deleted
    bulk: str  # a bulk statement that is refused
    undone: str = ""  # `set_once` went back to empty, or to another value


def keep_as_history(model: type, error: type[Exception], words: HistoryWords, *,
                    may_change: frozenset[str] = frozenset(), set_once: str | None = None,
                    bulk_updates: bool = False) -> None:
    """Make `model` a history: rows are never deleted (one at a time or in bulk), only the
    columns in `may_change` ever move, and `set_once` (a release, a void) is never undone.

    `bulk_updates=True` lets UPDATE statements through (key rotation re-seals sealed columns
    that way, to the same text); they still cannot delete.
    """

    @event.listens_for(model, "before_update")
    def _refuse_rewriting(mapper, connection, target) -> None:
        state = inspect(target)
        changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
        if changed - may_change:
            raise error(words.changed)
        if set_once is not None:
            history = state.attrs[set_once].history
            if history.deleted and history.deleted[0] is not None:
                raise error(words.undone)

    @event.listens_for(model, "before_delete")
    def _refuse_delete(mapper, connection, target) -> None:
        raise error(words.deleted)

    @event.listens_for(Session, "do_orm_execute")
    def _refuse_bulk(orm_execute_state) -> None:
        if bulk_target(orm_execute_state, (model,)) is None:
            return
        if orm_execute_state.is_delete or not bulk_updates:
            raise error(words.bulk)
