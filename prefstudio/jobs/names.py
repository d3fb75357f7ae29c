"""Job names: a job is found by its id or by its name, and a name a person gives belongs to no other job.

A job's id is made for it (date, objective, a random tail) and is awkward to type;
the name (`train --name`, the app's form) is what a person remembers, so every
command that takes a job takes either. A name given at launch is refused when
another job of the workspace has it, as a name or as an id, so it finds one job.
Names made by the app for scoring and best-of-N jobs may repeat (a model scored
twice): such a name finds nothing by itself, and the message lists the ids.
"""

from __future__ import annotations

from pathlib import Path

from prefstudio.errors import PrefstudioError
from prefstudio.jobs.status import JobStatus, list_jobs

CHECKPOINT_MARKS = (":", "@")  # JOB:step-N and JOB@step-N name a checkpoint of a job


def _known(statuses: list[JobStatus]) -> str:
    """The jobs, as a refusal lists them: the id, and the name where it is not the id."""
    return ", ".join(s.id if s.name in ("", s.id) else f"{s.id} ({s.name})" for s in statuses) or "none"


def find_job(jobs_dir: Path, ref: str, statuses: list[JobStatus] | None = None, where: str = "") -> JobStatus:
    """The job whose id, else whose name, is `ref`; PrefstudioError, one line, when none or several are."""
    statuses = list_jobs(jobs_dir) if statuses is None else statuses
    for status in statuses:
        if status.id == ref:
            return status
    named = [s for s in statuses if s.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise PrefstudioError(f"job name {ref!r} is shared by {len(named)} jobs ({', '.join(s.id for s in named)}); "
                              "give one of their ids")
    raise PrefstudioError(f"no job {ref!r} in {where or jobs_dir.parent} (jobs: {_known(statuses)})")


def job_id(jobs_dir: Path, ref: str, statuses: list[JobStatus] | None = None, where: str = "") -> str:
    """The id of the job `ref` names (an id or a name): what the core's functions take."""
    return find_job(jobs_dir, ref, statuses, where).id


def with_job_id(jobs_dir: Path, spec: str, statuses: list[JobStatus] | None = None) -> str:
    """`spec` (JOB, JOB@step-N or JOB:step-N) with a job's name put as its id; any other spec (an id, model:NAME,
    raw:NAME) as it is, for the command to take or refuse in its own words."""
    statuses = list_jobs(jobs_dir) if statuses is None else statuses
    if any(s.id == spec for s in statuses):
        return spec
    if any(s.name == spec for s in statuses):
        return job_id(jobs_dir, spec, statuses)
    for mark in CHECKPOINT_MARKS:
        head, found, tail = spec.rpartition(mark)
        if found and head and not any(s.id == head for s in statuses) and any(s.name == head for s in statuses):
            return f"{job_id(jobs_dir, head, statuses)}{mark}{tail}"
    return spec


def check_new_name(jobs_dir: Path, name: str | None, field: str = "--name") -> None:
    """Refuse a name for a new job that another job has (as its name or id), or that a checkpoint mark would
    cut in two: every command that takes a job must find this one by it."""
    if name is None:
        return
    if not name.strip() or name != name.strip():
        raise PrefstudioError(f"{field} {name!r}: expected a name without spaces around it")
    if any(mark in name for mark in CHECKPOINT_MARKS):
        raise PrefstudioError(f"{field} {name!r}: ':' and '@' mark a checkpoint (JOB@step-N); "
                              "choose a name without them")
    taken = next((s for s in list_jobs(jobs_dir) if name in (s.id, s.name)), None)
    if taken is not None:
        raise PrefstudioError(f"{field} {name!r}: taken by job {taken.id} in this workspace; choose another name")
