"""SQL functions the ORM does not spell the same way on every supported database.

`comma_joined(column)`: the non-NULL values of a group joined by commas (NULL for none):
`string_agg(x, ',')` on Postgres, `group_concat(x, ',')` on SQLite. SQLAlchemy's own
`func.aggregate_strings` sends the separator as a parameter rendered at execution time, which
keeps a statement from being compiled once (`statements.py`); here it is part of the SQL text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class comma_joined(FunctionElement[str]):
    """`comma_joined(column)`: the group's values joined by commas."""

    type = String()
    name = "comma_joined"
    inherit_cache = True


@compiles(comma_joined)
def _string_agg(element: comma_joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ',')"


@compiles(comma_joined, "sqlite")
def _group_concat(element: comma_joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"
