"""Retraining: a finished job's frozen settings trained again on the pairs as they are now, the labelling loop's
last step (label → retrain → compare).

The child is a new training job whose config is the parent's, field for field, less its sweep (the child is no
run of the sweep's grid): only the snapshot of the pairs, taken now, differs, so what changed between the two
models is the labels. It records its parent in its status file, beside `sweep` and `after` (jobs/queue.py), and
is made held, linked, then queued, so no runner starts it before the link is there. A scoring job on the test
split runs after it, and one scores the parent too where nothing has, so the Evaluate screen and `report` can
compare parent and child on the same test pairs once the child is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prefstudio.errors import PrefstudioError
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import CONFIG, PAIRS, STATUS, read_config, read_launch
from prefstudio.jobs.names import find_job
from prefstudio.jobs.status import JobStatus, list_jobs, read_raw, write_json

PARENT = "parent"  # the key of the child's status file that names its parent's id
SCORED_ON = "test"  # the split parent and child are compared on
_RETRAIN_SUFFIX = re.compile(r"-r\d+$")


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain will make, checked, before anything is made: the confirm question says it."""

    parent: JobStatus
    config: object  # the child's TrainConfig
    name: str
    gpus: list[int] | None
    num_processes: int
    labelled_then: int | None  # the parent snapshot's labelled training pairs (None: its snapshot is gone)
    labelled_now: int
    pairs_now: int
    score_parent: bool  # nothing has scored the parent on the test split yet
    test_pairs: int
    notes: tuple[str, ...] = ()

    def describe(self, score: bool = True) -> str:
        """The confirm question's text: what runs, on what, and (`score`) what is compared afterwards."""
        c = self.config
        parent = _label(self.parent)
        then = "?" if self.labelled_then is None else f"{self.labelled_then:,}"
        lines = [f"Retrain {parent} as {self.name}: {c.objective} on {Path(c.backbone).name}, "
                 f"its settings unchanged (lr {c.lr:g}, batch {c.batch_size}, {c.epochs:g} epoch(s)),",
                 f"on the pairs as they are now: {self.pairs_now:,} {c.split} pairs, "
                 f"{self.labelled_now:,} labelled (the parent had {then}).",
                 ]
        if score and self.test_pairs:
            scored = f"{parent} and {self.name}" if self.score_parent else self.name
            lines.append(f"Then {scored} scored on the {self.test_pairs:,} {SCORED_ON} pairs (F6 compares them).")
        lines += list(self.notes)
        return "\n".join(lines)


def _label(status: JobStatus) -> str:
    return status.name or status.id


def parent_of(folder: Path) -> str | None:
    """The id of the job `folder`'s job was retrained from; None for a job that is no retrain."""
    try:
        parent = read_raw(folder).get(PARENT)
    except (OSError, ValueError):
        return None
    return parent if isinstance(parent, str) else None


def last_training_job(jobs_dir: Path, statuses: list[JobStatus] | None = None) -> JobStatus:
    """The newest training job: the one `t` on the label screen retrains."""
    statuses = list_jobs(jobs_dir) if statuses is None else statuses
    trained = [s for s in statuses if s.kind == kinds.TRAIN]
    if not trained:
        raise PrefstudioError(f"no training job in {jobs_dir.parent} to retrain: launch one first "
                              "(F5 Jobs, n; or `prefstudio train`)")
    return trained[-1]


def child_name(parent: JobStatus, statuses: list[JobStatus]) -> str:
    """The parent's name (less a retrain's -rN) with the first -rN no job has: run-a, run-a-r1, run-a-r2, …"""
    base = _RETRAIN_SUFFIX.sub("", _label(parent))
    taken = {s.name for s in statuses} | {s.id for s in statuses}
    n = 1
    while f"{base}-r{n}" in taken:
        n += 1
    return f"{base}-r{n}"


