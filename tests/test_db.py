"""The shared SQL blocks: one transaction, one source/split filter."""

import duckdb
import pytest

from prefstudio.db import source_split_where, transaction


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE TABLE pairs (id INTEGER PRIMARY KEY, source VARCHAR, split VARCHAR)")
    con.execute("INSERT INTO pairs VALUES (1, 'a', 'train'), (2, 'a', 'test'), (3, 'b', 'train'), (4, '', 'train')")
    yield con
    con.close()


def test_transaction_commits_at_the_end(con):
    with transaction(con) as inside:
        assert inside is con
        con.execute("INSERT INTO pairs VALUES (5, 'c', 'train')")
    assert con.execute("SELECT count(*) FROM pairs").fetchone()[0] == 5


@pytest.mark.parametrize("raised", [ValueError("bad row"), KeyboardInterrupt()])
def test_transaction_rolls_back_on_anything_raised(con, raised):
    with pytest.raises(type(raised)):
        with transaction(con):
            con.execute("INSERT INTO pairs VALUES (5, 'c', 'train')")
            raise raised
    assert con.execute("SELECT count(*) FROM pairs").fetchone()[0] == 4
    with transaction(con):  # and the connection takes the next one
        con.execute("DELETE FROM pairs WHERE id = 4")
    assert con.execute("SELECT count(*) FROM pairs").fetchone()[0] == 3


def test_transaction_rolls_back_a_failed_statement(con):
    with pytest.raises(duckdb.ConstraintException):
        with transaction(con):
            con.execute("INSERT INTO pairs VALUES (5, 'c', 'train')")
            con.execute("INSERT INTO pairs VALUES (1, 'again', 'train')")
    assert con.execute("SELECT max(id) FROM pairs").fetchone()[0] == 4


def ids(con, source, split, table="p"):
    where, params = source_split_where(source, split, table=table)
    alias = f" {table}" if table else ""
    sql = f"SELECT id FROM pairs{alias} WHERE {' AND '.join(['TRUE', *where])} ORDER BY id"
    return [r[0] for r in con.execute(sql, params).fetchall()]


def test_source_split_filter(con):
    assert ids(con, None, None) == [1, 2, 3, 4]
    assert ids(con, "a", None) == [1, 2]
    assert ids(con, None, "train") == [1, 3, 4]
    assert ids(con, "a", "train") == [1]
    assert ids(con, "", None) == [4]  # an empty name is a name: only None keeps every source
    assert ids(con, "b", "train", table="") == [3]
    assert source_split_where("a", "test", table="pp") == (["pp.source = ?", "pp.split = ?"], ["a", "test"])
