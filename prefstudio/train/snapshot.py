"""The input of a job, frozen at launch: the workspace's pairs with the margins their labels give.

A job never opens the workspace database (docs/methods.md, "Jobs and the
workspace database"), and a job must be reproducible after the labels change,
so it trains on this Parquet file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from prefstudio.export import export_query


def write_snapshot(ws, path: Path, con=None) -> int:
    """All pairs (every split: evaluation reads the same file), signed margins and the prompt's turns (JSON text,
    null where the prompt text says them: train/chat.py); returns the row count.

    A pair's margin is the label that counts (human, else judge, else the
    data's own) through the scale, or a data label's continuous value with
    `[margins] data = "value"` (docs/methods.md, "Margin labels").
    """
    con = con or ws.cursor()
    margins = tuple(ws.config.margins.margin(level) for level in range(4))
    sql, params = export_query(margins, flips="keep", unlabelled="zero", split=None, data=ws.config.margins.data)
    sql = (f"SELECT e.*, p.prompt_turns::VARCHAR AS prompt_turns FROM ({sql}) e JOIN pairs p ON p.id = e.pair_id "
           "ORDER BY e.pair_id")
    table = con.sql(sql, params=params).to_arrow_table()
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return table.num_rows