def plan_retrain(ws, parent_ref: str | None = None, con=None) -> RetrainPlan:
    """Check a retrain of `parent_ref` (a job's id or name; None: the newest training job) and say what it makes;
    PrefstudioError, one line, when the workspace cannot train it now."""
    from prefstudio.train.checks import check_launch, training_pairs
    from prefstudio.train.config import load_config

    con = con or ws.cursor()
    statuses = list_jobs(ws.jobs_dir)
    parent = (last_training_job(ws.jobs_dir, statuses) if parent_ref is None
              else find_job(ws.jobs_dir, parent_ref, statuses, where=str(ws.path)))
    if parent.kind != kinds.TRAIN:
        raise PrefstudioError(f"job {parent.id} is a {parent.kind} job; only a training job can be retrained")
    config = load_config(parent.folder / CONFIG).model_copy(update={"sweep": None})
    counts = training_pairs(ws, config.split, con)
    chosen = [counts[s] for s in (config.sources or counts) if s in counts]
    notes = check_launch(ws, config, con=con, counts=counts)
    launch = read_launch(parent.folder)
    gpus = launch.get("gpus") or None
    test_pairs = con.execute("SELECT count(*) FROM pairs WHERE split = ?", [SCORED_ON]).fetchone()[0]
    return RetrainPlan(parent=parent, config=config, name=child_name(parent, statuses), gpus=gpus,
                       num_processes=int(launch.get("num_processes") or (len(gpus) if gpus else 1)),
                       labelled_then=_labelled_in_snapshot(parent.folder, config),
                       labelled_now=sum(c.labelled for c in chosen), pairs_now=sum(c.pairs for c in chosen),
                       score_parent=bool(test_pairs) and not _scored(con, statuses, parent.id),
                       test_pairs=test_pairs, notes=tuple(notes))


def start_retrain(ws, plan: RetrainPlan, *, held: bool = False, score: bool = True, con=None) -> str:
    """Make the planned child (held: kept out of the local queue, as `train --no-start`) and its scoring jobs;
    returns the child's id. The caller starts the queue (jobs.start_next)."""
    from prefstudio.evaluate import scoring_job
    from prefstudio.train.data import padding_free_refusal
    from prefstudio.train.jobs import create_training_job
    from prefstudio.train.lora import check_quantization

    con = con or ws.cursor()
    if not held:  # what create_training_job checks of a job that runs here, since it is made held first
        if refusal := padding_free_refusal(plan.config):
            raise PrefstudioError(refusal)
        check_quantization(plan.config)
    child = create_training_job(ws, plan.config, gpus=plan.gpus, num_processes=plan.num_processes, name=plan.name,
                                con=con, held=True)
    status = read_raw(child.folder)
    write_json(child.folder / STATUS, {**status, PARENT: plan.parent.id, "state": "held" if held else "queued"})
    if score and plan.test_pairs:
        if plan.score_parent:
            scoring_job.create_eval_job(
                ws, scoring_job.eval_config(ws, plan.parent.id, split=SCORED_ON, when_done=True),
                name=f"eval {_label(plan.parent)} on {SCORED_ON}", con=con, after=plan.parent.id, held=held)
        scoring_job.create_eval_job(ws, scoring_job.eval_config(ws, child.id, split=SCORED_ON, when_done=True),
                                    name=f"eval {plan.name} on {SCORED_ON}", con=con, after=child.id, held=held)
    return child.id


def retrain(ws, parent_ref: str | None = None, *, held: bool = False, score: bool = True, con=None) -> str:
    """Retrain `parent_ref` (None: the newest training job) on the pairs as they are now; the child's id."""
    return start_retrain(ws, plan_retrain(ws, parent_ref, con=con), held=held, score=score, con=con)


def _labelled_in_snapshot(folder: Path, config) -> int | None:
    """The labelled pairs the parent trained on, from its own snapshot, with its split and sources."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(folder / PAIRS, columns=["split", "source", "level"]).to_pylist()
    except (OSError, ValueError, KeyError):  # gone, or written by a version without these columns
        return None
    return sum(1 for r in rows if r["split"] == config.split and r["level"] is not None
               and (not config.sources or r["source"] in config.sources))


def _scored(con, statuses: list[JobStatus], job_id: str) -> bool:
    """Whether the job's rewards on the test split are in the workspace, or a scoring job of it is on its way."""
    for status in statuses:
        if status.kind == kinds.EVAL and status.state in ("queued", "held", "running", "done"):
            try:
                config = read_config(status.folder)
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            if config.get("subject") == job_id and config.get("split") == SCORED_ON:
                return True
    return bool(con.execute("SELECT count(*) FROM predictions p JOIN pairs s ON s.id = p.pair_id "
                            "WHERE p.job_id = ? AND s.split = ?", [job_id, SCORED_ON]).fetchone()[0])


def parent_and_child(jobs_dir: Path, job_ids: list[str], job_id: str) -> tuple[str, str] | None:
    """(parent, child) among `job_ids` for `job_id`: its parent and it, or it and its newest retrain; None when
    neither is among them. What the Evaluate screen's `p` picks, to show the two alone on the same pairs."""
    among = set(job_ids)
    parent = parent_of(jobs_dir / job_id)
    if parent in among:
        return parent, job_id
    children = [other for other in job_ids if other != job_id and parent_of(jobs_dir / other) == job_id]
    return (job_id, sorted(children)[-1]) if children else None  # ids start with their date: the newest last
