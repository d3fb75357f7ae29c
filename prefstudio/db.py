"""The two SQL building blocks the core shares: a transaction, and the source/split filter on pairs.

Written once so that every write that must land whole rolls back the same way
(on any exception, Ctrl-C included), and every screen and command that narrows
pairs to a source or a split means the same thing by it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, TypeVar

Connection = TypeVar("Connection")


@contextmanager
def transaction(con: Connection) -> Iterator[Connection]:
    """Run the block as one transaction on `con`: committed at its end, rolled back if anything is raised.

    COMMIT is inside the guard too: a commit that fails (a write conflict) is rolled back and raised.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def source_split_where(source: str | None, split: str | None, *, table: str = "p") -> tuple[list[str], list]:
    """Conditions (to AND together) and their parameters that keep the pairs of `source` and `split`.

    None keeps every source (split); `table` is the alias the pairs table has in the query ("" for none).
    """
    prefix = f"{table}." if table else ""
    conditions: list[str] = []
    params: list = []
    if source is not None:
        conditions.append(f"{prefix}source = ?")
        params.append(source)
    if split is not None:
        conditions.append(f"{prefix}split = ?")
        params.append(split)
    return conditions, params
