"""The input of a job, frozen at launch: the workspace's pairs with the margins their labels give.

A job never opens the workspace database (SPEC §6), and a job must be
reproducible after the labels change, so it trains on this Parquet file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from prefstudio.export import export_query


def write_snapshot(ws, path: Path, con=None) -> int:
    """All pairs (every split: evaluation reads the same file), signed margins; returns the row count."""
    con = con or ws.cursor()
    margins = tuple(ws.config.margins.margin(level) for level in range(4))
    sql, params = export_query(margins, flips="keep", unlabelled="zero", split=None)
    table = con.sql(sql, params=params).to_arrow_table()
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return table.num_rows
