"""Reading a training job's metrics file while the job appends to it: only the bytes added since the last look.

A long run's file is never read twice. A resumed job first drops the lines of the steps
after its checkpoint (keep_steps_up_to), which it trains again, so the file holds each step
once; a file written before that rule may hold a step twice, and the newest line of a step
wins. A line a crash cut short is skipped.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from prefstudio.jobs.layout import METRICS


@dataclass
class MetricsLog:
    """What one job's metrics file said so far (step -> record), and where to go on reading it."""

    offset: int = 0
    by_step: dict[int, dict] = field(default_factory=dict)
    inode: int = 0  # the file read: a resume replaces it (keep_steps_up_to)

    def last(self, n: int) -> list[dict]:
        """The records of the last `n` steps read, in step order."""
        return [self.by_step[step] for step in sorted(self.by_step)[-n:]] if n > 0 else []

    def read_more(self, job_dir: Path) -> bool:
        """Read the complete lines added since the last call; True if there were any."""
        try:
            with open(job_dir / METRICS, "rb") as file:
                inode = os.fstat(file.fileno()).st_ino
                if inode != self.inode or file.seek(0, 2) < self.offset:  # a new file: start over
                    self.offset, self.by_step, self.inode = 0, {}, inode
                file.seek(self.offset)
                data = file.read()
        except OSError:
            return False
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
                self.by_step[int(record["step"])] = record
            except (ValueError, KeyError, TypeError):
                continue  # a line a crash cut short
        return bool(complete)


def keep_steps_up_to(job_dir: Path, step: int) -> int:
    """Drop the lines of the steps after `step`, the checkpoint a resumed job goes on from; returns how many.

    Those steps are trained, and logged, again. The file is replaced whole (written beside it, then renamed), so
    a kill meanwhile leaves the old file or the new one. What is kept is each step's newest line, in step order.
    """
    path = job_dir / METRICS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    lines = data.splitlines()
    by_step: dict[int, bytes] = {}
    for line in lines:
        try:
            at = int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a line a crash cut short
        if at <= step:
            by_step[at] = line
    kept = [by_step[at] for at in sorted(by_step)]
    if kept == lines and data.endswith(b"\n"):  # else the next line would be glued onto the last
        return 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.write(b"".join(line + b"\n" for line in kept))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    return len(lines) - len(kept)


# -- MORE's diagnostics: how much the sources conflict, and a source λ leaves out ---------------------------
# A MORE step's line holds, beside "lambda" ({source: λ}), "cosine": the upper triangle, row by row, of the K×K
# cosine matrix of the per-source head gradients λ was solved on, over the sources in "lambda"'s order
# ((0,1), (0,2), …, (1,2), …), rounded to 3 digits; null where a source's gradient was zero. A reader that
# knows nothing of it skips the field.
COSINE = "cosine"
IGNORED_SHARE = 0.1  # a source is "ignored" while its λ is under this share of its even weight 1/K ...
IGNORED_STEPS = 50  # ... for this many steps in a row
CONFLICT_STEPS = 50  # the Jobs screen's cosine table: the mean over the last this many steps


def ignored_below(k: int) -> float:
    """The λ under which a source of K counts as ignored: a tenth of its even share."""
    return IGNORED_SHARE / k


def ignored_warning(source: str, k: int, steps: int = IGNORED_STEPS) -> str:
    return f"source {source} is being ignored (λ < {ignored_below(k):.3g} for the last {steps} steps)"


class IgnoredSources:
    """Counts each source's steps in a row with λ near 0; says a source once, on the step its run reaches
    IGNORED_STEPS, and again only after its λ has come back up and gone down for as long again."""

    def __init__(self, steps: int = IGNORED_STEPS) -> None:
        self.steps = steps
        self.run: dict[str, int] = {}

    def update(self, lam: dict[str, float] | None) -> list[str]:
        """One step's λ (None: not a MORE step); the warnings this step brings."""
        if not lam:
            return []
        below = ignored_below(len(lam))
        news = []
        for source, value in lam.items():
            self.run[source] = self.run.get(source, 0) + 1 if value < below else 0
            if self.run[source] == self.steps:
                news.append(ignored_warning(source, len(lam), self.steps))
        return news


def ignored_now(records: list[dict], steps: int = IGNORED_STEPS) -> list[str]:
    """The warnings for the sources whose λ was near 0 in each of the last `steps` records (consecutive steps,
    in step order): what the Jobs screen says of a job's latest steps."""
    last = records[-steps:]
    if len(last) < steps or not all(isinstance(r.get("lambda"), dict) and r["lambda"] for r in last):
        return []
    if last[-1]["step"] - last[0]["step"] != steps - 1:  # a gap (a line a crash cut): not "in a row"
        return []
    sources = list(last[-1]["lambda"])
    below = ignored_below(len(sources))
    return [ignored_warning(s, len(sources), steps) for s in sources
            if all(isinstance(r["lambda"].get(s), (int, float)) and r["lambda"][s] < below for r in last)]


def cosine_matrix_of(record: dict) -> tuple[list[str], list[list[float]]] | None:
    """(sources, K×K cosines) from a MORE step's line, the diagonal 1 (NaN for a source with no gradient); None
    for a line without them (another objective, or written before the cosines were logged)."""
    lam, upper = record.get("lambda"), record.get(COSINE)
    if not isinstance(lam, dict) or not isinstance(upper, list):
        return None
    sources = list(lam)
    k = len(sources)
    if len(upper) != k * (k - 1) // 2:
        return None
    matrix = [[1.0 if i == j else math.nan for j in range(k)] for i in range(k)]
    values = iter(upper)
    for i in range(k):
        for j in range(i + 1, k):
            value = next(values)
            matrix[i][j] = matrix[j][i] = float(value) if isinstance(value, (int, float)) else math.nan
    for i in range(k):  # a source with no direction has no cosine with itself either
        if k > 1 and all(math.isnan(matrix[i][j]) for j in range(k) if j != i):
            matrix[i][i] = math.nan
    return sources, matrix


def mean_cosines(records: list[dict]) -> tuple[list[str], list[list[float]], int] | None:
    """The mean cosine matrix over the records that have one with the latest's sources, each entry over the
    steps where it is defined: (sources, matrix, steps averaged); None when no record has one."""
    read = [m for m in (cosine_matrix_of(r) for r in records) if m is not None]
    if not read:
        return None
    sources = read[-1][0]
    same = [matrix for names, matrix in read if names == sources]
    k = len(sources)
    mean = [[math.nan] * k for _ in range(k)]
    for i in range(k):
        for j in range(k):
            values = [matrix[i][j] for matrix in same if not math.isnan(matrix[i][j])]
            if values:
                mean[i][j] = sum(values) / len(values)
    return sources, mean, len(same)
