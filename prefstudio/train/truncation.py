"""What a job's max_length cost its pairs, counted when they are encoded (train/data.py).

Kept apart from the tokenising code so the Jobs screen and `jobs` read it without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from prefstudio.jobs.layout import TRUNCATION


@dataclass(frozen=True)
class TruncationReport:
    """What `max_length` cost a set of pairs: shown in a job's log and on the Jobs screen."""

    pairs: int
    prompt_cut: int  # pairs that lost prompt tokens
    response_cut: int  # pairs that lost response tokens
    # pairs whose two sides became the same token sequence: no signal left. Their shared start (the prompt and
    # whatever the two responses begin with alike) filled max_length, so what tells them apart was cut.
    identical: int

    @classmethod
    def of(cls, pairs) -> "TruncationReport":
        """From EncodedPairs (train/data.py), which record what each pair lost."""
        return cls(len(pairs), sum(p.prompt_lost > 0 for p in pairs), sum(p.response_lost > 0 for p in pairs),
                   sum(p.chosen == p.rejected for p in pairs))

    def line(self, max_length: int) -> str:
        if not (self.prompt_cut or self.response_cut or self.identical):
            return f"max_length {max_length}: all {self.pairs} pairs fit whole"
        text = (f"max_length {max_length}: {self.prompt_cut} of {self.pairs} pairs lost prompt tokens (cut from the "
                f"left), {self.response_cut} lost response tokens (cut from the right)")
        if self.identical:
            text += f"; {self.identical} became identical on both sides and carry no signal"
        return text

    def write(self, job_dir: Path, max_length: int) -> None:
        (job_dir / TRUNCATION).write_text(json.dumps({**asdict(self), "max_length": max_length}))


def read_report(job_dir: Path) -> tuple[TruncationReport, int] | None:
    """(the job's report, its max_length), or None before its pairs are encoded (or for a job kind that has none)."""
    try:
        values = json.loads((job_dir / TRUNCATION).read_text())
        max_length = values.pop("max_length")
        return TruncationReport(**values), max_length
    except (OSError, ValueError, TypeError, KeyError):
        return None


def read_line(job_dir: Path) -> str:
    """The job's truncation line, or "" before its pairs are encoded (or for a job kind that has none)."""
    found = read_report(job_dir)
    return found[0].line(found[1]) if found else ""
