"""A training job's settings checked against the workspace at launch, where a mistake costs nothing.

A job reads only its snapshot (docs/methods.md, "Jobs and the workspace
database"), so the pairs it will see are known when it is asked for: a
`margin` job with no margin label would train exactly as `bt`, and a balanced
batch that the sources do not divide would fail only once the job process
has loaded its backbone. `prefstudio train` and the app's launch form both
call check_launch, so both refuse alike and say how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from prefstudio.errors import PrefstudioError
from prefstudio.export import export_query
from prefstudio.train.config import TrainConfig

GET_MARGINS = ("label pairs first: by hand in the app (F2 Label), with an LLM judge (`prefstudio annotate "
               "WORKSPACE --judge`), or from a file's own margins (`prefstudio import WORKSPACE FILE --margin-from "
               "COLUMN`)")


@dataclass(frozen=True)
class SourcePairs:
    """One source's pairs in the training split, as the job's snapshot will hold them."""

    pairs: int
    labelled: int  # pairs whose label that counts gives a margin (level set)
    nonzero: int  # of those, pairs whose margin is not 0 on the workspace's scale


def training_pairs(ws, split: str, con=None) -> dict[str, SourcePairs]:
    """Per source of `split`: its pairs, and how many have a margin, through the snapshot's own query."""
    con = con or ws.cursor()
    margins = tuple(ws.config.margins.margin(level) for level in range(4))
    sql, params = export_query(margins, flips="keep", unlabelled="zero", split=split)
    rows = con.execute(f"SELECT source, count(*), count(level), count(*) FILTER (WHERE margin <> 0) "
                       f"FROM ({sql}) GROUP BY source ORDER BY source", params).fetchall()
    return {source: SourcePairs(n, labelled, nonzero) for source, n, labelled, nonzero in rows}


def cli_spelling(key: str, value) -> str:
    """How `prefstudio train` spells a setting: its flag where it has one, else --set."""
    return f"--batch-size {value}" if key == "batch_size" else f"--set {key}={value}"


def check_launch(ws, config: TrainConfig, *, given: Collection[str] = (), con=None,
                 spell: Callable[[str, object], str] = cli_spelling,
                 counts: dict[str, SourcePairs] | None = None) -> list[str]:
    """Refuse (PrefstudioError, one line) a job the workspace cannot train as asked; else the notes to show.

    `given`: the settings the user set (flags, --set, --config, the form's fields), so that a default
    `unlabelled = "zero"` is told from one chosen on purpose. `spell(key, value)` writes a setting the way
    the caller's user gives it. `counts`: training_pairs() of the split, where the caller has it already.
    """
    split = config.split
    counts = training_pairs(ws, split, con) if counts is None else counts
    if not counts:
        con = con or ws.cursor()
        splits = [r[0] for r in con.execute("SELECT DISTINCT split FROM pairs ORDER BY 1").fetchall()]
        raise PrefstudioError(f"split {split!r} has no pairs to train on (splits: {', '.join(splits) or 'none'}); "
                              f"import pairs, or choose another split with {spell('split', 'NAME')}")
    named = list(config.sources or [])
    missing = [s for s in named if s not in counts]
    if missing:
        raise PrefstudioError(f"sources {', '.join(missing)}: no pairs in split {split!r} "
                              f"(sources there: {', '.join(counts)})")
    chosen = {s: counts[s] for s in (named or counts)}
    notes: list[str] = []
    if config.uses_margins:
        chosen, notes = _margins(config, chosen, given, spell)
    if config.sampling == "balanced":
        _check_balanced(config.batch_size, list(chosen), split, spell)
    if config.lora_rank:
        from prefstudio.train.lora import check_launch as check_lora

        check_lora(config)  # target names the backbone lacks (the machine is checked where the job is made)
    return notes


def _margins(config: TrainConfig, chosen: dict[str, SourcePairs], given: Collection[str],
             spell) -> tuple[dict[str, SourcePairs], list[str]]:
    """The sources left to train on, and notes; refused where the margins cannot do what was asked."""
    what, same_as = (("objective margin", "bt") if config.objective == "margin"
                     else ("more_loss margin", "more with more_loss bt"))
    total = sum(c.pairs for c in chosen.values())
    labelled = sum(c.labelled for c in chosen.values())
    nonzero = sum(c.nonzero for c in chosen.values())
    pairs = f"{total:,} training pairs (split {config.split!r}, {', '.join(chosen)})"
    if config.unlabelled == "drop":
        if not labelled:
            raise PrefstudioError(f"unlabelled drop: none of the {pairs} has a margin label, so nothing is left "
                                  f"to train on; {GET_MARGINS}")
        bare = [s for s, c in chosen.items() if not c.labelled]
        if bare and config.sources:
            raise PrefstudioError(f"unlabelled drop: source {', '.join(bare)} has no pair with a margin label, so "
                                  f"nothing of it is left to train on; {GET_MARGINS}, or leave it out")
        chosen = {s: c for s, c in chosen.items() if c.labelled}
        notes = [f"{what}: {labelled:,} of {total:,} training pairs have a margin label; the others are left out "
                 "(unlabelled drop)"] if labelled < total else []
    elif not labelled:
        if "unlabelled" not in given:
            raise PrefstudioError(f"{what}: none of the {pairs} has a margin label, so every margin would be 0 and "
                                  f"the job would train exactly as {same_as}; {GET_MARGINS}; or train it anyway "
                                  f"with {spell('unlabelled', 'zero')}")
        return chosen, [f"{what}: no training pair has a margin label, so every margin is 0 and this job trains "
                        f"exactly as {same_as} (unlabelled zero, as asked)"]
    else:
        notes = [f"{what}: {labelled:,} of {total:,} training pairs have a margin label; the other "
                 f"{total - labelled:,} train with margin 0 ({spell('unlabelled', 'drop')} leaves them out)"
                 ] if labelled < total else []
    if not nonzero:
        notes.append(f"{what}: every labelled training pair has margin 0 on the workspace's scale (level 0), "
                     f"so this job trains exactly as {same_as}")
    return chosen, notes


def _check_balanced(batch_size: int, sources: list[str], split: str, spell) -> None:
    """Balanced sampling cuts each batch into one equal sub-batch per source: K must divide the batch."""
    k = len(sources)
    if not k or batch_size % k == 0:
        return
    below, above = batch_size // k * k, (batch_size // k + 1) * k
    nearest = f"{spell('batch_size', below)} or {above}" if below else spell("batch_size", above)
    raise PrefstudioError(f"batch size {batch_size}: balanced sampling makes one equal sub-batch per source, and "
                          f"{batch_size} is not divisible by the {k} sources of split {split!r} "
                          f"({', '.join(sources)}); use {nearest}")
