"""Rows some tables never let change: what a bulk statement through the session targets.

Mapper events (`before_update`, `before_delete`) guard one row at a time, but `update()` and
`delete()` statements skip them; a `do_orm_execute` listener asks `bulk_target` which of its
guarded models such a statement touches.
"""

from typing import Any


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
