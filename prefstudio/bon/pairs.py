"""Two candidates of a prompt as a preference pair, for a person (or the judge) to label.

The pair goes through the ordinary import path (validation, content-hash
de-duplication, an import batch), in source "bon:<run>" and split "bon", so it
appears in the label queue like any imported pair and making it twice adds
nothing. The reward model's preference is the pair's 'chosen' side: a label
that flips it is a place where the reward model was wrong.
"""

from __future__ import annotations

import hashlib

from prefstudio.bon import runs
from prefstudio.errors import PrefstudioError

SPLIT = "bon"


def make_pair(ws, run_id: str, prompt_id: int, idx_a: int, idx_b: int, scorer: runs.Scorer | None = None,
              *, con=None) -> tuple[int, bool]:
    """(pair id, True if it is new) for candidates idx_a and idx_b; chosen = the one `scorer` rewards more
    (idx_a when there is no scorer or it scored neither)."""
    from prefstudio.ingest import RawPair, RecordsReader, import_pairs

    con = con or ws.con
    found = {c.idx: c for c in runs.candidates(con, prompt_id, [scorer] if scorer else [])}
    row = con.execute("SELECT prompt FROM bon_prompts WHERE id = ? AND run_id = ?", [prompt_id, run_id]).fetchone()
    if row is None or idx_a not in found or idx_b not in found:
        raise PrefstudioError(f"run {run_id!r}: no candidates {idx_a} and {idx_b} for prompt {prompt_id}")
    if idx_a == idx_b:
        raise PrefstudioError("a pair needs two different candidates")
    a, b = found[idx_a], found[idx_b]
    if scorer is not None and scorer in a.rewards and scorer in b.rewards and b.rewards[scorer] > a.rewards[scorer]:
        a, b = b, a
    meta = {"bon_run": run_id, "bon_prompt_id": prompt_id, "chosen_idx": a.idx, "rejected_idx": b.idx}
    if scorer is not None:
        meta |= {"scorer": scorer.label, "r_chosen": a.rewards.get(scorer), "r_rejected": b.rewards.get(scorer)}
    prompt = row[0]
    record = RawPair(prompt, a.response, b.response, f"prompt {prompt_id}", meta=meta)
    report = import_pairs(ws, RecordsReader(f"best-of-N run {run_id}", "bon", f"bon:{run_id}"[:64], [record]),
                          split=SPLIT, con=con, options={"bon_run": run_id, "prompt_id": prompt_id})
    if report.n_skipped:
        raise PrefstudioError(f"candidates {idx_a} and {idx_b} cannot make a pair: {report.skip_examples[0].reason}")
    digest = hashlib.sha256("\x1f".join((prompt, a.response, b.response)).encode()).hexdigest()
    pair_id = con.execute("SELECT id FROM pairs WHERE content_hash = ?", [digest]).fetchone()[0]
    return pair_id, bool(report.n_imported)
